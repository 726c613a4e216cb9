"""A user-sized grid: 14 M bars x 210 configurations, compute and end to end.

The grid is side 2 x target 5 x stop 3 x horizon 7, the horizons mixing bar
counts and durations. Three phases, each in its own process so that each
reports its own peak memory (``ru_maxrss``):

- ``compute``: the CPU kernel over every configuration, chunk by chunk as
  ``labeler run`` does, keeping nothing (labels/s of the kernel alone), and
  the same with the Arrow tables assembled;
- ``e2e``: :func:`engine.run.run` into a temporary folder, Parquet output and
  all, with its read / prepare / compute / write split.

``--configs K`` takes K configurations spread evenly over the grid and
``--bars N`` a shorter path; the totals are then also scaled to the full
grid, and the output says so.

    python -m benchmarks.bench_grid [--bars 14000000] [--configs 210]
        [--e2e-configs 210] [--threads N] [--parquet default|tuned] [--out DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import (
    add_timing_options,
    load,
    machine,
    random_walk,
    wait_quiet,
)

SIDES = ("long", "short")
TARGETS = (0.0025, 0.005, 0.01, 0.02, 0.03)
STOPS = (0.005, 0.01, 0.03)
HORIZONS = (15, 60, 240, 1440, "4h", "1d", "7d")  # "7d" is 10,080 minute bars


#: Parquet options for the end-to-end phase: the store's default, or the
#: settings BENCHMARKS.md recommends (delta-encoded indexes and timestamps,
#: byte-stream-split floats; see benchmarks/bench_parquet.py).
PARQUET = {
    "default": None,
    "tuned": {
        "compression": "zstd",
        "column_encoding": {
            **dict.fromkeys(
                ("event_index", "event_time", "exit_index", "exit_time"),
                "DELTA_BINARY_PACKED",
            ),
            **dict.fromkeys(("ret", "mfe", "mae"), "BYTE_STREAM_SPLIT"),
        },
    },
}


def grid_configs(count: int):
    """``count`` configurations spread over the 210 of the full grid.

    They are taken at a fixed stride coprime with the grid's sizes, so that a
    subset covers the sides, widths and horizons instead of repeating one.
    """
    from engine.config import LabelConfig

    full = [
        LabelConfig(side=s, target=tp, stop=sl, horizon=hz)
        for s in SIDES
        for tp in TARGETS
        for sl in STOPS
        for hz in HORIZONS
    ]
    if count >= len(full):
        return full
    stride = max(1, len(full) // count)
    while math.gcd(stride, len(full)) != 1:
        stride -= 1
    return [full[(j * stride) % len(full)] for j in range(count)]


def make_bars(n: int):
    """The seeded random walk as validated Bars with second timestamps."""
    import pyarrow as pa

    from engine.data import Bars, ColumnMap

    p = random_walk(n)
    return Bars(
        t=p.t,
        open=p.open,
        high=p.high,
        low=p.low,
        close=p.close,
        time_type=pa.timestamp("s"),
        source="random walk",
        columns=ColumnMap(),
    )


def peak_mib() -> float:
    """This process's peak resident memory so far, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def phase_compute(opts) -> dict:
    from engine.api import Labeler
    from engine.backend import PathArrays
    from engine.cpu.backend import CpuBackend

    bars = make_bars(opts.bars)
    configs = grid_configs(opts.configs)
    backend = CpuBackend(threads=opts.threads)
    t0 = time.perf_counter()
    path = PathArrays.build(bars.t, bars.open, bars.high, bars.low, bars.close)
    handle = backend.load(path)
    prepare = time.perf_counter() - t0
    labeler = Labeler(bars, backend, chunk_events=opts.chunk_events)
    for config in configs[:1] + [c for c in configs if c.horizon.bars is None][:1]:
        backend.label(handle, labeler.plan(config).batch(0, 1000))  # compile

    kernel = 0.0
    labels = 0
    per_horizon: dict[str, list[float]] = {}
    for config in configs:
        plan = labeler.plan(config)
        t1 = time.perf_counter()
        for k in range(labeler.chunk_count(plan)):
            start = k * labeler.chunk_events
            batch = plan.batch(start, min(start + labeler.chunk_events, len(plan)))
            backend.label(handle, batch)
        secs = time.perf_counter() - t1
        kernel += secs
        labels += len(plan)
        per_horizon.setdefault(str(config.horizon.text), []).append(len(plan) / secs)

    # The same with the Arrow tables built, on a spread of configurations.
    sample = configs[:: max(1, len(configs) // 14)]
    t2 = time.perf_counter()
    rows = 0
    for config in sample:
        plan = labeler.plan(config)
        for k in range(labeler.chunk_count(plan)):
            labeler.label_chunk(plan, k)
        rows += len(plan)
    with_tables = time.perf_counter() - t2
    return {
        "phase": "compute",
        "bars": bars.n,
        "configs": len(configs),
        "threads": backend.threads,
        "prepare_s": prepare,
        "kernel_s": kernel,
        "labels": labels,
        "kernel_rate": labels / kernel,
        "table_rate": rows / with_tables,
        "table_configs": len(sample),
        "per_horizon": {h: float(np.median(r)) for h, r in per_horizon.items()},
        "peak_mib": peak_mib(),
    }


def phase_e2e(opts) -> dict:
    from engine.config import Grid
    from engine.data import ColumnMap
    from engine.run import run

    bars = make_bars(opts.bars)
    configs = grid_configs(opts.e2e_configs)
    grid = Grid(columns=ColumnMap(), configs=tuple(configs))
    out = Path(opts.out) / "labels-out"
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    summary = run(
        bars,
        grid,
        out,
        device="cpu",
        threads=opts.threads,
        chunk_events=opts.chunk_events,
        parquet_options=PARQUET[opts.parquet],
    )
    total = time.perf_counter() - t0
    size = sum(f.stat().st_size for f in out.rglob("*.parquet"))
    shutil.rmtree(out, ignore_errors=True)
    return {
        "phase": "e2e",
        "bars": bars.n,
        "configs": len(configs),
        "rows": summary.rows,
        "seconds": {k: round(v, 2) for k, v in summary.seconds.items()},
        "wall_s": total,
        "rate": summary.rows / total,
        "parquet_bytes": size,
        "peak_mib": peak_mib(),
    }


def child(phase: str, argv: list[str]) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.bench_grid", "--phase", phase, *argv]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"phase {phase} failed")
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(opts, compute: dict, e2e: dict | None) -> None:
    full = len(SIDES) * len(TARGETS) * len(STOPS) * len(HORIZONS)
    scale = (14_000_000 / compute["bars"]) * (full / compute["configs"])
    print(f"# bench_grid  {dt.datetime.now():%Y-%m-%d %H:%M}  {machine()}")
    print(
        f"# {compute['bars']:,} bars x {compute['configs']} configurations, "
        f"{compute['threads']} threads, chunks of {opts.chunk_events:,} events"
    )
    print(f"# {opts.load_before}; load average after: {load()}")
    print()
    print("compute (kernel only, every configuration, nothing kept)")
    print(f"  labels            {compute['labels']:,}")
    print(f"  prepare           {compute['prepare_s']:.2f} s (path, block tables)")
    print(
        f"  kernel            {compute['kernel_s']:.1f} s   "
        f"{compute['kernel_rate'] / 1e6:.1f} M labels/s"
    )
    rates = ", ".join(f"{h}: {r / 1e6:.0f}M" for h, r in compute["per_horizon"].items())
    print(f"  by horizon        {rates} labels/s (median over configurations)")
    print(
        f"  kernel + tables   {compute['table_rate'] / 1e6:.1f} M labels/s "
        f"({compute['table_configs']} configurations)"
    )
    print(f"  peak memory       {compute['peak_mib']:.0f} MiB")
    if scale != 1.0:
        print(
            f"  full grid (14 M x {full}), scaled x{scale:.2f}: kernel "
            f"{compute['kernel_s'] * scale:.0f} s"
        )
    if e2e is None:
        return
    print()
    print(
        "end to end (engine.run.run: labels to Parquet in a temporary folder, "
        f"{opts.parquet} Parquet options)"
    )
    s = e2e["seconds"]
    print(f"  rows              {e2e['rows']:,} ({e2e['configs']} configurations)")
    print(
        f"  wall              {e2e['wall_s']:.1f} s   {e2e['rate'] / 1e6:.1f} M rows/s"
    )
    print(
        f"  split             prepare {s['prepare']} s, compute {s['compute']} s, "
        f"waiting on the writer {s['write']} s"
    )
    print(
        f"  Parquet           {e2e['parquet_bytes'] / 2**20:.0f} MiB, "
        f"{e2e['parquet_bytes'] / max(e2e['rows'], 1):.1f} bytes/row"
    )
    print(f"  peak memory       {e2e['peak_mib']:.0f} MiB")
    e2e_scale = (14_000_000 / e2e["bars"]) * (full / e2e["configs"])
    if e2e_scale != 1.0:
        print(
            f"  full grid, scaled x{e2e_scale:.2f}: {e2e['wall_s'] * e2e_scale:.0f} s, "
            f"{e2e['parquet_bytes'] * e2e_scale / 2**30:.0f} GiB of Parquet"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=14_000_000)
    parser.add_argument("--configs", type=int, default=210)
    parser.add_argument(
        "--e2e-configs", type=int, default=210, help="0 skips the end-to-end phase"
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--parquet",
        choices=sorted(PARQUET),
        default="default",
        help="Parquet options of the end-to-end phase",
    )
    parser.add_argument("--chunk-events", type=int, default=1 << 20)
    parser.add_argument("--out", default=None, help="scratch folder (default: tmp)")
    parser.add_argument("--phase", choices=("compute", "e2e"), default=None)
    add_timing_options(parser)
    opts = parser.parse_args()

    if opts.phase == "compute":
        print(json.dumps(phase_compute(opts)))
        return
    if opts.phase == "e2e":
        print(json.dumps(phase_e2e(opts)))
        return

    opts.load_before = wait_quiet(opts.quiet_wait)
    argv = [
        "--bars", str(opts.bars), "--configs", str(opts.configs),
        "--e2e-configs", str(opts.e2e_configs),
        "--chunk-events", str(opts.chunk_events), "--parquet", opts.parquet,
    ]  # fmt: skip
    if opts.threads:
        argv += ["--threads", str(opts.threads)]
    compute = child("compute", argv)
    e2e = None
    if opts.e2e_configs > 0:
        scratch = opts.out or tempfile.mkdtemp(prefix="bench_grid-")
        try:
            e2e = child("e2e", [*argv, "--out", scratch])
        finally:
            if opts.out is None:
                shutil.rmtree(scratch, ignore_errors=True)
    report(opts, compute, e2e)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
