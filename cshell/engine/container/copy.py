"""docker cp: files and directories between a container and the host, both ways, as a tar stream.

The container's side of a copy is done by a forked child that sees only the
container's files, never by following container paths from the host:

* running (or paused) container: the child setns(2)es into its mount namespace,
  whose root is the container's root with its volumes and /etc/hosts;
* stopped container: the child mounts its overlay (read-write, over its rw
  layer) and its volumes in a private mount namespace and chroots there.

Every container path is then resolved by the kernel inside the container's
root: a symlink to / means the container's /, ".." stops at its root, and a
container that swaps a directory for a symlink while the copy runs
(CVE-2018-15664) only sends us to another of its own files. The child reads
no user names (NSS would load the container's libraries) and imports nothing.

Docker's rules for the two paths (docker cp's documentation, go-archive's
CopyInfoDestinationPath and PrepareArchiveCopy): SRC ending in "/." copies a
directory's contents; a missing DEST is created (as the file, or as the copy of
the directory); an existing DEST directory receives SRC under its own name; a
DEST ending in "/" must be a directory. Without -a, files written into the
container belong to its root (0:0) and files written on the host to the user
running cp; -a keeps the owners of the source.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import stat
import sys
import tarfile
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, NoReturn

from cshell.engine import trace
from cshell.engine.container import rootfs
from cshell.engine.container.export import add_file, tarinfo, warm_up
from cshell.engine.kernel import namespaces
from cshell.engine.kernel import syscalls as sc
from cshell.engine.state import file_lock
from cshell.errors import Conflict, CShellError, NotFound, RuntimeFailure, UsageError, reason

if TYPE_CHECKING:
    from cshell.engine.container.containers import Container

CHUNK = 1 << 16
ERRORS: dict[str, type[CShellError]] = {cls.__name__: cls for cls in (NotFound, UsageError, Conflict, RuntimeFailure)}
Owner = tuple[int, int] | None  # who the written files belong to; None: the tar's owners (-a)


def split_arg(arg: str) -> tuple[str, str]:
    """docker's splitCpArg: ("CTR", "PATH") for CTR:PATH, ("", arg) for a local path (absolute,
    no colon, or starting with "." like ./a:b)."""
    if arg.startswith("/"):
        return "", arg
    ctr, colon, path = arg.partition(":")
    if not colon or ctr.startswith("."):
        return "", arg
    return ctr, path


# -- the two directions ----------------------------------------------------------------------


def copy_from(c: Container, path: str, dest: str | IO[bytes], archive: bool = False, follow: bool = False) -> None:
    """CTR:PATH to a host path, or to a binary stream as a tar (docker cp CTR:PATH -)."""
    where = f"{c.name}:{path}"
    if isinstance(dest, str):
        dest = _host_path(dest)
        _check_output_path(dest)
    owner = None if archive else (os.getuid(), os.getgid())

    def receive(data: IO[bytes]) -> None:
        header = data.readline()
        if not header:
            return  # the child failed before it found the source: its error says why
        if not isinstance(dest, str):
            while chunk := data.read(CHUNK):
                dest.write(chunk)
            return
        source = json.loads(header)
        directory, rename = place(dest, source["isdir"], source["name"], what=dest)
        trace.step(f"tar -x -C {directory}  # the stream the container's side wrote" +
                   (f", {source['name']} renamed {rename[1]}" if rename else ""))
        extract(data, directory, rename, owner, follow_dirs=False)

    _with_child(c, lambda fd: _send_inside(fd, path, follow, where), receive, child_writes=True)


def copy_to(c: Container, source: str | IO[bytes], path: str, archive: bool = False, follow: bool = False) -> None:
    """A host path, or a tar stream (docker cp - CTR:PATH), to CTR:PATH."""
    where = f"{c.name}:{path}"
    if isinstance(source, str):
        src, name, isdir = resolve_source(_host_path(source), follow, where=source)
        header = {"isdir": isdir, "name": name, "raw": False}
    else:
        header = {"isdir": True, "name": ".", "raw": True}
    owner = None if archive else (0, 0)  # docker: the container's root, unless -a

    def send(data: IO[bytes]) -> None:
        data.write(json.dumps(header).encode() + b"\n")
        if isinstance(source, str):
            write_tar(data, src, name)
        else:
            while chunk := source.read(CHUNK):
                data.write(chunk)

    if c.config.get("read_only"):
        raise Conflict(f"container {c.name}'s root filesystem is read-only (--read-only)",
                       "copy into one of its volumes or a --tmpfs instead")
    _with_child(c, lambda fd: _receive_inside(fd, path, owner, where), send, child_writes=False)


def _send_inside(fd: int, path: str, follow: bool, where: str) -> None:
    """The container's side of copy_from: a JSON header line, then the tar."""
    src, name, isdir = resolve_source(_container_path(path), follow, where=where, in_container=True)
    trace.step(f"tar -c {src}  # in the container's root, to a pipe the shell reads")
    with os.fdopen(fd, "wb", buffering=CHUNK) as out:
        out.write(json.dumps({"isdir": isdir, "name": name}).encode() + b"\n")
        write_tar(out, src, name)


def _receive_inside(fd: int, path: str, owner: Owner, where: str) -> None:
    """The container's side of copy_to: read the header, find where it goes, extract."""
    with os.fdopen(fd, "rb", buffering=CHUNK) as data:
        header = json.loads(data.readline() or b"{}")
        if not header:
            return  # the shell stopped before it sent anything
        dest = _container_path(path)
        if header["raw"]:
            directory, rename = _stdin_destination(dest, where), None
        else:
            directory, rename = place(dest, header["isdir"], header["name"], what=where)
        trace.step(f"tar -x -C {directory}  # in the container's root: every path resolved inside it")
        extract(data, directory, rename, owner, follow_dirs=True)


# -- docker's path rules -----------------------------------------------------------------------


def _container_path(path: str) -> str:
    """A container path is from its root, relative or not; a trailing "/" or "/." is kept."""
    return "/" + path.lstrip("/") if path else "/"


def _host_path(path: str) -> str:
    """Absolute, keeping a trailing "/" or "/." (they change what cp does)."""
    absolute = os.path.abspath(path)
    if path.endswith(("/.", "/")) or path == ".":
        absolute = absolute.rstrip("/") + ("/." if path.endswith(".") else "/")
    return absolute


def _check_output_path(dest: str) -> None:
    """docker's ValidateOutputPath: the parent of DEST exists; DEST is no device or socket."""
    parent = os.path.dirname(os.path.normpath(dest))
    if not os.path.exists(parent):
        raise NotFound(f'invalid output path: directory "{parent}" does not exist', "make it first, or copy elsewhere")
    if os.path.exists(dest) and not (os.path.isdir(dest) or os.path.isfile(dest)):
        raise UsageError(f'invalid output path: "{dest}" must be a directory or a regular file',
                         "copy to a file or a directory")


def resolve_source(path: str, follow: bool, where: str, in_container: bool = False) -> tuple[str, str, bool]:
    """(the path to read, the name of the tar's top entry, whether it is a directory).

    The last component is not followed (a symlink is copied as a link) unless -L;
    "DIR/." names the directory's contents: the top entry is "."."""
    clean = os.path.normpath(path)
    try:
        st = os.lstat(path)  # a trailing "/" makes the kernel follow a link and demand a directory
    except FileNotFoundError:
        if in_container:
            raise NotFound(f"no such container:path: {where}", "`exec CTR ls DIR` shows what is there") from None
        raise NotFound(f"no such file or directory: {path}", "check the path on this host") from None
    except NotADirectoryError:
        raise UsageError(f"not a directory: {where}", "drop the trailing '/': the source is a file") from None
    contents = path.endswith("/.") or clean == "/"
    name = "." if contents else os.path.basename(clean)
    if path.endswith(("/", "/.")) or (follow and stat.S_ISLNK(st.st_mode)):
        clean = os.path.realpath(clean)  # in the container: resolved inside its root
        st = os.stat(clean)
    return clean, name, stat.S_ISDIR(st.st_mode)


def place(dest: str, src_isdir: bool, src_name: str, what: str) -> tuple[str, tuple[str, str] | None]:
    """go-archive's PrepareArchiveCopy: (the directory to extract into, (old, new) name of the
    top entry or None). DEST's last component is followed when it is a symlink."""
    asserts_dir = dest.endswith(("/", "/."))
    path = os.path.normpath(dest)
    if os.path.islink(path):
        path = os.path.realpath(path)  # the link's target receives the copy
    parent, base = os.path.dirname(path), os.path.basename(path)
    if os.path.isdir(path):
        return path, None
    if os.path.lexists(path):
        if src_isdir:
            raise UsageError(f"cannot copy a directory onto the file {what}", "give a directory (or a new name) as DEST")
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise UsageError(f"{what} must be a directory or a regular file", "choose another DEST")
        return parent, (src_name, base)
    if not os.path.isdir(parent):
        kind = NotFound if not os.path.lexists(parent) else UsageError
        raise kind(f"no such directory: {os.path.dirname(what.rstrip('/')) or what}",
                   "make the directory first: cp copies into an existing one")
    if not src_isdir and asserts_dir:
        raise NotFound(f"no such directory: {what}", "a file can only be copied into a directory that exists")
    return parent, (src_name, base)


def _stdin_destination(dest: str, where: str) -> str:
    """cp - CTR:DIR extracts the tar into DIR, which must exist."""
    path = os.path.realpath(os.path.normpath(dest))
    if not os.path.isdir(path):
        raise UsageError(f'destination "{where}" must be a directory', "a tar from stdin is unpacked into a directory")
    return path


# -- tar out: a file or a tree under one top name -------------------------------------------------


def write_tar(out: IO[bytes], path: str, top: str) -> None:
    """PATH as a tar whose entries start with TOP ("." for a directory's contents)."""
    hardlinks: dict[tuple[int, int], str] = {}
    written = 0
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for name, real, st in _walk(path, top):
            info = tarinfo(name, st, real)
            if info is None:
                continue  # a socket: nothing a tar can hold
            if info.isreg() and st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                if key in hardlinks:
                    info.type, info.linkname, info.size = tarfile.LNKTYPE, hardlinks[key], 0
                    tar.addfile(info)
                    continue
                hardlinks[key] = name
            if info.isreg():
                written += add_file(tar, info, name, real)
            else:
                tar.addfile(info)
                written += 1
    if not written:  # a running container removed (or swapped) it since we looked
        raise NotFound(f"no such file or directory: {path} (it was just removed)", "try again")


def _walk(path: str, name: str) -> Iterator[tuple[str, str, os.stat_result]]:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return  # removed meanwhile
    yield name, path, st
    if not stat.S_ISDIR(st.st_mode):
        return
    try:
        children = sorted(os.listdir(path))
    except OSError:
        return
    for child in children:
        yield from _walk(f"{path.rstrip('/')}/{child}", f"{name}/{child}")


# -- tar in: never outside the destination ---------------------------------------------------------


def _parts(name: str, rename: tuple[str, str] | None) -> list[str]:
    """An entry's path components under the destination, the top one renamed; refused if it
    would climb out (".." or absolute names)."""
    raw = name.lstrip("/").split("/")
    if rename is not None and raw[0] == rename[0]:
        raw[0] = rename[1]
    parts = [p for p in raw if p not in ("", ".")]
    if ".." in parts:
        raise UsageError(f"refusing the tar entry {name!r}: it climbs out of the destination", "make the tar without '..'")
    return parts


class _Tree:
    """Directories under the destination, opened one component at a time (openat-style)."""

    def __init__(self, root: str, follow_dirs: bool) -> None:
        self.root = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        # On the host, a symlink the container's files put there is never gone through.
        self.flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | (0 if follow_dirs else os.O_NOFOLLOW)

    def open_dir(self, parts: list[str], make: bool = True) -> int:
        fd = os.dup(self.root)
        for part in parts:
            try:
                try:
                    nxt = os.open(part, self.flags, dir_fd=fd)
                except FileNotFoundError:
                    if not make:
                        raise
                    os.mkdir(part, 0o755, dir_fd=fd)
                    nxt = os.open(part, self.flags, dir_fd=fd)
            except OSError as e:
                os.close(fd)
                if e.errno in (errno.ELOOP, errno.ENOTDIR):  # a symlink or a file where a directory should be
                    raise UsageError(f"refusing to write through {'/'.join(parts)}: not a directory",
                                     "remove what is in the way at the destination") from None
                raise
            os.close(fd)
            fd = nxt
        return fd

    def close(self) -> None:
        os.close(self.root)


def extract(data: IO[bytes], dest: str, rename: tuple[str, str] | None, owner: Owner, follow_dirs: bool) -> None:
    """Unpack the tar stream into DEST: each entry created relative to its opened parent."""
    tree = _Tree(dest, follow_dirs)
    dirs: list[tuple[list[str], tarfile.TarInfo]] = []
    try:
        with tarfile.open(fileobj=data, mode="r|") as tar:
            for member in tar:
                parts = _parts(member.name, rename)
                if member.isdir():
                    if parts:
                        _make_entry(tree, parts, member, tar, owner, rename)
                    dirs.append((parts, member))
                elif parts:
                    _make_entry(tree, parts, member, tar, owner, rename)
        for parts, member in reversed(dirs):  # after their contents: a read-only directory was still writable
            fd = tree.open_dir(parts, make=False)
            try:
                _set_attrs(fd, member, owner)
            finally:
                os.close(fd)
    except tarfile.TarError as e:
        raise UsageError(f"not a valid tar stream: {e}", "give a tar made with `tar -c`") from None
    finally:
        tree.close()


def _make_entry(tree: _Tree, parts: list[str], m: tarfile.TarInfo, tar: tarfile.TarFile, owner: Owner,
                rename: tuple[str, str] | None) -> None:
    parent = tree.open_dir(parts[:-1])
    name = parts[-1]
    try:
        _clear_way(parent, name, m.isdir())
        if m.isdir():
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o700, dir_fd=parent)
        elif m.isreg():
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=parent)
            try:
                src = tar.extractfile(m)
                while src is not None and (chunk := src.read(CHUNK)):
                    os.write(fd, chunk)
                _set_attrs(fd, m, owner)
            finally:
                os.close(fd)
        elif m.issym():
            os.symlink(m.linkname, name, dir_fd=parent)
            _set_link_attrs(parent, name, m, owner)
        elif m.islnk():
            target = _parts(m.linkname, rename)
            if not target:
                raise UsageError(f"refusing the hard link {m.name!r}: it names no file", "make the tar again")
            src_dir = tree.open_dir(target[:-1], make=False)
            try:
                os.link(target[-1], name, src_dir_fd=src_dir, dst_dir_fd=parent, follow_symlinks=False)
            finally:
                os.close(src_dir)
        elif m.ischr() or m.isblk() or m.isfifo():
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK if m.isblk() else stat.S_IFIFO
            os.mknod(name, kind | 0o600, os.makedev(m.devmajor, m.devminor), dir_fd=parent)
            _set_link_attrs(parent, name, m, owner)
    finally:
        os.close(parent)


def _clear_way(parent: int, name: str, is_dir: bool) -> None:
    """What is at NAME goes, unless both are directories (then they merge, as docker's untar)."""
    try:
        st = os.lstat(name, dir_fd=parent)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        if not is_dir:
            raise UsageError(f"cannot overwrite the directory {name} with a file", "remove it first, or copy elsewhere")
        return
    os.unlink(name, dir_fd=parent)


def _owner_of(m: tarfile.TarInfo, owner: Owner) -> tuple[int, int]:
    return (m.uid, m.gid) if owner is None else owner


def _set_attrs(fd: int, m: tarfile.TarInfo, owner: Owner) -> None:
    os.fchown(fd, *_owner_of(m, owner))  # first: chown clears the setuid bit chmod sets
    os.fchmod(fd, m.mode & 0o7777)
    os.utime(fd, (m.mtime, m.mtime))


def _set_link_attrs(parent: int, name: str, m: tarfile.TarInfo, owner: Owner) -> None:
    os.chown(name, *_owner_of(m, owner), dir_fd=parent, follow_symlinks=False)
    if not m.issym():
        os.chmod(name, m.mode & 0o7777, dir_fd=parent)
    with contextlib.suppress(OSError):
        os.utime(name, (m.mtime, m.mtime), dir_fd=parent, follow_symlinks=False)


# -- the child in the container's root ------------------------------------------------------------


def _enter(c: Container) -> Callable[[], None]:
    """How the child gets into the container's files (see the module's docstring)."""
    if c.alive():
        pid = c.pid

        def running() -> None:
            trace.step(f"# {c.name} is running: the copy is made from inside its mount namespace")
            namespaces.enter(namespaces.open_for_join(pid, ["mnt"]))  # root and cwd: the container's /
            os.chdir("/")
        return running
    plan = c.rootfs_plan()

    def stopped() -> None:
        trace.step("unshare(CLONE_NEWNS)  # the mounts below die with this child")
        sc.unshare(sc.CLONE_NEWNS)
        rootfs.make_mounts_private()
        rootfs.mount_overlay(plan)
        if plan.mounts:
            from cshell.engine.kernel.mounts import mount_all

            mount_all(plan.merged, [{**m, "nodev": True} for m in plan.mounts], plan.state_dir)
        rootfs.bind_etc_files(plan)
        trace.step(f"chroot({plan.merged!r})")
        os.chroot(plan.merged)
        os.chdir("/")
    return stopped


def _with_child(c: Container, work: Callable[[int], None], ours: Callable[[IO[bytes]], None],
                child_writes: bool) -> None:
    """Fork a child that enters the container and runs work(fd) on one end of a pipe while
    we run ours(file) on the other; the child's error, if any, is raised here."""
    from cshell.engine.container.containers import require_root

    require_root()
    warm_up()
    if c.alive():
        _fork_and_copy(_enter(c), work, ours, child_writes)
        return
    with file_lock(c.dir / ".start.lock"):  # nobody starts it (mounting the same overlay) meanwhile
        c.state = c.reload_state()
        _fork_and_copy(_enter(c), work, ours, child_writes)


def _fork_and_copy(enter: Callable[[], None], work: Callable[[int], None], ours: Callable[[IO[bytes]], None],
                   child_writes: bool) -> None:
    data_r, data_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    trace_r, trace_w = os.pipe2(os.O_CLOEXEC)
    child_end, our_end = (data_w, data_r) if child_writes else (data_r, data_w)
    pid = os.fork()
    if pid == 0:
        for fd in (our_end, err_r, trace_r):
            os.close(fd)
        _child(enter, work, child_end, err_w, trace_w)
    for fd in (child_end, err_w, trace_w):
        os.close(fd)
    try:
        # suppress outermost: the flush at close may find the child gone too; its error says why
        with contextlib.suppress(BrokenPipeError), os.fdopen(our_end, "rb" if child_writes else "wb",
                                                             buffering=CHUNK) as f:
            ours(f)
    except BaseException as ours_failed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        if isinstance(ours_failed, CShellError):  # a stream cut short: the child's error says why
            _raise_reported(_drain(err_r, trace_r))
        else:
            os.close(err_r)
            os.close(trace_r)
        raise
    problem = _drain(err_r, trace_r)
    _, status = os.waitpid(pid, 0)
    _raise_reported(problem)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeFailure("cp failed: the copying process died", "`explain on` shows each step")


def _raise_reported(problem: str) -> None:
    """The child's error line (KIND<TAB>MESSAGE<TAB>HINT) as the error it was, if it sent one."""
    if problem:
        kind, _, rest = problem.partition("\t")
        message, _, hint = rest.partition("\t")
        raise ERRORS.get(kind, RuntimeFailure)(message, hint or "`explain on` shows each step")


def _drain(err_r: int, trace_r: int) -> str:
    """The child's explain events (shown now) and its error line, once it has finished."""
    with os.fdopen(trace_r, "rb") as f:
        trace.replay(f.read())
    with os.fdopen(err_r, "rb") as f:
        return f.read().decode(errors="replace")


def _child(enter: Callable[[], None], work: Callable[[int], None], fd: int, err_w: int, trace_w: int) -> NoReturn:
    code = 0
    sys.path[:] = []  # once in the container's files, an import would run them: none may
    try:
        trace.forward_to(trace_w)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # the shell stopped reading: stop too
        sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)
        sc.prctl(sc.PR_SET_DUMPABLE, 0)  # no ptrace or /proc/<us>/mem from the container
        enter()
        work(fd)
    except CShellError as e:
        _report(err_w, f"{type(e).__name__}\t{e.message}\t{e.hint}")
        code = 1
    except BaseException as e:  # noqa: BLE001 - report anything to the parent
        _report(err_w, f"RuntimeFailure\tcp failed: {reason(e)}\t`explain on` shows each step")
        code = 1
    os._exit(code)


def _report(fd: int, text: str) -> None:
    with contextlib.suppress(OSError):
        os.write(fd, text.replace("\n", " ").encode(errors="replace")[:2000])
