"""Layer tarballs in and out.

Unpacking follows moby's overlay2 model: each layer goes into its own empty
``diff/`` directory, in a forked child that has chroot'ed into that directory,
so no entry name, symlink or hardlink can write outside it even if this code
had a bug. Members are handled one by one (never ``tarfile.extractall``):
absolute names are made relative, ``..`` is refused, device nodes are skipped,
OCI whiteouts become overlay whiteouts (a 0:0 character device, or the
``trusted.overlay.opaque`` xattr for ``.wh..wh..opq``).
"""

from __future__ import annotations

import io
import os
import posixpath
import stat
import sys
import tarfile
from pathlib import Path

from cshell.engine import trace
from cshell.errors import RuntimeFailure

WHITEOUT_PREFIX = ".wh."
OPAQUE = ".wh..wh..opq"
FIXED_MTIME = 0  # reproducible layers: same files, same digest


def tar_directory(src: Path) -> bytes:
    """A deterministic tar of a directory (sorted names, owner root, fixed mtime)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in _walk_sorted(src):
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(src)))
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = FIXED_MTIME
            if info.isfile():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    return buf.getvalue()


def _walk_sorted(root: Path) -> list[Path]:
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = Path(dirpath)
        for name in sorted(dirnames + filenames):
            out.append(base / name)
    return sorted(out, key=lambda p: str(p.relative_to(root)))


def unpack_layer(blob: Path, dest: Path) -> None:
    """Unpack one layer tar into the empty directory ``dest``, confined to it."""
    dest.mkdir(parents=True, exist_ok=False)
    trace.step(f"tar -x -f {blob} -C {dest}  (in a child chroot'ed into {dest})")
    read_end, write_end = os.pipe()
    src_fd = os.open(blob, os.O_RDONLY | os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # child: confine, unpack, report
        os.close(read_end)
        code = 0
        try:
            _preload_decompressors()
            os.chroot(dest)
            os.chdir("/")
            sys.path[:] = []  # inside the layer, an import would run the layer's own code
            with os.fdopen(src_fd, "rb") as f, tarfile.open(fileobj=f, mode="r|*") as tar:
                for member in tar:
                    _extract_member(tar, member)
        except BaseException as e:  # noqa: BLE001 - report anything to the parent
            os.write(write_end, str(e).encode()[:1000])
            code = 1
        os._exit(code)
    os.close(write_end)
    os.close(src_fd)
    with os.fdopen(read_end, "rb") as r:
        problem = r.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if problem or os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeFailure(
            f"cannot unpack layer {blob.name[:12]}: {problem or 'unpacker died'}",
            "the layer archive is damaged or hostile; nothing outside its directory was written",
        )


def _preload_decompressors() -> None:
    """tarfile imports these lazily; do it before the chroot, while imports are ours."""
    import bz2  # noqa: F401
    import gzip  # noqa: F401
    import lzma  # noqa: F401
    import zlib  # noqa: F401


def _safe_name(name: str) -> str:
    clean = posixpath.normpath("/" + name).lstrip("/")
    if clean in ("", ".") or any(part == ".." for part in name.split("/")):
        if clean in ("", "."):
            return ""
        raise ValueError(f"entry {name!r} climbs out of the layer")
    return clean


def _extract_member(tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
    name = _safe_name(m.name)
    if not name:
        return
    parent, base = posixpath.split(name)
    if parent:
        os.makedirs(parent, exist_ok=True)
    if base == OPAQUE:
        os.setxattr(parent or ".", "trusted.overlay.opaque", b"y")
        return
    if base.startswith(WHITEOUT_PREFIX):
        hidden = base[len(WHITEOUT_PREFIX):]
        if hidden in ("", ".", "..") or hidden.startswith(WHITEOUT_PREFIX):
            raise ValueError(f"invalid whiteout {m.name!r}")
        os.mknod(posixpath.join(parent, hidden), stat.S_IFCHR | 0o000, os.makedev(0, 0))
        return
    if m.isdir():
        os.makedirs(name, exist_ok=True)
    else:
        _remove_existing(name)
        if m.isreg():
            with tar.extractfile(m) as src, open(name, "wb") as out:  # type: ignore[union-attr]
                while chunk := src.read(1 << 20):
                    out.write(chunk)
        elif m.issym():
            os.symlink(m.linkname, name)  # stored verbatim; followed only inside a container
        elif m.islnk():
            target = _safe_name(m.linkname)
            os.link(target, name, follow_symlinks=False)
        elif m.isfifo():
            os.mkfifo(name)
        else:
            return  # device nodes from images are never created (see runtime notes 1.8)
    os.lchown(name, m.uid, m.gid)
    if not m.issym():
        os.chmod(name, m.mode & 0o7777)
        _restore_xattrs(name, m)  # after chown, which clears file capabilities
        os.utime(name, (m.mtime, m.mtime))


def _restore_xattrs(name: str, m: tarfile.TarInfo) -> None:
    """File capabilities (ping's cap_net_raw...), as GNU tar and docker store them."""
    value = m.pax_headers.get("SCHILY.xattr.security.capability")
    if value is not None:
        os.setxattr(name, "security.capability", value.encode("utf-8", "surrogateescape"))


def _remove_existing(name: str) -> None:
    try:
        if os.path.isdir(name) and not os.path.islink(name):
            os.rmdir(name)
        else:
            os.unlink(name)
    except FileNotFoundError:
        pass
