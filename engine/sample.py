"""A deterministic, synthetic intraday series for first runs and examples.

The series is generated, not recorded: one-minute bars over regular US equity
sessions (09:30-16:00 New York time, 390 bars a day) with volatility that
clusters (a GARCH(1,1)-like variance), a U-shaped intraday volatility profile,
overnight gaps between sessions, and occasional wide bars that touch both a
take-profit and a stop-loss. The same seed always gives the same bars.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pyarrow as pa

from engine.config import Grid, load_grid

BARS_PER_DAY = 390
SAMPLE_DAYS = 250


def sample_table(days: int = SAMPLE_DAYS, seed: int = 20240102) -> pa.Table:
    """The bundled sample series: ``days`` sessions of one-minute OHLC bars."""
    rng = np.random.default_rng(seed)
    n = days * BARS_PER_DAY

    # Session minute timestamps in UTC for New York sessions (UTC-5 all year:
    # the sample ignores daylight saving, the time zone is kept for display).
    day_index = np.arange(n) // BARS_PER_DAY
    minute = np.arange(n) % BARS_PER_DAY
    weekdays = np.arange(days)
    calendar = weekdays + 2 * (weekdays // 5)  # skip weekends
    start = np.datetime64("2024-01-02T14:30", "m").astype(np.int64)
    minutes = start + calendar[day_index] * 1440 + minute
    ts = (minutes * 60_000_000_000).astype(np.int64)

    # Volatility: clustered variance times an intraday U shape.
    u = minute / (BARS_PER_DAY - 1)
    profile = 0.6 + 1.6 * (2 * u - 1) ** 2
    shocks = rng.standard_t(5, n) / np.sqrt(5 / 3)
    var = np.empty(n)
    v = 0.0006**2
    omega, alpha, beta = 2e-9, 0.08, 0.90
    for j in range(n):  # a short, one-off loop over a fixed-size sample
        var[j] = v
        v = omega + alpha * v * shocks[j] ** 2 + beta * v
    r = np.sqrt(var) * profile * shocks

    # Overnight gaps: each session opens away from the previous close.
    jump = np.zeros(n)
    first = minute == 0
    first[0] = False
    jump[first] = rng.normal(0.0, 0.006, first.sum())
    r[0] = 0.0
    log_close = np.log(100.0) + np.cumsum(jump + r)
    log_open = np.empty(n)
    log_open[0] = np.log(100.0)
    log_open[1:] = log_close[:-1] + jump[1:]
    opens, close = np.exp(log_open), np.exp(log_close)
    wick = np.abs(rng.normal(0.0, 1.0, (2, n))) * np.sqrt(var) * profile * 0.8
    wide = rng.random(n) < 0.002  # rare wide bars touch both barriers
    wick[:, wide] *= 25.0
    high = np.maximum(opens, close) * (1.0 + wick[0])
    low = np.minimum(opens, close) * (1.0 - wick[1])
    volume = rng.poisson(1000 * profile).astype(np.int64)

    tz_type = pa.timestamp("ns", tz="America/New_York")
    return pa.table({
        "timestamp": pa.array(ts).cast(tz_type),
        "open": np.round(opens, 4),
        "high": np.round(high, 4),
        "low": np.round(low, 4),
        "close": np.round(close, 4),
        "volume": volume,
    })  # fmt: skip


def default_grid_path() -> Path:
    """The bundled default grid file."""
    return Path(str(resources.files("engine.bundled") / "default_grid.toml"))


def default_grid() -> Grid:
    return load_grid(default_grid_path())
