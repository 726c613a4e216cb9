"""The ``labeler`` command line: a thin, typed layer over the engine.

Each command calls one engine function and turns an engine error into a
one-line message on stderr and a non-zero exit status.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="labeler",
    help="Exact triple-barrier labels for financial machine learning, on CPU "
    "and CUDA. Labels look forward: use them as targets, never as features.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"labeler: {message}", err=True)
    return typer.Exit(code)


def _columns(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [c.strip() for c in value.split(",") if c.strip()]


@app.command()
def run(
    data: Annotated[
        Path | None,
        typer.Argument(
            help="Bars: a Parquet, Arrow IPC (Feather) or CSV file, or a folder of "
            "Parquet files. Without DATA and --grid, labels the bundled synthetic "
            "sample with the bundled default grid.",
            show_default=False,
        ),
    ] = None,
    grid: Annotated[
        Path | None,
        typer.Option(
            "--grid", "-g", help="Grid file (TOML); see the README.", show_default=False
        ),
    ] = None,
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Output folder; running again into it reuses what "
            "is complete there and resumes what is not.",
        ),
    ] = Path("labels-out"),
    device: Annotated[
        str,
        typer.Option(
            help="cpu, cuda, or auto (CUDA when usable, else the CPU, saying why)."
        ),
    ] = "auto",
    threads: Annotated[
        int | None,
        typer.Option(
            help="CPU threads; 1 runs the strictly sequential kernel. Default: all "
            "cores.",
            show_default=False,
        ),
    ] = None,
    float64: Annotated[
        bool,
        typer.Option(
            "--float64", help="Write ret, mfe and mae as float64 (default float32)."
        ),
    ] = False,
    columns: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated output columns to write (event_index always).",
            show_default=False,
        ),
    ] = None,
    chunk_events: Annotated[
        int,
        typer.Option(help="Events per chunk: the unit of checkpoints and part files."),
    ] = 1 << 20,
    wait: Annotated[
        float,
        typer.Option(help="Seconds to wait for another run holding the output folder."),
    ] = 0.0,
    events: Annotated[
        Path | None,
        typer.Option(
            help="A file of event times (Parquet, Feather or CSV) in a column named "
            "like the bars' timestamp; each event is the last bar at or before its "
            "time. With a universe, a symbol column in it assigns events to "
            "symbols. Combined with \\[events] cusum, only bars that both select.",
            show_default=False,
        ),
    ] = None,
    fine: Annotated[
        Path | None,
        typer.Option(
            help="A finer path (ticks with one price column, or smaller OHLC bars) "
            "covering the same time: it re-decides bars that touch both barriers.",
            show_default=False,
        ),
    ] = None,
    universe: Annotated[
        bool,
        typer.Option(
            "--universe",
            help="DATA is a folder with one file per symbol, named by the file "
            "(without extension). A symbol column (\\[columns] symbol) needs no flag.",
        ),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress, no summary.")
    ] = False,
) -> None:
    """Label bars with every configuration of a grid into an output folder.

    Grid keys (\\[grid]): side (long, short, or column: each event's side from the
    side column named in \\[columns], for meta-labelling), target and stop
    (fractions like 0.01, or volatility multiples like "2vol"), horizon (bars,
    or a duration like "4h"), ambiguity (stop_first or target_first), entry
    (close or next_open), vol_window (returns behind "vol" barriers, default
    100). \\[events] cusum = h selects events with a CUSUM filter. \\[columns] maps
    timestamp, open, high, low, close, price, side and symbol.
    """
    from cli.progress import make_progress
    from engine.errors import LabelerError
    from engine.run import Interrupted
    from engine.run import run as run_job
    from engine.sample import default_grid, sample_table

    stop = threading.Event()

    def on_signal(signum, frame):  # noqa: ARG001 - signal handler signature
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        typer.echo(
            "labeler: stopping after the chunks in flight (Ctrl-C again to stop "
            "now; finished chunks are kept either way)",
            err=True,
        )

    previous = signal.signal(signal.SIGINT, on_signal)
    progress = make_progress(quiet)
    try:
        from engine.config import load_grid
        from engine.data import bars_from_table

        t0 = time.perf_counter()
        if data is None and grid is None:
            spec = default_grid()
            bars = bars_from_table(
                sample_table(), spec.columns, source="<bundled sample>"
            )
        elif data is None:
            raise _fail(
                "DATA is required with --grid (the bundled sample only "
                "runs with the bundled grid)",
                2,
            )
        else:
            spec = load_grid(grid) if grid is not None else default_grid()
            bars = _load_source(data, spec.columns, universe, events, fine)
        read_seconds = time.perf_counter() - t0
        summary = run_job(
            bars, spec, out, device=device, threads=threads, float64=float64,
            columns=_columns(columns), chunk_events=chunk_events,
            progress=progress, stop=stop, wait=wait, read_seconds=read_seconds,
        )  # fmt: skip
    except Interrupted as exc:
        _abort(progress)
        raise _fail(f"interrupted: {exc}", 130) from None
    except KeyboardInterrupt:
        _abort(progress)
        raise _fail(
            f"stopped at once; finished chunks are kept. Run the same command "
            f"again to resume into {out}",
            130,
        ) from None
    except LabelerError as exc:
        _abort(progress)
        raise _fail(str(exc)) from None
    finally:
        signal.signal(signal.SIGINT, previous)
    if not quiet:
        _print_summary(summary)


def _load_source(data, columns, universe: bool, events, fine):
    """The bars (one path or a universe) with their events and finer path."""
    from engine.data import load_bars, load_universe
    from engine.events import event_times_for, read_event_file
    from engine.fine import FinePath
    from engine.run import Source

    if universe or columns.symbol is not None:
        paths = load_universe(data, columns, per_file=universe)
    else:
        paths = [(None, load_bars(data, columns))]
    times = None
    if events is not None:
        table = read_event_file(events, columns.timestamp, columns.symbol)
        times = event_times_for(
            table, paths, columns.timestamp, columns.symbol, str(events)
        )
    fine_path = None
    if fine is not None:
        if paths[0][0] is not None:
            raise _fail("--fine works on a single series, not a universe", 2)
        fine_path = FinePath.from_any(fine, columns, paths[0][1])
    return Source(
        tuple(paths), event_times=times, event_source=str(events), fine=fine_path
    )


def _abort(progress) -> None:
    stop = getattr(progress, "abort", None)
    if stop is not None:
        stop()


def _print_summary(summary) -> None:
    say = typer.echo
    if summary.fallback_reason:
        say(
            f"device: CPU, because CUDA cannot run here: {summary.fallback_reason}",
            err=True,
        )
    reused = sum(c.status == "reused" for c in summary.configs)
    counts = summary.label_counts()
    total = max(sum(counts.values()), 1)
    s = summary.seconds
    computed = summary.computed_rows
    rate = computed / s["compute"] if s.get("compute") else 0.0
    where = f" of {summary.symbols} symbols" if summary.symbols else ""
    say(
        f"labelled {summary.bars:,} bars{where} with {len(summary.configs)} "
        f"configurations on {summary.device}"
    )
    say(f"  configurations: {len(summary.configs) - reused} computed, {reused} reused")
    say(f"  rows: {summary.rows:,} ({computed:,} computed now)")
    say(
        "  labels: "
        + ", ".join(
            f"{name} {counts[key] / total:.1%}"
            for key, name in (("1", "+1"), ("0", "0"), ("-1", "-1"))
        )
    )
    amb = sum(c.ambiguous for c in summary.configs)
    trunc = sum(c.truncated for c in summary.configs)
    skipped = sum(c.skipped for c in summary.configs)
    say(
        f"  ambiguous: {amb:,}  truncated: {trunc:,}"
        + (f"  skipped events: {skipped:,}" if skipped else "")
    )
    if skipped:
        say(
            "  (skipped: events without a row under a configuration: volatility "
            "not yet defined, no next open, or no side)"
        )
    if summary.fine:
        settled = sum(c.settled for c in summary.configs)
        say(
            f"  finer path: settled {settled:,} ambiguous labels, {amb:,} remain "
            "ambiguous"
        )
    say(
        f"  time: read {s.get('read', 0):.2f} s, prepare {s.get('prepare', 0):.2f} s,"
        f" compute {s.get('compute', 0):.2f} s, write {s.get('write', 0):.2f} s, "
        f"total {s.get('total', 0):.2f} s ({rate:,.0f} labels/s computing)"
    )
    say(f"  output: {summary.out_dir}")


@app.command()
def configs(
    grid: Annotated[
        Path | None,
        typer.Argument(
            help="Grid file (TOML). Default: the bundled default grid.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Expand a grid file and print its configurations."""
    from engine.config import load_grid
    from engine.errors import LabelerError
    from engine.sample import default_grid

    try:
        spec = load_grid(grid) if grid is not None else default_grid()
    except LabelerError as exc:
        raise _fail(str(exc)) from None
    rows = [c.describe() for c in spec.configs]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    keys = ["id", "side", "target", "stop", "horizon", "ambiguity", "entry"]
    widths = {k: max(len(k), *(len(str(r.get(k, ""))) for r in rows)) for k in keys}
    typer.echo("  ".join(k.ljust(widths[k]) for k in keys).rstrip())
    for r in rows:
        typer.echo("  ".join(str(r.get(k, "")).ljust(widths[k]) for k in keys).rstrip())
    typer.echo(f"{len(rows)} configurations")


@app.command()
def status(
    out: Annotated[Path, typer.Argument(help="An output folder of `labeler run`.")],
    checksums: Annotated[
        bool, typer.Option(help="Also verify every part file's checksum.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Summarise an output folder: complete, partial and stale configurations."""
    from engine.errors import LabelerError
    from engine.store import read_status

    if not out.is_dir():
        raise _fail(f"{out}: no such output folder")
    try:
        info = read_status(out, checksums=checksums)
    except LabelerError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(info, indent=2, default=str))
        return
    typer.echo(f"folder: {out}")
    typer.echo(f"data fingerprint: {info.get('fingerprint')}")
    data = info.get("data") or {}
    if data:
        typer.echo(f"data: {data.get('source')} ({data.get('bars', '?')} bars)")
    lock = info.get("lock")
    if lock:
        typer.echo(
            f"lock: held by pid {lock.get('pid')} on {lock.get('host')} "
            f"({lock.get('state')})"
        )
    for c in info.get("configs", []):
        detail = f"  {c.get('detail')}" if c.get("detail") else ""
        rows = "?" if c.get("rows") is None else f"{c['rows']:,}"  # stale: unknown
        typer.echo(f"  {c['status']:<9} {c['id']}  rows {rows}{detail}")
    counts = info.get("counts", {})
    typer.echo(
        ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "no configurations"
    )


@app.command()
def doctor(
    device: Annotated[
        str, typer.Option(help="The device whose usability decides the exit status.")
    ] = "cuda",
    compile_arch: Annotated[
        str | None,
        typer.Option(
            "--compile",
            help="Compile every CUDA kernel for this architecture "
            "(e.g. sm_80, sm_90); needs no GPU.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Report versions and devices; exit non-zero when DEVICE cannot work here."""
    import platform

    import numba
    import numpy
    import pyarrow

    import engine
    from engine import gpu

    typer.echo(
        f"labeler {engine.__version__} (label semantics v{engine.SEMANTICS_VERSION})"
    )
    typer.echo(
        f"python {platform.python_version()}, numpy {numpy.__version__}, "
        f"numba {numba.__version__}, pyarrow {pyarrow.__version__}"
    )
    typer.echo(f"cpu: {numba.config.NUMBA_NUM_THREADS} threads available")
    report = gpu.report()
    for key, value in report.items():
        if key != "devices":
            typer.echo(f"{key}: {value}")
    for dev in report.get("devices", []) or []:
        typer.echo(f"  device: {dev}")
    if compile_arch is not None:
        from engine.gpu.kernels import compile_all

        try:
            results = compile_all(compile_arch)
        except Exception as exc:  # noqa: BLE001 - reported, then a clean exit
            raise _fail(f"cannot compile for {compile_arch}: {exc}") from None
        failed = [name for name, ok, _ in results if not ok]
        for name, ok, msg in results:
            typer.echo(
                f"compile {compile_arch} {name}: {'ok' if ok else 'FAILED'}"
                + (f" ({msg})" if msg else "")
            )
        if failed:
            raise _fail(
                f"{len(failed)} kernel(s) failed to compile for "
                f"{compile_arch}: {', '.join(failed)}"
            )
        return
    if device == "cuda":
        usable, reason = gpu.probe()
        if not usable:
            raise _fail(f"--device cuda cannot work here: {reason}")
        typer.echo(f"cuda: usable ({reason})")


@app.command()
def sample(
    path: Annotated[Path, typer.Argument(help="Where to write the sample (Parquet).")],
) -> None:
    """Write the bundled synthetic sample series to a Parquet file."""
    import pyarrow.parquet as pq

    from engine.sample import sample_table

    table = sample_table()
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)
    typer.echo(f"wrote {table.num_rows:,} synthetic bars to {path}")


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """Caveats from the engine as one line each, not a source listing."""
    typer.echo(f"labeler: warning: {message}", err=True)


def main() -> None:
    """Entry point of the ``labeler`` console script."""
    import logging
    import warnings

    logging.basicConfig(level=logging.WARNING, format="labeler: %(message)s")
    warnings.showwarning = _show_warning
    try:
        app()
    except BrokenPipeError:  # e.g. `labeler configs | head`
        sys.exit(1)


if __name__ == "__main__":
    main()
