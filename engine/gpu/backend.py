"""The CUDA backend: the path resident on the GPU, events streamed through it.

``load`` copies the price path and its block tables to the device once; it
stays there for every configuration, because any event's window may reach
any later bar. ``label`` then runs a batch of events in sub-chunks:

1. the sub-chunk size comes from the device memory free after the path is
   loaded (``config.MEMORY_FRACTION`` of it, shared by the streams) and is
   capped by ``config.CHUNK_EVENTS``, so host and device memory stay bounded
   whatever the batch or the series length;
2. each stream owns one set of buffers: pinned host staging for the inputs
   and outputs, device arrays for both, allocated once at the largest size
   needed so far and reused;
3. sub-chunk j goes to stream j % STREAMS: stage its events (and per-event
   sides, targets, stops) into pinned memory, copy them up, launch one
   thread per event, copy the results down, all asynchronously. Before a
   stream takes its next sub-chunk, the host waits for that stream only and
   moves its results into the batch's output. With two streams the copies of
   one sub-chunk overlap the kernel of the other.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass

import numpy as np

from engine.backend import EventBatch, PathArrays, RawLabels
from engine.errors import DeviceError
from engine.gpu import config

log = logging.getLogger(__name__)

#: Device and pinned bytes one event needs in a sub-chunk's buffers: int64
#: event, int8 side, float64 target and stop in; 3 x int64, 3 x float64 and
#: 3 x int8 out.
BYTES_PER_EVENT = 8 + 1 + 8 + 8 + 3 * 8 + 3 * 8 + 3 * 1

#: A sub-chunk is never made smaller than this by the memory estimate alone.
MIN_CHUNK_EVENTS = 1024

_INPUTS = (("events", np.int64), ("sides", np.int8), ("targets", np.float64),
           ("stops", np.float64))  # fmt: skip
_OUTPUTS = (("ints", np.int64), ("floats", np.float64), ("flags", np.int8))


@dataclass(frozen=True, eq=False)
class DevicePath:
    """A path resident on the device: the kernel's first eight arguments."""

    args: tuple  # t, open, high, low, close, blocks1, blocks2, blocks3
    owners: tuple  # the device arrays the kernel arguments view
    n: int
    nbytes: int


class _Slot:
    """One stream and its buffers: pinned staging on the host, arrays on the GPU."""

    def __init__(self, mem, stream, capacity: int) -> None:
        self.stream = stream
        self.capacity = capacity
        self.host_in = {name: mem.pinned(capacity, dt) for name, dt in _INPUTS}
        self.dev_in = {name: mem.empty(capacity, dt) for name, dt in _INPUTS}
        self.host_out = {name: mem.pinned(3 * capacity, dt) for name, dt in _OUTPUTS}
        self.dev_out = {name: mem.empty(3 * capacity, dt) for name, dt in _OUTPUTS}
        self.pending: tuple[int, int] | None = None  # batch columns in flight


class CudaBackend:
    """Runs :mod:`engine.gpu.kernels` on the current CUDA device (device 0).

    Device memory comes from CuPy's pool on a GPU, from numba.cuda under the
    simulator (see :mod:`engine.gpu.memory`). The batch's events are
    processed in sub-chunks over ``config.STREAMS`` streams.
    """

    name = "cuda"
    fallback_reason: str | None = None

    def __init__(self) -> None:
        from engine.gpu import probe

        usable, reason = probe()
        if not usable:
            raise DeviceError(f"the CUDA backend cannot run here: {reason}")

        from numba import cuda

        from engine.gpu import kernels, memory

        self._cuda = cuda
        self._kernels = kernels
        self.simulator = kernels.simulator_enabled()
        self.mem = memory.open_memory(self.simulator)
        self._slots: list[_Slot] = []
        self._device = self._describe_device()

    def _describe_device(self) -> str:
        import importlib.metadata

        try:
            numba_cuda = importlib.metadata.version("numba-cuda")
        except importlib.metadata.PackageNotFoundError:
            numba_cuda = "unknown"
        if self.simulator:
            return (
                f"CUDA simulator (NUMBA_ENABLE_CUDASIM=1, numba-cuda {numba_cuda}): "
                "correct but slow, for tests"
            )
        dev = self._cuda.get_current_device()
        cc = "{}.{}".format(*dev.compute_capability)
        name = dev.name.decode() if isinstance(dev.name, bytes) else dev.name
        return (
            f"CUDA device {dev.id}: {name} (compute capability {cc}), numba-cuda "
            f"{numba_cuda}, {self.mem.name} {self.mem.version}"
        )

    def describe(self) -> str:
        return self._device

    def load(self, path: PathArrays) -> DevicePath:
        """Copy the path and its block tables to the device, once."""
        host = (path.t, path.open, path.high, path.low, path.close,
                path.blocks1, path.blocks2, path.blocks3)  # fmt: skip
        nbytes = sum(int(a.nbytes) for a in host)
        free = self.mem.free_bytes()
        if nbytes > free:
            raise DeviceError(
                f"the price path needs {_gib(nbytes)} of GPU memory and only "
                f"{_gib(free)} is free; the whole path stays on the device, so "
                "use --device cpu for a series this long on this GPU"
            )

        stream = self.mem.stream()
        owners = tuple(self.mem.to_device(a, stream) for a in host)
        stream.synchronize()
        args = tuple(self.mem.kernel_arg(a) for a in owners)
        log.info("loaded %d bars (%s) onto %s", path.n, _gib(nbytes), self._device)
        return DevicePath(args, owners, path.n, nbytes)

    def label(self, handle: DevicePath, batch: EventBatch) -> RawLabels:
        """Label one batch against a loaded path; host numpy arrays come back."""
        if not isinstance(handle, DevicePath):
            raise TypeError("label() takes the handle that this backend's load() made")
        k = len(batch)
        out = RawLabels.empty(k)
        if k == 0:
            return out

        size = self.chunk_events(k)
        chunks = [(a, min(a + size, k)) for a in range(0, k, size)]
        slots = self._slots_for(size, min(len(chunks), max(1, config.STREAMS)))

        try:
            for j, (a, b) in enumerate(chunks):
                slot = slots[j % len(slots)]
                self._finish(slot, out)
                self._launch(slot, handle, batch, a, b)
            for slot in slots:
                self._finish(slot, out)
        except BaseException:
            self._abandon(slots)
            raise
        return out

    def chunk_events(self, k: int) -> int:
        """Events per sub-chunk for a batch of ``k``: memory, then the setting."""
        held = sum(s.capacity for s in self._slots) * BYTES_PER_EVENT
        budget = (self.mem.free_bytes() + held) * config.MEMORY_FRACTION
        streams = max(1, config.STREAMS)
        by_memory = max(MIN_CHUNK_EVENTS, int(budget // (BYTES_PER_EVENT * streams)))
        return max(1, min(k, config.CHUNK_EVENTS, by_memory))

    def _slots_for(self, size: int, count: int) -> list[_Slot]:
        """``count`` stream slots whose buffers hold ``size`` events each."""
        if self._slots and self._slots[0].capacity < size:
            self._slots = []  # regrow: the old buffers go back to the pool
        capacity = self._slots[0].capacity if self._slots else size
        try:
            while len(self._slots) < count:
                self._slots.append(_Slot(self.mem, self.mem.stream(), capacity))
        except Exception as exc:
            if "memory" not in type(exc).__name__.lower():
                raise
            raise DeviceError(
                f"cannot allocate {count} x {capacity:,} events of GPU buffers "
                f"({exc}); lower LABELER_CUDA_CHUNK_EVENTS or free GPU memory"
            ) from None
        return self._slots[:count]

    def _launch(
        self, slot: _Slot, handle: DevicePath, batch: EventBatch, a: int, b: int
    ) -> None:
        """Queue events a..b-1 on the slot's stream: copy up, run, copy down."""
        m = b - a
        mem, stream = self.mem, slot.stream
        inputs = []
        for name, _ in _INPUTS:
            values = getattr(batch, name)
            part = values[a:b] if values.shape[0] > 1 else values  # or one shared
            staged = slot.host_in[name][: part.shape[0]]
            staged[:] = part
            dev = slot.dev_in[name][: part.shape[0]]
            mem.upload(dev, staged, stream)
            inputs.append(mem.kernel_arg(dev))

        outputs = [mem.rows(slot.dev_out[name], m) for name, _ in _OUTPUTS]
        args = launch_args(
            handle.args, inputs, batch, [mem.kernel_arg(o) for o in outputs]
        )
        threads = config.THREADS_PER_BLOCK
        blocks = -(-m // threads)
        with warnings.catch_warnings():
            # numba warns of any grid under 128 blocks; the last sub-chunk of
            # a configuration is often that small, and that is fine.
            warnings.filterwarnings("ignore", message=r"Grid size \d+ will likely")
            launch = self._kernels.label_events[blocks, threads, stream.launch]
        launch(*args)

        for (name, _), dev in zip(_OUTPUTS, outputs, strict=True):
            mem.download(dev, slot.host_out[name][: 3 * m].reshape(3, m), stream)
        slot.pending = (a, b)

    def _finish(self, slot: _Slot, out: RawLabels) -> None:
        """Wait for the slot's sub-chunk in flight, then move its rows into out."""
        if slot.pending is None:
            return
        slot.stream.synchronize()
        a, b = slot.pending
        m = b - a
        for name, _ in _OUTPUTS:
            getattr(out, name)[:, a:b] = slot.host_out[name][: 3 * m].reshape(3, m)
        slot.pending = None

    def _abandon(self, slots: list[_Slot]) -> None:
        """After a failure: let the streams drain so no copy lands in reused memory."""
        for slot in slots:
            try:
                slot.stream.synchronize()
            except Exception:  # noqa: BLE001, S110 - the original error is re-raised
                pass
            slot.pending = None

    def close(self) -> None:
        """Wait for any work in flight, then hand the buffers back to the pool."""
        for slot in self._slots:
            slot.stream.synchronize()
        self._slots = []
        self.mem.release()


def launch_args(path_args, inputs, batch: EventBatch, outputs) -> tuple:
    """The kernel's arguments, in :func:`engine.rules.label_one`'s order.

    ``path_args``: t, open, high, low, close and the three block tables;
    ``inputs``: events, sides, targets, stops; ``outputs``: the (3, m) int64,
    float64 and int8 arrays. The scalars become exactly the types of
    :data:`engine.gpu.kernels.LABEL_EVENTS_SIGNATURE`: int64 and boolean.
    """
    return (
        *path_args, *inputs,
        int(batch.horizon_bars), int(batch.horizon_ticks),
        bool(batch.target_first), bool(batch.next_open),
        *outputs,
    )  # fmt: skip


def _gib(nbytes: float) -> str:
    if not math.isfinite(nbytes):
        return "unlimited"
    return f"{nbytes / 2**30:.2f} GiB"
