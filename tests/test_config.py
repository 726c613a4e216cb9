"""Grid files: expansion, stable ids, and refusals that name the key."""

from __future__ import annotations

import pytest

from engine.config import Horizon, LabelConfig, load_grid, parse_grid
from engine.errors import GridError

BASE = {"side": "long", "target": 0.01, "stop": 0.005, "horizon": 60}


def grid(**overrides):
    return parse_grid({"grid": {**BASE, **overrides}})


def test_every_combination_in_a_stable_order():
    g = grid(side=["long", "short"], target=[0.005, 0.01], horizon=[60, "4h"])
    ids = [c.id for c in g.configs]
    assert len(ids) == 8 == len(set(ids))
    assert ids[0] == "long_tp0.005_sl0.005_h60_sf"
    assert ids[1] == "long_tp0.005_sl0.005_h4h_sf"
    assert ids[-1] == "short_tp0.01_sl0.005_h4h_sf"
    # The same grid always expands to the same ids in the same order.
    again = grid(side=["long", "short"], target=[0.005, 0.01], horizon=[60, "4h"])
    assert [c.id for c in again.configs] == ids


def test_ids_are_file_system_safe_and_depend_on_parameters_only():
    config = LabelConfig(
        side="column", target="2.5vol", stop=1e-05, horizon="90m",
        ambiguity="target_first", entry="next_open", vol_window=20,
    )  # fmt: skip
    assert config.id == "column_tp2.5vol_sl1e-05_h90m_tf_nextopen_w20"
    assert all(ch.isalnum() or ch in "._-" for ch in config.id)
    assert LabelConfig(**BASE).id == LabelConfig(**BASE).id


def test_describe_keeps_values_as_given():
    config = LabelConfig(side="short", target="2vol", stop=0.01, horizon="4h")
    d = config.describe()
    assert d["target"] == "2vol" and d["stop"] == 0.01 and d["horizon"] == "4h"
    assert d["ambiguity"] == "stop_first" and d["vol_window"] == 100


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("90m", 5400), ("4h", 14400), ("1d", 86400), ("1.5h", 5400)],
)
def test_durations(text, seconds):
    assert Horizon.parse(text).seconds == seconds


def test_duplicate_values_collapse_to_one_configuration():
    assert len(grid(target=[0.01, 0.01]).configs) == 1


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"tp": 0.01}, "tp"),
        ({"side": "up"}, "side"),
        ({"target": 0}, "target"),
        ({"target": -0.01}, "target"),
        ({"stop": 0.0}, "stop"),
        ({"stop": 1.5}, "stop"),
        ({"target": "fast"}, "target"),
        ({"horizon": 0}, "horizon"),
        ({"horizon": -5}, "horizon"),
        ({"horizon": "4 hours"}, "horizon"),
        ({"horizon": "0m"}, "horizon"),
        ({"horizon": 1.5}, "horizon"),
        ({"ambiguity": "coin"}, "ambiguity"),
        ({"entry": "vwap"}, "entry"),
        ({"vol_window": 1}, "vol_window"),
        ({"target": []}, "target"),
    ],
)
def test_invalid_values_name_the_key(overrides, key):
    with pytest.raises(GridError, match=f"'{key}'"):
        grid(**overrides)


@pytest.mark.parametrize("key", ["side", "target", "stop", "horizon"])
def test_missing_required_key(key):
    spec = {k: v for k, v in BASE.items() if k != key}
    with pytest.raises(GridError, match=f"missing required grid key '{key}'"):
        parse_grid({"grid": spec})


def test_unknown_tables_and_column_keys():
    with pytest.raises(GridError, match="unknown table 'labels'"):
        parse_grid({"grid": BASE, "labels": {}})
    with pytest.raises(GridError, match="unknown key 'volume' in \\[columns\\]"):
        parse_grid({"grid": BASE, "columns": {"volume": "v"}})
    with pytest.raises(GridError, match="cusum"):
        parse_grid({"grid": BASE, "events": {"cusum": -1}})


def test_grid_file(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text(
        '[columns]\nclose = "px_last"\n\n[grid]\nside = ["long", "short"]\n'
        'target = 0.01\nstop = 0.01\nhorizon = "1d"\n\n[events]\ncusum = 0.02\n'
    )
    g = load_grid(path)
    assert g.columns.close == "px_last" and g.columns.open == "open"
    assert [c.side for c in g.configs] == ["long", "short"]
    assert g.cusum == 0.02


def test_grid_file_errors_name_the_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[grid\nside = 1")
    with pytest.raises(GridError, match="bad.toml: not valid TOML"):
        load_grid(path)
    with pytest.raises(GridError, match="cannot read grid file"):
        load_grid(tmp_path / "missing.toml")
    path.write_text('[grid]\nside = "long"\ntarget = 0.01\nstop = 0.01\n')
    with pytest.raises(GridError, match=r"bad.toml: missing required grid key"):
        load_grid(path)


def test_durations_are_exact_and_never_rounded():
    import numpy as np

    from engine import label
    from engine.errors import DataError

    bars = {
        "timestamp": np.array([0, 2, 4], dtype="datetime64[s]"),
        "close": [1.0, 1.0, 1.0],
    }
    # 1.5 s on a clock of whole seconds cannot be compared exactly: refused.
    with pytest.raises(DataError, match="1.5 s is not a whole number .* unit \\(s\\)"):
        label(bars, LabelConfig("long", 0.01, 0.01, "1.5s"))
    # 0.1 s is exact in text even though it is not in binary floating point.
    ms = {**bars, "timestamp": bars["timestamp"].astype("datetime64[ms]")}
    out = label(ms, LabelConfig("long", 0.01, 0.01, "0.1s"))
    assert out.column("exit_index").to_pylist() == [0, 1, 2]
