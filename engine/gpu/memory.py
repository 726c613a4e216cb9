"""Device memory for the CUDA backend: CuPy on a GPU, numba's under the simulator.

The backend moves data through one small interface, so its kernel path is the
same on both:

- :class:`CupyMemory` (real hardware): device arrays from CuPy's memory pool,
  pinned host buffers from CuPy's pinned pool, asynchronous copies on
  non-blocking CuPy streams. Kernels receive numba views of the CuPy arrays
  (``cuda.as_cuda_array(..., sync=False)``, no copy): numba would otherwise
  synchronize the stream each array was exported on, at every launch.
- :class:`NumbaMemory` (``NUMBA_ENABLE_CUDASIM=1``): numba.cuda device arrays,
  where CuPy cannot run. The simulator executes everything synchronously.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.errors import DeviceError


@dataclass(frozen=True)
class Stream:
    """A stream as its library knows it, and as a numba kernel launch takes it."""

    native: Any
    launch: Any

    def synchronize(self) -> None:
        self.native.synchronize()


class CupyMemory:
    """CuPy's pools and streams, with numba views for the kernel arguments."""

    name = "CuPy"

    def __init__(self) -> None:
        try:
            import cupy
            import cupyx
        except ImportError as exc:
            raise DeviceError(
                f"CuPy is not importable ({exc}); install labeler[cuda] "
                "(cupy-cuda13x, CUDA 13 drivers) or labeler[cuda12] (cupy-cuda12x)"
            ) from None
        from numba import cuda

        self._cp = cupy
        self._cpx = cupyx
        self._cuda = cuda
        self.version = cupy.__version__
        self.pool = cupy.get_default_memory_pool()
        self.pinned_pool = cupy.get_default_pinned_memory_pool()

    def stream(self) -> Stream:
        native = self._cp.cuda.Stream(non_blocking=True)
        return Stream(native, self._cuda.external_stream(native.ptr))

    def empty(self, shape, dtype) -> Any:
        return self._cp.empty(shape, dtype=dtype)

    def pinned(self, shape, dtype) -> np.ndarray:
        return self._cpx.empty_pinned(shape, dtype=dtype)

    def to_device(self, host: np.ndarray, stream: Stream) -> Any:
        dev = self._cp.empty(host.shape, dtype=host.dtype)
        dev.set(host, stream=stream.native)
        return dev

    def upload(self, dev: Any, host: np.ndarray, stream: Stream) -> None:
        dev.set(host, stream=stream.native)

    def download(self, dev: Any, host: np.ndarray, stream: Stream) -> None:
        dev.get(stream=stream.native, out=host, blocking=False)

    def kernel_arg(self, dev: Any) -> Any:
        return self._cuda.as_cuda_array(dev, sync=False)

    def rows(self, flat: Any, m: int) -> Any:
        """The first 3*m elements of a flat buffer as a C-contiguous (3, m) view."""
        return flat[: 3 * m].reshape(3, m)

    def free_bytes(self) -> int:
        free, _total = self._cp.cuda.runtime.memGetInfo()
        return int(free) + int(self.pool.free_bytes())

    def release(self) -> None:
        self.pool.free_all_blocks()
        self.pinned_pool.free_all_blocks()


class NumbaMemory:
    """numba.cuda's own arrays and streams (the simulator, where CuPy cannot run)."""

    name = "numba"

    def __init__(self) -> None:
        from numba import cuda

        self._cuda = cuda
        self.version = None

    def stream(self) -> Stream:
        native = self._cuda.stream()
        return Stream(native, native)

    def empty(self, shape, dtype) -> Any:
        return self._cuda.device_array(shape, dtype=dtype)

    def pinned(self, shape, dtype) -> np.ndarray:
        return self._cuda.pinned_array(shape, dtype=dtype)

    def to_device(self, host: np.ndarray, stream: Stream) -> Any:
        return self._cuda.to_device(host, stream=stream.native)

    def upload(self, dev: Any, host: np.ndarray, stream: Stream) -> None:
        dev.copy_to_device(host, stream=stream.native)

    def download(self, dev: Any, host: np.ndarray, stream: Stream) -> None:
        dev.copy_to_host(host, stream=stream.native)

    def kernel_arg(self, dev: Any) -> Any:
        return dev

    def rows(self, flat: Any, m: int) -> Any:
        """The first 3*m elements of a flat buffer as a C-contiguous (3, m) view."""
        view = flat[: 3 * m].reshape(3, m)
        if isinstance(view, np.ndarray):
            # The simulator's arrays reshape into plain numpy arrays: wrap the
            # view back into the simulator's class so it copies like the rest.
            view = type(flat)(view)
        return view

    def free_bytes(self) -> int:
        free, _total = self._cuda.current_context().get_memory_info()
        # The simulator reports infinite memory; the chunk setting bounds it.
        return int(free) if math.isfinite(free) else 1 << 62

    def release(self) -> None:
        pass


def open_memory(simulator: bool) -> CupyMemory | NumbaMemory:
    """CuPy memory on real hardware, numba's under the simulator."""
    return NumbaMemory() if simulator else CupyMemory()
