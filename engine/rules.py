"""The rule for one candle, written once for every backend.

These small ``@njit`` functions compute one triple-barrier label exactly as
``shared/spec/labels.md`` defines it. The CUDA kernel (``engine/gpu``) calls
:func:`label_one` from one thread per event. The CPU kernels (``engine/cpu``)
find the touches and extremes of dense events another way, then decide and
write each row with the same :func:`decide` and :func:`write_row`, and label
sparse events with :func:`label_one` itself. Nothing here uses
fastmath: every comparison that decides a label must give the same bits on
every backend, and no formula below pairs a multiply with an add, so a fused
multiply-add cannot change a result either.

Labels look forward in time. They are targets for a model, never features.

The scan over a window skips whole blocks of bars. For every aligned block of
16, 256 and 4,096 bars a table holds the block's highest high and lowest low;
a block that cannot touch any barrier still being searched is passed in one
step, and its extremes still count towards the excursions. The first touch
of each barrier and the extremes up to the exit are therefore found in at
most a few dozen steps whatever the horizon, and with exactly the values a
bar-by-bar scan would find.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Block sizes of the three skip levels: 16, 256 and 4,096 bars.
SHIFT1 = 4
SHIFT2 = 8
SHIFT3 = 12

# Rows of the kernel's output arrays.
OUT_EXIT, OUT_FIRST_TARGET, OUT_FIRST_STOP = 0, 1, 2  # int64 rows
OUT_RET, OUT_MFE, OUT_MAE = 0, 1, 2  # float64 rows
OUT_LABEL, OUT_AMBIGUOUS, OUT_TRUNCATED = 0, 1, 2  # int8 rows


@njit(cache=True)
def block_extremes(high, low, shift):
    """Highest high and lowest low of every whole aligned block of 2**shift bars.

    Returns a (2, n >> shift) float64 array: row 0 the maxima, row 1 the minima.
    """
    size = 1 << shift
    m = high.shape[0] >> shift
    out = np.empty((2, max(m, 1)), dtype=np.float64)
    out[0, 0] = -np.inf
    out[1, 0] = np.inf
    for b in range(m):
        hi = high[b * size]
        lo = low[b * size]
        for j in range(b * size + 1, (b + 1) * size):
            if high[j] > hi:
                hi = high[j]
            if low[j] < lo:
                lo = low[j]
        out[0, b] = hi
        out[1, b] = lo
    return out


@njit(inline="always")
def touches_target(hi, lo, side, target_price):
    """Whether a bar (or block) with this high and low touches the target."""
    if side > 0:
        return hi >= target_price
    return lo <= target_price


@njit(inline="always")
def touches_stop(hi, lo, side, stop_price):
    """Whether a bar (or block) with this high and low touches the stop."""
    if side > 0:
        return lo <= stop_price
    return hi >= stop_price


@njit(inline="always")
def window_end(t, i, n, horizon_bars, horizon_ticks):
    """end(i) and whether the vertical barrier lies past the data.

    A bar horizon is ``horizon_bars`` >= 1; otherwise ``horizon_ticks`` is a
    duration in the timestamps' unit and end(i) is the last bar within it,
    found by a galloping search forward from i.
    """
    last = n - 1
    if horizon_bars > 0:
        if horizon_bars > last - i:
            return last, True
        return i + horizon_bars, False
    if horizon_ticks > t[last] - t[i]:
        return last, True
    limit = t[i] + horizon_ticks
    # Gallop: find a bar past the limit, then bisect back to the last one within.
    lo = i
    step = 1
    hi = i + step
    while hi <= last and t[hi] <= limit:
        lo = hi
        step *= 2
        hi = i + step
    if hi > last:
        hi = last + 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if t[mid] <= limit:
            lo = mid
        else:
            hi = mid
    return lo, False


@njit(inline="always")
def entry_price(o, c, i, next_open):
    """e: the close of bar i, or the open of bar i+1 with ``next_open``."""
    if next_open:
        return o[i + 1]
    return c[i]


@njit(inline="always")
def _skip(bh, bl, side, need_t, need_s, target_price, stop_price):
    """Whether a block may be passed: it touches no barrier still searched for."""
    if need_t and touches_target(bh, bl, side, target_price):
        return False
    if need_s and touches_stop(bh, bl, side, stop_price):
        return False
    return True


@njit
def first_touches(high, low, b1, b2, b3, start, end, side, target_price, stop_price):
    """First target touch, first stop touch, highest high and lowest low to exit.

    Searches bars start..end (both included). Either touch is -1 when absent.
    The extremes cover start..exit, where exit is the earlier touch, or end.
    """
    first_t = -1
    first_s = -1
    hi = -np.inf
    lo = np.inf
    j = start
    while j <= end:
        need_t = first_t < 0
        need_s = first_s < 0
        if not need_t and not need_s:
            break
        before_exit = need_t and need_s
        if (j & 15) == 0 and j + 15 <= end:
            # Try the largest aligned block that starts here and fits the window.
            if (j & 4095) == 0 and j + 4095 <= end:
                bh = b3[0, j >> SHIFT3]
                bl = b3[1, j >> SHIFT3]
                if _skip(bh, bl, side, need_t, need_s, target_price, stop_price):
                    if before_exit:
                        hi = max(hi, bh)
                        lo = min(lo, bl)
                    j += 4096
                    continue
            if (j & 255) == 0 and j + 255 <= end:
                bh = b2[0, j >> SHIFT2]
                bl = b2[1, j >> SHIFT2]
                if _skip(bh, bl, side, need_t, need_s, target_price, stop_price):
                    if before_exit:
                        hi = max(hi, bh)
                        lo = min(lo, bl)
                    j += 256
                    continue
            bh = b1[0, j >> SHIFT1]
            bl = b1[1, j >> SHIFT1]
            if _skip(bh, bl, side, need_t, need_s, target_price, stop_price):
                if before_exit:
                    hi = max(hi, bh)
                    lo = min(lo, bl)
                j += 16
                continue
        hj = high[j]
        lj = low[j]
        if before_exit:
            hi = max(hi, hj)
            lo = min(lo, lj)
        if need_t and touches_target(hj, lj, side, target_price):
            first_t = j
        if need_s and touches_stop(hj, lj, side, stop_price):
            first_s = j
        j += 1
    return first_t, first_s, hi, lo


@njit(inline="always")
def barrier_prices(e, side, target, stop):
    """The target and stop prices of an entry at ``e`` (the contract's table)."""
    if side > 0:
        return e * (1.0 + target), e * (1.0 - stop)
    return e * (1.0 - target), e * (1.0 + stop)


@njit
def label_one(
    t, o, h, l, c, b1, b2, b3, i, side, target, stop,
    horizon_bars, horizon_ticks, target_first, next_open, k, out_i, out_f, out_b,
):  # fmt: skip
    """Label the event at bar ``i`` and write it to column ``k`` of the outputs.

    ``side`` is +1 or -1, ``target`` and ``stop`` are fractions of the entry
    price. With ``next_open`` the entry is the open of bar i+1 (the caller
    never passes the last bar then). Outputs: ``out_i`` int64 rows exit,
    first_target, first_stop (-1 for none); ``out_f`` float64 rows ret, mfe,
    mae; ``out_b`` int8 rows label, ambiguous, truncated.
    """
    n = c.shape[0]
    end, past_data = window_end(t, i, n, horizon_bars, horizon_ticks)
    if next_open:
        e = o[i + 1]
    else:
        e = c[i]
    target_price, stop_price = barrier_prices(e, side, target, stop)

    first_t, first_s, hi, lo = first_touches(
        h, l, b1, b2, b3, i + 1, end, side, target_price, stop_price
    )

    label, exit_bar, ambiguous = decide(
        o, side, target_price, stop_price, end, first_t, first_s, target_first
    )
    write_row(
        o, c, i, side, e, target_price, stop_price, end, past_data, label,
        exit_bar, ambiguous, first_t, first_s, hi, lo, k, out_i, out_f, out_b,
    )  # fmt: skip


@njit(inline="always")
def decide(o, side, target_price, stop_price, end, first_t, first_s, target_first):
    """The label, the exit bar and the ambiguous flag, from the first touches.

    ``first_t`` and ``first_s`` are the first touches in the window (-1 for
    none) and ``end`` is end(i).
    """
    if first_t < 0 and first_s < 0:
        return 0, end, False
    if first_s < 0 or (first_t >= 0 and first_t < first_s):
        return 1, first_t, False
    if first_t < 0 or first_s < first_t:
        return -1, first_s, False
    # Both first touched on the same bar: an open beyond a barrier came first.
    gap = o[first_t]
    if touches_target(gap, gap, side, target_price):
        return 1, first_t, False
    if touches_stop(gap, gap, side, stop_price):
        return -1, first_t, False
    return (1 if target_first else -1), first_t, True


@njit(inline="always")
def write_row(
    o, c, i, side, e, target_price, stop_price, end, past_data, label, exit_bar,
    ambiguous, first_t, first_s, hi, lo, k, out_i, out_f, out_b,
):  # fmt: skip
    """Exit price, return and excursions of a decided label, into column ``k``.

    ``hi`` and ``lo`` are the highest high and lowest low of bars i+1 up to
    the exit (unused when the window is empty).
    """
    # A gap through the barrier fills at the open, otherwise at the barrier.
    gap = o[exit_bar]
    if label == 1:
        if touches_target(gap, gap, side, target_price):
            exit_price = gap
        else:
            exit_price = target_price
    elif label == -1:
        if touches_stop(gap, gap, side, stop_price):
            exit_price = gap
        else:
            exit_price = stop_price
    elif end > i:
        exit_price = c[end]
    else:
        exit_price = e

    if exit_bar > i:
        if side > 0:
            mfe = hi / e - 1.0
            mae = lo / e - 1.0
        else:
            mfe = 1.0 - lo / e
            mae = 1.0 - hi / e
    else:
        mfe = 0.0
        mae = 0.0

    out_i[OUT_EXIT, k] = exit_bar
    out_i[OUT_FIRST_TARGET, k] = first_t
    out_i[OUT_FIRST_STOP, k] = first_s
    out_f[OUT_RET, k] = side * (exit_price / e - 1.0)
    out_f[OUT_MFE, k] = mfe
    out_f[OUT_MAE, k] = mae
    out_b[OUT_LABEL, k] = label
    out_b[OUT_AMBIGUOUS, k] = 1 if ambiguous else 0
    out_b[OUT_TRUNCATED, k] = 1 if (label == 0 and past_data) else 0
