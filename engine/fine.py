"""Re-deciding ambiguous bars from a finer path (ticks or smaller bars).

A bar that first touches both barriers, without opening beyond either, is
ambiguous. Given a finer path covering the same time, the first barrier that
the finer path touches inside that bar's time span [t[j], t[j+1]) decides it
(the last bar's span ends one bar spacing after it starts). A finer bar that
itself touches both barriers is decided by its own open when that open is
beyond a barrier; otherwise the finer path cannot settle the bar, and the
configuration's ambiguity rule stands.

Settling runs on the host over the few ambiguous rows of each chunk, after
whichever backend computed them, so every device gives the same rows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from engine import data, rules
from engine.backend import EventBatch, RawLabels
from engine.data import Bars, ColumnMap, _decoded
from engine.errors import DataError
from engine.events import event_ticks


@dataclass(frozen=True, eq=False)
class FinePath:
    """A finer path on the bars' clock: int64 ticks and float64 prices.

    Timestamps may repeat (several ticks in one instant) but never go back.
    For ticks, ``open``, ``high`` and ``low`` are one shared array.
    """

    t: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    source: str = "<fine path>"

    @classmethod
    def from_table(
        cls, table: pa.Table, columns: ColumnMap, bars: Bars, source: str
    ) -> FinePath:
        """Read a finer path from a table, on the clock of ``bars``.

        Prices are mapped like the bars' (open/high/low, or a single price
        column for ticks; close is not needed). Timestamps convert to the
        bars' unit and may repeat, but never go back.
        """
        plan = data._plan(table.column_names, columns, source)
        ts = plan.timestamp
        names = dict(zip(("open", "high", "low"), plan.prices[:3], strict=True))
        for name in (ts, *names.values()):
            col = table.column(name)
            if col.null_count:
                r = pc.index(pc.is_null(col), True).as_py()
                raise DataError(f"{source}: column '{name}', row {r}: value is null")
        t = event_ticks(table.column(ts), bars, ts, source)
        arrays: dict[str, np.ndarray] = {}
        for name in names.values():
            if name not in arrays:
                arrays[name] = data._prices(_decoded(table.column(name)), name, source)
        o, h, lo = (arrays[names[r]] for r in ("open", "high", "low"))
        for name, x in arrays.items():
            bad = np.flatnonzero(~(x > 0) | np.isinf(x))
            if bad.size:
                r = int(bad[0])
                raise DataError(
                    f"{source}: column '{name}', row {r}: price {x[r]!r} must be a "
                    "positive number"
                )
        if h is not lo:
            bad = np.flatnonzero((h < lo) | (h < o) | (o < lo))
            if bad.size:
                r = int(bad[0])
                raise DataError(
                    f"{source}: row {r}: high {h[r]!r}, low {lo[r]!r} and open "
                    f"{o[r]!r} are not ordered low <= open <= high"
                )
        return cls(t, o, h, lo, source)

    @classmethod
    def from_any(cls, obj: Any, columns: ColumnMap, bars: Bars) -> FinePath:
        """A finer path from a file path, an Arrow table or a DataFrame."""
        if isinstance(obj, FinePath):
            return obj
        # A finer path has prices and times only: no side, no symbol.
        cols = ColumnMap(**{**columns.__dict__, "side": None, "symbol": None})
        if isinstance(obj, str | os.PathLike):
            return cls.from_table(data.read_table(obj, cols), cols, bars, str(obj))
        if isinstance(obj, pa.Table):
            return cls.from_table(obj, cols, bars, "<fine path>")
        module = type(obj).__module__.split(".")[0]
        if module == "pandas":
            table = pa.Table.from_pandas(obj, preserve_index=False)
            return cls.from_table(table, cols, bars, "<fine path>")
        if module == "polars":
            return cls.from_table(obj.to_arrow(), cols, bars, "<fine path>")
        raise DataError(
            f"cannot read a finer path from a {module}.{type(obj).__name__}"
        )


def check_covers(fine: FinePath, bars: Bars) -> None:
    """Refuse a finer path out of order or not covering the bars' time range."""
    back = np.flatnonzero(np.diff(fine.t) < 0)
    if back.size:
        r = int(back[0]) + 1
        raise DataError(
            f"{fine.source}: row {r}: timestamps go back in time "
            f"({fine.t[r - 1]} then {fine.t[r]}); the finer path must be in order"
        )
    if fine.t.size == 0:
        raise DataError(f"{fine.source}: the finer path is empty")
    first_span_end = bars.t[1] if bars.n > 1 else bars.t[0]
    if fine.t[0] >= first_span_end or fine.t[-1] < bars.t[-1]:
        raise DataError(
            f"{fine.source}: the finer path runs from {fine.t[0]} to {fine.t[-1]} "
            f"but must cover the bars from inside the first bar (before "
            f"{first_span_end}) to at least the last bar's start ({bars.t[-1]}), "
            "in the bars' time unit"
        )


def settle(
    fine: FinePath, bars: Bars, batch: EventBatch, raw: RawLabels
) -> tuple[int, int]:
    """Re-decide the ambiguous rows of ``raw`` in place from the finer path.

    Returns (settled, still ambiguous).
    """
    ambiguous = raw.flags[rules.OUT_AMBIGUOUS]
    if not ambiguous.any():
        return 0, 0
    settled = _settle(
        bars.t, bars.open, bars.close, fine.t, fine.open, fine.high, fine.low,
        batch.events, batch.sides, batch.targets, batch.stops, batch.next_open,
        raw.ints, raw.floats, raw.flags,
    )  # fmt: skip
    remaining = int(raw.flags[rules.OUT_AMBIGUOUS].sum())
    return int(settled), remaining


@njit(cache=True)
def _pick(values, k):
    return values[k] if values.shape[0] > 1 else values[0]


@njit(cache=True)
def _settle(t, o, c, ft, fo, fh, fl, events, sides, targets, stops, next_open,
            out_i, out_f, out_b):  # fmt: skip
    """Scan the finer path inside each ambiguous exit bar; returns rows settled."""
    n = t.shape[0]
    settled = 0
    for k in range(events.shape[0]):
        if out_b[rules.OUT_AMBIGUOUS, k] == 0:
            continue
        i = events[k]
        side = _pick(sides, k)
        e = rules.entry_price(o, c, i, next_open)
        target_price, stop_price = rules.barrier_prices(
            e, side, _pick(targets, k), _pick(stops, k)
        )
        j = out_i[rules.OUT_EXIT, k]
        start = t[j]
        if j + 1 < n:
            end = t[j + 1]
        else:
            end = t[j] + (t[j] - t[j - 1])
        a = np.searchsorted(ft, start, side="left")
        decided = 0
        for m in range(a, ft.shape[0]):
            if ft[m] >= end:
                break
            hit_t = rules.touches_target(fh[m], fl[m], side, target_price)
            hit_s = rules.touches_stop(fh[m], fl[m], side, stop_price)
            if hit_t and hit_s:
                if rules.touches_target(fo[m], fo[m], side, target_price):
                    decided = 1
                elif rules.touches_stop(fo[m], fo[m], side, stop_price):
                    decided = -1
                break  # a finer bar touching both without a gap cannot settle it
            if hit_t:
                decided = 1
                break
            if hit_s:
                decided = -1
                break
        if decided == 0:
            continue
        # The coarse open was beyond neither barrier, so the fill is the barrier.
        price = target_price if decided == 1 else stop_price
        out_b[rules.OUT_LABEL, k] = decided
        out_b[rules.OUT_AMBIGUOUS, k] = 0
        out_f[rules.OUT_RET, k] = side * (price / e - 1.0)
        settled += 1
    return settled
