"""CPU kernels: compiled loops over events, exactly equal to the per-candle rule.

``label_sequential`` is the strictly sequential kernel (``--threads 1``);
``label_parallel`` splits the events into contiguous runs and hands the runs
to numba's threads. Both give identical rows: every run is labelled by the
same deterministic code and every event writes only its own output column.

A run of dense events is labelled from its last event back to its first,
keeping two monotonic chains of the bars after the current event: the
records of the highs (each bar whose high exceeds every high before it, up
to the furthest window end) and the records of the lows. Stepping back one
bar pushes that bar onto both chains, amortised O(1). Along a chain both the
bar index and the record value are monotonic, so every question a label asks
is a search from the top of a chain that does not grow with the horizon:

- the first touch of the upper barrier (long target, short stop) is the
  first high record at or above it, the lower barrier the first low record
  at or below it, each over the whole window as the contract requires; a
  barrier beyond the window's extreme is known untouched in one comparison;
- the highest high up to the exit is the last high record at or before the
  exit, the lowest low likewise.

The values found are the bars' own highs and lows, so the excursions carry
the same bits as a bar-by-bar scan. Sparse events (many more bars to push
than events to label), and events out of order, take
:func:`engine.rules.label_one` one by one instead, whose block tables answer
the same questions without visiting every bar.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from engine.rules import barrier_prices, decide, label_one, window_end, write_row

#: Chain slots compared per step of a search or a push: chains are deeper in
#: long windows (about the square root of the window's length). The count
#: reaches the loops as an argument and they count over a slice, so that the
#: compiler vectorises them instead of unrolling scalar code with index checks.
SLOTS = 8
SLOTS_LONG = 16
LONG_WINDOW = 512
#: A run falls back to one-by-one labelling above this many bars per event.
SPARSE_BARS_PER_EVENT = 16
#: Runs handed out per thread by the parallel kernel (a busy core takes fewer).
RUNS_PER_THREAD = 4
#: A run holds at least this many events, and at least eight windows' worth.
MIN_RUN = 16384

_BIG = np.iinfo(np.int64).max


@njit(cache=True, inline="always")
def _pick(values, k):
    """A per-event value, or the one shared value when a single one is given."""
    return values[k] if values.shape[0] > 1 else values[0]


@njit(inline="always")
def _push_high(val, idx, top, bar, value, slots):
    """Push a bar on the high chain; returns (new top, top after the pops)."""
    while True:
        block = val[top : top + slots]
        popped = 0
        for q in range(block.shape[0]):
            popped += block[q] <= value
        top += popped
        if popped < slots:
            break
    val[top - 1] = value
    idx[top - 1] = bar
    return top - 1, top


@njit(inline="always")
def _push_low(val, idx, top, bar, value, slots):
    """Push a bar on the low chain; returns (new top, top after the pops)."""
    while True:
        block = val[top : top + slots]
        popped = 0
        for q in range(block.shape[0]):
            popped += block[q] >= value
        top += popped
        if popped < slots:
            break
    val[top - 1] = value
    idx[top - 1] = bar
    return top - 1, top


@njit(inline="always")
def _first_at_or_above(val, top, bnd, barrier, slots):
    """First high-chain slot in top..bnd-1 at or above ``barrier``; bnd if none."""
    if val[bnd - 1] < barrier:
        return bnd
    s = top
    while val[s + slots - 1] < barrier:
        s += slots
    block = val[s : s + slots]
    below = 0
    for q in range(block.shape[0]):
        below += block[q] < barrier
    return s + below


@njit(inline="always")
def _first_at_or_below(val, top, bnd, barrier, slots):
    """First low-chain slot in top..bnd-1 at or below ``barrier``; bnd if none."""
    if val[bnd - 1] > barrier:
        return bnd
    s = top
    while val[s + slots - 1] > barrier:
        s += slots
    block = val[s : s + slots]
    above = 0
    for q in range(block.shape[0]):
        above += block[q] > barrier
    return s + above


@njit(inline="always")
def _last_at_or_before(idx, top, x, slots):
    """The last chain slot from ``top`` whose bar is at or before bar ``x``."""
    s = top
    while idx[s + slots - 1] <= x:
        s += slots
    block = idx[s : s + slots]
    upto = 0
    for q in range(block.shape[0]):
        upto += block[q] <= x
    return s + upto - 1


@njit(inline="always")
def _window_end_from(t, i, n, horizon_bars, horizon_ticks, later_end):
    """:func:`engine.rules.window_end`, walking back from a later event's end.

    Events come in decreasing order, so a duration's end only moves back:
    amortised O(1) per event instead of a search.
    """
    if horizon_bars > 0:
        return window_end(t, i, n, horizon_bars, horizon_ticks)
    last = n - 1
    if horizon_ticks > t[last] - t[i]:
        return last, True
    limit = t[i] + horizon_ticks
    end = later_end
    while t[end] > limit:
        end -= 1
    return end, False


@njit(cache=True, nogil=True)
def _label_run(
    t, o, h, l, c, b1, b2, b3, events, sides, targets, stops,
    horizon_bars, horizon_ticks, target_first, next_open, out_i, out_f, out_b,
    first, last, slots,
):  # fmt: skip
    """Label events[first:last], a contiguous run, into their output columns."""
    if last <= first:
        return
    n = c.shape[0]
    limit, _ = window_end(t, events[last - 1], n, horizon_bars, horizon_ticks)
    span = limit - events[first]
    unsorted = False
    for k in range(first + 1, last):
        unsorted |= events[k] < events[k - 1]
    if unsorted or span > SPARSE_BARS_PER_EVENT * (last - first):
        for k in range(first, last):
            label_one(
                t, o, h, l, c, b1, b2, b3, events[k], _pick(sides, k),
                _pick(targets, k), _pick(stops, k), horizon_bars, horizon_ticks,
                target_first, next_open, k, out_i, out_f, out_b,
            )  # fmt: skip
        return

    # The chains fill from the back: slot top is the nearest bar. Past the
    # last slot, sentinels that no push pops and every search stops at.
    cap = max(span, 1)
    hval = np.empty(cap + slots, dtype=np.float64)
    hidx = np.empty(cap + slots, dtype=np.int64)
    lval = np.empty(cap + slots, dtype=np.float64)
    lidx = np.empty(cap + slots, dtype=np.int64)
    hval[cap:] = np.inf
    lval[cap:] = -np.inf
    hidx[cap:] = _BIG
    lidx[cap:] = _BIG
    htop = cap
    ltop = cap
    hbnd = cap  # first slot past the current window
    lbnd = cap
    bar = limit  # the next bar to push
    end = limit  # end() of the previous event, never before this one's

    for k in range(last - 1, first - 1, -1):
        i = events[k]
        while bar > i:
            htop, popped = _push_high(hval, hidx, htop, bar, h[bar], slots)
            hbnd = max(hbnd, popped)
            ltop, popped = _push_low(lval, lidx, ltop, bar, l[bar], slots)
            lbnd = max(lbnd, popped)
            bar -= 1
        end, past_data = _window_end_from(t, i, n, horizon_bars, horizon_ticks, end)
        while hbnd > htop and hidx[hbnd - 1] > end:
            hbnd -= 1
        while lbnd > ltop and lidx[lbnd - 1] > end:
            lbnd -= 1

        side = _pick(sides, k)
        e = o[i + 1] if next_open else c[i]
        target_price, stop_price = barrier_prices(
            e, side, _pick(targets, k), _pick(stops, k)
        )
        first_t = -1
        first_s = -1
        up = -1
        dn = -1
        ku = htop
        kd = ltop
        if end > i:
            upper = target_price if side > 0 else stop_price
            lower = stop_price if side > 0 else target_price
            ku = _first_at_or_above(hval, htop, hbnd, upper, slots)
            kd = _first_at_or_below(lval, ltop, lbnd, lower, slots)
            up = hidx[ku] if ku < hbnd else -1
            dn = lidx[kd] if kd < lbnd else -1
            first_t = up if side > 0 else dn
            first_s = dn if side > 0 else up
        label, x, ambiguous = decide(
            o, side, target_price, stop_price, end, first_t, first_s, target_first
        )

        # The extremes up to the exit: a touch at the exit is its own record.
        hi = 0.0
        lo = 0.0
        if x > i:
            if label == 0:
                hi = hval[hbnd - 1]
                lo = lval[lbnd - 1]
            else:
                if up != x:
                    ku = _last_at_or_before(hidx, htop, x, slots)
                if dn != x:
                    kd = _last_at_or_before(lidx, ltop, x, slots)
                hi = hval[ku]
                lo = lval[kd]
        write_row(
            o, c, i, side, e, target_price, stop_price, end, past_data, label, x,
            ambiguous, first_t, first_s, hi, lo, k, out_i, out_f, out_b,
        )  # fmt: skip


@njit(cache=True, nogil=True, parallel=True)
def _label_runs(
    t, o, h, l, c, b1, b2, b3, events, sides, targets, stops,
    horizon_bars, horizon_ticks, target_first, next_open, out_i, out_f, out_b,
    runs, slots,
):  # fmt: skip
    """Label every event, ``runs`` contiguous runs spread over numba's threads."""
    k = events.shape[0]
    for r in prange(runs):
        _label_run(
            t, o, h, l, c, b1, b2, b3, events, sides, targets, stops,
            horizon_bars, horizon_ticks, target_first, next_open, out_i, out_f,
            out_b, r * k // runs, (r + 1) * k // runs, slots,
        )  # fmt: skip


def label_sequential(
    t, o, h, l, c, b1, b2, b3, events, sides, targets, stops,
    horizon_bars, horizon_ticks, target_first, next_open, out_i, out_f, out_b,
):  # fmt: skip
    """Label every event in order on the calling thread, as a single run."""
    window = _window_length(t, events, horizon_bars, horizon_ticks)
    _label_run(
        t, o, h, l, c, b1, b2, b3, events, sides, targets, stops, horizon_bars,
        horizon_ticks, target_first, next_open, out_i, out_f, out_b, 0,
        events.shape[0], _slots(window),
    )  # fmt: skip


def label_parallel(
    t, o, h, l, c, b1, b2, b3, events, sides, targets, stops,
    horizon_bars, horizon_ticks, target_first, next_open, out_i, out_f, out_b,
):  # fmt: skip
    """Label every event, contiguous runs of events shared by numba's threads.

    Threads take runs one at a time as they finish the previous one, so a
    core busy with other work labels fewer runs.
    """
    window = _window_length(t, events, horizon_bars, horizon_ticks)
    runs = run_count(events.shape[0], window, numba.get_num_threads())
    with numba.parallel_chunksize(1):
        _label_runs(
            t, o, h, l, c, b1, b2, b3, events, sides, targets, stops,
            horizon_bars, horizon_ticks, target_first, next_open, out_i, out_f,
            out_b, runs, _slots(window),
        )  # fmt: skip


def run_count(events: int, window: int, threads: int) -> int:
    """How many runs to split ``events`` events into for ``threads`` threads.

    Every run pushes the bars of one window beyond its last event on top of
    its own, so a run is kept at least eight windows long.
    """
    smallest = max(MIN_RUN, 8 * window)
    return max(1, min(threads * RUNS_PER_THREAD, events // smallest))


def _window_length(t, events, horizon_bars, horizon_ticks) -> int:
    """Bars in the window of the first event: the horizon's length in bars."""
    if horizon_bars > 0 or events.shape[0] == 0:
        return int(horizon_bars)
    i = int(events[0])
    return int(np.searchsorted(t, t[i] + horizon_ticks, side="right")) - 1 - i


def _slots(window: int) -> int:
    return SLOTS_LONG if window >= LONG_WINDOW else SLOTS
