"""labeler: exact triple-barrier labels for financial machine learning.

Labels look forward in time: each describes what happened after its event.
Use them as targets, never as features.
"""

from engine._jitcache import refresh as _refresh_kernel_cache

_refresh_kernel_cache()

from engine.api import Labeler, label  # noqa: E402
from engine.config import Grid, LabelConfig, load_grid, parse_grid  # noqa: E402
from engine.data import Bars, ColumnMap  # noqa: E402
from engine.errors import (  # noqa: E402
    DataError,
    DeviceError,
    GridError,
    LabelerError,
    OutputError,
)

__version__ = "0.1.0"

#: Bumped whenever a change to the kernels or the contract could change a
#: single output value; part of every cache key.
SEMANTICS_VERSION = 1

__all__ = [
    "Bars", "ColumnMap", "DataError", "DeviceError", "Grid", "GridError",
    "LabelConfig", "Labeler", "LabelerError", "OutputError", "label",
    "load_grid", "parse_grid", "__version__", "SEMANTICS_VERSION",
]  # fmt: skip
