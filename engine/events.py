"""Which bars are events: every bar, bars named by timestamps, or a CUSUM filter.

All three give sorted, unique bar indexes of one path, which the rest of the
engine treats alike.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from numba import njit

from engine.data import Bars
from engine.errors import DataError


def events_at_times(bars: Bars, times: np.ndarray, source: str = "<events>"):
    """Map event times to bars: each event is the last bar with t[i] <= its time.

    ``times`` are int64 ticks in the unit of ``bars.t``. An event before the
    first bar is an error that names it (its row in ``source`` and its time).
    Several events on one bar give one event. Returns sorted int64 indexes.
    """
    times = np.asarray(times, dtype=np.int64)
    idx = np.searchsorted(bars.t, times, side="right") - 1
    early = np.flatnonzero(idx < 0)
    if early.size:
        r = int(early[0])
        raise DataError(
            f"{source}: row {r}: event time {_show(times[r], bars.time_type)} is "
            f"before the first bar ({_show(bars.t[0], bars.time_type)}); "
            f"{early.size} event(s) fall before the data"
        )
    return np.unique(idx).astype(np.int64)


def event_ticks(
    column: pa.ChunkedArray | pa.Array, bars: Bars, name: str, source: str
) -> np.ndarray:
    """Event times from an Arrow column, as ticks of the bars' time unit.

    Timestamps of any unit convert to the bars' unit. Zoned times compare as
    instants; naive event times against zoned bars are read as wall-clock
    times in the bars' zone; zoned events against naive bars are read as UTC.
    Integers are taken as ticks of the bars' clock; ISO 8601 text is parsed.
    """
    typ = column.type
    target = bars.time_type
    if column.null_count:
        import pyarrow.compute as pc

        r = pc.index(pc.is_null(column), True).as_py()
        raise DataError(f"{source}: column '{name}', row {r}: event time is null")
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        try:
            column = column.cast(pa.timestamp("ns"))
        except pa.ArrowInvalid as exc:
            raise DataError(
                f"{source}: column '{name}': cannot parse event times: {exc}"
            ) from None
        typ = column.type
    if pa.types.is_timestamp(typ):
        if not pa.types.is_timestamp(target):
            raise DataError(
                f"{source}: column '{name}' holds timestamps but the bars' clock "
                f"is {target}; give event times as {target} too"
            )
        if typ.tz is None and target.tz is not None:
            # Naive event times are wall-clock times in the bars' time zone.
            import pyarrow.compute as pc

            try:
                column = pc.assume_timezone(
                    column, target.tz, ambiguous="earliest", nonexistent="earliest"
                )
            except pa.ArrowInvalid as exc:
                raise DataError(
                    f"{source}: column '{name}': cannot place event times in "
                    f"{target.tz}: {exc}"
                ) from None
        elif typ.tz is not None and target.tz is None:
            # Zoned event times against a naive clock: both are taken as UTC.
            column = column.cast(pa.timestamp(typ.unit))
        try:
            column = column.cast(pa.timestamp(target.unit, target.tz))
        except pa.ArrowInvalid as exc:
            raise DataError(
                f"{source}: column '{name}': event times do not fit the bars' "
                f"unit {target.unit}: {exc}"
            ) from None
        return np.asarray(column.cast(pa.int64()).to_numpy(), dtype=np.int64)
    if pa.types.is_integer(typ):
        return np.asarray(column.cast(pa.int64()).to_numpy(), dtype=np.int64)
    raise DataError(
        f"{source}: column '{name}' has type {typ}; event times must be timestamps, "
        "integers (the bars' ticks) or ISO 8601 text"
    )


def _show(ticks: int, time_type: pa.DataType) -> str:
    if pa.types.is_timestamp(time_type):
        return str(pa.scalar(int(ticks), type=time_type))
    return str(int(ticks))


def cusum_events(close: np.ndarray, threshold: float) -> np.ndarray:
    """Bars flagged by a symmetric CUSUM filter on log returns.

    With r[j] = log(c[j] / c[j-1]) for j >= 1: s_pos = max(0, s_pos + r[j]),
    s_neg = min(0, s_neg + r[j]), both starting at 0; bar j is an event when
    s_pos > threshold (s_pos then restarts at 0) or s_neg < -threshold (s_neg
    restarts at 0), both restarting when both cross on the same bar.
    """
    if not threshold > 0:
        raise ValueError(f"the CUSUM threshold must be > 0, got {threshold}")
    close = np.ascontiguousarray(close, dtype=np.float64)
    flags = _cusum(close, float(threshold))
    return np.flatnonzero(flags).astype(np.int64)


@njit(cache=True)
def _cusum(close, h):
    """Sequential CUSUM over the closes; one flag per bar."""
    flags = np.zeros(close.shape[0], dtype=np.bool_)
    s_pos = 0.0
    s_neg = 0.0
    for j in range(1, close.shape[0]):
        r = np.log(close[j] / close[j - 1])
        s_pos = max(0.0, s_pos + r)
        s_neg = min(0.0, s_neg + r)
        if s_pos > h:
            s_pos = 0.0
            flags[j] = True
        if s_neg < -h:
            s_neg = 0.0
            flags[j] = True
    return flags


def read_event_file(path, timestamp: str = "timestamp", symbol: str | None = None):
    """Read an events file: a time column, and a symbol column for universes.

    Parquet, Arrow IPC / Feather and CSV are read by extension. Returns the
    Arrow table with just those columns.
    """
    from pathlib import Path

    import pyarrow.csv as pcsv
    import pyarrow.feather as feather
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such events file")
    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".parq", ".pq")):
            table = pq.read_table(path)
        elif name.endswith((".arrow", ".feather", ".ipc")):
            table = feather.read_table(str(path))
        elif ".csv" in name:
            table = pcsv.read_csv(path)
        else:
            raise DataError(
                f"{path}: unknown events file type; use .parquet, .feather or .csv"
            )
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: cannot read events: {exc}") from None
    wanted = [timestamp] + ([symbol] if symbol and symbol in table.column_names else [])
    if timestamp not in table.column_names:
        raise DataError(
            f"{path}: no column '{timestamp}' with the event times; the columns are "
            + ", ".join(repr(c) for c in table.column_names)
        )
    return table.select(wanted)


def event_times_for(
    table: pa.Table,
    paths: list[tuple[str | None, Bars]],
    timestamp: str,
    symbol: str | None,
    source: str,
):
    """Event times in ticks of the bars' clock: one array, or one per symbol.

    With a universe and a symbol column in the events file, each event applies
    to its own symbol only, and a symbol absent from the bars is an error;
    otherwise every event applies to every path.
    """
    bars = paths[0][1]
    if symbol is not None and symbol in table.column_names and paths[0][0]:
        known = {s for s, _ in paths}
        syms = table.column(symbol).cast(pa.string()).to_pylist()
        for r, s in enumerate(syms):
            if s not in known:
                raise DataError(
                    f"{source}: row {r}: symbol {s!r} is not in the bars' universe"
                )
        ticks = event_ticks(table.column(timestamp), bars, timestamp, source)
        syms_arr = np.array(syms, dtype=object)
        return {s: ticks[syms_arr == s] for s in known}
    return event_ticks(table.column(timestamp), bars, timestamp, source)
