"""docker logs: the container's output as its shim logged it, whole or as lines (--tail, -t, --since).

The shim appends the output to ``log`` as it comes and, for each chunk, a line
``OFFSET NANOSECONDS`` to ``log.times``: where the chunk starts in the log and
when it came. A line's time is its chunk's (what docker's json-file driver
records per line, to the precision of one read of the pipe).
"""

from __future__ import annotations

import bisect
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from cshell.engine.state import parse_time
from cshell.errors import UsageError
from cshell.record import record

DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


@record
class LogOptions:
    follow: bool = False
    tail: int | None = None  # the last N lines; None: all
    timestamps: bool = False
    since: float = 0.0  # seconds since the epoch; 0: from the start

    @property
    def by_lines(self) -> bool:
        return self.tail is not None or self.timestamps or self.since > 0


def parse_tail(text: str) -> int | None:
    """docker's --tail: a number of lines, or "all"."""
    if text == "all":
        return None
    if not text.isdigit():
        raise UsageError(f"invalid --tail value {text!r}", "a number of lines, or all: logs --tail 10 NAME")
    return int(text)


def parse_since(text: str, now: float | None = None) -> float:
    """docker's --since: a Go duration before now (10m, 1h30m, 2.5s), a unix time (1700000000.5)
    or an RFC 3339 time (2026-12-05T08:00:00Z)."""
    now = time.time() if now is None else now
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    if DURATION.fullmatch(text) or re.fullmatch(f"(?:{DURATION.pattern})+", text):
        return now - sum(float(n) * UNIT_SECONDS[u] for n, u in DURATION.findall(text))
    try:
        return parse_time(text if text.endswith("Z") else text + "Z")
    except ValueError:
        raise UsageError(f"invalid --since value {text!r}",
                         "a duration (10m, 1h30m), a unix time, or a time like 2026-12-05T08:00:00Z") from None


def stamp(ns: int) -> str:
    """RFC 3339 with nanoseconds, as docker logs -t shows it."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


class _Times:
    """log.times, read as it grows: the time of the chunk a byte offset falls in."""

    def __init__(self, path: Path, default_ns: int) -> None:
        self.path, self.default = path, default_ns
        self.offsets: list[int] = []
        self.stamps: list[int] = []
        self.read_to = 0
        self.refresh()

    def refresh(self) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.read_to)
                data = f.read()
        except FileNotFoundError:
            return  # a container made before log.times existed: every line gets its start time
        complete = data[:data.rfind(b"\n") + 1]
        self.read_to += len(complete)
        for line in complete.splitlines():
            offset, _, ns = line.partition(b" ")
            if offset.isdigit() and ns.isdigit():
                self.offsets.append(int(offset))
                self.stamps.append(int(ns))

    def at(self, offset: int) -> int:
        i = bisect.bisect_right(self.offsets, offset) - 1
        return self.stamps[i] if i >= 0 else self.default


def lines(log: Path, opts: LogOptions, started_ns: int, running: Callable[[], bool]) -> Iterator[bytes]:
    """The log as lines, filtered and stamped as OPTS asks; with follow, until not running()."""
    times = _Times(Path(f"{log}.times"), started_ns)
    try:
        f = open(log, "rb")  # noqa: SIM115 - closed in finally below
    except FileNotFoundError:
        return
    try:
        data = f.read()
        offset = 0
        first: list[tuple[int, bytes]] = []
        for line in data.splitlines(keepends=True):
            if line.endswith(b"\n") or not opts.follow:
                first.append((offset, line))
                offset += len(line)
        first = [(o, ln) for o, ln in first if times.at(o) >= opts.since * 1e9]
        if opts.tail is not None:
            first = first[len(first) - opts.tail:] if opts.tail else []
        for o, line in first:
            yield _shown(line, times.at(o), opts.timestamps)
        if opts.follow:
            f.seek(offset)
            yield from _follow(f, offset, times, opts, running)
    finally:
        f.close()


def _follow(f, offset: int, times: _Times, opts: LogOptions, running: Callable[[], bool]) -> Iterator[bytes]:  # noqa: ANN001
    pending = b""
    while True:
        chunk = f.read(65536)
        if not chunk:
            if not running():
                chunk = f.read()  # what the last moments wrote
                if not chunk:
                    break
            else:
                time.sleep(0.05)
                continue
        times.refresh()
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            yield _shown(line + b"\n", times.at(offset), opts.timestamps)
            offset += len(line) + 1
    if pending:
        yield _shown(pending, times.at(offset), opts.timestamps)


def _shown(line: bytes, ns: int, timestamps: bool) -> bytes:
    return (stamp(ns).encode() + b" " + line) if timestamps else line
