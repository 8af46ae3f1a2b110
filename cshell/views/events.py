"""`events` lines, as `docker events` prints them."""

from __future__ import annotations

import time

from cshell.engine.events import Event


def stamp(time_nano: int) -> str:
    """Go's RFC3339NanoFixed in local time: 2026-12-05T08:50:01.123456789Z (or +01:00)."""
    seconds, nanos = divmod(time_nano, 1_000_000_000)
    local = time.localtime(seconds)
    offset = time.strftime("%z", local)
    zone = "Z" if offset in ("+0000", "-0000") else f"{offset[:3]}:{offset[3:]}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", local) + f".{nanos:09d}{zone}"


def event_line(event: Event) -> str:
    attributes = ", ".join(f"{k}={v}" for k, v in sorted(event.attributes.items()))
    return f"{stamp(event.time_nano)} {event.type} {event.action} {event.actor}" + \
        (f" ({attributes})" if attributes else "")
