"""The GPU check: CUDA against the CPU on a large path, then throughput of both.

Run it in one call on a machine with a GPU (it needs labeler[cuda] or
labeler[cuda12] installed)::

    python benchmarks/gpu_check.py --out gpu-check.md

1. Correctness. One random path of ``--check-bars`` bars (2 M by default),
   prices on a coarse 0.01 grid so that highs and lows land exactly on
   barriers, with gaps and weekends. Both sides, bar and duration horizons
   (some reaching past the end of the data), both ambiguity rules, entry at
   the close and at the next open, and one batch with a side, target and stop
   per event. Every output must equal the CPU's to the bit; one PASS or FAIL
   line per configuration.
2. Throughput. Every bar an event, a 210-configuration grid (side 2 x target
   5 x stop 3 x horizon 7) at 1 M and 14 M bars. Labels per second count the
   kernels and the transfers (the path's copy to the GPU included), not the
   Arrow tables or Parquet files. The GPU runs one untimed warm-up launch
   first (it compiles the kernel); each ``label`` call returns only once its
   results are on the host, so the timings are synchronised. The CPU at 14 M
   bars runs a spread-out subset of the configurations (``--cpu-configs-14m``)
   and its full-grid time is extrapolated, and labelled so.
3. Overlap. The GPU at the largest size on a subset of the grid with one
   stream and with two, to show what overlapping copies with kernels buys.

Exit status: 0 when every check passed, 1 on any mismatch, 2 when CUDA cannot
run here (``--device-check`` only reports that and exits).
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.backend import EventBatch, PathArrays, RawLabels  # noqa: E402
from engine.cpu.backend import CpuBackend  # noqa: E402

MINUTE = 60
SIDES = (1, -1)
TARGETS = (0.002, 0.005, 0.01, 0.02, 0.05)
STOPS = (0.005, 0.01, 0.02)
# Bars, or durations in seconds (as ("d", seconds)).
HORIZONS = (10, 60, 240, 1440, ("d", 3600), ("d", 86400), ("d", 5 * 86400))


@dataclass(frozen=True)
class Config:
    side: int
    target: float
    stop: float
    horizon: int | tuple[str, int]
    target_first: bool = False
    next_open: bool = False

    @property
    def name(self) -> str:
        h = self.horizon
        hz = f"{h}bars" if isinstance(h, int) else f"{h[1]}s"
        rule = "tf" if self.target_first else "sf"
        entry = "_nextopen" if self.next_open else ""
        side = "long" if self.side > 0 else "short"
        return f"{side}_tp{self.target}_sl{self.stop}_{hz}_{rule}{entry}"

    def batch(self, n: int, per_event: np.random.Generator | None = None) -> EventBatch:
        last = n - 1 if self.next_open else n
        events = np.arange(last, dtype=np.int64)
        if per_event is None:
            sides = np.array([self.side], dtype=np.int8)
            targets = np.array([self.target])
            stops = np.array([self.stop])
        else:
            sides = per_event.choice(np.array([-1, 1], dtype=np.int8), last)
            targets = per_event.choice(np.array(TARGETS), last)
            stops = per_event.choice(np.array(STOPS), last)
        bars = self.horizon if isinstance(self.horizon, int) else 0
        ticks = 0 if isinstance(self.horizon, int) else self.horizon[1]
        return EventBatch(
            events, sides, targets, stops, bars, ticks, self.target_first,
            self.next_open,
        )  # fmt: skip


def grid() -> list[Config]:
    """The 210 configurations of the throughput grid."""
    return [
        Config(s, tp, sl, hz)
        for s, tp, sl, hz in itertools.product(SIDES, TARGETS, STOPS, HORIZONS)
    ]


def spread(configs: list[Config], k: int) -> list[Config]:
    """``k`` configurations spread evenly over the list (all when k >= len)."""
    if k >= len(configs):
        return configs
    picks = np.linspace(0, len(configs) - 1, k).round().astype(int)
    return [configs[i] for i in picks]


def check_configs() -> list[Config]:
    """The correctness grid: sides, horizon kinds, ambiguity rules, entries."""
    horizons = (20, 5000, ("d", 4 * 3600), ("d", 3 * 86400))
    return [
        Config(s, 0.01, 0.005, hz, tf, nxt)
        for s, hz, tf, nxt in itertools.product(
            SIDES, horizons, (False, True), (False, True)
        )
    ]


def random_path(n: int, seed: int = 7) -> PathArrays:
    """Minute bars around 100 on a 0.01 grid, with gaps, wide bars and weekends."""
    rng = np.random.default_rng(seed)
    gap = np.where(rng.random(n) < 0.01, rng.integers(-40, 41, n), 0)
    move = rng.integers(-6, 7, n)
    cents = 10_000 + np.cumsum(gap + move)
    cents += max(0, 100 - int(min(cents.min(), (cents - move).min())))
    close = cents / 100.0
    open_ = (cents - move) / 100.0
    wide = rng.random(n) < 0.02
    up = np.where(wide, rng.integers(0, 60, n), rng.integers(0, 5, n))
    down = np.where(wide, rng.integers(0, 60, n), rng.integers(0, 5, n))
    high = np.maximum(open_, close) + up / 100.0
    low = np.maximum(np.minimum(open_, close) - down / 100.0, 0.01)
    steps = np.full(n, MINUTE, dtype=np.int64)
    steps[::7200] += 2 * 86400  # a weekend every five days of minutes
    steps[0] = 0
    t = 1_700_000_000 + np.cumsum(steps)
    return PathArrays.build(t, open_, high, low, close)


def differences(a: RawLabels, b: RawLabels) -> str | None:
    """None when every output is equal (floats to the bit), else the first one."""
    for name in ("flags", "ints", "floats"):
        x, y = getattr(a, name), getattr(b, name)
        if name == "floats":
            x, y = x.view(np.int64), y.view(np.int64)
        bad = np.flatnonzero((x != y).any(axis=0))
        if bad.size:
            k = int(bad[0])
            return (
                f"{bad.size} events differ in {name}, first column {k}: "
                f"GPU {getattr(a, name)[:, k]} vs CPU {getattr(b, name)[:, k]}"
            )
    return None


def correctness(cuda, n: int) -> bool:
    print(f"\n## Correctness: GPU against CPU on {n:,} bars\n", flush=True)
    path = random_path(n, seed=11)
    cpu = CpuBackend()
    handle = cuda.load(path)
    ok = True
    cases = [(c.name, c.batch(n)) for c in check_configs()]
    per_event = Config(1, 0.0, 0.0, 600, next_open=True)
    cases.append(("per-event sides/targets/stops, 600 bars, next_open",
                  per_event.batch(n, np.random.default_rng(3))))  # fmt: skip
    cases.append(("per-event sides/targets/stops, 1 day, target_first",
                  replace(cases[-1][1], horizon_bars=0, horizon_ticks=86400,
                          target_first=True)))  # fmt: skip
    for name, b in cases:
        problem = differences(cuda.label(handle, b), cpu.label(path, b))
        labels = b.events.shape[0]
        print(f"{'PASS' if problem is None else 'FAIL'} {name} ({labels:,} labels)"
              + ("" if problem is None else f": {problem}"), flush=True)  # fmt: skip
        ok &= problem is None
    return ok


def time_grid(backend, path: PathArrays, configs: list[Config]) -> tuple[float, int]:
    """Seconds to load the path and label every configuration; labels made.

    Building each configuration's event arrays on the host is not timed.
    """
    start = time.perf_counter()
    handle = backend.load(path)
    seconds = time.perf_counter() - start
    labels = 0
    for c in configs:
        b = c.batch(path.n)
        start = time.perf_counter()
        backend.label(handle, b)
        seconds += time.perf_counter() - start
        labels += len(b)
    return seconds, labels


@dataclass
class Row:
    device: str
    bars: int
    configs: int
    seconds: float
    labels: int
    note: str = ""

    @property
    def rate(self) -> float:
        return self.labels / self.seconds


def throughput(cuda, sizes: list[int], configs: list[Config], cpu_subset_at: int,
               cpu_configs_big: int, skip_cpu_big: bool) -> list[Row]:  # fmt: skip
    print(f"\n## Throughput: {len(configs)} configurations\n", flush=True)
    rows = []
    warm = random_path(10_000, seed=1)
    for backend in (cuda, CpuBackend()):  # compiles the kernels, untimed
        backend.label(backend.load(warm), configs[0].batch(warm.n))
    for n in sizes:
        path = random_path(n)
        seconds, labels = time_grid(cuda, path, configs)
        rows.append(Row("cuda", n, len(configs), seconds, labels))
        print(f"cuda {n:,} bars: {seconds:.2f} s", flush=True)

        big = n >= cpu_subset_at
        if big and skip_cpu_big:
            continue
        subset = spread(configs, cpu_configs_big) if big else configs
        seconds, labels = time_grid(CpuBackend(), path, subset)
        note = ""
        if len(subset) < len(configs):
            scale = len(configs) / len(subset)
            seconds, labels = seconds * scale, int(labels * scale)
            note = f"extrapolated from {len(subset)} of {len(configs)} configs"
        rows.append(Row("cpu", n, len(configs), seconds, labels, note))
        print(f"cpu {n:,} bars: {seconds:.2f} s {note}", flush=True)
    return rows


def overlap(cuda, n: int, configs: list[Config]) -> list[tuple[int, float]]:
    from engine.gpu import config

    print(f"\n## Overlap: {len(configs)} configurations on {n:,} bars\n", flush=True)
    path = random_path(n)
    saved = config.STREAMS
    results = []
    try:
        for streams in (1, 2):
            config.STREAMS = streams
            cuda.close()
            seconds, _ = time_grid(cuda, path, configs)
            results.append((streams, seconds))
            print(f"{streams} stream(s): {seconds:.2f} s", flush=True)
    finally:
        config.STREAMS = saved
    return results


def table(rows: list[Row], overlaps: list[tuple[int, float]], describe: str,
          ok: bool | None) -> str:  # fmt: skip
    cpu_rate = {r.bars: r.rate for r in rows if r.device == "cpu"}
    lines = [
        f"GPU: {describe}",
        f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "",
        "| device | bars | configs | seconds | labels/s | GPU/CPU | note |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        ratio = ""
        if r.device == "cuda" and r.bars in cpu_rate:
            ratio = f"{r.rate / cpu_rate[r.bars]:.1f}x"
        lines.append(
            f"| {r.device} | {r.bars:,} | {r.configs} | {r.seconds:.2f} | "
            f"{r.rate:,.0f} | {ratio} | {r.note} |"
        )
    if overlaps:
        lines += ["", "| streams | seconds |", "| ---: | ---: |"]
        lines += [f"| {s} | {sec:.2f} |" for s, sec in overlaps]
    if ok is not None:
        lines += ["", f"Correctness: {'PASS' if ok else 'FAIL'}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--device-check",
        action="store_true",
        help="only say whether CUDA can run here (exit 0 or 2)",
    )
    parser.add_argument(
        "--check-bars",
        type=int,
        default=2_000_000,
        help="bars of the correctness path (0 skips the check)",
    )
    parser.add_argument(
        "--bars",
        type=int,
        nargs="+",
        default=[1_000_000, 14_000_000],
        help="path lengths of the throughput runs",
    )
    parser.add_argument(
        "--configs",
        type=int,
        default=210,
        help="configurations of the throughput grid (spread out)",
    )
    parser.add_argument(
        "--cpu-configs-14m",
        type=int,
        default=21,
        help="configurations the CPU runs on the long paths "
        "(--cpu-subset-bars and up); its full-grid time is "
        "extrapolated from them",
    )
    parser.add_argument(
        "--cpu-subset-bars",
        type=int,
        default=10_000_000,
        help="path length from which the CPU runs a subset",
    )
    parser.add_argument(
        "--skip-cpu-14m", action="store_true", help="no CPU run on the long paths"
    )
    parser.add_argument(
        "--overlap-configs",
        type=int,
        default=14,
        help="configurations of the streams comparison (0 skips)",
    )
    parser.add_argument("--out", type=Path, help="also write the table here")
    args = parser.parse_args(argv)  # fmt: skip

    from engine import gpu

    usable, reason = gpu.probe()
    print(f"CUDA: {'usable' if usable else 'cannot run'}: {reason}", flush=True)
    if not usable:
        return 2
    if args.device_check:
        return 0

    cuda = gpu.CudaBackend()
    describe = cuda.describe()
    print(describe, flush=True)
    if getattr(cuda, "simulator", False):
        print("warning: the CUDA simulator runs Python per thread; the timings "
              "mean nothing, keep the sizes tiny", flush=True)  # fmt: skip

    ok = None
    if args.check_bars > 0:
        ok = correctness(cuda, args.check_bars)
    configs = spread(grid(), args.configs)
    rows = throughput(cuda, args.bars, configs, args.cpu_subset_bars,
                      args.cpu_configs_14m, args.skip_cpu_14m)  # fmt: skip
    overlaps = []
    if args.overlap_configs > 0:
        overlaps = overlap(cuda, max(args.bars), spread(configs, args.overlap_configs))
    cuda.close()

    text = table(rows, overlaps, describe, ok)
    print("\n" + text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    return 1 if ok is False else 0


if __name__ == "__main__":
    sys.exit(main())
