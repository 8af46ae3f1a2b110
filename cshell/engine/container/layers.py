"""Which layers make up a root filesystem, and which layer a path comes from.

A container's / is one overlay mount: its rw layer (upperdir) on top, then
its init layer, then the image's layers top to bottom (lowerdir, top first).
``stack`` gathers that picture (with the instruction that made each image
layer, from the image's history); ``whereis`` repeats overlayfs' lookup by
hand: it walks the layers from the top and stops at the first one that has
the path, or that hides it (a whiteout, an opaque directory, a file where a
directory should be).

The path comes from the user and is looked up inside layer directories on
the host, some of which (the rw layer) a running container writes. So every
component is opened relative to its parent directory's fd with O_NOFOLLOW:
a symlink is reported, never followed, and nothing outside a layer
directory is ever touched, even if the container swaps a directory for a
symlink while we look.
"""

from __future__ import annotations

import os
import posixpath
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cshell.engine.container.rootfs import ETC_FILES, RootfsPlan
from cshell.engine.image.diff import OPAQUE_XATTR, Change, changes, is_whiteout
from cshell.engine.state import read_json
from cshell.errors import NotFound, UsageError
from cshell.record import factory, record

if TYPE_CHECKING:
    from cshell.engine.container.containers import Container, Runtime
    from cshell.engine.image.store import Image, Store

RW, INIT, IMAGE = "rw", "init", "image"
ORIGIN_XATTR = "trusted.overlay.origin"  # set by overlayfs on a copy-up: where the file came from
MAX_DEPTH = 256  # a container can nest directories deeper than Python's recursion limit
EMPTY_TAR_MAX = 10240  # an empty tar is zero blocks, padded to one 10 KiB record at most


@record(frozen=True)
class LayerRef:
    kind: str  # RW, INIT or IMAGE
    path: Path  # the directory overlayfs gets
    number: int = 0  # image layers: 1 is the bottom one
    diff_id: str = ""

    @property
    def label(self) -> str:
        return f"image layer {self.number}" if self.kind == IMAGE else f"{self.kind} layer"


# -- the stack ------------------------------------------------------------------------------


@record
class ImageLayerRow:
    layer: LayerRef
    created_by: str  # the history entry that made it ("" when the image has no history)
    comment: str
    size: int | None  # bytes of the layer tar (None: unknown, the image is gone)
    empty: bool  # a layer with no files at all (e.g. a RUN that changed nothing)
    unpacked: bool  # commit stores only the tar; it is unpacked when a container needs it


@record
class EmptyStep:
    """A history entry that made no layer (ENV, CMD, ...): settings only."""

    created_by: str
    comment: str = ""


@record
class RwLayer:
    layer: LayerRef
    entries: int  # files, directories, whiteouts: everything the container wrote
    size: int  # bytes of regular files


@record
class InitLayer:
    layer: LayerRef
    placeholders: list[str]  # as the container sees them: /etc/hosts, /dev, ...
    binds: list[tuple[str, str]]  # (/etc/hosts, the real file in the state dir)


@record
class Stack:
    root: str  # the state root, so a view can shorten paths under it
    image_ref: str
    image_id: str
    rows: list[ImageLayerRow | EmptyStep]  # top first
    container: str | None = None  # its name; None for an image
    container_id: str = ""
    running: bool = False
    rw: RwLayer | None = None
    init: InitLayer | None = None
    plan: RootfsPlan | None = None
    image_found: bool = True  # False: the container's image is gone, and its history with it

    @property
    def image_layers(self) -> list[ImageLayerRow]:
        return [r for r in self.rows if isinstance(r, ImageLayerRow)]


def resolve(rt: Runtime, ref: str) -> Container | Image:
    """A container (tried first, as docker inspect does) or an image."""
    try:
        return rt.get(ref)
    except NotFound:
        pass
    try:
        image = rt.store.find(ref)
    except UsageError:  # not even a valid image name: neither exists
        image = None
    if image is None:
        from cshell.engine.image import bootstrap  # only on this error path

        hint = "`ps -a` lists the containers, `images` the images"
        if bootstrap.can_bootstrap(ref):
            hint = f"it is not built yet: `image bootstrap {ref}` (or any `run {ref}`) makes it"
        raise NotFound(f"no container or image named {ref}", hint)
    return image


def stack(rt: Runtime, ref: str) -> Stack:
    target = resolve(rt, ref)
    from cshell.engine.container.containers import Container

    if isinstance(target, Container):
        return container_stack(rt, target)
    return image_stack(rt.store, target)


def image_stack(store: Store, image: Image) -> Stack:
    refs = [LayerRef(IMAGE, layer.path, i, layer.diff_id) for i, layer in enumerate(image.layers, 1)]
    return Stack(str(store.root.path), image.ref, image.id, _history_rows(store, image, refs))


def container_stack(rt: Runtime, c: Container) -> Stack:
    image, refs = container_image_layers(rt.store, c)
    plan = c.rootfs_plan()
    entries, size = tree_stats(Path(plan.upperdir))
    init_dir = Path(plan.lowerdirs[0])
    return Stack(
        root=str(rt.root.path), image_ref=c.config["image"], image_id=c.config["image_id"],
        rows=_history_rows(rt.store, image, refs), container=c.name, container_id=c.id,
        running=c.running, rw=RwLayer(LayerRef(RW, Path(plan.upperdir)), entries, size),
        init=InitLayer(LayerRef(INIT, init_dir), _placeholders(init_dir),
                       [(f"/etc/{name}", f"{plan.state_dir}/{name}") for name in ETC_FILES]),
        plan=plan, image_found=image is not None,
    )


def container_image_layers(store: Store, c: Container) -> tuple[Image | None, list[LayerRef]]:
    """The image layers the container runs on, bottom first, from its own config.

    The image may have been removed (rmi -f) since: the layer directories stay
    while the container exists, and each records its diff id in layer.json.
    """
    paths = c.config["layers"]
    image = store.find(c.config["image_id"])
    if image is not None and [str(layer.path) for layer in image.layers] == paths:
        diff_ids = [layer.diff_id for layer in image.layers]
    else:
        image, diff_ids = None, [_recorded_diff_id(Path(p)) for p in paths]
    return image, [LayerRef(IMAGE, Path(p), i, d) for i, (p, d) in enumerate(zip(paths, diff_ids, strict=True), 1)]


def _recorded_diff_id(layer_dir: Path) -> str:
    try:
        return str(read_json(layer_dir.parent / "layer.json").get("diff_id", ""))
    except (OSError, ValueError):
        return ""


def _history_rows(store: Store, image: Image | None, refs: list[LayerRef]) -> list[ImageLayerRow | EmptyStep]:
    """Top first. Non-empty history entries take the layers in order, as docker history does."""
    sizes = {layer.diff_id: layer.size for layer in image.layers} if image else {}
    layers = iter(refs)
    rows: list[ImageLayerRow | EmptyStep] = []

    def layer_row(ref: LayerRef, entry: dict[str, Any]) -> ImageLayerRow:
        size = sizes.get(ref.diff_id)
        return ImageLayerRow(ref, entry.get("created_by", ""), entry.get("comment", ""), size,
                             _is_empty(store, ref, size), ref.path.is_dir())

    for entry in image.history if image else []:
        if entry.get("empty_layer"):
            rows.append(EmptyStep(entry.get("created_by", ""), entry.get("comment", "")))
        elif (ref := next(layers, None)) is not None:
            rows.append(layer_row(ref, entry))
    rows += [layer_row(ref, {}) for ref in layers]  # no history for these (an imported image)
    return rows[::-1]


def _is_empty(store: Store, ref: LayerRef, size: int | None) -> bool:
    try:
        with os.scandir(ref.path) as it:
            return next(it, None) is None
    except OSError:
        pass
    if not ref.diff_id or size is None or size > EMPTY_TAR_MAX:
        return False  # not unpacked and too big to be an empty tar
    try:
        return not any(store.blob_path(ref.diff_id).read_bytes())
    except OSError:
        return False


def _placeholders(init_dir: Path) -> list[str]:
    """What the init layer holds, as the container sees it (it is made by cshell: small)."""
    found = []
    for top, dirs, files in os.walk(init_dir):
        rel = os.path.relpath(top, init_dir)
        for name in sorted(dirs + files):
            found.append("/" + (name if rel == "." else f"{rel}/{name}"))
        dirs.sort()
    return found


def tree_stats(path: Path) -> tuple[int, int]:
    """(entries, bytes of regular files) under a directory, never following a symlink."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return 0, 0
    return _count(fd, 0)


def _count(fd: int, depth: int) -> tuple[int, int]:
    entries = size = 0
    try:
        with os.scandir(fd) as it:
            for entry in it:
                entries += 1
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISREG(st.st_mode):
                    size += st.st_size
                elif stat.S_ISDIR(st.st_mode) and depth < MAX_DEPTH:
                    try:
                        sub = os.open(entry.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                      dir_fd=fd)
                    except OSError:
                        continue  # gone, or swapped for a symlink, while we looked
                    n, s = _count(sub, depth + 1)
                    entries, size = entries + n, size + s
    except OSError:
        pass
    finally:
        os.close(fd)
    return entries, size


# -- docker diff ----------------------------------------------------------------------------


def container_changes(rt: Runtime, ref: str) -> tuple[Container, list[Change]]:
    """docker diff: the rw layer against the image's layers (the init layer is not the image)."""
    try:
        c = rt.get(ref)
    except NotFound:
        if _is_image(rt.store, ref):
            raise UsageError(f"{ref} is an image: only a container has a rw layer to diff",
                             f"run one first (run -d --name x {ref} sleep 1000), or see its layers: layer stack {ref}") from None
        raise
    upper = Path(c.rootfs_plan().upperdir)
    return c, changes(upper, [Path(p) for p in reversed(c.config["layers"])])


def _is_image(store: Store, ref: str) -> bool:
    try:
        return store.find(ref) is not None
    except UsageError:
        return False


# -- whereis ----------------------------------------------------------------------------------

# What one layer holds at a path.
ABSENT, FILE, WHITEOUT, SYMLINK, NOTDIR, NO_LAYER = "absent", "file", "whiteout", "symlink", "notdir", "no-layer"


@record(frozen=True)
class Probe:
    state: str
    at: str = ""  # the container path where it was decided (an ancestor, for SYMLINK/NOTDIR/WHITEOUT)
    kind: str = ""  # file type of what is at ``at``
    size: int = 0
    target: str = ""  # a symlink's text
    host_path: str = ""  # where ``at`` is on disk (inside the layer directory)
    opaque: bool = False  # FILE: a directory that hides the layers below
    origin: bool = False  # FILE: overlayfs recorded it was copied up (trusted.overlay.origin)
    opaque_at: str = ""  # an ancestor directory here is opaque: the layers below are hidden


@record(frozen=True)
class RuntimeMount:
    """Something the runtime mounts over the overlay inside the container."""

    dest: str  # /etc/hosts, /proc
    fstype: str  # bind, proc, sysfs, tmpfs
    source: str  # the host file for a bind mount
    is_dir: bool


# The verdicts.
FOUND, COPIED_UP, REPLACED, MERGED_DIR, OPAQUE_DIR, DELETED, HIDDEN, THROUGH_SYMLINK, MOUNTED = (
    "found", "copied-up", "replaced", "merged-dir", "opaque-dir", "deleted", "hidden", "symlink", "mount")


@record
class Whereis:
    subject: str  # container name or image ref
    path: str  # normalised, absolute
    verdict: str
    layer: LayerRef | None = None  # the layer that decides
    probe: Probe | None = None
    lower: LayerRef | None = None  # the layer below that also has it (copied up, deleted, hidden)
    lower_probe: Probe | None = None
    mount: RuntimeMount | None = None
    suggestion: str = ""  # THROUGH_SYMLINK: the same path with the link resolved in the container's terms
    trail: list[tuple[LayerRef, Probe]] = factory(list)  # every layer, top first
    created_by: dict[int, str] = factory(dict)  # image layer number -> instruction


def split_path(path: str) -> list[str]:
    """The components of a path inside the container; refuses '..' (no climbing out)."""
    if "\0" in path:
        raise UsageError("a path cannot contain a NUL byte", "give the path as the container sees it, e.g. /etc/passwd")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UsageError(f"{path}: '..' is not allowed here",
                         "give the path from the container's /, e.g. /etc/passwd (a layer has no parent to climb to)")
    if not parts:
        raise UsageError("/ is every layer at once", "ask for a path inside it, e.g. /bin/sh or /etc/hosts")
    return parts


def runtime_mounts(c: Container) -> list[RuntimeMount]:
    """The mounts rootfs.prepare_rootfs puts over the overlay, most specific first."""
    mounts = [RuntimeMount(f"/etc/{name}", "bind", str(c.dir / name), False) for name in ETC_FILES]
    # Volumes, binds and tmpfs (-v, --mount, --tmpfs): deepest first, so /a/b wins over /a.
    user = sorted(c.config.get("mounts", []), key=lambda m: m["destination"].count("/"), reverse=True)
    mounts = [RuntimeMount(m["destination"], _mount_kind(m), m["source"], m.get("is_dir", True)) for m in user] \
        + mounts
    mounts += [RuntimeMount("/proc", "proc", "proc", True), RuntimeMount("/sys", "sysfs", "sysfs", True),
               RuntimeMount("/dev", "tmpfs", "tmpfs", True)]
    return mounts


def _mount_kind(m: dict) -> str:
    """volume (name), bind or tmpfs, as `layer whereis` prints it."""
    if m["type"] == "volume":
        return f"volume {m['name'][:12]}" + (" (anonymous)" if m.get("anonymous") else "")
    return "host bind" if m["type"] == "bind" else m["type"]


def _mount_for(mounts: list[RuntimeMount], path: str) -> RuntimeMount | None:
    for m in mounts:
        if path == m.dest or (m.is_dir and path.startswith(m.dest + "/")):
            return m
    return None


def whereis(rt: Runtime, ref: str, path: str) -> Whereis:
    parts = split_path(path)
    target = resolve(rt, ref)
    from cshell.engine.container.containers import Container

    if isinstance(target, Container):
        image, refs = container_image_layers(rt.store, target)
        plan = target.rootfs_plan()
        layers = [LayerRef(RW, Path(plan.upperdir)), LayerRef(INIT, Path(plan.lowerdirs[0])), *reversed(refs)]
        subject, mounts = target.name, runtime_mounts(target)
    else:
        image = target
        rt.store.ensure_unpacked(image)  # a committed image is only a tar until first used
        layers = [LayerRef(IMAGE, layer.path, i, layer.diff_id) for i, layer in enumerate(image.layers, 1)][::-1]
        subject, mounts = image.ref, []
    full = "/" + "/".join(parts)
    trail = [(layer, probe(layer.path, parts)) for layer in layers]
    result = _decide(subject, full, trail, _mount_for(mounts, full))
    if image is not None:
        rows = _history_rows(rt.store, image, [r for r in layers if r.kind == IMAGE][::-1])
        result.created_by = {r.layer.number: r.created_by for r in rows if isinstance(r, ImageLayerRow)}
    return result


def _decide(subject: str, path: str, trail: list[tuple[LayerRef, Probe]], mount: RuntimeMount | None) -> Whereis:
    if mount is not None:
        return Whereis(subject, path, MOUNTED, mount=mount, trail=trail)
    for i, (_, p) in enumerate(trail):
        below = trail[i + 1:]
        if p.state == FILE:
            lower = _visible_below(below)
            if lower is None:
                verdict = FOUND
            elif p.kind == "directory" and lower[1].kind == "directory":
                verdict = OPAQUE_DIR if p.opaque else MERGED_DIR
            else:
                verdict = COPIED_UP if p.kind == lower[1].kind else REPLACED
            return _result(subject, path, verdict, trail, i, lower)
        if p.state in (WHITEOUT, SYMLINK):
            verdict = DELETED if p.state == WHITEOUT else THROUGH_SYMLINK
            result = _result(subject, path, verdict, trail, i, _any_below(below))
            if p.state == SYMLINK:
                result.suggestion = _through_link(p.at, p.target, path)
            return result
        if p.state == NOTDIR or p.opaque_at:
            lower = _any_below(below)
            if lower is None:
                break  # nothing below to hide: the path simply does not exist
            return _result(subject, path, HIDDEN, trail, i, lower)
    raise NotFound(f"{path} is in no layer of {subject}",
                   f"paths are as the container sees them (e.g. /bin/sh); `layer diff {subject}` shows what changed"
                   if any(layer.kind == RW for layer, _ in trail) else
                   f"paths are as a container sees them, e.g. /bin/sh; `layer stack {subject}` lists the layers")


def _result(subject: str, path: str, verdict: str, trail: list[tuple[LayerRef, Probe]], i: int,
            lower: tuple[LayerRef, Probe] | None) -> Whereis:
    layer, p = trail[i]
    return Whereis(subject, path, verdict, layer, p, lower[0] if lower else None, lower[1] if lower else None,
                   trail=trail)


def _visible_below(below: list[tuple[LayerRef, Probe]]) -> tuple[LayerRef, Probe] | None:
    """The first copy below that would show if the upper one went away."""
    for layer, p in below:
        if p.state == FILE:
            return layer, p
        if p.state in (WHITEOUT, SYMLINK, NOTDIR) or p.opaque_at:
            return None
    return None


def _any_below(below: list[tuple[LayerRef, Probe]]) -> tuple[LayerRef, Probe] | None:
    return next(((layer, p) for layer, p in below if p.state == FILE), None)


def _through_link(link_at: str, target: str, path: str) -> str:
    """The path with the link replaced by its target, in the container's terms (text only)."""
    base = target if target.startswith("/") else posixpath.join(posixpath.dirname(link_at), target)
    rest = path[len(link_at):]
    resolved = posixpath.normpath("/" + base + rest)
    return "/" + resolved.lstrip("/")


def probe(layer_dir: Path, parts: list[str]) -> Probe:
    """What this layer directory holds at the path: each component opened below its parent's fd."""
    try:
        fd = os.open(layer_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return Probe(NO_LAYER)
    opaque_at = ""
    try:
        for i, name in enumerate(parts):
            at = "/" + "/".join(parts[:i + 1])
            host = str(layer_dir) + at
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except OSError:  # absent (or a name the kernel refuses: too long)
                return Probe(ABSENT, opaque_at=opaque_at)
            if is_whiteout(st):
                return Probe(WHITEOUT, at, "whiteout", host_path=host)
            if i == len(parts) - 1:
                return _found(fd, name, at, host, st)
            if stat.S_ISLNK(st.st_mode):
                return Probe(SYMLINK, at, "symlink", target=_readlink(name, fd))
            if not stat.S_ISDIR(st.st_mode):
                return Probe(NOTDIR, at, file_kind(st.st_mode), host_path=host)
            try:
                sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            except OSError:  # swapped for something else while we looked
                return Probe(ABSENT, opaque_at=opaque_at)
            os.close(fd)
            fd = sub
            if _fd_opaque(fd):
                opaque_at = at
        return Probe(ABSENT, opaque_at=opaque_at)  # not reached: split_path never gives []
    finally:
        os.close(fd)


def _found(dir_fd: int, name: str, at: str, host: str, st: os.stat_result) -> Probe:
    kind = file_kind(st.st_mode)
    target = _readlink(name, dir_fd) if kind == "symlink" else ""
    opaque, origin = _marks(dir_fd, name, kind)
    return Probe(FILE, at, kind, st.st_size, target, host, opaque=opaque, origin=origin)


def _marks(dir_fd: int, name: str, kind: str) -> tuple[bool, bool]:
    """overlayfs' own xattrs on a file or directory: (opaque, copied up from a lower layer).

    Only regular files and directories are opened (O_NONBLOCK, O_NOFOLLOW): opening a
    fifo or a device could block or have effects.
    """
    if kind not in ("regular file", "directory"):
        return False, False
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(name, flags | (os.O_DIRECTORY if kind == "directory" else 0), dir_fd=dir_fd)
    except OSError:
        return False, False
    try:
        if not (stat.S_ISREG(os.fstat(fd).st_mode) or stat.S_ISDIR(os.fstat(fd).st_mode)):
            return False, False  # swapped while we looked
        return _fd_opaque(fd), _has_xattr(fd, ORIGIN_XATTR)
    finally:
        os.close(fd)


def _has_xattr(fd: int, name: str) -> bool:
    try:
        os.getxattr(fd, name)
        return True
    except OSError:
        return False


def _readlink(name: str, dir_fd: int) -> str:
    try:
        return os.readlink(name, dir_fd=dir_fd)
    except OSError:
        return "?"


def _fd_opaque(fd: int) -> bool:
    try:
        return os.getxattr(fd, OPAQUE_XATTR) == b"y"
    except OSError:
        return False


def file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISREG, "regular file"), (stat.S_ISDIR, "directory"), (stat.S_ISLNK, "symlink"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
                       (stat.S_ISFIFO, "fifo"), (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "file"
