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


def setdomainname(name: str) -> None:
    raw = name.encode()
    _check(_libc.setdomainname(raw, ctypes.c_size_t(len(raw))), "setdomainname")


def prctl(option: int, arg: int = 0) -> None:
    _check(_libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg), 0, 0, 0), "prctl")


# -- capabilities, no_new_privs, seccomp (containment; see caps.py and seccomp.py) ---------------

PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_KEEPCAPS = 8
PR_SET_SECCOMP = 22
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
SECCOMP_MODE_FILTER = 2
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def prctl_get(option: int, arg: int = 0) -> int:
    """prctl that returns its value (PR_CAPBSET_READ, PR_GET_NO_NEW_PRIVS)."""
    return _check(_libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg), 0, 0, 0), "prctl")


def prctl_args(option: int, *args: int) -> None:
    full = [ctypes.c_ulong(a) for a in (*args, 0, 0, 0, 0)[:4]]
    _check(_libc.prctl(ctypes.c_int(option), *full), "prctl")


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """capset(2) on ourselves: three 64-bit masks (bit N = capability N)."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in range(2):
        data[i].effective = (effective >> (32 * i)) & 0xFFFFFFFF
        data[i].permitted = (permitted >> (32 * i)) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> (32 * i)) & 0xFFFFFFFF
    _check(_libc.capset(ctypes.byref(header), data), "capset")


def capget() -> tuple[int, int, int]:
    """Our (effective, permitted, inheritable) masks."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(_libc.capget(ctypes.byref(header), data), "capget")
    eff = data[0].effective | data[1].effective << 32
    prm = data[0].permitted | data[1].permitted << 32
    inh = data[0].inheritable | data[1].inheritable << 32
    return eff, prm, inh


def seccomp_set_filter(bpf: bytes) -> None:
    """Install a classic-BPF seccomp program (8 bytes per instruction) on this thread.

    The kernel accepts it only with no_new_privs set or CAP_SYS_ADMIN held; it
    stays for the process and everything it execs or forks, and cannot be removed.
    """
    buf = ctypes.create_string_buffer(bpf, len(bpf))
    prog = _SockFprog(len(bpf) // 8, ctypes.cast(buf, ctypes.c_void_p))
    _check(_libc.prctl(ctypes.c_int(PR_SET_SECCOMP), ctypes.c_ulong(SECCOMP_MODE_FILTER),
                       ctypes.byref(prog), 0, 0), "seccomp")
