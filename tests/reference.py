"""A slow, plain reference for the label contract in ``shared/spec/labels.md``.

Written from the spec line by line, over Python floats (IEEE float64), with no
numba and no vectorisation, so that it is easy to check by reading. Every fast
backend is compared with it. Section names in the comments are the spec's.
"""

from __future__ import annotations

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
    return {
        "event_index": i,
        "label": label,
        "exit_index": x,
        "holding": x - i,  # Flags and times: holding = exit - i
        "ret": ret,
        "mfe": mfe,
        "mae": mae,
        "first_target": ft,
        "first_stop": fs,
        "ambiguous": ambiguous,
        "truncated": truncated(path, i, label, horizon_bars, horizon_ticks),
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
