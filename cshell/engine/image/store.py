"""The image store: an OCI image layout plus unpacked layers shared by chain id.

``images/`` is a real OCI image layout (``oci-layout``, ``index.json``,
``blobs/sha256/``): manifests, configs and layer tars are content-addressed
blobs verified by digest when they enter. Each layer is unpacked once into
``layers/<chain id>/diff`` and shared by every image that has it; that
directory is what overlayfs gets as a lowerdir.

``index.json`` lists every image manifest. A tagged one carries its name in
the ``io.containerd.image.name`` annotation (as containerd writes it) and the
same full name in ``org.opencontainers.image.ref.name``, so that a name is
unique in the index and ``skopeo inspect oci:ROOT/images:busybox:latest``
finds the right image (skopeo and umoci select by ref.name; with only the tag
there, every ``latest`` would collide). An untagged one (a build step kept
for the cache, a re-tagged image's old version) has none. ``gc`` removes
blobs and layers nothing refers to.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cshell.engine import events, trace
from cshell.engine.image.reference import normalize_ref, parse_remote, ref_pattern
from cshell.engine.state import (
    StateRoot,
    abandoned,
    atomic_write,
    hold,
    parse_time,
    read_json,
    sha256,
    space_checked,
    write_json,
)
from cshell.errors import Conflict, NotFound, RuntimeFailure
from cshell.record import factory, record

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar"
NAME_ANNOTATION = "io.containerd.image.name"
TAG_ANNOTATION = "org.opencontainers.image.ref.name"

def bulk_hasher():  # noqa: ANN201 - a hashlib object
    """For megabytes: OpenSSL's sha256 (SHA-NI) is ~7x the builtin one; worth its import then."""
    import hashlib

    return hashlib.sha256()


def chain_ids(diff_ids: list[str]) -> list[str]:
    """OCI ChainID: each layer's id folded with everything below it."""
    chains: list[str] = []
    for diff_id in diff_ids:
        chains.append(diff_id if not chains else sha256(f"{chains[-1]} {diff_id}".encode()))
    return chains


def is_digest_hex(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


@record
class Layer:
    diff_id: str
    chain_id: str
    path: Path  # the unpacked diff directory
    size: int = 0


@record
class Image:
    id: str  # the config digest, as `docker images` shows it
    manifest_digest: str
    config: dict[str, Any]
    layers: list[Layer] = factory(list)
    refs: list[str] = factory(list)  # the names that point at it (may be none)
    repo_digests: list[str] = factory(list)  # NAME@DIGEST it was pulled as or pushed to (find fills it)

    @property
    def ref(self) -> str:
        """The name it was found by, or its short id when it has none."""
        return self.refs[0] if self.refs else self.short_id

    @property
    def short_id(self) -> str:
        return self.id.split(":", 1)[1][:12]

    @property
    def created(self) -> str:
        return self.config.get("created", "")

    @property
    def size(self) -> int:
        return sum(layer.size for layer in self.layers)

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.config.get("history", [])

    @property
    def settings(self) -> dict[str, Any]:
        """The runtime defaults (Env, Cmd, Entrypoint, WorkingDir, User, ...)."""
        return self.config.get("config", {})


INGEST = ".ingest-"  # blobs being written: .ingest-PURPOSE-RANDOM, renamed to their digest when done


def ingest_prefix(purpose: str) -> str:
    return f"{INGEST}{purpose}-"


def ingest_purpose(name: str) -> str:
    """What was writing an .ingest file: commit, pull, load, ... (older names say nothing)."""
    purpose, dash, _ = name[len(INGEST):].partition("-")
    return purpose if dash and purpose.isalpha() else "write"


def _size_of(path: Path) -> int:
    """Bytes in a file, or in a directory tree (a half-unpacked layer); 0 if gone."""
    try:
        if not path.is_dir() or path.is_symlink():
            return path.lstat().st_size
        return sum(p.lstat().st_size for p in path.rglob("*"))
    except OSError:
        return 0


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


@record
class Partial:
    """Something a killed process was making in the store: a blob or an unpacked layer."""

    path: Path
    purpose: str  # "commit", "pull", "layer unpack", ...
    size: int


class BlobWriter:
    """Write a blob while hashing it; ``commit`` moves it into place by its digest."""

    def __init__(self, store: Store, purpose: str = "write") -> None:
        self.store = store
        with space_checked(store.root.path):
            fd, self.tmp = tempfile.mkstemp(dir=store.blobs, prefix=ingest_prefix(purpose))
        hold(fd)  # a killed writer leaves it unheld: `system check` and reconcile see that at once
        self.file = os.fdopen(fd, "wb")
        self.hash = bulk_hasher()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        with space_checked(self.store.root.path):
            return self.file.write(data)

    def tell(self) -> int:
        return self.size

    def commit(self) -> tuple[str, int]:
        with space_checked(self.store.root.path):
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
        digest = "sha256:" + self.hash.hexdigest()
        os.rename(self.tmp, self.store.blob_path(digest))
        return digest, self.size

    def discard(self) -> None:
        try:
            self.file.close()  # flushes: on a full disk that fails again, and the temp file must still go
        except OSError:
            pass
        finally:
            if os.path.exists(self.tmp):
                os.unlink(self.tmp)


class Store:
    """The images of one state root.

    The store knows no registry. ``get`` of an image that is not here asks ``fetch``
    (``fetch(store, ref) -> Image``), the source of missing images its maker hands in:
    the Runtime hands the registry's ``fetch_missing`` (docker run pulls, or a base image
    is bootstrapped); a store made without one has only what is here.
    """

    def __init__(self, root: StateRoot, fetch: Callable[[Store, str], Image] | None = None) -> None:
        self.root = root
        self.fetch = fetch
        self.blobs = root.images / "blobs" / "sha256"
        self.index_path = root.images / "index.json"

    # -- blobs ----------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        algo, _, hexpart = digest.partition(":")
        if algo != "sha256" or not is_digest_hex(hexpart):  # never let a digest build a path
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

    def put_blob_file(self, src: Path, expected: str | None = None, purpose: str = "layer") -> tuple[str, int]:
        """Ingest a (large) file: hash while copying to a temp blob, then rename into place."""
        with space_checked(self.root.path):
            self.blobs.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.blobs, prefix=ingest_prefix(purpose))
        hold(fd)
        h = bulk_hasher()
        size = 0
        try:
            with space_checked(self.root.path), open(src, "rb") as f, os.fdopen(fd, "wb") as out:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            digest = "sha256:" + h.hexdigest()
            if expected and expected != digest:
                raise RuntimeFailure(f"blob digest mismatch: want {expected}, got {digest}",
                                     "the content was damaged; nothing was stored")
            os.rename(tmp, self.blob_path(digest))
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return digest, size

    def new_blob(self, purpose: str = "write") -> BlobWriter:
        """A file-like blob being written (e.g. a layer tar streamed from a walk); ``purpose``
        (commit, pull, load, ...) names the temp file, so what a crash left says who left it."""
        with space_checked(self.root.path):
            self.blobs.mkdir(parents=True, exist_ok=True)
        return BlobWriter(self, purpose)

    # -- what a killed writer or unpacker left ----------------------------------------

    def partials(self, blob_age: float = 0) -> list[Partial]:
        """Half-written blobs and half-unpacked layers whose maker is gone (killed, crashed);
        blobs only once ``blob_age`` seconds old (reconcile waits, `system check` does not)."""
        found = []
        if self.blobs.is_dir():
            for path in sorted(self.blobs.glob(".ingest-*")):
                if abandoned(path) and _age(path) >= blob_age:
                    found.append(Partial(path, ingest_purpose(path.name), _size_of(path)))
        if self.root.layers.is_dir():
            for path in sorted(self.root.layers.glob("*.unpacking")):
                if abandoned(path):
                    found.append(Partial(path, "layer unpack", _size_of(path)))
        return found

    @staticmethod
    def remove_partial(partial: Partial) -> None:
        trace.step(f"rm -rf {partial.path}  # left by an interrupted {partial.purpose}")
        if partial.path.is_dir() and not partial.path.is_symlink():
            shutil.rmtree(partial.path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                partial.path.unlink()

    def read_blob(self, digest: str) -> bytes:
        try:
            return self.blob_path(digest).read_bytes()
        except FileNotFoundError:
            raise RuntimeFailure(f"blob {digest[:19]} is missing from the store",
                                 "the store is damaged; remove the image (rmi -f) and build or pull it again") from None

    # -- the index: which names point at which manifest ---------------------------

    def _index(self) -> dict[str, Any]:
        if not self.index_path.exists():
            return {"schemaVersion": 2, "manifests": []}
        return read_json(self.index_path)

    def _write_index(self, index: dict[str, Any]) -> None:
        self.root.images.mkdir(parents=True, exist_ok=True)
        layout = self.root.images / "oci-layout"
        if not layout.exists():
            atomic_write(layout, b'{"imageLayoutVersion": "1.0.0"}')
        for entry in index["manifests"]:
            if name := self._name(entry):  # stores written before held only the tag there
                entry["annotations"][TAG_ANNOTATION] = name
        write_json(self.index_path, index)

    @staticmethod
    def _name(entry: dict[str, Any]) -> str | None:
        return entry.get("annotations", {}).get(NAME_ANNOTATION)

    def tag(self, ref: str, image: Image) -> None:
        """docker tag (and build -t): point ``ref`` at the image; an `events` line says so."""
        self._point(ref, image)
        events.emit(self.root.path, "image", "tag", image.id, name=normalize_ref(ref))

    def _point(self, ref: str, image: Image) -> None:
        """Point ``ref`` at the image (moving it from any other image)."""
        ref = normalize_ref(ref)
        index = self._index()
        manifests = [m for m in index["manifests"] if self._name(m) != ref]
        # The image that loses the name stays, untagged (docker's <none>): a container may use it.
        manifests += [{"mediaType": MT_MANIFEST, "digest": m["digest"], "size": m["size"]}
                      for m in index["manifests"] if self._name(m) == ref and m["digest"] != image.manifest_digest]
        size = self.blob_path(image.manifest_digest).stat().st_size
        manifests.append({"mediaType": MT_MANIFEST, "digest": image.manifest_digest, "size": size,
                          "annotations": {NAME_ANNOTATION: ref, TAG_ANNOTATION: ref}})
        index["manifests"] = self._keep_untagged_once(manifests)
        self._write_index(index)
        trace.step(f"index.json: {ref} -> {image.manifest_digest[:19]}")

    def untag(self, ref: str) -> Image:
        image = self.get_local(ref)
        name = normalize_ref(ref)
        index = self._index()
        index["manifests"] = [m for m in index["manifests"] if self._name(m) != name]
        self._write_index(index)
        return image

    def _keep_untagged_once(self, manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """An untagged entry is only needed for a manifest no name points at."""
        named = {m["digest"] for m in manifests if self._name(m)}
        seen: set[str] = set()
        out = []
        for m in manifests:
            if not self._name(m):
                if m["digest"] in named or m["digest"] in seen:
                    continue
                seen.add(m["digest"])
            out.append(m)
        return out

    # -- finding images -------------------------------------------------------------------

    def refs(self) -> list[str]:
        return [n for m in self._index()["manifests"] if (n := self._name(m))]

    def list(self, all: bool = False) -> list[Image]:  # noqa: A002 - docker's flag name
        """Images by manifest; untagged ones only with ``all``."""
        by_digest: dict[str, list[str]] = {}
        for m in self._index()["manifests"]:
            names = by_digest.setdefault(m["digest"], [])
            if (name := self._name(m)) is not None:
                names.append(name)
        images = [self._load(digest, names) for digest, names in by_digest.items() if names or all]
        return sorted(images, key=_created_at, reverse=True)

    def find(self, ref: str) -> Image | None:
        """By NAME[:TAG], NAME@DIGEST, image id (or a unique prefix of it)."""
        if "@" in ref:
            return self._find_by_digest(ref)
        bare = ref.removeprefix("sha256:")
        if is_digest_hex(bare) or (len(bare) >= 4 and ":" not in ref and all(c in "0123456789abcdef" for c in bare)):
            by_id = [i for i in self.list(all=True) if i.id.removeprefix("sha256:").startswith(bare)]
            if len(by_id) == 1:
                return by_id[0]
            if len(by_id) > 1 and len({i.id for i in by_id}) > 1:
                raise Conflict(f"{ref!r} matches {len(by_id)} images", "give more characters of the id")
        name = normalize_ref(ref)
        for m in self._index()["manifests"]:
            if self._name(m) == name:
                image = self._load(m["digest"], self._names_of(m["digest"]))
                image.refs.sort(key=lambda r: r != name)  # the name asked for comes first
                image.repo_digests = self.repo_digests(image)
                return image
        return None

    def _find_by_digest(self, ref: str) -> Image | None:
        """NAME@DIGEST: our manifest's digest, or the registry's one it was pulled or pushed by."""
        digest = ref.rsplit("@", 1)[1]
        images = self.list(all=True)
        found = next((i for i in images if i.manifest_digest == digest), None)
        if found is None and ref_pattern().match(ref):
            wanted = f"{parse_remote(ref).familiar}@{digest}"
            found = next((i for i in images if wanted in self.repo_digests(i)), None)
        if found is not None:
            found.repo_digests = self.repo_digests(found)
        return found

    # -- repo digests: the registry's name for an image ---------------------------------------

    @property
    def _repo_digests_path(self) -> Path:
        return self.root.path / "distribution" / "repodigests.json"

    def repo_digests(self, image: Image) -> list[str]:
        """``busybox@sha256:…`` per repository it was pulled from or pushed to (docker's RepoDigests)."""
        if not self._repo_digests_path.exists():
            return []
        return list(read_json(self._repo_digests_path).get(image.id, []))

    def add_repo_digest(self, image: Image, name_at_digest: str) -> None:
        """One per repository: a newer digest of the same repository replaces the older one."""
        path = self._repo_digests_path
        path.parent.mkdir(mode=0o700, exist_ok=True)
        with self.root.locked():
            doc = read_json(path) if path.exists() else {}
            repo = name_at_digest.rsplit("@", 1)[0]
            kept = [d for d in doc.get(image.id, []) if d.rsplit("@", 1)[0] != repo]
            doc[image.id] = [*kept, name_at_digest]
            live = {i.id for i in self.list(all=True)}
            write_json(path, {k: v for k, v in doc.items() if k in live})
        image.repo_digests = doc[image.id]

    def _names_of(self, manifest_digest: str) -> list[str]:
        return [n for m in self._index()["manifests"] if m["digest"] == manifest_digest and (n := self._name(m))]

    def get_local(self, ref: str) -> Image:
        image = self.find(ref)
        if image is None:
            raise NotFound(f"no such image: {ref}", "`images` lists what is here")
        return image

    def get(self, ref: str) -> Image:
        """Like get_local, but a missing image is fetched by the source the store was given."""
        image = self.find(ref)
        if image is None and self.fetch is not None:  # docker run/build pull it
            return self.fetch(self, ref)
        return image if image is not None else self.get_local(ref)

    def _load(self, manifest_digest: str, refs: list[str]) -> Image:
        manifest = json.loads(self.read_blob(manifest_digest))
        config_digest = manifest["config"]["digest"]
        config = json.loads(self.read_blob(config_digest))
        diff_ids = config["rootfs"]["diff_ids"]
        layers = [
            Layer(diff_id, chain, self.layer_dir(chain), desc.get("size", 0))
            for diff_id, chain, desc in zip(diff_ids, chain_ids(diff_ids), manifest["layers"], strict=True)
        ]
        return Image(config_digest, manifest_digest, config, layers, list(refs))

    # -- adding images ------------------------------------------------------------------

    def layer_dir(self, chain_id: str) -> Path:
        return self.root.layers / chain_id.split(":", 1)[1] / "diff"

    def add_layer(self, tar: bytes | Path, parent: Layer | None, unpack: bool = True) -> Layer:
        """Store one uncompressed layer tar on top of ``parent``'s chain (and unpack it)."""
        if isinstance(tar, Path):
            diff_id, size = self.put_blob_file(tar)
        else:
            diff_id, size = self.put_blob(tar), len(tar)
        return self.layer_from_blob(diff_id, size, parent, unpack)

    def layer_from_blob(self, diff_id: str, size: int, parent: Layer | None, unpack: bool = True) -> Layer:
        chain = chain_ids([parent.chain_id, diff_id])[1] if parent else diff_id
        if unpack:
            self._unpack(diff_id, chain)
        return Layer(diff_id, chain, self.layer_dir(chain), size)

    def ensure_unpacked(self, image: Image) -> None:
        """Layers are unpacked when first needed: commit stores only the tar (fast)."""
        for layer in image.layers:
            if not layer.path.exists():
                self._unpack(layer.diff_id, layer.chain_id)

    def adopt_layer_dir(self, layer: Layer, upper: Path) -> bool:
        """Use a stopped container's upper dir as the unpacked layer (the same bytes
        the layer tar was written from): a build step then needs no unpacking."""
        if layer.path.exists():
            return False
        # Staged like _unpack, so a crash leaves a *.unpacking dir (reconcile removes it),
        # never a layer directory without its diff.
        staging = layer.path.parent.with_name(layer.path.parent.name + ".unpacking")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        write_json(staging / "layer.json", {"diff_id": layer.diff_id, "chain_id": layer.chain_id})
        os.rename(upper, staging / "diff")
        os.rename(staging, layer.path.parent)
        return True

    def write_image(self, config: dict[str, Any], layers: list[Layer], ref: str | None = None) -> Image:
        """Write config and manifest for layers already in the store; tag it if ``ref``."""
        config = {**config, "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]}}
        config_bytes = json.dumps(config, sort_keys=True).encode()
        config_digest = self.put_blob(config_bytes)
        manifest = {
            "schemaVersion": 2, "mediaType": MT_MANIFEST,
            "config": {"mediaType": MT_CONFIG, "digest": config_digest, "size": len(config_bytes)},
            "layers": [{"mediaType": MT_LAYER, "digest": layer.diff_id, "size": layer.size} for layer in layers],
        }
        manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
        manifest_digest = self.put_blob(manifest_bytes)
        image = self._load(manifest_digest, [])
        if ref:
            self._point(ref, image)
            image.refs = [normalize_ref(ref)]
        else:
            self._add_untagged(manifest_digest, len(manifest_bytes))
        return image

    def add_manifest(self, manifest_digest: str, refs: list[str]) -> tuple[Image, list[Image]]:
        """Index a manifest whose blobs are all stored (load): under each name, or untagged.

        Returns the image and the images that lost a name to it; those stay in
        the index untagged (docker load: "renaming the old one ... to empty string").
        """
        image = self._load(manifest_digest, [])
        displaced = []
        for ref in refs:
            old = self.find(ref)
            if old is not None and old.manifest_digest != manifest_digest:
                displaced.append(old)
            self._point(ref, image)
            if old is not None and old.manifest_digest != manifest_digest:  # kept, untagged
                self._add_untagged(old.manifest_digest, self.blob_path(old.manifest_digest).stat().st_size)
        if not refs:
            self._add_untagged(manifest_digest, self.blob_path(manifest_digest).stat().st_size)
        image.refs = [normalize_ref(ref) for ref in refs]
        return image, displaced

    def _add_untagged(self, manifest_digest: str, size: int) -> None:
        index = self._index()
        if any(m["digest"] == manifest_digest for m in index["manifests"]):
            return
        index["manifests"].append({"mediaType": MT_MANIFEST, "digest": manifest_digest, "size": size})
        self._write_index(index)

    def add_image(self, ref: str | None, config: dict[str, Any], layer_tars: list[bytes | Path]) -> Image:
        """Store layer tars bottom to top, then the config and manifest; tag ``ref``."""
        layers: list[Layer] = []
        for tar in layer_tars:
            layers.append(self.add_layer(tar, layers[-1] if layers else None))
        return self.write_image(config, layers, ref)

    def _unpack(self, diff_id: str, chain_id: str) -> None:
        diff = self.layer_dir(chain_id)
        if diff.exists():
            return
        # One staging dir per process: two shells may unpack the same layer at once
        # (the first rename wins); a crash leaves it for reconcile (*.unpacking).
        staging = diff.parent.with_name(f"{diff.parent.name}.{os.getpid()}.unpacking")
        shutil.rmtree(staging, ignore_errors=True)
        with space_checked(self.root.path):
            staging.mkdir(parents=True)
        from cshell.engine.image import archive  # tarfile only when a layer is new

        trace.info(f"unpacking layer {diff_id[7:19]}")
        held = os.open(staging, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            hold(held)  # until renamed into place: a killed shell leaves it unheld for reconcile
            try:
                archive.unpack_layer(self.blob_path(diff_id), staging / "diff", self.root.path)
                write_json(staging / "layer.json", {"diff_id": diff_id, "chain_id": chain_id})
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            try:
                os.rename(staging, diff.parent)
            except OSError:  # ENOTEMPTY/EEXIST: another shell's identical unpack won the race
                shutil.rmtree(staging, ignore_errors=True)
                if not diff.exists():
                    raise
        finally:
            os.close(held)

    # -- removing -------------------------------------------------------------------------

    def remove(self, ref: str, in_use: set[str], force: bool = False) -> tuple[list[str], bool]:
        """docker rmi: untag; when no name is left, delete the image unless a container uses it.

        ``in_use`` holds the image ids of existing containers. Returns the names
        untagged and whether the image itself went (the caller then runs gc).
        """
        image = self.get_local(ref)
        asked = normalize_ref(ref) if ref_pattern().match(ref) and "@" not in ref else None
        if asked in image.refs:
            names = [asked]
        else:  # by id or digest: every name goes
            if len(image.refs) > 1 and not force:
                raise Conflict(f"image {image.short_id} has several names: {', '.join(image.refs)}",
                               "remove them one by one, or force it: rmi -f ID")
            names = list(image.refs)
        last = set(names) >= set(image.refs)
        used = image.id in in_use
        if last and used and not force:
            raise Conflict(f"image {image.ref} is used by a container",
                           "remove the container first (ps -a shows it), or force it: rmi -f")
        index = self._index()
        gone = last and not used
        index["manifests"] = [
            m for m in index["manifests"]
            if self._name(m) not in names and not (gone and m["digest"] == image.manifest_digest)
        ]
        if last and used:  # untagged but kept: a container still runs on its layers
            index["manifests"].append({"mediaType": MT_MANIFEST, "digest": image.manifest_digest,
                                       "size": self.blob_path(image.manifest_digest).stat().st_size})
        index["manifests"] = self._keep_untagged_once(index["manifests"])
        self._write_index(index)
        for _ in names:  # docker names the image by its id in both events
            events.emit(self.root.path, "image", "untag", image.id, name=image.id)
        if gone:
            events.emit(self.root.path, "image", "delete", image.id, name=image.id)
        return names, gone

    def gc(self, keep_layers: set[str], keep_images: set[str] | None = None) -> tuple[int, int]:
        """Delete blobs and unpacked layers that no index entry (or container) refers to.

        ``keep_layers`` are layer directories containers run on; ``keep_images``
        config digests to keep even untagged (a build cache). Returns (blobs, layers) removed.
        """
        keep_blobs: set[str] = set()
        keep_dirs = set(keep_layers)
        for m in self._index()["manifests"]:
            image = self._load(m["digest"], [])
            keep_blobs |= {m["digest"], image.id, *(layer.diff_id for layer in image.layers)}
            keep_dirs |= {str(layer.path) for layer in image.layers}
        blobs = layers = 0
        if self.blobs.is_dir():
            for path in self.blobs.iterdir():
                if "sha256:" + path.name not in keep_blobs and not path.name.startswith(".ingest-"):
                    path.unlink()
                    blobs += 1
        if self.root.layers.is_dir():
            for d in self.root.layers.iterdir():
                if not d.name.endswith(".unpacking") and str(d / "diff") not in keep_dirs:
                    shutil.rmtree(d, ignore_errors=True)
                    layers += 1
        return blobs, layers


def _created_at(image: Image) -> float:
    """The sort key of `images` (newest first), as a number: as text, "…:39Z" sorts after
    "…:39.9Z" of the same second, and a bootstrap writes whole seconds."""
    try:
        return parse_time(image.created)
    except ValueError:  # an imported image's own format (a zone offset): put it last
        return 0.0
