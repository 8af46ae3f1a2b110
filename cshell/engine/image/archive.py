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
there, not at the first ``run``. Both follow one model of what the entries
read so far have made (``LayerTree``), so a layer the check accepts is a
layer that unpacks. Entries of one layer that meet:

* a whiteout and an entry of the same name: the entry stays (the OCI spec:
  a whiteout applies only to lower layers); for a directory, its lower
  namesake's content is hidden (the directory becomes opaque, as overlayfs
  itself records a directory removed and made again);
* a later entry of a name already there: the later one wins (containerd
  removes what is there; a directory onto a directory merges);
* a hard link to a symlink links the symlink itself (nothing followed); to a
  device node, which is never created, is not created either;
* refused: an entry under a file of the layer (containerd: ENOTDIR), a hard
  link to itself or to what is no longer there. Layers are bounded too: the files of one
layer may hold at most ``CSHELL_MAX_LAYER_BYTES`` (32 GiB by default), and
a compressed stream that expands more than ``CSHELL_MAX_LAYER_RATIO`` times
(1000 by default, past its first 128 MiB) is taken for a decompression bomb.
"""

from __future__ import annotations

import io
import os
import posixpath
import shutil
import stat
import sys
import tarfile
from pathlib import Path

from cshell.engine import trace
from cshell.engine.state import NO_SPACE, no_space
from cshell.errors import RuntimeFailure, reason

WHITEOUT_PREFIX = ".wh."
OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
# What a path of the layer holds so far (LayerTree); DEVICE: an entry never created (device nodes).
DIR, FILE, SYMLINK, DEVICE, WHITEOUT = "dir", "file", "symlink", "device", "whiteout"
# What the unpacker does with an entry the check let through.
EXTRACT, SKIP, MAKE_OPAQUE = "extract", "skip", "make-opaque"
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


def unpack_layer(blob: Path, dest: Path, state_root: Path | None = None) -> None:
    """Unpack one layer tar into the empty directory ``dest``, confined to it.

    A failure is one line naming the entry and the cause in words; a full disk
    (``state_root`` names it) is a NoSpace that tells blocks from inodes.
    """
    dest.mkdir(parents=True, exist_ok=False)
    trace.step(f"tar -x -f {blob} -C {dest}  (in a child chroot'ed into {dest})")
    read_end, write_end = os.pipe()
    src_fd = os.open(blob, os.O_RDONLY | os.O_CLOEXEC)
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # child: confine, unpack, report
        os.close(read_end)
        os._exit(_unpack_child(src_fd, dest, write_end, parent))
    os.close(write_end)
    os.close(src_fd)
    with os.fdopen(read_end, "rb") as r:
        report = r.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if report or os.waitstatus_to_exitcode(status) != 0:
        code, _, problem = report.partition("\t")
        if int(code or 0) in NO_SPACE:  # judged now: the caller's clean-up frees inodes and blocks
            raise no_space(state_root or dest, int(code))
        raise RuntimeFailure(f"cannot unpack layer {blob.name[:12]}: {problem or 'the unpacking process died'}",
                             "the kernel refused a step; check the state root's filesystem (overlayfs needs device "
                             "nodes and trusted.* xattrs there); nothing outside the layer's directory was written"
                             if int(code or 0) else
                             "the layer archive is damaged or hostile; nothing outside its directory was written")


def _unpack_child(src_fd: int, dest: Path, report_fd: int, parent: int) -> int:
    """In the forked child: chroot into ``dest`` and unpack. A failure is reported on
    ``report_fd`` as ``ERRNO<tab>words`` (ERRNO 0: not the kernel's refusal)."""
    entry = ""
    try:
        _die_with(parent)
        _preload_decompressors()
        os.chroot(dest)
        os.chdir("/")
        sys.path[:] = []  # inside the layer, an import would run the layer's own code
        tree = LayerTree()
        total = [0]
        with os.fdopen(src_fd, "rb") as f, tarfile.open(fileobj=f, mode="r|*") as tar:
            for member in tar:
                entry = member.name
                _extract_member(tar, member, _check_member(member, tree, total))
        return 0
    except BaseException as e:  # noqa: BLE001 - report anything to the parent
        code = e.errno if isinstance(e, OSError) and e.errno else 0
        where = f"entry {entry[:200]!r}: " if code and entry else ""
        os.write(report_fd, f"{code}\t{where}{reason(e)}".encode(errors="replace")[:1000])
        return 1


def _die_with(parent: int) -> None:
    """A killed shell takes its unpacker along (instead of leaving it writing for minutes
    into a directory that reconcile is about to remove)."""
    import signal

    from cshell.engine.kernel import syscalls as sc

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


class LayerTree:
    """What the entries of one layer read so far leave in its directory: a kind per path.

    The check and the unpacker both walk it, so they agree on what an entry meets.
    Invariant: every recorded path's ancestors are recorded directories (a directory
    replaced by a non-directory takes its subtree with it), so only the parent needs
    looking at. ``children`` makes that removal linear overall, even for a layer that
    replaces the same directory again and again.
    """

    def __init__(self) -> None:
        self.kinds: dict[str, str] = {"": DIR}  # "": the layer's own root
        self.children: dict[str, set[str]] = {}

    def kind(self, path: str) -> str | None:
        return self.kinds.get(path)

    def put(self, path: str, kind: str) -> None:
        if kind != DIR and self.kinds.get(path) == DIR:
            self._drop_below(path)
        self.kinds[path] = kind
        self.children.setdefault(posixpath.dirname(path), set()).add(path)

    def _drop_below(self, path: str) -> None:
        stack = list(self.children.pop(path, ()))
        while stack:
            below = stack.pop()
            self.kinds.pop(below, None)
            stack.extend(self.children.pop(below, ()))


def _parents(tree: LayerTree, name: str, strict: bool) -> bool:
    """Make the entry's parent a directory of the tree, as unpacking will; False: the
    entry goes through a symlink (tolerated only when not strict) and is not tracked."""
    missing = []
    parent = posixpath.dirname(name)
    while (kind := tree.kind(parent)) is None:
        missing.append(parent)
        parent = posixpath.dirname(parent)
    if kind == SYMLINK:
        if strict:
            raise ValueError(f"entry {name[:200]!r} is written through the symlink {parent!r} "
                             "made earlier in this layer")
        return False
    if kind == WHITEOUT:  # entries under a whiteout of this layer: a directory that hides the lower one
        tree.put(parent, DIR)
    elif kind != DIR:  # containerd's mkdir of the parent fails with ENOTDIR
        raise ValueError(f"entry {name[:200]!r} is under {parent[:200]!r}, which is a file earlier in this layer")
    for directory in reversed(missing):
        tree.put(directory, DIR)
    return True


def _check_member(m: tarfile.TarInfo, tree: LayerTree, total: list[int], strict: bool = False) -> str:
    """What _extract_member would refuse, from the header alone (ValueError); else what to do
    with the entry (EXTRACT, SKIP or MAKE_OPAQUE), with ``tree`` updated to match.

    ``strict`` (a layer entering the store) also refuses an entry written through a
    symlink made earlier in the same layer: a tar of a real tree never does that,
    and moby refuses it when the link leads out.
    """
    name = _layer_name(m.name)
    if not name:
        return SKIP
    base = posixpath.basename(name)
    if base == OPAQUE:
        _parents(tree, name, strict)
        return EXTRACT
    if base.startswith(WHITEOUT_PREFIX):
        return _check_whiteout(m, tree, name, strict)
    if not (0 <= m.uid <= MAX_ID and 0 <= m.gid <= MAX_ID):
        raise ValueError(f"entry {name[:200]!r} has owner {m.uid}:{m.gid}, outside 0..{MAX_ID}")
    tracked = _parents(tree, name, strict)
    if m.islnk():
        kind = _link_target(m, tree, name)
        if kind == DEVICE:  # it names a device node, which is never created: neither is the link
            tree.put(name, DEVICE)
            return SKIP
    else:
        kind = DIR if m.isdir() else SYMLINK if m.issym() else FILE if m.isreg() or m.isfifo() else DEVICE
    if m.isreg():
        total[0] += m.size
        if total[0] > max_layer_bytes():
            raise TooBig(f"the files of the layer add up to more than {human(max_layer_bytes())} "
                         "(CSHELL_MAX_LAYER_BYTES)", LIMIT_HINT)
    if tracked:
        tree.put(name, kind)
    return EXTRACT


def _check_whiteout(m: tarfile.TarInfo, tree: LayerTree, name: str, strict: bool) -> str:
    parent, base = posixpath.split(name)
    hidden = base[len(WHITEOUT_PREFIX):]
    if hidden in ("", ".", "..") or hidden.startswith(WHITEOUT_PREFIX):
        raise ValueError(f"invalid whiteout {m.name!r}")
    if not _parents(tree, name, strict):
        return EXTRACT
    target = posixpath.join(parent, hidden)
    kind = tree.kind(target)
    if kind == DIR:  # the layer's directory stays; its lower namesake's content is hidden
        return MAKE_OPAQUE
    if kind in (FILE, SYMLINK, WHITEOUT):  # the layer's entry stays and already hides the lower one
        return SKIP
    tree.put(target, WHITEOUT)
    return EXTRACT


def _link_target(m: tarfile.TarInfo, tree: LayerTree, name: str) -> str:
    """The kind of what a hard link names: something this layer made earlier and still has."""
    target = _safe_name(m.linkname)
    if target == name or target.startswith(name + "/"):  # replacing the entry removes the target
        raise ValueError(f"hard link {name[:200]!r} -> {m.linkname[:200]!r} links to itself (or into itself)")
    kind = tree.kind(target)
    if kind not in (FILE, SYMLINK, DEVICE):
        raise ValueError(f"hard link {name[:200]!r} -> {m.linkname[:200]!r}: the target is not a file "
                         "earlier in this layer")
    return kind


def check_layer(blob: Path | str, label: str = "") -> None:
    """Read every header of an uncompressed layer tar; refuse what unpacking would refuse.

    Random access (headers only, data skipped by seeking): a few ms for a big layer.
    """
    tree = LayerTree()
    total = [0]
    what = f"layer {label}" if label else "the layer"
    try:
        with tarfile.open(blob, mode="r:") as tar:
            while (m := tar.next()) is not None:
                _check_member(m, tree, total, strict=True)
    except TooBig:
        raise
    except (tarfile.TarError, EOFError, ValueError, OverflowError) as e:
        raise RuntimeFailure(f"{what} is refused: {reason(e)}"[:1000],
                             "the layer archive is damaged or hostile; nothing was stored") from None


def _extract_member(tar: tarfile.TarFile, m: tarfile.TarInfo, verdict: str) -> None:
    """Apply one entry _check_member let through (it runs first, so names are clean and checked)."""
    if verdict == SKIP:
        return
    name = _layer_name(m.name)
    parent, base = posixpath.split(name)
    _make_parents(parent)
    if verdict == MAKE_OPAQUE:
        os.setxattr(posixpath.join(parent, base[len(WHITEOUT_PREFIX):]), OPAQUE_XATTR, b"y")
        return
    if base == OPAQUE:
        os.setxattr(parent or ".", OPAQUE_XATTR, b"y")
        return
    if base.startswith(WHITEOUT_PREFIX):
        os.mknod(posixpath.join(parent, base[len(WHITEOUT_PREFIX):]), stat.S_IFCHR | 0o000, os.makedev(0, 0))
        return
    if m.isdir():
        _make_dir(name)
    else:
        _remove_existing(name)
        if m.isreg():
            with tar.extractfile(m) as src, open(name, "wb") as out:  # type: ignore[union-attr]
                while chunk := src.read(1 << 20):
                    out.write(chunk)
        elif m.issym():
            os.symlink(m.linkname, name)  # stored verbatim; followed only inside a container
        elif m.islnk():
            os.link(_safe_name(m.linkname), name, follow_symlinks=False)  # to a symlink: the link itself
        elif m.isfifo():
            os.mkfifo(name)
        else:
            return  # device nodes from images are never created (see runtime notes 1.8)
    os.lchown(name, m.uid, m.gid)
    if not os.path.islink(name):  # a symlink (or a hard link to one): chmod and utime would follow it
        os.chmod(name, m.mode & 0o7777)
        _restore_xattrs(name, m)  # after chown, which clears file capabilities
        os.utime(name, (m.mtime, m.mtime))


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)


def _make_dir(name: str) -> None:
    """A directory at ``name``: kept if there, made if not; what else is there goes (the later
    entry wins), and a whiteout of this layer becomes an opaque directory (it hid the lower one)."""
    try:
        st = os.lstat(name)
    except FileNotFoundError:
        os.mkdir(name, 0o755)
        return
    if stat.S_ISDIR(st.st_mode):
        return
    os.unlink(name)
    os.mkdir(name, 0o755)
    if _is_whiteout(st):
        os.setxattr(name, OPAQUE_XATTR, b"y")


def _make_parents(parent: str) -> None:
    if not parent or os.path.isdir(parent):
        return
    path = ""
    for part in parent.split("/"):
        path = f"{path}/{part}" if path else part
        if os.path.islink(path):  # a layer stored before the strict check: followed, inside the chroot
            os.makedirs(parent, exist_ok=True)
            return
        _make_dir(path)


def _restore_xattrs(name: str, m: tarfile.TarInfo) -> None:
    """File capabilities (ping's cap_net_raw...), as GNU tar and docker store them."""
    value = m.pax_headers.get("SCHILY.xattr.security.capability")
    if value is not None:
        os.setxattr(name, "security.capability", value.encode("utf-8", "surrogateescape"))


def _remove_existing(name: str) -> None:
    """What an entry replaces goes; a directory with everything in it (containerd's RemoveAll).
    Inside the chroot, and rmtree never follows a symlink."""
    try:
        if stat.S_ISDIR(os.lstat(name).st_mode):
            shutil.rmtree(name)
        else:
            os.unlink(name)
    except FileNotFoundError:
        pass
