"""Bars in: loading, mapping column names, and validating a price path.

Every backend receives the same :class:`Bars`: int64 timestamps in the input's
own unit and float64 C-contiguous prices, validated once here so the kernels
never meet a NaN, an unsorted clock or a high below a low.

Readers: :func:`load_bars` (Parquet, Arrow IPC / Feather, CSV, a folder of
Parquet files), :func:`bars_from_table` (a ``pyarrow.Table``),
:func:`bars_from_arrays` (NumPy arrays) and :func:`bars_from_any` (any of
these, or a pandas / polars DataFrame, a record batch, a dict of columns).
Whatever the route, a :class:`Bars` is checked by :func:`validate_bars` when it
is constructed, and every refusal is a :class:`DataError` that names the
source, the column (as the user spelled it) and the first bad row (0-based).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.errors import DataError

__all__ = [
    "Bars",
    "ColumnMap",
    "DataError",
    "bars_from_any",
    "bars_from_arrays",
    "bars_from_table",
    "load_bars",
    "validate_bars",
]

_TICKS_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


@dataclass(frozen=True)
class ColumnMap:
    """The input's column names (the grid file's ``[columns]`` table)."""

    timestamp: str = "timestamp"
    open: str = "open"
    high: str = "high"
    low: str = "low"
    close: str = "close"
    price: str | None = None  # a single price column: o = h = l = c
    side: str | None = None  # meta-labelling: +1 / -1 per event
    symbol: str | None = None  # universes: one path per symbol

    def names(self) -> tuple[str, str, str, str, str]:
        """The column names of (timestamp, open, high, low, close) as mapped."""
        if self.price is not None:
            p = self.price
            return self.timestamp, p, p, p, p
        return self.timestamp, self.open, self.high, self.low, self.close


@dataclass(frozen=True, eq=False)
class Bars:
    """A validated price path of ``n`` bars.

    ``t`` holds the timestamps as int64 ticks of ``time_type``'s unit; the four
    price arrays are float64 and C-contiguous. ``time_type`` is the Arrow type
    the output's timestamp columns take (unit and time zone preserved).

    Construction runs :func:`validate_bars`, so every ``Bars`` in existence has
    passed it; the arrays are stored as read-only views (often of the Arrow
    buffers they were read from, without a copy). A single-price path holds the
    same array in ``open``, ``high``, ``low`` and ``close``. ``columns`` records
    the input's column names, which the error messages use.
    """

    t: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    time_type: pa.DataType
    source: str = "<arrays>"
    side: np.ndarray | None = field(default=None)  # int8, 0 = no event
    columns: ColumnMap = field(default_factory=ColumnMap)
    min_bars: int = field(default=2, repr=False)  # 1 for a symbol of a universe

    def __post_init__(self) -> None:
        validate_bars(self)
        views: dict[int, np.ndarray] = {}
        for name in ("t", "open", "high", "low", "close"):
            array = getattr(self, name)
            if id(array) not in views:
                view = array.view()
                view.flags.writeable = False
                views[id(array)] = view
            object.__setattr__(self, name, views[id(array)])

    @property
    def n(self) -> int:
        return int(self.t.shape[0])

    @property
    def single_price(self) -> bool:
        """True when the path has one price column (o = h = l = c)."""
        return self.open is self.high is self.low is self.close

    def ticks(self, seconds: Fraction | float) -> int:
        """Convert a duration in seconds to ticks of this path's time unit.

        The window t[j] <= t[i] + D is compared exactly, so a duration that is
        not a whole number of ticks is refused rather than rounded.
        """
        if not pa.types.is_timestamp(self.time_type):
            raise DataError(
                f"{self.source}: a duration horizon needs a timestamp column; "
                f"this one is {self.time_type}"
            )
        unit = self.time_type.unit
        ticks = Fraction(seconds) * _TICKS_PER_SECOND[unit]
        if ticks.denominator != 1:
            raise DataError(
                f"{self.source}: a duration of {float(seconds):g} s is not a whole "
                f"number of the timestamps' unit ({unit}); use a multiple of 1 {unit}"
            )
        return int(ticks)


# --------------------------------------------------------------------------
# validation


def _fail(message: str, row: int | None = None) -> DataError:
    """A DataError carrying the offending row, so a folder reader can add a file."""
    exc = DataError(message)
    exc.row = row  # type: ignore[attr-defined]
    return exc


def _count(k: int) -> str:
    return {1: "one", 2: "two"}.get(k, str(k))


def _first(mask: np.ndarray) -> int | None:
    """Index of the first True in a boolean array, or None."""
    if mask.size == 0:
        return None
    i = int(np.argmax(mask))
    return i if mask[i] else None


def _fmt_time(value: int, time_type: pa.DataType) -> str:
    if pa.types.is_timestamp(time_type):
        try:
            text = pc.cast(pa.array([value], time_type), pa.string())[0].as_py()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return str(value)
        return f"{text} ({value})"
    return str(value)


def _price_problem(x: float) -> str:
    x = float(x)
    if np.isnan(x):
        return "is NaN"
    if np.isinf(x):
        return f"is {x}"
    return f"is {x!r}; prices must be > 0"


def validate_bars(bars: Bars) -> None:
    """Check a price path against the input contract; raise DataError if unusable.

    Called by ``Bars`` itself on construction. Checks dtypes (int64 times,
    float64 prices, 1-D, C-contiguous, equal lengths), at least two bars, then
    finite and positive prices, ``low <= open, close <= high`` and strictly
    increasing timestamps, reporting the earliest offending row.
    """
    src = bars.source
    ts, *price_names = bars.columns.names()
    arrays = {"t": bars.t, "open": bars.open, "high": bars.high}
    arrays |= {"low": bars.low, "close": bars.close}
    for key, array in arrays.items():
        want = np.int64 if key == "t" else np.float64
        if not isinstance(array, np.ndarray) or array.dtype != want:
            got = getattr(array, "dtype", type(array).__name__)
            raise DataError(
                f"{src}: Bars.{key} must be a {want.__name__} array, not {got}"
            )
        if array.ndim != 1 or not array.flags.c_contiguous:
            raise DataError(f"{src}: Bars.{key} must be 1-D and C-contiguous")
        if array.shape[0] != bars.t.shape[0]:
            raise DataError(
                f"{src}: Bars.{key} has {array.shape[0]} values, Bars.t has "
                f"{bars.t.shape[0]}"
            )
    tt = bars.time_type
    if not (
        isinstance(tt, pa.DataType) and (pa.types.is_timestamp(tt) or tt == pa.int64())
    ):
        raise DataError(
            f"{src}: time_type must be an Arrow timestamp type or int64, not {tt}"
        )
    if bars.t.shape[0] < bars.min_bars:
        raise DataError(
            f"{src}: needs at least {_count(bars.min_bars)} bars, got {bars.t.shape[0]}"
        )
    if bars.side is not None:
        side = bars.side
        if not isinstance(side, np.ndarray) or side.dtype != np.int8:
            raise DataError(f"{src}: Bars.side must be an int8 array")
        if side.shape != bars.t.shape:
            raise DataError(f"{src}: Bars.side must have one value per bar")
        r = _first((side != 1) & (side != -1) & (side != 0))
        if r is not None:
            raise _fail(
                f"{src}: column '{bars.columns.side or 'side'}', row {r}: side "
                f"{int(side[r])} is not +1, -1 or 0",
                r,
            )

    # Each candidate is (row, message); the earliest row wins, ties in list order.
    found: list[tuple[int, str]] = []
    prices = dict(zip(("open", "high", "low", "close"), price_names, strict=True))
    seen: set[int] = set()
    for role, name in prices.items():
        x = arrays[role]
        if id(x) in seen:
            continue
        seen.add(id(x))
        bad = ~(x > 0)
        bad |= np.isinf(x)
        r = _first(bad)
        if r is not None:
            found.append(
                (r, f"{src}: column '{name}', row {r}: {_price_problem(x[r])}")
            )

    pairs = [("high", "low"), ("high", "open"), ("high", "close")]
    pairs += [("open", "low"), ("close", "low")]
    for upper, lower in pairs:
        u, d = arrays[upper], arrays[lower]
        if u is d:
            continue
        r = _first(u < d)
        if r is not None:
            found.append(
                (
                    r,
                    f"{src}: row {r}: {upper} (column '{prices[upper]}') = "
                    f"{float(u[r])!r} is below {lower} (column '{prices[lower]}') = "
                    f"{float(d[r])!r}",
                )
            )

    t = bars.t
    r = _first(t[1:] <= t[:-1])
    if r is not None:
        a, b = _fmt_time(int(t[r]), tt), _fmt_time(int(t[r + 1]), tt)
        if t[r] == t[r + 1]:
            what = f"duplicated timestamp {b}, the same as row {r}"
        else:
            what = f"timestamp goes backwards, from {a} at row {r} to {b}"
        found.append(
            (
                r + 1,
                f"{src}: column '{ts}', row {r + 1}: {what}; timestamps must "
                "strictly increase",
            )
        )

    if found:
        row, message = min(found, key=lambda item: item[0])
        raise _fail(message, row)


# --------------------------------------------------------------------------
# column mapping


@dataclass(frozen=True)
class _Plan:
    """Which input columns give the timestamp and the four prices."""

    timestamp: str
    prices: tuple[str, str, str, str]  # open, high, low, close; one name if single
    side: str | None = None
    symbol: str | None = None

    @property
    def single(self) -> bool:
        return len(set(self.prices)) == 1

    @property
    def needed(self) -> list[str]:
        extra = tuple(n for n in (self.side, self.symbol) if n is not None)
        return list(dict.fromkeys((self.timestamp, *self.prices, *extra)))

    def column_map(self) -> ColumnMap:
        more = {"side": self.side, "symbol": self.symbol}
        if self.single:
            return ColumnMap(timestamp=self.timestamp, price=self.prices[0], **more)
        o, h, l, c = self.prices  # noqa: E741
        return ColumnMap(
            timestamp=self.timestamp, open=o, high=h, low=l, close=c, **more
        )


def _listing(names: Sequence[str]) -> str:
    shown = ", ".join(f"'{n}'" for n in names[:30])
    return shown + (f", ... ({len(names)} in all)" if len(names) > 30 else "")


def _plan(names: Sequence[str], columns: ColumnMap, source: str) -> _Plan:
    """Map the ColumnMap onto the available names, with the side and symbol."""
    plan = _plan_prices(names, columns, source)
    for role, name in (("side", columns.side), ("symbol", columns.symbol)):
        if name is not None and name not in set(names):
            raise DataError(
                f"{source}: no column '{name}' for the {role} (named in [columns]); "
                f"the columns are {_listing(list(names))}"
            )
    return _Plan(plan.timestamp, plan.prices, columns.side, columns.symbol)


def _plan_prices(names: Sequence[str], columns: ColumnMap, source: str) -> _Plan:
    """Map the ColumnMap onto the available names; single price when so mapped.

    A single price path (o = h = l = c) is used when ``columns.price`` is set, or
    when none of the open, high and low columns exists but the close column (or
    failing that a column named ``price``) does.
    """
    available = set(names)

    def missing(name: str, role: str, hint: str = "") -> DataError:
        return DataError(
            f"{source}: no column '{name}' for the {role}{hint}; the columns are "
            f"{_listing(list(names))}"
        )

    for name in dict.fromkeys((*columns.names(), "price")):
        if list(names).count(name) > 1:
            raise DataError(f"{source}: column '{name}' appears more than once")
    if columns.timestamp not in available:
        raise missing(columns.timestamp, "timestamp")
    if columns.price is not None:
        if columns.price not in available:
            raise missing(columns.price, "price")
        return _Plan(columns.timestamp, (columns.price,) * 4)
    ohl = {"open": columns.open, "high": columns.high, "low": columns.low}
    if not any(name in available for name in ohl.values()):
        for name in (columns.close, "price"):
            if name in available:
                return _Plan(columns.timestamp, (name,) * 4)
        raise missing(
            columns.open,
            "open",
            f" (a single price path needs '{columns.close}' or 'price')",
        )
    for role, name in (*ohl.items(), ("close", columns.close)):
        if name not in available:
            raise missing(name, role)
    return _Plan(
        columns.timestamp, (columns.open, columns.high, columns.low, columns.close)
    )


# --------------------------------------------------------------------------
# Arrow columns to NumPy


def _to_numpy(col: pa.ChunkedArray, dtype: type) -> np.ndarray:
    """One contiguous array of ``dtype``: no copy for one null-free chunk of it."""
    parts = [c.to_numpy(zero_copy_only=False) for c in col.chunks if len(c)]
    if not parts:
        return np.empty(0, dtype)
    if len(parts) == 1:
        return np.ascontiguousarray(parts[0], dtype=dtype)
    return np.concatenate(parts, dtype=dtype)


def _first_failure(col: pa.ChunkedArray, convert: Callable[[Any], Any]) -> int | None:
    """First row that ``convert`` refuses, by halving: about 2n values in all."""
    try:
        convert(col)
        return None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    lo, hi = 0, len(col)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            convert(col.slice(lo, mid - lo))
            lo = mid
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            hi = mid
    return lo


def _is_text(typ: pa.DataType) -> bool:
    return (
        pa.types.is_string(typ)
        or pa.types.is_large_string(typ)
        or pa.types.is_string_view(typ)
    )


def _decoded(col: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_dictionary(col.type):
        return col.cast(col.type.value_type)
    return col


def _time_ticks(
    col: pa.ChunkedArray, name: str, source: str
) -> tuple[np.ndarray, pa.DataType]:
    """int64 ticks and the Arrow type they are ticks of (nulls already refused)."""
    typ = col.type
    if pa.types.is_timestamp(typ):
        ints = pa.chunked_array([c.view(pa.int64()) for c in col.chunks], pa.int64())
        return _to_numpy(ints, np.int64), typ
    if pa.types.is_date32(typ):
        days = pa.chunked_array([c.view(pa.int32()) for c in col.chunks], pa.int32())
        return _to_numpy(days, np.int64) * 86_400, pa.timestamp("s")
    if pa.types.is_date64(typ):
        ms = pa.chunked_array([c.view(pa.int64()) for c in col.chunks], pa.int64())
        return _to_numpy(ms, np.int64) // 1_000, pa.timestamp("s")
    if pa.types.is_integer(typ):
        if pa.types.is_uint64(typ):
            big = pc.greater(col, pa.scalar(2**63 - 1, pa.uint64()))
            r = pc.index(big, True).as_py()
            if r >= 0:
                raise _fail(
                    f"{source}: column '{name}', row {r}: {col[r].as_py()} does not "
                    "fit an int64 timestamp",
                    r,
                )
        return _to_numpy(col, np.int64), pa.int64()
    if _is_text(typ):
        return _parse_times(col, name, source)
    raise DataError(
        f"{source}: column '{name}' has type {typ}; timestamps must be an Arrow "
        "timestamp, a date, an integer or ISO 8601 text"
    )


def _parse_times(
    col: pa.ChunkedArray, name: str, source: str
) -> tuple[np.ndarray, pa.DataType]:
    """Text timestamps as ISO 8601: naive to timestamp[ns], with offsets to UTC."""
    target = pa.timestamp("ns")
    try:
        pc.cast(col.slice(0, 1), target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        target = pa.timestamp("ns", "UTC")
    try:
        parsed = pc.cast(col, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        r = _first_failure(col, lambda a: pc.cast(a, target))
        r = 0 if r is None else r
        raise _fail(
            f"{source}: column '{name}', row {r}: cannot read {col[r].as_py()!r} as "
            "a timestamp; write ISO 8601, such as '2024-01-02 09:30:00' or "
            "'2024-01-02T09:30:00+01:00'",
            r,
        ) from None
    return _time_ticks(parsed, name, source)


def _prices(col: pa.ChunkedArray, name: str, source: str) -> np.ndarray:
    """float64 prices from an integer, decimal or floating column."""
    typ = col.type
    if pa.types.is_decimal(typ):
        col = pc.cast(col, pa.float64())
    elif not (pa.types.is_floating(typ) or pa.types.is_integer(typ)):
        hint, r = "", None
        if _is_text(typ):
            r = _first_failure(col, lambda a: pc.cast(a, pa.float64()))
            if r is not None:
                hint = f"; row {r} holds {col[r].as_py()!r}"
        raise _fail(
            f"{source}: column '{name}' has type {typ}; prices must be numeric{hint}",
            r,
        )
    return _to_numpy(col, np.float64)


# --------------------------------------------------------------------------
# constructors


def bars_from_table(
    table: pa.Table,
    columns: ColumnMap = ColumnMap(),
    source: str = "<table>",
    min_bars: int = 2,
) -> Bars:
    """Build validated :class:`Bars` from an Arrow table.

    Parameters
    ----------
    table : pyarrow.Table
        The bars, one row each, in time order. Other columns are ignored.
    columns : ColumnMap
        The column names. A single price path (o = h = l = c, one shared array)
        is used when ``columns.price`` is set, or when the open, high and low
        columns are all absent and the close column, or one named ``price``,
        exists.
    source : str
        How error messages name the input.

    Returns
    -------
    Bars
        Timestamp columns keep their exact Arrow type (unit and time zone);
        date32 / date64 become ``timestamp[s]`` (midnight, no zone); integer
        columns are taken as plain ticks with ``time_type`` int64; text is
        parsed as ISO 8601 into ``timestamp[ns]`` (``timestamp[ns, UTC]`` when
        it carries offsets). Integer and decimal prices become float64.
    """
    plan = _plan(table.column_names, columns, source)
    if table.num_rows < min_bars:
        raise DataError(
            f"{source}: needs at least {_count(min_bars)} bars, got {table.num_rows}"
        )
    side = (
        None
        if plan.side is None
        else _sides(table.column(plan.side), plan.side, source)
    )
    cols = {
        name: _decoded(table.column(name))
        for name in plan.needed
        if name not in (plan.side, plan.symbol)
    }

    ts = plan.timestamp
    typ = cols[ts].type
    if not (
        pa.types.is_timestamp(typ)
        or pa.types.is_date(typ)
        or pa.types.is_integer(typ)
        or _is_text(typ)
    ):
        raise DataError(
            f"{source}: column '{ts}' has type {typ}; timestamps must be an Arrow "
            "timestamp, a date, an integer or ISO 8601 text"
        )
    for name in dict.fromkeys(plan.prices):
        typ = cols[name].type
        if not (
            pa.types.is_floating(typ)
            or pa.types.is_integer(typ)
            or pa.types.is_decimal(typ)
        ):
            _prices(cols[name], name, source)  # raises, naming a bad row if any

    nulls = [
        (pc.index(pc.is_null(col), True).as_py(), name)
        for name, col in cols.items()
        if col.null_count
    ]
    if nulls:
        r, name = min(nulls)
        raise _fail(f"{source}: column '{name}', row {r}: value is null", r)

    t, time_type = _time_ticks(cols[ts], ts, source)
    arrays = {
        name: _prices(cols[name], name, source) for name in dict.fromkeys(plan.prices)
    }
    o, h, l, c = (arrays[name] for name in plan.prices)  # noqa: E741
    return Bars(
        t=t,
        open=o,
        high=h,
        low=l,
        close=c,
        time_type=time_type,
        source=source,
        side=side,
        columns=plan.column_map(),
        min_bars=min_bars,
    )


def _sides(col: pa.ChunkedArray, name: str, source: str) -> np.ndarray:
    """A side column as int8: +1 long, -1 short, 0 (or null) no event there."""
    typ = col.type
    if not (pa.types.is_integer(typ) or pa.types.is_floating(typ)):
        raise DataError(
            f"{source}: column '{name}' has type {typ}; a side column holds +1, -1, "
            "0 or null"
        )
    values = _to_numpy(col.fill_null(0), np.float64)
    r = _first((values != 1) & (values != -1) & (values != 0))
    if r is not None:
        raise _fail(
            f"{source}: column '{name}', row {r}: side {float(values[r]):g} is not "
            "+1, -1, 0 or null",
            r,
        )
    return values.astype(np.int8)


def bars_from_arrays(
    t: Any,
    o: Any,
    h: Any,
    l: Any,  # noqa: E741
    c: Any,
    time_type: pa.DataType | None = None,
    source: str = "<arrays>",
) -> Bars:
    """Build validated :class:`Bars` from NumPy arrays (or anything array-like).

    Parameters
    ----------
    t : array of datetime64 or integers
        The timestamps. datetime64 in s, ms, us or ns keeps its unit; coarser
        units (days, minutes, ...) become seconds. Integers are ticks.
    o, h, l, c : arrays of numbers
        Open, high, low and close. Pass the same array four times for a single
        price path; it is then shared, not copied. float64 arrays are not
        copied either.
    time_type : pyarrow.DataType, optional
        The Arrow type of the timestamps. Default: ``timestamp[unit]`` for
        datetime64 input, ``int64`` for integers. A timestamp type given with
        datetime64 input converts to its unit and adds its time zone (the
        values are then read as UTC); given with integers, they are its ticks.
    source : str
        How error messages name the input.
    """
    t = np.asarray(t)
    if t.ndim != 1:
        raise DataError(f"{source}: timestamps must be 1-D, got shape {t.shape}")
    if time_type is not None and not (
        pa.types.is_timestamp(time_type) or time_type == pa.int64()
    ):
        raise DataError(f"{source}: time_type must be a timestamp type or int64")
    if t.dtype.kind == "M":
        r = _first(np.isnat(t))
        if r is not None:
            raise _fail(f"{source}: column 'timestamp', row {r}: value is NaT", r)
        unit = np.datetime_data(t.dtype)[0]
        if time_type is None or not pa.types.is_timestamp(time_type):
            if unit not in _TICKS_PER_SECOND:
                if unit in ("ps", "fs", "as"):
                    raise DataError(
                        f"{source}: datetime64[{unit}] is finer than nanoseconds"
                    )
                unit = "s"
            time_type = pa.timestamp(unit) if time_type is None else time_type
        else:
            unit = time_type.unit
        ticks = np.ascontiguousarray(t.astype(f"M8[{unit}]", copy=False)).view(np.int64)
    elif t.dtype.kind in "iu":
        if t.dtype == np.uint64:
            r = _first(t > np.iinfo(np.int64).max)
            if r is not None:
                raise _fail(
                    f"{source}: column 'timestamp', row {r}: {t[r]} does not fit an "
                    "int64 timestamp",
                    r,
                )
        ticks = np.ascontiguousarray(t, dtype=np.int64)
        time_type = pa.int64() if time_type is None else time_type
    else:
        raise DataError(
            f"{source}: timestamps have dtype {t.dtype}; give datetime64 or integers"
        )

    converted: dict[int, np.ndarray] = {}
    for name, x in (("open", o), ("high", h), ("low", l), ("close", c)):
        if id(x) in converted:
            continue
        a = np.asarray(x)
        if a.dtype.kind not in "fiu" or a.ndim != 1:
            raise DataError(
                f"{source}: column '{name}' has dtype {a.dtype} and shape {a.shape}; "
                "prices must be a 1-D numeric array"
            )
        converted[id(x)] = np.ascontiguousarray(a, dtype=np.float64)
    o, h, l, c = (converted[id(x)] for x in (o, h, l, c))  # noqa: E741
    single = o is h is l is c
    return Bars(
        t=ticks,
        open=o,
        high=h,
        low=l,
        close=c,
        time_type=time_type,
        source=source,
        columns=ColumnMap(price="price") if single else ColumnMap(),
    )


def bars_from_any(
    obj: Any, columns: ColumnMap = ColumnMap(), source: str | None = None
) -> Bars:
    """Build validated :class:`Bars` from whatever holds them.

    Accepts a :class:`Bars` (returned as is), a path (see :func:`load_bars`), a
    ``pyarrow.Table`` or ``RecordBatch``, a pandas DataFrame, a polars
    DataFrame or LazyFrame, or a mapping of column name to array or list.
    Only the mapped columns are converted. A pandas DataFrame without the
    timestamp column may carry it as a DatetimeIndex, unnamed or named like
    that column. pandas and polars are not imported unless given.
    """
    if isinstance(obj, Bars):
        return obj
    if isinstance(obj, str | os.PathLike):
        return load_bars(obj, columns)
    if isinstance(obj, pa.Table):
        return bars_from_table(obj, columns, source or "<table>")
    if isinstance(obj, pa.RecordBatch):
        return bars_from_table(
            pa.Table.from_batches([obj]), columns, source or "<record batch>"
        )
    module = type(obj).__module__.split(".")[0]
    kind = type(obj).__name__
    if module == "pandas" and kind == "DataFrame":
        return _from_pandas(obj, columns, source or "<pandas.DataFrame>")
    if module == "polars" and kind in ("DataFrame", "LazyFrame"):
        source = source or f"<polars.{kind}>"
        plan = _plan(list(obj.collect_schema().names()), columns, source)
        frame = obj.select(plan.needed)
        if kind == "LazyFrame":
            frame = frame.collect()
        return bars_from_table(frame.to_arrow(), columns, source)
    if isinstance(obj, Mapping):
        return _from_mapping(obj, columns, source or "<dict>")
    raise DataError(
        f"{source or '<input>'}: cannot read bars from a {module}.{kind}; give a "
        "path, a pyarrow Table, a pandas or polars DataFrame or a dict of columns"
    )


def _from_pandas(df: Any, columns: ColumnMap, source: str) -> Bars:
    labels = {str(label): label for label in df.columns}
    index = df.index
    use_index = (
        columns.timestamp not in labels
        and type(index).__name__ == "DatetimeIndex"
        and index.name in (None, columns.timestamp)
    )
    names = [str(label) for label in df.columns]
    plan = _plan(names + [columns.timestamp] * use_index, columns, source)
    picked = [labels[n] for n in plan.needed if n in labels]
    table = pa.Table.from_pandas(df, columns=picked, preserve_index=False)
    table = table.rename_columns([str(n) for n in table.column_names])
    if use_index:
        table = table.append_column(columns.timestamp, pa.array(index))
    return bars_from_table(table, columns, source)


def _from_mapping(data: Mapping[Any, Any], columns: ColumnMap, source: str) -> Bars:
    plan = _plan([str(k) for k in data], columns, source)
    keys = {str(k): k for k in data}
    arrays = []
    for name in plan.needed:
        value = data[keys[name]]
        if isinstance(value, pa.Array | pa.ChunkedArray):
            arrays.append(value)
            continue
        try:
            arrays.append(pa.array(value))
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise DataError(
                f"{source}: column '{name}': cannot convert: {exc}"
            ) from None
    lengths = {name: len(a) for name, a in zip(plan.needed, arrays, strict=True)}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"'{k}' {v}" for k, v in lengths.items())
        raise DataError(f"{source}: columns have different lengths: {shown}")
    return bars_from_table(
        pa.table(dict(zip(plan.needed, arrays, strict=True))), columns, source
    )


# --------------------------------------------------------------------------
# files


_PARQUET = (".parquet", ".parq", ".pq")
_IPC = (".arrow", ".feather", ".ipc", ".arrows")
_CSV = re.compile(r"\.csv(\.(gz|bz2|zst|lz4))?$", re.IGNORECASE)


def load_bars(path: str | os.PathLike[str], columns: ColumnMap = ColumnMap()) -> Bars:
    """Read validated :class:`Bars` from a file or a folder of Parquet files.

    Parameters
    ----------
    path : str or path-like
        A Parquet file (``.parquet``), an Arrow IPC / Feather file (``.arrow``,
        ``.feather``, ``.ipc``), a CSV file (``.csv``, also compressed as
        ``.csv.gz``), or a folder of Parquet files read as one series in the
        natural order of their paths (``part-2`` before ``part-10``; files and
        folders starting with ``.`` or ``_`` are skipped). Another extension
        is recognised by its magic bytes (``PAR1``, ``ARROW1``) or refused.
    columns : ColumnMap
        The column names; see :func:`bars_from_table`. Only those columns are
        read. CSV prices are read as float64 (where pyarrow reads ``nan`` and
        empty fields as null) and CSV timestamps as pyarrow infers them.

    Returns
    -------
    Bars
        With ``source`` set to the path, which every error message names.
    """
    path = Path(path)
    source = str(path)
    if path.is_dir():
        return _load_folder(path, columns)
    if columns.symbol is not None:
        raise DataError(
            f"{source}: has a symbol column '{columns.symbol}'; load it with "
            "load_universe, which labels each symbol on its own path"
        )
    table, plan = _read_file(path, columns)
    return bars_from_table(table, plan.column_map(), source)


def read_table(path: str | os.PathLike[str], columns: ColumnMap) -> pa.Table:
    """The needed columns of one bars file as an Arrow table (not yet validated)."""
    return _read_file(Path(path), columns)[0]


def _read_file(path: Path, columns: ColumnMap) -> tuple[pa.Table, _Plan]:
    """Read one file by its extension (or magic bytes), only the needed columns."""
    if not path.is_file():
        raise DataError(f"{path}: no such file or folder")
    name = path.name.lower()
    if name.endswith(_PARQUET):
        kind = "parquet"
    elif name.endswith(_IPC):
        kind = "ipc"
    elif _CSV.search(name):
        kind = "csv"
    else:
        kind = _sniff(path)
    reader = {"parquet": _read_parquet, "ipc": _read_ipc, "csv": _read_csv}[kind]
    return reader(path, columns)


def load_universe(
    path: str | os.PathLike[str],
    columns: ColumnMap = ColumnMap(),
    per_file: bool = False,
) -> list[tuple[str, Bars]]:
    """Read several symbols' paths: one validated :class:`Bars` per symbol.

    With ``per_file``, ``path`` is a folder holding one bars file per symbol,
    named by the file's name without its extension. Otherwise ``path`` is one
    file whose ``columns.symbol`` column names each row's symbol. A symbol may
    have a single bar (its windows are empty). Returns (symbol, bars) pairs
    sorted by symbol.
    """
    path = Path(path)
    if per_file:
        if not path.is_dir():
            raise DataError(f"{path}: a universe of one file per symbol is a folder")
        files = sorted(
            p for p in path.iterdir()
            if p.is_file() and not p.name.startswith((".", "_"))
        )  # fmt: skip
        if not files:
            raise DataError(f"{path}: the folder holds no files")
        out = []
        seen: dict[str, Path] = {}
        for file in files:
            symbol = file.name.split(".")[0]
            if symbol in seen:
                raise DataError(
                    f"{path}: files {seen[symbol].name} and {file.name} both name "
                    f"symbol '{symbol}'"
                )
            seen[symbol] = file
            table = read_table(file, columns)
            out.append((symbol, bars_from_table(table, columns, str(file), 1)))
        return out
    if columns.symbol is None:
        raise DataError(
            f'{path}: a universe needs a symbol column (symbol = "..." in the '
            "grid's [columns]) or one file per symbol"
        )
    table = read_table(path, columns)
    return split_symbols(table, columns, str(path))


def split_symbols(
    table: pa.Table, columns: ColumnMap, source: str
) -> list[tuple[str, Bars]]:
    """Split a table with a symbol column into one validated path per symbol.

    Rows keep their order within each symbol; errors name the row of ``table``.
    """
    name = columns.symbol
    if name is None or name not in table.column_names:
        raise DataError(
            f"{source}: no symbol column '{name}'; the columns are "
            f"{_listing(table.column_names)}"
        )
    col = table.column(name)
    if col.null_count:
        r = pc.index(pc.is_null(col), True).as_py()
        raise _fail(f"{source}: column '{name}', row {r}: symbol is null", r)
    symbols = col.cast(pa.string()).combine_chunks()
    encoded = pc.dictionary_encode(symbols)
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    names = encoded.dictionary.to_pylist()
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
    rest = ColumnMap(**{**columns.__dict__, "symbol": None})
    out = []
    for code in np.argsort(np.array(names, dtype=object)):
        rows = order[bounds[code] : bounds[code + 1]]
        sub = table.take(pa.array(rows)).drop_columns([name])
        label = f"{source} [symbol {names[code]}]"
        try:
            bars = bars_from_table(sub, rest, label, min_bars=1)
        except DataError as exc:
            row = getattr(exc, "row", None)
            if row is None:
                raise
            at = int(rows[row])
            raise _fail(f"{exc} (row {at} of {source})", at) from None
        out.append((str(names[code]), bars))
    return out


def _sniff(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror}") from None
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"ARROW1") or head.startswith(b"\xff\xff\xff\xff"):
        return "ipc"
    raise DataError(
        f"{path}: cannot tell the format; name it .parquet, .arrow / .feather / "
        ".ipc or .csv (.csv.gz)"
    )


def _read_parquet(path: Path, columns: ColumnMap) -> tuple[pa.Table, _Plan]:
    import pyarrow.parquet as pq

    try:
        with pq.ParquetFile(path) as f:
            plan = _plan(f.schema_arrow.names, columns, str(path))
            table = _restore_unit(f.read(columns=plan.needed), f, plan.timestamp)
            return table, plan
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: cannot read as Parquet: {exc}") from None


def _restore_unit(table: pa.Table, f: Any, name: str) -> pa.Table:
    """Give back timestamp[s], which Parquet stores as ms, as the writer had it.

    pyarrow keeps the writer's Arrow schema in the file's metadata; a timestamp
    column written in seconds comes back in milliseconds unless cast back.
    """
    meta = f.metadata.metadata or {}
    if b"ARROW:schema" not in meta or name not in table.column_names:
        return table
    import base64

    try:
        schema = pa.ipc.read_schema(
            pa.py_buffer(base64.b64decode(meta[b"ARROW:schema"]))
        )
        written = schema.field(name).type
    except (pa.ArrowException, KeyError, ValueError):
        return table
    read = table.schema.field(name).type
    if not (pa.types.is_timestamp(written) and pa.types.is_timestamp(read)):
        return table
    if written.unit != "s" or read.unit != "ms" or written.tz != read.tz:
        return table
    try:
        col = pc.cast(table.column(name), written)
    except pa.ArrowInvalid:
        return table
    return table.set_column(table.schema.get_field_index(name), name, col)


def _read_ipc(path: Path, columns: ColumnMap) -> tuple[pa.Table, _Plan]:
    import pyarrow.feather as feather

    try:
        try:
            with pa.memory_map(str(path)) as src:
                names = pa.ipc.open_file(src).schema.names
        except pa.ArrowInvalid:
            # The streaming format has no footer: read it all, then pick.
            table = pa.ipc.open_stream(pa.memory_map(str(path))).read_all()
            plan = _plan(table.column_names, columns, str(path))
            return table.select(plan.needed), plan
        plan = _plan(names, columns, str(path))
        return feather.read_table(str(path), columns=plan.needed, memory_map=True), plan
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: cannot read as Arrow IPC / Feather: {exc}") from None


def _read_csv(path: Path, columns: ColumnMap) -> tuple[pa.Table, _Plan]:
    import pyarrow.csv as pcsv

    source = str(path)
    try:
        reader = pcsv.open_csv(str(path))
        inferred = reader.schema
        reader.close()
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{source}: cannot read as CSV: {exc}") from None
    plan = _plan(inferred.names, columns, source)
    types = dict.fromkeys(plan.prices, pa.float64())
    options = pcsv.ConvertOptions(include_columns=plan.needed, column_types=types)
    try:
        return pcsv.read_csv(str(path), convert_options=options), plan
    except pa.ArrowInvalid:
        pass

    # A value did not convert. Read the columns as text and find the first one.
    text = dict.fromkeys(plan.needed, pa.string())
    options = pcsv.ConvertOptions(include_columns=plan.needed, column_types=text)
    try:
        table = pcsv.read_csv(str(path), convert_options=options)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{source}: cannot read as CSV: {exc}") from None
    targets = dict.fromkeys(plan.prices, pa.float64())
    ts_type = inferred.field(plan.timestamp).type
    if pa.types.is_integer(ts_type):
        targets[plan.timestamp] = pa.int64()
    for name, target in targets.items():
        col = table.column(name)
        try:
            converted = pc.cast(col, target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            r = _first_failure(col, lambda a, target=target: pc.cast(a, target))
            r = 0 if r is None else r
            what = "a number" if target == pa.float64() else "an integer"
            raise _fail(
                f"{source}: column '{name}', row {r}: {col[r].as_py()!r} is not {what}",
                r,
            ) from None
        table = table.set_column(table.schema.get_field_index(name), name, converted)
    return table, plan


def _natural(path: Path, root: Path) -> list[Any]:
    parts = re.split(r"(\d+)", path.relative_to(root).as_posix())
    return [int(p) if p.isdigit() else p for p in parts]


def _load_folder(folder: Path, columns: ColumnMap) -> Bars:
    import pyarrow.parquet as pq

    source = str(folder)
    files = [
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.name.lower().endswith(_PARQUET)
        and not any(part.startswith((".", "_")) for part in p.relative_to(folder).parts)
    ]
    if not files:
        raise DataError(f"{source}: the folder holds no Parquet files")
    files.sort(key=lambda p: _natural(p, folder))

    tables, starts, plan = [], [], None
    rows = 0
    for file in files:
        try:
            with pq.ParquetFile(file) as f:
                names = f.schema_arrow.names
                if plan is None:
                    plan = _plan(names, columns, str(file))
                else:
                    _plan(names, plan.column_map(), str(file))
                table = _restore_unit(f.read(columns=plan.needed), f, plan.timestamp)
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{file}: cannot read as Parquet: {exc}") from None
        tables.append(table)
        starts.append(rows)
        rows += table.num_rows
    assert plan is not None
    try:
        table = pa.concat_tables(tables, promote_options="permissive")
    except pa.ArrowException as exc:
        raise DataError(f"{source}: the files' columns do not match: {exc}") from None

    try:
        return bars_from_table(table, plan.column_map(), source)
    except DataError as exc:
        row = getattr(exc, "row", None)
        if row is None:
            raise
        k = int(np.searchsorted(starts, row, side="right")) - 1
        raise _fail(
            f"{exc} (row {row - starts[k]} of {files[k].relative_to(folder)})", row
        ) from None
