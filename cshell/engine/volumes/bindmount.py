"""The article's bind-mount demonstration, for real.

A bind mount makes a path (a dentry) lead to another directory's inode: after
``mount --bind SRC DST``, stat(DST) shows SRC's inode and device, and
umount brings DST's own inode back. ``bind_demo`` does it in a child's private
mount namespace (the host never sees it); ``bind_in`` injects a host directory
into a RUNNING container's mount namespace, the way a runtime can add a
volume late: the tree is cloned on the host with open_tree(OPEN_TREE_CLONE),
the child setns()es into the container's mount namespace, resolves DST inside
the container's root and move_mount()s the tree there.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
from typing import Any

from cshell.engine import trace
from cshell.engine.kernel import mounts
from cshell.engine.kernel import syscalls as sc
from cshell.errors import CShellError, NotFound, RuntimeFailure, UsageError
from cshell.record import record

_libc = ctypes.CDLL(None, use_errno=True)
SYS_OPEN_TREE, SYS_MOVE_MOUNT = 428, 429  # the same on x86_64 and aarch64
OPEN_TREE_CLONE, AT_RECURSIVE, AT_EMPTY_PATH = 1, 0x8000, 0x1000
MOVE_MOUNT_F_EMPTY_PATH, MOVE_MOUNT_T_EMPTY_PATH = 0x4, 0x40
SYS_MOUNT_SETATTR, MOUNT_ATTR_RDONLY = 442, 0x1


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


@record
class PathView:
    """What stat(2) and readdir say about one path at one moment."""

    inode: int
    device: str
    entries: list[str]

    @classmethod
    def of(cls, path: str | int) -> PathView:
        """A path, or an O_PATH descriptor of a directory (no /proc needed: inside a container's
        mount namespace /proc is the container's, where this process has no /proc/self)."""
        st = os.stat(path)
        d = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=path) if isinstance(path, int) \
            else os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            names = sorted(os.listdir(d))
        finally:
            os.close(d)
        return cls(st.st_ino, f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}", names[:8] + (["…"] if len(names) > 8 else []))

    def to_json(self) -> dict[str, Any]:
        return {"inode": self.inode, "device": self.device, "entries": self.entries}


@record
class BindReport:
    src: str
    dst: str
    where: str  # "a private mount namespace" or the container's name
    src_view: PathView
    before: PathView
    after: PathView
    restored: PathView | None  # after umount (None: left mounted, --in)
    host_sees_it: bool  # did the host's /proc/self/mountinfo show the mount while it existed?
    readonly: bool = False
    write_refused: str = ""  # --ro: what a write through DST got from the kernel


def _check_paths(src: str, dst: str) -> None:
    if not os.path.isdir(src):
        raise NotFound(f"bind source {src} is not a directory on the host", "give an existing host directory")
    if not dst.startswith("/"):
        raise UsageError(f"destination {dst!r} must be absolute", "e.g. bind /home /mnt")


def host_mount_points() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4] for line in f}


def _child(work: Any) -> dict[str, Any]:  # noqa: ANN401 - a callable taking (ready_w, go_r)
    """Run work(report, wait) in a forked child; returns what it reported (or raises its error)."""
    out_r, out_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(out_r)
        os.close(go_w)
        try:
            def report(data: dict[str, Any]) -> None:
                os.write(out_w, (json.dumps(data) + "\n").encode())

            work(report, lambda: os.read(go_r, 1))
            code = 0
        except OSError as e:
            os.write(out_w, (json.dumps({"error": e.strerror or str(e)}) + "\n").encode())
            code = 1
        os._exit(code)
    os.close(out_w)
    os.close(go_r)
    result: dict[str, Any] = {}
    with os.fdopen(out_r) as f, os.fdopen(go_w, "w") as go:
        for line in f:
            data = json.loads(line)
            if "error" in data:
                result["error"] = data["error"]
                break
            result.update(data)
            if "after" in data and "host_sees_it" not in result:  # the mount exists right now
                result["host_sees_it"] = data["dst_real"] in host_mount_points()
                with contextlib.suppress(OSError):
                    go.write("g")
                    go.flush()
    os.waitpid(pid, 0)
    if "error" in result:
        raise RuntimeFailure(f"bind failed: {result['error']}", "`explain on` shows each step")
    return result


def _try_write(dst: str) -> str:
    """--ro: a write through DST, which the kernel must refuse (EROFS)."""
    probe = os.path.join(dst, ".cshell-bind-probe")
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
    except OSError as e:
        return os.strerror(e.errno or 0)
    os.unlink(probe)
    return "the write went through (?)"


def bind_demo(src: str, dst: str, readonly: bool = False) -> BindReport:
    """mount --bind SRC DST in a child's own mount namespace; stat before, during, after umount."""
    _check_paths(src, dst)
    if not os.path.isdir(dst):
        raise NotFound(f"bind destination {dst} is not a directory", "give an existing directory (it is not changed)")

    def work(report: Any, wait: Any) -> None:  # noqa: ANN401
        trace.step("unshare(CLONE_NEWNS); mount --make-rprivate /")
        sc.unshare(sc.CLONE_NEWNS)
        sc.mount("none", "/", None, sc.MS_REC | sc.MS_PRIVATE)
        before = PathView.of(dst)
        trace.step(f"mount({src!r}, {dst!r}, none, MS_BIND)")
        sc.mount(src, dst, None, sc.MS_BIND)
        refused = ""
        if readonly:
            trace.step(f"mount(none, {dst!r}, MS_REMOUNT|MS_BIND|MS_RDONLY)")
            sc.mount("none", dst, None, sc.MS_REMOUNT | sc.MS_BIND | sc.MS_RDONLY)
            refused = _try_write(dst)
        report({"before": before.to_json(), "after": PathView.of(dst).to_json(), "dst_real": os.path.realpath(dst),
                "refused": refused})
        wait()
        trace.step(f"umount2({dst!r})")
        sc.umount2(dst)
        report({"restored": PathView.of(dst).to_json()})

    data = _child(work)
    return BindReport(src, dst, "a private mount namespace (a child of cshell)", PathView.of(src),
                      _view(data["before"]), _view(data["after"]), _view(data["restored"]), data["host_sees_it"],
                      readonly, data.get("refused", ""))


def _view(d: dict[str, Any]) -> PathView:
    return PathView(d["inode"], d["device"], d["entries"])


def _syscall(nr: int, *args: Any) -> int:  # noqa: ANN401
    r = _libc.syscall(ctypes.c_long(nr), *args)
    if r < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return r


def bind_in(pid: int, name: str, src: str, dst: str, readonly: bool = False) -> BindReport:
    """Put host directory SRC at DST inside a running container (its mount namespace only)."""
    _check_paths(src, dst)
    ns_fd = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)

    def work(report: Any, wait: Any) -> None:  # noqa: ANN401
        trace.step(f"open_tree({src!r}, OPEN_TREE_CLONE|AT_RECURSIVE)  # a detached copy of the host mount")
        tree = _syscall(SYS_OPEN_TREE, ctypes.c_int(-100), src.encode(), ctypes.c_uint(OPEN_TREE_CLONE | AT_RECURSIVE))
        if readonly:
            trace.step("mount_setattr(tree, MOUNT_ATTR_RDONLY)")
            attr = _MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)
            _syscall(SYS_MOUNT_SETATTR, ctypes.c_int(tree), b"", ctypes.c_uint(AT_EMPTY_PATH | AT_RECURSIVE),
                     ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)))
        trace.step(f"setns(/proc/{pid}/ns/mnt)  # root and cwd become the container's")
        sc.setns(ns_fd, sc.CLONE_NEWNS)
        os.chdir("/")
        target = mounts.open_target("/", dst, True, check=False)
        before = PathView.of(target)
        trace.step(f"move_mount(tree, {dst!r} resolved inside the container root)")
        _syscall(SYS_MOVE_MOUNT, ctypes.c_int(tree), b"", ctypes.c_int(target), b"",
                 ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH))
        os.close(target)
        after_fd = mounts.open_target("/", dst, True, check=False)
        report({"before": before.to_json(), "after": PathView.of(after_fd).to_json(), "dst_real": dst,
                "refused": _try_write(dst) if readonly else ""})
        wait()

    try:
        data = _child(work)
    finally:
        os.close(ns_fd)
    return BindReport(src, dst, name, PathView.of(src), _view(data["before"]), _view(data["after"]), None,
                      data["host_sees_it"], readonly, data.get("refused", ""))


def unbind_in(pid: int, dst: str) -> None:
    """umount DST inside a running container's mount namespace."""
    ns_fd = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)

    def work(report: Any, wait: Any) -> None:  # noqa: ANN401
        sc.setns(ns_fd, sc.CLONE_NEWNS)
        os.chdir("/")
        trace.step(f"umount2({dst!r}, MNT_DETACH) in the container's mount namespace")
        sc.umount2(dst, sc.MNT_DETACH)
        report({})

    try:
        _child(work)
    except CShellError as e:
        raise RuntimeFailure(f"unbind {dst}: {e.message.removeprefix('bind failed: ')}",
                             "is something mounted there? `exec CTR cat /proc/self/mountinfo`") from None
    finally:
        os.close(ns_fd)
