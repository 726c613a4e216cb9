"""From a configuration and a path to the per-event arrays the kernels take.

Shared by every backend, so that a backend only ever differs inside its
kernel: which bars are events, each event's side, and each event's barrier
widths as fractions of its entry price are all decided here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from engine.backend import EventBatch
from engine.config import LabelConfig
from engine.data import Bars
from engine.errors import DataError


@dataclass(frozen=True, eq=False)
class EventPlan:
    """The events one configuration labels on one path, in bar order."""

    events: np.ndarray  # int64
    sides: np.ndarray  # int8, one per event or one shared
    targets: np.ndarray  # float64, one per event or one shared
    stops: np.ndarray  # float64, one per event or one shared
    horizon_bars: int
    horizon_ticks: int
    target_first: bool
    next_open: bool
    skipped: int = 0  # candidate events that produce no row under this config
    meta: bool = False  # the input has a side column: add the meta_label column

    def __len__(self) -> int:
        return int(self.events.shape[0])

    def batch(self, start: int, stop: int) -> EventBatch:
        """The events at positions start..stop-1 as one kernel batch."""

        def part(values: np.ndarray) -> np.ndarray:
            return values if values.shape[0] == 1 else values[start:stop]

        return EventBatch(
            events=self.events[start:stop],
            sides=part(self.sides),
            targets=part(self.targets),
            stops=part(self.stops),
            horizon_bars=self.horizon_bars,
            horizon_ticks=self.horizon_ticks,
            target_first=self.target_first,
            next_open=self.next_open,
        )


def check_config(bars: Bars, config: LabelConfig) -> int:
    """Refuse a configuration that cannot run on ``bars``; cheap, computes nothing.

    Returns the horizon in ticks (0 for a bar horizon). Runs before anything is
    written, so a refused run leaves no output behind.
    """
    if config.side == "column" and bars.side is None:
        raise DataError(
            f'{bars.source}: side = "column" needs a side column; name it '
            'in the grid\'s [columns] table as side = "<column>"'
        )
    horizon = config.horizon
    return 0 if horizon.bars else bars.ticks(horizon.seconds)


def plan_events(
    bars: Bars, config: LabelConfig, events: np.ndarray | None = None
) -> EventPlan:
    """Resolve the events, sides and barrier widths of ``config`` on ``bars``.

    ``events`` are candidate bar indexes (sorted, unique); ``None`` means every
    bar. Candidates that cannot produce a row under ``config`` are dropped and
    counted in ``skipped``.
    """
    horizon_ticks = check_config(bars, config)
    n = bars.n
    if events is None:
        events = _every_bar(n)
    candidates = len(events)
    keep = np.ones(len(events), dtype=bool)

    if config.entry == "next_open":
        keep &= events < n - 1  # the last bar has no next open

    if config.side == "column":
        side_all = bars.side[events]
        keep &= side_all != 0
    else:
        side_all = None

    target = np.array([config.target.value], dtype=np.float64)
    stop = np.array([config.stop.value], dtype=np.float64)
    if config.uses_vol:
        sigma = volatility(bars.close, config.vol_window)[events]
        keep &= np.isfinite(sigma)
        if config.target.vol:
            target = config.target.value * sigma
        if config.stop.vol:
            stop = config.stop.value * sigma

    if not keep.all():
        events = events[keep]
    sides = (
        side_all[keep].astype(np.int8)
        if side_all is not None
        else np.array([1 if config.side == "long" else -1], dtype=np.int8)
    )
    if target.shape[0] > 1 and len(events) < candidates:
        target = target[keep]
    if stop.shape[0] > 1 and len(events) < candidates:
        stop = stop[keep]
    horizon = config.horizon
    return EventPlan(
        events=np.ascontiguousarray(events, dtype=np.int64),
        sides=np.ascontiguousarray(sides),
        targets=np.ascontiguousarray(target),
        stops=np.ascontiguousarray(stop),
        horizon_bars=horizon.bars or 0,
        horizon_ticks=horizon_ticks,
        target_first=config.ambiguity == "target_first",
        next_open=config.entry == "next_open",
        skipped=candidates - int(events.shape[0]),
        meta=bars.side is not None,
    )


_EVERY: dict[int, np.ndarray] = {}


def _every_bar(n: int) -> np.ndarray:
    """0..n-1, read-only and shared, so every configuration reuses one array."""
    found = _EVERY.get(n)
    if found is None:
        _EVERY.clear()
        found = np.arange(n, dtype=np.int64)
        found.flags.writeable = False
        _EVERY[n] = found
    return found


def volatility(close: np.ndarray, window: int) -> np.ndarray:
    """sigma[i]: sample std (ddof 1) of the simple returns of bars i-W+1..i.

    NaN where fewer than ``window`` returns exist (i < W). Uses no bar after i.
    """
    return _rolling_std(np.ascontiguousarray(close, dtype=np.float64), window)


@njit(cache=True, parallel=True)
def _rolling_std(close, window):
    """Two-pass sample std of each window of returns ending at bar i."""
    n = close.shape[0]
    sigma = np.full(n, np.nan)
    for i in prange(window, n):
        total = 0.0
        for j in range(i - window + 1, i + 1):
            total += close[j] / close[j - 1] - 1.0
        mean = total / window
        dev = 0.0
        for j in range(i - window + 1, i + 1):
            d = (close[j] / close[j - 1] - 1.0) - mean
            dev += d * d
        sigma[i] = np.sqrt(dev / (window - 1))
    return sigma
