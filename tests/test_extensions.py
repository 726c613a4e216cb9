"""Hand-worked cases and refusals for the extensions of the label contract.

Each case writes its numbers out; the differential tests against the plain
reference live in ``test_extensions_reference.py``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from engine import LabelConfig, label
from engine.config import parse_grid
from engine.data import ColumnMap, bars_from_table, split_symbols
from engine.errors import DataError
from engine.events import cusum_events, event_ticks, events_at_times
from engine.fine import FinePath
from engine.run import Source, run

SEC = pa.timestamp("s")


def table(rows, side=None, unit=SEC):
    """Bars from (t, o, h, l, c) rows; t in seconds."""
    t, o, h, l, c = (list(x) for x in zip(*rows, strict=True))
    stamps = pa.array(t, pa.int64()).cast(SEC).cast(unit)
    cols = {"timestamp": stamps, "open": o, "high": h,
            "low": l, "close": c}  # fmt: skip
    if side is not None:
        cols["signal"] = pa.array(side, pa.int8())
    return pa.table(cols)


FLAT = [(60 * k, 100.0, 100.0, 100.0, 100.0) for k in range(6)]


# -- events -------------------------------------------------------------------


def test_cusum_by_hand():
    # r = log returns; +h = 0.015. Bar 2: s_pos = .00995 + .00985 > .015.
    # Bar 3: s_neg = log(100/102) = -.0198 < -.015. Bar 4: s_neg = -.01005.
    # Bar 5: s_pos = log(103/99) = .0396 > .015 (s_neg goes back to 0).
    close = np.array([100, 101, 102, 100, 99, 103, 103.0])
    assert cusum_events(close, 0.015).tolist() == [2, 3, 5]
    assert cusum_events(close, 0.05).tolist() == []
    with pytest.raises(ValueError, match="threshold"):
        cusum_events(close, 0.0)


def test_cusum_resets_each_side_on_its_own():
    # Up 0.6 %, 0.6 %: s_pos crosses 0.01 at bar 2 and restarts; then three
    # falls of 0.4 % push s_neg below -0.01 at bar 5 only.
    close = 100 * np.exp(np.cumsum([0, 0.006, 0.006, -0.004, -0.004, -0.004]))
    assert cusum_events(close, 0.01).tolist() == [2, 5]


def test_event_times_map_to_the_last_bar_at_or_before():
    bars = bars_from_table(table(FLAT))
    # 30 s -> bar 0, 60 s -> bar 1 (exactly on it), 59 s -> bar 0, 400 s -> 5.
    assert events_at_times(bars, np.array([30, 60, 59, 400])).tolist() == [0, 1, 5]
    with pytest.raises(DataError, match=r"signals.csv: row 1: event time .* before"):
        events_at_times(bars, np.array([30, -1]), "signals.csv")


def test_event_times_in_another_unit_and_zone():
    ny = pa.timestamp("ns", "America/New_York")
    bars = bars_from_table(table(FLAT, unit=ny))
    # 1970-01-01 00:01:30 UTC is 19:01:30 of the day before in New York: as a
    # naive wall-clock time it means 19:01:30 local = 00:01:30 UTC -> bar 1.
    naive = pa.chunked_array([pa.array(["1969-12-31T19:01:30"]).cast(SEC)])
    assert events_at_times(bars, event_ticks(naive, bars, "t", "e")).tolist() == [1]
    utc = pa.chunked_array(
        [pa.array([90_000], pa.int64()).cast(pa.timestamp("ms", "UTC"))]
    )
    assert events_at_times(bars, event_ticks(utc, bars, "t", "e")).tolist() == [1]


def test_api_events_out_of_range():
    with pytest.raises(DataError, match="outside the path's bars 0..5"):
        label(table(FLAT), LabelConfig("long", 0.01, 0.01, 2), events=[0, 6])


def test_only_events_get_rows():
    out = label(table(FLAT), LabelConfig("long", 0.01, 0.01, 2), events=[4, 1, 1])
    assert out.column("event_index").to_pylist() == [1, 4]


# -- sides and meta-labels ----------------------------------------------------


def test_side_column_meta_labels_by_hand():
    rows = [
        (0, 100.0, 100.0, 100.0, 100.0),
        (60, 100.0, 101.5, 100.0, 101.0),  # up 1.5 %
        (120, 101.0, 101.0, 99.0, 99.5),
        (180, 99.5, 99.5, 97.0, 98.0),
    ]
    bars = table(rows, side=[1, -1, 0, 1])
    cfg = LabelConfig(side="column", target=0.01, stop=0.01, horizon=2)
    out = label(bars, cfg, float64=True, column_map=ColumnMap(side="signal"))
    got = out.select(["event_index", "label", "meta_label", "ret"]).to_pylist()
    # Bar 0 long from 100: bar 1 high 101.5 >= 101 -> +1, ret 0.01, meta 1.
    # Bar 1 short from 101: T = 99.99, S = 102.01; bar 2 low 99 <= 99.99 -> +1.
    # Bar 2 has side 0: no row. Bar 3 long: empty window -> 0, meta 0.
    assert [r["event_index"] for r in got] == [0, 1, 3]
    assert [r["label"] for r in got] == [1, 1, 0]
    assert [r["meta_label"] for r in got] == [1, 1, 0]
    assert got[0]["ret"] == 1 * (100.0 * (1.0 + 0.01) / 100.0 - 1.0)
    assert got[1]["ret"] == -1 * (101.0 * (1.0 - 0.01) / 101.0 - 1.0)


def test_side_column_needed_and_checked():
    cfg = LabelConfig(side="column", target=0.01, stop=0.01, horizon=2)
    with pytest.raises(DataError, match="needs a side column"):
        label(table(FLAT), cfg)
    bad = table(FLAT, side=[1, 0, 2, 1, 1, 1])
    with pytest.raises(DataError, match="column 'signal', row 2: side 2 is not"):
        label(bad, cfg, column_map=ColumnMap(side="signal"))
    with pytest.raises(DataError, match="no column 'sig' for the side"):
        label(bad, cfg, column_map=ColumnMap(side="sig"))


def test_null_side_is_no_event():
    t = table(FLAT).append_column("signal", pa.array([1, None, -1, None, 1, 1]))
    cfg = LabelConfig(side="column", target=0.01, stop=0.01, horizon=2)
    out = label(t, cfg, column_map=ColumnMap(side="signal"))
    assert out.column("event_index").to_pylist() == [0, 2, 4, 5]


# -- volatility-scaled barriers -----------------------------------------------


def test_vol_barrier_by_hand():
    closes = [100.0, 101.0, 100.0, 102.0, 101.0, 110.0]
    rows = [(60 * k, c, 110.0, 90.0, c) for k, c in enumerate(closes)]
    rows[0] = (0, 100.0, 100.0, 100.0, 100.0)
    cfg = LabelConfig(side="long", target="2vol", stop="3vol", horizon=1,
                      vol_window=2)  # fmt: skip
    out = label(table(rows), cfg, float64=True).to_pylist()
    # sigma[i] needs W = 2 returns: bars 0 and 1 have no row.
    assert [r["event_index"] for r in out] == [2, 3, 4, 5]
    r2 = np.array([101 / 100 - 1, 100 / 101 - 1])
    sigma2 = np.std(r2, ddof=1)
    # Event 2 (e = 100): bar 3 spans 90..110, both touched, open 102 < U
    # = 100 * (1 + 2 sigma): ambiguous, stop_first -> -1 at L.
    first = out[0]
    assert first["ambiguous"] and first["label"] == -1
    expected = -0.0 + (100.0 * (1.0 - 3 * sigma2) / 100.0 - 1.0)
    assert first["ret"] == pytest.approx(expected, rel=1e-12)


def test_vol_undefined_everywhere_gives_no_rows():
    cfg = LabelConfig(side="long", target="1vol", stop=0.01, horizon=2,
                      vol_window=50)  # fmt: skip
    assert label(table(FLAT), cfg).num_rows == 0


# -- entry at the next open ---------------------------------------------------


def test_next_open_by_hand():
    rows = [
        (0, 100.0, 100.0, 100.0, 100.0),
        (60, 102.0, 103.1, 101.5, 102.5),  # entry bar: e = 102, U = 103.02
        (120, 102.5, 102.6, 100.9, 101.0),  # L = 100.98: stop touched
    ]
    cfg = LabelConfig(side="long", target=0.01, stop=0.01, horizon=2,
                      entry="next_open")  # fmt: skip
    out = label(table(rows), cfg, float64=True).to_pylist()
    # The last bar has no next open: no row for it.
    assert [r["event_index"] for r in out] == [0, 1]
    r0 = out[0]
    # Bar 1's own high 103.1 >= 103.02 counts: +1 on bar 1, filled at U.
    assert (r0["label"], r0["exit_index"], r0["holding"]) == (1, 1, 1)
    assert r0["ret"] == 102.0 * (1.0 + 0.01) / 102.0 - 1.0
    assert r0["first_stop"] == 2
    assert r0["mfe"] == 103.1 / 102.0 - 1.0
    # Event 1 enters at bar 2's open 102.5: L = 101.475, bar 2 low 100.9.
    r1 = out[1]
    assert (r1["label"], r1["exit_index"]) == (-1, 2)


# -- finer path ---------------------------------------------------------------


def ambiguous_bars():
    return table([
        (0, 100.0, 100.0, 100.0, 100.0),
        (60, 100.0, 102.0, 98.0, 100.0),  # touches 101 and 99: ambiguous
        (120, 100.0, 100.0, 100.0, 100.0),
        (180, 100.0, 102.0, 98.0, 100.0),  # ambiguous too
    ])  # fmt: skip


def ticks(rows):
    t, p = zip(*rows, strict=True)
    return pa.table({"timestamp": pa.array(t, pa.int64()).cast(SEC), "price": p})


def test_fine_path_settles_by_hand():
    cfg = LabelConfig(side="long", target=0.01, stop=0.01, horizon=1,
                      ambiguity="stop_first")  # fmt: skip
    bars = ambiguous_bars()
    plain = label(bars, cfg, float64=True).to_pylist()
    assert plain[0]["ambiguous"] and plain[0]["label"] == -1
    fine = ticks([
        (0, 100.0), (61, 100.5), (70, 101.2), (80, 98.5),  # bar 1: target first
        (130, 100.0),  # nothing inside bar 3's span [180, 240): stays ambiguous
        (250, 100.0),
    ])  # fmt: skip
    out = label(bars, cfg, float64=True, fine=fine).to_pylist()
    assert out[0]["label"] == 1 and not out[0]["ambiguous"]
    assert out[0]["ret"] == 100.0 * (1.0 + 0.01) / 100.0 - 1.0
    assert out[0]["exit_index"] == 1 and out[0]["mfe"] == plain[0]["mfe"]
    assert out[2]["ambiguous"] and out[2]["label"] == -1


def test_fine_bars_touching_both_use_their_open():
    cfg = LabelConfig(side="short", target=0.01, stop=0.01, horizon=1,
                      ambiguity="target_first")  # fmt: skip
    fine = pa.table({
        "timestamp": pa.array([0, 60, 90, 180], pa.int64()).cast(SEC),
        "open": [100.0, 101.5, 100.0, 100.0],  # opens above S = 101: stop
        "high": [100.0, 102.0, 100.0, 100.0],
        "low": [100.0, 98.0, 100.0, 100.0],
        "close": [100.0, 100.0, 100.0, 100.0],
    })  # fmt: skip
    out = label(ambiguous_bars(), cfg, float64=True, fine=fine).to_pylist()
    assert out[0]["label"] == -1 and not out[0]["ambiguous"]
    assert out[0]["ret"] == -1 * (100.0 * (1.0 + 0.01) / 100.0 - 1.0)


def test_fine_path_refusals():
    cfg = LabelConfig(side="long", target=0.01, stop=0.01, horizon=1)
    with pytest.raises(DataError, match="row 2: timestamps go back"):
        label(ambiguous_bars(), cfg, fine=ticks([(0, 100.0), (70, 1.0), (65, 1.0),
                                                 (200, 1.0)]))  # fmt: skip
    with pytest.raises(DataError, match="must cover the bars"):
        label(ambiguous_bars(), cfg, fine=ticks([(0, 100.0), (70, 100.0)]))
    with pytest.raises(DataError, match="must cover the bars"):
        label(ambiguous_bars(), cfg, fine=ticks([(61, 100.0), (200, 100.0)]))
    with pytest.raises(DataError, match="column 'price', row 1"):
        label(ambiguous_bars(), cfg, fine=ticks([(0, 1.0), (70, -1.0), (200, 1.0)]))


def test_fine_path_from_a_file(tmp_path):
    path = tmp_path / "ticks.parquet"
    pq.write_table(ticks([(0, 100.0), (61, 98.9), (70, 101.5), (200, 100.0)]), path)
    bars = bars_from_table(ambiguous_bars())
    fine = FinePath.from_any(path, ColumnMap(), bars)
    cfg = LabelConfig(side="long", target=0.01, stop=0.01, horizon=1,
                      ambiguity="target_first")  # fmt: skip
    out = label(bars, cfg, fine=fine).to_pylist()
    assert out[0]["label"] == -1 and not out[0]["ambiguous"]


# -- universes ----------------------------------------------------------------


def universe_table():
    rows = {
        "timestamp": pa.array([0, 60, 120, 0, 60, 0], pa.int64()).cast(SEC),
        "ticker": ["A", "A", "A", "B", "B", "C"],
        "open": [100.0, 100.0, 100.0, 50.0, 50.0, 10.0],
        "high": [100.0, 100.5, 100.0, 50.0, 60.0, 10.0],
        "low": [100.0, 99.5, 100.0, 50.0, 50.0, 10.0],
        "close": [100.0, 100.0, 100.0, 50.0, 55.0, 10.0],
    }
    return pa.table(rows)


def test_universe_labels_each_symbol_on_its_own_path(tmp_path):
    paths = split_symbols(universe_table(), ColumnMap(symbol="ticker"), "<u>")
    assert [s for s, _ in paths] == ["A", "B", "C"]
    grid = parse_grid({"grid": {"side": "long", "target": 0.01, "stop": 0.01,
                                "horizon": 5}})  # fmt: skip
    summary = run(paths, grid, tmp_path / "out", chunk_events=2)
    assert summary.symbols == 3
    got = ds.dataset(tmp_path / "out" / "labels", partitioning="hive").to_table()
    rows = sorted(got.to_pylist(), key=lambda r: (r["symbol"], r["event_index"]))
    by = {(r["symbol"], r["event_index"]): r for r in rows}
    # A's last bar is truncated at its own end, never reaching B's bars.
    assert by[("A", 2)]["exit_index"] == 2 and by[("A", 2)]["truncated"]
    assert by[("A", 0)]["label"] == 0 and by[("A", 0)]["exit_index"] == 2
    # B bar 0 (50): bar 1 high 60 >= 50.5 -> +1.
    assert by[("B", 0)]["label"] == 1 and by[("B", 0)]["exit_index"] == 1
    # C has a single bar: an empty window.
    c0 = by[("C", 0)]
    assert (c0["label"], c0["exit_index"], c0["ret"], c0["truncated"]) == (
        0, 0, 0.0, True)  # fmt: skip
    assert len(rows) == 6


def test_universe_errors_name_symbol_and_row():
    t = universe_table()
    t = t.set_column(0, "timestamp", pa.array([0, 60, 60, 0, 60, 0], pa.int64()))
    with pytest.raises(DataError, match=r"symbol A.*row 2 of <u>"):
        split_symbols(t, ColumnMap(symbol="ticker"), "<u>")
    with pytest.raises(DataError, match="no symbol column 'sym'"):
        split_symbols(t, ColumnMap(symbol="sym"), "<u>")


def test_universe_refuses_index_events_and_fine_paths():
    paths = split_symbols(universe_table(), ColumnMap(symbol="ticker"), "<u>")
    with pytest.raises(DataError, match="single path"):
        Source.of(paths, events=np.array([0]))
    with pytest.raises(DataError, match="finer path"):
        Source.of(paths, fine=object())


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ({"side": "column", "horizon": 2}, "needs a side column"),
        ({"side": "long", "horizon": "1.5s"}, "not a whole number"),
    ],
)
def test_refused_configurations_write_nothing(grid, message, tmp_path):
    spec = parse_grid({"grid": {"target": 0.01, "stop": 0.01, **grid}})
    out = tmp_path / "out"
    with pytest.raises(DataError, match=message):
        run(bars_from_table(table(FLAT)), spec, out)
    assert not out.exists()
