"""The engine against the plain reference, on random paths (the label contract).

Labels, indexes, flags and nulls must be equal; floats within the tolerances
of :mod:`tolerances`. A derandomised sweep also checks that the generated
cases keep exercising every rule, so the properties cannot quietly stop
testing one.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from reference import SIDES, barriers, reference_labels
from strategies import Case, case_bars, case_config, cases, engine_rows, random_walk
from tolerances import assert_rows_match

from engine import label


def categories(case: Case, rows: list[dict]) -> set[str]:
    """The rules of the contract that this case's reference rows exercise."""
    s = SIDES[case.side]
    seen = {case.side, "bars" if case.horizon_bars is not None else "duration"}
    if case.n == 2:
        seen.add("n=2")
    if np.all(case.h == case.l) and np.all(case.c == case.c[0]):
        seen.add("constant")
    for r in rows:
        i, x, lab = r["event_index"], r["exit_index"], r["label"]
        tgt, stp = barriers(float(case.c[i]), s, case.target, case.stop)
        seen.add(f"label {lab:+d}")
        if r["ambiguous"]:
            seen.add(f"ambiguous {case.ambiguity}")
        elif lab and r["first_target"] == r["first_stop"]:
            seen.add(f"same bar, open beyond {'target' if lab > 0 else 'stop'}")
        if lab and float(case.o[x]) in (tgt, stp):
            seen.add("open exactly on a barrier")
        elif lab and (s * (case.o[x] - (tgt if lab > 0 else stp)) * lab) > 0:
            seen.add("gap through a barrier")
        if lab and (case.h[x] in (tgt, stp) or case.l[x] in (tgt, stp)):
            seen.add("high or low exactly on a barrier")
        if None not in (r["first_target"], r["first_stop"]) and (
            r["first_target"] != r["first_stop"]
        ):
            seen.add("both touched on different bars")
        if r["truncated"]:
            seen.add("truncated")
        elif lab == 0 and r["holding"] > 0:
            seen.add("real timeout")
        if r["holding"] == 0:
            seen.add("empty window, last bar" if i == case.n - 1 else "empty window")
    return seen


def note(case: Case, rows: list[dict]) -> None:
    for name in sorted(categories(case, rows)):
        event(name)


def assert_times_match(table: pa.Table, case: Case) -> None:
    """event_time and exit_time are t[i] and t[x], in the input's unit."""
    for name, index in (("event_time", "event_index"), ("exit_time", "exit_index")):
        assert table.schema.field(name).type == pa.timestamp("s")
        ticks = table[name].cast(pa.int64()).to_numpy()
        np.testing.assert_array_equal(ticks, case.t[table[index].to_numpy()])


COLUMNS = [
    ("event_index", pa.int64()),
    ("event_time", pa.timestamp("s")),
    ("label", pa.int8()),
    ("exit_index", pa.int64()),
    ("exit_time", pa.timestamp("s")),
    ("holding", pa.int32()),
    ("ret", pa.float32()),
    ("mfe", pa.float32()),
    ("mae", pa.float32()),
    ("first_target", pa.int64()),
    ("first_stop", pa.int64()),
    ("ambiguous", pa.bool_()),
    ("truncated", pa.bool_()),
]


def test_output_columns_and_types():
    """The columns of labels.md, in its order and with its types."""
    t = np.array([0, 1, 2], dtype=np.int64)
    p = np.array([100.0, 103.0, 97.0])
    case = Case(t, p, p, p, p, "long", 0.02, 0.01, "stop_first", 1)
    table = label(case_bars(case), case_config(case))
    assert [(f.name, f.type) for f in table.schema] == COLUMNS
    assert table["first_target"].to_pylist() == [1, None, None]
    assert table["first_stop"].to_pylist() == [None, 2, None]
    wide = label(case_bars(case), case_config(case), float64=True).schema
    assert [wide.field(k).type for k in ("ret", "mfe", "mae")] == [pa.float64()] * 3


@pytest.mark.parametrize("horizon", ["bars", "duration"])
@pytest.mark.parametrize("side", ["long", "short"])
@given(data=st.data())
def test_float64_matches_reference(side, horizon, data):
    case = data.draw(cases(side=side, horizon=horizon))
    expected = case.reference()
    note(case, expected)
    table = label(case_bars(case), case_config(case), float64=True)
    assert_rows_match(table.to_pylist(), expected, float64=True)
    assert_times_match(table, case)


@given(cases())
def test_float32_default_matches_reference(case):
    expected = case.reference()
    table = label(case_bars(case), case_config(case))
    assert table.schema.field("ret").type == pa.float32()
    assert_rows_match(table.to_pylist(), expected, float64=False)


@settings(max_examples=100)
@given(cases())
def test_sequential_kernel_matches_reference(case):
    table = label(case_bars(case), case_config(case), threads=1, float64=True)
    assert_rows_match(table.to_pylist(), case.reference(), float64=True)


@settings(max_examples=100)
@given(cases(), st.data())
def test_chosen_events_match_reference(case, data):
    events = data.draw(
        st.lists(st.integers(0, case.n - 1), min_size=1, unique=True).map(sorted)
    )
    table = label(case_bars(case), case_config(case), events=events, float64=True)
    assert_rows_match(table.to_pylist(), case.reference(events), float64=True)


@settings(max_examples=100)
@given(cases())
def test_ambiguity_rule_changes_only_ambiguous_rows(case):
    cfgs = [case_config(case)]
    other = "target_first" if case.ambiguity == "stop_first" else "stop_first"
    flipped = dataclasses.replace(case, ambiguity=other)
    cfgs.append(case_config(flipped))
    table = label(case_bars(case), cfgs, float64=True)
    rows = table.to_pylist()
    n = case.n
    assert [r["config"] for r in rows] == [cfgs[0].id] * n + [cfgs[1].id] * n
    first, second = case.reference(), flipped.reference()
    assert_rows_match(rows[:n], first, float64=True)
    assert_rows_match(rows[n:], second, float64=True)
    for a, b in zip(first, second, strict=True):
        assert a["ambiguous"] == b["ambiguous"]
        assert (a["label"] == -b["label"]) if a["ambiguous"] else (a == b)


def long_case(seed, n, side, target, stop, horizon, ambiguity="stop_first") -> Case:
    """A seeded random walk of n bars; ``horizon`` bars (int) or seconds (str)."""
    t, o, h, l, c = random_walk(np.random.default_rng(seed), n)  # noqa: E741
    if isinstance(horizon, str):
        hz = {"horizon_ticks": int(horizon[:-1]), "horizon_text": horizon}
    else:
        hz = {"horizon_bars": horizon}
    return Case(t, o, h, l, c, side, target, stop, ambiguity, **hz)


def assert_sample_matches(case: Case, rows: list[dict], sample) -> None:
    """Rows of a table of every bar, at the bar indexes ``sample``."""
    sample = sorted(set(int(i) for i in sample))
    got = [rows[i] for i in sample]
    assert_rows_match(got, case.reference(sample), float64=True)


LONG = [
    ("long", 0.05, 0.08, 8500),
    ("short", 0.3, 0.3, 8500),
    ("long", 0.3, 0.3, 4200),
    ("short", 0.01, 0.5, 20),
    ("long", 0.1, 0.1, "300000s"),
]


@pytest.mark.parametrize(("side", "target", "stop", "horizon"), LONG)
def test_sparse_events_on_long_paths(side, target, stop, horizon):
    """Few events, long windows: the 16-, 256- and 4,096-bar block skips."""
    case = long_case(0, 9000, side, target, stop, horizon)
    rng = np.random.default_rng(1)
    events = np.unique(np.r_[rng.integers(0, 9000, 40), 0, 1, 4095, 4096, 8998, 8999])
    table = label(case_bars(case), case_config(case), events=events, float64=True)
    assert_rows_match(table.to_pylist(), case.reference(events), float64=True)


@pytest.mark.parametrize(
    ("side", "target", "stop", "horizon"),
    [
        ("long", 0.02, 0.03, 700),
        ("short", 0.05, 0.01, 700),
        ("long", 0.1, 0.1, "40000s"),
    ],
)
def test_every_event_on_long_paths(side, target, stop, horizon):
    """Every bar an event, long windows: the dense kernel with long chains."""
    case = long_case(2, 6000, side, target, stop, horizon, "target_first")
    rows = label(case_bars(case), case_config(case), float64=True).to_pylist()
    rng = np.random.default_rng(3)
    sample = np.r_[rng.integers(0, 6000, 120), 0, 1, 2, 5297, 5298, 5299, 5998, 5999]
    assert_sample_matches(case, rows, sample)


def test_parallel_runs_match_sequential_and_reference():
    """Enough events that the parallel kernel splits them into several runs."""
    n = 40_000
    case = long_case(4, n, "long", 0.004, 0.003, 40, "target_first")
    bars, config = case_bars(case), case_config(case)
    parallel = label(bars, config, threads=2, float64=True)
    sequential = label(bars, config, threads=1, float64=True)
    assert parallel.equals(sequential)
    rng = np.random.default_rng(5)
    edges = [i for r in range(1, 8) for i in range(r * n // 8 - 45, r * n // 8 + 3)]
    sample = np.r_[rng.integers(0, n, 100), edges, n - 41, n - 40, n - 1]
    assert_sample_matches(case, parallel.to_pylist(), sample)


REQUIRED = {
    "long",
    "short",
    "bars",
    "duration",
    "n=2",
    "constant",
    "label +1",
    "label -1",
    "label +0",
    "ambiguous stop_first",
    "ambiguous target_first",
    "same bar, open beyond target",
    "same bar, open beyond stop",
    "open exactly on a barrier",
    "gap through a barrier",
    "high or low exactly on a barrier",
    "both touched on different bars",
    "truncated",
    "real timeout",
    "empty window",
    "empty window, last bar",
}


def test_generated_cases_exercise_every_rule():
    """A fixed sweep of the strategy: every rule occurs, and the engine agrees."""
    seen: Counter[str] = Counter()

    @settings(max_examples=300, derandomize=True, database=None)
    @given(cases())
    def sweep(case):
        expected = case.reference()
        seen.update(categories(case, expected))
        assert_rows_match(engine_rows(case), expected, float64=True)

    sweep()
    assert REQUIRED <= set(seen), sorted(REQUIRED - set(seen))


def test_reference_rejects_bad_arguments():
    args = ([0, 1], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="exactly one"):
        reference_labels(*args, side="long", target=0.1, stop=0.1)
    with pytest.raises(ValueError, match="side"):
        reference_labels(*args, side="up", target=0.1, stop=0.1, horizon_bars=1)
