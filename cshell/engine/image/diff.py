"""What a container changed: its overlay upper directory read as a layer.

overlayfs records a deletion as a 0:0 character device (a whiteout) and a
directory replaced wholesale with the ``trusted.overlay.opaque`` xattr. An
OCI layer says the same with names: ``.wh.NAME`` and ``.wh..wh..opq``. So
`commit` walks the upper dir and writes a tar, turning the one form into the
other (go-archive's ConvertWrite), and `layer diff` reads the same walk as
docker diff's A/C/D list.
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from cshell.engine.image.archive import OPAQUE, OPAQUE_XATTR, WHITEOUT_PREFIX
from cshell.errors import RuntimeFailure
from cshell.record import record

KEPT_XATTRS = ("security.capability",)  # file capabilities travel with the layer (ping, ...)


@record(frozen=True)
class Entry:
    """One path in an upper directory, relative to it (``etc/hosts``)."""

    path: str
    kind: str  # "whiteout", "opaque" (a directory hiding what lies below), or "file"


@record
class Walked:
    """An entry met by walk_upper, with the open directory it lies in (valid until the next)."""

    entry: Entry
    st: os.stat_result
    dir_fd: int
    name: str


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(dir_fd: int) -> bool:
    try:
        return os.getxattr(dir_fd, OPAQUE_XATTR) == b"y"
    except OSError:
        return False


DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_DEPTH = 512  # a tree deeper than this is refused, not walked (no recursion, no fd exhaustion)


def walk_upper(upper: Path, exclude: frozenset[str] = frozenset()) -> Iterator[Walked]:
    """Every path in the upper dir, sorted, each directory before its contents.

    A running container can swap one of its directories for a symlink to a host
    path while we walk (CVE-2018-15664's race). So nothing here is looked up by
    path: each directory is opened relative to its parent's descriptor with
    O_NOFOLLOW, and each yield carries the descriptor to open the entry by.
    """
    root_fd = os.open(upper, DIR_FLAGS)
    stack: list[tuple[int, str, Iterator[str]]] = [(root_fd, "", iter(sorted(os.listdir(root_fd))))]
    try:
        while stack:
            fd, rel, names = stack[-1]
            name = next(names, None)
            if name is None:
                os.close(stack.pop()[0])
                continue
            path = f"{rel}/{name}" if rel else name
            if path in exclude:
                continue
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if is_whiteout(st):
                yield Walked(Entry(path, "whiteout"), st, fd, name)
            elif stat.S_ISDIR(st.st_mode):
                if len(stack) > MAX_DEPTH:
                    raise RuntimeFailure(f"/{path} is nested more than {MAX_DEPTH} directories deep",
                                         "flatten that tree inside the container first")
                sub = os.open(name, DIR_FLAGS, dir_fd=fd)
                yield Walked(Entry(path, "opaque" if is_opaque(sub) else "file"), st, fd, name)
                stack.append((sub, path, iter(sorted(os.listdir(sub)))))
            else:
                yield Walked(Entry(path, "file"), st, fd, name)
    finally:
        for fd, _, _ in stack:
            os.close(fd)


def write_layer_tar(upper: Path, out: IO[bytes], exclude: frozenset[str] = frozenset()) -> None:
    """The upper dir as an OCI layer tar (whiteouts as .wh. files), written to ``out``."""
    hardlinks: dict[tuple[int, int], str] = {}
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT, copybufsize=1 << 20) as tar:
        for w in walk_upper(upper, exclude):
            entry, st = w.entry, w.st
            parent, _, name = entry.path.rpartition("/")
            if entry.kind == "whiteout":  # Docker's header for it: mode 0600, the node's owner
                tar.addfile(_marker(f"{parent}/{WHITEOUT_PREFIX}{name}" if parent else f"{WHITEOUT_PREFIX}{name}",
                                    0o600, st))
                continue
            info = _tarinfo(entry.path, w, st)
            key = (st.st_dev, st.st_ino)
            if info.isreg() and st.st_nlink > 1:
                if key in hardlinks:  # a second name for a file already in this layer
                    info.type, info.linkname, info.size = tarfile.LNKTYPE, hardlinks[key], 0
                    tar.addfile(info)
                    continue
                hardlinks[key] = entry.path
            if info.isreg():
                fd = os.open(w.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=w.dir_fd)
                with os.fdopen(fd, "rb") as f:
                    _keep_xattrs(info, f.fileno())
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
            if entry.kind == "opaque":  # Docker's header for it: the directory's mode and owner
                tar.addfile(_marker(f"{entry.path}/{OPAQUE}", stat.S_IMODE(st.st_mode), st))


def _tarinfo(name: str, w: Walked, st: os.stat_result) -> tarfile.TarInfo:
    """From the lstat we already have: no second stat, no passwd lookups per file."""
    info = tarfile.TarInfo(name)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.mtime = int(st.st_mtime)  # whole seconds: no PAX header per file for a fraction
    if stat.S_ISREG(st.st_mode):
        info.type, info.size = tarfile.REGTYPE, st.st_size
    elif stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(st.st_mode):
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink(w.name, dir_fd=w.dir_fd)
    elif stat.S_ISFIFO(st.st_mode):
        info.type = tarfile.FIFOTYPE
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    return info


def _marker(name: str, mode: int, st: os.stat_result) -> tarfile.TarInfo:
    """An empty regular file that stands for a whiteout, as Docker's overlay2 writes it: the same
    headers make the same layer digest for the same change (mtime aside)."""
    info = tarfile.TarInfo(name)
    info.mode = mode
    info.uid, info.gid = st.st_uid, st.st_gid
    return info


def _keep_xattrs(info: tarfile.TarInfo, fd: int) -> None:
    for name in KEPT_XATTRS:
        try:
            value = os.getxattr(fd, name)
        except OSError:
            continue
        # tarfile writes a value that is not UTF-8 back as the same raw bytes (hdrcharset=BINARY)
        info.pax_headers[f"SCHILY.xattr.{name}"] = value.decode("utf-8", "surrogateescape")


@record(frozen=True)
class Change:
    kind: str  # A (added), C (changed), D (deleted): docker diff's letters
    path: str  # absolute inside the container


def changes(upper: Path, lowers: list[Path], exclude: frozenset[str] = frozenset()) -> list[Change]:
    """docker diff: what the rw layer adds, changes and deletes relative to the image."""
    out = []
    for w in walk_upper(upper, exclude):
        if w.entry.kind == "whiteout":
            out.append(Change("D", "/" + w.entry.path))
            continue
        in_lower = any(exists_in(lower, w.entry.path) for lower in lowers)
        out.append(Change("C" if in_lower else "A", "/" + w.entry.path))
    return out


def exists_in(layer: Path, path: str) -> bool:
    """Does ``path`` exist in this layer directory? A symlinked parent is never followed
    (on the host it would point anywhere); in the merged view it is not a directory."""
    parts = path.split("/")
    try:
        fd = os.open(layer, DIR_FLAGS)
    except OSError:
        return False
    try:
        for part in parts[:-1]:
            try:
                sub = os.open(part, DIR_FLAGS, dir_fd=fd)
            except OSError:
                return False
            os.close(fd)
            fd = sub
        try:
            os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
        except OSError:
            return False
        return True
    finally:
        os.close(fd)
