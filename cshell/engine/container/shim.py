"""The per-container monitor (containerd-shim's job, in one small process).

The shell forks it twice (so it belongs to no shell) and it then owns the
container: it creates the cgroup, forks the container init into a new pid
namespace, copies the container's output to the log (and to the attached
terminal, for a foreground run), reaps PID 1, records the exit code, removes
the cgroup and, for ``--rm``, the whole container.

It talks to the shell that started it through one status pipe:
``started PID``, ``error CODE<TAB>MESSAGE`` or ``exit CODE``, one per line.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import signal
import time
from collections.abc import Callable
from typing import NoReturn

from cshell.engine import trace
from cshell.engine.container import health, init
from cshell.engine.container import restart as restart_policy
from cshell.engine.container.rootfs import RootfsPlan
from cshell.engine.kernel import syscalls as sc
from cshell.engine.kernel.processes import exit_code_of, process_start_time, report
from cshell.engine.limits import cgroups
from cshell.engine.limits.limits import apply as apply_limits
from cshell.engine.limits.limits import oom_killed
from cshell.engine.net import usernets
from cshell.engine.net.network import InitNetns, NetPlan, Network
from cshell.engine.state import StateRoot, now
from cshell.errors import CShellError, reason
from cshell.record import record


@record
class ShimIO:
    """Descriptors the shell hands over when it forks the shim."""

    status_w: int
    trace_w: int | None
    attached: bool  # copy output to our inherited stdout/stderr too
    stdin_r: int | None = None  # -i without -t: the container reads this pipe
    pty_master: int | None = None
    pty_slave: int | None = None
    pty_path: str | None = None


RESERVE_BYTES = 64 * 1024  # room for state.json (about 1 KiB) even when the container fills the disk


class StateWriter:
    """The shim's view of state.json (the shell owns the rest of the directory).

    A container may fill the disk its state root is on; its exit must still be
    recorded. The shim sets a little room aside when it starts (``.reserve``, a
    real file, not a sparse one) and gives it back when a state write finds the
    disk full, then writes again.
    """

    def __init__(self, container) -> None:  # a containers.Container; no import cycle
        self.container = container
        self.reserve = container.dir / ".reserve"

    def reserve_space(self) -> None:
        try:
            with open(self.reserve, "wb") as f:
                f.write(bytes(RESERVE_BYTES))
                f.flush()
                os.fsync(f.fileno())
        except OSError:  # already full: nothing to set aside, the writes below retry anyway
            with contextlib.suppress(OSError):
                self.reserve.unlink()

    def update(self, **changes: object) -> None:
        for attempt in range(3):
            try:
                self.container.save_state(**changes)
                return
            except FileNotFoundError:  # `rm -f` may have removed it already
                return
            except OSError as e:
                if e.errno not in (errno.ENOSPC, errno.EDQUOT) or attempt == 2:
                    raise
                with contextlib.suppress(FileNotFoundError):
                    self.reserve.unlink()  # the room set aside at start: now it is needed
                time.sleep(0.05 * (attempt + 1))


@record
class LogResult:
    """What reached the container's log file, and what a full disk kept out of it."""

    dropped: int = 0  # bytes of output not written to the log
    error: str = ""

    def state(self) -> dict[str, object]:
        return {"log_dropped": self.dropped, "log_error": self.error}


def _detach_from_shell(io: ShimIO) -> None:
    os.setsid()
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGTSTP, signal.SIGTTOU, signal.SIGTTIN):
        signal.signal(sig, signal.SIG_IGN)
    with contextlib.suppress(OSError), open("/proc/self/comm", "w") as f:
        f.write("cshell-shim")
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0,) if io.attached else (0, 1, 2):
        if fd != devnull:
            os.dup2(devnull, fd)
    if devnull > 2:
        os.close(devnull)


def run_shim(container, spec: init.ProcessSpec, plan: RootfsPlan, io: ShimIO, net: NetPlan,
             start_again: Callable[[], None] | None = None) -> NoReturn:
    """Never returns: the process exits when the container has ended (and, for --restart, once
    ``start_again`` has started it again: the runtime's start, handed down by the caller)."""
    code = 1
    try:
        code = _monitor(container, spec, plan, io, net, start_again)
    except BaseException as e:  # noqa: BLE001 - a shim must report, never raise
        report(io.status_w, f"error 125\tshim failed: {reason(e)}")
    os._exit(code)


def _monitor(container, spec: init.ProcessSpec, plan: RootfsPlan, io: ShimIO, net: NetPlan,
             start_again: Callable[[], None] | None) -> int:
    _detach_from_shell(io)
    trace.set_listener(None)  # the shell's listener is not ours to call
    trace.forward_to(io.trace_w)
    state = StateWriter(container)
    state.reserve_space()
    limits = container.config.get("limits") or {}
    cgroups.create(container.id, cpuset="cpuset_cpus" in limits, name=container.name)
    try:  # before PID 1 is in the group: it never runs unlimited
        apply_limits(container.id, limits)
    except CShellError as e:
        cgroups.remove(container.id)
        net.close_fds()
        report(io.status_w, f"error 125\t{e.message}")
        return 0

    sync_r, sync_w = os.pipe()
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    if spec.tty:
        assert io.pty_slave is not None
        stdio = (io.pty_slave, io.pty_slave, io.pty_slave)
        outputs = {io.pty_master: 1}
    else:
        out_r, out_w = os.pipe()
        errout_r, errout_w = os.pipe()
        stdin = io.stdin_r if io.stdin_r is not None else os.open(os.devnull, os.O_RDONLY)
        stdio = (stdin, out_w, errout_w)
        outputs = {out_r: 1, errout_r: 2}

    # HEALTHCHECK: a thread probes while we copy the output. It starts now, before the unshare:
    # a thread cannot be made after unshare(CLONE_NEWPID), and its forks must stay in our pid ns.
    checker = health.Checker(container) if container.config.get("healthcheck") else None
    if checker is not None:
        trace.step(f"healthcheck: a thread of this shim runs {checker.argv} in the container every "
                   f"{checker.interval:g}s (setns, as exec does); the result goes to health.json")
        checker.start()
    trace.step(f"unshare({sc.clone_flag_names(sc.CLONE_NEWPID)})  # the next child is PID 1")
    sc.unshare(sc.CLONE_NEWPID)
    root = StateRoot(net.root or container.dir.parent.parent)
    network = usernets.network_for(root, net.network) if net.network else Network(root)
    netns = network.enter_for_init(net)
    pid = os.fork()
    if pid == 0:
        os.close(sync_w)
        os.close(err_r)
        init.container_init(spec, plan, sync_r, err_w, stdio, io.pty_path)
    # Read now, while PID 1 waits for our go: a quick command (true) may be gone by the time
    # we record it, and a start time of 0 would make liveness checks see a dead PID 1 as alive.
    pid_start = process_start_time(pid)
    network.leave(netns)
    for fd in (sync_r, err_w, *{fd for fd in stdio if fd > 2}):
        os.close(fd)
    failure = _wire(network, net, netns, pid) or _attach_extras(root, container.config, net, pid)
    # The init may fail its setup (e.g. the overlay mount) and exit before this:
    # then its error is waiting in err_r, and that is what the user must see.
    if not failure:
        with contextlib.suppress(ProcessLookupError, BrokenPipeError):
            cgroups.add_process(container.id, pid)
            os.write(sync_w, b"g")
    os.close(sync_w)  # without a "g", PID 1 exits instead of exec'ing
    with os.fdopen(err_r, "rb") as f:
        failure = f.read().decode(errors="replace") or failure  # empty: execve succeeded
    if failure:
        if checker is not None:
            checker.cancel()
        os.waitpid(pid, 0)
        _fork_in_own_pid_namespace()
        _release(root, container.id, net)
        cgroups.remove(container.id)
        code, _, message = failure.partition("\t")
        report(io.status_w, f"error {code}\t{message}")
        return 0

    state.update(status="running", pid=pid, pid_start=pid_start,
                 shim_pid=os.getpid(), shim_start=process_start_time(os.getpid()), started_at=now(), exit_code=0, error="", oom_killed=False,
                 network=net.state())
    report(io.status_w, f"started {pid}")
    container.emit("start")
    trace.forward_to(None)
    if io.trace_w is not None:
        os.close(io.trace_w)
    if checker is not None:
        checker.begin(pid)

    log = _copy_output(container.log_path, outputs, io.attached)
    _, status = os.waitpid(pid, 0)
    _fork_in_own_pid_namespace()
    exit_code = exit_code_of(status)
    again = _restart_wanted(container, exit_code)
    if checker is not None:
        with contextlib.suppress(Exception):
            checker.stop()
    # From here on every step is tried whatever failed before it: the exit must be recorded.
    oom = False
    with contextlib.suppress(CShellError, OSError):
        oom = oom_killed(container.id)  # read before the group is gone
    _release(root, container.id, net, drop_bridge=False)
    with contextlib.suppress(CShellError, OSError):
        cgroups.remove(container.id)
    if oom:
        container.emit("oom")
    container.emit("die", exitCode=exit_code)  # before the state says exited: `stop` waits for that
    state.update(status="restarting" if again else "exited", exit_code=exit_code, finished_at=now(), pid=0,
                 network={}, oom_killed=oom, **log.state())
    if container.config.get("auto_remove"):
        container.delete_files(volumes=True)  # docker's --rm takes the anonymous volumes too
        container.emit("destroy")
    report(io.status_w, f"exit {exit_code}")
    if again and start_again is not None:
        _restart(container, state, start_again)
    elif net.mode == "bridge":  # slow (~50 ms): nobody waits for it
        with contextlib.suppress(CShellError, OSError):
            network.drop_bridge()
    return 0


def _fork_in_own_pid_namespace() -> None:
    """After unshare(CLONE_NEWPID) our children are born in PID 1's namespace; with PID 1 gone,
    fork() fails there with ENOMEM. The cleanup that follows forks (iptables, a restart):
    children go back to the shim's own pid namespace."""
    own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        sc.setns(own, sc.CLONE_NEWPID)
    finally:
        os.close(own)


def _restart_wanted(container, exit_code: int) -> bool:  # noqa: ANN001 - a containers.Container
    """--restart: the policy, the restarts so far, and whether the user stopped it (read now:
    `stop`, `kill` and `rm -f` note it in state.json before their signal)."""
    policy = container.config.get("restart") or {}
    if (policy.get("Name") or "no") == "no":
        return False
    on_disk = container.reload_state()
    return restart_policy.wanted(policy, exit_code, int(on_disk.get("restart_count") or 0),
                                 (container.dir / "stopped-by-user").exists())


def _restart(container, state: StateWriter, start_again: Callable[[], None]) -> None:  # noqa: ANN001
    """Wait docker's backoff, then start the container again (a new shim), unless the user stopped
    or removed it meanwhile."""
    count = int(container.reload_state().get("restart_count") or 0)
    time.sleep(restart_policy.delay(count))
    if not container.dir.is_dir():
        return  # removed meanwhile
    on_disk = container.reload_state()
    if on_disk.get("status") != "restarting":
        return
    if (container.dir / "stopped-by-user").exists():  # stopped during the backoff: it stays down
        state.update(status="exited")
        return
    state.update(restart_count=count + 1)
    try:
        start_again()
    except (CShellError, OSError) as e:
        state.update(status="exited", error=f"restart failed: {reason(e)}")


def _wire(network: Network, net: NetPlan, netns: InitNetns | None, pid: int) -> str:
    """Wire PID 1's network while it builds its rootfs; "" or "CODE<TAB>MESSAGE"."""
    if netns is None:
        return ""
    try:
        network.wire(net, netns, pid)
    except (CShellError, OSError) as e:
        netns.close()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        return f"125\t{getattr(e, 'message', None) or f'network setup failed: {reason(e)}'}"
    return ""


def _attach_extras(root: StateRoot, config: dict, net: NetPlan, pid: int) -> str:
    """The networks `network connect` added while the container was stopped: one more ethN each."""
    if net.mode != "bridge":
        return ""
    for name in config.get("networks") or {}:
        if name == net.network:
            continue
        try:
            usernets.attach(root, usernets.get(root, name), config, pid)
        except (CShellError, OSError) as e:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            return f"125\t{getattr(e, 'message', None) or reason(e)}"
    return ""


def _release(root: StateRoot, cid: str, net: NetPlan, drop_bridge: bool = True) -> None:
    """The container's veths, rules and leases (every network); then its reserved host ports are free again."""
    if net.mode == "bridge":
        with contextlib.suppress(CShellError, OSError):
            usernets.release_all(root, cid, drop_bridge)
    net.close_fds()


def _copy_output(log_path, outputs: dict[int, int], attached: bool) -> LogResult:
    """Copy container output to the log and, while someone is attached, to them.

    A log write that fails (the disk is full) loses that output for the log only:
    it is counted, the attached terminal still gets it, and copying goes on, so
    the container is never blocked on a full pipe and its exit is still seen.
    """
    result = LogResult()
    try:
        log: int | None = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
    except OSError as e:
        log, result.error = None, reason(e)
    times = _open_times(log_path)
    while outputs:
        ready, _, _ = select.select(list(outputs), [], [])
        for fd in ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: the pty's last slave closed
                data = b""
            if not data:
                os.close(fd)
                del outputs[fd]
                continue
            _append_log(log, data, result, times)
            if attached:
                try:
                    os.write(outputs[fd], data)
                except OSError:
                    attached = False  # the terminal went away; keep logging
    for fd in (log, times):
        if fd is not None:
            os.close(fd)
    return result


def _open_times(log_path) -> int | None:  # noqa: ANN001 - a Path
    """log.times: "OFFSET NANOSECONDS" for each chunk of the log, for `logs -t` and `--since`."""
    try:
        return os.open(f"{log_path}.times", os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
    except OSError:
        return None


def _append_log(log: int | None, data: bytes, result: LogResult, times: int | None = None) -> None:
    written = 0
    if log is not None:
        try:
            if times is not None:  # where this chunk starts, and when it came
                with contextlib.suppress(OSError):
                    os.write(times, f"{os.lseek(log, 0, os.SEEK_END)} {time.time_ns()}\n".encode())
            written = os.write(log, data)
        except OSError as e:
            result.error = reason(e)
    result.dropped += len(data) - written
