"""Check the engine's CPU kernels against the plain scan, bit for bit.

The unit tests compare the engine with the slow reference on short paths;
the chain kernels only show their corners (deep chains, run boundaries, the
sparse fallback, long windows) on longer ones. This script draws many seeded
paths and configurations, runs every CPU entry point and compares all nine
outputs of every event with :func:`benchmarks.common.plain_scan`, floats to
the bit.

    python -m benchmarks.check_kernels [--cases 300] [--seed 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.common import MINUTE, assert_same, plain_scan, scan_args
from engine import rules
from engine.backend import EventBatch, PathArrays, RawLabels
from engine.cpu import kernels

#: Barrier widths the configurations draw from; plateau paths sit on them.
WIDTHS = (0.001, 0.0025, 0.005, 0.01, 0.03, 0.2)


def draw_path(rng: np.random.Generator, n: int) -> PathArrays:
    """A random path: a walk, a coarse price grid, a constant series, or bars
    whose highs, lows and opens sit exactly on the barriers of an entry at 100.
    """
    kind = rng.choice(
        ["walk", "grid", "constant", "snapped", "plateau"], p=[0.3, 0.2, 0.1, 0.2, 0.2]
    )
    if kind == "plateau":
        c = np.full(n, 100.0)
        up = np.array([100.0] + [100.0 * (1.0 + f) for f in WIDTHS])
        down = np.array([100.0] + [100.0 * (1.0 - f) for f in WIDTHS])
        h = rng.choice(up, size=n, p=[0.9] + [0.1 / len(WIDTHS)] * len(WIDTHS))
        lo = rng.choice(down, size=n, p=[0.9] + [0.1 / len(WIDTHS)] * len(WIDTHS))
        o = np.where(rng.random(n) < 0.05, rng.choice(up[1:], size=n), c)
        o = np.where(rng.random(n) < 0.05, rng.choice(down[1:], size=n), o)
        h = np.maximum(h, o)
        lo = np.minimum(lo, o)
        steps = rng.choice([1, 2, 30], size=n).astype(np.int64) * MINUTE
        return PathArrays.build(1_000_000 + np.cumsum(steps), o, h, lo, c)
    vol = min(rng.choice([0.0005, 0.002, 0.02]), 1.0 / np.sqrt(n))
    if kind == "constant":
        c = np.full(n, 100.0)
        o, h, lo = c.copy(), c.copy(), c.copy()
    else:
        c = 100.0 * np.exp(np.cumsum(rng.normal(0.0, vol, n)))
        o = np.concatenate(([c[0]], c[:-1])) * np.exp(rng.normal(0.0, vol / 3, n))
        h = np.maximum(o, c) * np.exp(np.abs(rng.normal(0.0, vol, n)))
        lo = np.minimum(o, c) * np.exp(-np.abs(rng.normal(0.0, vol, n)))
        if kind == "grid":
            o, h, lo, c = (np.round(x * 4.0) / 4.0 for x in (o, h, lo, c))
            o, h, lo, c = (np.maximum(x, 0.25) for x in (o, h, lo, c))
    if kind == "snapped":
        # Highs, lows and opens exactly on an earlier bar's barrier prices.
        for f in (0.0025, 0.005, 0.01, 0.02):
            j = rng.integers(1, n, size=max(1, n // 20))
            back = np.maximum(j - rng.integers(1, 80, size=j.size), 0)
            h[j] = np.maximum(h[j], c[back] * (1.0 + f))
            lo[j] = np.minimum(lo[j], c[back] * (1.0 - f))
            g = rng.integers(1, n, size=max(1, n // 50))
            o[g] = c[np.maximum(g - 3, 0)] * (1.0 + f)
        h = np.maximum.reduce([h, o, c])
        lo = np.minimum.reduce([lo, o, c])
    steps = rng.choice([1, 1, 1, 2, 5, 30], size=n).astype(np.int64) * MINUTE
    t = 1_000_000 + np.cumsum(steps)
    return PathArrays.build(t, o, h, lo, c)


def draw_batch(rng: np.random.Generator, p: PathArrays) -> EventBatch:
    """A configuration with every optional feature drawn at random."""
    n = p.n
    next_open = bool(rng.random() < 0.2)
    last = n - 1 if next_open else n
    density = rng.choice(["all", "dense", "sparse", "few", "shuffled"])
    if density == "all":
        events = np.arange(last, dtype=np.int64)
    elif density == "shuffled":  # out of order, with repeats
        events = rng.integers(0, last, size=max(1, last // 2)).astype(np.int64)
    else:
        share = {"dense": 0.5, "sparse": 0.01, "few": 0.0}[density]
        size = max(1, int(last * share)) if share else int(rng.integers(1, 4))
        events = np.unique(rng.integers(0, last, size=size)).astype(np.int64)
    k = events.shape[0]

    def widths() -> np.ndarray:
        if rng.random() < 0.3:
            return rng.choice([0.0025, 0.01, 0.05], size=k) * rng.random(k) + 1e-4
        return np.array([rng.choice(WIDTHS)])

    if rng.random() < 0.2:
        sides = rng.choice(np.array([-1, 1], dtype=np.int8), size=k)
    else:
        sides = np.array([rng.choice([-1, 1])], dtype=np.int8)
    if rng.random() < 0.7:
        bars = int(rng.choice([1, 2, 3, 17, 60, 300, 1440, 5000, 10080, 2 * n]))
        ticks = 0
    else:
        bars = 0
        ticks = int(rng.choice([30, 60, 600, 3600, 86400, 7 * 86400]))
    return EventBatch(
        events=events,
        sides=sides,
        targets=widths(),
        stops=widths(),
        horizon_bars=bars,
        horizon_ticks=ticks,
        target_first=bool(rng.random() < 0.3),
        next_open=next_open,
    )


def args_of(p: PathArrays, b: EventBatch, out: RawLabels) -> tuple:
    return (
        p.t, p.open, p.high, p.low, p.close, p.blocks1, p.blocks2, p.blocks3,
        b.events, b.sides, b.targets, b.stops, b.horizon_bars, b.horizon_ticks,
        b.target_first, b.next_open, out.ints, out.floats, out.flags,
    )  # fmt: skip


def entry_points(p: PathArrays, b: EventBatch, rng: np.random.Generator):
    """(name, function filling an output) for every way the CPU labels events."""
    k = len(b)

    def runs(count: int, slots: int):
        def go(out: RawLabels) -> None:
            kernels._label_runs(*args_of(p, b, out), count, slots)

        return go

    def one_by_one(out: RawLabels) -> None:
        a = args_of(p, b, out)
        for j in range(k):
            rules.label_one(
                *a[:8], b.events[j], b.sides[j if b.sides.size > 1 else 0],
                b.targets[j if b.targets.size > 1 else 0],
                b.stops[j if b.stops.size > 1 else 0], *a[12:16], j, *a[16:],
            )  # fmt: skip

    yield "label_sequential", lambda out: kernels.label_sequential(*args_of(p, b, out))
    yield "label_parallel", lambda out: kernels.label_parallel(*args_of(p, b, out))
    count = int(rng.integers(1, max(2, min(k, 50))))
    yield f"{count} runs, 1 slot", runs(count, 1)
    yield f"{count} runs, 3 slots", runs(count, 3)
    yield f"{min(k, 7)} runs, 16 slots", runs(max(1, min(k, 7)), 16)
    if k <= 20_000:
        yield "label_one", one_by_one


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    opts = parser.parse_args()
    rng = np.random.default_rng(opts.seed)
    t0 = time.perf_counter()
    labels = 0
    for case in range(opts.cases):
        n = int(rng.choice([2, 3, 10, 100, 1000, 20_000, 200_000]))
        p = draw_path(rng, n)
        b = draw_batch(rng, p)
        ref = RawLabels.empty(len(b))
        plain_scan(*scan_args(p, b, ref))
        for name, fill in entry_points(p, b, rng):
            out = RawLabels.empty(len(b))
            fill(out)
            assert_same(out, ref, f"case {case} (n={n}, {name})")
            labels += len(b)
    print(
        f"{opts.cases} cases, {labels:,} labels: every CPU entry point equals the "
        f"plain scan bit for bit ({time.perf_counter() - t0:.0f} s)"
    )


if __name__ == "__main__":
    main()
