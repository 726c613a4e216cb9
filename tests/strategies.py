"""Hypothesis strategies: random valid bar paths and label configurations.

The paths are built to hit the contract's corners often: prices on a coarse
grid around 100 (so a high lands exactly on a barrier), opens that gap far
beyond the previous close, wide bars that touch both barriers, constant
series, horizons past the end of the data, and highs, lows, opens or closes
snapped exactly onto an earlier bar's barrier price.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from hypothesis import strategies as st
from reference import barriers, reference_labels

from engine import LabelConfig, label
from engine.data import Bars, bars_from_arrays

FRACTIONS = (0.0025, 0.005, 0.01, 0.02, 0.05)
TICK = 0.25  # the coarse price grid
MAX_BARS = 60


@dataclass(frozen=True)
class Case:
    """One price path and one label configuration, in reference terms."""

    t: np.ndarray
    o: np.ndarray
    h: np.ndarray
    l: np.ndarray  # noqa: E741
    c: np.ndarray
    side: str
    target: float
    stop: float
    ambiguity: str
    horizon_bars: int | None = None
    horizon_ticks: int | None = None
    horizon_text: str | None = None  # the duration as the engine takes it

    @property
    def n(self) -> int:
        return len(self.t)

    @property
    def horizon(self) -> int | str:
        """The horizon as a LabelConfig takes it: bars, or a duration string."""
        return self.horizon_bars if self.horizon_bars is not None else self.horizon_text

    def reference(self, events=None) -> list[dict]:
        """The reference rows for this case."""
        return reference_labels(
            self.t,
            self.o,
            self.h,
            self.l,
            self.c,
            side=self.side,
            target=self.target,
            stop=self.stop,
            horizon_bars=self.horizon_bars,
            horizon_ticks=self.horizon_ticks,
            ambiguity=self.ambiguity,
            events=events,
        )


def bar_counts() -> st.SearchStrategy[int]:
    """n >= 2 (the engine refuses fewer), weighted toward tiny paths."""
    return st.one_of(st.just(2), st.integers(2, 8), st.integers(2, MAX_BARS))


@st.composite
def timestamps(draw, n: int) -> np.ndarray:
    """Strictly increasing int64 ticks with irregular spacing."""
    start = draw(st.integers(0, 10**6))
    step = st.one_of(st.integers(1, 5), st.integers(6, 400))
    steps = draw(st.lists(step, min_size=n - 1, max_size=n - 1))
    return np.cumsum([start, *steps], dtype=np.int64)


@st.composite
def grid_prices(draw, n: int) -> tuple[np.ndarray, ...]:
    """OHLC on a grid of 0.25 around 100, with gaps and wide bars."""
    move = st.integers(-4, 4)
    gap = st.one_of(st.just(0), st.just(0), st.integers(-40, 40))
    reach = st.one_of(st.integers(0, 4), st.integers(0, 40))
    ticks = [400 + draw(st.sampled_from([0, 0, 0, -2, 3]))]  # c[0], often 100
    opens = [ticks[0] + draw(gap)]
    for _ in range(1, n):
        opens.append(max(ticks[-1] + draw(gap), 4))
        ticks.append(max(opens[-1] + draw(move), 4))
    o = np.array(opens, dtype=np.float64) * TICK
    c = np.array(ticks, dtype=np.float64) * TICK
    up = np.array([draw(reach) for _ in range(n)], dtype=np.float64) * TICK
    down = np.array([draw(reach) for _ in range(n)], dtype=np.float64) * TICK
    h = np.maximum(o, c) + up
    l = np.maximum(np.minimum(o, c) - down, TICK)  # noqa: E741
    return o, h, l, c


@st.composite
def float_prices(draw, n: int) -> tuple[np.ndarray, ...]:
    """OHLC as arbitrary float64 values: a random walk with gaps."""
    small = st.floats(-0.03, 0.03, allow_nan=False, allow_infinity=False)
    gap = st.one_of(st.just(0.0), small, st.floats(-0.1, 0.1))
    reach = st.floats(0.0, 0.04, allow_nan=False, allow_infinity=False)
    c = [draw(st.floats(1.0, 1000.0))]
    o = [c[0] * (1.0 + draw(gap))]
    for _ in range(1, n):
        o.append(c[-1] * (1.0 + draw(gap)))
        c.append(o[-1] * (1.0 + draw(small)))
    o, c = np.array(o), np.array(c)
    up = np.array([draw(reach) for _ in range(n)])
    down = np.array([draw(reach) for _ in range(n)])
    return o, np.maximum(o, c) * (1.0 + up), np.minimum(o, c) * (1.0 - down), c


@st.composite
def constant_prices(draw, n: int) -> tuple[np.ndarray, ...]:
    """Every price equal."""
    p = np.full(n, draw(st.sampled_from([100.0, 1.0, 0.37, 12345.678])))
    return p, p.copy(), p.copy(), p.copy()


def fractions(upper: float) -> st.SearchStrategy[float]:
    """A barrier fraction: a round value that makes touches likely, or any."""
    return st.one_of(
        st.sampled_from(FRACTIONS),
        st.floats(1e-4, upper, allow_nan=False, allow_infinity=False),
    )


@st.composite
def snap_to_barriers(draw, prices, side: str, target: float, stop: float):
    """Put some opens, highs, lows or closes exactly on an earlier barrier."""
    o, h, l, c = (a.copy() for a in prices)  # noqa: E741
    bars = draw(st.lists(st.integers(1, len(c) - 1), max_size=4, unique=True))
    s = 1 if side == "long" else -1
    for j in sorted(bars):
        k = draw(st.integers(max(0, j - 5), j - 1))
        price = draw(st.sampled_from(barriers(c[k], s, target, stop)))
        column = draw(st.sampled_from([o, h, l, c]))
        column[j] = price
        h[j] = max(h[j], o[j], c[j])
        l[j] = min(l[j], o[j], c[j])
    return o, h, l, c


@st.composite
def horizons(draw, t: np.ndarray, kind: str | None = None) -> dict:
    """A bar horizon 1 .. n+3, or a duration (ticks of unit s) as "Ns" or "Nm".

    ``kind`` "bars" or "duration" fixes which; the default draws either.
    """
    n = len(t)
    kind = kind or draw(st.sampled_from(["bars", "duration"]))
    if kind == "bars":
        bars = st.one_of(st.integers(1, 4), st.integers(1, n + 3))
        return {"horizon_bars": draw(bars)}
    span = int(t[-1] - t[0])
    if draw(st.integers(0, 4)) == 0:
        minutes = draw(st.integers(1, max(1, span // 60 + 2)))
        return {"horizon_ticks": 60 * minutes, "horizon_text": f"{minutes}m"}
    seconds = draw(st.one_of(st.integers(1, 10), st.integers(1, span + 20)))
    return {"horizon_ticks": seconds, "horizon_text": f"{seconds}s"}


@st.composite
def cases(draw, *, side: str | None = None, horizon: str | None = None) -> Case:
    """A random path and configuration; ``side`` and ``horizon`` kind can be fixed."""
    n = draw(bar_counts())
    t = draw(timestamps(n))
    kind = draw(st.sampled_from(["grid", "grid", "float", "constant"]))
    prices = {"grid": grid_prices, "float": float_prices, "constant": constant_prices}
    side = side or draw(st.sampled_from(["long", "short"]))
    target = draw(fractions(0.2))
    stop = draw(fractions(0.5))
    ohlc = draw(prices[kind](n))
    if kind != "constant":
        ohlc = draw(snap_to_barriers(ohlc, side, target, stop))
    return Case(
        t,
        *ohlc,
        side=side,
        target=target,
        stop=stop,
        ambiguity=draw(st.sampled_from(["stop_first", "target_first"])),
        **draw(horizons(t, horizon)),
    )


def case_bars(case: Case) -> Bars:
    """The case's path as engine Bars (timestamps of unit s)."""
    return bars_from_arrays(
        case.t, case.o, case.h, case.l, case.c, time_type=pa.timestamp("s")
    )


def case_config(case: Case) -> LabelConfig:
    """The case's configuration as an engine LabelConfig."""
    return LabelConfig(
        side=case.side,
        target=case.target,
        stop=case.stop,
        horizon=case.horizon,
        ambiguity=case.ambiguity,
    )


def engine_rows(case: Case, *, float64: bool = True) -> list[dict]:
    """The engine's output for the case, as one dict per row."""
    return label(case_bars(case), case_config(case), float64=float64).to_pylist()


def random_walk(rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    """A seeded path of n bars (t in seconds, 1..119 apart): long-path tests."""
    c = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.002, n)))
    o = np.r_[c[0], c[:-1]]
    h = np.maximum(o, c) * (1.0 + rng.exponential(0.001, n))
    l = np.minimum(o, c) * (1.0 - rng.exponential(0.001, n))  # noqa: E741
    t = np.cumsum(rng.integers(1, 120, n)).astype(np.int64)
    return t, o, h, l, c
