"""Progress display for ``labeler run``: rich bars on a terminal, log lines elsewhere.

The engine reports through :class:`engine.run.Progress`; this module is the
only place that draws. Everything goes to stderr.
"""

from __future__ import annotations

import sys
import time

from engine.config import LabelConfig
from engine.run import ConfigResult, Progress, RunSummary


class Quiet(Progress):
    """Shows nothing."""


class LogLines(Progress):
    """Plain periodic lines, for logs and pipes (stderr is not a terminal)."""

    def __init__(self, every: float = 10.0) -> None:
        self.every = every
        self.configs = 0
        self.index = 0
        self.last = 0.0

    def _say(self, text: str) -> None:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def start(self, configs: int, events: int) -> None:
        self.configs = configs
        self._say(f"labelling {configs} configurations over {events:,} events")

    def config_start(
        self, config: LabelConfig, events: int, done: int, status: str
    ) -> None:
        self.index += 1
        self.total, self.done, self.t0 = events, done, time.perf_counter()
        self.started = done
        word = {
            "reused": "reused (complete)",
            "partial": f"resuming at {done:,}",
            "new": "computing",
        }[status]
        self._say(f"[{self.index}/{self.configs}] {config.id}: {word}")
        self.last = time.perf_counter()

    def advance(self, config: LabelConfig, events: int) -> None:
        self.done += events
        now = time.perf_counter()
        if now - self.last >= self.every:
            rate = (self.done - self.started) / max(now - self.t0, 1e-9)
            left = (self.total - self.done) / rate if rate > 0 else float("inf")
            self._say(
                f"  {config.id}: {self.done:,}/{self.total:,} events, "
                f"{rate:,.0f} labels/s, ETA {left:,.0f} s"
            )
            self.last = now

    def config_done(self, result: ConfigResult) -> None:
        if result.status != "reused":
            self._say(f"  {result.id}: {result.rows:,} rows written")


class RichBars(Progress):
    """An outer bar over configurations and an inner bar over events."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeRemainingColumn,
        )  # fmt: skip
        from rich.progress import (
            Progress as Bars,
        )

        self.console = Console(stderr=True)
        self.bars = Bars(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
            console=self.console, transient=False,
        )  # fmt: skip
        self.outer = None
        self.inner = None

    def start(self, configs: int, events: int) -> None:
        self.bars.start()
        self.outer = self.bars.add_task("configurations", total=configs, rate="")

    def config_start(
        self, config: LabelConfig, events: int, done: int, status: str
    ) -> None:
        if self.inner is not None:
            self.bars.remove_task(self.inner)
            self.inner = None
        if status == "reused":
            self.console.print(f"  {config.id}: reused, already complete")
            return
        self.t0, self.started, self.done = time.perf_counter(), done, done
        label = f"  {config.id}" + (" (resumed)" if status == "partial" else "")
        self.inner = self.bars.add_task(label, total=events, completed=done, rate="")

    def advance(self, config: LabelConfig, events: int) -> None:
        self.done += events
        rate = (self.done - self.started) / max(time.perf_counter() - self.t0, 1e-9)
        self.bars.update(self.inner, advance=events, rate=f"{rate:,.0f} labels/s")

    def config_done(self, result: ConfigResult) -> None:
        self.bars.advance(self.outer)

    def finish(self, summary: RunSummary) -> None:
        if self.inner is not None:
            self.bars.remove_task(self.inner)
        self.bars.stop()

    def abort(self) -> None:
        self.bars.stop()


def make_progress(quiet: bool) -> Progress:
    if quiet:
        return Quiet()
    if sys.stderr.isatty():
        return RichBars()
    return LogLines()
