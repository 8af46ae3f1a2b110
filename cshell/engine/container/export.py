"""docker export and docker import: a container's filesystem as one flat tar, and back.

`export` writes what the container's overlay shows (its image layers, the
init layer and its rw layer merged), the view docker exports: no volumes,
no /proc, /sys or /dev contents, and the init layer's empty placeholders
for /etc/hosts, /etc/hostname and /etc/resolv.conf (the real ones are bind
mounts, outside the overlay). The tar is written by a forked child that
sees only that view, never by walking container paths from the host:

* running container: the child setns(2)es into the container's mount
  namespace, unshares a private copy of it, bind-mounts "/" (without its
  submounts) onto /proc and chroots there;
* stopped container: the child unshares a private mount namespace and
  mounts a read-only overlay of the rw dir over the image layers, then
  chroots into it.

Either way every path resolves inside the container's files, a symlink to
/etc/shadow reads the container's, and no mount is ever seen on the host.
The child reads no user names (that would load the container's NSS
libraries) and imports nothing once inside (that would run its Python).

`import` is the reverse: a flat rootfs tar becomes a one-layer image.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import stat
import sys
import tarfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn

from cshell.engine import events, trace
from cshell.engine.container import rootfs
from cshell.engine.image import imageconfig
from cshell.engine.image.diff import KEPT_XATTRS
from cshell.engine.image.load import ARCH, compression_of, decompressed, with_head
from cshell.engine.image.store import Image, Store
from cshell.engine.kernel import namespaces
from cshell.engine.kernel import syscalls as sc
from cshell.errors import RuntimeFailure, UsageError, reason
from cshell.record import record

if TYPE_CHECKING:
    from cshell.engine.container.containers import Container

PIPE_CHUNK = 1 << 16


# -- export -----------------------------------------------------------------------------------------


def export(c: Container, out: IO[bytes]) -> int:
    """Stream the container's merged filesystem to ``out`` as a tar; the bytes written."""
    from cshell.engine.container.containers import require_root

    require_root()
    if c.running:
        pid = c.pid
        trace.step(f"# {c.name} is running: the tar is written from inside its mount namespace")
        return _tar_in_child(lambda: _enter_running(pid), out)
    plan = c.rootfs_plan()
    return _tar_in_child(lambda: _mount_stopped(plan), out)


def _enter_running(pid: int) -> str:
    """Join the container's mount namespace, privately; the bare overlay, without submounts."""
    namespaces.enter(namespaces.open_for_join(pid, ["mnt"]))
    trace.step("unshare(CLONE_NEWNS)  # a private copy: our mounts stay ours")
    sc.unshare(sc.CLONE_NEWNS)
    rootfs.make_mounts_private()
    # A non-recursive bind of / is the overlay alone: no /proc, /sys, /dev, /etc/hosts
    # mounts, no volumes. /proc is a directory every container has (the init layer makes it).
    _mount("/", "/proc", None, sc.MS_BIND)
    return "/proc"


def _mount_stopped(plan: rootfs.RootfsPlan) -> str:
    """A read-only overlay, the rw dir as its top lower layer, in a private mount namespace."""
    trace.step("unshare(CLONE_NEWNS)  # the mount below dies with this child")
    sc.unshare(sc.CLONE_NEWNS)
    rootfs.make_mounts_private()
    # No upperdir: the rw dir is only read, and its whiteouts still hide what they hide.
    lower = ":".join([plan.upperdir, *plan.lowerdirs])
    _mount("overlay", plan.merged, "overlay", sc.MS_RDONLY, f"lowerdir={lower}")
    return plan.merged


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    trace.step(f"mount({source!r}, {target!r}, {fstype or 'none'!r}, {sc.mount_flag_names(flags)}"
               + (f", {data!r})" if data else ")"))
    sc.mount(source, target, fstype, flags, data)


def _tar_in_child(prepare: Callable[[], str], out: IO[bytes]) -> int:
    """Fork; the child prepares a root, chroots into it and writes a tar to a pipe we copy."""
    warm_up()
    data_r, data_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    trace_r, trace_w = os.pipe2(os.O_CLOEXEC)
    out.flush()
    pid = os.fork()
    if pid == 0:
        os.close(data_r)
        os.close(err_r)
        os.close(trace_r)
        _child(prepare, data_w, err_w, trace_w)
    for fd in (data_w, err_w, trace_w):
        os.close(fd)
    try:
        written, problem = _copy_from_child(data_r, err_r, trace_r, out)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    finally:
        for fd in (data_r, err_r, trace_r):
            with contextlib.suppress(OSError):
                os.close(fd)
    _, status = os.waitpid(pid, 0)
    if problem or os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeFailure(f"export failed: {problem or 'the exporting process died'}",
                             "`explain on` shows each step; a container that stops meanwhile can be exported again")
    return written


def _child(prepare: Callable[[], str], data_w: int, err_w: int, trace_w: int) -> NoReturn:
    code = 0
    sys.path[:] = []  # once in the container's mounts, an import would run its files: none may
    try:
        trace.forward_to(trace_w)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)  # the shell died: stop reading
        sc.prctl(sc.PR_SET_DUMPABLE, 0)  # no ptrace or /proc/<us>/mem from the container
        root = prepare()
        trace.step(f"chroot({root!r}); tar -c .  # written to a pipe the shell copies")
        os.chroot(root)
        os.chdir("/")
        with os.fdopen(data_w, "wb", buffering=PIPE_CHUNK) as f:
            write_tree_tar(f)
    except BaseException as e:  # noqa: BLE001 - report anything to the parent
        with contextlib.suppress(OSError):
            os.write(err_w, reason(e).encode(errors="replace")[:1000])
        code = 1
    os._exit(code)


def _copy_from_child(data_r: int, err_r: int, trace_r: int, out: IO[bytes]) -> tuple[int, str]:
    written, problem, trace_buf = 0, b"", b""
    open_fds = [data_r, err_r, trace_r]
    while open_fds:
        ready, _, _ = select.select(open_fds, [], [])
        for fd in ready:
            chunk = os.read(fd, PIPE_CHUNK)
            if not chunk:
                open_fds.remove(fd)
            elif fd == data_r:
                out.write(chunk)
                written += len(chunk)
            elif fd == trace_r:
                trace_buf = trace.replay(trace_buf + chunk)
            else:
                problem += chunk
    return written, problem.decode(errors="replace")


def warm_up() -> None:
    """Load, before the child chroots, every module and codec writing a tar can need."""
    info = tarfile.TarInfo("warm-up/\u00e9\udcff")
    info.pax_headers["SCHILY.xattr.security.capability"] = "\x01"
    info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def write_tree_tar(out: IO[bytes]) -> None:
    """The tree at "/" (the chroot) as a tar, sorted, each directory before its contents.

    TarInfo is filled from lstat by hand: tarfile.gettarinfo would look user and group
    names up, and in a chroot glibc's NSS would load the container's libraries.
    """
    hardlinks: dict[tuple[int, int], str] = {}
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for rel, st in _walk():
            info = tarinfo(rel, st)
            if info is None:
                continue  # a socket: nothing a tar can hold
            key = (st.st_dev, st.st_ino)
            if info.isreg() and st.st_nlink > 1:
                if key in hardlinks:
                    info.type, info.linkname, info.size = tarfile.LNKTYPE, hardlinks[key], 0
                    tar.addfile(info)
                    continue
                hardlinks[key] = rel
            if info.isreg():
                add_file(tar, info, rel)
            else:
                tar.addfile(info)


def _walk(rel: str = "") -> Iterator[tuple[str, os.stat_result]]:
    try:
        names = sorted(os.listdir("/" + rel))
    except OSError:
        return  # a running container removed it meanwhile
    for name in names:
        path = f"{rel}/{name}" if rel else name
        try:
            st = os.lstat("/" + path)
        except FileNotFoundError:
            continue
        yield path, st
        if stat.S_ISDIR(st.st_mode):
            yield from _walk(path)


def tarinfo(rel: str, st: os.stat_result, path: str | None = None) -> tarfile.TarInfo | None:
    """The entry ``rel`` for the file at ``path`` (default "/" + rel, in the chroot), from its lstat."""
    path = "/" + rel if path is None else path
    info = tarfile.TarInfo(rel)
    info.mode, info.uid, info.gid = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
    info.mtime, info.uname, info.gname = int(st.st_mtime), "", ""
    mode = st.st_mode
    if stat.S_ISREG(mode):
        info.size = st.st_size
    elif stat.S_ISDIR(mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(mode):
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    elif stat.S_ISFIFO(mode):
        info.type = tarfile.FIFOTYPE
    else:
        return None
    for name in KEPT_XATTRS:
        with contextlib.suppress(OSError):
            value = os.getxattr(path, name, follow_symlinks=False)
            info.pax_headers[f"SCHILY.xattr.{name}"] = value.decode("latin-1")
    return info


def add_file(tar: tarfile.TarFile, info: tarfile.TarInfo, rel: str, path: str | None = None) -> bool:
    """A running container may grow or shrink a file while it is read: exactly
    info.size bytes go in (cut, or padded with zeros), so the tar stays well-formed.
    False: it was gone (or replaced by a symlink) when we opened it, and nothing went in."""
    try:
        fd = os.open("/" + rel if path is None else path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())  # the file we read, which may not be the one lstat saw (swapped meanwhile)
        if not stat.S_ISREG(st.st_mode):
            return False
        info.size = st.st_size
        tar.addfile(info, _Exactly(f, info.size))
    return True


class _Exactly:
    def __init__(self, f: IO[bytes], size: int) -> None:
        self.f, self.left = f, size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = self.f.read(n) if n else b""
        if len(data) < n:
            data += b"\0" * (n - len(data))
        self.left -= len(data)
        return data


# -- import -----------------------------------------------------------------------------------------


@record
class ImportOptions:
    ref: str | None = None
    message: str = ""
    changes: tuple[str, ...] = ()
    source_label: str = "-"  # the FILE as given, for the history comment


def import_rootfs(store: Store, source: Path | IO[bytes], opts: ImportOptions) -> Image:
    """docker import: a flat rootfs tar (plain, gzip, bzip2, xz) becomes a one-layer image."""
    with contextlib.ExitStack() as stack:
        f = stack.enter_context(open(source, "rb")) if isinstance(source, Path) else source
        digest, size = _ingest_tar(store, f)
    layer = store.layer_from_blob(digest, size, None, unpack=False)
    image = store.write_image(_import_config(opts), [layer], opts.ref)
    events.emit(store.root.path, "image", "import", image.id, name=image.id)
    return image


def _ingest_tar(store: Store, source: IO[bytes]) -> tuple[str, int]:
    writer = store.new_blob("import")
    try:
        head, chunks = with_head(source)
        for data in decompressed(chunks, compression_of(head), "the tar"):
            writer.write(data)
        writer.file.flush()
        _check_tar(Path(writer.tmp))
        trace.step(f"sha256sum layer.tar → blobs/sha256/  ({writer.size} bytes)")
        return writer.commit()
    except BaseException:
        writer.discard()
        raise


def _check_tar(path: Path) -> None:
    """Read every header: a file that is not a tar fails here, not at `run`."""
    try:
        with tarfile.open(path, mode="r:") as tar:
            count = sum(1 for _ in tar)
    except (tarfile.TarError, EOFError) as e:
        raise RuntimeFailure(f"not a tar archive ({reason(e)})",
                             "import reads a flat rootfs tar, like `export` or `tar -C rootfs -c .` writes") from None
    if count == 0:
        raise UsageError("the tar is empty", "import reads a flat rootfs tar, like `export` writes")
    from cshell.engine.image.archive import check_layer

    check_layer(path)  # what `run` would refuse to unpack is refused now ('..', outside hard links, bounds)


def _import_config(opts: ImportOptions) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for change in opts.changes:
        instruction, _, value = change.strip().partition(" ")
        imageconfig.apply(settings, instruction, value)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    machine = os.uname().machine
    return {
        "architecture": ARCH.get(machine, machine), "os": "linux", "created": stamp,
        "config": settings,
        "history": [{"created": stamp, "comment": opts.message or f"Imported from {opts.source_label}"}],
    }
