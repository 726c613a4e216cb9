"""Loading bars: every format and route, and every bad input refused by row."""

from __future__ import annotations

import decimal
import re
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

from engine.data import (
    Bars,
    ColumnMap,
    bars_from_any,
    bars_from_arrays,
    bars_from_table,
    load_bars,
)
from engine.errors import DataError

N = 6
START = np.datetime64("2024-01-02T09:30:00", "ns")
OPEN = 10.0 + np.arange(N)
HIGH = OPEN + 1.0
LOW = OPEN - 1.0
CLOSE = OPEN + 0.5


def times(unit: str = "ns") -> np.ndarray:
    return (START + np.arange(N) * np.timedelta64(60, "s")).astype(f"M8[{unit}]")


def ohlc_table(unit: str = "ns", tz: str | None = None, **names: str) -> pa.Table:
    """The reference path as an Arrow table; ``names`` renames columns."""
    ticks = pa.array(times(unit).view(np.int64), pa.timestamp(unit, tz))
    cols = {"timestamp": ticks, "open": OPEN, "high": HIGH, "low": LOW}
    cols["close"] = CLOSE
    return pa.table({names.get(k, k): v for k, v in cols.items()})


def write(table: pa.Table, path: Path) -> Path:
    """Write ``table`` in the format named by the file's extension."""
    name = path.name
    if name.endswith(".parquet"):
        pq.write_table(table, path)
    elif name.endswith((".feather", ".arrow")):
        feather.write_feather(table, path)
    elif name.endswith(".arrows"):
        with pa.OSFile(str(path), "wb") as sink:
            with pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
    elif name.endswith(".csv.gz"):
        with pa.CompressedOutputStream(str(path), "gzip") as sink:
            pcsv.write_csv(table, sink)
    elif name.endswith(".csv"):
        pcsv.write_csv(table, path)
    else:
        raise AssertionError(name)
    return path


def assert_prices(bars: Bars, unit: str = "ns") -> None:
    assert bars.n == N
    np.testing.assert_array_equal(bars.t, times(unit).view(np.int64))
    for got, want in zip(
        (bars.open, bars.high, bars.low, bars.close),
        (OPEN, HIGH, LOW, CLOSE),
        strict=True,
    ):
        assert got.dtype == np.float64 and got.flags.c_contiguous
        np.testing.assert_array_equal(got, want)
    assert bars.t.dtype == np.int64 and bars.t.flags.c_contiguous


def raises(*parts: str):
    """pytest.raises(DataError) whose message holds every part, in order."""
    pattern = ".*".join(
        re.escape(p) if not p.startswith("re:") else p[3:] for p in parts
    )
    return pytest.raises(DataError, match=pattern)


# --------------------------------------------------------------------------
# formats


UNITS = ["s", "ms", "us", "ns"]


@pytest.mark.parametrize("tz", [None, "America/New_York"])
@pytest.mark.parametrize("unit", UNITS)
@pytest.mark.parametrize("ext", ["parquet", "feather", "arrow", "arrows"])
def test_binary_formats_keep_unit_and_zone(tmp_path, ext, unit, tz):
    path = write(ohlc_table(unit, tz), tmp_path / f"bars.{ext}")
    bars = load_bars(path)
    assert bars.time_type == pa.timestamp(unit, tz)
    assert bars.source == str(path)
    assert_prices(bars, unit)


@pytest.mark.parametrize("ext", ["csv", "csv.gz"])
def test_csv_round_trip(tmp_path, ext):
    path = write(ohlc_table("s"), tmp_path / f"bars.{ext}")
    bars = load_bars(path)
    assert pa.types.is_timestamp(bars.time_type)
    np.testing.assert_array_equal(bars.t, times(bars.time_type.unit).view(np.int64))
    np.testing.assert_array_equal(bars.close, CLOSE)
    np.testing.assert_array_equal(bars.low, LOW)


def test_csv_with_zone_offsets_reads_as_utc(tmp_path):
    path = write(ohlc_table("ms", "America/New_York"), tmp_path / "bars.csv")
    bars = load_bars(path)
    assert bars.time_type.tz == "UTC"
    np.testing.assert_array_equal(bars.t, times(bars.time_type.unit).view(np.int64))


def test_csv_integer_prices_then_fractions(tmp_path):
    # Type inference would fix int64 from the first block; prices are read as
    # float64 from the start.
    rows = ["timestamp,close"] + [f"{i},{100 + i}" for i in range(200_000)]
    rows.append("200000,100.5")
    path = tmp_path / "ticks.csv"
    path.write_text("\n".join(rows) + "\n")
    bars = load_bars(path)
    assert bars.time_type == pa.int64()
    assert bars.single_price and bars.close[-1] == 100.5


def test_csv_epoch_integers(tmp_path):
    table = ohlc_table().set_column(0, "timestamp", pa.array(np.arange(N) * 60))
    bars = load_bars(write(table, tmp_path / "bars.csv"))
    assert bars.time_type == pa.int64()
    np.testing.assert_array_equal(bars.t, np.arange(N) * 60)
    with pytest.raises(DataError, match="needs a timestamp column"):
        bars.ticks(60)


def test_folder_of_parquet_in_natural_order(tmp_path):
    table = ohlc_table("ms", "America/New_York")
    folder = tmp_path / "bars"
    folder.mkdir()
    for name, (a, b) in zip(
        ("part-1.parquet", "part-2.parquet", "part-10.parquet"),
        ((0, 2), (2, 4), (4, 6)),
        strict=True,
    ):
        pq.write_table(table.slice(a, b - a), folder / name)
    (folder / "_SUCCESS").write_text("")
    (folder / ".hidden.parquet").write_bytes(b"junk")
    bars = load_bars(folder)
    assert bars.time_type == pa.timestamp("ms", "America/New_York")
    assert bars.source == str(folder)
    assert_prices(bars, "ms")


def test_folder_error_names_the_file_and_its_row(tmp_path):
    table = ohlc_table()
    high = HIGH.copy()
    high[4] = np.nan
    table = table.set_column(2, "high", pa.array(high))
    folder = tmp_path / "bars"
    folder.mkdir()
    for i, a in enumerate((0, 2, 4)):
        pq.write_table(table.slice(a, 2), folder / f"part-{i}.parquet")
    with raises(str(folder), "column 'high', row 4", "NaN", "row 0 of part-2.parquet"):
        load_bars(folder)


def test_folder_without_parquet_files(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with raises(str(tmp_path), "no Parquet files"):
        load_bars(tmp_path)


def test_folder_file_missing_a_column(tmp_path):
    pq.write_table(ohlc_table().slice(0, 3), tmp_path / "a.parquet")
    pq.write_table(ohlc_table().slice(3).drop_columns(["low"]), tmp_path / "b.parquet")
    with raises(str(tmp_path / "b.parquet"), "no column 'low'"):
        load_bars(tmp_path)


@pytest.mark.parametrize("ext", ["parquet", "feather", "arrows"])
def test_unknown_extension_by_magic_bytes(tmp_path, ext):
    real = write(ohlc_table("us"), tmp_path / f"bars.{ext}")
    odd = tmp_path / "bars.dat"
    real.rename(odd)
    bars = load_bars(odd)
    assert bars.time_type == pa.timestamp("us")
    assert_prices(bars, "us")


def test_unknown_format_is_refused(tmp_path):
    path = tmp_path / "bars.xlsx"
    path.write_bytes(b"PK\x03\x04 not bars")
    with raises(str(path), "cannot tell the format"):
        load_bars(path)


def test_missing_path(tmp_path):
    with raises(str(tmp_path / "nope.parquet"), "no such file"):
        load_bars(tmp_path / "nope.parquet")


def test_corrupt_parquet(tmp_path):
    path = tmp_path / "bars.parquet"
    path.write_bytes(b"PAR1 this is not parquet")
    with raises(str(path), "cannot read as Parquet"):
        load_bars(path)


def test_only_needed_columns_are_read(tmp_path):
    table = ohlc_table().append_column("note", pa.array(["x"] * N))
    table = table.append_column("volume", pa.array([None] * N, pa.int64()))
    bars = load_bars(write(table, tmp_path / "bars.parquet"))
    assert_prices(bars)


# --------------------------------------------------------------------------
# in-memory routes


@pytest.mark.parametrize("unit", UNITS)
def test_arrays_keep_unit(unit):
    bars = bars_from_arrays(times(unit), OPEN, HIGH, LOW, CLOSE)
    assert bars.time_type == pa.timestamp(unit)
    assert bars.source == "<arrays>"
    assert_prices(bars, unit)


def test_arrays_do_not_copy_and_are_read_only():
    bars = bars_from_arrays(times(), OPEN, HIGH, LOW, CLOSE)
    assert np.shares_memory(bars.close, CLOSE)
    assert not bars.close.flags.writeable
    assert CLOSE.flags.writeable  # the caller's array is left alone


def test_arrays_integer_times_and_prices():
    ints = np.arange(1, N + 1)
    bars = bars_from_arrays(
        np.arange(N, dtype=np.int32), ints.tolist(), ints, ints, ints
    )
    assert bars.time_type == pa.int64()
    assert bars.t.dtype == np.int64 and bars.close.dtype == np.float64
    assert bars.high is bars.low is bars.close and bars.open is not bars.close


def test_uint64_times_that_do_not_fit():
    t = np.arange(N, dtype=np.uint64)
    t[3] = 2**63
    with raises("<arrays>", "column 'timestamp', row 3", str(2**63)):
        bars_from_arrays(t, OPEN, HIGH, LOW, CLOSE)
    table = ohlc_table().set_column(0, "timestamp", pa.array(t))
    with raises("<table>", "column 'timestamp', row 3", "does not fit"):
        bars_from_table(table)


def test_arrays_coarse_units_become_seconds():
    days = np.arange("2024-01-01", "2024-01-07", dtype="M8[D]")
    bars = bars_from_arrays(days, OPEN, HIGH, LOW, CLOSE)
    assert bars.time_type == pa.timestamp("s")
    assert bars.t[1] - bars.t[0] == 86_400


def test_arrays_time_type_given():
    tz = pa.timestamp("ms", "America/New_York")
    bars = bars_from_arrays(times("ns"), OPEN, HIGH, LOW, CLOSE, time_type=tz)
    assert bars.time_type == tz
    np.testing.assert_array_equal(bars.t, times("ms").view(np.int64))
    ticks = bars_from_arrays(np.arange(N), OPEN, HIGH, LOW, CLOSE, time_type=tz)
    assert ticks.time_type == tz and ticks.ticks(1.0) == 1_000


def test_arrays_single_price_is_shared():
    bars = bars_from_arrays(times(), CLOSE, CLOSE, CLOSE, CLOSE)
    assert bars.single_price
    assert bars.open is bars.high is bars.low is bars.close
    ints = np.arange(1, N + 1)
    bars = bars_from_arrays(times(), ints, ints, ints, ints)
    assert bars.single_price


def test_arrays_refused():
    with raises("<arrays>", "column 'timestamp', row 2", "NaT"):
        t = times()
        t[2] = np.datetime64("NaT")
        bars_from_arrays(t, OPEN, HIGH, LOW, CLOSE)
    with raises("<arrays>", "dtype float64"):
        bars_from_arrays(np.arange(N, dtype=float), OPEN, HIGH, LOW, CLOSE)
    with raises("column 'high'", "dtype <U1"):
        bars_from_arrays(times(), OPEN, ["a"] * N, LOW, CLOSE)
    with raises("Bars.close has 5 values"):
        bars_from_arrays(times(), OPEN, HIGH, LOW, CLOSE[:5])


@pytest.mark.parametrize("tz", [None, "America/New_York"])
@pytest.mark.parametrize("unit", UNITS)
def test_pandas(unit, tz):
    df = ohlc_table(unit, tz).to_pandas()
    bars = bars_from_any(df)
    assert bars.time_type == pa.timestamp(unit, tz)
    assert bars.source == "<pandas.DataFrame>"
    assert_prices(bars, unit)


@pytest.mark.parametrize("name", [None, "timestamp"])
def test_pandas_datetime_index(name):
    df = ohlc_table("ns", "America/New_York").to_pandas().set_index("timestamp")
    df.index.name = name
    bars = bars_from_any(df)
    assert bars.time_type == pa.timestamp("ns", "America/New_York")
    assert_prices(bars)


def test_pandas_index_with_another_name_is_not_used():
    df = ohlc_table().to_pandas().set_index("timestamp")
    df.index.name = "when"
    with raises("<pandas.DataFrame>", "no column 'timestamp'", "'open'"):
        bars_from_any(df)


@pytest.mark.parametrize("tz", [None, "America/New_York"])
@pytest.mark.parametrize("unit", ["ms", "us", "ns"])
def test_polars(unit, tz):
    df = pl.from_arrow(ohlc_table(unit, tz))
    bars = bars_from_any(df)
    assert bars.time_type == pa.timestamp(unit, tz)
    assert_prices(bars, unit)
    assert_prices(bars_from_any(df.lazy()), unit)


def test_dict_record_batch_table_and_bars():
    d = {"timestamp": times("ms"), "open": OPEN, "high": list(HIGH), "low": LOW}
    d["close"] = CLOSE
    bars = bars_from_any(d)
    assert bars.time_type == pa.timestamp("ms") and bars.source == "<dict>"
    assert_prices(bars, "ms")
    assert bars_from_any(bars) is bars
    batch = ohlc_table("us").to_batches()[0]
    assert_prices(bars_from_any(batch), "us")
    assert_prices(bars_from_any(ohlc_table("s")), "s")
    assert bars_from_any(ohlc_table(), source="mine").source == "mine"


def test_any_reads_a_path(tmp_path):
    path = write(ohlc_table(), tmp_path / "bars.parquet")
    assert_prices(bars_from_any(path))
    assert_prices(bars_from_any(str(path)))


def test_dict_refused():
    with raises("<dict>", "different lengths"):
        bars_from_any({"timestamp": np.arange(3), "close": [1.0, 2.0]})
    with raises("<dict>", "column 'close'", "cannot convert"):
        bars_from_any({"timestamp": np.arange(3), "close": [1.0, "x", object()]})
    with raises("cannot read bars from a builtins.list"):
        bars_from_any([1, 2, 3])


def test_table_is_not_copied():
    table = ohlc_table()
    bars = bars_from_table(table)
    buffer = table.column("close").chunk(0).buffers()[1]
    assert bars.close.__array_interface__["data"][0] == buffer.address
    assert bars.source == "<table>"


def test_many_chunks_are_joined():
    table = pa.concat_tables([ohlc_table().slice(0, 2), ohlc_table().slice(2)])
    assert table.column("close").num_chunks == 2
    assert_prices(bars_from_table(table))


# --------------------------------------------------------------------------
# column mapping and types


def test_column_mapping_and_user_names_in_errors(tmp_path):
    names = dict(timestamp="Date", open="O", high="H", low="L", close="C")
    table = ohlc_table(**names)
    columns = ColumnMap(**names)
    path = write(table, tmp_path / "bars.parquet")
    bars = load_bars(path, columns)
    assert_prices(bars)
    assert bars.columns == columns

    low = LOW.copy()
    low[3] = HIGH[3] + 1
    bad = write(table.set_column(3, "L", pa.array(low)), tmp_path / "bad.parquet")
    with raises(str(bad), "row 3", "high (column 'H')", "low (column 'L')"):
        load_bars(bad, columns)
    with raises(str(path), "no column 'timestamp'", "'Date', 'O'"):
        load_bars(path)


@pytest.mark.parametrize(
    ("names", "columns"),
    [
        (["timestamp", "close"], ColumnMap()),
        (["timestamp", "price"], ColumnMap()),
        (["timestamp", "mid", "open"], ColumnMap(price="mid")),
        (["ts", "last"], ColumnMap(timestamp="ts", close="last")),
    ],
)
def test_single_price(tmp_path, names, columns):
    cols = {names[0]: times(), names[1]: CLOSE}
    if len(names) > 2:
        cols[names[2]] = OPEN * 100  # ignored: a price column is set
    path = write(pa.table(cols), tmp_path / "ticks.feather")
    bars = load_bars(path, columns)
    assert bars.single_price
    assert bars.open is bars.high is bars.low is bars.close
    np.testing.assert_array_equal(bars.close, CLOSE)
    assert bars.columns.price == names[1]


def test_partial_ohlc_is_not_single_price():
    table = ohlc_table().drop_columns(["high", "low"])
    with raises("<table>", "no column 'high' for the high", "'open', 'close'"):
        bars_from_table(table)


def test_no_price_at_all():
    with raises("<table>", "no column 'open'", "needs 'close' or 'price'"):
        bars_from_table(pa.table({"timestamp": times(), "volume": OPEN}))


def test_price_types_become_float64():
    table = pa.table(
        {
            "timestamp": times(),
            "open": pa.array(OPEN.astype(np.int32)),
            "high": pa.array(HIGH.astype(np.float32)),
            "low": pa.array(
                [decimal.Decimal(str(x)) for x in LOW], pa.decimal128(10, 2)
            ),
            "close": pa.array(CLOSE).dictionary_encode(),
        }
    )
    bars = bars_from_table(table)
    for x in (bars.open, bars.high, bars.low, bars.close):
        assert x.dtype == np.float64
    np.testing.assert_array_equal(bars.low, LOW)
    np.testing.assert_array_equal(bars.close, CLOSE)


def test_dates_become_seconds():
    days = np.arange("2024-01-01", "2024-01-07", dtype="M8[D]")
    for typ in (pa.date32(), pa.date64()):
        table = ohlc_table().set_column(0, "timestamp", pa.array(days).cast(typ))
        bars = bars_from_table(table)
        assert bars.time_type == pa.timestamp("s")
        np.testing.assert_array_equal(bars.t, days.astype("M8[s]").view(np.int64))


def test_text_timestamps_are_parsed():
    text = [str(x) for x in times("ms")]
    bars = bars_from_table(ohlc_table().set_column(0, "timestamp", pa.array(text)))
    assert bars.time_type == pa.timestamp("ns")
    np.testing.assert_array_equal(bars.t, times("ns").view(np.int64))
    text = [s + "+01:00" for s in text]
    bars = bars_from_table(ohlc_table().set_column(0, "timestamp", pa.array(text)))
    assert bars.time_type == pa.timestamp("ns", "UTC")


def test_unparsable_timestamp_named_by_row(tmp_path):
    text = [str(x) for x in times("s")]
    text[4] = "02/01/2024 09:34"
    table = ohlc_table().set_column(0, "timestamp", pa.array(text))
    with raises("<table>", "column 'timestamp', row 4", "'02/01/2024 09:34'"):
        bars_from_table(table)
    path = write(table, tmp_path / "bars.csv")
    with raises(str(path), "column 'timestamp', row 4", "'02/01/2024 09:34'"):
        load_bars(path)


def test_bad_types():
    table = ohlc_table()
    with raises("<table>", "column 'high' has type bool"):
        bars_from_table(table.set_column(2, "high", pa.array([True] * N)))
    with raises("<table>", "column 'low' has type string", "row 2 holds 'n/a'"):
        low = [str(x) for x in LOW]
        low[2] = "n/a"
        bars_from_table(table.set_column(3, "low", pa.array(low)))
    with raises("<table>", "column 'timestamp' has type double"):
        bars_from_table(table.set_column(0, "timestamp", pa.array(OPEN)))


def test_bars_validates_itself():
    t = times().view(np.int64)
    with raises("Bars.t must be a int64 array"):
        Bars(t.astype(np.int32), OPEN, HIGH, LOW, CLOSE, pa.int64())
    with raises("Bars.close must be 1-D and C-contiguous"):
        Bars(t, OPEN, HIGH, LOW, np.repeat(CLOSE, 2)[::2], pa.int64())
    with raises("<arrays>: row 0: high (column 'high') = 9.0", "below low"):
        Bars(t, OPEN, LOW, HIGH, CLOSE, pa.int64())
    with raises("time_type must be"):
        Bars(t, OPEN, HIGH, LOW, CLOSE, pa.float64())


# --------------------------------------------------------------------------
# bad values, in every format


def mutate(case: str) -> tuple[pa.Table, list[str]]:
    """A bad table and the message parts expected (column and row)."""
    o, h, l, c = OPEN.copy(), HIGH.copy(), LOW.copy(), CLOSE.copy()  # noqa: E741
    t = times("ns").view(np.int64).copy()
    null_close = False
    if case == "null":
        null_close, parts = True, ["column 'close', row 3", "null"]
    elif case == "nan":
        h[2], parts = np.nan, ["column 'high', row 2", "re:(NaN|null)"]
    elif case == "inf":
        l[4], parts = np.inf, ["column 'low', row 4", "inf"]
    elif case == "-inf":
        c[1], parts = -np.inf, ["column 'close', row 1", "-inf"]
    elif case == "zero":
        o[1], parts = 0.0, ["column 'open', row 1", "0.0", "must be > 0"]
    elif case == "negative":
        c[5], parts = -1.0, ["column 'close', row 5", "-1.0", "must be > 0"]
    elif case == "high<low":
        h[3], parts = (
            l[3] - 0.5,
            ["row 3", "high (column 'high')", "low (column 'low')"],
        )
    elif case == "high<open":
        o[2], parts = h[2] + 0.25, ["row 2", "high (column 'high')", "open (column"]
    elif case == "high<close":
        c[2], parts = h[2] + 0.25, ["row 2", "high (column 'high')", "close (column"]
    elif case == "low>open":
        o[4], parts = l[4] - 0.25, ["row 4", "open (column 'open')", "below low"]
    elif case == "low>close":
        c[4], parts = l[4] - 0.25, ["row 4", "close (column 'close')", "below low"]
    elif case == "duplicate":
        t[3] = t[2]
        parts = ["column 'timestamp', row 3", "duplicated", "2024-01-02 09:32:00"]
    elif case == "backwards":
        t[4] = t[3] - 30 * 10**9
        parts = ["column 'timestamp', row 4", "backwards", "09:33:00", "09:32:30"]
    else:
        raise AssertionError(case)
    close = pa.array(c, mask=np.arange(N) == 3 if null_close else None)
    table = pa.table(
        {
            "timestamp": pa.array(t, pa.timestamp("ns")),
            "open": o,
            "high": h,
            "low": l,
            "close": close,
        }
    )
    return table, parts


CASES = [
    "null",
    "nan",
    "inf",
    "-inf",
    "zero",
    "negative",
    "high<low",
    "high<open",
    "high<close",
    "low>open",
    "low>close",
    "duplicate",
    "backwards",
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("ext", ["parquet", "feather", "csv"])
def test_bad_values_in_files(tmp_path, ext, case):
    table, parts = mutate(case)
    path = write(table, tmp_path / f"bars.{ext}")
    with raises(str(path), *parts):
        load_bars(path)


@pytest.mark.parametrize("case", CASES)
def test_bad_values_in_memory(case):
    table, parts = mutate(case)
    with raises("<table>", *parts):
        bars_from_table(table)
    with raises("<pandas.DataFrame>", *parts):
        bars_from_any(table.to_pandas())


def test_earliest_bad_row_is_reported():
    c = CLOSE.copy()
    c[4] = np.nan
    low = LOW.copy()
    low[2] = HIGH[2] + 1
    with raises("row 2", "below low"):
        bars_from_arrays(times(), OPEN, HIGH, low, c)


def test_null_timestamp(tmp_path):
    ts = pa.array(times().view(np.int64), pa.timestamp("ns"), mask=np.arange(N) == 1)
    path = write(ohlc_table().set_column(0, "timestamp", ts), tmp_path / "b.parquet")
    with raises(str(path), "column 'timestamp', row 1", "null"):
        load_bars(path)


def test_csv_bad_number_named_by_row(tmp_path):
    rows = ["timestamp,open,high,low,close"]
    rows += [f"{i},10,11,9,10.5" for i in range(5)]
    rows[3] = "2,10,11,9,ten"
    path = tmp_path / "bars.csv"
    path.write_text("\n".join(rows) + "\n")
    with raises(str(path), "column 'close', row 2", "'ten'"):
        load_bars(path)


@pytest.mark.parametrize("rows", [0, 1])
def test_fewer_than_two_bars(tmp_path, rows):
    path = write(ohlc_table().slice(0, rows), tmp_path / "bars.parquet")
    with raises(str(path), f"needs at least two bars, got {rows}"):
        load_bars(path)
    with raises("<arrays>", f"got {rows}"):
        bars_from_arrays(
            times()[:rows], OPEN[:rows], HIGH[:rows], LOW[:rows], CLOSE[:rows]
        )


def test_duplicate_column_names():
    table = pa.Table.from_arrays(
        [pa.array(times()), pa.array(CLOSE), pa.array(OPEN)],
        names=["timestamp", "close", "close"],
    )
    with raises("<table>", "column 'close' appears more than once"):
        bars_from_table(table)
