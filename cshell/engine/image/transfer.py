"""docker save: images as one tar that is a docker-archive AND an OCI image layout.

Since Docker 25, `docker save` writes both at once, and so does cshell by default::

    oci-layout                 {"imageLayoutVersion": "1.0.0"}: "this is an OCI layout"
    index.json                 OCI: one entry per name, pointing at a manifest by digest
    manifest.json              docker: [{"Config": ..., "RepoTags": [...], "Layers": [...]}]
    blobs/sha256/<hex>         every manifest, config and (uncompressed) layer tar

``index.json`` is the OCI way in: index -> manifest -> config and layers,
every arrow a sha256. ``manifest.json`` is the docker way in: file names for
the config and the layers, and the image's names. Both point at the same
blobs, so the archive costs nothing extra. ``--format docker`` writes the
pre-25 docker-archive instead (``<id>/layer.tar``, ``<config hex>.json``,
``repositories``); ``--format oci`` only the OCI layout.

`load` (load.py) reads all of these back, and tools that speak either
format (skopeo's ``docker-archive:`` and ``oci-archive:``, docker, podman)
read what this writes.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from typing import IO, Any

from cshell.engine import events, trace
from cshell.engine.image.store import (
    MT_MANIFEST,
    NAME_ANNOTATION,
    TAG_ANNOTATION,
    Image,
    Store,
    chain_ids,
    normalize_ref,
    ref_pattern,
)
from cshell.errors import UsageError
from cshell.record import factory, record

FORMATS = ("docker+oci", "oci", "docker")
MT_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'
FIXED_MTIME = 0  # the same images give the same archive, byte for byte


@record
class Saved:
    """One image in the archive and the names it is saved under (none: by id)."""

    image: Image
    refs: list[str] = factory(list)


def choose(store: Store, names: list[str]) -> list[Saved]:
    """The images the arguments name, each once, with the names to record for it."""
    chosen: dict[str, Saved] = {}
    for arg in names:
        for image, ref in _resolve(store, arg):
            entry = chosen.setdefault(image.manifest_digest, Saved(image))
            if ref and ref not in entry.refs:
                entry.refs.append(ref)
    return list(chosen.values())


def _resolve(store: Store, arg: str) -> list[tuple[Image, str | None]]:
    """docker's rules: NAME:TAG saves that tag, a bare NAME every tag of the
    repository, an id or digest the image without a name."""
    match = ref_pattern().match(arg)
    if match and not match["tag"] and not match["digest"]:
        tagged = [ref for ref in store.refs() if ref.rpartition(":")[0] == arg]
        if tagged:
            return [(store.get_local(ref), ref) for ref in tagged]
    image = store.get_local(arg)
    if match is None or match["digest"] or normalize_ref(arg) not in image.refs:
        return [(image, None)]
    return [(image, normalize_ref(arg))]


def save(store: Store, names: list[str], out: IO[bytes], fmt: str = "docker+oci") -> list[Saved]:
    """Write the images as one tar to ``out`` (streamed: nothing is staged on disk)."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}", f"one of {', '.join(FORMATS)}")
    chosen = choose(store, names)
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        if fmt == "docker":
            _write_legacy(store, tar, chosen)
        else:
            _write_layout(store, tar, chosen, with_docker=fmt == "docker+oci")
    for saved in chosen:
        events.emit(store.root.path, "image", "save", saved.image.id, name=saved.image.id)
    return chosen


# -- the OCI layout (plus manifest.json) ---------------------------------------------------


def _write_layout(store: Store, tar: tarfile.TarFile, chosen: list[Saved], with_docker: bool) -> None:
    trace.step("tar -c oci-layout index.json" + (" manifest.json" if with_docker else "") + " blobs/sha256/…")
    _add_dir(tar, "blobs")
    _add_dir(tar, "blobs/sha256")
    written: set[str] = set()
    for saved in chosen:
        for digest in _blobs_of(store, saved.image):
            if digest not in written:
                _add_blob(store, tar, f"blobs/sha256/{digest[7:]}", digest)
                written.add(digest)
    _add_bytes(tar, "oci-layout", OCI_LAYOUT)
    _add_json(tar, "index.json", _index(store, chosen))
    if with_docker:
        _add_json(tar, "manifest.json", [_docker_entry(store, s, "blobs/sha256/{}", "blobs/sha256/{}")
                                         for s in chosen])


def _blobs_of(store: Store, image: Image) -> list[str]:
    """Config, layers, then the manifest: the order docker writes them."""
    return [image.id, *_layer_digests(store, image), image.manifest_digest]


def _layer_digests(store: Store, image: Image) -> list[str]:
    manifest = json.loads(store.read_blob(image.manifest_digest))
    return [layer["digest"] for layer in manifest["layers"]]


def _index(store: Store, chosen: list[Saved]) -> dict[str, Any]:
    """One entry per name (an untagged image gets one without annotations), as docker 25."""
    entries = []
    for saved in chosen:
        size = store.blob_path(saved.image.manifest_digest).stat().st_size
        base = {"mediaType": MT_MANIFEST, "digest": saved.image.manifest_digest, "size": size}
        if not saved.refs:
            entries.append(base)
        for ref in saved.refs:
            entries.append({**base, "annotations": {NAME_ANNOTATION: ref, TAG_ANNOTATION: ref}})
    return {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": entries}



def _docker_entry(store: Store, saved: Saved, config_name: str, layer_name: str) -> dict[str, Any]:
    return {
        "Config": config_name.format(saved.image.id[7:]),
        "RepoTags": saved.refs or None,  # docker writes null for an image saved by id
        "Layers": [layer_name.format(d[7:]) for d in _layer_digests(store, saved.image)],
    }


# -- the docker-archive of Docker < 25 ------------------------------------------------------


def _write_legacy(store: Store, tar: tarfile.TarFile, chosen: list[Saved]) -> None:
    """<v1 id>/layer.tar per layer, <config hex>.json, manifest.json, repositories.

    The v1 id of a layer is its chain id here: unique for a layer at its place
    in a stack, which is all the old format asks of it.
    """
    trace.step("tar -c manifest.json repositories <config>.json <layer id>/layer.tar …")
    done: set[str] = set()
    manifest, repositories = [], {}
    for saved in chosen:
        image = saved.image
        ids = [c[7:] for c in chain_ids([layer.diff_id for layer in image.layers])]
        for i, (layer_id, digest) in enumerate(zip(ids, _layer_digests(store, image), strict=True)):
            if layer_id in done:
                continue
            done.add(layer_id)
            _add_dir(tar, layer_id)
            _add_bytes(tar, f"{layer_id}/VERSION", b"1.0")
            v1 = {"id": layer_id, **({"parent": ids[i - 1]} if i else {}), "created": "1970-01-01T00:00:00Z"}
            _add_json(tar, f"{layer_id}/json", v1)
            _add_blob(store, tar, f"{layer_id}/layer.tar", digest)
        if image.id not in done:
            done.add(image.id)
            _add_blob(store, tar, f"{image.id[7:]}.json", image.id)
        manifest.append({"Config": f"{image.id[7:]}.json", "RepoTags": saved.refs or None,
                         "Layers": [f"{layer_id}/layer.tar" for layer_id in ids]})
        for ref in saved.refs:
            repo, _, tag = ref.rpartition(":")
            repositories.setdefault(repo, {})[tag] = ids[-1] if ids else ""
    _add_json(tar, "manifest.json", manifest)
    if repositories:
        _add_json(tar, "repositories", repositories)


# -- tar entries -------------------------------------------------------------------------------


def _info(name: str, kind: bytes = tarfile.REGTYPE, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mtime = kind, size, FIXED_MTIME
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.uname = info.gname = ""
    return info


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    tar.addfile(_info(name, tarfile.DIRTYPE))


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_info(name, size=len(data)), io.BytesIO(data))


def _add_json(tar: tarfile.TarFile, name: str, obj: Any) -> None:
    _add_bytes(tar, name, json.dumps(obj, separators=(",", ":")).encode())


def _add_blob(store: Store, tar: tarfile.TarFile, name: str, digest: str) -> None:
    path = store.blob_path(digest)
    with open(path, "rb") as f:
        tar.addfile(_info(name, size=os.fstat(f.fileno()).st_size), f)
