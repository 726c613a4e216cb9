"""Labels per second on one configuration: this engine against two baselines.

On a seeded random walk of 1 M minute bars (0.07 % per bar), one long
configuration at (tp 0.5 %, sl 0.5 %, H 60) and one at (tp 3 %, sl 3 %,
H 10,080), every bar an event, all output columns computed:

- the engine's CPU kernels, sequential (``--threads 1``) and on every core,
  into output arrays allocated once; then through ``CpuBackend.label``, which
  allocates fresh output arrays per call as the engine does; then up to the
  Arrow table the API returns (kernel plus assembly);
- a plain compiled linear scan (``benchmarks.common.plain_scan``: a
  straightforward ``@njit`` loop over every bar of every window), on one
  thread and on every core;
- the seed-style baseline: a Python ``for`` loop over candles calling a
  compiled per-candle function and appending each result to a list, timed on
  the first ``--baseline-events`` candles and scaled to labels/s.

Every engine result is checked equal, to the bit, to the plain scan.

    python -m benchmarks.bench_cpu [--bars 1000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from functools import partial

import numba
import pyarrow as pa

from benchmarks.common import (
    add_timing_options,
    assert_same,
    best_of,
    kernel_args,
    load,
    machine,
    one_config,
    plain_scan,
    random_walk,
    scan_args,
    scan_one,
    wait_quiet,
)
from engine.backend import RawLabels
from engine.cpu import kernels
from engine.cpu.backend import CpuBackend
from engine.output import assemble

CONFIGS = (
    ("tp 0.5% sl 0.5% H 60", 0.005, 0.005, 60),
    ("tp 3% sl 3% H 10,080", 0.03, 0.03, 10_080),
)


def seed_style(p, batch, count: int) -> float:
    """Seconds for the Python loop over ``count`` candles, appending results."""
    t, o, h, lo, c = p.t, p.open, p.high, p.low, p.close
    side, target, stop = int(batch.sides[0]), batch.targets[0], batch.stops[0]
    bars, ticks = batch.horizon_bars, batch.horizon_ticks
    scan_one(t, o, h, lo, c, 0, side, target, stop, bars, ticks, False, False)
    t0 = time.perf_counter()
    rows = []
    for i in range(count):
        rows.append(
            scan_one(t, o, h, lo, c, i, side, target, stop, bars, ticks, False, False)
        )
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5, help="best of this many")
    parser.add_argument("--baseline-events", type=int, default=50_000)
    parser.add_argument(
        "--scan-events",
        type=int,
        default=200_000,
        help="events the plain scan is timed on (it is checked on all of them)",
    )
    add_timing_options(parser, min_seconds=True)
    opts = parser.parse_args()
    n = opts.bars
    cores = numba.config.NUMBA_NUM_THREADS
    p = random_walk(n)
    quiet = wait_quiet(opts.quiet_wait)

    print(f"# bench_cpu  {dt.datetime.now():%Y-%m-%d %H:%M}  {machine()}")
    print(
        f"# {n:,} bars, every bar an event, long; best of {opts.repeat}; "
        f"numba {numba.__version__}, {cores} threads; {quiet}"
    )
    header = f"{'configuration':<22} {'implementation':<34} {'threads':>7} "
    header += f"{'labels/s':>12} {'x seed':>8} {'x plain':>8}"
    print(header)
    print("-" * len(header))

    for name, target, stop, horizon in CONFIGS:
        batch = one_config(n, 1, target, stop, horizon_bars=horizon)
        rows = []
        results = {}

        # The engine first, each timing after a quiet moment when asked for.
        for threads in (1, cores):
            backend = CpuBackend(threads=threads)
            results[threads] = backend.label(p, batch)
            wait_quiet(opts.quiet_wait)
            kernel = kernels.label_parallel if threads > 1 else kernels.label_sequential
            args = kernel_args(p, batch, RawLabels.empty(n))
            numba.set_num_threads(threads)
            secs = best_of(partial(kernel, *args), opts.repeat, opts.min_seconds)
            numba.set_num_threads(cores)
            rows.append(("kernel, output arrays reused", threads, n / secs))
            secs = best_of(
                lambda b=backend, x=batch: b.label(p, x), opts.repeat, opts.min_seconds
            )
            rows.append(("backend.label (allocates output)", threads, n / secs))

            def to_table(b=backend, x=batch):
                raw = b.label(p, x)
                return assemble(p.t, pa.int64(), x.events, raw)

            secs = best_of(to_table, opts.repeat, opts.min_seconds)
            rows.append(("backend.label + Arrow table", threads, n / secs))

        ref = RawLabels.empty(n)
        plain_scan(*scan_args(p, batch, ref))
        for threads, out in results.items():
            assert_same(out, ref, f"{name}: engine, {threads} threads")

        m = min(opts.scan_events, n)
        sub = one_config(n, 1, target, stop, horizon_bars=horizon)
        sub = type(sub)(
            sub.events[:m], sub.sides, sub.targets, sub.stops, sub.horizon_bars,
            sub.horizon_ticks, sub.target_first, sub.next_open,
        )  # fmt: skip
        part = RawLabels.empty(m)
        for threads in (1, cores):
            previous = numba.get_num_threads()
            numba.set_num_threads(threads)
            try:
                secs = best_of(
                    lambda x=sub, y=part: plain_scan(*scan_args(p, x, y)),
                    max(1, opts.repeat // 2),
                )
            finally:
                numba.set_num_threads(previous)
            label = f"plain linear scan ({m // 1000}k events)"
            rows.append((label, threads, m / secs))

        k = min(opts.baseline_events, n)
        secs = min(seed_style(p, batch, k) for _ in range(2))
        rows.append((f"seed-style loop ({k // 1000}k events)", 1, k / secs))

        seed = rows[-1][2]
        plain = {r[1]: r[2] for r in rows if r[0].startswith("plain")}
        for label, threads, rate in rows:
            print(
                f"{name:<22} {label:<34} {threads:>7} {rate / 1e6:>10.2f} M "
                f"{rate / seed:>8.1f} {rate / plain[threads]:>8.1f}"
            )
        print()

    print(f"# load average after: {load()}")
    print(
        "# x seed: against the seed-style loop; x plain: against the plain scan "
        "with the same threads.\n# The plain scan and the seed-style loop follow "
        "the contract (both barriers over the whole window), as the engine does."
    )


if __name__ == "__main__":
    main()
