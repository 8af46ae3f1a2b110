"""`history export FILE.cs`: the REPL's history file as a script that runs as it is.

The history file is prompt_toolkit's format: each entry is a ``# TIMESTAMP``
line followed by the entry's lines, each prefixed with ``+``.
"""

from __future__ import annotations

import datetime
import os
import time
from pathlib import Path

from cshell.commands.context import Context
from cshell.errors import CShellError, NotFound, UsageError
from cshell.record import record

LEFT_OUT = ("exit", "history export", "lesson")


@record(frozen=True)
class Entry:
    when: datetime.datetime | None
    line: str


def read_history(path: Path) -> list[Entry]:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        raise NotFound(f"no history yet: {path}", "type some commands in the shell (cshell) first") from None
    except OSError as e:
        raise CShellError(f"cannot read {path}: {e.strerror}", "check the file's permissions") from None
    entries: list[Entry] = []
    when: datetime.datetime | None = None
    lines: list[str] = []
    for raw in text.splitlines():
        if raw.startswith("#"):
            if lines:
                entries.append(Entry(when, "\n".join(lines)))
            when, lines = _timestamp(raw[1:].strip()), []
        elif raw.startswith("+"):
            lines.append(raw[1:])
    if lines:
        entries.append(Entry(when, "\n".join(lines)))
    return entries


def _timestamp(text: str) -> datetime.datetime | None:
    try:
        return datetime.datetime.fromisoformat(text)
    except ValueError:
        return None


def process_started() -> datetime.datetime:
    """When this cshell process started (local time, as the history file writes it)."""
    ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
    boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                if line.startswith("btime "))
    return datetime.datetime.fromtimestamp(boot + ticks / os.sysconf("SC_CLK_TCK") - 1)


def script_line(line: str) -> str:
    """The line as it goes into the script: as typed, or as a comment when it would not run."""
    from cshell.commands.dispatch import split_words
    from cshell.commands.registry import lookup, parse

    stripped = line.strip()
    if stripped.startswith(("!", "#")):
        return stripped
    try:
        command, rest = lookup(split_words(stripped))
        parse(command, rest)
    except CShellError as e:
        return f"# left out ({e.message}): {stripped}"
    return stripped


def _wanted(entry: Entry) -> bool:
    line = entry.line.strip()
    return bool(line) and "\n" not in line and not any(line == w or line.startswith(w + " ") for w in LEFT_OUT)


def export(ctx: Context, file: str, last: str | None = None, everything: bool = False,
           force: bool = False) -> tuple[int, Path]:
    from cshell.shell.repl import history_path

    target = Path(file)
    if target.suffix != ".cs":
        raise UsageError(f"a script's name ends in .cs: {file}", f"history export {target.stem or 'lesson'}.cs")
    if target.exists() and not force:
        raise UsageError(f"{file} exists already", "choose another name, or -f to overwrite it")
    source = history_path()
    entries = [e for e in read_history(source) if _wanted(e)]
    if ctx.interactive and not everything and last is None:
        since = process_started()
        entries = [e for e in entries if e.when is not None and e.when >= since]
    if last is not None:
        if not last.isdigit() or int(last) == 0:
            raise UsageError(f"-n takes a number of commands, not {last!r}", "history export -n 10 lesson.cs")
        entries = entries[-int(last):]
    lines = [script_line(e.line) for e in entries]
    header = [f"# Recorded by `history export` on {time.strftime('%Y-%m-%d %H:%M')} from {source}.",
              "# Run it with: cshell --script " + target.name,
              "# Make it a lesson with step, say and expect lines (help lesson)."]
    try:
        target.write_text("\n".join(header + [""] + lines) + "\n")
    except OSError as e:
        raise CShellError(f"cannot write {file}: {e.strerror}", "give a path in a writable directory") from None
    return sum(1 for line in lines if not line.startswith("#")), target
