"""Moving bytes between the user's terminal and a container (docker attach's job).

Raw mode and window size for ``-t``, forwarding of stdin for ``-i``, and the
output copy for ``exec``. No UI library here: plain file descriptors.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import struct
import sys
import termios
import tty
from collections.abc import Callable, Iterator


def stdin_is_tty() -> bool:
    return os.isatty(0)


@contextlib.contextmanager
def raw_terminal(enabled: bool) -> Iterator[None]:
    """Raw mode on our terminal so keys (Ctrl-C too) reach the container's pty."""
    if not (enabled and os.isatty(0)):
        yield
        return
    saved = termios.tcgetattr(0)
    tty.setraw(0)
    try:
        yield
    finally:
        termios.tcsetattr(0, termios.TCSADRAIN, saved)


def copy_window_size(pty_fd: int) -> None:
    with contextlib.suppress(OSError):
        size = fcntl.ioctl(sys.stdout.fileno() if os.isatty(1) else 0, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(pty_fd, termios.TIOCSWINSZ, size)


@contextlib.contextmanager
def follow_window_size(pty_fd: int | None) -> Iterator[None]:
    if pty_fd is None:
        yield
        return
    copy_window_size(pty_fd)
    previous = signal.signal(signal.SIGWINCH, lambda *_: copy_window_size(pty_fd))
    try:
        yield
    finally:
        signal.signal(signal.SIGWINCH, previous)


@contextlib.contextmanager
def forward_interrupts(pid: int, on_forward: Callable[[int], None] | None = None) -> Iterator[None]:
    """While attached, Ctrl-C goes to the container: SIGINT first, SIGKILL after.

    A signal handler (not KeyboardInterrupt) so a second Ctrl-C arriving at
    any moment is forwarded too; select() simply resumes after the handler.
    """
    presses = 0

    def forward(signum: int, frame: object) -> None:
        nonlocal presses
        presses += 1
        sig = signal.SIGINT if presses == 1 else signal.SIGKILL
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        if on_forward is not None:
            on_forward(presses)

    with sigint_handler(forward):
        yield


@contextlib.contextmanager
def sigint_handler(handler: Callable[[int, object], None] | int) -> Iterator[None]:
    """Ctrl-C handled by HANDLER (a function or signal.SIG_IGN) inside the block, and
    restored after it; outside the main thread Python cannot, so it is left alone."""
    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def open_pty() -> tuple[int, int, str]:
    master, slave = os.openpty()
    os.set_inheritable(master, False)
    return master, slave, os.ttyname(slave)


def set_winsize(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def pump(
    outputs: dict[int, int],
    stdin_to: int | None,
    control: int | None,
    on_control: Callable[[bytes], bool],
) -> None:
    """Copy ``outputs`` (src fd -> our fd) and our stdin to ``stdin_to`` until done.

    ``control`` is a pipe whose data goes to ``on_control``; the pump ends when
    it returns True (or the pipe closes) and every output has reached EOF.
    """
    finished = control is None
    watch_stdin = stdin_to is not None
    while outputs or not finished:
        fds = list(outputs)
        if not finished:
            fds.append(control)  # type: ignore[arg-type]
        if watch_stdin:
            fds.append(0)
        ready, _, _ = select.select(fds, [], [])
        for fd in ready:
            if fd == 0:
                data = os.read(0, 65536)
                if not data:
                    watch_stdin = False
                    with contextlib.suppress(OSError):
                        if stdin_to is not None and not os.isatty(stdin_to):
                            os.close(stdin_to)  # EOF reaches the container's stdin
                    continue
                with contextlib.suppress(OSError):
                    os.write(stdin_to, data)  # type: ignore[arg-type]
            elif fd == control:
                data = os.read(fd, 65536)
                if not data or on_control(data):
                    finished = True
            else:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    data = b""  # EIO: the pty's other side is gone
                if not data:
                    os.close(fd)
                    del outputs[fd]
                else:
                    with contextlib.suppress(OSError):
                        os.write(outputs[fd], data)
