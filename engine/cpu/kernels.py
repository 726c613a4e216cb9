"""CPU kernels: compiled loops over events around the shared per-candle rule.

``label_sequential`` is the strictly sequential kernel (``--threads 1``);
``label_parallel`` spreads the events over numba's threads with ``prange``.
Both call :func:`engine.rules.label_one` and give identical rows: every event
is independent and writes only its own output column.
"""

from __future__ import annotations

from numba import njit, prange

from engine.rules import label_one


@njit(cache=True, inline="always")
def _pick(values, k):
    """A per-event value, or the one shared value when a single one is given."""
    return values[k] if values.shape[0] > 1 else values[0]


@njit(cache=True, nogil=True)
def label_sequential(
    t, o, h, l, c, b1, b2, b3, events, sides, targets, stops,
    horizon_bars, horizon_ticks, target_first, next_open, out_i, out_f, out_b,
):  # fmt: skip
    """Label every event in order, one after the other, on the calling thread."""
    for k in range(events.shape[0]):
        label_one(
            t, o, h, l, c, b1, b2, b3, events[k], _pick(sides, k),
            _pick(targets, k), _pick(stops, k), horizon_bars, horizon_ticks,
            target_first, next_open, k, out_i, out_f, out_b,
        )  # fmt: skip


@njit(cache=True, nogil=True, parallel=True)
def label_parallel(
    t, o, h, l, c, b1, b2, b3, events, sides, targets, stops,
    horizon_bars, horizon_ticks, target_first, next_open, out_i, out_f, out_b,
):  # fmt: skip
    """Label every event, the events split across numba's worker threads."""
    for k in prange(events.shape[0]):
        label_one(
            t, o, h, l, c, b1, b2, b3, events[k], _pick(sides, k),
            _pick(targets, k), _pick(stops, k), horizon_bars, horizon_ticks,
            target_first, next_open, k, out_i, out_f, out_b,
        )  # fmt: skip
