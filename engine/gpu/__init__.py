"""The CUDA backend. numba.cuda and cupy are imported here only, lazily.

Importing this package costs nothing: :func:`probe` and :func:`report` import
numba.cuda (and CuPy) when called, and :class:`CudaBackend` and
:func:`compile_all` load their modules on first use.
"""

from __future__ import annotations

import importlib.metadata
import os
from typing import Any

__all__ = ["CudaBackend", "compile_all", "probe", "report"]

INSTALL_HINT = "install labeler[cuda] (CUDA 13 driver) or labeler[cuda12]"
SIMULATOR_REASON = (
    "CUDA simulator (NUMBA_ENABLE_CUDASIM=1): correct but slow, for tests"
)

# CuPy wheels are named after the toolkit they were built for.
_CUPY_DISTRIBUTIONS = ("cupy-cuda13x", "cupy-cuda12x", "cupy")


def _numba_cuda() -> tuple[Any, str | None]:
    """numba.cuda, or None and why it cannot be imported."""
    try:
        from numba import cuda
    except ImportError as exc:
        return (
            None,
            f"numba-cuda is not installed or incomplete ({exc}); {INSTALL_HINT}",
        )
    if not hasattr(cuda, "is_available"):
        # numba without numba-cuda ships a stub that cannot compile for CUDA.
        return None, f"numba-cuda is not installed; {INSTALL_HINT}"
    if not _simulator(cuda):
        try:
            importlib.metadata.version("numba-cuda")
        except importlib.metadata.PackageNotFoundError:
            # numba's own, deprecated CUDA target is not the one labeler runs on.
            return None, f"numba-cuda is not installed; {INSTALL_HINT}"
    return cuda, None


def _simulator(cuda: Any) -> bool:
    return bool(getattr(cuda.config, "ENABLE_CUDASIM", False))


def _driver_problem(cuda: Any) -> str | None:
    """Why the driver or the device cannot run kernels, or None when both can."""
    if cuda.is_available():
        return None
    from numba.cuda.cudadrv import driver as drv

    error = drv.driver.initialization_error
    if error:
        detail = " ".join(str(error).split())
        if "NO_DEVICE" in detail:
            return (
                "the NVIDIA driver is installed but sees no CUDA device "
                f"({detail}); check CUDA_VISIBLE_DEVICES, or in a container run "
                "it with --gpus all"
            )
        return (
            f"no usable NVIDIA driver ({detail}); install the NVIDIA driver "
            "(CUDA 12 or 13), or in a container run it with --gpus all"
        )
    try:
        from numba.cuda.cudadrv import nvvm

        if not nvvm.is_available():
            return f"the NVVM compiler is missing; {INSTALL_HINT}"
    except ImportError:
        return f"the NVVM compiler is missing; {INSTALL_HINT}"
    try:
        count = len(cuda.gpus)
    except Exception as exc:  # noqa: BLE001 - any failure here means no device
        return f"no CUDA device could be listed ({exc})"
    if count == 0:
        return (
            "no CUDA device was found; check CUDA_VISIBLE_DEVICES, or in a "
            "container run it with --gpus all"
        )
    return "CUDA reports no usable device; run `labeler doctor` for details"


def _driver_version(cuda: Any) -> tuple[int, int] | None:
    try:
        from numba.cuda.cudadrv import driver as drv

        return tuple(drv.driver.get_version())
    except Exception:  # noqa: BLE001 - no driver: no version to report
        return None


def _cupy_extra(cuda: Any) -> str:
    version = _driver_version(cuda)
    if version is not None and version[0] < 13:
        return f"labeler[cuda12] (cupy-cuda12x, this driver is CUDA {version[0]})"
    return "labeler[cuda] (cupy-cuda13x, CUDA 13 driver) or labeler[cuda12]"


def _cupy_problem(cuda: Any) -> str | None:
    """Why CuPy cannot serve the device memory, or None when it can."""
    try:
        import cupy
    except ImportError:
        return f"CuPy is not installed; install {_cupy_extra(cuda)}"
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return "CuPy sees no CUDA device; check CUDA_VISIBLE_DEVICES"
    except Exception as exc:  # noqa: BLE001 - CuPy's own runtime errors, reported
        return (
            f"CuPy cannot use the GPU ({' '.join(str(exc).split())}); its wheel "
            f"may not match the driver: install {_cupy_extra(cuda)}"
        )
    return None


def probe() -> tuple[bool, str]:
    """Whether the CUDA backend can run here, and why (not).

    Returns ``(True, description)`` on a usable GPU or under the CUDA simulator,
    ``(False, reason)`` otherwise, where the reason names what is missing and
    what to install or change.
    """
    cuda, problem = _numba_cuda()
    if cuda is None:
        return False, problem
    if _simulator(cuda):
        return True, SIMULATOR_REASON
    problem = _driver_problem(cuda) or _cupy_problem(cuda)
    if problem:
        return False, problem
    dev = cuda.get_current_device()
    cc = "{}.{}".format(*dev.compute_capability)
    return True, f"{_name(dev)} (compute capability {cc})"


def _name(dev: Any) -> str:
    name = dev.name
    return name.decode() if isinstance(name, bytes) else str(name)


def _version(*distributions: str) -> str | None:
    for dist in distributions:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def report() -> dict[str, Any]:
    """What ``labeler doctor`` shows about CUDA here.

    Keys: ``numba``, ``numba_cuda`` and ``cupy`` (versions, None when absent),
    ``simulator`` (NUMBA_ENABLE_CUDASIM is on), ``driver`` (the CUDA version the
    driver supports, as "13.0", or None), ``devices`` (one dict per device:
    ``id``, ``name``, ``compute_capability``, ``memory_gib``), ``usable`` and
    ``reason`` (as :func:`probe` gives them).
    """
    out: dict[str, Any] = {
        "numba": _version("numba"),
        "numba_cuda": _version("numba-cuda"),
        "cupy": _version(*_CUPY_DISTRIBUTIONS),
        "simulator": os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"),
        "driver": None,
        "devices": [],
    }
    usable, reason = probe()
    cuda, _ = _numba_cuda()
    if cuda is not None:
        out["simulator"] = _simulator(cuda)
        if not out["simulator"]:
            version = _driver_version(cuda)
            out["driver"] = "{}.{}".format(*version) if version else None
            if _driver_problem(cuda) is None:
                out["devices"] = _devices(cuda)
    out["usable"] = usable
    out["reason"] = reason
    return out


def _devices(cuda: Any) -> list[dict[str, Any]]:
    from numba.cuda.cudadrv import driver as drv

    found = []
    for dev in cuda.gpus:
        entry: dict[str, Any] = {
            "id": dev.id,
            "name": _name(dev),
            "compute_capability": "{}.{}".format(*dev.compute_capability),
        }
        try:
            total = drv.driver.cuDeviceTotalMem(dev.id)
            entry["memory_gib"] = round(int(total) / 2**30, 1)
        except Exception:  # noqa: BLE001 - memory size is optional information
            entry["memory_gib"] = None
        found.append(entry)
    return found


def __getattr__(name: str) -> Any:
    # The backend class and the compiler entry load numba.cuda: only on use.
    if name == "CudaBackend":
        from engine.gpu.backend import CudaBackend

        return CudaBackend
    if name == "compile_all":
        from engine.gpu.kernels import compile_all

        return compile_all
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
