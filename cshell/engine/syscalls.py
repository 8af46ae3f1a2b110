"""Thin ctypes wrappers for the Linux calls Python 3.11 does not expose.

Each wrapper raises OSError with errno set, like the os module does, so
callers can translate failures into CShellError with a hint.
"""

from __future__ import annotations

import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080

# Namespace kind (as named in /proc/PID/ns) -> clone flag.
NS_FLAGS: dict[str, int] = {
    "cgroup": CLONE_NEWCGROUP,
    "ipc": CLONE_NEWIPC,
    "mnt": CLONE_NEWNS,
    "net": CLONE_NEWNET,
    "pid": CLONE_NEWPID,
    "time": CLONE_NEWTIME,
    "user": CLONE_NEWUSER,
    "uts": CLONE_NEWUTS,
}

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_STRICTATIME = 1 << 24

MNT_DETACH = 2

PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36

_FLAG_NAMES = {v: f"CLONE_NEW{k.upper() if k != 'mnt' else 'NS'}" for k, v in NS_FLAGS.items()}
_MS_NAMES = [
    (MS_RDONLY, "MS_RDONLY"), (MS_NOSUID, "MS_NOSUID"), (MS_NODEV, "MS_NODEV"),
    (MS_NOEXEC, "MS_NOEXEC"), (MS_REMOUNT, "MS_REMOUNT"), (MS_BIND, "MS_BIND"),
    (MS_MOVE, "MS_MOVE"), (MS_REC, "MS_REC"), (MS_PRIVATE, "MS_PRIVATE"),
    (MS_SLAVE, "MS_SLAVE"), (MS_STRICTATIME, "MS_STRICTATIME"),
]


def clone_flag_names(flags: int) -> str:
    """CLONE_NEWNS|CLONE_NEWPID… for an explain line."""
    return "|".join(name for bit, name in sorted(_FLAG_NAMES.items()) if flags & bit) or "0"


def mount_flag_names(flags: int) -> str:
    return "|".join(name for bit, name in _MS_NAMES if flags & bit) or "0"


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns")


def mount(source: str, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    _check(
        _libc.mount(
            source.encode(),
            target.encode(),
            fstype.encode() if fstype else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        f"mount {target}",
    )


def umount2(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(target.encode(), ctypes.c_int(flags)), f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    # glibc has no wrapper; 155 is SYS_pivot_root on x86_64, 41 on aarch64.
    nr = 41 if os.uname().machine == "aarch64" else 155
    _check(_libc.syscall(ctypes.c_long(nr), new_root.encode(), put_old.encode()), "pivot_root")


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, ctypes.c_size_t(len(raw))), "sethostname")


def prctl(option: int, arg: int = 0) -> None:
    _check(_libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg), 0, 0, 0), "prctl")
