"""Mounting volumes, binds and tmpfs onto paths resolved INSIDE a container root.

A container path is never resolved on the host (no realpath): a symlink in
the image (or one the container made) would lead the mount, or the mkdir of a
missing target, onto a host path (CVE-2024-45310, CVE-2018-15664). As runc
does, each target is opened with openat2(RESOLVE_IN_ROOT), so ``..`` and
absolute symlinks stay inside the root; missing components are created one at
a time relative to their parent's descriptor; and the mount is made through
``/proc/self/fd/N``, so nothing is looked up by name again.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cshell.engine import trace
from cshell.engine.kernel import syscalls as sc

_libc = ctypes.CDLL(None, use_errno=True)
SYS_OPENAT2 = 437  # same number on x86_64 and aarch64
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10
O_PATH = 0o10000000


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def openat2_in_root(root_fd: int, path: str, flags: int = O_PATH) -> int:
    """Open ``path`` as if ``root_fd`` were '/': symlinks and '..' cannot leave it."""
    how = _OpenHow(flags | os.O_CLOEXEC, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
    fd = _libc.syscall(ctypes.c_long(SYS_OPENAT2), ctypes.c_int(root_fd), path.encode(),
                       ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"open {path} in the container root: {os.strerror(err)}")
    return fd


def fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def open_target(root: str, target: str, is_dir: bool = True, check: bool = True) -> int:
    """An O_PATH descriptor of ``target`` inside ``root``, made (mkdir -p, or an empty file) if missing.

    A dangling symlink on the way is followed inside the root, as runc's MkdirAllInRoot does:
    its target is created in the container, never on the host.
    """
    root_fd = os.open(root, os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        parts = [p for p in target.split("/") if p]
        for _ in range(40):  # the kernel's own symlink limit
            redirected = _make_missing(root_fd, parts, is_dir)
            if redirected is None:
                break
            parts = redirected
        else:
            raise OSError(errno.ELOOP, f"mount target {target}: too many levels of symbolic links")
        fd = openat2_in_root(root_fd, "/".join(parts))
    finally:
        os.close(root_fd)
    if check:  # needs /proc/self: the host's (not after setns into a container's mount namespace)
        _check_inside(fd, root, target)
    return fd


def _make_missing(root_fd: int, parts: list[str], is_dir: bool) -> list[str] | None:
    """Create the missing components; a dangling symlink returns the path to retry instead."""
    for i in range(len(parts)):
        try:
            os.close(openat2_in_root(root_fd, "/".join(parts[:i + 1])))
            continue
        except FileNotFoundError:
            pass
        link = _create_in_parent(root_fd, parts[:i], parts[i], is_dir or i < len(parts) - 1)
        if link is not None:
            return _in_root([] if link.startswith("/") else parts[:i], link, parts[i + 1:])
    return None


def _in_root(base: list[str], link: str, rest: list[str]) -> list[str]:
    """base + link + rest, with '..' stopping at the root (as RESOLVE_IN_ROOT does)."""
    out = list(base)
    for p in [*link.split("/"), *rest]:
        if p == "..":
            if out:
                out.pop()
        elif p and p != ".":
            out.append(p)
    return out


def _create_in_parent(root_fd: int, parent: list[str], name: str, as_dir: bool) -> str | None:
    """mkdirat/openat(O_EXCL) in the parent; returns a dangling symlink's text if one is in the way."""
    pfd = openat2_in_root(root_fd, "/".join(parent) or ".", os.O_DIRECTORY | os.O_RDONLY)
    try:
        if as_dir:
            os.mkdir(name, 0o755, dir_fd=pfd)
        else:
            os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_WRONLY, 0o644, dir_fd=pfd))
        return None
    except FileExistsError:
        if stat.S_ISLNK(os.stat(name, dir_fd=pfd, follow_symlinks=False).st_mode):
            return os.readlink(name, dir_fd=pfd)
        raise
    finally:
        os.close(pfd)


def _check_inside(fd: int, root: str, target: str) -> None:
    """runc's recheck: the opened path really is below the root, and not the root itself."""
    real = os.readlink(fd_path(fd))
    if not real.startswith(root.rstrip("/") + "/"):
        os.close(fd)
        raise OSError(errno.EXDEV, f"mount target {target} resolves outside the container root ({real})")


# -- copyData -------------------------------------------------------------------------------------


def is_empty_dir(path: str) -> bool:
    with os.scandir(path) as it:
        return next(it, None) is None


def copy_tree_fd(src_fd: int, dst_fd: int) -> int:
    """Copy a directory's content by descriptors, never following a symlink; returns entries copied."""
    count = 0
    for name in os.listdir(src_fd):
        st = os.stat(name, dir_fd=src_fd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            os.mkdir(name, 0o700, dir_fd=dst_fd)
            s = os.open(name, os.O_DIRECTORY | os.O_NOFOLLOW | os.O_RDONLY, dir_fd=src_fd)
            d = os.open(name, os.O_DIRECTORY | os.O_NOFOLLOW | os.O_RDONLY, dir_fd=dst_fd)
            try:
                count += copy_tree_fd(s, d)
            finally:
                os.close(s)
                os.close(d)
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(name, dir_fd=src_fd), name, dir_fd=dst_fd)
        elif stat.S_ISREG(st.st_mode):
            _copy_file(src_fd, dst_fd, name)
        else:  # fifos, devices, sockets: as they are
            os.mknod(name, st.st_mode, st.st_rdev, dir_fd=dst_fd)
        _copy_meta(dst_fd, name, st)
        count += 1
    return count


def _copy_file(src_fd: int, dst_fd: int, name: str) -> None:
    s = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=src_fd)
    d = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=dst_fd)
    try:
        while os.sendfile(d, s, None, 1 << 20):
            pass
    finally:
        os.close(s)
        os.close(d)


def _copy_meta(dst_fd: int, name: str, st: os.stat_result) -> None:
    os.chown(name, st.st_uid, st.st_gid, dir_fd=dst_fd, follow_symlinks=False)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(name, stat.S_IMODE(st.st_mode), dir_fd=dst_fd)
    os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst_fd, follow_symlinks=False)


def copy_data(target_fd: int, volume_dir: str) -> int:
    """Docker's copyData: an empty volume takes what the image has at the mount point."""
    if not is_empty_dir(volume_dir):
        return 0
    src = os.open(fd_path(target_fd), os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    dst = os.open(volume_dir, os.O_DIRECTORY | os.O_NOFOLLOW | os.O_RDONLY | os.O_CLOEXEC)
    try:
        st = os.fstat(src)
        n = copy_tree_fd(src, dst)
        if n:  # the volume's root takes the image directory's owner and mode too
            os.fchown(dst, st.st_uid, st.st_gid)
            os.fchmod(dst, stat.S_IMODE(st.st_mode))
        return n
    finally:
        os.close(src)
        os.close(dst)


# -- mounting -----------------------------------------------------------------------------------


@contextmanager
def opened(root: str, target: str, is_dir: bool = True) -> Iterator[int]:
    fd = open_target(root, target, is_dir)
    try:
        yield fd
    finally:
        os.close(fd)


def _remount(root: str, target: str, flags: int) -> None:
    """Bind flags (ro, nosuid, nodev) take a second mount call, on the new mount's top."""
    with opened(root, target) as fd:
        trace.step(f"mount(none, {target!r}, MS_REMOUNT|MS_BIND|{sc.mount_flag_names(flags)})")
        sc.mount("none", fd_path(fd), None, sc.MS_REMOUNT | sc.MS_BIND | flags)


def mount_one(root: str, m: dict[str, Any], copy: bool = True) -> None:
    target, kind = m["destination"], m["type"]
    is_dir = kind != "bind" or m.get("is_dir", True)
    with opened(root, target, is_dir) as fd:
        if copy and kind == "volume" and m.get("copy", True) and os.path.isdir(fd_path(fd)):
            n = copy_data(fd, m["source"])
            if n:
                trace.step(f"copyData: {n} entries of {target} copied into the new volume {m['name'][:12]}")
        if kind == "tmpfs":
            flags = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC | (0 if m["rw"] else sc.MS_RDONLY)
            data = "mode=1777" + (f",size={m['size']}" if m.get("size") else "")
            trace.step(f"mount('tmpfs', {target!r}, 'tmpfs', {sc.mount_flag_names(flags)}, {data})")
            sc.mount("tmpfs", fd_path(fd), "tmpfs", flags, data)
            return
        trace.step(f"mount({m['source']!r}, {target!r} via /proc/self/fd/{fd}, none, MS_BIND|MS_REC)")
        try:
            sc.mount(m["source"], fd_path(fd), None, sc.MS_BIND | sc.MS_REC)
        except OSError as e:
            raise OSError(e.errno, _bind_failure(m["source"], e)) from None
    # nodev on binds too (set by container/rootfs.py unless --privileged): no device node through a bind
    flags = (sc.MS_NOSUID | sc.MS_NODEV if kind == "volume" else sc.MS_NODEV if m.get("nodev") else 0) \
        | (0 if m["rw"] else sc.MS_RDONLY)
    if flags:
        _remount(root, target, flags)


def _bind_failure(source: str, e: OSError) -> str:
    """Why a bind mount failed, in words: most often its source changed since `run`."""
    import errno

    if e.errno == errno.ENOENT or not os.path.lexists(source):
        return f"its source {source} no longer exists"
    if e.errno in (errno.ENOTDIR, errno.EISDIR):
        kind = "a directory" if os.path.isdir(source) else "not a directory"
        return f"its source {source} is {kind} now, unlike when the container was made"
    return f"cannot bind {source}: {(e.strerror or str(e)).lower()}"


POPULATED = "volumes-populated"  # in the container's directory: copyData was done for it


def mount_all(root: str, mounts: list[dict[str, Any]], state_dir: str | None = None) -> None:
    """Mount the volumes, binds and tmpfs; copyData only at the container's first start.

    Docker copies the image's content into a new volume once, at create; ours happens
    when the rootfs first exists, at the first start, and ``state_dir``/volumes-populated
    remembers it: a volume the user emptied stays empty after stop and start.
    """
    marker = os.path.join(state_dir, POPULATED) if state_dir else None
    copy = marker is None or not os.path.exists(marker)
    for m in mounts:
        try:
            mount_one(root, m, copy)
        except OSError as e:
            msg = e.strerror or str(e)
            raise OSError(e.errno, msg if msg.startswith("mount target") else f"volume {m['destination']}: {msg}") \
                from None
    if marker is not None and copy:
        os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644))
