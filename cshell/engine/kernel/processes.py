"""Processes the engine forks and watches: the status protocol and liveness checks.

A forked helper (the shim, or the child that joins namespaces for `exec`)
tells the shell how its command went through one pipe, one line per event::

    started PID            the command is running (execve succeeded)
    error CODE<TAB>TEXT    it could not start; CODE is 125, 126 or 127 like docker's
    exit CODE              it ended; 128+N when killed by signal N

Explain events travel on a second pipe and are replayed while we wait.
"""

from __future__ import annotations

import contextlib
import os
import select

from cshell.engine import trace
from cshell.record import record


def report(fd: int, line: str) -> None:
    """The helper's side: write one status line (the shell may be gone)."""
    with contextlib.suppress(OSError):
        os.write(fd, (line + "\n").encode())


def exit_code_of(wait_status: int) -> int:
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code  # killed by a signal: 128+N, as a shell reports it


@record
class StatusChannel:
    """The shell's side of a helper's status (and explain) pipes."""

    status_r: int
    trace_r: int | None = None
    pid: int = 0
    exit_code: int | None = None
    error: tuple[int, str] | None = None
    _buf: bytes = b""

    def feed(self, data: bytes) -> bool:
        """Parse status lines; True once an awaited event has arrived."""
        self._buf += data
        *lines, self._buf = self._buf.split(b"\n")
        done = False
        for raw in lines:
            word, _, rest = raw.decode(errors="replace").partition(" ")
            if word == "started":
                self.pid = int(rest)
            elif word == "error":
                code, _, message = rest.partition("\t")
                self.error = (int(code), message)
            elif word == "exit":
                self.exit_code = int(rest)
            else:
                continue
            done = True
        return done

    def await_start(self) -> None:
        """Read status and explain events until the command started or failed."""
        trace_buf = b""
        open_fds = [self.status_r] + ([self.trace_r] if self.trace_r is not None else [])
        done = False
        # Wait for the status, and for the explain pipe to close, so no event is left unread.
        while open_fds and not (done and self.trace_r not in open_fds):
            ready, _, _ = select.select(open_fds, [], [])
            for fd in ready:
                data = os.read(fd, 65536)
                if fd == self.trace_r:
                    trace_buf = trace.replay(trace_buf + data)
                elif data:
                    done = self.feed(data) or done
                if not data:
                    open_fds.remove(fd)
                    if fd == self.status_r and not done:
                        self.error = (125, "the helper process ended before the command started")
                        done = True
        if self.trace_r is not None:
            os.close(self.trace_r)
            self.trace_r = None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.status_r)


def open_channel() -> tuple[StatusChannel, int, int | None]:
    """A channel for the shell, and the write ends (status, explain) for the helper."""
    status_r, status_w = os.pipe2(os.O_CLOEXEC)
    trace_r, trace_w = os.pipe2(os.O_CLOEXEC) if trace.explaining else (None, None)
    return StatusChannel(status_r, trace_r), status_w, trace_w


def close_all_but(keep: set[int]) -> None:
    """Close every descriptor not in ``keep`` (a forked helper must hold nothing else)."""
    start = 0
    for fd in sorted(keep):
        if fd > start:  # os.closerange(0, 0) would close everything (close_range(0, ~0))
            os.closerange(start, fd)
        start = fd + 1
    os.closerange(start, os.sysconf("SC_OPEN_MAX"))


def process_start_time(pid: int) -> int:
    """Field 22 of /proc/PID/stat: tells a live process from a reused PID (0: gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return 0
    fields = raw.rsplit(b")", 1)[1].split()
    if fields[0] in (b"Z", b"X"):
        return 0  # a zombie has ended; an orphan's reaper (PID 1) may take a while to notice
    return int(fields[19])


def alive(pid: int) -> bool:
    # Not os.kill(pid, 0): it succeeds on a zombie, e.g. a killed shim not yet reaped.
    return bool(pid) and process_start_time(pid) != 0


def wait_pid_exit(pid: int, timeout: float | None) -> bool:
    """Wait for a process that is not our child to end (pidfd_open, Linux 5.3+; None: forever)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        return bool(ready)
    finally:
        os.close(fd)


def parse_signal(text: str) -> int:
    """`kill -s`'s argument as docker reads it: HUP, SIGHUP, hup or 1."""
    import signal

    from cshell.errors import UsageError

    word = text.strip().upper()
    if word.isdigit() and 0 < int(word) < signal.NSIG:
        return int(word)
    name = word if word.startswith("SIG") else f"SIG{word}"
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise UsageError(f"invalid signal: {text}", "a name such as TERM, HUP, KILL or a number (kill -l lists them)") from None
