"""Shared pieces of the benchmarks: generated data, a plain scan, timing helpers.

``plain_scan`` is a second, independent implementation of the label contract
(``shared/spec/labels.md``): a straightforward compiled loop over every bar of
every window, with no block tables and no chains. The benchmarks time it as
the "plain compiled linear scan" and check that the engine's kernels give the
very same bits, so every benchmark run is also a correctness check on large,
realistic paths (the unit tests use short ones).
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from collections.abc import Callable

import numpy as np
from numba import njit, prange

from engine.backend import EventBatch, PathArrays, RawLabels

MINUTE = 60  # seconds, the tick of the generated timestamps


def random_walk(n: int, vol: float = 0.0007, seed: int = 7) -> PathArrays:
    """A seeded minute-bar random walk with ``vol`` per-bar volatility.

    Closes follow a Gaussian log-random walk from 100; each open sits a small
    gap away from the previous close, and highs and lows reach beyond the
    body by a half-normal amount. Timestamps are seconds, one minute apart,
    with a two-day gap every 7,200 bars (a weekend) so duration horizons and
    bar horizons differ.
    """
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, vol, n)))
    prev = np.concatenate(([100.0], close[:-1]))
    open_ = prev * np.exp(rng.normal(0.0, vol / 10.0, n))
    body_hi = np.maximum(open_, close)
    body_lo = np.minimum(open_, close)
    high = body_hi * np.exp(np.abs(rng.normal(0.0, vol / 2.0, n)))
    low = body_lo * np.exp(-np.abs(rng.normal(0.0, vol / 2.0, n)))
    steps = np.full(n, MINUTE, dtype=np.int64)
    steps[::7200] += 2 * 86400
    steps[0] = 0
    t = 1_700_000_000 + np.cumsum(steps)
    return PathArrays.build(t, open_, high, low, close)


def one_config(n: int, side: int, target: float, stop: float, horizon_bars: int = 0,
               horizon_ticks: int = 0, events: np.ndarray | None = None,
               target_first: bool = False) -> EventBatch:  # fmt: skip
    """An EventBatch labelling every bar (or ``events``) with one configuration."""
    return EventBatch(
        events=np.arange(n, dtype=np.int64) if events is None else events,
        sides=np.array([side], dtype=np.int8),
        targets=np.array([target], dtype=np.float64),
        stops=np.array([stop], dtype=np.float64),
        horizon_bars=horizon_bars,
        horizon_ticks=horizon_ticks,
        target_first=target_first,
        next_open=False,
    )


def kernel_args(p: PathArrays, b: EventBatch, out: RawLabels) -> tuple:
    """The argument tuple of the engine's CPU kernels."""
    return (
        p.t, p.open, p.high, p.low, p.close, p.blocks1, p.blocks2, p.blocks3,
        b.events, b.sides, b.targets, b.stops, b.horizon_bars, b.horizon_ticks,
        b.target_first, b.next_open, out.ints, out.floats, out.flags,
    )  # fmt: skip


def scan_args(p: PathArrays, b: EventBatch, out: RawLabels) -> tuple:
    """The argument tuple of :func:`plain_scan`."""
    return (
        p.t, p.open, p.high, p.low, p.close, b.events, b.sides, b.targets,
        b.stops, b.horizon_bars, b.horizon_ticks, b.target_first, b.next_open,
        out.ints, out.floats, out.flags,
    )  # fmt: skip


@njit(cache=True)
def scan_one(t, o, h, l, c, i, s, target, stop, horizon_bars, horizon_ticks,
             target_first, next_open):  # fmt: skip
    """One event by the contract, bar by bar: the seed-style per-candle function.

    Returns (exit, first_target, first_stop, ret, mfe, mae, label, ambiguous,
    truncated), -1 for an absent touch.
    """
    n = c.shape[0]
    if horizon_bars > 0:
        end = min(i + horizon_bars, n - 1)
        past = i + horizon_bars > n - 1
    else:
        end = i
        while end + 1 < n and t[end + 1] <= t[i] + horizon_ticks:
            end += 1
        past = t[i] + horizon_ticks > t[n - 1]
    e = o[i + 1] if next_open else c[i]
    if s > 0:
        tp = e * (1.0 + target)
        sp = e * (1.0 - stop)
    else:
        tp = e * (1.0 - target)
        sp = e * (1.0 + stop)

    ft = -1
    fs = -1
    for j in range(i + 1, end + 1):
        if ft < 0 and ((s > 0 and h[j] >= tp) or (s < 0 and l[j] <= tp)):
            ft = j
        if fs < 0 and ((s > 0 and l[j] <= sp) or (s < 0 and h[j] >= sp)):
            fs = j

    amb = False
    if ft < 0 and fs < 0:
        label, x = 0, end
    elif fs < 0 or (ft >= 0 and ft < fs):
        label, x = 1, ft
    elif ft < 0 or fs < ft:
        label, x = -1, fs
    else:
        x = ft
        if (s > 0 and o[x] >= tp) or (s < 0 and o[x] <= tp):
            label = 1
        elif (s > 0 and o[x] <= sp) or (s < 0 and o[x] >= sp):
            label = -1
        else:
            amb = True
            label = 1 if target_first else -1

    if label == 1:
        gap = (s > 0 and o[x] >= tp) or (s < 0 and o[x] <= tp)
        price = o[x] if gap else tp
    elif label == -1:
        gap = (s > 0 and o[x] <= sp) or (s < 0 and o[x] >= sp)
        price = o[x] if gap else sp
    elif end > i:
        price = c[end]
    else:
        price = e

    mfe = 0.0
    mae = 0.0
    if x > i:
        hi = h[i + 1]
        lo = l[i + 1]
        for j in range(i + 2, x + 1):
            hi = max(hi, h[j])
            lo = min(lo, l[j])
        if s > 0:
            mfe, mae = hi / e - 1.0, lo / e - 1.0
        else:
            mfe, mae = 1.0 - lo / e, 1.0 - hi / e
    ret = s * (price / e - 1.0)
    return x, ft, fs, ret, mfe, mae, label, amb, label == 0 and past


@njit(cache=True, parallel=True)
def plain_scan(t, o, h, l, c, events, sides, targets, stops, horizon_bars,
               horizon_ticks, target_first, next_open, out_i, out_f,
               out_b):  # fmt: skip
    """Every event by :func:`scan_one`, spread over the threads with prange."""
    for k in prange(events.shape[0]):
        s = sides[k] if sides.shape[0] > 1 else sides[0]
        tg = targets[k] if targets.shape[0] > 1 else targets[0]
        st = stops[k] if stops.shape[0] > 1 else stops[0]
        x, ft, fs, ret, mfe, mae, lab, amb, trunc = scan_one(
            t, o, h, l, c, events[k], s, tg, st, horizon_bars, horizon_ticks,
            target_first, next_open,
        )  # fmt: skip
        out_i[0, k] = x
        out_i[1, k] = ft
        out_i[2, k] = fs
        out_f[0, k] = ret
        out_f[1, k] = mfe
        out_f[2, k] = mae
        out_b[0, k] = lab
        out_b[1, k] = amb
        out_b[2, k] = trunc


def assert_same(a: RawLabels, b: RawLabels, what: str) -> None:
    """Every output equal, floats to the bit; the first difference otherwise."""
    for name in ("ints", "floats", "flags"):
        x, y = getattr(a, name), getattr(b, name)
        if name == "floats":
            x, y = x.view(np.int64), y.view(np.int64)
        bad = np.flatnonzero((x != y).any(axis=0))
        if bad.size:
            k = int(bad[0])
            raise AssertionError(
                f"{what}: {bad.size} events differ in {name}; first at column {k}: "
                f"{getattr(a, name)[:, k]} vs {getattr(b, name)[:, k]}"
            )


def best_of(fn: Callable[[], object], repeat: int, min_seconds: float = 0.0) -> float:
    """The shortest wall time of ``fn``, in seconds.

    Calls it ``repeat`` times, and keeps calling (up to 500 times) until
    ``min_seconds`` have passed: on a shared machine the best of many short
    trials is the one that ran with the cores to itself.
    """
    best = float("inf")
    start = time.perf_counter()
    for trial in range(500):
        if trial >= repeat and time.perf_counter() - start >= min_seconds:
            break
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def machine() -> str:
    """CPU model and core count, for the result headers."""
    model = platform.processor() or "unknown CPU"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"


def busy(seconds: float = 1.0) -> float:
    """The share of all CPUs busy over the next ``seconds`` (Linux /proc/stat)."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields) - idle, sum(fields)

    try:
        b0, t0 = sample()
        time.sleep(seconds)
        b1, t1 = sample()
    except OSError:
        return 0.0
    return (b1 - b0) / max(t1 - t0, 1)


def wait_quiet(max_wait: float, threshold: float = 0.1) -> str:
    """Wait up to ``max_wait`` s for the machine to fall idle; say what was seen.

    Other work on a 2-core machine halves a parallel measurement, so the
    benchmarks can wait for a quiet moment before they start.
    """
    deadline = time.monotonic() + max_wait
    share = busy()
    while share > threshold and time.monotonic() < deadline:
        share = busy(2.0)
    return f"{share:.0%} of the CPUs busy before the start"


def load() -> str:
    """The 1-minute load average, to judge how noisy a measurement was."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "n/a"


def add_timing_options(parser, min_seconds: bool = False) -> None:
    """The options every benchmark takes to cope with a shared, noisy machine."""
    if min_seconds:
        parser.add_argument(
            "--min-seconds",
            type=float,
            default=3.0,
            help="time each engine measurement for at least this long (best trial)",
        )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=0.0,
        help="wait up to this many seconds for the machine to fall idle first",
    )
