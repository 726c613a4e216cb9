"""A whole labelling job into an output folder: the engine behind ``labeler run``.

The output folder is the cache. Each configuration's labels are computed in
chunks of events; every finished chunk is written durably and recorded, so a
run that dies resumes from its last complete chunk, and a configuration that
is already complete for the same data, parameters and label semantics is
never computed again. The engine reports progress through a callback and
never prints.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import engine
from engine.api import DEFAULT_CHUNK_EVENTS, Labeler
from engine.config import Grid, LabelConfig
from engine.data import Bars
from engine.device import resolve_device
from engine.errors import DataError, LabelerError
from engine.events import cusum_events, events_at_times
from engine.fine import FinePath
from engine.prepare import EventPlan, check_config
from engine.store import PartInfo, Store, fingerprint_arrays

log = logging.getLogger(__name__)


#: Parquet writes in flight: one writer thread cannot keep up with the kernel
#: (pyarrow encodes without the GIL; BENCHMARKS.md has the measurements).
WRITERS = 2


class Interrupted(LabelerError):
    """The run was asked to stop; every finished chunk is saved."""


@dataclass
class ConfigResult:
    """What happened to one configuration in a run."""

    id: str
    status: str  # "computed", "resumed" or "reused"
    rows: int
    labels: dict[str, int]  # counts of -1, 0, +1
    ambiguous: int
    truncated: int
    skipped: int
    settled: int = 0  # ambiguous rows re-decided by the finer path


@dataclass
class RunSummary:
    """The outcome of :func:`run`, with the time split the CLI reports."""

    out_dir: Path
    device: str
    fallback_reason: str | None
    fingerprint: str
    bars: int
    symbols: int = 0  # 0 for a single path
    events: int = 0  # candidate events over all paths
    configs: list[ConfigResult] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    fine: bool = False

    @property
    def rows(self) -> int:
        return sum(c.rows for c in self.configs)

    @property
    def computed_rows(self) -> int:
        return sum(c.rows for c in self.configs if c.status != "reused")

    def label_counts(self) -> dict[str, int]:
        total = {"-1": 0, "0": 0, "1": 0}
        for c in self.configs:
            for k, v in c.labels.items():
                total[k] += v
        return total


class Progress:
    """Callbacks a caller may override to follow a run; all do nothing here."""

    def start(self, configs: int, events: int) -> None:
        """The run begins: ``configs`` configurations over ``events`` events."""

    def config_start(
        self, config: LabelConfig, events: int, done: int, status: str
    ) -> None:
        """A configuration begins; ``done`` events are already labelled."""

    def advance(self, config: LabelConfig, events: int) -> None:
        """``events`` more events of ``config`` are labelled and written."""

    def config_done(self, result: ConfigResult) -> None:
        """A configuration is complete (computed now, or reused)."""

    def finish(self, summary: RunSummary) -> None:
        """The run is over."""


@dataclass(frozen=True)
class Source:
    """What a run labels: one path, or a universe of named paths, and its events.

    ``paths`` holds (symbol, bars) pairs; the symbol is ``None`` for a single
    path. ``events`` are bar indexes (single path only); ``event_times`` are
    event times in ticks of the bars' clock, applied to every path (an array)
    or per symbol (a dict); ``cusum`` selects events with the CUSUM filter.
    ``fine`` is a finer path for a single path's ambiguous bars.
    """

    paths: tuple[tuple[str | None, Bars], ...]
    events: np.ndarray | None = None
    event_times: np.ndarray | dict[str, np.ndarray] | None = None
    event_source: str = "<events>"
    cusum: float | None = None
    fine: FinePath | None = None

    @classmethod
    def of(cls, data: Bars | Sequence[tuple[str, Bars]] | Source, **kw) -> Source:
        """A source from one path or (symbol, bars) pairs; a Source as it is."""
        if isinstance(data, Source):
            if kw.get("events") is not None:
                raise DataError("give events either in the Source or separately")
            return data
        if isinstance(data, Bars):
            return cls(((None, data),), **kw)
        paths = tuple((str(sym), bars) for sym, bars in data)
        if not paths:
            raise DataError("the universe holds no symbols")
        if kw.get("events") is not None:
            raise DataError("bar-index events need a single path, not a universe")
        if kw.get("fine") is not None:
            raise DataError(
                "a finer path resolves one series; label each symbol on its own "
                "to use --fine with a universe"
            )
        return cls(paths, **kw)

    @property
    def universe(self) -> bool:
        return self.paths[0][0] is not None

    def events_of(self, symbol: str | None, bars: Bars) -> np.ndarray | None:
        """Candidate events of one path, or None for every bar."""
        chosen = None
        if self.events is not None:
            chosen = self.events
        elif self.event_times is not None:
            times = self.event_times
            if isinstance(times, dict):
                times = times.get(symbol, np.empty(0, dtype=np.int64))
            where = self.event_source + (f" [symbol {symbol}]" if symbol else "")
            chosen = events_at_times(bars, times, where)
        if self.cusum is not None:
            flagged = cusum_events(bars.close, self.cusum)
            chosen = flagged if chosen is None else np.intersect1d(chosen, flagged)
        return chosen

    def fingerprint(self, events: list[np.ndarray | None]) -> str:
        """A hash of everything that decides the rows: paths, events, finer path."""
        arrays: list[Any] = []
        names = []
        for (symbol, bars), ev in zip(self.paths, events, strict=True):
            arrays += [bars.t, bars.open, bars.high, bars.low, bars.close, bars.side]
            arrays.append(ev)
            names.append([symbol, str(bars.time_type)])
        if self.fine is not None:
            f = self.fine
            arrays += [f.t, f.open, f.high, f.low]
        return fingerprint_arrays(
            arrays, extra={"paths": names, "fine": self.fine is not None}
        )


def cache_key(fingerprint: str, config: LabelConfig, options: dict[str, Any]) -> str:
    """The cache key of one configuration's output: data, parameters, semantics.

    The device is not part of it: every backend produces the same rows.
    """
    payload = {
        "data": fingerprint,
        "semantics": engine.SEMANTICS_VERSION,
        "config": config.describe(),
        "options": options,
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def data_fingerprint(bars: Bars, events: np.ndarray | None = None) -> str:
    """A hash of one path as used (the validated columns, not file names)."""
    return Source.of(bars).fingerprint([events])


def run(
    data: Bars | Sequence[tuple[str, Bars]] | Source,
    grid: Grid,
    out_dir: str | Path,
    *,
    device: str = "cpu",
    threads: int | None = None,
    float64: bool = False,
    columns: Sequence[str] | None = None,
    events: np.ndarray | None = None,
    chunk_events: int = DEFAULT_CHUNK_EVENTS,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    wait: float = 0.0,
    parquet_options: dict[str, Any] | None = None,
    read_seconds: float = 0.0,
) -> RunSummary:
    """Label every configuration of ``grid`` into ``out_dir``.

    ``data`` is one path (:class:`Bars`), a universe of (symbol, bars) pairs,
    or a :class:`Source` with its events and finer path. Complete
    configurations with the same cache key are reused; partial ones resume
    from their last written chunk. When ``stop`` is set, the run stops after
    the chunks in flight are written and raises :class:`Interrupted`.
    """
    source = Source.of(data, events=events)
    if grid.cusum is not None and source.cusum is None:
        source = dataclasses.replace(source, cusum=grid.cusum)
    progress = progress or Progress()
    clock = time.perf_counter()
    backend = resolve_device(device, threads=threads)
    timing = {"read": read_seconds, "prepare": 0.0, "compute": 0.0, "write": 0.0}

    t0 = time.perf_counter()
    labelers: list[tuple[str | None, Labeler]] = []
    path_events = []
    for symbol, bars in source.paths:
        ev = source.events_of(symbol, bars)
        path_events.append(ev)
        labelers.append((symbol, Labeler(
            bars, backend, events=ev, float64=float64, columns=columns,
            chunk_events=chunk_events, fine=source.fine,
        )))  # fmt: skip
    for _, bars in source.paths:  # refuse before the output folder is touched
        for config in grid.configs:
            check_config(bars, config)
    fp = source.fingerprint(path_events)
    timing["prepare"] += time.perf_counter() - t0

    options = {
        "float64": float64,
        "columns": list(columns) if columns else None,
        "chunk_events": chunk_events,
    }
    n_bars = sum(b.n for _, b in source.paths)
    n_events = sum(
        b.n if ev is None else len(ev)
        for (_, b), ev in zip(source.paths, path_events, strict=True)
    )
    summary = RunSummary(
        out_dir=Path(out_dir),
        device=backend.describe(),
        fallback_reason=getattr(backend, "fallback_reason", None),
        fingerprint=fp,
        bars=n_bars,
        symbols=len(source.paths) if source.universe else 0,
        events=n_events,
        fine=source.fine is not None,
    )
    first = source.paths[0][1]
    data_info: dict[str, Any] = {
        "source": first.source if not source.universe else "<universe>",
        "bars": n_bars,
        "time_type": str(first.time_type),
    }
    if source.universe:
        data_info["symbols"] = [s for s, _ in source.paths]

    with Store(
        out_dir,
        data_fingerprint=fp,
        data_info=data_info,
        engine_version=engine.__version__,
        semantics_version=engine.SEMANTICS_VERSION,
        wait=wait,
        parquet_options=parquet_options,
    ) as store:
        progress.start(len(grid.configs), n_events)
        writer = ThreadPoolExecutor(
            max_workers=WRITERS, thread_name_prefix="labeler-write"
        )
        try:
            for config in grid.configs:
                key = cache_key(fp, config, options)
                result = _one_config(
                    labelers, store, writer, config, key, progress, stop, timing
                )
                summary.configs.append(result)
                progress.config_done(result)
        finally:
            writer.shutdown(wait=True)
            backend.close()

    timing["total"] = time.perf_counter() - clock + read_seconds
    summary.seconds = timing
    progress.finish(summary)
    return summary


@dataclass(frozen=True)
class _Unit:
    """One chunk of a configuration: which path, which plan, which local chunk."""

    symbol: str | None
    labeler: Labeler
    plan: EventPlan
    local: int


def _one_config(labelers, store, writer, config, key, progress, stop, timing):
    describe = config.describe()
    state = store.plan(config.id, describe, key)
    t0 = time.perf_counter()
    units: list[_Unit] = []
    skipped = 0
    events = 0
    for symbol, labeler in labelers:
        plan = labeler.plan(config)
        skipped += plan.skipped
        events += len(plan)
        units += [
            _Unit(symbol, labeler, plan, k) for k in range(labeler.chunk_count(plan))
        ]
    timing["prepare"] += time.perf_counter() - t0
    if state.status == "complete":
        stats = (store.entry(config.id) or {}).get("stats", {})
        progress.config_start(config, events, events, "reused")
        return ConfigResult(
            config.id, "reused", state.rows, stats.get("labels", {}),
            stats.get("ambiguous", 0), stats.get("truncated", 0), skipped,
            stats.get("settled", 0),
        )  # fmt: skip

    count = len(units)
    done_events = sum(
        u.labeler.chunk_events_of(u.plan, u.local)
        for k, u in enumerate(units)
        if k in state.done
    )
    progress.config_start(config, events, done_events, state.status)
    parts: dict[int, PartInfo] = dict(state.done)
    pending: deque[Future] = deque()
    stats = _Stats()
    for part in state.done.values():
        stats.add_part(store.out_dir / part.file)

    def finish_pending(keep: int = 0) -> None:
        """Wait for written chunks until at most ``keep`` writes are in flight."""
        while len(pending) > keep:
            # Taken before waiting: a failed write is raised once, not again
            # by the clean-up below.
            future = pending.popleft()
            t1 = time.perf_counter()
            info, events_in_chunk = future.result()
            timing["write"] += time.perf_counter() - t1
            parts[info.chunk] = info
            progress.advance(config, events_in_chunk)

    try:
        for k, unit in enumerate(units):
            if k in parts:
                continue
            if stop is not None and stop.is_set():
                break
            t1 = time.perf_counter()
            chunk = unit.labeler.label_chunk(unit.plan, unit.local)
            timing["compute"] += time.perf_counter() - t1
            stats.add(chunk.table, chunk.settled)
            finish_pending(keep=WRITERS - 1)
            subdir = None if unit.symbol is None else f"symbol={unit.symbol}"
            pending.append(writer.submit(
                _write, store, config.id, key, k, chunk.table, subdir,
                unit.labeler.chunk_events_of(unit.plan, unit.local),
            ))  # fmt: skip
        finish_pending()
    finally:
        while pending:  # an error or an interrupt: still save what is in flight
            try:
                finish_pending()
            except LabelerError:
                # The error that stopped the run is already on its way up.
                log.debug("a chunk of %s in flight failed too", config.id,
                          exc_info=True)  # fmt: skip
    if len(parts) < count:
        raise Interrupted(
            f"stopped after {len(parts)} of {count} chunks of {config.id}; run "
            "the same command again to resume"
        )
    store.complete(
        config.id,
        {**describe, "stats": stats.as_json()},
        key,
        [parts[k] for k in range(count)],
    )
    return ConfigResult(
        config.id,
        "resumed" if state.done else "computed",
        sum(p.rows for p in parts.values()),
        stats.labels(),
        stats.ambiguous,
        stats.truncated,
        skipped,
        stats.settled,
    )


def _write(store, config_id, key, k, table, subdir, events) -> tuple:
    return store.write_part(config_id, key, k, table, subdir), events


class _Stats:
    """Label balance and flag counts of a configuration's rows."""

    def __init__(self) -> None:
        self.counts = np.zeros(3, dtype=np.int64)
        self.ambiguous = 0
        self.truncated = 0
        self.settled = 0

    def add(self, table, settled: int = 0) -> None:
        self.settled += settled
        names = table.column_names
        if "label" in names:
            label = table.column("label").to_numpy()
            self.counts += np.bincount(label.astype(np.int64) + 1, minlength=3)
        if "ambiguous" in names:
            self.ambiguous += int(table.column("ambiguous").to_numpy().sum())
        if "truncated" in names:
            self.truncated += int(table.column("truncated").to_numpy().sum())

    def add_part(self, path: Path) -> None:
        import pyarrow.parquet as pq

        wanted = [
            c
            for c in ("label", "ambiguous", "truncated")
            if c in pq.read_schema(path).names
        ]
        self.add(pq.read_table(path, columns=wanted))

    def labels(self) -> dict[str, int]:
        return {
            "-1": int(self.counts[0]),
            "0": int(self.counts[1]),
            "1": int(self.counts[2]),
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "labels": self.labels(),
            "ambiguous": self.ambiguous,
            "truncated": self.truncated,
            "settled": self.settled,
        }
