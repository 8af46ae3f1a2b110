"""The one output funnel: everything the user sees goes through ``Output``.

Plain text is written straight to the stream (no rich import: one-shot
``cshell run`` stays fast). Rich renderables are rendered to ANSI text first
and then written the same way. While a prompt_toolkit prompt is on screen the
REPL installs a ``guard`` that runs the write above the prompt
(``run_in_terminal``), so output never corrupts the prompt or its colours.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import sys
from collections.abc import Callable
from typing import IO, Any

from cshell.errors import CShellError

RED, YELLOW, DIM, CYAN, RESET = "\x1b[31m", "\x1b[33m", "\x1b[2m", "\x1b[36m", "\x1b[0m"
LONG_ID = re.compile(r"\b([0-9a-f]{12})[0-9a-f]{52}\b")


def shorten_ids(text: str) -> str:
    """64-hex ids in explain lines become the 12 characters `ps` shows, plus '…'."""
    return LONG_ID.sub(r"\1…", text)


class Output:
    def __init__(self, out: IO[str] | None = None, err: IO[str] | None = None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.guard: Callable[[Callable[[], None]], None] | None = None
        self.color = self._wants_color(self.out)

    @staticmethod
    def _wants_color(stream: IO[str]) -> bool:
        if os.environ.get("NO_COLOR"):
            return False
        try:
            return stream.isatty()
        except (AttributeError, ValueError):
            return False

    def _is_tty(self) -> bool:
        try:
            return self.out.isatty()
        except (AttributeError, ValueError):
            return False

    def _emit(self, stream: IO[str], text: str) -> None:
        def write() -> None:
            stream.write(text)
            stream.flush()

        if self.guard is not None:
            self.guard(write)
        else:
            write()

    def _paint(self, code: str, text: str) -> str:
        return f"{code}{text}{RESET}" if self.color else text

    # -- what commands call --------------------------------------------------

    def text(self, text: str = "", end: str = "\n") -> None:
        self._emit(self.out, text + end)

    def raw(self, data: bytes) -> None:
        """Container output (logs): bytes as they are."""
        self.out.flush()
        buffer = getattr(self.out, "buffer", None)
        if buffer is not None and self.guard is None:
            buffer.write(data)
            buffer.flush()
        else:
            self._emit(self.out, data.decode(errors="replace"))

    def print(self, renderable: Any) -> None:
        """Render a rich renderable (tables, trees, markdown) through the funnel."""
        from rich.console import Console  # heavy: only when there is something rich to show

        buf = io.StringIO()
        # Not a terminal (a pipe, a file): wide, so `ps | grep NAME` sees whole names, as docker.
        width = shutil.get_terminal_size((100, 24)).columns if self.color or self._is_tty() else 250
        Console(file=buf, force_terminal=self.color, color_system="auto" if self.color else None,
                width=width, highlight=False, soft_wrap=False,
                markup=False).print(renderable)  # a name or command with "[/x]" is text, not a rich tag
        self._emit(self.out, buf.getvalue())

    def refresh(self, renderable: Any) -> None:
        """A view redrawn in place (stats): on a terminal, clear it and draw from the top, as docker."""
        if self._is_tty():
            self._emit(self.out, "\x1b[2J\x1b[H")
        if isinstance(renderable, str):
            self.text(renderable)
        else:
            self.print(renderable)

    def error(self, err: CShellError) -> None:
        text = self._paint(RED, f"error: {err.message}")
        if err.hint:
            text += "\n" + self._paint(YELLOW, f"hint: {err.hint}")
        self._emit(self.err, text + "\n")

    def note(self, text: str) -> None:
        self._emit(self.err, self._paint(DIM, text) + "\n")

    def event(self, kind: str, text: str) -> None:
        """A trace event: explain steps indented under the command, info as notes."""
        if kind == "progress":
            self._progress(*text.split("\t"))
            return
        self._end_progress()
        if kind == "step":
            self._emit(self.err, self._paint(CYAN, "  ⤷ " + shorten_ids(text)) + "\n")
        else:
            self._emit(self.err, self._paint(DIM, "  … " + text) + "\n")

    # Progress bars: one line per label, drawn together as a block and redrawn in place
    # (concurrent layer downloads each have one). The block ends when all are finished.
    # rich's Progress keeps the tasks (it measures speed and time left) and renders the
    # lines; they are written through _emit like everything else (one funnel under the
    # REPL), so rich's own live display and its refresh thread are never used. rich is
    # imported only when a bar is drawn on a terminal.
    _bars: Any = None  # a rich.progress.Progress while a block of bars is on screen
    _tasks: dict[str, Any] | None = None  # label -> its task id
    _bar_drawn = 0.0
    _lines_drawn = 0

    def _progress(self, label: str, done: str, total: str, unit: str = "") -> None:
        """Redrawn at most ~20 times a second; a new or finished bar is drawn at once."""
        import time

        finished = bool(total) and float(done) >= float(total)
        if not self._err_tty():
            if finished:
                self._emit(self.err, f"  … {label}: done\n")
            return
        if self._bars is None or self._tasks is None:
            self._bars, self._tasks = _progress_bars(), {}
        new = label not in self._tasks
        if new:
            self._tasks[label] = self._bars.add_task(label, total=float(total) if total else None, unit=unit)
        self._bars.update(self._tasks[label], completed=float(done), total=float(total) if total else None)
        now = time.monotonic()
        if not (new or finished) and now - self._bar_drawn < 0.05:
            return
        self._bar_drawn = now
        self._draw_bars()
        if self._bars.finished:
            self._end_progress()

    def _draw_bars(self) -> None:
        from rich.console import Console

        assert self._bars is not None
        buf = io.StringIO()
        width = shutil.get_terminal_size((100, 24)).columns
        console = Console(file=buf, force_terminal=True, color_system="auto" if self.color else None,
                          width=width, highlight=False)
        console.print(self._bars.make_tasks_table(self._bars.tasks), end="")
        lines = buf.getvalue().rstrip("\n").split("\n")
        up = f"\x1b[{self._lines_drawn - 1}A" if self._lines_drawn > 1 else ""
        self._emit(self.err, up + "\r" + "\n".join("\x1b[2K" + line for line in lines))
        self._lines_drawn = len(lines)

    def _end_progress(self) -> None:
        if self._bars is not None and self._lines_drawn:
            self._emit(self.err, "\n")
        self._bars, self._tasks, self._lines_drawn = None, None, 0

    def _err_tty(self) -> bool:
        try:
            return self.err.isatty()
        except (AttributeError, ValueError):
            return False


def _progress_bars() -> Any:
    """A rich Progress used as a renderer: bytes with speed and time left, else a share of the work."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        ProgressColumn,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )
    from rich.text import Text

    class ByUnit(ProgressColumn):
        """One column, two renderings: bytes (a download) or anything else (a count, a percentage)."""

        def __init__(self, as_bytes: ProgressColumn, other: ProgressColumn | None) -> None:
            super().__init__()
            self.as_bytes, self.other = as_bytes, other

        def render(self, task: Any) -> Any:
            if task.fields.get("unit") == "bytes":
                return self.as_bytes.render(task)
            return self.other.render(task) if self.other is not None else Text("")

    return Progress(
        TextColumn("  {task.description}", style="cyan", markup=False),
        BarColumn(bar_width=30),
        ByUnit(DownloadColumn(), TaskProgressColumn()),
        ByUnit(TransferSpeedColumn(), None),
        TimeRemainingColumn(),
        auto_refresh=False,
    )
