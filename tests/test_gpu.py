"""The CUDA backend: compiled without a GPU, run under the simulator, refused clearly.

Three kinds of test live here:

- compilation (every pass but the simulator's): every kernel compiles to PTX
  for sm_80 and sm_90 with the exact launch signature, and the PTX holds no
  fused multiply-add that could move a bit away from the CPU's result;
- ``cudasim``: the backend against the CPU backend under the CUDA simulator,
  with 8 threads per block so a few dozen events span several blocks and end
  in a partly filled one. NUMBA_ENABLE_CUDASIM must be set before Python
  starts, so these run in a second pass:
  ``NUMBA_ENABLE_CUDASIM=1 pytest -m cudasim tests/test_gpu.py``;
- ``gpu``: the same comparison on a million bars, on real hardware only.

The device resolver's refusals and fallbacks run in the normal pass.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import zlib

import numba
import numpy as np
import pytest
from gpu_helpers import assert_same, batch, categories, random_path

from engine.backend import RawLabels
from engine.cpu.backend import CpuBackend
from engine.errors import DeviceError

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")
ARCHS = ("sm_80", "sm_90")

cudasim = [
    pytest.mark.cudasim,
    pytest.mark.skipif(
        not SIMULATOR,
        reason="CUDA simulator tests: run `NUMBA_ENABLE_CUDASIM=1 pytest -m cudasim "
        "tests/test_gpu.py` (the variable must be set before Python starts)",
    ),
]
not_simulated = pytest.mark.skipif(
    SIMULATOR, reason="the CUDA simulator replaces the compiler and the driver"
)


def apply(marks):
    def decorate(func):
        for mark in reversed(marks):
            func = mark(func)
        return func

    return decorate


# --------------------------------------------------------------------------
# Compilation, without a GPU
# --------------------------------------------------------------------------

_PTX: dict[str, dict[str, str]] = {}


def ptx_for(arch: str) -> dict[str, str]:
    """Every kernel's PTX for ``arch``, compiled once per test session."""
    from engine.gpu import kernels

    if arch not in _PTX:
        _PTX[arch] = kernels.ptx(arch)
    return _PTX[arch]


@not_simulated
@pytest.mark.parametrize("arch", ARCHS)
def test_compile_all_compiles_every_kernel(arch):
    from engine.gpu import compile_all, kernels

    results = compile_all(arch)
    assert [name for name, _, _ in results] == list(kernels.KERNELS)
    for name, ok, detail in results:
        assert ok, f"{name} failed to compile for {arch}: {detail}"
        assert "PTX" in detail


@not_simulated
@pytest.mark.parametrize("arch", ARCHS)
def test_ptx_targets_the_architecture(arch):
    for name, code in ptx_for(arch).items():
        assert f".target {arch}" in code, name
        assert ".entry" in code, name


# One PTX instruction: opcode with its modifiers, destination, sources.
_INSTRUCTION = re.compile(r"^\s*(?:@!?%p\d+\s+)?([a-z][\w.]*)\s+(%[\w]+)\s*,\s*(.*);")


def _instructions(code: str):
    for line in code.splitlines():
        m = _INSTRUCTION.match(line)
        if m:
            op, dst, rest = m.groups()
            yield op, dst, re.findall(r"%[\w]+", rest)


@not_simulated
@pytest.mark.parametrize("arch", ARCHS)
def test_ptx_has_no_fused_multiply_add(arch):
    """No FMA now, and none that ptxas could still form from a multiply and an add.

    NVVM contracts ``a * b + c`` into an FMA by default, and ptxas may do the
    same with a ``mul.f64`` whose result feeds an ``add.f64`` or ``sub.f64``
    (neither carries the ``.rn`` that forbids it). The rule has no such pair,
    so both must be absent; a change to the rule that adds one fails here.
    """
    for name, code in ptx_for(arch).items():
        fused = re.findall(r"\b(?:fma|mad)(?:\.[a-z0-9]+)*\.f(?:16|32|64)\b", code)
        assert not fused, f"{name}: {fused[:5]}"
        assert ".approx" not in code and ".ftz" not in code, name
        divisions = re.findall(r"\bdiv(?:\.[a-z]+)*\.f64\b", code)
        assert divisions and set(divisions) == {"div.rn.f64"}, (name, divisions)

        products = set()
        for op, dst, _ in _instructions(code):
            if op.startswith("mul.") and op.endswith(".f64"):
                products.add(dst)
        assert products, f"{name}: expected the barrier products e * (1 + f)"
        for op, dst, sources in _instructions(code):
            if op.split(".")[0] in ("add", "sub") and op.endswith(".f64"):
                feeding = products.intersection(sources)
                assert not feeding, f"{name}: {op} {dst} takes products {feeding}"


@not_simulated
@pytest.mark.parametrize("arch", ["sm_9x", "90a_", "", "gfx90a", 90])
def test_unknown_architecture_is_refused(arch):
    from engine.gpu import compile_all

    with pytest.raises(ValueError, match="unknown CUDA architecture.*sm_80"):
        compile_all(arch)


@not_simulated
def test_an_architecture_the_compiler_lacks_fails_by_name():
    from engine.gpu import compile_all

    [(name, ok, detail)] = compile_all("sm_30")
    assert name == "label_events" and not ok
    assert "3.0" in detail


def test_launch_arguments_have_the_compiled_signature():
    """What the backend launches with is exactly the specialization compiled."""
    from engine.gpu.backend import launch_args
    from engine.gpu.kernels import LABEL_EVENTS_SIGNATURE

    path = random_path(0, 40)
    for b in (
        batch(path, horizon_bars=5),
        batch(
            path,
            horizon_ticks=600,
            next_open=True,
            target_first=True,
            per_event=np.random.default_rng(1),
        ),
    ):
        out = RawLabels.empty(len(b))
        args = launch_args(
            (path.t, path.open, path.high, path.low, path.close, path.blocks1,
             path.blocks2, path.blocks3),
            (b.events, b.sides, b.targets, b.stops),
            b,
            (out.ints, out.floats, out.flags),
        )  # fmt: skip
        assert tuple(numba.typeof(a) for a in args) == LABEL_EVENTS_SIGNATURE


def test_threads_per_block_setting(monkeypatch):
    from engine.gpu import config

    monkeypatch.setenv("LABELER_CUDA_THREADS_PER_BLOCK", "8")
    assert config._env_int("LABELER_CUDA_THREADS_PER_BLOCK", 256) == 8
    monkeypatch.setenv("LABELER_CUDA_THREADS_PER_BLOCK", "eight")
    with pytest.raises(ValueError, match="LABELER_CUDA_THREADS_PER_BLOCK"):
        config._env_int("LABELER_CUDA_THREADS_PER_BLOCK", 256)
    monkeypatch.setenv("LABELER_CUDA_THREADS_PER_BLOCK", "0")
    with pytest.raises(ValueError, match=">= 1"):
        config._env_int("LABELER_CUDA_THREADS_PER_BLOCK", 256)


@pytest.mark.slow
def test_importing_the_engine_loads_no_cuda():
    """The CPU path and ``--help`` never pay for numba.cuda or cupy."""
    code = (
        "import sys, engine, engine.gpu, engine.device, engine.api\n"
        "loaded = [m for m in sys.modules if m.startswith(('numba.cuda', 'cupy'))]\n"
        "print(loaded)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env,
        check=True,
    )  # fmt: skip
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


# --------------------------------------------------------------------------
# probe() and the device resolver's refusals (no GPU, no simulator)
# --------------------------------------------------------------------------


def _without_numba_cuda(monkeypatch):
    monkeypatch.setitem(sys.modules, "numba.cuda", None)
    monkeypatch.delattr(numba, "cuda", raising=False)


def test_without_numba_cuda_cuda_is_refused_with_the_install_hint(monkeypatch):
    from engine import gpu
    from engine.device import resolve_device

    _without_numba_cuda(monkeypatch)
    usable, reason = gpu.probe()
    assert not usable
    assert "numba-cuda" in reason
    assert "install labeler[cuda] (CUDA 13 driver) or labeler[cuda12]" in reason
    with pytest.raises(DeviceError, match=re.escape("labeler[cuda12]")) as err:
        resolve_device("cuda")
    assert str(err.value).startswith("--device cuda cannot run here: ")


def test_without_numba_cuda_auto_falls_back_to_the_cpu(monkeypatch):
    from engine import gpu
    from engine.device import resolve_device

    _without_numba_cuda(monkeypatch)
    backend = resolve_device("auto")
    assert backend.name == "cpu"
    assert backend.fallback_reason == gpu.probe()[1]
    assert "labeler[cuda]" in backend.fallback_reason


def test_report_without_numba_cuda(monkeypatch):
    from engine import gpu

    _without_numba_cuda(monkeypatch)
    info = gpu.report()
    assert info["usable"] is False and "numba-cuda" in info["reason"]
    assert info["devices"] == [] and info["driver"] is None
    json.dumps(info)


@pytest.fixture
def real_cuda():
    """numba.cuda as on a machine without the simulator."""
    if SIMULATOR:
        pytest.skip("the simulator stands in for the driver and the device")
    from numba import cuda

    return cuda


@pytest.fixture
def driverless(real_cuda, monkeypatch):
    """numba.cuda on a machine whose driver is absent, whatever this one has."""
    from numba.cuda.cudadrv import driver as drv

    monkeypatch.setattr(real_cuda, "is_available", lambda: False)
    monkeypatch.setattr(
        drv.driver,
        "initialization_error",
        "\nCUDA driver library cannot be found.\nEnsure that a compatible "
        "NVIDIA driver is installed and available on your system path.\n",
    )
    return real_cuda


def test_no_driver_is_refused(driverless):
    from engine import gpu
    from engine.device import resolve_device

    usable, reason = gpu.probe()
    assert not usable
    assert reason.startswith("no usable NVIDIA driver (CUDA driver library cannot")
    assert "install the NVIDIA driver" in reason
    with pytest.raises(DeviceError, match="no usable NVIDIA driver"):
        resolve_device("cuda")
    backend = resolve_device("auto")
    assert backend.name == "cpu" and backend.fallback_reason == reason


def test_the_backend_itself_refuses_to_start(driverless):
    from engine.gpu import CudaBackend

    with pytest.raises(DeviceError, match="cannot run here: no usable NVIDIA driver"):
        CudaBackend()


def test_driver_without_a_device_is_refused(driverless, monkeypatch):
    from numba.cuda.cudadrv import driver as drv

    from engine import gpu
    from engine.device import resolve_device

    monkeypatch.setattr(
        drv.driver,
        "initialization_error",
        "CUDA_ERROR_NO_DEVICE: no CUDA-capable device is detected (100)",
    )
    usable, reason = gpu.probe()
    assert not usable
    assert reason.startswith("the NVIDIA driver is installed but sees no CUDA device")
    assert "--gpus all" in reason
    with pytest.raises(DeviceError, match="sees no CUDA device"):
        resolve_device("cuda")


def test_no_device_listed_is_refused(driverless, monkeypatch):
    from numba.cuda.cudadrv import driver as drv
    from numba.cuda.cudadrv import nvvm

    from engine import gpu
    from engine.device import resolve_device

    monkeypatch.setattr(drv.driver, "initialization_error", None)
    monkeypatch.setattr(nvvm, "is_available", lambda: True)
    monkeypatch.setattr(driverless, "gpus", [])
    usable, reason = gpu.probe()
    assert not usable
    assert reason.startswith("no CUDA device was found")
    with pytest.raises(DeviceError, match="no CUDA device was found"):
        resolve_device("cuda")
    backend = resolve_device("auto")
    assert backend.name == "cpu" and "no CUDA device" in backend.fallback_reason


def test_missing_nvvm_is_refused(driverless, monkeypatch):
    from numba.cuda.cudadrv import driver as drv
    from numba.cuda.cudadrv import nvvm

    from engine import gpu

    monkeypatch.setattr(drv.driver, "initialization_error", None)
    monkeypatch.setattr(nvvm, "is_available", lambda: False)
    usable, reason = gpu.probe()
    assert not usable and "NVVM" in reason and "labeler[cuda]" in reason


@pytest.mark.parametrize(
    ("driver", "extra"),
    [((12, 8), "labeler[cuda12] (cupy-cuda12x"), ((13, 0), "labeler[cuda] (cupy")],
)
def test_gpu_without_cupy_names_the_extra_for_the_driver(
    real_cuda, monkeypatch, driver, extra
):
    from numba.cuda.cudadrv import driver as drv

    from engine import gpu
    from engine.device import resolve_device

    monkeypatch.setattr(real_cuda, "is_available", lambda: True)
    monkeypatch.setattr(drv.driver, "get_version", lambda: driver)
    monkeypatch.setitem(sys.modules, "cupy", None)
    usable, reason = gpu.probe()
    assert not usable
    assert reason.startswith("CuPy is not installed; install ")
    assert extra in reason
    with pytest.raises(DeviceError, match="CuPy is not installed"):
        resolve_device("cuda")


def test_this_machine_without_a_gpu_says_why(real_cuda):
    from engine import gpu

    if real_cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    usable, reason = gpu.probe()
    assert not usable and reason
    info = gpu.report()
    assert info["usable"] is False and info["reason"] == reason
    assert info["simulator"] is False and info["devices"] == []
    assert info["numba"] == numba.__version__
    json.dumps(info)


def test_cpu_is_never_refused():
    from engine.device import resolve_device

    backend = resolve_device("cpu")
    assert backend.name == "cpu" and backend.fallback_reason is None


# --------------------------------------------------------------------------
# Under the CUDA simulator: the CUDA backend against the CPU backend
# --------------------------------------------------------------------------


@pytest.fixture
def small_blocks(monkeypatch):
    """8 threads per block: a few dozen events span several blocks."""
    from engine.gpu import config

    monkeypatch.setattr(config, "THREADS_PER_BLOCK", 8)
    return config


@pytest.fixture
def cuda_backend(small_blocks):
    from engine.gpu import CudaBackend

    backend = CudaBackend()
    yield backend
    backend.close()


def cpu_label(path, b):
    """The CPU backend's rows: its sequential kernel, which its own tests hold
    equal to the threaded one (the simulator already runs a Python thread per
    CUDA thread)."""
    return CpuBackend(threads=1).label(path, b)


def run_both(cuda_backend, path, b):
    gpu = cuda_backend.label(cuda_backend.load(path), b)
    cpu = cpu_label(path, b)
    assert_same(gpu, cpu)
    return cpu


HORIZONS = {
    "bars": {"horizon_bars": 6},
    "bars past the end": {"horizon_bars": 50},
    "duration": {"horizon_ticks": 900},
    "duration past the end": {"horizon_ticks": 6 * 3600},
}


@apply(cudasim)
def test_simulator_is_reported_usable():
    from engine import gpu
    from engine.device import resolve_device

    assert gpu.probe() == (True, gpu.SIMULATOR_REASON)
    backend = resolve_device("cuda")
    assert backend.name == "cuda" and "simulator" in backend.describe()
    assert resolve_device("auto").name == "cuda"
    assert gpu.report()["simulator"] is True
    backend.close()


@apply(cudasim)
@pytest.mark.parametrize("next_open", [False, True], ids=["close", "next_open"])
@pytest.mark.parametrize(
    "target_first", [False, True], ids=["stop_first", "target_first"]
)
@pytest.mark.parametrize("horizon", list(HORIZONS))
@pytest.mark.parametrize("side", [1, -1], ids=["long", "short"])
def test_matches_cpu_across_the_contract(
    cuda_backend, side, horizon, target_first, next_open
):
    seed = zlib.crc32(repr((side, horizon, target_first, next_open)).encode())
    path = random_path(seed, 45)
    b = batch(path, side=side, target=0.01, stop=0.005, target_first=target_first,
              next_open=next_open, **HORIZONS[horizon])  # fmt: skip
    run_both(cuda_backend, path, b)


@apply(cudasim)
@pytest.mark.parametrize("seed", range(4))
def test_matches_cpu_with_a_side_target_and_stop_per_event(cuda_backend, seed):
    rng = np.random.default_rng(seed)
    path = random_path(100 + seed, 70)
    events = np.unique(rng.integers(0, path.n, 40)).astype(np.int64)
    for kw in ({"horizon_bars": 8}, {"horizon_ticks": 1800}):
        b = batch(path, events=events, per_event=rng, next_open=seed % 2 == 1,
                  target_first=seed >= 2, **kw)  # fmt: skip
        assert b.sides.shape[0] == len(b) > 1
        run_both(cuda_backend, path, b)


@apply(cudasim)
def test_the_comparisons_reach_every_corner_of_the_contract(cuda_backend):
    """The generated paths keep exercising every rule, so equality means something."""
    seen = set()
    for seed in range(6):
        path = random_path(seed, 60)
        for side in (1, -1):
            for horizon in HORIZONS.values():
                b = batch(path, side=side, target=0.01, stop=0.01, **horizon)
                seen |= categories(path, b, cpu_label(path, b))
        b = batch(path, per_event=np.random.default_rng(seed), horizon_bars=10)
        seen |= categories(path, b, run_both(cuda_backend, path, b))
    assert seen >= {
        "target", "stop", "timeout", "ambiguous", "truncated",
        "same bar, open beyond a barrier", "high or low exactly on a barrier",
        "gap through a barrier",
    }  # fmt: skip


@apply(cudasim)
@pytest.mark.parametrize("streams", [1, 2, 3])
@pytest.mark.parametrize("chunk", [1, 8, 13, 64])
def test_sub_chunks_and_streams_give_the_same_rows(
    cuda_backend, monkeypatch, streams, chunk
):
    """Events split over sub-chunks and rotating streams, tail blocks everywhere."""
    from engine.gpu import config

    monkeypatch.setattr(config, "CHUNK_EVENTS", chunk)
    monkeypatch.setattr(config, "STREAMS", streams)
    path = random_path(7, 53)
    rng = np.random.default_rng(chunk)
    for b in (batch(path, horizon_bars=9), batch(path, per_event=rng, horizon_bars=9)):
        assert cuda_backend.chunk_events(len(b)) == min(chunk, len(b))
        run_both(cuda_backend, path, b)


@apply(cudasim)
def test_buffers_regrow_and_are_reused(cuda_backend, monkeypatch):
    from engine.gpu import config

    monkeypatch.setattr(config, "CHUNK_EVENTS", 1 << 20)
    path = random_path(3, 40)
    handle = cuda_backend.load(path)
    small = batch(path, events=np.arange(5, dtype=np.int64), horizon_bars=4)
    large = batch(path, horizon_bars=4)
    for b in (small, large, small, large):
        assert_same(cuda_backend.label(handle, b), cpu_label(path, b))
    assert cuda_backend._slots[0].capacity == len(large)


@apply(cudasim)
@pytest.mark.parametrize("k", [0, 1, 7, 8, 9, 17])
def test_event_counts_around_the_block_size(cuda_backend, k):
    """Empty, single, and counts one either side of a full block of 8."""
    path = random_path(11, 40)
    b = batch(path, events=np.arange(k, dtype=np.int64) * 2, horizon_bars=3)
    out = cuda_backend.label(cuda_backend.load(path), b)
    assert out.ints.shape == (3, k)
    assert_same(out, cpu_label(path, b))


@apply(cudasim)
def test_a_handle_from_elsewhere_is_refused(cuda_backend):
    path = random_path(0, 20)
    with pytest.raises(TypeError, match="load"):
        cuda_backend.label(path, batch(path, horizon_bars=2))


@apply(cudasim)
def test_api_labels_on_cuda_as_on_cpu(small_blocks, monkeypatch):
    """End to end through engine.api: the same table from both devices."""
    from engine import LabelConfig, label

    monkeypatch.setattr(small_blocks, "CHUNK_EVENTS", 24)
    path = random_path(21, 90)
    bars = {
        "timestamp": path.t.astype("datetime64[s]"),
        "open": path.open, "high": path.high, "low": path.low, "close": path.close,
    }  # fmt: skip
    configs = [
        LabelConfig(side=side, target=0.01, stop=0.005, horizon=horizon,
                    ambiguity=ambiguity, entry=entry)
        for side in ("long", "short")
        for horizon in (5, "20m", 200)
        for ambiguity, entry in (("stop_first", "close"), ("target_first", "next_open"))
    ]  # fmt: skip
    for float64 in (False, True):
        cpu = label(bars, configs, device="cpu", threads=1, float64=float64)
        gpu = label(bars, configs, device="cuda", float64=float64)
        assert gpu.num_rows == cpu.num_rows > 0
        assert gpu.equals(cpu)


@apply(cudasim)
def test_api_labeler_chunks_on_cuda_as_on_cpu(small_blocks):
    from engine import LabelConfig
    from engine.api import Labeler
    from engine.data import bars_from_any
    from engine.device import resolve_device

    path = random_path(5, 70)
    bars = bars_from_any({
        "timestamp": path.t.astype("datetime64[s]"),
        "open": path.open, "high": path.high, "low": path.low, "close": path.close,
    })  # fmt: skip
    config = LabelConfig(side="short", target=0.005, stop=0.01, horizon="30m")
    tables = {}
    for device in ("cpu", "cuda"):
        backend = resolve_device(device, threads=1)
        labeler = Labeler(bars, backend, chunk_events=16, float64=True)
        try:
            tables[device] = labeler.label(config)
        finally:
            labeler.close()
    assert tables["cuda"].equals(tables["cpu"])


# --------------------------------------------------------------------------
# Real hardware
# --------------------------------------------------------------------------


def _real_gpu() -> tuple[bool, str]:
    if SIMULATOR:
        return False, "NUMBA_ENABLE_CUDASIM=1: the simulator is not a GPU"
    from engine import gpu

    return gpu.probe()


def _gpu_marks():
    usable, reason = _real_gpu()
    return [
        pytest.mark.gpu,
        pytest.mark.skipif(not usable, reason=f"needs a CUDA GPU: {reason}"),
    ]


@apply(_gpu_marks())
@pytest.mark.parametrize(
    "kw",
    [
        {"side": 1, "horizon_bars": 500},
        {"side": -1, "horizon_bars": 20_000, "target_first": True},
        {"side": 1, "horizon_ticks": 4 * 3600, "next_open": True},
        {"side": -1, "horizon_ticks": 3 * 86400, "target": 0.05, "stop": 0.03},
    ],
    ids=["long-500bars", "short-20000bars-tf", "long-4h-nextopen", "short-3d"],
)
def test_million_bars_equal_on_gpu(kw):
    from engine.gpu import CudaBackend

    path = random_path(2024, 1_000_000)
    b = batch(path, **kw)
    backend = CudaBackend()
    try:
        gpu = backend.label(backend.load(path), b)
    finally:
        backend.close()
    assert_same(gpu, CpuBackend().label(path, b))


@apply(_gpu_marks())
def test_million_bars_per_event_values_on_gpu():
    from engine.gpu import CudaBackend

    path = random_path(77, 1_000_000)
    by_bars = batch(path, per_event=np.random.default_rng(5), horizon_bars=2000)
    by_time = dataclasses.replace(
        by_bars, target_first=True, horizon_bars=0, horizon_ticks=86400
    )
    backend = CudaBackend()
    try:
        handle = backend.load(path)
        for b in (by_bars, by_time):
            assert_same(backend.label(handle, b), CpuBackend().label(path, b))
    finally:
        backend.close()
