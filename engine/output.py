"""Raw kernel outputs to Arrow tables with the columns of the label contract."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from engine import rules
from engine.backend import RawLabels
from engine.errors import GridError

#: Every output column, in the contract's order. ``meta_label`` only appears
#: when the events carry a side from the input.
COLUMNS = (
    "event_index", "event_time", "label", "exit_index", "exit_time", "holding",
    "ret", "mfe", "mae", "first_target", "first_stop", "ambiguous", "meta_label",
    "truncated",
)  # fmt: skip
REQUIRED = ("event_index",)


def select_columns(columns: Sequence[str] | None, meta: bool) -> tuple[str, ...]:
    """The columns to write, in contract order; unknown names are refused."""
    available = tuple(c for c in COLUMNS if meta or c != "meta_label")
    if columns is None:
        return available
    wanted = [c.strip() for c in columns if c.strip()]
    for name in wanted:
        if name not in available:
            hint = " (only with a side column)" if name == "meta_label" else ""
            raise GridError(
                f"unknown output column '{name}'{hint}; choose from "
                + ", ".join(available)
            )
    keep = set(wanted) | set(REQUIRED)
    return tuple(c for c in available if c in keep)


def schema(time_type: pa.DataType, float64: bool, columns: Sequence[str]) -> pa.Schema:
    """The Arrow schema of a label table with these columns."""
    ft = pa.float64() if float64 else pa.float32()
    types = {
        "event_index": pa.int64(), "event_time": time_type, "label": pa.int8(),
        "exit_index": pa.int64(), "exit_time": time_type, "holding": pa.int32(),
        "ret": ft, "mfe": ft, "mae": ft, "first_target": pa.int64(),
        "first_stop": pa.int64(), "ambiguous": pa.bool_(), "meta_label": pa.int8(),
        "truncated": pa.bool_(),
    }  # fmt: skip
    return pa.schema(
        [pa.field(c, types[c], nullable=c.startswith("first_")) for c in columns]
    )


def assemble(
    t: np.ndarray,
    time_type: pa.DataType,
    events: np.ndarray,
    raw: RawLabels,
    *,
    float64: bool = False,
    columns: Sequence[str] = COLUMNS,
) -> pa.Table:
    """Build the label table for ``events`` from the kernel's raw outputs.

    Absent first touches become nulls; timestamps take ``time_type`` (the
    input's unit and time zone); floats are float32 unless ``float64``.
    """
    exit_bar = raw.ints[rules.OUT_EXIT]
    label = raw.flags[rules.OUT_LABEL]
    ftype = np.float64 if float64 else np.float32
    builders = {
        "event_index": lambda: pa.array(events),
        "event_time": lambda: _times(t[events], time_type),
        "label": lambda: pa.array(label),
        "exit_index": lambda: pa.array(exit_bar),
        "exit_time": lambda: _times(t[exit_bar], time_type),
        "holding": lambda: pa.array((exit_bar - events).astype(np.int32)),
        "ret": lambda: pa.array(raw.floats[rules.OUT_RET].astype(ftype)),
        "mfe": lambda: pa.array(raw.floats[rules.OUT_MFE].astype(ftype)),
        "mae": lambda: pa.array(raw.floats[rules.OUT_MAE].astype(ftype)),
        "first_target": lambda: _nullable(raw.ints[rules.OUT_FIRST_TARGET]),
        "first_stop": lambda: _nullable(raw.ints[rules.OUT_FIRST_STOP]),
        "ambiguous": lambda: pa.array(raw.flags[rules.OUT_AMBIGUOUS].view(np.bool_)),
        "meta_label": lambda: pa.array((label == 1).astype(np.int8)),
        "truncated": lambda: pa.array(raw.flags[rules.OUT_TRUNCATED].view(np.bool_)),
    }
    arrays = [builders[c]() for c in columns]
    return pa.Table.from_arrays(arrays, schema=schema(time_type, float64, columns))


def empty_table(time_type: pa.DataType, float64: bool, columns: Sequence[str]):
    """A table with the label columns and no rows."""
    return schema(time_type, float64, columns).empty_table()


def _times(ticks: np.ndarray, time_type: pa.DataType) -> pa.Array:
    return pa.array(np.ascontiguousarray(ticks)).cast(time_type)


def _nullable(values: np.ndarray) -> pa.Array:
    return pa.array(values, mask=values < 0)
