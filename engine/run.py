"""A whole labelling job into an output folder: the engine behind ``labeler run``.

The output folder is the cache. Each configuration's labels are computed in
chunks of events; every finished chunk is written durably and recorded, so a
run that dies resumes from its last complete chunk, and a configuration that
is already complete for the same data, parameters and label semantics is
never computed again. The engine reports progress through a callback and
never prints.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
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
from engine.errors import LabelerError
from engine.store import PartInfo, Store, fingerprint_arrays

log = logging.getLogger(__name__)


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


@dataclass
class RunSummary:
    """The outcome of :func:`run`, with the time split the CLI reports."""

    out_dir: Path
    device: str
    fallback_reason: str | None
    fingerprint: str
    bars: int
    configs: list[ConfigResult] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

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
    """A hash of the data as used: the validated columns, not file names."""
    return fingerprint_arrays(
        [bars.t, bars.open, bars.high, bars.low, bars.close, bars.side, events],
        extra={"time_type": str(bars.time_type)},
    )


def run(
    bars: Bars,
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
    """Label ``bars`` with every configuration of ``grid`` into ``out_dir``.

    Complete configurations with the same cache key are reused; partial ones
    resume from their last written chunk. When ``stop`` is set, the run stops
    after the chunk in flight is written and raises :class:`Interrupted`.
    Returns a :class:`RunSummary`.
    """
    progress = progress or Progress()
    clock = time.perf_counter()
    backend = resolve_device(device, threads=threads)
    fp = data_fingerprint(bars, events)
    options = {
        "float64": float64,
        "columns": list(columns) if columns else None,
        "chunk_events": chunk_events,
    }
    summary = RunSummary(
        out_dir=Path(out_dir),
        device=backend.describe(),
        fallback_reason=getattr(backend, "fallback_reason", None),
        fingerprint=fp,
        bars=bars.n,
    )
    data_info = {
        "source": bars.source,
        "bars": bars.n,
        "time_type": str(bars.time_type),
    }
    timing = {"read": read_seconds, "prepare": 0.0, "compute": 0.0, "write": 0.0}

    with Store(
        out_dir,
        data_fingerprint=fp,
        data_info=data_info,
        engine_version=engine.__version__,
        semantics_version=engine.SEMANTICS_VERSION,
        wait=wait,
        parquet_options=parquet_options,
    ) as store:
        t0 = time.perf_counter()
        labeler = Labeler(
            bars,
            backend,
            events=events,
            float64=float64,
            columns=columns,
            chunk_events=chunk_events,
        )
        timing["prepare"] += time.perf_counter() - t0
        progress.start(len(grid.configs), len(events) if events is not None else bars.n)
        writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="labeler-write")
        try:
            for config in grid.configs:
                result = _one_config(
                    labeler,
                    store,
                    writer,
                    config,
                    cache_key(fp, config, options),
                    progress,
                    stop,
                    timing,
                )
                summary.configs.append(result)
                progress.config_done(result)
        finally:
            writer.shutdown(wait=True)
            labeler.close()

    timing["total"] = time.perf_counter() - clock + read_seconds
    summary.seconds = timing
    progress.finish(summary)
    return summary


def _one_config(labeler, store, writer, config, key, progress, stop, timing):
    describe = config.describe()
    state = store.plan(config.id, describe, key)
    t0 = time.perf_counter()
    plan = labeler.plan(config)
    timing["prepare"] += time.perf_counter() - t0
    if state.status == "complete":
        stats = (store.entry(config.id) or {}).get("stats", {})
        result = ConfigResult(
            config.id,
            "reused",
            state.rows,
            stats.get("labels", {}),
            stats.get("ambiguous", 0),
            stats.get("truncated", 0),
            plan.skipped,
        )
        progress.config_start(config, len(plan), len(plan), "reused")
        return result

    count = labeler.chunk_count(plan)
    done_events = sum(
        min(labeler.chunk_events, len(plan) - k * labeler.chunk_events)
        for k in state.done
    )
    progress.config_start(config, len(plan), done_events, state.status)
    parts: dict[int, PartInfo] = dict(state.done)
    pending: Future | None = None
    stats = _Stats()
    for part in state.done.values():
        stats.add_part(store.out_dir / part.file)

    def finish_pending() -> None:
        nonlocal pending
        if pending is not None:
            t1 = time.perf_counter()
            info, events_in_chunk = pending.result()
            timing["write"] += time.perf_counter() - t1
            parts[info.chunk] = info
            progress.advance(config, events_in_chunk)
            pending = None

    try:
        for k in range(count):
            if k in parts:
                continue
            if stop is not None and stop.is_set():
                break
            t1 = time.perf_counter()
            table = labeler.label_chunk(plan, k)
            timing["compute"] += time.perf_counter() - t1
            stats.add(table)
            finish_pending()
            pending = writer.submit(_write, store, config.id, key, k, table)
        finish_pending()
    finally:
        if pending is not None:  # an error or an interrupt: still save the chunk
            try:
                finish_pending()
            except LabelerError:
                log.exception("writing the last chunk of %s failed", config.id)
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
        plan.skipped,
    )


def _write(store: Store, config_id: str, key: str, k: int, table) -> tuple:
    return store.write_part(config_id, key, k, table), table.num_rows


class _Stats:
    """Label balance and flag counts of a configuration's rows."""

    def __init__(self) -> None:
        self.counts = np.zeros(3, dtype=np.int64)
        self.ambiguous = 0
        self.truncated = 0

    def add(self, table) -> None:
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
        }
