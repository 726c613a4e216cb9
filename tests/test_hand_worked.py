"""One small hand-worked case per rule of the label contract.

Every expected number is worked out by hand from ``shared/spec/labels.md`` and
written here as a literal; each case is checked against the reference and the
engine. Unless a test says otherwise the entry is e = c[0] = 100 with target
0.02 and stop 0.01, so a long has U = 102 and L = 99, a short T = 98, S = 101.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from reference import output_row
from strategies import Case, engine_rows
from tolerances import EXACT_KEYS, FLOAT_KEYS, HAND_ATOL, HAND_RTOL

FLAT = (100.0, 100.0, 100.0, 100.0)


def make_case(
    bars,
    *,
    side="long",
    target=0.02,
    stop=0.01,
    horizon=3,
    ambiguity="stop_first",
    t=None,
) -> Case:
    """A case from (open, high, low, close) rows; t defaults to 0, 1, 2, ..."""
    columns = zip(*bars, strict=True)
    o, h, l, c = (np.array(col, dtype=np.float64) for col in columns)  # noqa: E741
    t = np.arange(len(bars), dtype=np.int64) if t is None else np.array(t, np.int64)
    if isinstance(horizon, str):
        ticks = {"horizon_ticks": int(horizon[:-1]), "horizon_text": horizon}
    else:
        ticks = {"horizon_bars": horizon}
    return Case(t, o, h, l, c, side, target, stop, ambiguity, **ticks)


def row(
    i, label, x, ret, mfe, mae, ft=None, fs=None, ambiguous=False, truncated=False
) -> dict:
    """An expected output row for event i exiting at bar x; holding is x - i."""
    return output_row(i, label, x, ret, mfe, mae, ft, fs, ambiguous, truncated)


def check(case: Case, expected: dict) -> None:
    """The reference's and the engine's row for the event equal ``expected``."""
    i = expected["event_index"]
    for name, rows in (("reference", case.reference()), ("engine", engine_rows(case))):
        got = rows[i]
        for key in EXACT_KEYS:
            assert got[key] == expected[key], (name, key, got)
            assert (got[key] is None) == (expected[key] is None), (name, key, got)
        for key in FLOAT_KEYS:
            assert math.isclose(
                got[key], expected[key], rel_tol=HAND_RTOL, abs_tol=HAND_ATOL
            ), (name, key, got)


# Long side: U = 102, L = 99.


def test_target_first():
    bars = [FLAT, (100, 101, 99.5, 100.5), (100.5, 102.5, 100, 102), (102, 103, 98, 99)]
    # Target at bar 2 (102.5 >= 102), stop only at bar 3 (98 <= 99), after the
    # exit: both are still reported. Exit price U = 102 (open 100.5 < U).
    check(make_case(bars), row(0, 1, 2, 0.02, 0.025, -0.005, ft=2, fs=3))


def test_stop_first():
    bars = [FLAT, (100, 101, 98.5, 99), (99, 102, 99, 101.5)]
    # Stop at bar 1 (98.5 <= 99), target at bar 2; exit price L = 99.
    check(make_case(bars), row(0, -1, 1, -0.01, 0.01, -0.015, ft=2, fs=1))


def test_neither_touched_exits_at_end_with_close():
    bars = [FLAT, (100, 101, 99.5, 100.5), (100.5, 101.5, 99.5, 101), FLAT, FLAT]
    # H = 2: end(0) = 2, a real timeout (0 + 2 <= 4); exit price c[2] = 101.
    case = make_case(bars, horizon=2)
    check(case, row(0, 0, 2, 0.01, 0.015, -0.005))


def test_barrier_touched_exactly():
    bars = [FLAT, (100, 102, 99, 101)]
    # h = 102 == U and l = 99 == L: both touch (>= and <=) on one bar, with
    # the open between them: ambiguous, stop_first decides, exit price L.
    check(make_case(bars), row(0, -1, 1, -0.01, 0.02, -0.01, 1, 1, ambiguous=True))


def test_same_bar_open_beyond_target():
    bars = [FLAT, (103, 104, 98, 100)]
    # Both touched at bar 1, but the open 103 >= U: the target came first and
    # the exit is at the open (a gap through the barrier).
    check(make_case(bars), row(0, 1, 1, 0.03, 0.04, -0.02, ft=1, fs=1))


def test_same_bar_open_exactly_on_target():
    bars = [FLAT, (102, 103, 98, 100)]
    # o = 102 == U counts as beyond it: +1, not ambiguous, exit price 102.
    check(make_case(bars), row(0, 1, 1, 0.02, 0.03, -0.02, ft=1, fs=1))


def test_same_bar_open_beyond_stop():
    bars = [FLAT, (98.5, 102.5, 98, 101)]
    # Both touched at bar 1, the open 98.5 <= L: the stop came first, at 98.5.
    check(make_case(bars), row(0, -1, 1, -0.015, 0.025, -0.02, ft=1, fs=1))


@pytest.mark.parametrize(
    ("rule", "label", "ret"), [("stop_first", -1, -0.01), ("target_first", 1, 0.02)]
)
def test_same_bar_ambiguous(rule, label, ret):
    bars = [FLAT, (100, 102.5, 98.5, 100)]
    # Both touched at bar 1 with the open between: the rule decides.
    case = make_case(bars, ambiguity=rule)
    check(case, row(0, label, 1, ret, 0.025, -0.015, 1, 1, ambiguous=True))


def test_gap_through_target_exits_at_open():
    bars = [FLAT, (100, 101, 99.5, 100.5), (103, 103.5, 102.5, 103)]
    check(make_case(bars), row(0, 1, 2, 0.03, 0.035, -0.005, ft=2))


def test_gap_through_stop_exits_at_open():
    bars = [FLAT, (97, 97.5, 96, 97)]
    check(make_case(bars), row(0, -1, 1, -0.03, -0.025, -0.04, fs=1))


def test_both_touched_on_different_bars_later_target_reported():
    bars = [FLAT, (100, 100.5, 98, 99.5), (99.5, 100, 99.5, 100), (100, 105, 100, 104)]
    # Stop at bar 1; the target at bar 3 is past the exit and still reported.
    check(make_case(bars), row(0, -1, 1, -0.01, 0.005, -0.02, ft=3, fs=1))


# Short side: T = 98, S = 101; ret = -(exit / e - 1).


def test_short_target_first():
    bars = [FLAT, (100, 100.5, 97.5, 98)]
    # l = 97.5 <= T: +1 at T = 98. mfe = 1 - 97.5/100, mae = 1 - 100.5/100.
    check(make_case(bars, side="short"), row(0, 1, 1, 0.02, 0.025, -0.005, ft=1))


def test_short_stop_first():
    bars = [FLAT, (100, 101.5, 99.5, 101), (101, 101, 97, 97)]
    case = make_case(bars, side="short")
    check(case, row(0, -1, 1, -0.01, 0.005, -0.015, ft=2, fs=1))


def test_short_gap_up_through_stop():
    bars = [FLAT, (102, 102.5, 101.5, 102)]
    # o = 102 >= S: exit at the open 102, ret = -(1.02 - 1).
    check(make_case(bars, side="short"), row(0, -1, 1, -0.02, -0.015, -0.025, fs=1))


def test_short_same_bar_open_beyond_target():
    bars = [FLAT, (97.5, 101.5, 97, 100)]
    # Both touched; o = 97.5 <= T: +1 at the open.
    case = make_case(bars, side="short")
    check(case, row(0, 1, 1, 0.025, 0.03, -0.015, ft=1, fs=1))


def test_short_same_bar_open_beyond_stop():
    bars = [FLAT, (101.5, 102, 97.5, 100)]
    case = make_case(bars, side="short")
    check(case, row(0, -1, 1, -0.015, 0.025, -0.02, ft=1, fs=1))


@pytest.mark.parametrize(
    ("rule", "label", "ret"), [("stop_first", -1, -0.01), ("target_first", 1, 0.02)]
)
def test_short_same_bar_ambiguous(rule, label, ret):
    bars = [FLAT, (100, 101.5, 97.5, 100)]
    case = make_case(bars, side="short", ambiguity=rule)
    check(case, row(0, label, 1, ret, 0.025, -0.015, 1, 1, ambiguous=True))


# The vertical barrier and the end of the data.


def test_truncated_versus_real_timeout():
    bars = [FLAT, (100, 100.5, 99.5, 100.5), (100.5, 101, 100, 101)]
    # H = 2 fits (0 + 2 <= 2): a real timeout at c[2] = 101.
    check(make_case(bars, horizon=2), row(0, 0, 2, 0.01, 0.01, -0.005))
    # H = 3 reaches past the data: the same exit, but truncated.
    case = make_case(bars, horizon=3)
    check(case, row(0, 0, 2, 0.01, 0.01, -0.005, truncated=True))
    # Event 1 (e = 100.5) with H = 1 ends at bar 2, the last bar: not truncated.
    case = make_case(bars, horizon=1)
    check(case, row(1, 0, 2, 0.5 / 100.5, 0.5 / 100.5, -0.5 / 100.5))


def test_empty_window_at_last_bar():
    bars = [FLAT, (100, 100.5, 99.5, 100.5)]
    # The last bar has no window: label 0, exit = itself, everything 0; its
    # vertical barrier lies past the data, so the 0 is truncated.
    check(make_case(bars, horizon=1), row(1, 0, 1, 0.0, 0.0, 0.0, truncated=True))


def test_duration_window_with_irregular_timestamps():
    t = [0, 5, 7, 20, 21]
    bars = [FLAT, (100, 101, 99.5, 100.5), (100.5, 101.5, 100, 101), FLAT, FLAT]
    case = make_case(bars, horizon="7s", t=t)
    # end(0): t <= 0 + 7 includes bar 2 at exactly 7: exit c[2] = 101.
    check(case, row(0, 0, 2, 0.01, 0.015, -0.005))
    # end(1) = 2 (t = 12 falls before bar 3 at 20); e = 100.5.
    check(case, row(1, 0, 2, 0.5 / 100.5, 1.0 / 100.5, -0.5 / 100.5))
    # Bar 2: the next bar (t = 20) is past 7 + 7 = 14, an empty window, and
    # not truncated (14 <= t[4] = 21).
    check(case, row(2, 0, 2, 0.0, 0.0, 0.0))
    # Bar 3: 20 + 7 = 27 > 21, past the data; the window is bar 4: truncated.
    check(case, row(3, 0, 4, 0.0, 0.0, 0.0, truncated=True))


def test_duration_touch_inside_window():
    t = [0, 2, 9, 10]
    bars = [FLAT, (100, 100.5, 99.5, 100), (100, 103, 100, 102.5), FLAT]
    # D = 9 reaches bar 2 exactly (t = 9): target at U = 102.
    case = make_case(bars, horizon="9s", t=t)
    check(case, row(0, 1, 2, 0.02, 0.03, -0.005, ft=2))
    # D = 8 stops at bar 1: a real timeout at c[1] = 100.
    case = make_case(bars, horizon="8s", t=t)
    check(case, row(0, 0, 1, 0.0, 0.005, -0.005))


def test_constant_series_never_touches():
    case = make_case([FLAT] * 4, horizon=2)
    check(case, row(0, 0, 2, 0.0, 0.0, 0.0))
    check(case, row(2, 0, 3, 0.0, 0.0, 0.0, truncated=True))
