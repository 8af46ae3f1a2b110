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
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from cshell.engine.archive import OPAQUE, WHITEOUT_PREFIX

OPAQUE_XATTR = "trusted.overlay.opaque"
KEPT_XATTRS = ("security.capability",)  # file capabilities travel with the layer (ping, ...)


@dataclass(frozen=True)
class Entry:
    """One path in an upper directory, relative to it (``etc/hosts``)."""

    path: str
    kind: str  # "whiteout", "opaque" (a directory hiding what lies below), or "file"


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def walk_upper(upper: Path, exclude: frozenset[str] = frozenset(),
               rel: str = "") -> Iterator[tuple[Entry, os.stat_result]]:
    """Every path in the upper dir, sorted, each directory before its contents."""
    try:
        names = sorted(os.listdir(upper / rel if rel else upper))
    except OSError:
        return
    for name in names:
        path = f"{rel}/{name}" if rel else name
        if path in exclude:
            continue
        st = os.lstat(upper / path)
        if is_whiteout(st):
            yield Entry(path, "whiteout"), st
        elif stat.S_ISDIR(st.st_mode):
            yield Entry(path, "opaque" if is_opaque(upper / path) else "file"), st
            yield from walk_upper(upper, exclude, path)
        else:
            yield Entry(path, "file"), st


def write_layer_tar(upper: Path, out: IO[bytes], exclude: frozenset[str] = frozenset()) -> None:
    """The upper dir as an OCI layer tar (whiteouts as .wh. files), written to ``out``."""
    hardlinks: dict[tuple[int, int], str] = {}
    root = str(upper)
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT, copybufsize=1 << 20) as tar:
        for entry, st in walk_upper(upper, exclude):
            parent, _, name = entry.path.rpartition("/")
            if entry.kind == "whiteout":
                tar.addfile(_marker(f"{parent}/{WHITEOUT_PREFIX}{name}" if parent else f"{WHITEOUT_PREFIX}{name}"))
                continue
            full = f"{root}/{entry.path}"
            info = _tarinfo(entry.path, full, st)
            key = (st.st_dev, st.st_ino)
            if info.isreg() and st.st_nlink > 1:
                if key in hardlinks:  # a second name for a file already in this layer
                    info.type, info.linkname, info.size = tarfile.LNKTYPE, hardlinks[key], 0
                    tar.addfile(info)
                    continue
                hardlinks[key] = entry.path
            if info.isreg():
                with open(full, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
            if entry.kind == "opaque":
                tar.addfile(_marker(f"{entry.path}/{OPAQUE}"))


def _tarinfo(name: str, full: str, st: os.stat_result) -> tarfile.TarInfo:
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
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink(full)
    elif stat.S_ISFIFO(st.st_mode):
        info.type = tarfile.FIFOTYPE
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    _keep_xattrs(info, full)
    return info


def _marker(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = 0o644
    return info


def _keep_xattrs(info: tarfile.TarInfo, path: str) -> None:
    for name in KEPT_XATTRS:
        try:
            value = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
        # tarfile writes a value that is not UTF-8 back as the same raw bytes (hdrcharset=BINARY)
        info.pax_headers[f"SCHILY.xattr.{name}"] = value.decode("utf-8", "surrogateescape")


@dataclass(frozen=True)
class Change:
    kind: str  # A (added), C (changed), D (deleted): docker diff's letters
    path: str  # absolute inside the container


def changes(upper: Path, lowers: list[Path], exclude: frozenset[str] = frozenset()) -> list[Change]:
    """docker diff: what the rw layer adds, changes and deletes relative to the image."""
    out = []
    for entry, _ in walk_upper(upper, exclude):
        if entry.kind == "whiteout":
            out.append(Change("D", "/" + entry.path))
            continue
        in_lower = any(os.path.lexists(lower / entry.path) for lower in lowers)
        out.append(Change("C" if in_lower else "A", "/" + entry.path))
    return out
