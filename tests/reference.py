"""A slow, plain reference for the label contract in ``shared/spec/labels.md``.

Written from the spec line by line, over Python floats (IEEE float64), with no
numba and no vectorisation, so that it is easy to check by reading. Every fast
backend is compared with it. Section names in the comments are the spec's.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from fractions import Fraction

SIDES = {"long": 1, "short": -1}
RULES = ("stop_first", "target_first")


def reference_labels(
    t: Sequence[int],
    o: Sequence[float],
    h: Sequence[float],
    l: Sequence[float],  # noqa: E741 - the spec's name for the lows
    c: Sequence[float],
    *,
    side: str,
    target: float,
    stop: float,
    horizon_bars: int | None = None,
    horizon_ticks: int | Fraction | None = None,
    ambiguity: str = "stop_first",
    events: Iterable[int] | None = None,
) -> list[dict]:
    """Label each event of one path under one configuration, as the spec says.

    ``t`` holds int timestamps (ticks), ``o``/``h``/``l``/``c`` the prices.
    Exactly one of ``horizon_bars`` (H bars) and ``horizon_ticks`` (a duration
    D in ticks of ``t``; a ``Fraction`` for one that is not a whole number of
    ticks, compared exactly) is given. ``events`` are bar indexes (default: every
    bar). Returns one dict per event, keys as the output columns (without the
    timestamps): event_index, label, exit_index, holding, ret, mfe, mae,
    first_target, first_stop (int or None), ambiguous, truncated.
    """
    if side not in SIDES:
        raise ValueError(f"side must be long or short, got {side!r}")
    if ambiguity not in RULES:
        raise ValueError(f"ambiguity must be one of {RULES}, got {ambiguity!r}")
    if (horizon_bars is None) == (horizon_ticks is None):
        raise ValueError("give exactly one of horizon_bars and horizon_ticks")
    path = _Path(
        t=[int(x) for x in t],
        o=[float(x) for x in o],
        h=[float(x) for x in h],
        l=[float(x) for x in l],
        c=[float(x) for x in c],
    )
    if events is None:
        events = range(path.n)
    return [
        label_event(
            path,
            int(i),
            side=side,
            target=float(target),
            stop=float(stop),
            horizon_bars=horizon_bars,
            horizon_ticks=horizon_ticks,
            ambiguity=ambiguity,
        )
        for i in events
    ]


class _Path:
    """The price path as lists of Python ints and floats."""

    def __init__(self, t, o, h, l, c):  # noqa: E741
        self.t, self.o, self.h, self.l, self.c = t, o, h, l, c
        self.n = len(t)


def label_event(
    path: _Path,
    i: int,
    *,
    side: str,
    target: float,
    stop: float,
    horizon_bars: int | None,
    horizon_ticks: int | None,
    ambiguity: str,
) -> dict:
    """The output row of event ``i``."""
    s = SIDES[side]
    e = path.c[i]  # Entry and barriers: e = c[i]
    tgt, stp = barriers(e, s, target, stop)
    end = window_end(path, i, horizon_bars, horizon_ticks)

    ft = first_touch(path, i, end, lambda j: target_touched(path, j, s, tgt))
    fs = first_touch(path, i, end, lambda j: stop_touched(path, j, s, stp))
    label, x, ambiguous = decide(path, s, tgt, stp, end, ft, fs, ambiguity)

    price = exit_price(path, s, tgt, stp, e, i, end, label, x)
    ret = s * (price / e - 1.0)  # Exit price and return
    mfe, mae = excursions(path, s, e, i, x)
    flag = truncated(path, i, label, horizon_bars, horizon_ticks)
    return output_row(i, label, x, ret, mfe, mae, ft, fs, ambiguous, flag)


def output_row(i, label, x, ret, mfe, mae, ft, fs, ambiguous, flag) -> dict:
    """One row of the output columns; holding = exit - i (Flags and times)."""
    return {
        "event_index": i,
        "label": label,
        "exit_index": x,
        "holding": x - i,
        "ret": ret,
        "mfe": mfe,
        "mae": mae,
        "first_target": ft,
        "first_stop": fs,
        "ambiguous": ambiguous,
        "truncated": flag,
    }


def barriers(e: float, s: int, target: float, stop: float) -> tuple[float, float]:
    """(target price, stop price): long (U, L), short (T, S), in float64."""
    if s == 1:
        return e * (1.0 + target), e * (1.0 - stop)  # U, L
    return e * (1.0 - target), e * (1.0 + stop)  # T, S


def window_end(
    path: _Path, i: int, horizon_bars: int | None, horizon_ticks: int | None
) -> int:
    """end(i): the last bar of the window j = i+1 .. end(i)."""
    if horizon_bars is not None:
        return min(i + horizon_bars, path.n - 1)  # bar horizon H
    end = i  # duration D: the largest j with t[j] <= t[i] + D, at least i
    for j in range(i + 1, path.n):
        if path.t[j] <= path.t[i] + horizon_ticks:
            end = j
    return end


def target_touched(path: _Path, j: int, s: int, tgt: float) -> bool:
    """Touches: long h[j] >= U, short l[j] <= T."""
    return path.h[j] >= tgt if s == 1 else path.l[j] <= tgt


def stop_touched(path: _Path, j: int, s: int, stp: float) -> bool:
    """Touches: long l[j] <= L, short h[j] >= S."""
    return path.l[j] <= stp if s == 1 else path.h[j] >= stp


def first_touch(path: _Path, i: int, end: int, touched) -> int | None:
    """The smallest j in i+1 .. end where ``touched(j)``, or None (absent)."""
    for j in range(i + 1, end + 1):
        if touched(j):
            return j
    return None


def open_beyond_target(path: _Path, j: int, s: int, tgt: float) -> bool:
    """Long o[j] >= U, short o[j] <= T."""
    return path.o[j] >= tgt if s == 1 else path.o[j] <= tgt


def open_beyond_stop(path: _Path, j: int, s: int, stp: float) -> bool:
    """Long o[j] <= L, short o[j] >= S."""
    return path.o[j] <= stp if s == 1 else path.o[j] >= stp


def decide(
    path: _Path,
    s: int,
    tgt: float,
    stp: float,
    end: int,
    ft: int | None,
    fs: int | None,
    ambiguity: str,
) -> tuple[int, int, bool]:
    """The label: (label, exit bar x, ambiguous)."""
    if ft is None and fs is None:
        return 0, end, False  # neither touched: 0, exit at end(i)
    if fs is None or (ft is not None and ft < fs):
        return 1, ft, False  # the earlier one decides: the target
    if ft is None or fs < ft:
        return -1, fs, False  # the earlier one decides: the stop
    j = ft  # both first touched on the same bar j
    if open_beyond_target(path, j, s, tgt):
        return 1, j, False
    if open_beyond_stop(path, j, s, stp):
        return -1, j, False
    return (-1 if ambiguity == "stop_first" else 1), j, True


def exit_price(
    path: _Path,
    s: int,
    tgt: float,
    stp: float,
    e: float,
    i: int,
    end: int,
    label: int,
    x: int,
) -> float:
    """Exit price: the barrier, or the open when it gapped beyond it."""
    if label == 1:
        return path.o[x] if open_beyond_target(path, x, s, tgt) else tgt
    if label == -1:
        return path.o[x] if open_beyond_stop(path, x, s, stp) else stp
    if end == i:
        return e  # empty window
    return path.c[end]  # vertical barrier: c[end(i)]


def excursions(path: _Path, s: int, e: float, i: int, x: int) -> tuple[float, float]:
    """(mfe, mae) over bars i+1 .. x; both 0 when the window is empty."""
    if x == i:
        return 0.0, 0.0
    hi = max(path.h[j] for j in range(i + 1, x + 1))
    lo = min(path.l[j] for j in range(i + 1, x + 1))
    if s == 1:
        return hi / e - 1.0, lo / e - 1.0
    return 1.0 - lo / e, 1.0 - hi / e


def truncated(
    path: _Path,
    i: int,
    label: int,
    horizon_bars: int | None,
    horizon_ticks: int | None,
) -> bool:
    """A 0 whose vertical barrier lies past the end of the data."""
    if label != 0:
        return False
    if horizon_bars is not None:
        return i + horizon_bars > path.n - 1
    return path.t[i] + horizon_ticks > path.t[path.n - 1]


# ==========================================================================
# Beyond the basic label
# ==========================================================================
#
# The extensions of the spec's section "Beyond the basic label", written from
# it line by line in the same plain style. With none of them used,
# ``reference_labels_ext`` gives exactly the rows of ``reference_labels``.
#
# Readings of the spec where it leaves room (each mirrors the engine, and the
# tests that use this reference say so too):
#
# - next_open with a duration horizon whose end(i) == i (bar i+1 lies past
#   t[i] + D): the window i+1 .. end(i) is empty, so the basic contract gives
#   label 0, exit = end(i) = i, holding 0, exit price e = o[i+1], ret 0 and
#   mfe = mae = 0, not truncated (t[i+1] > t[i] + D means t[i] + D < t[n-1]).
# - next_open keeps end(i), truncated and holding measured from bar i (the
#   spec says only e and the window's first bar change).
# - "the open of bar i+1 is the entry, not a gap": with a positive fraction
#   o[i+1] = e is never beyond U, L, T or S, so the open rule needs no change.
#   A volatility fraction k * sigma[i] can be 0 (or round 1.0 + f to 1.0)
#   when the window's returns are all equal; the barriers then sit at e, and
#   the rules are applied literally (an open at e is "beyond" a barrier at e).
# - A finer bar that touches both barriers: its own open beyond a barrier
#   decides; otherwise the finer path cannot settle the bar and the scan stops
#   there (the configuration's rule stands; ambiguous stays true).
# - A settled bar: label, ambiguous, exit price (= the barrier touched first,
#   since the coarse open was beyond neither) and ret change; exit bar,
#   holding, mfe, mae, first_target, first_stop and truncated do not.

NO_EVENT = (0, None)


def cusum_reference(close: Sequence[float], h: float) -> list[int]:
    """The bars a symmetric CUSUM filter of threshold h flags (spec: Events)."""
    if not h > 0:
        raise ValueError(f"the CUSUM threshold must be > 0, got {h}")
    c = [float(x) for x in close]
    events = []
    s_pos = 0.0  # both starting at 0
    s_neg = 0.0
    for j in range(1, len(c)):
        r = math.log(c[j] / c[j - 1])  # r[j] = log(c[j] / c[j-1]) for j >= 1
        s_pos = max(0.0, s_pos + r)
        s_neg = min(0.0, s_neg + r)
        event = False
        if s_pos > h:  # then s_pos = 0
            s_pos = 0.0
            event = True
        if s_neg < -h:  # then s_neg = 0 (both reset when both cross)
            s_neg = 0.0
            event = True
        if event:
            events.append(j)
    return events


def events_from_times_reference(t: Sequence[int], times: Iterable[int]) -> list[int]:
    """Each event time maps to the last bar with t[i] <= it; sorted, unique.

    An event before the first bar raises ValueError naming it.
    """
    t = [int(x) for x in t]
    out = set()
    for k, time in enumerate(times):
        time = int(time)
        if time < t[0]:
            raise ValueError(f"event {k} at {time} is before the first bar ({t[0]})")
        last = 0
        for i in range(len(t)):
            if t[i] <= time:
                last = i
        out.add(last)
    return sorted(out)


def volatility_reference(close: Sequence[float], window: int) -> list[float | None]:
    """sigma[i]: sample std (ddof 1) of c[j] / c[j-1] - 1, j = i-W+1 .. i.

    None where it is not defined (i < W). Two passes over Python floats: the
    mean, then the squared deviations, summed in bar order.
    """
    if window < 2:
        raise ValueError(f"the volatility window needs at least 2 returns: {window}")
    c = [float(x) for x in close]
    sigma: list[float | None] = []
    for i in range(len(c)):
        if i < window:
            sigma.append(None)
            continue
        returns = [c[j] / c[j - 1] - 1.0 for j in range(i - window + 1, i + 1)]
        total = 0.0
        for r in returns:
            total += r
        mean = total / window
        dev = 0.0
        for r in returns:
            d = r - mean
            dev += d * d
        sigma.append(math.sqrt(dev / (window - 1)))
    return sigma


def reference_labels_ext(
    t: Sequence[int],
    o: Sequence[float],
    h: Sequence[float],
    l: Sequence[float],  # noqa: E741
    c: Sequence[float],
    *,
    side: str | Sequence[int | None],
    target: float | tuple[str, float],
    stop: float | tuple[str, float],
    horizon_bars: int | None = None,
    horizon_ticks: int | Fraction | None = None,
    ambiguity: str = "stop_first",
    entry: str = "close",
    vol_window: int = 100,
    events: Iterable[int] | None = None,
    fine: tuple[Sequence[int], Sequence[float], Sequence[float], Sequence[float]]
    | None = None,
    trace: set[str] | None = None,
) -> list[dict]:
    """The rows of one path under one configuration, with the extensions.

    ``side``: "long" / "short", or one value per bar (+1, -1; 0 or None: no
    event there), which adds ``meta_label`` to each row. ``target`` / ``stop``:
    a fraction, or ("vol", k) for k * sigma[i] over ``vol_window`` returns
    (events without sigma get no row). ``entry``: "close" or "next_open" (the
    last bar gets no row). ``events``: candidate bar indexes (default: every
    bar). ``fine``: (t, open, high, low) of a finer path (ticks: the same
    prices three times) that re-decides ambiguous bars. ``trace``, when given,
    collects the names of the extension rules the rows went through.
    """
    if ambiguity not in RULES:
        raise ValueError(f"ambiguity must be one of {RULES}, got {ambiguity!r}")
    if entry not in ("close", "next_open"):
        raise ValueError(f"entry must be close or next_open, got {entry!r}")
    if (horizon_bars is None) == (horizon_ticks is None):
        raise ValueError("give exactly one of horizon_bars and horizon_ticks")
    trace = set() if trace is None else trace
    path = _Path(
        t=[int(x) for x in t],
        o=[float(x) for x in o],
        h=[float(x) for x in h],
        l=[float(x) for x in l],
        c=[float(x) for x in c],
    )
    per_bar = not isinstance(side, str)
    if per_bar:
        sides = [None if v is None else int(v) for v in side]
        if len(sides) != path.n or any(v not in (1, -1, *NO_EVENT) for v in sides):
            raise ValueError("a side per bar must hold +1, -1, 0 or None")
    elif side not in SIDES:
        raise ValueError(f"side must be long or short, got {side!r}")
    sigma = None
    if _is_vol(target) or _is_vol(stop):
        sigma = volatility_reference(path.c, vol_window)
    fine_path = None if fine is None else [list(x) for x in fine]

    candidates = range(path.n) if events is None else sorted(set(events))
    rows = []
    for i in candidates:
        i = int(i)
        if entry == "next_open" and i == path.n - 1:
            trace.add("next_open: last bar, no row")
            continue  # the last bar has no next open
        if per_bar:
            if sides[i] in NO_EVENT:
                trace.add(f"side {sides[i]}: no event")
                continue
            s = sides[i]
            trace.add(f"side {s:+d}")
        else:
            s = SIDES[side]
        if sigma is not None and sigma[i] is None:
            trace.add("vol undefined: no row")
            continue
        if sigma is not None:
            trace.add("vol defined" if sigma[i] > 0 else "vol zero")
        tf = _fraction(target, sigma, i)
        sf = _fraction(stop, sigma, i)
        row = label_event_ext(
            path, i, s=s, target=tf, stop=sf, horizon_bars=horizon_bars,
            horizon_ticks=horizon_ticks, ambiguity=ambiguity, entry=entry,
            fine=fine_path, trace=trace,
        )  # fmt: skip
        if per_bar:
            row["meta_label"] = 1 if row["label"] == 1 else 0
        rows.append(row)
    return rows


def _is_vol(barrier) -> bool:
    return isinstance(barrier, tuple)


def _fraction(barrier, sigma, i: int) -> float:
    """The barrier's fraction at event i: as given, or k * sigma[i]."""
    if _is_vol(barrier):
        kind, k = barrier
        if kind != "vol":
            raise ValueError(f"a scaled barrier is ('vol', k), got {barrier!r}")
        return float(k) * sigma[i]
    return float(barrier)


def label_event_ext(
    path: _Path,
    i: int,
    *,
    s: int,
    target: float,
    stop: float,
    horizon_bars: int | None,
    horizon_ticks: int | Fraction | None,
    ambiguity: str,
    entry: str,
    fine: list[list] | None,
    trace: set[str],
) -> dict:
    """The row of event i with side s (+1 / -1) and fractions target, stop."""
    # Entry at the next bar's open: e = o[i+1]; the window is unchanged
    # (i+1 .. end(i)), so it starts at bar i+1 itself, its high and low counted.
    e = path.o[i + 1] if entry == "next_open" else path.c[i]
    tgt, stp = barriers(e, s, target, stop)
    end = window_end(path, i, horizon_bars, horizon_ticks)
    if entry == "next_open" and end == i:
        trace.add("next_open: empty window")

    ft = first_touch(path, i, end, lambda j: target_touched(path, j, s, tgt))
    fs = first_touch(path, i, end, lambda j: stop_touched(path, j, s, stp))
    label, x, ambiguous = decide(path, s, tgt, stp, end, ft, fs, ambiguity)
    price = exit_price(path, s, tgt, stp, e, i, end, label, x)
    if entry == "next_open" and label != 0 and x == i + 1:
        trace.add("next_open: entry bar touches")

    if ambiguous and fine is not None:
        # Resolving same-bar touches from a finer path.
        settled = fine_decision(path, fine, x, s, tgt, stp, trace)
        if settled != 0:
            label, ambiguous = settled, False
            price = tgt if settled == 1 else stp  # the coarse open was beyond neither

    ret = s * (price / e - 1.0)
    mfe, mae = excursions(path, s, e, i, x)
    flag = truncated(path, i, label, horizon_bars, horizon_ticks)
    return output_row(i, label, x, ret, mfe, mae, ft, fs, ambiguous, flag)


def fine_decision(
    path: _Path, fine: list[list], j: int, s: int, tgt: float, stp: float, trace
) -> int:
    """+1 / -1: the barrier the finer path touches first in bar j's span; 0: none.

    Bar j's span is [t[j], t[j+1]); the last bar's ends one bar spacing after
    its start, t[j] + (t[j] - t[j-1]). A finer bar touching both barriers is
    decided by its own open when that is beyond a barrier; otherwise the finer
    path cannot settle bar j (0).
    """
    ft, fo, fh, fl = fine
    start = path.t[j]
    if j + 1 < path.n:
        end = path.t[j + 1]
    else:
        end = path.t[j] + (path.t[j] - path.t[j - 1])
        trace.add("fine: last bar's span")
    inside = [m for m in range(len(ft)) if start <= ft[m] < end]
    if not inside:
        trace.add("fine: no points in the span")
    for m in inside:
        hit_t = fh[m] >= tgt if s == 1 else fl[m] <= tgt
        hit_s = fl[m] <= stp if s == 1 else fh[m] >= stp
        if hit_t and hit_s:
            if (fo[m] >= tgt) if s == 1 else (fo[m] <= tgt):
                trace.add("fine: settled by a fine open beyond the target")
                return 1
            if (fo[m] <= stp) if s == 1 else (fo[m] >= stp):
                trace.add("fine: settled by a fine open beyond the stop")
                return -1
            trace.add("fine: a fine bar touches both, unsettled")
            return 0
        if hit_t:
            trace.add("fine: settled, target first")
            return 1
        if hit_s:
            trace.add("fine: settled, stop first")
            return -1
    if inside:
        trace.add("fine: points touch neither, unsettled")
    return 0
