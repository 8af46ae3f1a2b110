"""The event journal `events` reads: one JSON line for each thing that happened.

Docker's daemon keeps its events in memory and hands them to `docker events`
clients. cshell has no daemon: the command that acts (or the shim, for a
container that dies on its own) appends a line to ROOT/events.jsonl. Lines are
short and written with O_APPEND in one write(2), so writers never interleave
even without a lock. When the journal passes MAX_BYTES it becomes
events.jsonl.1 (the one before is dropped): about the last 10,000 events stay.

An event never fails the command that made it: a full disk loses the event,
not the container.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cshell.errors import UsageError
from cshell.record import record

JOURNAL = "events.jsonl"
MAX_BYTES = 1 << 20


@record
class Event:
    """One line of the journal, with Docker's fields (docker events --format '{{json .}}')."""

    type: str  # container, image, volume, network
    action: str  # create, start, die, oom, destroy, kill, stop, pause, tag, pull, ...
    actor: str  # the id (a container's, an image's) or a name (a volume's, an image reference)
    attributes: dict[str, str]
    time_nano: int

    def docker(self) -> dict[str, Any]:
        """The object `docker events --format '{{json .}}'` prints, in its key order."""
        out: dict[str, Any] = {}
        if self.type in ("container", "image"):  # docker's old fields, still sent for these two
            out |= {"status": self.action, "id": self.actor}
            if "image" in self.attributes and self.type == "container":
                out["from"] = self.attributes["image"]
        out |= {"Type": self.type, "Action": self.action,
                "Actor": {"ID": self.actor, "Attributes": dict(self.attributes)},
                "scope": "local", "time": self.time_nano // 1_000_000_000, "timeNano": self.time_nano}
        return out


def emit(root: Path, kind: str, action: str, actor: str, **attributes: object) -> None:
    """Append one event; any OSError is swallowed (see the module's docstring)."""
    line = json.dumps({"t": time.time_ns(), "type": kind, "action": action, "actor": actor,
                       "attrs": {k: str(v) for k, v in sorted(attributes.items()) if v is not None}},
                      ensure_ascii=False, separators=(",", ":"))
    path = root / JOURNAL
    with contextlib.suppress(OSError):
        _rotate_if_full(path)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)


def _rotate_if_full(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        if path.stat().st_size > MAX_BYTES:
            os.replace(path, path.with_name(JOURNAL + ".1"))  # two writers racing here lose nothing


def _parse(line: bytes) -> Event | None:
    try:
        raw = json.loads(line)
        return Event(type=raw["type"], action=raw["action"], actor=raw["actor"],
                     attributes=dict(raw.get("attrs", {})), time_nano=int(raw["t"]))
    except (ValueError, KeyError, TypeError):
        return None  # a line cut short by a full disk or a crash: skipped


def read(root: Path, since: float | None = None, until: float | None = None) -> list[Event]:
    """The stored events from ``since`` up to ``until`` (Unix seconds), oldest first."""
    return [e for e in _stored(root)[0] if _within(e, since, until)]


def _stored(root: Path) -> tuple[list[Event], int]:
    """Every stored event, and how many bytes of the current journal they came from."""
    events: list[Event] = []
    size = 0
    for name in (JOURNAL + ".1", JOURNAL):
        with contextlib.suppress(FileNotFoundError):
            data = (root / name).read_bytes()
            data = data[:data.rfind(b"\n") + 1]  # a line still being written is read next time
            events += filter(None, map(_parse, data.splitlines()))
            size = len(data)
    return events, size


def _within(event: Event, since: float | None, until: float | None) -> bool:
    seconds = event.time_nano / 1e9
    return (since is None or seconds >= since) and (until is None or seconds <= until)


def follow(root: Path, since: float | None = None, until: float | None = None, poll: float = 0.2) -> Iterator[Event]:
    """The stored events from ``since``, then each new one as it is written, until ``until``
    (Unix seconds) has passed or the caller stops."""
    path = root / JOURNAL
    stored, offset = _stored(root)
    yield from (e for e in stored if _within(e, since, until))
    pending = b""
    while until is None or time.time() <= until:
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            size = 0
        if size < offset:  # rotated: the new journal starts again at 0
            offset, pending = 0, b""
        if size > offset:
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read(size - offset)
            offset += len(data)
            *lines, pending = (pending + data).split(b"\n")
            yield from (e for e in filter(None, map(_parse, lines)) if _within(e, None, until))
        else:
            time.sleep(poll)


# -- what `events` asks for ------------------------------------------------------------------------

FILTER_KEYS = ("container", "event", "image", "type", "volume", "network", "label")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_when(text: str, flag: str, now: float | None = None) -> float:
    """docker's --since/--until: a Unix time (1700000000[.5]), an RFC 3339 date or time
    (2026-12-05, 2026-12-05T08:00:00[Z]) or a Go duration back from now (10m, 1h30m)."""
    now = time.time() if now is None else now
    text = text.strip()
    with contextlib.suppress(ValueError):
        return float(text)
    if (parts := _DURATION.findall(text)) and "".join(n + u for n, u in parts) == text:
        return now - sum(float(n) * _UNITS[u] for n, u in parts)
    from datetime import datetime  # only here: every command imports this module

    with contextlib.suppress(ValueError):
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return stamp.timestamp()  # no zone given: local time, as docker
    raise UsageError(f"invalid value {text!r} for {flag}",
                     "a duration back from now (10m, 1h30m), a date (2026-12-05T08:00:00) or a Unix time")


def parse_filters(pairs: list[str]) -> dict[str, set[str]]:
    """-f KEY=VALUE, repeated: one key's values are alternatives, different keys must all hold."""
    out: dict[str, set[str]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not value:
            raise UsageError(f"bad filter {pair!r}", "KEY=VALUE, e.g. -f type=container -f event=die")
        if key not in FILTER_KEYS:
            raise UsageError(f"invalid filter {key!r}", f"one of {', '.join(FILTER_KEYS)}")
        out.setdefault(key, set()).add(value)
    return out


def matches(event: Event, filters: dict[str, set[str]]) -> bool:
    return all(any(_holds(event, key, value) for value in values) for key, values in filters.items())


def _holds(event: Event, key: str, value: str) -> bool:
    attrs = event.attributes
    if key == "type":
        return event.type == value
    if key == "event":  # "exec_start" matches "exec_start: sh -c ...", as docker
        return event.action == value or event.action.startswith(value + ":")
    if key == "label":
        name, _, want = value.partition("=")
        return name in attrs and (not want or attrs[name] == want)
    if key in ("container", "volume", "network"):
        return event.type == key and (event.actor.startswith(value) or attrs.get("name") == value)
    image = attrs.get("image") if event.type == "container" else attrs.get("name")  # key == "image"
    return value in (image, event.actor) or (image or "").split(":")[0] == value
