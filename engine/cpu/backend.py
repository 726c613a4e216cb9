"""The CPU backend: numba kernels over the events, sequential or threaded."""

from __future__ import annotations

import logging
import os

import numba
import numpy as np

from engine.backend import EventBatch, PathArrays, RawLabels
from engine.cpu import kernels

log = logging.getLogger(__name__)


class CpuBackend:
    """Runs :mod:`engine.cpu.kernels` on this machine's cores.

    ``threads=1`` runs the strictly sequential kernel; ``None`` uses every
    core numba sees; any other number caps numba's thread pool for the calls.
    """

    name = "cpu"
    fallback_reason: str | None = None

    def __init__(self, threads: int | None = None) -> None:
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        available = numba.config.NUMBA_NUM_THREADS
        self.threads = min(threads or available, available)

    def describe(self) -> str:
        mode = "sequential" if self.threads == 1 else f"{self.threads} threads"
        return f"CPU ({os.cpu_count()} cores, numba {numba.__version__}, {mode})"

    def load(self, path: PathArrays) -> PathArrays:
        return path

    def label(self, handle: PathArrays, batch: EventBatch) -> RawLabels:
        p = handle
        ev = batch.events
        if ev.shape[0] > 1 and np.any(ev[1:] <= ev[:-1]):
            raise ValueError("events must be strictly increasing bar indexes")
        out = RawLabels.empty(len(batch))
        args = (
            p.t, p.open, p.high, p.low, p.close, p.blocks1, p.blocks2, p.blocks3,
            batch.events, batch.sides, batch.targets, batch.stops,
            batch.horizon_bars, batch.horizon_ticks, batch.target_first,
            batch.next_open, out.ints, out.floats, out.flags,
        )  # fmt: skip
        if self.threads == 1:
            kernels.label_sequential(*args)
        else:
            previous = numba.get_num_threads()
            numba.set_num_threads(self.threads)
            try:
                kernels.label_parallel(*args)
            finally:
                numba.set_num_threads(previous)
        return out

    def close(self) -> None:
        pass
