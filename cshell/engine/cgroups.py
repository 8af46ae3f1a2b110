"""One cgroup per container, on cgroup v1 (per controller) or v2 (one directory).

Detected at run time: a v2 host mounts cgroup2 at /sys/fs/cgroup; a v1 or
hybrid host has a tmpfs there with one directory per controller. Limits
(issue 6) write into the same directories this module creates.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from cshell.engine import trace
from cshell.errors import RuntimeFailure

CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP2_SUPER_MAGIC = 0x63677270
V1_CONTROLLERS = ("memory", "pids", "cpu", "cpuacct", "freezer")
V2_CONTROLLERS = ("memory", "pids", "cpu")
GROUP = "cshell"


def is_v2() -> bool:
    """True on a pure cgroup-v2 host (the students' VMs); False on v1/hybrid."""
    # os.statvfs does not expose f_type; a v2 root has cgroup.controllers at the top.
    return (CGROUP_ROOT / "cgroup.controllers").exists()


def container_dirs(cid: str) -> list[Path]:
    """Every cgroup directory that belongs to the container (existing or not)."""
    if is_v2():
        return [CGROUP_ROOT / GROUP / cid]
    dirs = []
    for controller in V1_CONTROLLERS:
        base = CGROUP_ROOT / controller
        # cpu and cpuacct are often the same hierarchy (cpu,cpuacct): list it once.
        if base.is_dir() and base.resolve() not in [d.parent.parent.resolve() for d in dirs]:
            dirs.append(base / GROUP / cid)
    return dirs


def _enable_v2_controllers(parent: Path) -> None:
    """Let children of cshell/ have memory, pids and cpu files (v2 delegation)."""
    available = (parent.parent / "cgroup.subtree_control").read_text().split()
    wanted = " ".join(f"+{c}" for c in V2_CONTROLLERS if c in available)
    if wanted:
        with contextlib.suppress(OSError):
            (parent / "cgroup.subtree_control").write_text(wanted)


def create(cid: str) -> list[Path]:
    dirs = container_dirs(cid)
    for d in dirs:
        if not d.parent.exists():
            d.parent.mkdir(exist_ok=True)
            if is_v2():
                _enable_v2_controllers(d.parent)
        trace.step(f"mkdir {d}")
        d.mkdir(exist_ok=True)
    return dirs


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
    for d in container_dirs(cid):
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
    return left


def remove_orphans(min_age: float = 10) -> list[str]:
    """Empty container groups left by a crash (a stopped container has none).

    rmdir refuses a group that still has processes, so a running container is
    never touched; the age check spares one whose shim is filling it right now.
    """
    parents = [CGROUP_ROOT / GROUP] if is_v2() else [CGROUP_ROOT / c / GROUP for c in V1_CONTROLLERS]
    removed = []
    for parent in parents:
        if not parent.is_dir():
            continue
        for d in parent.iterdir():
            with contextlib.suppress(OSError):
                if d.is_dir() and time.time() - d.stat().st_mtime > min_age:
                    os.rmdir(d)
                    removed.append(str(d))
    return removed


@contextlib.contextmanager
def frozen(cid: str, timeout: float = 5.0) -> Iterator[None]:
    """Pause every process of the container while we read its files (docker commit --pause).

    A frozen container cannot change its rw layer under us, nor swap a directory
    for a symlink between our look and our read.
    """
    if is_v2():
        group = CGROUP_ROOT / GROUP / cid
        control, on, off, done = group / "cgroup.freeze", "1", "0", lambda: "frozen 1" in (group / "cgroup.events").read_text()
    else:
        group = CGROUP_ROOT / "freezer" / GROUP / cid
        state = group / "freezer.state"
        control, on, off, done = state, "FROZEN", "THAWED", lambda: state.read_text().strip() == "FROZEN"
    if not control.exists():
        yield  # no freezer here (or the container is gone): nothing to pause
        return
    trace.step(f"echo {on} > {control}")
    control.write_text(on)
    try:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise RuntimeFailure("the container did not freeze in time", "try again, or stop it first")
            time.sleep(0.002)
        yield
    finally:
        trace.step(f"echo {off} > {control}")
        control.write_text(off)


def processes(cid: str) -> list[int]:
    pids: set[int] = set()
    for d in container_dirs(cid):
        with contextlib.suppress(OSError):
            pids.update(int(p) for p in (d / "cgroup.procs").read_text().split())
    return sorted(pids)
