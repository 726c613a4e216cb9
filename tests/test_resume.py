"""Real ``labeler run`` processes killed, interrupted and run side by side.

Each run writes many small parts (``CHUNK`` events each, ten per
configuration) so kills land inside configurations and, often, inside writes.
After every kill the folder must hold no configuration marked complete whose
files are not all in place, and a resume must end with exactly the labels of
an uninterrupted run.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from engine.run import WRITERS
from engine.store import read_status

pytestmark = pytest.mark.slow

CHUNK = 320
CONFIGS = 4  # in the small_grid fixture
TEMP = re.compile(r"^\..+\.tmp-\d+$")
LABELER = Path(sys.executable).with_name("labeler")

# Installed as sitecustomize.py in the children of the mid-write tests: with
# LABELER_TEST_HANG=part:N (or manifest:N) the N-th part (or manifest) write
# puts half of its bytes in the temporary file, creates the file named by
# LABELER_TEST_HANG_MARK, then hangs until it is killed.
HANG_HOOK = textwrap.dedent(
    """
    import os

    _spec = os.environ.get("LABELER_TEST_HANG")
    if _spec:
        import io
        import json
        import time

        _kind, _, _nth = _spec.partition(":")
        _count = [0]

        def _hang(path, data):
            with open(path, "wb") as f:
                f.write(data[: len(data) // 2])
                f.flush()
            open(os.environ["LABELER_TEST_HANG_MARK"], "w").close()
            time.sleep(120)

        def _due():
            _count[0] += 1
            return _count[0] == int(_nth)

        if _kind == "part":
            import pyarrow.parquet as pq

            _real_table = pq.write_table

            def _write_table(table, where, **kwargs):
                if _due():
                    buf = io.BytesIO()
                    _real_table(table, buf, **kwargs)
                    _hang(where, buf.getvalue())
                return _real_table(table, where, **kwargs)

            pq.write_table = _write_table
        elif _kind == "manifest":
            import engine.store as _store

            _real_json = _store._write_json

            def _write_json(path, obj):
                if path.name == "manifest.json" and _due():
                    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
                    _hang(tmp, json.dumps(obj).encode())
                return _real_json(path, obj)

            _store._write_json = _write_json
    """
)


@pytest.fixture(scope="module")
def labeler_cmd():
    if not LABELER.exists():
        pytest.fail(f"{LABELER} is missing; install the project (pip install -e .)")
    return str(LABELER)


@pytest.fixture
def cmd(labeler_cmd, small_data, small_grid, tmp_path):
    """The command line of a run into tmp_path/out, and that folder."""
    out = tmp_path / "out"
    args = [
        labeler_cmd, "run", str(small_data), "--grid", str(small_grid),
        "--out", str(out), "--chunk-events", str(CHUNK), "--device", "cpu",
        "--threads", "1",
    ]  # fmt: skip
    return args, out


@pytest.fixture(scope="module")
def total_parts(small_table):
    return CONFIGS * math.ceil(small_table.num_rows / CHUNK)


@pytest.fixture(scope="module")
def reference(labeler_cmd, small_data, small_grid, tmp_path_factory, read_labels):
    """An uninterrupted run: its labels and seconds from first part to exit."""
    out = tmp_path_factory.mktemp("reference") / "out"
    args = [
        labeler_cmd, "run", str(small_data), "--grid", str(small_grid),
        "--out", str(out), "--chunk-events", str(CHUNK), "--device", "cpu",
        "--threads", "1",
    ]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert _wait_for(lambda: _count_parts(out) > 0, proc)
    t0 = time.monotonic()
    stdout, stderr = proc.communicate(timeout=120)
    writing = time.monotonic() - t0
    assert proc.returncode == 0, stderr.decode()
    assert f"{CONFIGS} computed, 0 reused" in stdout.decode()
    return read_labels(out), writing


def _count_parts(out: Path) -> int:
    n = 0
    try:
        folders = list(os.scandir(out / "labels"))
    except FileNotFoundError:
        return 0
    for folder in folders:
        try:
            n += sum(1 for f in os.scandir(folder.path) if f.name.startswith("part-"))
        except FileNotFoundError:
            pass
    return n


def _temps(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if TEMP.match(p.name)]


def _wait_for(predicate, proc, timeout: float = 60.0) -> bool:
    """Poll ``predicate`` until it holds (True) or ``proc`` ends (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        if proc.poll() is not None:
            return predicate()
        time.sleep(0.005)
    raise AssertionError(f"timed out after {timeout} s")


def _start(args, env=None) -> subprocess.Popen:
    return subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)


def _after_kill(out: Path, bars: int) -> dict[str, dict]:
    """Check what a killed run left; return its configurations by id."""
    status = read_status(out, checksums=True)
    assert status["counts"]["damaged"] == 0, status
    for c in status["configs"]:
        # A kill inside the first write of a configuration leaves a folder
        # holding only a temporary file, which no record lists yet.
        assert c["status"] != "stale" or c["parts"] == 0, c
    listed = {
        e["id"] for e in json.loads((out / "manifest.json").read_text())["configs"]
    }
    configs = {c["id"]: c for c in status["configs"]}
    for cid, c in configs.items():
        if c["status"] == "complete":
            assert cid in listed
            assert c["rows"] == bars, c
        else:
            assert cid not in listed
    return configs


def _part_files(out: Path, cid: str) -> dict[str, tuple[int, int]]:
    folder = out / "labels" / f"config={cid}"
    return {
        p.name: (p.stat().st_mtime_ns, p.stat().st_ino)
        for p in folder.glob("part-*.parquet")
    }


def _resume(args, out: Path, before: dict[str, dict], reference, read_labels):
    """Run to completion and check it reused and resumed what it should."""
    complete = [cid for cid, c in before.items() if c["status"] == "complete"]
    partial = [
        cid for cid, c in before.items() if c["status"] == "partial" and c["parts"]
    ]
    kept = {cid: _part_files(out, cid) for cid in complete}

    done = subprocess.run(args, capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr
    reused = len(complete)
    assert f"{CONFIGS - reused} computed, {reused} reused" in done.stdout
    for cid in partial:
        assert re.search(rf"{re.escape(cid)}: resuming at [\d,]+", done.stderr), (
            cid,
            done.stderr,
        )
    for cid in complete:
        assert _part_files(out, cid) == kept[cid], f"{cid} was rewritten"
    assert _temps(out) == []
    assert not (out / ".labeler" / "lock").exists()
    status = read_status(out, checksums=True)
    assert status["counts"]["complete"] == CONFIGS, status
    assert read_labels(out).equals(reference[0])


# -- SIGKILL --------------------------------------------------------------------


@pytest.mark.parametrize("fraction", [0.35, 0.7])
def test_sigkill_at_a_fraction_of_parts_then_resume(
    fraction, cmd, total_parts, small_table, reference, read_labels
):
    args, out = cmd
    target = math.ceil(fraction * total_parts)
    proc = _start(args)
    reached = _wait_for(lambda: _count_parts(out) >= target, proc)
    _kill(proc)
    assert reached, f"the run ended before writing {target} parts"
    assert proc.returncode == -signal.SIGKILL

    before = _after_kill(out, small_table.num_rows)
    done = sum(c["parts"] for c in before.values() if c["status"] == "partial")
    complete = sum(c["status"] == "complete" for c in before.values())
    assert complete < CONFIGS
    # Each write in flight may have renamed its part without recording it yet.
    assert complete * (total_parts // CONFIGS) + done >= target - WRITERS
    _resume(args, out, before, reference, read_labels)


@pytest.fixture
def hang_env(tmp_path):
    """Environment that loads HANG_HOOK into the child interpreter."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(HANG_HOOK)

    def env(spec: str) -> dict[str, str]:
        path = os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")]))
        return {
            **os.environ,
            "PYTHONPATH": path,
            "LABELER_TEST_HANG": spec,
            "LABELER_TEST_HANG_MARK": str(tmp_path / "hanging"),
        }

    return env


@pytest.mark.parametrize(
    ("spec", "pattern"),
    [
        ("part:15", "labels/config=*/.part-*.parquet.tmp-*"),
        ("manifest:3", ".manifest.json.tmp-*"),
    ],
)
def test_sigkill_during_a_write_then_resume(
    spec, pattern, cmd, hang_env, small_table, reference, read_labels, tmp_path
):
    args, out = cmd
    proc = _start(args, env=hang_env(spec))
    reached = _wait_for((tmp_path / "hanging").exists, proc)
    _kill(proc)
    assert reached, f"the run ended without the hanging write ({spec})"
    # The half-written file the kill interrupted, and with several writes in
    # flight (engine.run.WRITERS) perhaps another one still being written.
    left = list(out.glob(pattern))
    assert 1 <= len(left) <= WRITERS, left
    assert any(f.stat().st_size > 0 for f in left)

    before = _after_kill(out, small_table.num_rows)
    if spec.startswith("manifest"):
        # Killed while recording the second configuration as complete: its
        # parts are all there, but readers must not see it as complete yet.
        by_status = sorted((c["status"], c["rows"]) for c in before.values())
        n = small_table.num_rows
        assert by_status == [("complete", n), ("partial", n)]
    _resume(args, out, before, reference, read_labels)


def test_sigkill_at_random_times_then_resume(cmd, small_table, reference, read_labels):
    args, out = cmd
    rng = random.Random(20240611)
    writing = reference[1]
    landed = 0
    before: dict[str, dict] = {}
    for _ in range(2):
        base = _count_parts(out)
        proc = _start(args)
        if _wait_for(lambda base=base: _count_parts(out) > base, proc):
            time.sleep(rng.uniform(0.05, 0.6) * writing)
        landed += proc.poll() is None
        _kill(proc)
        before = _after_kill(out, small_table.num_rows)
        if all(c["status"] == "complete" for c in before.values()):
            break
    assert landed, "no kill landed while a run was writing"
    _resume(args, out, before, reference, read_labels)


# -- SIGINT ---------------------------------------------------------------------


def test_sigint_stops_after_the_chunk_in_flight(
    cmd, total_parts, small_table, reference, read_labels
):
    args, out = cmd
    proc = _start(args)
    target = math.ceil(0.35 * total_parts)
    reached = _wait_for(lambda: _count_parts(out) >= target, proc)
    assert reached, f"the run ended before writing {target} parts"
    proc.send_signal(signal.SIGINT)
    at_signal = _count_parts(out)
    stdout, stderr = proc.communicate(timeout=60)

    assert proc.returncode == 130, stderr
    assert "stopping after the chunks in flight" in stderr
    assert re.search(r"labeler: interrupted: .*run the same command again", stderr)
    assert "Traceback" not in stderr
    assert _count_parts(out) <= at_signal + 3  # no more than the chunks in flight
    assert _temps(out) == []
    before = _after_kill(out, small_table.num_rows)
    assert read_status(out)["lock"] is None
    assert any(c["status"] == "partial" for c in before.values())
    _resume(args, out, before, reference, read_labels)


# -- one writer at a time ---------------------------------------------------------


def test_second_run_refuses_then_waits_for_the_first(cmd, reference, read_labels):
    args, out = cmd
    first = _start(args)
    waiter = None
    try:
        assert _wait_for(lambda: _count_parts(out) > 0, first)
        first.send_signal(signal.SIGSTOP)  # holds the lock, writes nothing

        refused = subprocess.run(args, capture_output=True, text=True, timeout=60)
        assert refused.returncode != 0
        assert refused.stdout == ""
        message = refused.stderr.strip().splitlines()[-1]
        assert message.startswith("labeler: output folder")
        assert f"pid {first.pid} on {socket.gethostname()}" in message
        assert "in use by another labeler run" in message

        waiter = _start([*args, "--wait", "120"])
        time.sleep(1.0)
        assert waiter.poll() is None, "the --wait run did not wait for the lock"
        first.send_signal(signal.SIGCONT)
        first.communicate(timeout=60)
        assert first.returncode == 0
        stdout, stderr = waiter.communicate(timeout=60)
        assert waiter.returncode == 0, stderr
        assert f"0 computed, {CONFIGS} reused" in stdout
    finally:
        for proc in (first, waiter):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
                proc.communicate()
    assert read_labels(out).equals(reference[0])
    assert read_status(out, checksums=True)["counts"]["complete"] == CONFIGS


def test_lock_of_a_dead_process_is_taken_over(cmd, reference, read_labels):
    args, out = cmd
    gone = subprocess.Popen(["true"])
    gone.wait()
    (out / ".labeler").mkdir(parents=True)
    lock = out / ".labeler" / "lock"
    lock.write_text(
        json.dumps(
            {
                "pid": gone.pid,
                "host": socket.gethostname(),
                "started": "2024-01-01T00:00:00+00:00",
                "token": "0" * 32,
            }
        )
    )

    done = subprocess.run(args, capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr
    assert f"{CONFIGS} computed, 0 reused" in done.stdout
    assert not lock.exists()
    assert read_labels(out).equals(reference[0])
