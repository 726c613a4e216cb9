"""The Python API: label bars with one or many configurations.

Labels look forward: each row describes what happened *after* its event bar.
They are targets for a model, never features; joining them back as inputs
leaks the future into the past.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from engine import data as _data
from engine.backend import Backend, PathArrays
from engine.config import LabelConfig
from engine.data import Bars, ColumnMap
from engine.device import resolve_device
from engine.fine import FinePath, check_covers, settle
from engine.output import assemble, empty_table, select_columns
from engine.prepare import EventPlan, plan_events

log = logging.getLogger(__name__)

#: Events labelled per kernel call and per output part file.
DEFAULT_CHUNK_EVENTS = 1 << 20


@dataclass(frozen=True)
class ChunkResult:
    """One labelled chunk of a configuration, and what the finer path settled."""

    table: pa.Table
    settled: int = 0  # ambiguous rows re-decided by the finer path
    unsettled: int = 0  # ambiguous rows the finer path could not decide


class Labeler:
    """A path loaded on a device, ready to label any number of configurations.

    Loading builds the block tables and moves the path to the device once;
    every configuration then reuses it. ``events`` are candidate bar indexes
    (every bar by default); ``fine`` is a finer path that re-decides ambiguous
    bars.
    """

    def __init__(
        self,
        bars: Bars,
        backend: Backend,
        *,
        events: np.ndarray | None = None,
        float64: bool = False,
        columns: Sequence[str] | None = None,
        chunk_events: int = DEFAULT_CHUNK_EVENTS,
        fine: FinePath | None = None,
    ) -> None:
        if chunk_events < 1:
            raise ValueError(f"chunk_events must be >= 1, got {chunk_events}")
        self.bars = bars
        self.backend = backend
        self.events = events
        self.float64 = float64
        self.wanted = None if columns is None else tuple(columns)
        select_columns(self.wanted, meta=True)  # refuse unknown names up front
        self.chunk_events = chunk_events
        self.fine = fine
        if fine is not None:
            check_covers(fine, bars)
        self._handle = None

    def _loaded(self):
        if self._handle is None:
            b = self.bars
            self.path = PathArrays.build(b.t, b.open, b.high, b.low, b.close)
            self._handle = self.backend.load(self.path)
        return self._handle

    def plan(self, config: LabelConfig) -> EventPlan:
        """The events ``config`` labels on this path."""
        return plan_events(self.bars, config, self.events)

    def chunk_count(self, plan: EventPlan) -> int:
        """Chunks of ``plan``: at least one, so an empty plan still has a file."""
        return max(1, -(-len(plan) // self.chunk_events))

    def chunk_events_of(self, plan: EventPlan, k: int) -> int:
        """Events in chunk ``k`` of ``plan``."""
        return max(0, min(self.chunk_events, len(plan) - k * self.chunk_events))

    def columns_of(self, plan: EventPlan) -> tuple[str, ...]:
        return select_columns(self.wanted, meta=plan.meta)

    def label_chunk(self, plan: EventPlan, k: int) -> ChunkResult:
        """Label chunk ``k`` of a plan (events k*C .. (k+1)*C - 1)."""
        start = k * self.chunk_events
        batch = plan.batch(start, min(start + self.chunk_events, len(plan)))
        columns = self.columns_of(plan)
        if len(batch) == 0:
            return ChunkResult(empty_table(self.bars.time_type, self.float64, columns))
        raw = self.backend.label(self._loaded(), batch)
        settled = unsettled = 0
        if self.fine is not None:
            settled, unsettled = settle(self.fine, self.bars, batch, raw)
        table = assemble(
            self.bars.t,
            self.bars.time_type,
            batch.events,
            raw,
            float64=self.float64,
            columns=columns,
        )
        return ChunkResult(table, settled, unsettled)

    def label(self, config: LabelConfig) -> pa.Table:
        """Every label of ``config`` as one table."""
        plan = self.plan(config)
        tables = [
            self.label_chunk(plan, k).table for k in range(self.chunk_count(plan))
        ]
        return pa.concat_tables(tables) if len(tables) > 1 else tables[0]

    def close(self) -> None:
        self.backend.close()


def label(
    data: Any,
    configs: LabelConfig | Sequence[LabelConfig],
    *,
    device: str = "cpu",
    threads: int | None = None,
    float64: bool = False,
    columns: Sequence[str] | None = None,
    column_map: ColumnMap | None = None,
    events: Sequence[int] | np.ndarray | None = None,
    fine: Any = None,
) -> pa.Table:
    """Compute triple-barrier labels.

    Parameters
    ----------
    data
        The bars: a :class:`~engine.data.Bars`, a pyarrow Table, a pandas or
        polars DataFrame, or a dict of arrays, with a timestamp column and
        open, high, low and close (or a single price column).
    configs
        One :class:`~engine.config.LabelConfig`, or a sequence of them.
    device
        ``"cpu"``, ``"cuda"`` or ``"auto"``; both devices give the same rows.
    threads
        CPU threads; 1 runs the strictly sequential kernel.
    float64
        Return ret, mfe and mae as float64 instead of float32.
    columns
        Output columns to keep (``event_index`` is always kept).
    column_map
        The input's column names, when they are not the defaults.
    events
        Bar indexes to label (sorted, unique); every bar by default.
    fine
        A finer path (ticks or smaller bars, anything ``data`` may be) that
        re-decides ambiguous bars.

    Returns
    -------
    pyarrow.Table
        One row per event (and configuration) with the columns of the label
        contract: event_index, event_time, label, exit_index, exit_time,
        holding, ret, mfe, mae, first_target, first_stop, ambiguous,
        truncated. Given a sequence of configurations, a leading ``config``
        column holds each row's configuration id.
    """
    bars = _data.bars_from_any(data, column_map or ColumnMap())
    backend = resolve_device(device, threads=threads)
    ev = None if events is None else _check_events(events, bars)
    fine_path = None
    if fine is not None:
        fine_path = FinePath.from_any(fine, column_map or ColumnMap(), bars)
    labeler = Labeler(
        bars, backend, events=ev, float64=float64, columns=columns, fine=fine_path
    )
    try:
        if isinstance(configs, LabelConfig):
            return labeler.label(configs)
        tables = []
        for config in configs:
            table = labeler.label(config)
            ids = pa.array([config.id] * table.num_rows, type=pa.string())
            tables.append(table.add_column(0, "config", ids))
        if not tables:
            raise ValueError("no configurations given")
        return pa.concat_tables(tables)
    finally:
        labeler.close()


def _check_events(events: Sequence[int] | np.ndarray, bars: Bars) -> np.ndarray:
    from engine.errors import DataError

    ev = np.asarray(events)
    if ev.size == 0:
        return np.empty(0, dtype=np.int64)
    if ev.dtype.kind not in "iu":
        raise DataError(f"events must be bar indexes (integers), got {ev.dtype}")
    ev = ev.astype(np.int64)
    bad = np.flatnonzero((ev < 0) | (ev >= bars.n))
    if bad.size:
        raise DataError(
            f"event {bad[0]} is bar {ev[bad[0]]}, outside the path's bars "
            f"0..{bars.n - 1}"
        )
    if ev.size > 1 and np.any(np.diff(ev) <= 0):
        ev = np.unique(ev)
    return ev
