"""The output folder as a cache: lock, plan, durable parts, manifest, status."""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

import engine.store as store_mod
from engine.errors import OutputError
from engine.store import (
    ConfigState,
    DamagedOutputWarning,
    PartInfo,
    Store,
    fingerprint_arrays,
    read_status,
)

DESCRIBE = {
    "id": "long_a",
    "side": "long",
    "target": 0.02,
    "stop": 0.01,
    "horizon": 20,
    "ambiguity": "stop_first",
}


def _table(n: int, start: int = 0) -> pa.Table:
    idx = np.arange(start, start + n, dtype=np.int64)
    return pa.table(
        {
            "event_index": idx,
            "label": pa.array((idx % 3 - 1).astype(np.int8)),
            "ambiguous": pa.array(idx % 2 == 0),
            "ret": pa.array((idx / 100).astype(np.float32)),
        }
    )


def _store(out: Path, fp: str = "fp1", **kw) -> Store:
    return Store(
        out,
        data_fingerprint=fp,
        data_info={"source": "bars.parquet", "bars": 100},
        engine_version="0.1.0",
        semantics_version=1,
        **kw,
    )


def _compute(store: Store, cid: str, key: str, chunks: int = 3) -> ConfigState:
    """Plan one configuration and write whatever is left, as a runner would."""
    describe = {**DESCRIBE, "id": cid}
    state = store.plan(cid, describe, key)
    if state.status != "complete":
        for k in range(chunks):
            if k not in state.done:
                store.write_part(cid, key, k, _table(10, 10 * k))
        store.complete(cid, describe, key, chunks)
    return state


def _manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def _files(out: Path) -> list[str]:
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _write_lock(out: Path, **info) -> Path:
    lock = out / ".labeler" / "lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text(json.dumps(info))
    return lock


# -- fingerprint --------------------------------------------------------------


def test_fingerprint_follows_content_dtype_shape_and_extra(monkeypatch):
    t = np.arange(1000, dtype=np.int64)
    c = np.linspace(1.0, 2.0, 1000)
    base = fingerprint_arrays([t, c], extra={"time_type": "timestamp[ns]"})

    assert base == fingerprint_arrays(
        [t.copy(), c.copy()], {"time_type": "timestamp[ns]"}
    )
    assert len(base) == 32 and int(base, 16) >= 0
    c2 = c.copy()
    c2[500] = np.nextafter(c2[500], 3.0)
    assert fingerprint_arrays([t, c2], {"time_type": "timestamp[ns]"}) != base
    assert fingerprint_arrays([c, t], {"time_type": "timestamp[ns]"}) != base
    assert fingerprint_arrays([t, c], {"time_type": "timestamp[ms]"}) != base
    assert (
        fingerprint_arrays([t.view(np.float64), c], {"time_type": "timestamp[ns]"})
        != base
    )
    assert (
        fingerprint_arrays([t.reshape(10, 100), c], {"time_type": "timestamp[ns]"})
        != base
    )
    assert fingerprint_arrays([t, c, None]) != fingerprint_arrays([t, c])

    # Slicing and contiguity do not change the hash of the same bytes.
    strided = np.empty(2000, dtype=np.float64)[::2]
    strided[:] = c
    assert fingerprint_arrays([t, strided]) == fingerprint_arrays([t, c])
    monkeypatch.setattr(store_mod, "_HASH_SLICE", 7)
    assert fingerprint_arrays([t, c], {"time_type": "timestamp[ns]"}) == base


def test_fingerprint_refuses_object_arrays():
    with pytest.raises(TypeError, match="object"):
        fingerprint_arrays([np.array(["a", None], dtype=object)])


# -- the lock -----------------------------------------------------------------


def test_lock_is_taken_and_released(tmp_path):
    out = tmp_path / "out"
    with _store(out):
        info = json.loads((out / ".labeler" / "lock").read_text())
        assert info["pid"] == os.getpid()
        assert info["host"] == socket.gethostname()
        assert "started" in info
    assert not (out / ".labeler" / "lock").exists()


def test_second_writer_is_refused_with_holder_and_folder(tmp_path):
    out = tmp_path / "out"
    with _store(out):
        with pytest.raises(OutputError) as err:
            _store(out).__enter__()
    msg = str(err.value)
    assert f"pid {os.getpid()}" in msg
    assert socket.gethostname() in msg
    assert str(out) in msg


def test_wait_times_out(tmp_path):
    out = tmp_path / "out"
    with _store(out):
        t0 = time.monotonic()
        with pytest.raises(OutputError, match=r"waited 0\.3 s"):
            _store(out, wait=0.3, poll=0.05).__enter__()
        assert time.monotonic() - t0 >= 0.3


def test_wait_succeeds_when_holder_finishes(tmp_path):
    out = tmp_path / "out"
    first = _store(out).__enter__()
    timer = threading.Timer(0.2, first.close)
    timer.start()
    try:
        with _store(out, wait=10, poll=0.02) as second:
            assert second.plan("a", DESCRIBE, "k").status == "new"
    finally:
        timer.join()


def test_dead_holder_on_this_host_is_taken_over(tmp_path, caplog):
    out = tmp_path / "out"
    pid = _dead_pid()
    _write_lock(out, pid=pid, host=socket.gethostname(), started="earlier")
    with caplog.at_level(logging.WARNING, logger="engine.store"):
        with _store(out):
            assert json.loads((out / ".labeler" / "lock").read_text())["pid"] == (
                os.getpid()
            )
    assert f"pid {pid}" in caplog.text and "taking over" in caplog.text


def test_lock_of_a_reused_pid_is_taken_over(tmp_path):
    # Our own pid, but a start time that is not ours: the pid was reused.
    if store_mod._proc_stat(os.getpid()) is None:
        pytest.skip("needs /proc to read process start times")
    out = tmp_path / "out"
    _write_lock(out, pid=os.getpid(), host=socket.gethostname(), proc_start=1)
    with _store(out):
        pass


def test_lock_of_another_host_is_never_taken_over(tmp_path):
    out = tmp_path / "out"
    lock = _write_lock(out, pid=_dead_pid(), host="elsewhere.example", started="x")
    with pytest.raises(OutputError, match="elsewhere.example") as err:
        _store(out).__enter__()
    assert str(lock) in str(err.value) and "delete" in str(err.value)
    assert json.loads(lock.read_text())["host"] == "elsewhere.example"


def test_unreadable_lock_is_taken_over_only_when_old(tmp_path):
    out = tmp_path / "out"
    lock = _write_lock(out)
    lock.write_text("")
    with pytest.raises(OutputError, match="unreadable"):
        _store(out).__enter__()
    old = time.time() - 60
    os.utime(lock, (old, old))
    with _store(out):
        pass


def test_exit_leaves_a_lock_that_is_not_ours(tmp_path):
    out = tmp_path / "out"
    with _store(out) as store:
        store.lock_path.write_text(json.dumps({"pid": 1, "host": "other"}))
        with pytest.raises(OutputError, match="lost the lock"):
            store.plan("a", DESCRIBE, "k")
    assert json.loads((out / ".labeler" / "lock").read_text())["host"] == "other"


@pytest.mark.slow
def test_lock_held_by_a_real_process_then_killed(tmp_path):
    out = tmp_path / "out"
    code = (
        "import sys, time\n"
        "from engine.store import Store\n"
        f"s = Store({str(out)!r}, data_fingerprint='fp1', engine_version='0',"
        " semantics_version=1).__enter__()\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    root = Path(__file__).resolve().parents[1]
    child = subprocess.Popen(
        [sys.executable, "-c", code], cwd=root, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "ready"
        with pytest.raises(OutputError, match=f"pid {child.pid}"):
            _store(out).__enter__()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
    with _store(out) as store:
        assert store.plan("a", DESCRIBE, "k").status == "new"


# -- plan, write, complete ----------------------------------------------------


def test_complete_then_replan_is_complete(tmp_path):
    out = tmp_path / "out"
    with _store(out) as store:
        assert _compute(store, "a", "k1").status == "new"
        again = store.plan("a", DESCRIBE, "k1")
    assert again.status == "complete"
    assert sorted(again.done) == [0, 1, 2]
    assert again.rows == 30

    before = _files(out)
    with _store(out) as store:
        state = store.plan("a", DESCRIBE, "k1")
        assert state.status == "complete" and state.done == again.done
    assert _files(out) == before


def test_manifest_content(tmp_path):
    out = tmp_path / "out"
    with _store(out) as store:
        _compute(store, "a", "k1", chunks=2)
    m = _manifest(out)

    assert m["format"] == 1
    assert m["engine_version"] == "0.1.0"
    assert m["semantics_version"] == 1
    assert m["data"] == {"fingerprint": "fp1", "source": "bars.parquet", "bars": 100}
    assert "updated" in m
    (entry,) = m["configs"]
    assert {k: entry[k] for k in DESCRIBE} == {**DESCRIBE, "id": "a"}
    assert entry["key"] == "k1" and entry["fingerprint"] == "fp1"
    assert entry["rows"] == 20
    files = [p["file"] for p in entry["parts"]]
    assert files == ["labels/config=a/part-0.parquet", "labels/config=a/part-1.parquet"]
    for p in entry["parts"]:
        path = out / p["file"]
        assert p["bytes"] == path.stat().st_size
        assert p["rows"] == pq.read_metadata(path).num_rows == 10
        with open(path, "rb") as f:
            assert p["checksum"] == store_mod._file_checksum(f)
    assert not (out / ".labeler" / "progress" / "a.json").exists()


def test_changed_key_is_new_and_old_parts_are_removed(tmp_path):
    out = tmp_path / "out"
    with _store(out) as store:
        _compute(store, "a", "k1", chunks=3)
        _compute(store, "b", "kb", chunks=1)
    with _store(out) as store:
        state = store.plan("a", DESCRIBE, "k2")
        assert state.status == "new" and state.done == {}
        assert not store.config_dir("a").exists()
        assert [c["id"] for c in _manifest(out)["configs"]] == ["b"]
        _compute(store, "a", "k2", chunks=1)
    entry = next(c for c in _manifest(out)["configs"] if c["id"] == "a")
    assert entry["key"] == "k2" and entry["rows"] == 10
    assert _files(out / "labels") == [
        "config=a/part-0.parquet",
        "config=b/part-0.parquet",
    ]


def test_changed_data_updates_manifest_and_keeps_untouched_configs(tmp_path):
    out = tmp_path / "out"
    with _store(out) as store:
        _compute(store, "a", "fp1-a")
        _compute(store, "b", "fp1-b")
    with _store(out, fp="fp2") as store:
        assert _manifest(out)["data"]["fingerprint"] == "fp2"
        assert _compute(store, "a", "fp2-a").status == "new"
    m = _manifest(out)
    assert {c["id"]: c["fingerprint"] for c in m["configs"]} == {
        "a": "fp2",
        "b": "fp1",
    }
    status = {c["id"]: c["status"] for c in read_status(out)["configs"]}
    assert status == {"a": "complete", "b": "stale"}


def test_partial_resume_keeps_finished_chunks_and_removes_strays(tmp_path):
    out = tmp_path / "out"
    with _store(out) as store:
        store.plan("a", DESCRIBE, "k1")
        store.write_part("a", "k1", 0, _table(10, 0))
        store.write_part("a", "k1", 1, _table(10, 10))
        folder = store.config_dir("a")
    # What a killed run can leave behind: a renamed but unrecorded part and a
    # temporary file.
    pq.write_table(_table(5), folder / "part-2.parquet")
    (folder / ".part-3.parquet.tmp-12345").write_bytes(b"half a file")

    with _store(out) as store:
        state = store.plan("a", DESCRIBE, "k1")
        assert state.status == "partial"
        assert sorted(state.done) == [0, 1] and state.rows == 20
        assert sorted(p.name for p in folder.iterdir()) == [
            "part-0.parquet",
            "part-1.parquet",
        ]
        store.write_part("a", "k1", 2, _table(10, 20))
        store.complete("a", DESCRIBE, "k1", 3)
    table = ds.dataset(out / "labels", partitioning="hive").to_table()
    assert sorted(table["event_index"].to_pylist()) == list(range(30))


def test_partial_of_another_key_is_discarded(tmp_path):
    out = tmp_path / "out"
    with _store(out) as store:
        store.plan("a", DESCRIBE, "k1")
        store.write_part("a", "k1", 0, _table(10))
    with _store(out) as store:
        state = store.plan("a", DESCRIBE, "k2")
        assert state.status == "new"
        assert not store.config_dir("a").exists()
        assert not (out / ".labeler" / "progress" / "a.json").exists()


def test_partial_with_a_damaged_chunk_drops_that_chunk(tmp_path, caplog):
    out = tmp_path / "out"
    with _store(out) as store:
        store.plan("a", DESCRIBE, "k1")
        store.write_part("a", "k1", 0, _table(10))
        info = store.write_part("a", "k1", 1, _table(10, 10))
    path = out / info.file
    path.write_bytes(path.read_bytes()[:-7])
    with caplog.at_level(logging.WARNING, logger="engine.store"):
        with _store(out) as store:
            state = store.plan("a", DESCRIBE, "k1")
    assert state.status == "partial" and sorted(state.done) == [0]
    assert not path.exists()
    assert "chunk 1" in caplog.text
    record = json.loads((out / ".labeler" / "progress" / "a.json").read_text())
    assert list(record["parts"]) == ["0"]


@pytest.mark.parametrize("damage", ["truncate", "delete", "flip"])
def test_damaged_complete_config_warns_and_is_new(tmp_path, damage):
    out = tmp_path / "out"
    with _store(out) as store:
        _compute(store, "a", "k1", chunks=3)
        _compute(store, "b", "kb", chunks=1)
    path = out / "labels" / "config=a" / "part-1.parquet"
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "delete":
        path.unlink()
    else:
        mid = len(data) // 2
        path.write_bytes(data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1 :])

    with _store(out) as store:
        with pytest.warns(DamagedOutputWarning, match=r"configuration a: .*part-1"):
            state = store.plan("a", DESCRIBE, "k1")
        assert state.status == "new" and state.reason.startswith("damaged")
        assert not store.config_dir("a").exists()
        assert [c["id"] for c in _manifest(out)["configs"]] == ["b"]
        assert store.plan("b", DESCRIBE, "kb").status == "complete"


def test_unrecorded_folder_is_removed(tmp_path):
    out = tmp_path / "out"
    folder = out / "labels" / "config=a"
    folder.mkdir(parents=True)
    pq.write_table(_table(3), folder / "part-0.parquet")
    with _store(out) as store:
        assert store.plan("a", DESCRIBE, "k1").status == "new"
    assert not folder.exists()


# -- failures -----------------------------------------------------------------


def _disk_full(table, where, **kwargs):
    Path(where).write_bytes(b"PAR1 and then the disk was full")
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_failing_write_raises_and_records_nothing(tmp_path, monkeypatch):
    out = tmp_path / "out"
    with _store(out) as store:
        store.plan("a", DESCRIBE, "k1")
        store.write_part("a", "k1", 0, _table(10))
        monkeypatch.setattr(store_mod.pq, "write_table", _disk_full)
        with pytest.raises(OutputError, match="part-1.parquet") as err:
            store.write_part("a", "k1", 1, _table(10, 10))
        assert "No space left" in str(err.value)
        with pytest.raises(OutputError, match="never written"):
            store.complete("a", DESCRIBE, "k1", 2)
        folder = store.config_dir("a")

    assert sorted(p.name for p in folder.iterdir()) == ["part-0.parquet"]
    assert _manifest(out)["configs"] == []
    record = json.loads((out / ".labeler" / "progress" / "a.json").read_text())
    assert list(record["parts"]) == ["0"]
    assert [c["status"] for c in read_status(out)["configs"]] == ["partial"]


def test_failing_first_write_leaves_no_record(tmp_path, monkeypatch):
    out = tmp_path / "out"
    monkeypatch.setattr(store_mod.pq, "write_table", _disk_full)
    with _store(out) as store:
        store.plan("a", DESCRIBE, "k1")
        with pytest.raises(OutputError, match="cannot write"):
            store.write_part("a", "k1", 0, _table(10))
    assert _files(out / "labels") == []
    assert not (out / ".labeler" / "progress" / "a.json").exists()
    assert _manifest(out)["configs"] == []


def test_misuse_is_refused(tmp_path):
    out = tmp_path / "out"
    with _store(out) as store:
        with pytest.raises(RuntimeError, match="plan"):
            store.write_part("a", "k1", 0, _table(1))
        store.plan("a", DESCRIBE, "k1")
        with pytest.raises(RuntimeError, match="another key"):
            store.write_part("a", "k2", 0, _table(1))
        with pytest.raises(ValueError, match="chunk"):
            store.write_part("a", "k1", -1, _table(1))
        with pytest.raises(ValueError, match="file-system safe"):
            store.plan("../x", DESCRIBE, "k1")
    with pytest.raises(RuntimeError, match="not open"):
        store.plan("a", DESCRIBE, "k1")


def test_newer_manifest_format_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps({"format": 99, "configs": []}))
    with pytest.raises(OutputError, match="format 99"):
        _store(out).__enter__()
    assert not (out / ".labeler" / "lock").exists()


def test_unreadable_manifest_is_set_aside(tmp_path, caplog):
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text("{ not json")
    with caplog.at_level(logging.WARNING, logger="engine.store"):
        with _store(out):
            pass
    assert _manifest(out)["configs"] == []
    assert len(list(out.glob("manifest.json.unreadable-*"))) == 1
    assert "unreadable" in caplog.text


# -- readers ------------------------------------------------------------------


def test_dataset_is_readable_and_ignores_temporary_files(tmp_path):
    out = tmp_path / "out"
    with _store(out) as store:
        _compute(store, "a", "k1", chunks=2)
        store.plan("b", DESCRIBE, "kb")
        store.write_part("b", "kb", 0, _table(4))
        # A temporary file, as a write in flight leaves it: a valid Parquet
        # file with other columns, and a half-written one.
        folder = store.config_dir("b")
        pq.write_table(pa.table({"x": [1]}), folder / ".part-1.parquet.tmp-99")
        (folder / ".part-2.parquet.tmp-98").write_bytes(b"PAR1 garbage")

        table = ds.dataset(out / "labels", partitioning="hive").to_table()
    assert table.num_rows == 24
    assert set(table.column_names) == {
        "event_index",
        "label",
        "ambiguous",
        "ret",
        "config",
    }
    configs = table["config"].to_pylist()
    assert (configs.count("a"), configs.count("b")) == (20, 4)


def test_parquet_options(tmp_path):
    out = tmp_path / "out"
    with _store(out, parquet_options={"row_group_size": 4}) as store:
        store.plan("a", DESCRIBE, "k1")
        info = store.write_part("a", "k1", 0, _table(10))
    meta = pq.read_metadata(out / info.file)
    assert meta.num_row_groups == 3
    columns = {meta.row_group(0).column(i).path_in_schema: i for i in range(4)}
    label = meta.row_group(0).column(columns["label"])
    ret = meta.row_group(0).column(columns["ret"])
    assert label.compression == "ZSTD"
    assert label.has_dictionary_page and not ret.has_dictionary_page


# -- status -------------------------------------------------------------------


def _tree(out: Path) -> dict[str, tuple[int, int]]:
    return {
        p.relative_to(out).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in out.rglob("*")
    }


def test_read_status_on_each_state(tmp_path):
    out = tmp_path / "out"
    with _store(out) as store:
        _compute(store, "complete", "kc", chunks=2)
        _compute(store, "damaged", "kd", chunks=2)
        _compute(store, "old", "ko", chunks=1)
    with _store(out, fp="fp2") as store:
        _compute(store, "complete", "kc2", chunks=2)
        _compute(store, "damaged", "kd2", chunks=2)
        store.plan("partial", DESCRIBE, "kp")
        store.write_part("partial", "kp", 0, _table(10))
        store.write_part("partial", "kp", 1, _table(7, 10))
        (out / "labels" / "config=damaged" / "part-1.parquet").unlink()
        orphan = out / "labels" / "config=orphan"
        orphan.mkdir()
        pq.write_table(_table(3), orphan / "part-0.parquet")

        before = _tree(out)
        status = read_status(out)
        assert _tree(out) == before
        assert status["lock"]["state"] == "live"
        assert status["lock"]["pid"] == os.getpid()
        assert "token" not in status["lock"]

    assert status["fingerprint"] == "fp2"
    assert status["data"]["bars"] == 100
    assert status["engine_version"] == "0.1.0"
    by_id = {c["id"]: c for c in status["configs"]}
    assert list(by_id) == sorted(by_id)
    assert {i: c["status"] for i, c in by_id.items()} == {
        "complete": "complete",
        "damaged": "damaged",
        "old": "stale",
        "orphan": "stale",
        "partial": "partial",
    }
    assert by_id["complete"]["rows"] == 20 and by_id["complete"]["parts"] == 2
    assert by_id["partial"]["rows"] == 17 and by_id["partial"]["parts"] == 2
    assert "part-1.parquet is missing" in by_id["damaged"]["detail"]
    assert status["counts"] == {"complete": 1, "partial": 1, "stale": 2, "damaged": 1}
    assert read_status(out)["lock"] is None


def test_read_status_checksums_find_altered_bytes(tmp_path):
    out = tmp_path / "out"
    with _store(out) as store:
        _compute(store, "a", "k1", chunks=1)
    path = out / "labels" / "config=a" / "part-0.parquet"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert read_status(out)["configs"][0]["status"] == "complete"
    assert read_status(out, checksums=True)["configs"][0]["status"] == "damaged"


def test_read_status_of_a_folder_without_output(tmp_path):
    with pytest.raises(OutputError, match="no labeler output"):
        read_status(tmp_path)
    with pytest.raises(OutputError, match="not a folder"):
        read_status(tmp_path / "missing")


def test_read_status_reports_a_dead_lock(tmp_path):
    out = tmp_path / "out"
    with _store(out):
        pass
    _write_lock(out, pid=_dead_pid(), host=socket.gethostname())
    assert read_status(out)["lock"]["state"] == "dead"


# -- housekeeping -------------------------------------------------------------


def test_remove_config_and_prune(tmp_path):
    out = tmp_path / "out"
    with _store(out) as store:
        _compute(store, "a", "k1", chunks=1)
        _compute(store, "b", "k1", chunks=1)
    with _store(out, fp="fp2") as store:
        _compute(store, "c", "k2", chunks=1)
        orphan = out / "labels" / "config=d"
        orphan.mkdir()
        assert store.remove_config("a") is True
        assert store.remove_config("a") is False
        assert store.prune() == ["b", "d"]
    assert [c["id"] for c in _manifest(out)["configs"]] == ["c"]
    assert _files(out / "labels") == ["config=c/part-0.parquet"]


def test_partinfo_round_trip():
    p = PartInfo("labels/config=a/part-12.parquet", 5, 100, "blake2b:00")
    assert PartInfo.from_json(p.to_json()) == p
    assert p.chunk == 12


def test_read_status_of_a_config_stopped_in_its_first_write(tmp_path):
    out = tmp_path / "out"
    with _store(out) as store:
        _compute(store, "a", "k1")
    folder = out / "labels" / "config=b"
    folder.mkdir()
    (folder / ".part-0.parquet.tmp-123").write_bytes(b"PAR1")  # killed mid-write
    rows = {c["id"]: c for c in read_status(out)["configs"]}
    assert rows["a"]["status"] == "complete"
    assert (rows["b"]["status"], rows["b"]["rows"], rows["b"]["parts"]) == (
        "partial", 0, 0)  # fmt: skip
    (folder / "part-0.parquet").write_bytes(b"PAR1")  # a part nothing records
    assert read_status(out)["configs"][1]["status"] == "stale"
