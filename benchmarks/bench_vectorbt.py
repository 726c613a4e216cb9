"""This engine against vectorbt's breakout labels (``BOLB``), when installed.

vectorbt computes less: it reads closes only, returns the label only, and
stops scanning a window at the first hit. The engine computes every output
column (exit, both first touches over the whole window, return, excursions,
flags) from open, high, low and close. Both are timed on the seeded random
walk of ``benchmarks.common`` at (tp 0.5 %, sl 0.5 %, H 60) and (tp 3 %,
sl 3 %, H 10,080); the engine also on the closes alone (o = h = l = c), where
its labels must equal vectorbt's, and this script checks that they do.

Install vectorbt with the ``bench`` extra: ``pip install -e '.[bench]'``.

    python -m benchmarks.bench_vectorbt [--bars 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import sys

import numba
import numpy as np

from benchmarks.common import (
    add_timing_options,
    best_of,
    load,
    machine,
    one_config,
    random_walk,
    wait_quiet,
)
from engine.backend import PathArrays
from engine.cpu.backend import CpuBackend

CONFIGS = (
    ("tp 0.5% sl 0.5% H 60", 0.005, 0.005, 60),
    ("tp 3% sl 3% H 10,080", 0.03, 0.03, 10_080),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    add_timing_options(parser, min_seconds=True)
    opts = parser.parse_args()
    if importlib.util.find_spec("vectorbt") is None:
        print(
            "bench_vectorbt: skipped, vectorbt is not installed; install it with "
            "pip install -e '.[bench]' (or pip install vectorbt)"
        )
        return

    import pandas as pd
    import vectorbt as vbt
    from vectorbt.labels.nb import breakout_labels_nb

    n = opts.bars
    p = random_walk(n)
    closes = PathArrays.build(p.t, p.close, p.close, p.close, p.close)
    close = pd.Series(p.close, index=pd.date_range("2024-01-01", periods=n, freq="min"))
    close2d = p.close.reshape(-1, 1).copy()
    cores = numba.config.NUMBA_NUM_THREADS
    quiet = wait_quiet(opts.quiet_wait)

    print(f"# bench_vectorbt  {dt.datetime.now():%Y-%m-%d %H:%M}  {machine()}")
    print(
        f"# {n:,} bars; vectorbt {vbt.__version__}, numba {numba.__version__}; "
        f"best of {opts.repeat}; {quiet}"
    )
    header = f"{'configuration':<22} {'implementation':<44} {'labels/s':>11} "
    header += f"{'x BOLB.run':>10}"
    print(header)
    print("-" * len(header))
    for name, target, stop, horizon in CONFIGS:
        batch = one_config(n, 1, target, stop, horizon_bars=horizon)
        rows = []

        labels = vbt.BOLB.run(close, window=horizon, pos_th=target, neg_th=stop)
        secs = best_of(
            lambda h=horizon, tp=target, sl=stop: vbt.BOLB.run(
                close, window=h, pos_th=tp, neg_th=sl
            ),
            opts.repeat,
            opts.min_seconds,
        )
        rows.append(("vectorbt BOLB.run (closes, label only)", n / secs))
        secs = best_of(
            lambda h=horizon, tp=target, sl=stop: breakout_labels_nb(
                close2d, h, tp, sl
            ),
            opts.repeat,
            opts.min_seconds,
        )
        rows.append(("vectorbt breakout_labels_nb (its kernel)", n / secs))

        for threads in (1, cores):
            backend = CpuBackend(threads=threads)
            mine = backend.label(closes, batch)
            theirs = labels.labels.to_numpy()
            if not np.array_equal(mine.flags[0].astype(np.float64), theirs):
                sys.exit(f"{name}: engine labels differ from vectorbt's on the closes")
            secs = best_of(
                lambda b=backend, x=batch: b.label(closes, x),
                opts.repeat,
                opts.min_seconds,
            )
            rows.append((f"engine, closes, all columns, {threads} thr", n / secs))
            backend.label(p, batch)
            secs = best_of(
                lambda b=backend, x=batch: b.label(p, x), opts.repeat, opts.min_seconds
            )
            rows.append((f"engine, OHLC, all columns, {threads} thr", n / secs))

        base = rows[0][1]
        for label, rate in rows:
            print(f"{name:<22} {label:<44} {rate / 1e6:>9.2f} M {rate / base:>10.1f}")
        print()
    print(
        f"# load after: {load()}. vectorbt reads closes only, returns the label "
        "only and stops at the first hit;\n# the engine computes every column and "
        "searches both barriers over the whole window. On the closes (o = h = l "
        "= c)\n# the engine's labels were checked equal to vectorbt's."
    )


if __name__ == "__main__":
    main()
