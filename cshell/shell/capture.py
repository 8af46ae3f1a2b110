"""Capture what the student sees while a script runs, and still show it.

Commands print through ``ctx.out``, but a foreground ``run``, ``exec``,
``ns join`` and host commands are other processes writing straight to file
descriptors 1 and 2. So the capture happens below all of them: fds 1 and 2
are pointed at pipes, and a reader thread copies everything from the pipes to
the real terminal (or file) *and* into a buffer. A command's output is the
buffer between two marks.

Ordering: when stdout and stderr are the same file (a terminal, or
``2>&1``), both fds share one pipe, so the buffer keeps the order the user
sees. ``sync()`` writes a marker into each pipe and waits until the reader has
passed it: everything written before is then in the buffer and on screen.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import sys
import threading
from collections.abc import Iterator

MARK = b"\x1b_cshell-sync:%d\x1b\\"  # an APC sequence: terminals ignore it if one ever leaks
MARK_RE = re.compile(rb"\x1b_cshell-sync:(\d+)\x1b\\")
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b_[^\x1b]*\x1b\\|\x1b[()][0-9A-B]")


def plain(text: str) -> str:
    """Output as text to match against: no colours, no carriage-return redraws."""
    text = ANSI.sub("", text)
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))


class _Stream:
    """One pipe: its read end, the fd the data really goes to, a carry for a split marker."""

    def __init__(self, target: int) -> None:
        self.read_fd, self.write_fd = os.pipe()
        self.target = target  # a dup of the original fd 1 or 2 (not inherited by children)
        self.carry = b""
        self.seen = 0  # the last marker passed


class FdTee:
    def __init__(self) -> None:
        self.echo = True
        self._buf = bytearray()
        self._cond = threading.Condition()
        self._seq = 0
        self._streams: list[_Stream] = []
        self._fd_stream: dict[int, _Stream] = {}
        self._saved: dict[int, int] = {}
        self._thread: threading.Thread | None = None
        self._running = False

    # -- life cycle ------------------------------------------------------------------

    def start(self) -> None:
        _flush()
        self._saved = {fd: os.dup(fd) for fd in (1, 2)}
        out = _Stream(self._saved[1])
        self._streams = [out]
        self._fd_stream = {1: out, 2: out}
        if not _same_file(1, 2):
            err = _Stream(self._saved[2])
            self._streams.append(err)
            self._fd_stream[2] = err
        self._running = True
        self._thread = threading.Thread(target=self._pump, name="cshell-tee", daemon=True)
        self._thread.start()
        self._attach()

    def stop(self) -> None:
        if self._thread is None:
            return
        self.sync()
        self._detach()
        self._running = False
        for s in self._streams:
            os.write(s.write_fd, MARK % 0)  # wakes the reader so it sees _running is off
        self._thread.join(timeout=5)
        self._thread = None
        for s in self._streams:
            self._flush_carry(s)
            os.close(s.read_fd)
            os.close(s.write_fd)
        for fd in self._saved.values():
            os.close(fd)
        self._saved = {}

    def _attach(self) -> None:
        _flush()
        for fd, s in self._fd_stream.items():
            os.dup2(s.write_fd, fd)

    def _detach(self) -> None:
        _flush()
        for fd, saved in self._saved.items():
            os.dup2(saved, fd)

    @contextlib.contextmanager
    def suspended(self) -> Iterator[None]:
        """The real terminal back on fds 1 and 2 (for the REPL), capture again after."""
        self.sync()
        self._detach()
        try:
            yield
        finally:
            self._attach()

    def original_fd(self, fd: int) -> int:
        """Where fd 1 or 2 really goes (the terminal), while the capture is on."""
        return self._saved.get(fd, fd)

    def original_isatty(self, fd: int) -> bool:
        return os.isatty(self.original_fd(fd))

    # -- marks and the buffer ----------------------------------------------------------

    def sync(self, timeout: float = 10.0) -> None:
        """Return once everything written to fds 1 and 2 so far is captured (and echoed)."""
        if self._thread is None:
            return
        _flush()
        with self._cond:
            self._seq += 1
            token = self._seq
        for s in self._streams:
            os.write(s.write_fd, MARK % token)
        with self._cond:
            self._cond.wait_for(lambda: all(s.seen >= token for s in self._streams), timeout)

    def mark(self) -> int:
        self.sync()
        with self._cond:
            return len(self._buf)

    def since(self, mark: int) -> str:
        self.sync()
        with self._cond:
            return bytes(self._buf[mark:]).decode(errors="replace")

    def set_echo(self, on: bool) -> None:
        """Show (or only capture) what comes next; what came before is flushed under the old setting."""
        self.sync()
        self.echo = on

    # -- the reader thread ----------------------------------------------------------------

    def _pump(self) -> None:
        by_fd = {s.read_fd: s for s in self._streams}
        while self._running:
            ready, _, _ = select.select(list(by_fd), [], [])
            for fd in ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    data = b""
                if data:
                    self._take(by_fd[fd], data)

    def _take(self, s: _Stream, data: bytes) -> None:
        data = s.carry + data
        s.carry = b""
        start = data.rfind(b"\x1b_")
        if start >= 0 and data.find(b"\x1b\\", start) < 0 and len(data) - start < 40:
            data, s.carry = data[:start], data[start:]  # a marker split across two reads
        pos = 0
        for m in MARK_RE.finditer(data):
            self._deliver(s, data[pos:m.start()])
            pos = m.end()
            with self._cond:
                s.seen = max(s.seen, int(m.group(1)))
                self._cond.notify_all()
        self._deliver(s, data[pos:])

    def _flush_carry(self, s: _Stream) -> None:
        if s.carry:
            self._deliver(s, s.carry)
            s.carry = b""

    def _deliver(self, s: _Stream, data: bytes) -> None:
        if not data:
            return
        with self._cond:
            self._buf += data
        if self.echo:
            _write_all(s.target, data)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except OSError:
            return  # the terminal went away: keep capturing
        view = view[n:]


def _same_file(a: int, b: int) -> bool:
    sa, sb = os.fstat(a), os.fstat(b)
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


class TtyLike:
    """A text stream on fd 1 or 2 that answers isatty() as the original did.

    The lesson's Output writes through it: colours, widths and progress bars
    stay those of the terminal, while the bytes go through the capture pipe.
    """

    def __init__(self, stream, tty: bool) -> None:  # noqa: ANN001 - a text stream
        self._stream = stream
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty

    def __getattr__(self, name: str):  # noqa: ANN204 - write, flush, buffer, fileno...
        return getattr(self._stream, name)
