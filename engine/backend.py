"""The interface every backend implements, and the arrays that cross it.

A backend receives a prepared price path once (:class:`PathArrays`), then
labels batches of events (:class:`EventBatch`) against it and returns the raw
kernel outputs (:class:`RawLabels`) as host numpy arrays. Event sampling,
per-event sides and volatility-scaled barriers all arrive as arrays here, so
no backend knows where they came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from engine import rules


@dataclass(frozen=True, eq=False)
class PathArrays:
    """A validated path and its block extremes, in the layout the kernels take."""

    t: np.ndarray  # int64 ticks
    open: np.ndarray  # float64, C-contiguous
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    blocks1: np.ndarray  # (2, n >> 4): max high, min low per 16 bars
    blocks2: np.ndarray  # (2, n >> 8)
    blocks3: np.ndarray  # (2, n >> 12)

    @classmethod
    def build(cls, t, open_, high, low, close) -> PathArrays:
        """Check dtypes and contiguity at the kernel boundary; build the blocks."""
        t = _exact(t, np.int64, "timestamps")
        prices = [
            _exact(a, np.float64, name)
            for a, name in (
                (open_, "open"),
                (high, "high"),
                (low, "low"),
                (close, "close"),
            )
        ]
        n = t.shape[0]
        if any(p.shape[0] != n for p in prices):
            raise ValueError("path arrays must all have the same length")
        o, h, lo, c = prices
        return cls(
            t, o, h, lo, c,
            rules.block_extremes(h, lo, rules.SHIFT1),
            rules.block_extremes(h, lo, rules.SHIFT2),
            rules.block_extremes(h, lo, rules.SHIFT3),
        )  # fmt: skip

    @property
    def n(self) -> int:
        return int(self.t.shape[0])


@dataclass(frozen=True, eq=False)
class EventBatch:
    """Events to label against one path with one configuration's rules.

    ``events`` are strictly increasing bar indexes (the CPU kernels rely on
    it; the CUDA kernel does not).

    ``sides``, ``targets`` and ``stops`` hold one value per event, or a single
    value shared by every event. Targets and stops are fractions of the entry
    price. ``horizon_bars`` > 0 selects a bar horizon, otherwise
    ``horizon_ticks`` is a duration in the path's time unit.
    """

    events: np.ndarray  # int64 bar indexes
    sides: np.ndarray  # int8, +1 / -1
    targets: np.ndarray  # float64
    stops: np.ndarray  # float64
    horizon_bars: int
    horizon_ticks: int
    target_first: bool
    next_open: bool

    def __post_init__(self) -> None:
        k = self.events.shape[0]
        for name, dtype in (
            ("events", np.int64),
            ("sides", np.int8),
            ("targets", np.float64),
            ("stops", np.float64),
        ):
            arr = _exact(getattr(self, name), dtype, name)
            if name != "events" and arr.shape[0] not in (1, k):
                raise ValueError(f"{name} must hold 1 or {k} values")
            object.__setattr__(self, name, arr)

    def __len__(self) -> int:
        return int(self.events.shape[0])


@dataclass(frozen=True, eq=False)
class RawLabels:
    """Kernel outputs, one column per event (rows as in :mod:`engine.rules`)."""

    ints: np.ndarray  # (3, k) int64: exit, first_target, first_stop (-1 = none)
    floats: np.ndarray  # (3, k) float64: ret, mfe, mae
    flags: np.ndarray  # (3, k) int8: label, ambiguous, truncated

    @classmethod
    def empty(cls, k: int) -> RawLabels:
        return cls(
            np.empty((3, k), dtype=np.int64),
            np.empty((3, k), dtype=np.float64),
            np.empty((3, k), dtype=np.int8),
        )


class Backend(Protocol):
    """What the engine needs from a device."""

    name: str

    def describe(self) -> str:
        """A one-line description: the device and how it is driven."""

    def load(self, path: PathArrays) -> object:
        """Make a path resident where the kernels run; returns a handle."""

    def label(self, handle: object, batch: EventBatch) -> RawLabels:
        """Label one batch of events against a loaded path."""

    def close(self) -> None:
        """Release whatever the backend holds."""


def _exact(arr, dtype, name: str) -> np.ndarray:
    """The array as ``dtype``, C-contiguous; refuse a lossy conversion."""
    a = np.asarray(arr)
    if a.dtype != dtype:
        if a.dtype.kind != np.dtype(dtype).kind:
            raise TypeError(f"{name}: expected {np.dtype(dtype)}, got {a.dtype}")
        a = a.astype(dtype)
    return np.ascontiguousarray(a)
