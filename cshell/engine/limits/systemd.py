"""Containers' cgroups on a systemd host: a scope systemd makes for each container.

On the hosts it boots, systemd owns the cgroup tree: a program may change only a
subtree systemd has delegated to it (systemd.io/CGROUP_DELEGATION). A container
manager that makes its own groups at the top of the tree (Docker's cgroupfs
driver) works, but lives beside systemd rather than with it: its processes
belong to no unit, and a shim started from an ssh session stays in that
session's scope, to be killed with it at logout.

So on cgroup v2 under systemd cshell does what runc's systemd driver does: it
asks systemd, over D-Bus (StartTransientUnit, through `busctl`), for a scope
``cshell-<id12>.scope`` in ``cshell.slice``, with Delegate=yes, and puts the
shim in it. Inside, the subtree is cshell's: the shim moves itself into
``shim/`` and PID 1 goes into ``container/``, where the limits are written.
systemd never writes inside a delegated subtree, so `systemctl daemon-reload`
leaves the limits alone; `systemctl status cshell-<id12>.scope` shows the
container. CollectMode=inactive-or-failed lets systemd forget a scope whose
container was OOM-killed, so `systemctl --failed` stays empty.

CSHELL_CGROUP_DRIVER=cgroupfs chooses Docker's cgroupfs layout instead
(``/sys/fs/cgroup/cshell/<id>``), as dockerd's native.cgroupdriver does.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from pathlib import Path

from cshell.engine import trace
from cshell.errors import RuntimeFailure

SLICE = "cshell.slice"
_BUS = ("org.freedesktop.systemd1", "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager")


def booted() -> bool:
    """systemd is PID 1 (sd_booted's test), and nobody asked for the cgroupfs layout."""
    return os.environ.get("CSHELL_CGROUP_DRIVER", "systemd") != "cgroupfs" and Path("/run/systemd/system").is_dir()


def unit(cid: str) -> str:
    return f"cshell-{cid[:12]}.scope"


def scope_path(cid: str) -> str:
    """The scope's cgroup, relative to the cgroup root."""
    return f"/{SLICE}/{unit(cid)}"


def start_scope(cid: str, pid: int, description: str) -> None:
    """StartTransientUnit: a delegated scope holding PID, then wait until PID is in it."""
    props = ["Description", "s", description, "Slice", "s", SLICE, "Delegate", "b", "true",
             "CollectMode", "s", "inactive-or-failed", "PIDs", "au", "1", str(pid)]
    trace.step(f"busctl call … StartTransientUnit {unit(cid)} fail Slice={SLICE} Delegate=yes PIDs={pid}"
               "  # systemd makes the scope and hands its subtree to us")
    _busctl("StartTransientUnit", "ssa(sv)a(sa(sv))", unit(cid), "fail", str(len(props) // 3), *props, "0")
    deadline = time.monotonic() + 10
    while scope_path(cid) not in _cgroup_of(pid):
        if time.monotonic() > deadline:
            raise RuntimeFailure(f"systemd did not move the shim into {unit(cid)}",
                                 "see `journalctl -u " + unit(cid) + "`; CSHELL_CGROUP_DRIVER=cgroupfs avoids systemd")
        time.sleep(0.002)


def stop_scope(cid: str) -> None:
    """StopUnit (its processes get SIGTERM); a scope already gone is fine."""
    trace.step(f"busctl call … StopUnit {unit(cid)} replace")
    with contextlib.suppress(RuntimeFailure):
        _busctl("StopUnit", "ss", unit(cid), "replace")


def scopes(cgroup_root: Path) -> list[Path]:
    """The scope directories under cshell.slice (one per container that has a shim)."""
    base = cgroup_root / SLICE
    return sorted(base.glob("cshell-*.scope")) if base.is_dir() else []


def _cgroup_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return ""


def _busctl(method: str, signature: str, *args: str) -> None:
    proc = subprocess.run(["busctl", "call", "--quiet", *_BUS, method, signature, *args],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeFailure(f"systemd refused {method}: {proc.stderr.strip() or 'no answer'}",
                             "is systemd running (systemctl is-system-running)? "
                             "CSHELL_CGROUP_DRIVER=cgroupfs makes the groups without it")
