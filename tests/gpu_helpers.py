"""Paths and batches for the GPU tests, and the CPU-against-GPU comparison.

The paths are built to hit every corner of the contract on a few dozen bars:
prices on a coarse grid of 0.25 (so a high or low lands exactly on a barrier),
opens that gap far past the previous close, bars wide enough to touch both
barriers, and some highs, lows and opens set exactly onto the barrier prices
of an earlier bar's entry.
"""

from __future__ import annotations

import numpy as np

from engine.backend import EventBatch, PathArrays, RawLabels
from engine.rules import OUT_FIRST_STOP, OUT_FIRST_TARGET, OUT_LABEL

TICK = 0.25
FRACTIONS = (0.0025, 0.005, 0.01, 0.02)


def random_path(seed: int, n: int) -> PathArrays:
    """A path of ``n`` bars on a 0.25 grid around 100, with gaps, wide bars, ties."""
    rng = np.random.default_rng(seed)
    gap = np.where(rng.random(n) < 0.15, rng.integers(-24, 25, n), 0)
    move = rng.integers(-3, 4, n)
    close = 400 + np.cumsum(gap + move)
    close += max(0, 8 - int(min(close.min(), (close - move).min())))
    open_ = (close - move) * TICK
    close = close * TICK
    wide = rng.random(n) < 0.2
    up = np.where(wide, rng.integers(0, 24, n), rng.integers(0, 3, n))
    down = np.where(wide, rng.integers(0, 24, n), rng.integers(0, 3, n))
    high = np.maximum(open_, close) + up * TICK
    low = np.maximum(np.minimum(open_, close) - down * TICK, TICK)

    # Put some prices exactly on an earlier entry's barrier: ties and gaps.
    j = rng.choice(np.arange(1, n), size=max(1, n // 6), replace=False)
    i = np.maximum(j - rng.integers(1, 7, j.shape[0]), 0)
    sign = np.where(rng.random(j.shape[0]) < 0.5, 1.0, -1.0)
    price = close[i] * (1.0 + sign * rng.choice(np.array(FRACTIONS), j.shape[0]))
    column = rng.integers(0, 3, j.shape[0])
    at_high, at_low, at_open = j[column == 0], j[column == 1], j[column == 2]
    high[at_high] = np.maximum.reduce(
        [price[column == 0], open_[at_high], close[at_high]]
    )
    low[at_low] = np.minimum.reduce([price[column == 1], open_[at_low], close[at_low]])
    open_[at_open] = price[column == 2]
    high[at_open] = np.maximum(high[at_open], open_[at_open])
    low[at_open] = np.minimum(low[at_open], open_[at_open])

    steps = np.where(rng.random(n) < 0.1, 3600, 60).astype(np.int64)
    steps[0] = 0
    t = 1_700_000_000 + np.cumsum(steps)
    return PathArrays.build(t, open_, high, low, close)


def batch(
    path: PathArrays,
    *,
    side: int = 1,
    target: float = 0.01,
    stop: float = 0.01,
    horizon_bars: int = 0,
    horizon_ticks: int = 0,
    target_first: bool = False,
    next_open: bool = False,
    events: np.ndarray | None = None,
    per_event: np.random.Generator | None = None,
) -> EventBatch:
    """One configuration's batch; ``per_event`` draws a side, target, stop each."""
    last = path.n - 1 if next_open else path.n
    ev = np.arange(last, dtype=np.int64) if events is None else events
    ev = ev[ev < last]
    if per_event is None:
        sides = np.array([side], dtype=np.int8)
        targets = np.array([target])
        stops = np.array([stop])
    else:
        k = ev.shape[0]
        sides = per_event.choice(np.array([-1, 1], dtype=np.int8), size=k)
        targets = per_event.choice(np.array(FRACTIONS), size=k)
        stops = per_event.choice(np.array(FRACTIONS), size=k)
    return EventBatch(
        events=ev,
        sides=sides,
        targets=targets,
        stops=stops,
        horizon_bars=horizon_bars,
        horizon_ticks=horizon_ticks,
        target_first=target_first,
        next_open=next_open,
    )


def assert_same(gpu: RawLabels, cpu: RawLabels) -> None:
    """Every output equal, floats to the bit.

    The floats are compared bit for bit rather than within the tolerances of
    :mod:`tolerances`: both backends evaluate the same float64 formulas with
    no fastmath and no fused multiply-add (the PTX test checks the latter),
    and IEEE division, addition and multiplication are correctly rounded on
    both, so there is nothing that could move a bit.
    """
    np.testing.assert_array_equal(gpu.flags, cpu.flags, err_msg="label/flags")
    np.testing.assert_array_equal(gpu.ints, cpu.ints, err_msg="indexes")
    np.testing.assert_array_equal(
        gpu.floats.view(np.int64), cpu.floats.view(np.int64), err_msg="floats (bits)"
    )


def categories(path: PathArrays, b: EventBatch, raw: RawLabels) -> set[str]:
    """Which corners of the contract one batch's rows reached."""
    seen = set()
    labels = raw.flags[OUT_LABEL]
    for value, name in ((1, "target"), (-1, "stop"), (0, "timeout")):
        if np.any(labels == value):
            seen.add(name)
    if np.any(raw.flags[1] == 1):
        seen.add("ambiguous")
    if np.any(raw.flags[2] == 1):
        seen.add("truncated")
    ft, fs = raw.ints[OUT_FIRST_TARGET], raw.ints[OUT_FIRST_STOP]
    if np.any((ft >= 0) & (ft == fs) & (raw.flags[1] == 0)):
        seen.add("same bar, open beyond a barrier")
    for k, i in enumerate(b.events):
        x = raw.ints[0, k]
        if labels[k] == 0 or x <= i:
            continue
        s = int(b.sides[k if b.sides.shape[0] > 1 else 0])
        tgt = float(b.targets[k if b.targets.shape[0] > 1 else 0])
        stp = float(b.stops[k if b.stops.shape[0] > 1 else 0])
        e = path.open[i + 1] if b.next_open else path.close[i]
        prices = (e * (1.0 + tgt), e * (1.0 - stp)) if s > 0 else (
            e * (1.0 - tgt), e * (1.0 + stp))  # fmt: skip
        if path.high[x] in prices or path.low[x] in prices:
            seen.add("high or low exactly on a barrier")
        price = prices[0] if labels[k] > 0 else prices[1]
        if (path.open[x] - price) * s * labels[k] > 0:
            seen.add("gap through a barrier")
    return seen
