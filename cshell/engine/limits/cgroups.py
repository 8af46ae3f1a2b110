"""One cgroup per container, on cgroup v1 (per controller) or v2 (one directory).

Detected at run time: a v2 host mounts cgroup2 at /sys/fs/cgroup; a v1 or
hybrid host has a tmpfs there with one directory per controller. Limits
(issue 6) write into the same directories this module creates.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from cshell.engine import trace
from cshell.engine.kernel import syscalls as sc
from cshell.errors import RuntimeFailure
from cshell.record import record

CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP2_SUPER_MAGIC = 0x63677270
V1_CONTROLLERS = ("memory", "pids", "cpu", "cpuacct", "freezer")
V2_CONTROLLERS = ("memory", "pids", "cpu", "cpuset")
GROUP = "cshell"


def is_v2() -> bool:
    """True on a pure cgroup-v2 host (the students' VMs); False on v1/hybrid."""
    # os.statvfs does not expose f_type; a v2 root has cgroup.controllers at the top.
    return (CGROUP_ROOT / "cgroup.controllers").exists()


def systemd_driver() -> bool:
    """cgroup v2 under systemd: each container in a delegated scope (systemd.py)."""
    from cshell.engine.limits import systemd

    return is_v2() and systemd.booted()


def relative(cid: str) -> str:
    """The container's group as /proc/PID/cgroup shows it (v1: in each controller's tree)."""
    if systemd_driver():
        from cshell.engine.limits import systemd

        return f"{systemd.scope_path(cid)}/container"
    return f"/{GROUP}/{cid}"


def container_dirs(cid: str, cpuset: bool = False) -> list[Path]:
    """Every cgroup directory that belongs to the container (existing or not).

    v1: the cpuset group is made only for --cpuset-cpus, so it is listed when asked
    for or when it exists.
    """
    if is_v2():
        return [CGROUP_ROOT / relative(cid).lstrip("/")]
    dirs = []
    wanted = cpuset or (CGROUP_ROOT / "cpuset" / GROUP / cid).is_dir()
    for controller in V1_CONTROLLERS + (("cpuset",) if wanted else ()):
        base = CGROUP_ROOT / controller
        # cpu and cpuacct are often the same hierarchy (cpu,cpuacct): list it once.
        if base.is_dir() and base.resolve() not in [d.parent.parent.resolve() for d in dirs]:
            dirs.append(base / GROUP / cid)
    return dirs


def _enable_v2_controllers(parent: Path, cpuset: bool = True) -> None:
    """Let children of PARENT (cshell/, or a container's scope) have memory, pids and cpu files."""
    available = (parent / "cgroup.controllers").read_text().split()
    wanted = " ".join(f"+{c}" for c in V2_CONTROLLERS if c in available and (cpuset or c != "cpuset"))
    if wanted:
        with contextlib.suppress(OSError):
            (parent / "cgroup.subtree_control").write_text(wanted)


def create(cid: str, cpuset: bool = False, name: str = "") -> list[Path]:
    """The container's groups, made by its shim (which, under systemd, moves into the scope)."""
    if systemd_driver():
        return [_create_in_scope(cid, cpuset, name)]
    dirs = container_dirs(cid, cpuset)
    for d in dirs:
        trace.step(f"mkdir {d}")
        for _ in range(3):
            try:
                _ensure_parent(d.parent, cpuset)
                d.mkdir(exist_ok=True)
                break
            except FileNotFoundError:  # another shell removed the empty cshell/ group just now
                continue
    return dirs


def _create_in_scope(cid: str, cpuset: bool, name: str) -> Path:
    """systemd makes the scope with us (the shim) in it; the subtree below is ours: the shim
    moves to shim/ (v2 lets only a group without processes hand controllers down), and
    PID 1 will go to container/, where the limits are written."""
    from cshell.engine.limits import systemd

    systemd.start_scope(cid, os.getpid(), f"cshell container {name or cid[:12]}")
    scope = container_dirs(cid)[0].parent
    trace.step(f"mkdir {scope}/shim; echo {os.getpid()} > {scope}/shim/cgroup.procs")
    (scope / "shim").mkdir(exist_ok=True)
    (scope / "shim" / "cgroup.procs").write_text(str(os.getpid()))
    _enable_v2_controllers(scope, cpuset)
    group = scope / "container"
    trace.step(f"mkdir {group}")
    group.mkdir(exist_ok=True)
    return group


def _ensure_parent(parent: Path, cpuset: bool) -> None:
    if not parent.exists():
        parent.mkdir(exist_ok=True)
        if is_v2():
            _enable_v2_controllers(parent)
    if cpuset and is_v2():
        _enable_v2_cpuset(parent)


def _enable_v2_cpuset(parent: Path) -> None:
    """v2 --cpuset-cpus: the cpuset controller must be delegated down to cshell/ (as runc does);
    under systemd only the scope is ours (Delegate=yes has given it every controller)."""
    for d in (parent,) if systemd_driver() else (parent.parent, parent):
        control = d / "cgroup.subtree_control"
        if "cpuset" not in control.read_text().split():
            trace.step(f"echo +cpuset > {control}")
            with contextlib.suppress(OSError):
                control.write_text("+cpuset")


def enable_v2_cpuset(cid: str) -> None:
    """v2: delegate cpuset to a running container's group (cgroup set cpuset-cpus=…)."""
    _enable_v2_cpuset(container_dirs(cid)[0].parent)


def prepare_cpuset(group: Path) -> None:
    """v1: a cpuset group starts with no CPUs and no memory nodes; copy them down from the root."""
    for d in (group.parent, group):
        for name in ("cpuset.cpus", "cpuset.mems"):
            if not (d / name).read_text().strip():
                value = (d.parent / name).read_text().strip()
                trace.step(f"echo {value} > {d / name}")
                (d / name).write_text(value)


def add_process(cid: str, pid: int) -> None:
    for d in container_dirs(cid):
        if d.exists():
            trace.step(f"echo {pid} > {d}/cgroup.procs")
            (d / "cgroup.procs").write_text(str(pid))


def remove(cid: str, wait: float = 1.0) -> list[Path]:
    """rmdir the container's groups; the kernel may need a moment to empty them.

    Returns the directories that could not be removed (still busy).
    """
    left: list[Path] = []
    dirs = container_dirs(cid)
    for d in dirs:
        deadline = time.monotonic() + wait
        while d.exists():
            try:
                os.rmdir(d)
                trace.step(f"rmdir {d}")
            except FileNotFoundError:
                break
            except OSError:
                if time.monotonic() > deadline:
                    left.append(d)
                    break
                time.sleep(0.005)
    _remove_empty_parents(dirs)
    if systemd_driver() and not left:
        _stop_scope_unless_ours(cid)
    return left


def _stop_scope_unless_ours(cid: str) -> None:
    """The shim ends its scope by leaving it (an empty scope is collected); anyone else
    removing the container (its shim killed) asks systemd to stop what is left."""
    from cshell.engine.limits import systemd

    scope = container_dirs(cid)[0].parent
    if scope.is_dir() and systemd.scope_path(cid) not in Path("/proc/self/cgroup").read_text():
        systemd.stop_scope(cid)


def _remove_empty_parents(dirs: list[Path]) -> None:
    """The cshell/ group goes with its last container: nothing of ours stays behind."""
    parents = {d.parent for d in dirs}
    if not is_v2():
        parents.add(CGROUP_ROOT / "cpuset" / GROUP)  # made only for --cpuset-cpus containers
    for parent in parents:
        if not parent.is_dir():
            continue
        with contextlib.suppress(OSError):  # EBUSY: other containers still have groups there
            os.rmdir(parent)
            trace.step(f"rmdir {parent}")


def remove_orphans(min_age: float = 10) -> list[str]:
    """Empty container groups left by a crash (a stopped container has none).

    rmdir refuses a group that still has processes, so a running container is
    never touched; the age check spares one whose shim is filling it right now.
    """
    parents = [CGROUP_ROOT / GROUP] if is_v2() else [CGROUP_ROOT / c / GROUP for c in (*V1_CONTROLLERS, "cpuset")]
    removed = _stop_empty_scopes(min_age) if systemd_driver() else []
    for parent in parents:
        if not parent.is_dir():
            continue
        for d in parent.iterdir():
            with contextlib.suppress(OSError):
                if d.is_dir() and time.time() - d.stat().st_mtime > min_age:
                    os.rmdir(d)
                    removed.append(str(d))
    return removed


def _stop_empty_scopes(min_age: float) -> list[str]:
    """Scopes of ours with no process left (a shim killed before systemd noticed)."""
    from cshell.engine.limits import systemd

    stopped = []
    for scope in systemd.scopes(CGROUP_ROOT):
        with contextlib.suppress(OSError):
            if "populated 0" in (scope / "cgroup.events").read_text() and time.time() - scope.stat().st_mtime > min_age:
                systemd.stop_scope(scope.name.removeprefix("cshell-").removesuffix(".scope"))
                for d in (*scope.iterdir(), scope):  # what systemd does not know of (no unit): ours to remove
                    if d.is_dir():
                        with contextlib.suppress(OSError):
                            os.rmdir(d)
                stopped.append(str(scope))
    return stopped


@record(frozen=True)
class Freezer:
    """The container's freezer: v1 freezer.state (FROZEN/THAWED), v2 cgroup.freeze (1/0)."""

    control: Path
    on: str
    off: str

    def requested(self) -> bool:
        """Frozen, or being frozen (v1 FREEZING; v2 cgroup.freeze is 1 before every task stopped)."""
        try:
            return self.control.read_text().strip() != self.off
        except OSError:  # the group is gone: the container has ended
            return False

    def done(self) -> bool:
        """Every process of the group has stopped."""
        if self.control.name == "cgroup.freeze":
            return "frozen 1" in (self.control.parent / "cgroup.events").read_text()
        return self.control.read_text().strip() == "FROZEN"

    def write(self, value: str) -> None:
        trace.step(f"echo {value} > {self.control}")
        self.control.write_text(value)


def freezer(cid: str) -> Freezer | None:
    """The container's freezer, or None (no freezer here, or the container is gone)."""
    if is_v2():
        # the container's own group (under systemd cshell.slice/cshell-ID12.scope/container): the
        # scope would freeze the shim too, and the shim must keep reading the container's output
        f = Freezer(container_dirs(cid)[0] / "cgroup.freeze", "1", "0")
    else:
        f = Freezer(CGROUP_ROOT / "freezer" / GROUP / cid / "freezer.state", "FROZEN", "THAWED")
    return f if f.control.exists() else None


def is_frozen(cid: str) -> bool:
    """docker pause's state, read from the kernel (so it is true whoever froze it)."""
    f = freezer(cid)
    return f is not None and f.requested()


def freeze(cid: str, timeout: float = 5.0) -> Freezer:
    """Stop every process of the container (docker pause) and wait until they all are."""
    f = freezer(cid)
    if f is None:
        raise RuntimeFailure("this host has no cgroup freezer for the container",
                             "v1 needs the freezer controller mounted at /sys/fs/cgroup/freezer")
    f.write(f.on)
    deadline = time.monotonic() + timeout
    while not f.done():
        if time.monotonic() > deadline:
            f.write(f.off)
            raise RuntimeFailure("the container did not freeze in time", "try again, or stop it first")
        time.sleep(0.002)
    return f


def thaw(cid: str) -> None:
    """Let the container's processes run again (docker unpause); nothing if it is not frozen."""
    f = freezer(cid)
    if f is not None and f.requested():
        f.write(f.off)


@contextlib.contextmanager
def frozen(cid: str, timeout: float = 5.0) -> Iterator[None]:
    """Pause every process of the container while we read its files (docker commit --pause).

    A frozen container cannot change its rw layer under us, nor swap a directory
    for a symlink between our look and our read. One the user paused stays paused.
    """
    f = freezer(cid)
    if f is None or f.requested():
        yield  # no freezer here (or the container is gone), or already paused: nothing to do
        return
    watchdog = _thaw_if_we_die(f.control, f.off)
    try:
        freeze(cid, timeout)
        yield
    finally:
        with contextlib.suppress(OSError):  # the group may be gone with the container
            f.write(f.off)
        watchdog()


def _thaw_if_we_die(control: Path, off: str) -> Callable[[], None]:
    """A child that thaws the container if this process dies frozen-handed (kill -9 mid-commit):
    otherwise the container would stay frozen for good, deaf even to SIGKILL (rm -f fails).
    It waits on a pipe: a "done" byte means we thawed it ourselves; EOF alone means we died."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(w)
            os.setsid()  # not in the shell's process group: a Ctrl-C there must not kill the watchdog
            if os.read(r, 1) != b"d":
                control.write_text(off)
        finally:
            os._exit(0)
    os.close(r)

    def release() -> None:
        with contextlib.suppress(OSError):
            os.write(w, b"d")
        os.close(w)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    return release


def processes(cid: str) -> list[int]:
    pids: set[int] = set()
    for d in container_dirs(cid):
        with contextlib.suppress(OSError):
            pids.update(int(p) for p in (d / "cgroup.procs").read_text().split())
    return sorted(pids)


def own_hierarchies() -> list[str]:
    """The hierarchies in which we sit in a cshell group, from /proc/self/cgroup.

    "memory", "cpu,cpuacct"… on v1; "" for the v2 hierarchy. Read before the cgroup
    namespace is made: after it, every path shows as "/".
    """
    out = []
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if path.startswith((f"/{GROUP}/", "/cshell.slice/")):  # cgroupfs or systemd layout
                out.append(controllers)
    return out


def mount_view(hierarchies: list[str], writable: bool = False) -> None:
    """Inside the container, after unshare(CLONE_NEWCGROUP): its own group as /sys/fs/cgroup, read-only.

    A cgroup filesystem mounted inside a cgroup namespace shows the namespace's root,
    i.e. the container's group, and nothing above it (docker does the same).
    ``writable``: --privileged, where docker mounts it read-write.
    """
    ro = (0 if writable else sc.MS_RDONLY) | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC
    target = "/sys/fs/cgroup"
    if "" in hierarchies:
        _mount("cgroup2", target, "cgroup2", ro)
        return
    _mount("tmpfs", target, "tmpfs", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC, "mode=755")
    for controllers in hierarchies:
        name = controllers.removeprefix("name=")
        os.mkdir(f"{target}/{name}")
        _mount("cgroup", f"{target}/{name}", "cgroup", ro, controllers)
        for single in controllers.split(","):
            if single != name and not single.startswith("name="):
                os.symlink(name, f"{target}/{single}")  # cpu -> cpu,cpuacct, as on the host
    _mount("tmpfs", target, None, sc.MS_REMOUNT | ro)


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    trace.step(f"mount({source!r}, {target!r}, {fstype or 'none'!r}, {sc.mount_flag_names(flags)}"
               + (f", {data})" if data else ")"))
    sc.mount(source, target, fstype, flags, data)
