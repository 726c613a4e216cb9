"""The command line: every command in-process, and `labeler run` as a process."""

from __future__ import annotations

import errno
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cli.main import app
from engine.config import load_grid
from engine.run import WRITERS, Interrupted, Progress, run
from engine.sample import default_grid, sample_table

REPO = Path(__file__).resolve().parents[1]
LABELER = Path(sys.executable).with_name("labeler")
CHUNK = "500"


@pytest.fixture
def cli():
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    return invoke


@pytest.fixture
def run_args(small_data, small_grid, tmp_path):
    out = tmp_path / "out"
    args = [
        "run", small_data, "--grid", small_grid, "--out", out,
        "--chunk-events", CHUNK, "--device", "cpu", "--threads", "1",
    ]  # fmt: skip
    return args, out


def _ids(grid_path) -> list[str]:
    return [c.id for c in load_grid(grid_path).configs]


def _manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def test_help_lists_every_command(cli):
    result = cli("--help")
    assert result.exit_code == 0
    for command in ("run", "configs", "status", "doctor", "sample"):
        assert re.search(rf"^\W*{command}\b", result.stdout, re.MULTILINE), command


# -- configs --------------------------------------------------------------------


def test_configs_prints_a_table(cli, small_grid):
    result = cli("configs", small_grid)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "id", "side", "target", "stop", "horizon", "ambiguity", "entry",
    ]  # fmt: skip
    assert lines[-1] == "4 configurations"
    rows = [line.split() for line in lines[1:-1]]
    assert [r[0] for r in rows] == _ids(small_grid)
    assert rows[0][1:] == ["long", "0.003", "0.002", "30", "stop_first", "close"]
    assert rows[1][4] == "2h"


def test_configs_json(cli, small_grid):
    result = cli("configs", small_grid, "--json")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["id"] for r in rows] == _ids(small_grid)
    assert {r["side"] for r in rows} == {"long", "short"}
    assert {r["horizon"] for r in rows} == {30, "2h"}
    assert all(r["target"] == 0.003 and r["stop"] == 0.002 for r in rows)


def test_configs_without_a_file_is_the_default_grid(cli):
    result = cli("configs", "--json")
    assert result.exit_code == 0
    assert [r["id"] for r in json.loads(result.stdout)] == [
        c.id for c in default_grid().configs
    ]


@pytest.mark.parametrize(
    ("body", "key"),
    [
        (
            'side = "long"\ntarget = 0.01\nstop = 0.01\nhorizon = 5\ncolour = 1',
            "colour",
        ),
        ('side = "long"\ntarget = 0.01\nhorizon = 5', "stop"),
        ('side = "long"\ntarget = -0.01\nstop = 0.01\nhorizon = 5', "target"),
        ('side = "long"\ntarget = 0.01\nstop = 0.01\nhorizon = "4 parsecs"', "horizon"),
    ],
)
def test_configs_refuses_a_bad_grid_naming_the_key(cli, tmp_path, body, key):
    path = tmp_path / "bad.toml"
    path.write_text(f"[grid]\n{body}\n")
    result = cli("configs", path)
    assert result.exit_code != 0
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("labeler: ")
    assert f"'{key}'" in line
    assert str(path) in line


# -- run ------------------------------------------------------------------------


def test_run_then_rerun_reuses(cli, run_args, small_grid, small_table, read_labels):
    args, out = run_args
    n = small_table.num_rows
    first = cli(*args)
    assert first.exit_code == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0].startswith(f"labelled {n:,} bars with 4 configurations on CPU")
    assert "  configurations: 4 computed, 0 reused" in lines
    assert f"  rows: {4 * n:,} ({4 * n:,} computed now)" in lines
    assert re.search(
        r"^  labels: \+1 [\d.]+%, 0 [\d.]+%, -1 [\d.]+%$", first.stdout, re.M
    )
    assert re.search(r"^  time: read .* total [\d.]+ s", first.stdout, re.M)
    assert f"  output: {out}" in lines
    assert [c["id"] for c in _manifest(out)["configs"]] == _ids(small_grid)
    labels = read_labels(out)
    assert labels.num_rows == 4 * n

    second = cli(*args)
    assert second.exit_code == 0, second.stderr
    assert "  configurations: 0 computed, 4 reused" in second.stdout.splitlines()
    assert f"  rows: {4 * n:,} (0 computed now)" in second.stdout.splitlines()
    assert read_labels(out).equals(labels)


def test_run_quiet_prints_nothing(cli, run_args):
    args, out = run_args
    result = cli(*args, "--quiet")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr == ""
    assert len(_manifest(out)["configs"]) == 4


def test_run_progress_lines_go_to_stderr(cli, run_args, small_grid):
    args, _ = run_args
    result = cli(*args)
    assert result.exit_code == 0
    for i, cid in enumerate(_ids(small_grid), 1):
        assert f"[{i}/4] {cid}: computing" in result.stderr
    assert "labelled" not in result.stderr


def test_run_columns_subset(cli, run_args):
    args, out = run_args
    result = cli(*args, "--columns", "label,exit_index")
    assert result.exit_code == 0, result.stderr
    parts = sorted((out / "labels").rglob("part-*.parquet"))
    assert parts
    for part in parts:
        assert pq.read_schema(part).names == ["event_index", "label", "exit_index"]


def test_run_float64(cli, run_args):
    args, out = run_args
    result = cli(*args, "--float64")
    assert result.exit_code == 0, result.stderr
    schema = ds.dataset(out / "labels", format="parquet", partitioning="hive").schema
    assert {str(schema.field(c).type) for c in ("ret", "mfe", "mae")} == {"double"}


def test_run_refuses_an_unknown_column(cli, run_args):
    args, out = run_args
    result = cli(*args, "--columns", "label,colour")
    assert result.exit_code != 0
    assert "'colour'" in result.stderr
    assert not (out / "manifest.json").exists() or not _manifest(out)["configs"]


def test_run_refuses_bad_data_naming_file_column_and_row(cli, small_grid, tmp_path):
    path = tmp_path / "bad bars.csv"
    rows = ["timestamp,open,high,low,close"]
    for i in range(10):
        high, low = (99.0, 101.0) if i == 5 else (101.0, 99.0)
        rows.append(f"2024-01-02T14:{30 + i:02d}:00Z,100.0,{high},{low},100.0")
    path.write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"

    result = cli("run", path, "--grid", small_grid, "--out", out, "--device", "cpu")

    assert result.exit_code != 0
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert str(path) in line
    assert "row 5" in line
    assert "'high'" in line and "'low'" in line
    assert not (out / "manifest.json").exists() or not _manifest(out)["configs"]
    assert not list(out.rglob("*.parquet"))


def test_run_refuses_a_folder_another_run_holds(cli, run_args):
    args, out = run_args
    (out / ".labeler").mkdir(parents=True)
    holder = {
        "pid": os.getpid(),  # alive: this test process
        "host": socket.gethostname(),
        "started": "2024-01-02T00:00:00+00:00",
        "token": "f" * 32,
    }
    (out / ".labeler" / "lock").write_text(json.dumps(holder))

    result = cli(*args)

    assert result.exit_code != 0
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("labeler:")]
    assert f"pid {os.getpid()} on {socket.gethostname()}" in line
    assert "in use by another labeler run" in line
    assert json.loads((out / ".labeler" / "lock").read_text()) == holder
    assert not list(out.rglob("*.parquet"))


def test_run_with_data_needs_no_grid_but_grid_needs_data(cli, small_grid, tmp_path):
    result = cli("run", "--grid", small_grid, "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert "DATA is required with --grid" in result.stderr


# -- status ---------------------------------------------------------------------


def test_status_of_a_complete_folder(cli, run_args, small_grid, small_table):
    args, out = run_args
    assert cli(*args, "--quiet").exit_code == 0

    result = cli("status", out, "--checksums")

    assert result.exit_code == 0, result.stderr
    fp = _manifest(out)["data"]["fingerprint"]
    assert f"data fingerprint: {fp}" in result.stdout
    for cid in _ids(small_grid):
        assert re.search(
            rf"^  complete\s+{re.escape(cid)}  rows {small_table.num_rows:,}$",
            result.stdout,
            re.M,
        ), cid
    assert result.stdout.splitlines()[-1] == "4 complete, 0 damaged, 0 partial, 0 stale"
    info = json.loads(cli("status", out, "--json").stdout)
    assert info["counts"]["complete"] == 4
    assert info["fingerprint"] == fp


def test_status_of_a_partial_folder(cli, small_table, small_grid, tmp_path):
    from engine.data import bars_from_table

    out = tmp_path / "out"
    stop = threading.Event()

    class StopNow(Progress):
        def advance(self, config, events):
            stop.set()

    bars = bars_from_table(small_table)
    with pytest.raises(Interrupted):
        run(bars, load_grid(small_grid), out, threads=1, chunk_events=500,
            progress=StopNow(), stop=stop)  # fmt: skip

    result = cli("status", out)

    assert result.exit_code == 0, result.stderr
    first = _ids(small_grid)[0]
    kept = 1 + WRITERS  # chunk 0 written, then the chunks in flight
    assert re.search(
        rf"^  partial\s+{re.escape(first)}  rows {kept * 500:,}  {kept} chunks done$",
        result.stdout,
        re.M,
    ), result.stdout
    assert result.stdout.splitlines()[-1] == "0 complete, 0 damaged, 1 partial, 0 stale"


def test_status_of_a_stale_folder_with_unknown_rows(cli, run_args):
    args, out = run_args
    assert cli(*args, "--quiet").exit_code == 0
    stray = out / "labels" / "config=long_old"
    stray.mkdir()
    first = next((out / "labels").glob("config=*/part-0.parquet"))
    (stray / "part-0.parquet").write_bytes(first.read_bytes())

    result = cli("status", out)

    assert result.exit_code == 0, result.stderr
    assert re.search(r"^  stale\s+long_old  rows \?  ", result.stdout, re.M)
    assert result.stdout.splitlines()[-1] == "4 complete, 0 damaged, 0 partial, 1 stale"


def test_status_of_a_missing_or_foreign_folder(cli, tmp_path):
    result = cli("status", tmp_path / "nowhere")
    assert result.exit_code != 0
    assert "nowhere: no such output folder" in result.stderr

    (tmp_path / "empty").mkdir()
    result = cli("status", tmp_path / "empty")
    assert result.exit_code != 0
    assert "holds no labeler output" in result.stderr


# -- doctor and sample ----------------------------------------------------------


def test_doctor_reports_versions_and_judges_cuda(cli):
    from engine import gpu

    if not hasattr(gpu, "report"):
        pytest.skip("engine.gpu.report is not written yet (the CUDA issue)")
    import numba

    usable, reason = gpu.probe()
    result = cli("doctor", "--device", "cuda")
    assert "labeler " in result.stdout
    assert f"numba {numba.__version__}" in result.stdout
    if usable:
        assert result.exit_code == 0
    else:
        assert result.exit_code != 0
        (line,) = result.stderr.splitlines()
        assert line == f"labeler: --device cuda cannot work here: {reason}"

    cpu = cli("doctor", "--device", "cpu")
    assert cpu.exit_code == 0
    assert cpu.stderr == ""


def test_sample_writes_the_bundled_series(cli, tmp_path):
    path = tmp_path / "sample.parquet"
    result = cli("sample", path)
    assert result.exit_code == 0
    table = pq.read_table(path)
    assert result.stdout.strip() == f"wrote {table.num_rows:,} synthetic bars to {path}"
    assert table.equals(sample_table())
    assert [p.name for p in tmp_path.iterdir()] == ["sample.parquet"]


# -- real processes -------------------------------------------------------------


@pytest.mark.slow
def test_run_without_arguments_labels_the_bundled_sample(tmp_path):
    done = subprocess.run(
        [str(LABELER), "run"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )

    assert done.returncode == 0, done.stderr
    grid = default_grid()
    n = sample_table().num_rows
    rows = n * len(grid.configs)
    lines = done.stdout.splitlines()
    assert re.match(
        rf"labelled {n:,} bars with {len(grid.configs)} configurations on ", lines[0]
    )
    assert f"  configurations: {len(grid.configs)} computed, 0 reused" in lines
    assert f"  rows: {rows:,} ({rows:,} computed now)" in lines
    assert any(line.startswith("  labels: +1 ") for line in lines)
    assert any(line.startswith("  time: read ") for line in lines)
    assert lines[-1] == "  output: labels-out"
    out = tmp_path / "labels-out"
    manifest = _manifest(out)
    assert len(manifest["configs"]) == 16
    assert [c["id"] for c in manifest["configs"]] == [c.id for c in grid.configs]
    assert manifest["data"]["bars"] == n
    table = ds.dataset(out / "labels", format="parquet", partitioning="hive").to_table()
    assert table.num_rows == rows
    assert sorted(set(table["config"].to_pylist())) == sorted(
        c.id for c in grid.configs
    )
    # stderr holds progress lines and at most the device fallback, no noise
    # from the libraries underneath.
    noise = [x for x in done.stderr.splitlines() if "Warning" in x]
    assert noise == [], done.stderr


FULL_DISK_HOOK = textwrap.dedent(
    """
    import errno
    import pyarrow.parquet as pq

    _real = pq.write_table

    def _write_table(table, where, **kwargs):
        if ".part-2.parquet" in str(where):
            raise OSError(errno.ENOSPC, "No space left on device")
        return _real(table, where, **kwargs)

    pq.write_table = _write_table
    """
)


@pytest.mark.slow
def test_full_disk_is_one_line_on_stderr(small_data, small_grid, tmp_path):
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(FULL_DISK_HOOK)
    out = tmp_path / "out"
    args = [
        str(LABELER), "run", str(small_data), "--grid", str(small_grid),
        "--out", str(out), "--chunk-events", CHUNK, "--device", "cpu",
        "--threads", "1", "--quiet",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(hook)}

    done = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)

    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"labeler: cannot write {out}/labels/config={_ids(small_grid)[0]}/"
        f"part-2.parquet: [Errno {errno.ENOSPC}] No space left on device"
    ]
    assert _manifest(out)["configs"] == []


# -- the README and CI run the same tests ---------------------------------------


def _shell_commands(text: str) -> list[tuple[str, ...]]:
    """Commands of shell text, normalised: venv paths and quiet flags dropped."""
    commands = []
    for line in text.replace("\\\n", " ").splitlines():
        line = line.strip().removeprefix("$ ")
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words: list[str] = []
        for token in [*lexer, ";"]:
            if token in ("&&", "||", ";", "|", "&"):
                if words:
                    commands.append(tuple(words))
                words = []
                continue
            token = re.sub(r"^(\./)?\.venv/bin/", "", token)
            if token not in ("-q", "--quiet"):
                words.append(token)
    as_module = {("python", "-m", "pytest"), ("python3", "-m", "pytest")}
    return [("pytest", *c[3:]) if c[:3] in as_module else c for c in commands]


def _shell_blocks(markdown: str) -> list[str]:
    """The fenced code blocks of a Markdown text that hold shell commands."""
    blocks, current, shell = [], None, False
    for line in markdown.splitlines():
        if line.startswith("```"):
            if current is None:
                current, shell = [], line[3:].strip() in ("sh", "bash", "shell")
            else:
                if shell:
                    blocks.append("\n".join(current))
                current = None
        elif current is not None:
            current.append(line)
    return blocks


def test_readme_test_command_is_what_ci_runs():
    readme = (REPO / "README.md").read_text() if (REPO / "README.md").exists() else ""
    readme_cmds = [c for b in _shell_blocks(readme) for c in _shell_commands(b)]
    readme_tests = {c for c in readme_cmds if "pytest" in c}
    if not readme_tests:
        pytest.skip("README.md has no test command yet")
    ci = (REPO / ".ci" / "run").read_text()
    ci_cmds = _shell_commands("\n".join(x for x in ci.splitlines() if x[:1] != "#"))
    assert {c for c in ci_cmds if "pytest" in c} == readme_tests
    ci_installs = {c for c in ci_cmds if "install" in c}
    assert ci_installs, ".ci/run installs nothing"
    assert ci_installs <= set(readme_cmds)
