"""Label configurations and the grid file that expands into them.

A grid file is TOML (see the README): an optional ``[columns]`` table naming
the input's columns and a ``[grid]`` table whose keys each take one value or a
list. Every combination of the listed values is one :class:`LabelConfig`.
"""

from __future__ import annotations

import itertools
import math
import re
import tomllib
from dataclasses import dataclass, fields
from fractions import Fraction
from pathlib import Path
from typing import Any

from engine.data import ColumnMap
from engine.errors import GridError

SIDES = ("long", "short", "column")
AMBIGUITY = ("stop_first", "target_first")
ENTRIES = ("close", "next_open")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_VOL = re.compile(r"^\s*(\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*vol\s*$")


@dataclass(frozen=True)
class Horizon:
    """The vertical barrier: ``bars`` whole bars, or a duration of ``seconds``."""

    text: str | int
    bars: int | None = None
    seconds: Fraction | None = None  # exact, from the text

    @classmethod
    def parse(cls, value: Any, key: str = "horizon") -> Horizon:
        if isinstance(value, Horizon):
            return value
        if isinstance(value, bool):
            raise GridError(f"grid key '{key}': {value!r} is not a horizon")
        if isinstance(value, int):
            if value < 1:
                raise GridError(
                    f"grid key '{key}': a bar horizon must be >= 1, got {value}"
                )
            return cls(text=value, bars=value)
        if isinstance(value, str):
            m = _DURATION.match(value)
            if not m:
                raise GridError(
                    f"grid key '{key}': cannot parse duration {value!r}; use a "
                    'number and a unit s, m, h or d, as in "90m" or "4h"'
                )
            seconds = Fraction(m.group(1)) * _UNIT_SECONDS[m.group(2)]
            if seconds <= 0:
                raise GridError(f"grid key '{key}': duration {value!r} must be > 0")
            return cls(text=value.strip(), seconds=seconds)
        raise GridError(
            f"grid key '{key}': {value!r} is neither a whole number of bars nor a "
            "duration string"
        )

    @property
    def slug(self) -> str:
        return str(self.text) if self.bars is not None else str(self.text).strip()


@dataclass(frozen=True)
class Barrier:
    """A barrier width: a fraction of the entry price, or ``value`` x volatility."""

    value: float
    vol: bool = False

    @classmethod
    def parse(cls, raw: Any, key: str) -> Barrier:
        if isinstance(raw, Barrier):
            return raw
        vol = False
        if isinstance(raw, str):
            m = _VOL.match(raw)
            if not m:
                raise GridError(
                    f"grid key '{key}': {raw!r} is neither a number nor a "
                    'volatility multiple such as "2vol"'
                )
            raw, vol = float(m.group(1)), True
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise GridError(f"grid key '{key}': {raw!r} is not a number")
        value = float(raw)
        if not math.isfinite(value) or value <= 0:
            raise GridError(f"grid key '{key}': must be > 0, got {raw!r}")
        if key == "stop" and not vol and value >= 1.0:
            raise GridError(
                f"grid key 'stop': {raw!r} would put the stop at or below zero "
                "for a long position; it must be < 1"
            )
        return cls(value=value, vol=vol)

    def given(self) -> float | str:
        """The value as written in the grid (a number, or a string like "2vol")."""
        return f"{_num(self.value)}vol" if self.vol else self.value

    @property
    def slug(self) -> str:
        return f"{_num(self.value)}vol" if self.vol else _num(self.value)


def _num(x: float) -> str:
    r = repr(float(x))
    return r[:-2] if r.endswith(".0") else r


@dataclass(frozen=True)
class LabelConfig:
    """One label configuration; see ``shared/spec/labels.md`` for its meaning.

    ``side`` is ``"long"``, ``"short"`` or ``"column"`` (each event's side from
    the input's side column, for meta-labelling). ``vol_window`` is the number
    of returns behind a volatility-scaled barrier and only matters when
    ``target`` or ``stop`` is one.
    """

    side: str
    target: Barrier
    stop: Barrier
    horizon: Horizon
    ambiguity: str = "stop_first"
    entry: str = "close"
    vol_window: int = 100

    def __post_init__(self) -> None:
        object.__setattr__(self, "target", Barrier.parse(self.target, "target"))
        object.__setattr__(self, "stop", Barrier.parse(self.stop, "stop"))
        object.__setattr__(self, "horizon", Horizon.parse(self.horizon))
        if self.side not in SIDES:
            raise GridError(
                f"grid key 'side': unknown side {self.side!r}; use one of "
                + ", ".join(SIDES)
            )
        if self.ambiguity not in AMBIGUITY:
            raise GridError(
                f"grid key 'ambiguity': unknown rule {self.ambiguity!r}; use "
                "stop_first or target_first"
            )
        if self.entry not in ENTRIES:
            raise GridError(
                f"grid key 'entry': unknown entry {self.entry!r}; use close or "
                "next_open"
            )
        if isinstance(self.vol_window, bool) or not isinstance(self.vol_window, int):
            raise GridError(f"grid key 'vol_window': {self.vol_window!r} is not an int")
        if self.vol_window < 2:
            raise GridError(
                f"grid key 'vol_window': needs at least 2 returns, got "
                f"{self.vol_window}"
            )

    @property
    def uses_vol(self) -> bool:
        return self.target.vol or self.stop.vol

    @property
    def id(self) -> str:
        """A short, stable, file-system-safe name derived from the parameters."""
        parts = [
            self.side,
            f"tp{self.target.slug}",
            f"sl{self.stop.slug}",
            f"h{self.horizon.slug}",
            "sf" if self.ambiguity == "stop_first" else "tf",
        ]
        if self.entry != "close":
            parts.append("nextopen")
        if self.uses_vol:
            parts.append(f"w{self.vol_window}")
        return "_".join(parts).replace("+", "")

    def describe(self) -> dict[str, Any]:
        """The configuration as the manifest records it (values as given)."""
        out: dict[str, Any] = {
            "id": self.id,
            "side": self.side,
            "target": self.target.given(),
            "stop": self.stop.given(),
            "horizon": self.horizon.text,
            "ambiguity": self.ambiguity,
            "entry": self.entry,
        }
        if self.uses_vol:
            out["vol_window"] = self.vol_window
        return out


@dataclass(frozen=True)
class Grid:
    """A parsed grid file: column names, configurations and event settings."""

    columns: ColumnMap
    configs: tuple[LabelConfig, ...]
    cusum: float | None = None
    source: str = "<grid>"


_GRID_KEYS = {f.name for f in fields(LabelConfig)}
_REQUIRED = ("side", "target", "stop", "horizon")
_EVENT_KEYS = {"cusum"}
_COLUMN_KEYS = {f.name for f in fields(ColumnMap)}


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def expand(spec: dict[str, Any], source: str = "<grid>") -> tuple[LabelConfig, ...]:
    """Expand a ``[grid]`` table into configurations, in a stable order."""
    unknown = sorted(set(spec) - _GRID_KEYS - _EVENT_KEYS)
    if unknown:
        raise GridError(
            f"{source}: unknown grid key '{unknown[0]}'; known keys are "
            + ", ".join(sorted(_GRID_KEYS | _EVENT_KEYS))
        )
    for key in _REQUIRED:
        if key not in spec:
            raise GridError(f"{source}: missing required grid key '{key}'")
    keys = [
        k
        for k in (
            "side",
            "target",
            "stop",
            "horizon",
            "ambiguity",
            "entry",
            "vol_window",
        )
        if k in spec
    ]
    values = []
    for key in keys:
        items = _as_list(spec[key])
        if not items:
            raise GridError(f"{source}: grid key '{key}' is an empty list")
        values.append(items)
    configs: list[LabelConfig] = []
    seen: set[str] = set()
    for combo in itertools.product(*values):
        kwargs = dict(zip(keys, combo, strict=True))
        try:
            config = LabelConfig(**kwargs)
        except GridError as exc:
            raise GridError(f"{source}: {exc}") from None
        if config.id not in seen:
            seen.add(config.id)
            configs.append(config)
    return tuple(configs)


def parse_grid(data: dict[str, Any], source: str = "<grid>") -> Grid:
    """Build a :class:`Grid` from the parsed TOML document of a grid file."""
    unknown = sorted(set(data) - {"columns", "grid", "events"})
    if unknown:
        raise GridError(
            f"{source}: unknown table '{unknown[0]}'; a grid file has [columns], "
            "[grid] and [events]"
        )
    if "grid" not in data:
        raise GridError(f"{source}: missing the [grid] table")
    columns = data.get("columns", {})
    bad = sorted(set(columns) - _COLUMN_KEYS)
    if bad:
        raise GridError(
            f"{source}: unknown key '{bad[0]}' in [columns]; known keys are "
            + ", ".join(sorted(_COLUMN_KEYS))
        )
    for key, value in columns.items():
        if not isinstance(value, str) or not value:
            raise GridError(f"{source}: [columns] key '{key}' must be a column name")
    spec = dict(data["grid"])
    events = dict(data.get("events", {}))
    bad = sorted(set(events) - _EVENT_KEYS)
    if bad:
        raise GridError(f"{source}: unknown key '{bad[0]}' in [events]; known: cusum")
    if "cusum" in spec:
        events.setdefault("cusum", spec.pop("cusum"))
    cusum = events.get("cusum")
    if cusum is not None:
        if (
            isinstance(cusum, bool)
            or not isinstance(cusum, int | float)
            or not (math.isfinite(cusum) and cusum > 0)
        ):
            raise GridError(f"{source}: grid key 'cusum': must be > 0, got {cusum!r}")
        cusum = float(cusum)
    return Grid(
        columns=ColumnMap(**columns),
        configs=expand(spec, source),
        cusum=cusum,
        source=source,
    )


def load_grid(path: str | Path) -> Grid:
    """Read and expand a grid file; errors name the file and the key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise GridError(f"{path}: cannot read grid file: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise GridError(f"{path}: not valid TOML: {exc}") from None
    return parse_grid(data, str(path))
