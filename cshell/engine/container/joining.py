"""A process that joins another's namespaces: `exec` and `ns join`.

The child marks itself non-dumpable, joins the cgroup (for exec), setns(2)s
into the chosen namespaces, then forks once more, because a new pid namespace
applies only to children, and the grandchild execs the command. The child
waits for it and reports on the status pipe (see kernel/processes.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
from typing import NoReturn

from cshell.engine import trace
from cshell.engine.container.init import (
    ProcessSpec,
    SetupError,
    attach_stdio,
    close_inherited_fds,
    confine,
    exec_command,
    exec_error,
    reset_signals,
)
from cshell.engine.kernel import namespaces, terminal
from cshell.engine.kernel import syscalls as sc
from cshell.engine.kernel.processes import StatusChannel, exit_code_of, open_channel, report
from cshell.engine.limits import cgroups
from cshell.errors import ContainerCommandError, reason

Stdio = tuple[int, int, int]


class _Streams:
    """The child's stdio, and what the shell copies: outputs and where stdin goes."""

    def __init__(self, spec: ProcessSpec, interactive: bool, inherit: bool) -> None:
        self.outputs: dict[int, int] = {}
        self.stdin_to: int | None = None
        self.child_fds: list[int] = []
        if inherit:  # ns join: the user's own terminal, as set_ns.c would have it
            self.stdio: Stdio = (0, 1, 2)
        elif spec.tty:
            master, slave, _ = terminal.open_pty()
            self.stdio, self.outputs, self.stdin_to, self.child_fds = (slave,) * 3, {master: 1}, master, [slave]
        else:
            out_r, out_w = os.pipe2(os.O_CLOEXEC)
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            if interactive:
                in_r, self.stdin_to = os.pipe2(os.O_CLOEXEC)
            else:
                in_r = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            self.stdio, self.outputs = (in_r, out_w, err_w), {out_r: 1, err_r: 2}
            self.child_fds = [in_r, out_w, err_w]

    def close_ours(self) -> None:
        for fd in [*self.outputs, self.stdin_to]:
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)


def spawn_joined(pid: int, kinds: list[str], spec: ProcessSpec, cgroup_of: str | None,
                 interactive: bool, inherit_stdio: bool = False) -> int:
    """Run ``spec`` inside ``pid``'s namespaces; return its exit status."""
    channel, status_w, trace_w = open_channel()
    streams = _Streams(spec, interactive, inherit_stdio)
    child = os.fork()
    if child == 0:
        trace.forward_to(trace_w)
        streams.close_ours()  # else this process, alive until the command ends, holds stdin's
        # write end open and `exec -i` never sees EOF (`echo x | exec -i web cat` would hang)
        _joined_child(pid, kinds, spec, cgroup_of, streams.stdio, status_w)
    for fd in (status_w, trace_w, *streams.child_fds):
        if fd is not None:
            os.close(fd)
    channel.await_start()
    if channel.error:
        os.waitpid(child, 0)
        streams.close_ours()
        channel.close()
        code, message = channel.error
        hint = ("use a user the container's /etc/passwd defines, or numeric ids: -u 1000:1000"
                if message.startswith(("unable to find user", "unable to find group"))
                else "check the command's name and that it exists there")
        raise ContainerCommandError(message, hint, exit_code=code)
    _copy_until_exit(channel, spec, streams)
    os.waitpid(child, 0)
    return channel.exit_code if channel.exit_code is not None else 255


def _copy_until_exit(channel: StatusChannel, spec: ProcessSpec, streams: _Streams) -> None:
    pty = streams.stdin_to if spec.tty else None
    with terminal.raw_terminal(spec.tty), terminal.follow_window_size(pty), \
            terminal.forward_interrupts(channel.pid):
        terminal.pump(streams.outputs, streams.stdin_to, channel.status_r, channel.feed)
    channel.close()
    if streams.stdin_to is not None and not spec.tty:
        with contextlib.suppress(OSError):
            os.close(streams.stdin_to)


def _joined_child(pid: int, kinds: list[str], spec: ProcessSpec, cgroup_of: str | None,
                  stdio: Stdio, status_w: int) -> NoReturn:
    """In the forked child: join, fork (for the pid namespace), exec; report on status_w."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the shell forwards Ctrl-C to the command
        # Not dumpable: the container cannot ptrace us or open /proc/<us>/exe (CVE-2019-5736).
        sc.prctl(sc.PR_SET_DUMPABLE, 0)
        if cgroup_of:
            cgroups.add_process(cgroup_of, os.getpid())
        namespaces.enter(namespaces.open_for_join(pid, kinds))
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        grandchild = os.fork()
        if grandchild == 0:
            _exec_joined(spec, stdio, err_w)
        os.close(err_w)
        with os.fdopen(err_r, "rb") as f:
            failure = f.read().decode(errors="replace")  # empty: execve succeeded
        if failure:
            os.waitpid(grandchild, 0)
            report(status_w, f"error {failure}")
            os._exit(0)
        report(status_w, f"started {grandchild}")
        trace_fd = getattr(trace, "_fd", None)
        trace.forward_to(None)
        if trace_fd is not None:
            os.close(trace_fd)  # the shell waits for the explain pipe to close before it copies output
        _, status = os.waitpid(grandchild, 0)
        report(status_w, f"exit {exit_code_of(status)}")
    except BaseException as e:  # noqa: BLE001 - report, never raise in a forked child
        report(status_w, f"error 126\t{reason(e)}")
    os._exit(0)


def _exec_joined(spec: ProcessSpec, stdio: Stdio, err_w: int) -> NoReturn:
    """The grandchild: in the container's namespaces; confined like its PID 1, then execve.

    The same user, capability sets, no_new_privs and seccomp program as the container
    (security.py), applied after every inherited descriptor is closed.
    """
    try:
        reset_signals()
        trace.step("fork()  # a new pid namespace applies to children only")
        attach_stdio(*stdio, tty=spec.tty)
        close_inherited_fds(keep=err_w)
        env = confine(spec, create_cwd=False)
        trace.step(f"execve({spec.argv[0]!r}, {spec.argv!r})")
        trace.forward_to(None)
        exec_command(spec, env)
    except SetupError as e:
        _exec_failed(err_w, 126, str(e))
    except OSError as e:
        _exec_failed(err_w, *exec_error(spec.argv[0], e))
    except Exception as e:  # noqa: BLE001 - never return from a forked child
        _exec_failed(err_w, 126, f"exec setup failed: {reason(e)}")


def _exec_failed(err_w: int, code: int, message: str) -> NoReturn:
    with contextlib.suppress(OSError):
        os.write(err_w, f"{code}\t{message}".encode())
    os._exit(code)
