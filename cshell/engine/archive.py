"""Layer tarballs in and out.

Unpacking follows moby's overlay2 model: each layer goes into its own empty
``diff/`` directory, in a forked child that has chroot'ed into that directory,
so no entry name, symlink or hardlink can write outside it even if this code
had a bug. Members are handled one by one (never ``tarfile.extractall``):
absolute names are made relative, ``..`` is refused, device nodes are skipped,
OCI whiteouts become overlay whiteouts (a 0:0 character device, or the
``trusted.overlay.opaque`` xattr for ``.wh..wh..opq``).

``check_layer`` applies the same rules to a tar's headers alone, before a
layer enters the store (load, pull, import): a hostile layer is refused
there, not at the first ``run``. Layers are bounded too: the files of one
layer may hold at most ``CSHELL_MAX_LAYER_BYTES`` (32 GiB by default), and
a compressed stream that expands more than ``CSHELL_MAX_LAYER_RATIO`` times
(1000 by default, past its first 128 MiB) is taken for a decompression bomb.
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
DEFAULT_MAX_LAYER_BYTES = 32 << 30  # bigger than any real layer (CUDA's are ~10 GiB), smaller than a disk
DEFAULT_MAX_RATIO = 1000  # gzip cannot pass ~1030:1 even on zeros; bzip2, xz and zstd can reach millions
RATIO_FLOOR = 128 << 20  # below this much output, any ratio is fine (a small layer of zeros is no bomb)
MAX_DEPTH = 512  # path components in one name (diff.py walks no deeper either)
NAME_MAX, PATH_MAX = 255, 4095  # bytes: what open(2) takes
MAX_ID = (1 << 32) - 2  # (uid_t)-1 means "leave unchanged" to chown(2): never an owner
LIMIT_HINT = ("a layer this big is almost certainly a decompression bomb; if it is real, raise the bound: "
              "CSHELL_MAX_LAYER_BYTES=BYTES (and CSHELL_MAX_LAYER_RATIO=N); nothing was stored")


class TooBig(RuntimeFailure):
    """A layer (or a compressed stream) past the configured bounds."""


def _env_int(name: str, default: int) -> int:
    try:
        value = int(os.environ.get(name, "") or default)
    except ValueError:
        return default
    return value if value > 0 else default


def max_layer_bytes() -> int:
    return _env_int("CSHELL_MAX_LAYER_BYTES", DEFAULT_MAX_LAYER_BYTES)


def max_ratio() -> int:
    return _env_int("CSHELL_MAX_LAYER_RATIO", DEFAULT_MAX_RATIO)


def human(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.4g} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


class Bound:
    """Counts what a decompressor gives for what it was fed; raises TooBig past the bounds."""

    def __init__(self, what: str) -> None:
        self.what, self.limit, self.ratio = what, max_layer_bytes(), max_ratio()
        self.fed = self.out = 0

    def add(self, fed: int, out: int) -> None:
        self.fed += fed
        self.out += out
        if self.out > self.limit:
            raise TooBig(f"{self.what} expands past {human(self.limit)} (CSHELL_MAX_LAYER_BYTES); "
                         "refused as a decompression bomb", LIMIT_HINT)
        if self.out > RATIO_FLOOR and self.out > self.ratio * max(self.fed, 1):
            raise TooBig(f"{self.what} expands {self.out // max(self.fed, 1)} times ({human(self.fed)} to more "
                         f"than {human(self.out)}), past CSHELL_MAX_LAYER_RATIO={self.ratio}; "
                         "refused as a decompression bomb", LIMIT_HINT)


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
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # child: confine, unpack, report
        os.close(read_end)
        code = 0
        try:
            _die_with(parent)
            _preload_decompressors()
            os.chroot(dest)
            os.chdir("/")
            sys.path[:] = []  # inside the layer, an import would run the layer's own code
            seen: dict[str, str] = {}
            total = [0]
            with os.fdopen(src_fd, "rb") as f, tarfile.open(fileobj=f, mode="r|*") as tar:
                for member in tar:
                    _check_member(member, seen, total)
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


def _die_with(parent: int) -> None:
    """A killed shell takes its unpacker along (instead of leaving it writing for minutes
    into a directory that reconcile is about to remove)."""
    import signal

    from cshell.engine import syscalls as sc

    sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the prctl: the signal will never come
        os._exit(1)


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


def _layer_name(name: str) -> str:
    """_safe_name, plus what only a layer forbids: a whiteout name as a directory, depth."""
    clean = _safe_name(name)
    parts = clean.split("/")
    if any(part.startswith(WHITEOUT_PREFIX) for part in parts[:-1]):
        raise ValueError(f"entry {name[:200]!r} has a whiteout name ({WHITEOUT_PREFIX}...) as a directory")
    if len(parts) > MAX_DEPTH:
        raise ValueError(f"entry {name[:60]!r}... is nested {len(parts)} directories deep (at most {MAX_DEPTH})")
    if len(clean.encode(errors="surrogateescape")) > PATH_MAX or \
            any(len(part.encode(errors="surrogateescape")) > NAME_MAX for part in parts):
        raise ValueError(f"entry {name[:60]!r}... has a name longer than Linux allows "
                         f"({NAME_MAX} bytes a component, {PATH_MAX} a path)")
    return clean


def _check_member(m: tarfile.TarInfo, seen: dict[str, str], total: list[int], strict: bool = False) -> None:
    """What _extract_member would refuse, from the header alone (ValueError).

    ``strict`` (a layer entering the store) also refuses an entry written through a
    symlink made earlier in the same layer: a tar of a real tree never does that,
    and moby refuses it when the link leads out.
    """
    name = _layer_name(m.name)
    if not name:
        return
    if strict:
        parts = name.split("/")
        for i in range(1, len(parts)):
            if seen.get(prefix := "/".join(parts[:i])) == "symlink":
                raise ValueError(f"entry {name[:200]!r} is written through the symlink {prefix!r} "
                                 "made earlier in this layer")
    base = posixpath.basename(name)
    if base.startswith(WHITEOUT_PREFIX) and base != OPAQUE:
        hidden = base[len(WHITEOUT_PREFIX):]
        if hidden in ("", ".", "..") or hidden.startswith(WHITEOUT_PREFIX):
            raise ValueError(f"invalid whiteout {m.name!r}")
        return
    if not (0 <= m.uid <= MAX_ID and 0 <= m.gid <= MAX_ID):
        raise ValueError(f"entry {name[:200]!r} has owner {m.uid}:{m.gid}, outside 0..{MAX_ID}")
    if m.islnk():
        target = _safe_name(m.linkname)
        if seen.get(target) not in ("file", "symlink"):
            raise ValueError(f"hard link {name[:200]!r} -> {m.linkname[:200]!r}: the target is not a file "
                             "earlier in this layer")
    if m.isreg():
        total[0] += m.size
        if total[0] > max_layer_bytes():
            raise TooBig(f"the files of the layer add up to more than {human(max_layer_bytes())} "
                         "(CSHELL_MAX_LAYER_BYTES)", LIMIT_HINT)
    seen[name] = "dir" if m.isdir() else "symlink" if m.issym() else "file"


def check_layer(blob: Path | str, label: str = "") -> None:
    """Read every header of an uncompressed layer tar; refuse what unpacking would refuse.

    Random access (headers only, data skipped by seeking): a few ms for a big layer.
    """
    seen: dict[str, str] = {}
    total = [0]
    what = f"layer {label}" if label else "the layer"
    try:
        with tarfile.open(blob, mode="r:") as tar:
            while (m := tar.next()) is not None:
                _check_member(m, seen, total, strict=True)
    except TooBig:
        raise
    except (tarfile.TarError, EOFError, ValueError, OverflowError) as e:
        raise RuntimeFailure(f"{what} is refused: {e}"[:1000],
                             "the layer archive is damaged or hostile; nothing was stored") from None


def _extract_member(tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
    name = _layer_name(m.name)
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
