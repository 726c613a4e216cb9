"""CUDA kernel: one thread per event around the shared per-candle rule.

``label_events`` is the CUDA side of :mod:`engine.cpu.kernels`: thread k
labels ``events[k]`` by calling :func:`engine.rules.label_one`, with the
argument order of the CPU kernels, and writes column k of the outputs.
numba-cuda compiles the ``@njit`` rule and everything it calls as device
functions, so the CPU and the GPU share one source for the barrier prices,
the first touches and the settling of a label. Events may come in any order
and may repeat; each thread touches only its own column.

Configurations are not a grid dimension. The host launches once per
configuration (and per sub-chunk of its events) because:

- outputs stream per configuration: the engine writes each configuration's
  rows as they finish, so a second grid axis would hold every configuration's
  outputs on the device and the host at once for no gain;
- a launch over a million events is already a million threads, 4,096 blocks
  of 256, dozens per SM on the largest GPUs: a configuration axis adds no
  parallelism the hardware could use;
- a launch costs microseconds against milliseconds of work per launch.

Floating point: the kernel is compiled without fastmath. NVVM contracts a
multiply feeding an add into a fused multiply-add by default (its ``-fma=1``),
and numba-cuda offers no per-kernel switch to turn that off short of
fastmath, which turns it on. The rule is written so contraction has nothing
to fuse: no formula in :mod:`engine.rules` feeds a product into an addition
(``e * (1.0 + target)`` adds first, the returns divide then subtract), and
divisions compile to the correctly rounded ``div.rn.f64``. The tests check
the PTX of :func:`ptx` for this: no ``fma`` instruction, and no double
multiply whose result reaches an add or subtract that ptxas could fuse.

Under the CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) the kernel body runs as
Python, a host thread per CUDA thread. The simulator wraps arrays in objects
that compiled ``@njit`` code cannot take, so there the rule is called on the
wrapped numpy arrays, that is, as its compiled CPU code. What the simulator
proves is everything around the rule: the thread index, the tail guard, the
shared-or-per-event values, the argument order and the host's chunking and
streams. The PTX test covers the one thing it cannot: how the rule compiles.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import contextmanager
from types import SimpleNamespace

from numba import cuda, types

from engine import rules


def simulator_enabled() -> bool:
    """Whether numba.cuda is the simulator (NUMBA_ENABLE_CUDASIM=1 at start-up)."""
    return bool(getattr(cuda.config, "ENABLE_CUDASIM", False))


def _on_wrapped_arrays(rule: Callable) -> Callable:
    """The rule, unwrapping the simulator's array objects to their numpy arrays."""

    def unwrap(a):
        inner = getattr(a, "_item", a)  # FakeWithinKernelCUDAArray -> FakeCUDAArray
        return getattr(inner, "_ary", inner)  # FakeCUDAArray -> numpy.ndarray

    def call(*args):
        return rule(*[unwrap(a) for a in args])

    return call


if simulator_enabled():
    label_one = _on_wrapped_arrays(rules.label_one)
else:
    label_one = rules.label_one


def _label_events(
    t, o, h, l, c, b1, b2, b3, events, sides, targets, stops,
    horizon_bars, horizon_ticks, target_first, next_open, out_i, out_f, out_b,
):  # fmt: skip
    """Thread k labels events[k] into column k of the outputs (one per event)."""
    k = cuda.grid(1)
    if k >= events.shape[0]:
        return
    label_one(
        t, o, h, l, c, b1, b2, b3, events[k],
        sides[k] if sides.shape[0] > 1 else sides[0],
        targets[k] if targets.shape[0] > 1 else targets[0],
        stops[k] if stops.shape[0] > 1 else stops[0],
        horizon_bars, horizon_ticks, target_first, next_open, k,
        out_i, out_f, out_b,
    )  # fmt: skip


label_events = cuda.jit(fastmath=False)(_label_events)

_I8, _I64, _F64 = types.int8, types.int64, types.float64

#: The one specialization the backend launches: C-contiguous int64 ticks,
#: float64 prices, (2, m) float64 block tables, int64 events, int8 sides,
#: float64 targets and stops (one value per event, or one shared), int64
#: horizons, boolean flags, and the (3, k) int64 / float64 / int8 outputs.
LABEL_EVENTS_SIGNATURE = (
    _I64[::1], _F64[::1], _F64[::1], _F64[::1], _F64[::1],
    _F64[:, ::1], _F64[:, ::1], _F64[:, ::1],
    _I64[::1], _I8[::1], _F64[::1], _F64[::1],
    _I64, _I64, types.boolean, types.boolean,
    _I64[:, ::1], _F64[:, ::1], _I8[:, ::1],
)  # fmt: skip

#: Every kernel the backend launches, by name, with its launch signature.
KERNELS = {"label_events": (_label_events, LABEL_EVENTS_SIGNATURE)}

_ARCH = re.compile(r"^(?:sm_|compute_)?(\d+)(\d)([af]?)$")


def parse_arch(arch: str) -> tuple[int, int]:
    """``"sm_90"`` (or ``"90"``, ``"compute_90"``) as the compute capability (9, 0)."""
    m = _ARCH.match(arch.strip().lower()) if isinstance(arch, str) else None
    if m is None:
        raise ValueError(
            f"unknown CUDA architecture {arch!r}; give one like sm_80 or sm_90"
        )
    return int(m.group(1)), int(m.group(2))


@contextmanager
def _device_stand_in(cc: tuple[int, int]):
    """Let numba-cuda compile device functions on a machine without a GPU.

    A kernel's own compute capability comes from ``compile_ptx``, but the
    ``@njit`` functions it calls are compiled by a dispatcher that asks the
    current device for one, and there is none without a GPU. For the length
    of the compilation that question gets ``cc`` as its answer. The rule uses
    nothing that depends on the architecture at that stage (the kernel's PTX
    is generated for ``cc`` either way). With a GPU present nothing is
    replaced.
    """
    from numba.cuda import dispatcher

    if cuda.is_available():
        yield
        return
    real = dispatcher.get_current_device
    dispatcher.get_current_device = lambda: SimpleNamespace(compute_capability=cc)
    try:
        yield
    finally:
        dispatcher.get_current_device = real


def _compile(name: str, cc: tuple[int, int]) -> str:
    if simulator_enabled():
        raise RuntimeError(
            "the CUDA simulator has no compiler behind it; unset "
            "NUMBA_ENABLE_CUDASIM to compile the kernels"
        )
    func, signature = KERNELS[name]
    with _device_stand_in(cc):
        code, _ = cuda.compile_ptx(func, signature, cc=cc, fastmath=False)
    return code


def ptx(arch: str) -> dict[str, str]:
    """Every kernel's PTX for ``arch``, by kernel name; needs no GPU.

    Raises ``ValueError`` for a string that names no architecture, and
    ``RuntimeError`` under the simulator, which has no compiler behind it.
    """
    cc = parse_arch(arch)
    return {name: _compile(name, cc) for name in KERNELS}


def compile_all(arch: str) -> list[tuple[str, bool, str]]:
    """Compile every CUDA kernel to PTX for ``arch`` (``"sm_80"``, ``"sm_90"``).

    Needs numba-cuda and its NVVM compiler package, not a GPU. Each kernel is
    compiled for exactly the argument types the backend launches it with.

    Returns
    -------
    list of (name, compiled, detail)
        One per kernel: ``detail`` is the PTX size when it compiled, the
        compiler's first line of complaint when it did not.

    Raises
    ------
    ValueError
        ``arch`` names no architecture (``"sm_80"``, ``"90"`` and
        ``"compute_90"`` all name one).
    """
    cc = parse_arch(arch)
    results = []
    for name in KERNELS:
        try:
            code = _compile(name, cc)
        except Exception as exc:  # noqa: BLE001 - every failure is reported by name
            lines = str(exc).strip().splitlines()
            results.append((name, False, lines[0] if lines else type(exc).__name__))
            continue
        results.append(
            (name, True, f"{len(code):,} bytes of PTX for sm_{cc[0]}{cc[1]}")
        )
    return results
