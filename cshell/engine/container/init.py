"""The container's first process, from fork to execve (runc's "init").

It runs in a child the shim forked after unshare(CLONE_NEWPID), so it is
PID 1 of a new pid namespace. It unshares the other namespaces, builds the
root filesystem and sets the hostname; then it waits until the shim has put
it into its cgroup, makes its cgroup namespace, closes every inherited
descriptor and execs the command. Any
failure is written to the error pipe (closed on exec, so silence means
success) and the process exits; nothing here returns.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import socket
import struct
import termios
from typing import NoReturn

from cshell.engine import trace
from cshell.engine.container import rootfs, security
from cshell.engine.kernel import syscalls as sc
from cshell.engine.limits import cgroups
from cshell.errors import reason
from cshell.record import factory, record

# The cgroup namespace comes later, once the shim has put us in our cgroup.
CONTAINER_NAMESPACES = sc.CLONE_NEWNS | sc.CLONE_NEWUTS | sc.CLONE_NEWIPC | sc.CLONE_NEWNET
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


@record
class ProcessSpec:
    argv: list[str]
    env: list[str]
    cwd: str = "/"
    tty: bool = False
    hostname: str = ""
    domainname: str = ""  # --domainname; empty: the new UTS namespace keeps "(none)"
    # new: unshare a network namespace (only lo); ready: the shim made ours and wires it;
    # inherit: keep the one we were forked in (--net host, or container:NAME's, joined by the shim).
    net: str = "new"
    # capabilities, seccomp program, no_new_privs, user: see security.py (None: none of it)
    security: security.SecurityPlan = factory(security.SecurityPlan)


def bring_up_loopback() -> None:
    trace.step("ioctl(SIOCSIFFLAGS, lo, IFF_UP)  # ip link set lo up")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def reset_signals() -> None:
    """Ignored signals survive execve: undo what Python and the shim set (SIGPIPE, SIGINT…)."""
    for sig in signal.valid_signals():
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            with contextlib.suppress(OSError, ValueError):
                signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def attach_stdio(stdin: int, stdout: int, stderr: int, tty: bool) -> None:
    if tty:
        os.setsid()  # a session of its own, so the pty can be its controlling terminal
        fcntl.ioctl(stdin, termios.TIOCSCTTY, 0)
    for target, fd in ((0, stdin), (1, stdout), (2, stderr)):
        if fd != target:
            os.dup2(fd, target)


def close_inherited_fds(keep: int) -> None:
    """No host descriptor may reach the container (CVE-2024-21626): close all but stdio.

    ``keep`` (the error pipe) and the explain pipe, if any, stay: both are pipes
    (nothing one could chdir or openat through) and close-on-exec, so execve closes them.
    """
    kept = sorted({keep, *([trace_fd] if (trace_fd := getattr(trace, "_fd", None)) is not None else [])})
    start = 3
    for fd in kept:
        if fd > start:  # os.closerange(3, 3) would close everything
            os.closerange(start, fd)
        start = max(start, fd + 1)
    os.closerange(start, os.sysconf("SC_OPEN_MAX"))


def make_workdir(cwd: str) -> None:
    """Like runc, a missing working directory is created (as root, before the user switch)."""
    with contextlib.suppress(OSError):  # chdir below says why it cannot be used
        os.makedirs(cwd, exist_ok=True)


def enter_workdir(cwd: str) -> None:
    """chdir, then runc's verifyCwd: getcwd must name a path inside this root.

    With no host descriptor left open, `-w /proc/self/fd/N` cannot lead outside
    (CVE-2024-21626); getcwd is the belt to those braces.
    """
    try:
        os.chdir(cwd)
    except OSError as e:
        raise SetupError(f'chdir to cwd ("{cwd}") set in config.json failed: {e.strerror.lower()}') from None
    try:
        where = os.getcwd()
    except OSError:
        where = ""
    if not where.startswith("/"):
        raise SetupError(f"current working directory ({cwd}) is outside of the container mount namespace root")


class SetupError(Exception):
    """A step before execve failed for a reason that is not execve's (exit 125/126)."""


def env_dict(items: list[str]) -> dict[str, str]:
    return dict(item.split("=", 1) if "=" in item else (item, "") for item in items)


def exec_command(spec: ProcessSpec, env: dict[str, str] | None = None) -> NoReturn:
    os.execvpe(spec.argv[0], spec.argv, env if env is not None else env_dict(spec.env))


def confine(spec: ProcessSpec, create_cwd: bool = True) -> dict[str, str]:
    """The last steps before execve (security.py): user, capabilities, no_new_privs, seccomp.

    Returns the environment to exec with (HOME added from the user's passwd entry).
    Raises SetupError with docker's wording when it cannot be done.
    """
    env = env_dict(spec.env)
    if spec.cwd and create_cwd:
        make_workdir(spec.cwd)
    try:
        security.apply(spec.security, env, lambda: enter_workdir(spec.cwd) if spec.cwd else None)
    except LookupError as e:
        raise SetupError(str(e.args[0])) from None
    except OSError as e:
        raise SetupError(f"{e.strerror or e}") from None
    return env


def fail(err_w: int, code: int, message: str) -> NoReturn:
    with contextlib.suppress(OSError):
        os.write(err_w, f"{code}\t{message}".encode())
    os._exit(code)


def exec_error(argv0: str, e: OSError) -> tuple[int, str]:
    """Docker's wording and exit codes for a command that cannot start."""
    if isinstance(e, FileNotFoundError):
        where = "no such file or directory" if "/" in argv0 else "executable file not found in $PATH"
        return 127, f'exec: "{argv0}": {where}'
    if isinstance(e, PermissionError):
        return 126, f'exec: "{argv0}": permission denied'
    return 126, f'exec: "{argv0}": {e.strerror}'


def container_init(spec: ProcessSpec, plan: rootfs.RootfsPlan, sync_r: int, err_w: int,
                   stdio: tuple[int, int, int], pty_path: str | None) -> NoReturn:
    try:
        flags = CONTAINER_NAMESPACES if spec.net == "new" else CONTAINER_NAMESPACES & ~sc.CLONE_NEWNET
        trace.step(f"unshare({sc.clone_flag_names(flags)})")
        sc.unshare(flags)
        rootfs.prepare_rootfs(plan, pty_path)
        if plan.read_only:  # docker makes -w's directory on the writable layer, before start
            if spec.cwd:
                make_workdir(spec.cwd)
            rootfs.remount_root_readonly(nodev=not plan.privileged)
        trace.step(f"sethostname({spec.hostname!r})")
        sc.sethostname(spec.hostname)
        if spec.domainname:
            trace.step(f"setdomainname({spec.domainname!r})")
            sc.setdomainname(spec.domainname)
        if spec.net != "inherit":  # a joined namespace's lo is its owner's business
            bring_up_loopback()
        # The shim moves us into our cgroup (a cgroup move waits for an RCU grace
        # period, ~10 ms) and wires our network while we build the rootfs. Only then
        # may the cgroup namespace be made: its root is the group we are in at that moment.
        if os.read(sync_r, 1) != b"g":
            os._exit(125)  # the shim gave up (and reports why): never exec half-set-up
        os.close(sync_r)
        hierarchies = cgroups.own_hierarchies()
        trace.step(f"unshare({sc.clone_flag_names(sc.CLONE_NEWCGROUP)})  # our cgroup becomes '/'")
        sc.unshare(sc.CLONE_NEWCGROUP)
        cgroups.mount_view(hierarchies, writable=plan.privileged)  # our own group only, read-only
    except OSError as e:
        fail(err_w, 125, setup_error(e, plan))
    trace.step("close every fd >= 3 (CVE-2024-21626: no host directory may stay reachable)")
    try:
        reset_signals()
        attach_stdio(*stdio, tty=spec.tty)
        close_inherited_fds(keep=err_w)
        env = confine(spec)
    except SetupError as e:
        fail(err_w, 125, str(e))
    except OSError as e:
        fail(err_w, 125, e.strerror or str(e))
    except Exception as e:  # noqa: BLE001 - never return from the container's init
        fail(err_w, 125, f"container setup failed: {reason(e)}")
    trace.step(f"chdir({spec.cwd!r}); execve({spec.argv[0]!r}, {spec.argv!r})")
    trace.forward_to(None)  # the explain pipe closes on exec
    try:
        exec_command(spec, env)
    except OSError as e:
        code, message = exec_error(spec.argv[0], e)
        fail(err_w, code, message)
    except ValueError as e:  # an argument or variable execve cannot pass (a NUL, an empty name)
        fail(err_w, 126, f'exec: "{spec.argv[0]}": {str(e).replace("illegal", "invalid")}')


def setup_error(e: OSError, plan: rootfs.RootfsPlan) -> str:
    text = e.strerror or str(e)  # syscalls put "mount TARGET: reason" in strerror
    if text.startswith("pivot_root") and e.errno == errno.EINVAL and _root_is_initramfs():
        return "pivot_root is refused while / is the initramfs (rootfs); cshell never falls back to chroot"
    if text.startswith(f"mount {plan.merged}:"):
        missing = [d for d in (plan.upperdir, plan.workdir, *plan.lowerdirs) if not os.path.isdir(d)]
        if e.errno == errno.ENOENT and missing:
            return f"overlay mount failed: the directory {missing[0]} is missing"
        return f"overlay mount failed: {os.strerror(e.errno).lower()} (upperdir {plan.upperdir})"
    return text


def _root_is_initramfs() -> bool:
    """True when / is the kernel's rootfs, which pivot_root cannot move (EINVAL)."""
    with contextlib.suppress(OSError), open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == "/":
                return fields[fields.index("-") + 1] in ("rootfs", "ramfs")
    return False
