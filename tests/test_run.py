"""The runner in-process: reuse, invalidation, resume, interruption, failures.

Every run here writes many small chunks (``CHUNK`` events each) so that
checkpoints, resumes and stale parts are exercised on a few thousand bars.
"""

from __future__ import annotations

import errno
import json
import re
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import engine
from engine.api import Labeler
from engine.config import Grid, LabelConfig, parse_grid
from engine.cpu.backend import CpuBackend
from engine.data import bars_from_table
from engine.errors import OutputError
from engine.run import WRITERS, Interrupted, Progress, cache_key, run
from engine.store import DamagedOutputWarning, read_status

CHUNK = 500
TEMP = re.compile(r"^\..+\.tmp-\d+$")


class Recorder(Progress):
    """Records every callback, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.advanced: Counter[str] = Counter()

    def start(self, configs, events):
        self.calls.append(("start", configs, events))

    def config_start(self, config, events, done, status):
        self.calls.append(("config_start", config.id, events, done, status))

    def advance(self, config, events):
        self.calls.append(("advance", config.id, events))
        self.advanced[config.id] += events

    def config_done(self, result):
        self.calls.append(("config_done", result.id, result.status))

    def finish(self, summary):
        self.calls.append(("finish", len(summary.configs)))

    def of(self, kind: str) -> list[tuple]:
        return [c for c in self.calls if c[0] == kind]


@pytest.fixture(scope="module")
def bars(small_table):
    return bars_from_table(small_table, source="small")


@pytest.fixture(scope="module")
def grid(small_grid):
    from engine.config import load_grid

    return load_grid(small_grid)


@pytest.fixture(scope="module")
def chunks(bars):
    """Chunks per configuration."""
    return -(-bars.n // CHUNK)


@pytest.fixture(scope="module")
def reference(bars, grid, tmp_path_factory, read_labels):
    """The labels of one uninterrupted run into a fresh folder."""
    out = tmp_path_factory.mktemp("reference") / "out"
    run(bars, grid, out, threads=1, chunk_events=CHUNK)
    return read_labels(out)


@pytest.fixture
def kernel_calls(monkeypatch):
    """Counts label_chunk calls (chunk numbers) and backend kernel launches."""
    calls: dict[str, list] = {"chunks": [], "kernels": []}
    real_chunk, real_kernel = Labeler.label_chunk, CpuBackend.label

    def label_chunk(self, plan, k):
        calls["chunks"].append(k)
        return real_chunk(self, plan, k)

    def label(self, handle, batch):
        calls["kernels"].append(len(batch))
        return real_kernel(self, handle, batch)

    monkeypatch.setattr(Labeler, "label_chunk", label_chunk)
    monkeypatch.setattr(CpuBackend, "label", label)
    return calls


def _run(bars, grid, out, **kw):
    kw.setdefault("threads", 1)
    kw.setdefault("chunk_events", CHUNK)
    return run(bars, grid, out, **kw)


def _files(out: Path) -> dict[str, tuple[int, int, int, bytes]]:
    """Every file under labels/: mtime, size, inode and contents."""
    return {
        str(p.relative_to(out)): (
            p.stat().st_mtime_ns,
            p.stat().st_size,
            p.stat().st_ino,
            p.read_bytes(),
        )
        for p in sorted((out / "labels").rglob("*"))
        if p.is_file()
    }


def _manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def _temps(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if TEMP.match(p.name)]


def _assert_whole(table: pa.Table, ids, n: int) -> None:
    """Each configuration has exactly the events 0..n-1, once each."""
    assert sorted(pc.unique(table["config"]).to_pylist()) == sorted(ids)
    for cid in ids:
        rows = table.filter(pc.equal(table["config"], cid))
        assert rows["event_index"].to_pylist() == list(range(n)), cid


def _configs_of(table: pa.Table, ids) -> pa.Table:
    mask = pc.is_in(table["config"], value_set=pa.array(list(ids)))
    return table.filter(mask)


def _changed_close(table: pa.Table, row: int) -> pa.Table:
    """``table`` with the close of one bar moved inside its high-low range."""
    close = table["close"].to_numpy().copy()
    low, high = table["low"][row].as_py(), table["high"][row].as_py()
    close[row] = low if close[row] != low else high
    i = table.column_names.index("close")
    return table.set_column(i, "close", pa.array(close))


# -- progress -----------------------------------------------------------------


def test_progress_reports_every_event_once(bars, grid, chunks, tmp_path):
    rec = Recorder()
    summary = _run(bars, grid, tmp_path / "out", progress=rec)

    assert rec.calls[0] == ("start", len(grid.configs), bars.n)
    assert rec.calls[-1] == ("finish", len(grid.configs))
    starts = rec.of("config_start")
    assert [c[1] for c in starts] == [c.id for c in grid.configs]
    assert all(c[2:] == (bars.n, 0, "new") for c in starts)
    assert rec.advanced == {c.id: bars.n for c in grid.configs}
    advances = rec.of("advance")
    assert len(advances) == chunks * len(grid.configs)
    assert all(0 < a[2] <= CHUNK for a in advances)
    assert [c[1:] for c in rec.of("config_done")] == [
        (c.id, "computed") for c in grid.configs
    ]
    assert summary.rows == bars.n * len(grid.configs)
    assert all(sum(c.labels.values()) == bars.n for c in summary.configs)


# -- reuse --------------------------------------------------------------------


def test_second_identical_run_reuses_everything(
    bars, grid, chunks, reference, kernel_calls, read_labels, tmp_path
):
    out = tmp_path / "out"
    first = _run(bars, grid, out)
    assert [c.status for c in first.configs] == ["computed"] * len(grid.configs)
    assert len(kernel_calls["chunks"]) == chunks * len(grid.configs)
    files = _files(out)
    entries = _manifest(out)["configs"]
    kernel_calls["chunks"].clear()
    kernel_calls["kernels"].clear()

    rec = Recorder()
    second = _run(bars, grid, out, progress=rec)

    assert [c.status for c in second.configs] == ["reused"] * len(grid.configs)
    assert kernel_calls == {"chunks": [], "kernels": []}
    assert rec.of("advance") == []
    assert [c[4] for c in rec.of("config_start")] == ["reused"] * len(grid.configs)
    assert _files(out) == files
    assert _manifest(out)["configs"] == entries
    for a, b in zip(first.configs, second.configs, strict=True):
        assert (a.id, a.rows, a.labels, a.ambiguous, a.truncated) == (
            b.id,
            b.rows,
            b.labels,
            b.ambiguous,
            b.truncated,
        )
    assert read_labels(out).equals(reference)


def test_thread_count_is_not_part_of_the_key(bars, grid, kernel_calls, tmp_path):
    out = tmp_path / "out"
    _run(bars, grid, out, threads=1)
    kernel_calls["chunks"].clear()
    summary = _run(bars, grid, out, threads=2)
    assert {c.status for c in summary.configs} == {"reused"}
    assert kernel_calls["chunks"] == []


# -- invalidation -------------------------------------------------------------


def test_changed_price_recomputes_everything(
    bars, grid, chunks, small_table, reference, kernel_calls, read_labels, tmp_path
):
    out = tmp_path / "out"
    _run(bars, grid, out)
    changed = bars_from_table(_changed_close(small_table, 1234), source="changed")
    kernel_calls["chunks"].clear()

    summary = _run(changed, grid, out)

    assert [c.status for c in summary.configs] == ["computed"] * len(grid.configs)
    assert len(kernel_calls["chunks"]) == chunks * len(grid.configs)
    assert summary.fingerprint != _run(bars, grid, tmp_path / "other").fingerprint
    assert _manifest(out)["data"]["fingerprint"] == summary.fingerprint
    got = read_labels(out)
    _run(changed, grid, tmp_path / "fresh")
    assert got.equals(read_labels(tmp_path / "fresh"))
    assert not got.equals(reference)  # the change reaches the labels
    _assert_whole(got, [c.id for c in grid.configs], bars.n)


def test_shorter_data_replaces_stale_parts(
    bars, grid, small_table, kernel_calls, read_labels, tmp_path
):
    out = tmp_path / "out"
    _run(bars, grid, out)
    n = 2 * CHUNK + 7
    shorter = bars_from_table(small_table.slice(0, n), source="shorter")

    summary = _run(shorter, grid, out)

    assert {c.status for c in summary.configs} == {"computed"}
    for config in grid.configs:
        parts = sorted(
            p.name for p in (out / "labels" / f"config={config.id}").iterdir()
        )
        assert parts == ["part-0.parquet", "part-1.parquet", "part-2.parquet"]
    got = read_labels(out)
    _assert_whole(got, [c.id for c in grid.configs], n)
    _run(shorter, grid, tmp_path / "fresh")
    assert got.equals(read_labels(tmp_path / "fresh"))
    status = read_status(out, checksums=True)
    assert status["counts"] == {
        "complete": len(grid.configs),
        "partial": 0,
        "stale": 0,
        "damaged": 0,
    }


def test_one_extra_configuration_is_the_only_one_computed(
    bars, grid, chunks, reference, kernel_calls, read_labels, tmp_path
):
    out = tmp_path / "out"
    _run(bars, grid, out)
    extra = LabelConfig("long", 0.006, 0.002, 30)
    bigger = Grid(columns=grid.columns, configs=(*grid.configs, extra))
    kernel_calls["chunks"].clear()

    summary = _run(bars, bigger, out)

    assert [c.status for c in summary.configs] == ["reused"] * len(grid.configs) + [
        "computed"
    ]
    assert len(kernel_calls["chunks"]) == chunks
    got = read_labels(out)
    old = [c.id for c in grid.configs]
    assert _configs_of(got, old).equals(reference)
    new = _configs_of(got, [extra.id]).drop_columns(["config"])
    direct = engine.label(bars, extra, threads=1)
    assert new.cast(direct.schema).equals(direct)


def test_changed_parameter_in_a_grid_file_recomputes_only_that_one(
    bars, grid, kernel_calls, chunks, tmp_path
):
    out = tmp_path / "out"
    _run(bars, grid, out)
    spec = {"side": ["long", "short"], "target": 0.003, "stop": 0.002}
    changed = parse_grid({"grid": {**spec, "horizon": [30, "3h"]}})  # was 2h
    kernel_calls["chunks"].clear()

    summary = _run(bars, changed, out)

    status = {c.id: c.status for c in summary.configs}
    assert status == {
        "long_tp0.003_sl0.002_h30_sf": "reused",
        "long_tp0.003_sl0.002_h3h_sf": "computed",
        "short_tp0.003_sl0.002_h30_sf": "reused",
        "short_tp0.003_sl0.002_h3h_sf": "computed",
    }
    assert len(kernel_calls["chunks"]) == 2 * chunks


def test_changed_semantics_version_recomputes(
    bars, grid, chunks, reference, kernel_calls, read_labels, monkeypatch, tmp_path
):
    out = tmp_path / "out"
    _run(bars, grid, out)
    keys = {e["id"]: e["key"] for e in _manifest(out)["configs"]}
    monkeypatch.setattr(engine, "SEMANTICS_VERSION", engine.SEMANTICS_VERSION + 1)
    kernel_calls["chunks"].clear()

    summary = _run(bars, grid, out)

    assert {c.status for c in summary.configs} == {"computed"}
    assert len(kernel_calls["chunks"]) == chunks * len(grid.configs)
    manifest = _manifest(out)
    assert manifest["semantics_version"] == engine.SEMANTICS_VERSION
    assert all(e["key"] != keys[e["id"]] for e in manifest["configs"])
    assert read_labels(out).equals(reference)


def test_cache_key_follows_data_parameters_semantics_and_options(grid, monkeypatch):
    a, b = grid.configs[:2]
    opts = {"float64": False, "columns": None, "chunk_events": CHUNK}
    key = cache_key("fp", a, opts)
    assert key == cache_key("fp", LabelConfig(a.side, 0.003, 0.002, a.horizon), opts)
    assert key != cache_key("fp2", a, opts)
    assert key != cache_key("fp", b, opts)
    assert key != cache_key("fp", a, {**opts, "float64": True})
    assert key != cache_key("fp", a, {**opts, "columns": ["label"]})
    monkeypatch.setattr(engine, "SEMANTICS_VERSION", engine.SEMANTICS_VERSION + 1)
    assert key != cache_key("fp", a, opts)


# -- interruption and resume --------------------------------------------------


def test_stop_event_interrupts_and_a_rerun_resumes(
    bars, grid, chunks, reference, kernel_calls, read_labels, tmp_path
):
    out = tmp_path / "out"
    stop = threading.Event()
    first = grid.configs[0].id

    class StopAfterTwo(Recorder):
        def advance(self, config, events):
            super().advance(config, events)
            if len(self.of("advance")) == 2:
                stop.set()

    with pytest.raises(Interrupted, match="run the same command again"):
        _run(bars, grid, out, progress=StopAfterTwo(), stop=stop)

    # The stop comes when chunk 1 is written; the WRITERS chunks computed
    # meanwhile (chunks 2, 3 with two writers) are finished and kept.
    kept_chunks = 2 + WRITERS
    assert kernel_calls["chunks"] == list(range(kept_chunks))
    status = read_status(out, checksums=True)
    assert [(c["id"], c["status"], c["parts"]) for c in status["configs"]] == [
        (first, "partial", kept_chunks)
    ]
    assert status["configs"][0]["rows"] == kept_chunks * CHUNK
    assert status["lock"] is None
    assert _manifest(out)["configs"] == []
    assert _temps(out) == []
    kept = _files(out)
    kernel_calls["chunks"].clear()

    rec = Recorder()
    summary = _run(bars, grid, out, progress=rec)

    statuses = [c.status for c in summary.configs]
    assert statuses == ["resumed"] + ["computed"] * (len(grid.configs) - 1)
    assert len(kernel_calls["chunks"]) == chunks * len(grid.configs) - kept_chunks
    assert sorted(kernel_calls["chunks"][: chunks - kept_chunks]) == list(
        range(kept_chunks, chunks)
    )
    assert rec.of("config_start")[0] == (
        "config_start",
        first,
        bars.n,
        kept_chunks * CHUNK,
        "partial",
    )
    assert rec.advanced[first] == bars.n - kept_chunks * CHUNK
    assert summary.configs[0].rows == bars.n
    assert sum(summary.configs[0].labels.values()) == bars.n
    after = _files(out)
    assert all(after[name] == kept[name] for name in kept)  # not rewritten
    assert read_labels(out).equals(reference)


def test_resume_counts_label_balance_of_the_earlier_chunks(bars, grid, tmp_path):
    out = tmp_path / "out"
    stop = threading.Event()

    class StopAtOnce(Recorder):
        def advance(self, config, events):
            stop.set()

    with pytest.raises(Interrupted):
        _run(bars, grid, out, progress=StopAtOnce(), stop=stop)
    resumed = _run(bars, grid, out)
    fresh = _run(bars, grid, tmp_path / "fresh")
    for a, b in zip(resumed.configs, fresh.configs, strict=True):
        assert (a.rows, a.labels, a.ambiguous, a.truncated) == (
            b.rows,
            b.labels,
            b.ambiguous,
            b.truncated,
        )


# -- failures and damage ------------------------------------------------------


def test_full_disk_is_a_clear_error_and_nothing_is_marked_complete(
    bars, grid, chunks, reference, read_labels, monkeypatch, tmp_path
):
    out = tmp_path / "out"
    real = pq.write_table
    calls = []

    def full_disk(table, where, **kwargs):
        calls.append(where)
        if "part-2.parquet" in str(where):
            Path(where).write_bytes(b"PAR1" + bytes(64))  # half a file, then full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(table, where, **kwargs)

    monkeypatch.setattr(pq, "write_table", full_disk)

    with pytest.raises(OutputError, match="No space left on device") as failure:
        _run(bars, grid, out)

    first = grid.configs[0].id
    assert f"config={first}" in str(failure.value)
    assert "part-2.parquet" in str(failure.value)
    assert _manifest(out)["configs"] == []
    assert _temps(out) == []
    assert not (out / ".labeler" / "lock").exists()
    status = read_status(out, checksums=True)
    # Chunks 0 and 1 are kept, and so are the chunks already in flight behind
    # the failed one (chunk 3 with two writers); chunk 2 is not.
    assert [(c["id"], c["status"], c["parts"]) for c in status["configs"]] == [
        (first, "partial", 2 + WRITERS - 1)
    ]

    monkeypatch.setattr(pq, "write_table", real)
    summary = _run(bars, grid, out)
    assert [c.status for c in summary.configs] == ["resumed"] + ["computed"] * (
        len(grid.configs) - 1
    )
    assert read_labels(out).equals(reference)


def test_full_disk_on_the_manifest_leaves_the_config_unmarked(
    bars, grid, reference, read_labels, monkeypatch, tmp_path
):
    import engine.store as store_mod

    out = tmp_path / "out"
    real = store_mod._write_json
    seen = []

    def full_disk(path, obj):
        if path.name == "manifest.json":
            seen.append(obj)
            if len(seen) == 2:  # the first write after open: a completion
                raise OutputError(f"cannot write {path}: [Errno 28] No space left")
        return real(path, obj)

    monkeypatch.setattr(store_mod, "_write_json", full_disk)
    with pytest.raises(OutputError, match="No space left"):
        _run(bars, grid, out)
    assert _manifest(out)["configs"] == []
    assert not (out / ".labeler" / "lock").exists()

    monkeypatch.setattr(store_mod, "_write_json", real)
    summary = _run(bars, grid, out)
    assert summary.configs[0].status == "resumed"
    assert read_labels(out).equals(reference)


@pytest.mark.parametrize("damage", ["truncate", "delete", "alter"])
def test_damaged_part_of_a_complete_config_is_recomputed(
    bars, grid, chunks, reference, kernel_calls, read_labels, damage, tmp_path
):
    out = tmp_path / "out"
    _run(bars, grid, out)
    victim = grid.configs[1].id
    part = out / "labels" / f"config={victim}" / "part-3.parquet"
    data = part.read_bytes()
    if damage == "truncate":
        part.write_bytes(data[: len(data) // 2])
    elif damage == "delete":
        part.unlink()
    else:  # same size, one byte changed: only the checksum tells
        middle = len(data) // 2
        part.write_bytes(
            data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]
        )
    kernel_calls["chunks"].clear()

    with pytest.warns(DamagedOutputWarning, match=re.escape(victim)):
        summary = _run(bars, grid, out)

    status = {c.id: c.status for c in summary.configs}
    assert status.pop(victim) == "computed"
    assert set(status.values()) == {"reused"}
    assert len(kernel_calls["chunks"]) == chunks
    assert read_labels(out).equals(reference)
    assert read_status(out, checksums=True)["counts"]["complete"] == len(grid.configs)


# -- columns and float width --------------------------------------------------


def _part_schemas(out: Path) -> set[pa.Schema]:
    return {
        pq.read_schema(p).remove_metadata()
        for p in (out / "labels").rglob("part-*.parquet")
    }


def test_columns_subset_writes_only_those(bars, grid, reference, read_labels, tmp_path):
    out = tmp_path / "out"
    _run(bars, grid, out, columns=["label", "exit_index"])

    (schema,) = _part_schemas(out)
    assert schema.names == ["event_index", "label", "exit_index"]
    assert schema.field("label").type == pa.int8()
    assert schema.field("exit_index").type == pa.int64()
    got = read_labels(out)
    assert got.equals(
        reference.select(["event_index", "label", "exit_index", "config"])
    )


def test_float64_widens_only_the_float_columns(
    bars, grid, reference, read_labels, tmp_path
):
    out = tmp_path / "out"
    _run(bars, grid, out, float64=True)

    (schema,) = _part_schemas(out)
    narrow = reference.schema.remove(reference.schema.get_field_index("config"))
    assert schema.names == narrow.names
    for name in schema.names:
        if name in ("ret", "mfe", "mae"):
            assert narrow.field(name).type == pa.float32()
            assert schema.field(name).type == pa.float64()
        else:
            assert schema.field(name).type == narrow.field(name).type, name
    got = read_labels(out)
    for name in ("ret", "mfe", "mae"):
        wide = got[name].to_numpy()
        np.testing.assert_array_equal(
            wide.astype(np.float32), reference[name].to_numpy()
        )
    rest = [n for n in got.column_names if n not in ("ret", "mfe", "mae")]
    assert got.select(rest).equals(reference.select(rest))


def test_columns_and_float_width_are_part_of_the_key(
    bars, grid, chunks, kernel_calls, read_labels, tmp_path
):
    out = tmp_path / "out"
    everything = len(grid.configs) * chunks
    for kw in ({}, {"columns": ["label", "exit_index"]}, {"float64": True}, {}):
        kernel_calls["chunks"].clear()
        summary = _run(bars, grid, out, **kw)
        assert {c.status for c in summary.configs} == {"computed"}, kw
        assert len(kernel_calls["chunks"]) == everything, kw
        assert len(_part_schemas(out)) == 1, kw  # never a mix of layouts
        _assert_whole(read_labels(out), [c.id for c in grid.configs], bars.n)
    kernel_calls["chunks"].clear()
    assert {c.status for c in _run(bars, grid, out).configs} == {"reused"}
    assert kernel_calls["chunks"] == []
