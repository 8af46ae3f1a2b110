"""Namespaces as the kernel shows them: /proc/PID/ns links, and setns(2) into them.

``join`` is the article's set_ns.c in Python: open /proc/PID/ns/KIND for
every chosen kind first (the paths stop resolving once we switch mount
namespace), setns(2) into each, fork so a new pid namespace takes effect,
then exec the command.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from cshell.engine import trace
from cshell.engine.kernel import syscalls as sc
from cshell.errors import NotFound, PrivilegeError, UsageError
from cshell.record import record

# The order /proc/PID/ns lists them in.
NS_KINDS = ("cgroup", "ipc", "mnt", "net", "pid", "pid_for_children", "time",
            "time_for_children", "user", "uts")
# Kinds one can setns into, in a safe order: user first (it grants rights over the
# rest), mnt last (after it, /proc/PID/ns paths resolve inside the container).
JOINABLE = ("user", "cgroup", "ipc", "uts", "net", "pid", "time", "mnt")


@record
class NsLink:
    kind: str
    link: str  # the readlink text, e.g. net:[4026532281]

    @property
    def inode(self) -> int:
        return int(self.link.rsplit("[", 1)[1].rstrip("]"))


def links(pid: int | str) -> list[NsLink]:
    """readlink /proc/PID/ns/* — what `ls -l /proc/PID/ns` shows."""
    out = []
    for kind in NS_KINDS:
        try:
            out.append(NsLink(kind, os.readlink(f"/proc/{pid}/ns/{kind}")))
        except FileNotFoundError:
            continue  # an older kernel without this kind, or the process just ended
        except PermissionError:
            raise PrivilegeError(f"cannot read /proc/{pid}/ns: permission denied",
                                 "run as root; some processes (another sandbox's init) stay hidden even then") from None
    if not out:
        raise NotFound(f"no process {pid}", "give a running container's name or id, a host PID, or `host`")
    return out


def parse_kinds(spec: str | None) -> list[str]:
    """``net,uts`` -> kinds in join order; None means all of them."""
    if spec is None:
        return list(JOINABLE)
    wanted = [k.strip() for k in spec.split(",") if k.strip()]
    unknown = [k for k in wanted if k not in JOINABLE]
    if unknown or not wanted:
        raise UsageError(f"unknown namespace kind {','.join(unknown) or spec!r}",
                         f"choose from {','.join(JOINABLE)}")
    return [k for k in JOINABLE if k in wanted]


def open_for_join(pid: int, kinds: Iterable[str]) -> list[tuple[str, int]]:
    """Open the target's namespace files, skipping those we are already in."""
    opened = []
    for kind in kinds:
        theirs = os.readlink(f"/proc/{pid}/ns/{kind}")
        if theirs == os.readlink(f"/proc/self/ns/{kind}"):
            continue  # setns into one's own user namespace fails; the others are no-ops
        trace.step(f'fd = open("/proc/{pid}/ns/{kind}", O_RDONLY)  # {theirs}')
        opened.append((kind, os.open(f"/proc/{pid}/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC)))
    return opened


def enter(opened: list[tuple[str, int]]) -> None:
    for kind, fd in opened:
        trace.step(f"setns(fd, {sc.clone_flag_names(sc.NS_FLAGS[kind])})")
        sc.setns(fd, sc.NS_FLAGS[kind])
        os.close(fd)
