"""Writing label tables to Parquet: compression, encodings, row groups, sizes.

Label tables of 1 M rows come from the engine itself (the seeded random walk,
a short and a wide configuration). Each variant writes them with
``pyarrow.parquet.write_table`` and an fsync, as ``engine.store.Store`` does,
and reads them back. The first variant is the store's current default
(zstd, dictionary for the int8 and bool columns only).

    python -m benchmarks.bench_parquet [--rows 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.common import (
    add_timing_options,
    load,
    machine,
    random_walk,
    wait_quiet,
)

SMALL = ["label", "ambiguous", "truncated"]  # int8 and bool columns
SEQUENTIAL = ["event_index", "event_time", "exit_index", "exit_time"]
FLOATS = ["ret", "mfe", "mae"]


def variants() -> list[tuple[str, dict]]:
    """(name, write_table keyword arguments), the store's default first."""
    delta = {c: "DELTA_BINARY_PACKED" for c in SEQUENTIAL}
    split = {c: "BYTE_STREAM_SPLIT" for c in FLOATS}
    tuned = {"use_dictionary": SMALL, "column_encoding": {**delta, **split}}
    delta_only = {"use_dictionary": SMALL, "column_encoding": delta}
    return [
        ("store default: zstd(1), dict small", {"compression": "zstd"}),
        ("none", {"compression": "none"}),
        ("snappy", {"compression": "snappy"}),
        ("lz4", {"compression": "lz4"}),
        ("zstd(3)", {"compression": "zstd", "compression_level": 3}),
        ("zstd, dictionary on every column", {"compression": "zstd", "dict": "all"}),
        ("zstd, no dictionary", {"compression": "zstd", "use_dictionary": False}),
        ("zstd, delta ints", {"compression": "zstd", **delta_only}),
        ("zstd, delta ints + split floats", {"compression": "zstd", **tuned}),
        ("lz4, delta ints", {"compression": "lz4", **delta_only}),
        ("snappy, delta ints", {"compression": "snappy", **delta_only}),
        ("zstd, delta ints, row groups 128k",
         {"compression": "zstd", "row_group_size": 131_072, **delta_only}),
        ("zstd, delta ints, no statistics",
         {"compression": "zstd", "write_statistics": False, **delta_only}),
    ]  # fmt: skip


def kwargs_for(options: dict, schema: pa.Schema) -> dict:
    """The store's rule: dictionary for int8 and bool unless told otherwise."""
    opts = dict(options)
    if opts.pop("dict", None) == "all":
        opts["use_dictionary"] = True
    elif "use_dictionary" not in opts:
        opts["use_dictionary"] = [
            f.name
            for f in schema
            if pa.types.is_int8(f.type) or pa.types.is_boolean(f.type)
        ]
    if "column_encoding" in opts:
        # Columns with an explicit encoding must not be dictionary encoded.
        opts["use_dictionary"] = [
            c for c in opts["use_dictionary"] if c not in opts["column_encoding"]
        ]
    return opts


def label_tables(rows: int) -> dict[str, pa.Table]:
    from engine.api import Labeler
    from engine.config import LabelConfig
    from engine.cpu.backend import CpuBackend
    from engine.data import Bars, ColumnMap

    p = random_walk(rows)
    bars = Bars(
        t=p.t, open=p.open, high=p.high, low=p.low, close=p.close,
        time_type=pa.timestamp("s"), source="random walk", columns=ColumnMap(),
    )  # fmt: skip
    labeler = Labeler(bars, CpuBackend(), chunk_events=rows)
    out = {}
    for name, config in (
        ("H 60", LabelConfig("long", 0.005, 0.005, 60)),
        ("H 10,080", LabelConfig("long", 0.03, 0.03, 10_080)),
    ):
        out[name] = labeler.label(config)
    return out


def write_once(
    table: pa.Table, path: Path, options: dict
) -> tuple[float, float, float]:
    """Seconds to write, seconds to fsync, and seconds to read back."""
    t0 = time.perf_counter()
    pq.write_table(table, str(path), **kwargs_for(options, table.schema))
    written = time.perf_counter() - t0
    with open(path, "r+b") as f:
        os.fsync(f.fileno())
    synced = time.perf_counter() - t0 - written
    t1 = time.perf_counter()
    back = pq.read_table(str(path))
    read = time.perf_counter() - t1
    # Parquet has no second unit: timestamp[s] comes back as milliseconds.
    if not back.cast(table.schema).equals(table):
        raise AssertionError(f"{path.name}: the table read back differs")
    return written, synced, read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    add_timing_options(parser)
    opts = parser.parse_args()
    tables = label_tables(opts.rows)
    quiet = wait_quiet(opts.quiet_wait)

    print(f"# bench_parquet  {dt.datetime.now():%Y-%m-%d %H:%M}  {machine()}")
    print(
        f"# pyarrow {pa.__version__}; {opts.rows:,}-row label tables (all columns, "
        f"float32); best of {opts.repeat}; {quiet}"
    )
    raw = {k: t.nbytes / t.num_rows for k, t in tables.items()}
    print(
        "# in-memory Arrow bytes/row: "
        + ", ".join(f"{k} {v:.1f}" for k, v in raw.items())
    )
    header = f"{'variant':<38}"
    for name in tables:
        header += f" | {name + ' write':>14} {'+fsync':>6} {'B/row':>6} {'read':>5}"
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory(prefix="bench_parquet-") as tmp:
        for name, options in variants():
            line = f"{name:<38}"
            for table in tables.values():
                path = Path(tmp) / "part.parquet"
                best = [float("inf")] * 3
                for _ in range(opts.repeat):
                    best = [
                        min(a, b)
                        for a, b in zip(
                            best, write_once(table, path, options), strict=True
                        )
                    ]
                w, s, r = (
                    table.num_rows / x / 1e6
                    for x in (best[0], best[0] + best[1], best[2])
                )
                size = path.stat().st_size / table.num_rows
                line += f" | {w:>14.1f} {s:>6.1f} {size:>6.1f} {r:>5.0f}"
            print(line)
    print(
        f"# load after: {load()}. write: M rows/s encoding and writing (page "
        "cache); +fsync: the same including the fsync the store does; read: M "
        "rows/s reading the file back"
    )


if __name__ == "__main__":
    main()
