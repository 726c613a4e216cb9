"""One place that turns ``cpu`` / ``cuda`` / ``auto`` into a backend.

Every refusal says why and what to install or change. ``auto`` falls back to
the CPU with the reason recorded on the returned backend, so the caller can
say it once.
"""

from __future__ import annotations

import logging

from engine.backend import Backend
from engine.cpu.backend import CpuBackend
from engine.errors import DeviceError

log = logging.getLogger(__name__)

DEVICES = ("cpu", "cuda", "auto")


def resolve_device(device: str, *, threads: int | None = None) -> Backend:
    """The backend for ``device``.

    ``cuda`` raises :class:`DeviceError` naming the reason when CUDA cannot run
    here. ``auto`` returns the CUDA backend when it can run, else the CPU
    backend with ``fallback_reason`` set to why CUDA was not used.
    """
    if device not in DEVICES:
        raise DeviceError(f"unknown device {device!r}; use cpu, cuda or auto")
    if device == "cpu":
        return CpuBackend(threads)

    from engine import gpu  # imports nothing heavy until probed

    usable, reason = gpu.probe()
    if usable:
        return gpu.CudaBackend()
    if device == "cuda":
        raise DeviceError(f"--device cuda cannot run here: {reason}")
    log.info("device auto: using the CPU because %s", reason)
    backend = CpuBackend(threads)
    backend.fallback_reason = reason
    return backend
