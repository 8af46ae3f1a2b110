"""Explain events: the kernel-level steps the engine takes, as they happen.

The engine calls ``step("mount -t overlay …")`` wherever it does something a
student should see. In the process that owns the UI a listener receives the
events; in forked helpers (the shim, the container init) the events are
written as lines to a pipe the UI process reads, so the student sees the
steps of the child in order, while they happen.

``info`` events (progress of slow work) are delivered even when explain is
off; ``step`` events only when it is on, and cost a flag test otherwise.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

Listener = Callable[[str, str], None]

_listener: Listener | None = None
_fd: int | None = None
explaining = False


def set_listener(listener: Listener | None) -> None:
    global _listener
    _listener = listener


def set_explain(on: bool) -> None:
    global explaining
    explaining = on


def forward_to(fd: int | None) -> None:
    """In a forked helper: send events to this pipe instead of a listener."""
    global _fd
    _fd = fd


def _deliver(kind: str, text: str) -> None:
    if _fd is not None:
        with contextlib.suppress(OSError):  # the UI went away; the container must not care
            os.write(_fd, f"{kind}\t{text.replace(chr(10), ' ')}\n".encode())
    elif _listener is not None:
        _listener(kind, text)


def step(text: str) -> None:
    """A kernel-level step (syscall, mount, host command) for ``explain on``."""
    if explaining:
        _deliver("step", text)


def info(text: str) -> None:
    """Progress of slow work, shown whether or not explain is on."""
    _deliver("info", text)


def progress(label: str, done: float, total: float | None = None, unit: str = "") -> None:
    """Progress of slow work (bootstraps, builds, big layers): ``done`` of ``total`` units.

    The UI draws a bar; ``total`` None means unknown (a spinner-like count). ``unit``
    "bytes" lets it show sizes, speed and time left; without one, a share of the work.
    Call it as often as convenient: the UI decides how often to redraw.
    """
    _deliver("progress", f"{label}\t{done}\t{'' if total is None else total}" + (f"\t{unit}" if unit else ""))


def replay(data: bytes) -> bytes:
    """Deliver complete event lines read from a helper's pipe; return the rest."""
    *lines, rest = data.split(b"\n")
    for line in lines:
        kind, _, text = line.decode(errors="replace").partition("\t")
        if _listener is not None:
            _listener(kind, text)
    return rest
