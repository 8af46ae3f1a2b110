"""Image operations that involve containers: commit, rmi with its checks, prune.

`commit` is the article's `docker commit`: the container's rw layer (its
overlay upper dir) becomes one more read-only layer on top of its image's
layers. The init layer is a separate lowerdir and /etc/hosts, hostname and
resolv.conf are bind mounts, so none of them can reach the new layer.
"""

from __future__ import annotations

import contextlib
import copy
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cshell.engine.limits import cgroups

from cshell.engine.image import diff

from cshell.engine.image import imageconfig

from cshell.engine import trace
from cshell.engine.state import now
from cshell.engine.image.store import Image, Store
from cshell.record import record

if TYPE_CHECKING:
    from cshell.engine.container.containers import Container, Runtime


def image_of(store: Store, c: Container) -> Image:
    return store.get_local(c.config["image_id"])


def layer_tar_of(store: Store, upper: Path, exclude: frozenset[str] = frozenset(),
                 purpose: str = "commit") -> tuple[str, int]:
    """Stream the upper dir as a layer tar straight into the blob store: (digest, size)."""
    writer = store.new_blob(purpose)
    try:
        diff.write_layer_tar(upper, writer, exclude)  # type: ignore[arg-type]
        return writer.commit()
    except BaseException:
        writer.discard()
        raise


@record
class CommitOptions:
    ref: str | None = None
    message: str = ""
    author: str = ""
    changes: tuple[str, ...] = ()  # Dockerfile lines: "CMD [\"sh\"]", "ENV A=b"


def commit(rt: Runtime, c: Container, opts: CommitOptions, exclude: frozenset[str] = frozenset()) -> Image:
    """docker commit: the rw layer becomes a new layer; the container keeps running."""
    store = rt.store
    base = image_of(store, c)
    upper = Path(c.rootfs_plan().upperdir)
    trace.step(f"tar -c -C {upper} .  # overlay whiteouts → .wh. files; sha256 while writing")
    with cgroups.frozen(c.id) if c.alive() else contextlib.nullcontext():
        digest, size = layer_tar_of(store, upper, exclude)
    layer = store.layer_from_blob(digest, size, base.layers[-1] if base.layers else None, unpack=False)
    config = _committed_config(base, c, opts, empty=False)
    image = store.write_image(config, [*base.layers, layer], opts.ref)
    trace.info(f"committed {c.name} as {image.ref} (layer {digest[7:19]}, {size} bytes)")
    c.emit("commit", comment=opts.message, imageID=image.id,
           imageRef=image.refs[0] if image.refs else "")
    return image


def _committed_config(base: Image, c: Container, opts: CommitOptions, empty: bool) -> dict[str, Any]:
    config = copy.deepcopy(base.config)
    settings = config.setdefault("config", {})
    settings["Env"] = c.config["env"]
    settings["Cmd"] = c.config["cmd"]
    settings["Entrypoint"] = c.config.get("entrypoint")
    settings["WorkingDir"] = c.config["workdir"] if c.config["workdir"] != "/" else settings.get("WorkingDir", "")
    settings.pop("Hostname", None)
    for change in opts.changes:
        instruction, _, value = change.strip().partition(" ")
        imageconfig.apply(settings, instruction, value)
    stamp = now()
    config["created"] = stamp
    config["container"] = c.id  # docker records which container an image was committed from
    entry: dict[str, Any] = {"created": stamp, "created_by": shlex.join(c.config["argv"])}
    if opts.message:
        entry["comment"] = opts.message
    if opts.author:
        entry["author"] = config["author"] = opts.author
    if empty:
        entry["empty_layer"] = True
    config["history"] = [*config.get("history", []), entry]
    return config


def inspect(image: Image) -> dict[str, Any]:
    """Docker's `image inspect` shape for the fields cshell has."""
    return {
        "Id": image.id,
        "RepoTags": image.refs,
        "RepoDigests": image.repo_digests,
        "Created": image.created,
        "Author": image.config.get("author", ""),
        "Architecture": image.config.get("architecture", ""),
        "Os": image.config.get("os", ""),
        "Config": image.settings,
        "Size": image.size,
        "RootFS": {"Type": "layers", "Layers": [layer.diff_id for layer in image.layers]},
        "GraphDriver": {"Name": "overlay", "Data": {
            "LowerDir": ":".join(str(layer.path) for layer in reversed(image.layers)),
        }},
        "Metadata": {"ManifestDigest": image.manifest_digest},
    }


@record
class HistoryRow:
    """One line of `history`: an instruction and the layer it made (or none)."""

    created: str
    created_by: str
    size: int
    layer: str | None  # diff id, None for an empty (metadata-only) step
    comment: str = ""


def history(image: Image) -> list[HistoryRow]:
    """Newest first, as docker history: non-empty entries take the layers in order."""
    layers = iter(image.layers)
    rows = []
    for entry in image.history:
        empty = bool(entry.get("empty_layer"))
        layer = None if empty else next(layers, None)
        rows.append(HistoryRow(entry.get("created", ""), entry.get("created_by", ""),
                               layer.size if layer else 0, layer.diff_id if layer else None,
                               entry.get("comment", "")))
    return rows[::-1]


def in_use(rt: Runtime) -> set[str]:
    """Image ids that existing containers were created from."""
    return {c.config["image_id"] for c in rt.list()}


def remove_image(rt: Runtime, ref: str, force: bool = False) -> tuple[list[str], bool]:
    names, gone = rt.store.remove(ref, in_use(rt), force)
    if gone:
        rt.store.gc(keep_layers=_container_layers(rt))
    return names, gone


def _container_layers(rt: Runtime) -> set[str]:
    return {path for c in rt.list() for path in c.config["layers"]}


def prune(rt: Runtime, everything: bool = False) -> tuple[list[str], int, int]:
    """docker image prune: drop untagged images no container uses (-a: every unused image)."""
    used = in_use(rt)
    dropped = []
    for image in rt.store.list(all=True):
        if image.id in used or (image.refs and not everything):
            continue
        for name in image.refs or [image.id]:
            rt.store.remove(name, used, force=True)
        dropped.append(image.ref)
    blobs, layers = rt.store.gc(keep_layers=_container_layers(rt))
    return dropped, blobs, layers
