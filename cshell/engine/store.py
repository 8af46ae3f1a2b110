"""The image store: an OCI image layout plus unpacked layers shared by chain id.

``images/`` is a real OCI image layout (``oci-layout``, ``index.json``,
``blobs/sha256/``): manifests, configs and layer tars are content-addressed
blobs verified by digest when they enter. Each layer is unpacked once into
``layers/<chain id>/diff`` and shared by every image that has it; that
directory is what overlayfs gets as a lowerdir.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cshell.engine import trace
from cshell.engine.state import StateRoot, atomic_write, read_json, write_json
from cshell.errors import NotFound, RuntimeFailure, UsageError

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar"
NAME_ANNOTATION = "io.containerd.image.name"
TAG_ANNOTATION = "org.opencontainers.image.ref.name"


try:  # Python 3.11's builtin sha256: hashlib would load OpenSSL (~10 ms on every start)
    from _sha256 import sha256 as _sha256
except ImportError:  # newer Pythons
    from hashlib import sha256 as _sha256


def sha256(data: bytes) -> str:
    return "sha256:" + _sha256(data).hexdigest()


def chain_ids(diff_ids: list[str]) -> list[str]:
    """OCI ChainID: each layer's id folded with everything below it."""
    chains: list[str] = []
    for diff_id in diff_ids:
        chains.append(diff_id if not chains else sha256(f"{chains[-1]} {diff_id}".encode()))
    return chains


def normalize_ref(ref: str) -> str:
    """NAME[:TAG] with Docker's default tag; ``busybox`` -> ``busybox:latest``."""
    if not ref or ref != ref.strip() or any(c.isspace() for c in ref):
        raise UsageError(f"invalid image name {ref!r}", "names look like busybox or busybox:latest")
    if "@" in ref:
        return ref
    last = ref.rsplit("/", 1)[-1]
    return ref if ":" in last else f"{ref}:latest"


@dataclass
class Layer:
    diff_id: str
    chain_id: str
    path: Path  # the unpacked diff directory
    size: int = 0


@dataclass
class Image:
    ref: str
    id: str  # the config digest, as `docker images` shows it
    manifest_digest: str
    config: dict[str, Any]
    layers: list[Layer] = field(default_factory=list)
    created: str = ""

    @property
    def short_id(self) -> str:
        return self.id.split(":", 1)[1][:12]

    @property
    def size(self) -> int:
        return sum(layer.size for layer in self.layers)


class Store:
    def __init__(self, root: StateRoot) -> None:
        self.root = root
        self.blobs = root.images / "blobs" / "sha256"
        self.index_path = root.images / "index.json"

    # -- blobs ----------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        algo, _, hexpart = digest.partition(":")
        if algo != "sha256" or len(hexpart) != 64 or not all(c in "0123456789abcdef" for c in hexpart):
            raise RuntimeFailure(f"invalid digest {digest!r}", "digests look like sha256:<64 hex>")
        return self.blobs / hexpart

    def put_blob(self, data: bytes, expected: str | None = None) -> str:
        digest = sha256(data)
        if expected and expected != digest:
            raise RuntimeFailure(f"blob digest mismatch: want {expected}, got {digest}",
                                 "the content was damaged in transit; nothing was stored")
        path = self.blob_path(digest)
        if not path.exists():
            self.blobs.mkdir(parents=True, exist_ok=True)
            atomic_write(path, data)
        return digest

    def read_blob(self, digest: str) -> bytes:
        return self.blob_path(digest).read_bytes()

    # -- the index (which names point at which manifest) ------------------------

    def _index(self) -> dict[str, Any]:
        if not self.index_path.exists():
            return {"schemaVersion": 2, "manifests": []}
        return read_json(self.index_path)

    def _write_index(self, index: dict[str, Any]) -> None:
        layout = self.root.images / "oci-layout"
        if not layout.exists():
            atomic_write(layout, b'{"imageLayoutVersion": "1.0.0"}')
        write_json(self.index_path, index)

    def tag(self, ref: str, manifest_digest: str, size: int) -> None:
        ref = normalize_ref(ref)
        index = self._index()
        index["manifests"] = [m for m in index["manifests"]
                              if m.get("annotations", {}).get(NAME_ANNOTATION) != ref]
        index["manifests"].append({
            "mediaType": MT_MANIFEST, "digest": manifest_digest, "size": size,
            "annotations": {NAME_ANNOTATION: ref, TAG_ANNOTATION: ref.rsplit(":", 1)[-1]},
        })
        self._write_index(index)

    # -- images -------------------------------------------------------------------

    def refs(self) -> list[str]:
        return [m["annotations"][NAME_ANNOTATION] for m in self._index()["manifests"]
                if NAME_ANNOTATION in m.get("annotations", {})]

    def find(self, ref: str) -> Image | None:
        ref = normalize_ref(ref)
        for m in self._index()["manifests"]:
            if m.get("annotations", {}).get(NAME_ANNOTATION) == ref:
                return self._load(ref, m["digest"])
        return self._find_by_id(ref.removesuffix(":latest"))

    def _find_by_id(self, prefix: str) -> Image | None:
        prefix = prefix.removeprefix("sha256:")
        if len(prefix) < 4 or not all(c in "0123456789abcdef" for c in prefix):
            return None
        for image in self.list():
            if image.id.removeprefix("sha256:").startswith(prefix):
                return image
        return None

    def get(self, ref: str) -> Image:
        image = self.find(ref)
        if image is None:
            from cshell.engine import bootstrap  # only when an image is missing

            if bootstrap.can_bootstrap(ref):
                return bootstrap.bootstrap(self, ref)
            raise NotFound(f"no such image: {ref}", "`images` lists what is here; busybox is built on first use")
        return image

    def list(self) -> list[Image]:
        return [self._load(m["annotations"][NAME_ANNOTATION], m["digest"])
                for m in self._index()["manifests"] if NAME_ANNOTATION in m.get("annotations", {})]

    def _load(self, ref: str, manifest_digest: str) -> Image:
        manifest = json.loads(self.read_blob(manifest_digest))
        config_digest = manifest["config"]["digest"]
        config = json.loads(self.read_blob(config_digest))
        diff_ids = config["rootfs"]["diff_ids"]
        layers = [
            Layer(diff_id, chain, self.layer_dir(chain), desc.get("size", 0))
            for diff_id, chain, desc in zip(diff_ids, chain_ids(diff_ids), manifest["layers"], strict=True)
        ]
        return Image(ref, config_digest, manifest_digest, config, layers, config.get("created", ""))

    def layer_dir(self, chain_id: str) -> Path:
        return self.root.layers / chain_id.split(":", 1)[1] / "diff"

    def add_image(self, ref: str, config: dict[str, Any], layer_tars: list[bytes]) -> Image:
        """Store layer blobs, unpack them, write config and manifest, tag ``ref``."""
        layer_descs = []
        diff_ids = []
        for data in layer_tars:
            digest = self.put_blob(data)
            diff_ids.append(digest)  # uncompressed layers: blob digest == diff id
            layer_descs.append({"mediaType": MT_LAYER, "digest": digest, "size": len(data)})
        config = {**config, "rootfs": {"type": "layers", "diff_ids": diff_ids}}
        for diff_id, chain in zip(diff_ids, chain_ids(diff_ids), strict=True):
            self._unpack(diff_id, chain)
        config_bytes = json.dumps(config, sort_keys=True).encode()
        config_digest = self.put_blob(config_bytes)
        manifest = {
            "schemaVersion": 2, "mediaType": MT_MANIFEST,
            "config": {"mediaType": MT_CONFIG, "digest": config_digest, "size": len(config_bytes)},
            "layers": layer_descs,
        }
        manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
        manifest_digest = self.put_blob(manifest_bytes)
        self.tag(ref, manifest_digest, len(manifest_bytes))
        return self._load(normalize_ref(ref), manifest_digest)

    def _unpack(self, diff_id: str, chain_id: str) -> None:
        diff = self.layer_dir(chain_id)
        if diff.exists():
            return
        staging = diff.parent.with_name(diff.parent.name + ".unpacking")
        shutil.rmtree(staging, ignore_errors=True)  # a crash mid-unpack left it
        staging.mkdir(parents=True)
        from cshell.engine import archive  # tarfile only when a layer is new

        trace.info(f"unpacking layer {diff_id[7:19]}")
        archive.unpack_layer(self.blob_path(diff_id), staging / "diff")
        write_json(staging / "layer.json", {"diff_id": diff_id, "chain_id": chain_id})
        os.rename(staging, diff.parent)
