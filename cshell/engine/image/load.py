"""docker load: read an image archive, check every digest, and only then store it.

An archive comes from anywhere, so it is read as hostile:

* it is never extracted: tarfile reads its headers (random access) and each
  blob is copied out of it by name, into the store's ``.ingest-`` temp files;
* it may hold only regular files and directories with relative names: a
  ``..``, an absolute path, a hardlink, a device rejects it whole; a symlink
  may only stand for another file in the archive (skopeo's docker-archives
  share layers so), and is never created anywhere;
* every arrow is checked, size first, then sha256: index.json -> manifest ->
  config -> layers (an OCI layout), or manifest.json -> config -> the
  config's diff_ids (a docker-archive, whose file names are not digests);
* JSON files are read only up to 4 MiB;
* compressed layers (gzip, bzip2, xz; zstd when a Python zstd module is
  installed) are stored uncompressed, and the uncompressed bytes must hash
  to the config's diff_id.

Nothing enters the store (no blob renamed into place, no index.json change)
until every image in the archive has passed; a failure removes the temp files.
"""

from __future__ import annotations

import bz2
import contextlib
import json
import lzma
import os
import posixpath
import re
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from cshell.engine import events, trace
from cshell.engine.image.store import (
    MT_CONFIG,
    MT_LAYER,
    MT_MANIFEST,
    NAME_ANNOTATION,
    TAG_ANNOTATION,
    BlobWriter,
    Image,
    Store,
    normalize_ref,
    ref_pattern,
    sha256,
)
from cshell.errors import RuntimeFailure, reason
from cshell.record import factory, record

try:  # the same builtin sha256 the store uses (no OpenSSL load)
    from _sha256 import sha256 as _sha256
except ImportError:
    from hashlib import sha256 as _sha256

MAX_JSON = 4 << 20  # manifests, configs and indexes are small; a bigger one is an attack
CHUNK = 1 << 16  # small reads bound how much one decompress() call can expand
DIGEST_RE = re.compile(r"sha256:[a-f0-9]{64}")
HOSTILE = "the archive is damaged or was tampered with; nothing was stored"

MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
INDEX_TYPES = (MT_INDEX, MT_DOCKER_LIST)
MANIFEST_TYPES = (MT_MANIFEST, MT_DOCKER_MANIFEST)
CONFIG_TYPES = (MT_CONFIG, MT_DOCKER_CONFIG)
LAYER_TYPES = tuple(f"application/vnd.oci.image.{kind}.v1.tar{z}"
                    for kind in ("layer", "layer.nondistributable") for z in ("", "+gzip", "+zstd")) + (
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
)
MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"), (b"\x28\xb5\x2f\xfd", "zstd"))
ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}


def hostile(message: str) -> RuntimeFailure:
    return RuntimeFailure(message, HOSTILE)


# -- the archive: headers checked, members read by name ------------------------------------


class Archive:
    """A tar read in random-access mode; only its regular files, by clean name."""

    def __init__(self, f: IO[bytes]) -> None:
        try:
            self.tar = tarfile.open(fileobj=f, mode="r:")  # noqa: SIM115 - lives as long as f, which the caller closes
            members = self.tar.getmembers()  # headers only: data is skipped by seeking
        except (tarfile.TarError, EOFError) as e:
            raise RuntimeFailure(f"not a tar archive ({reason(e)})",
                                 "load reads what save, docker save or skopeo copy (oci-archive:, docker-archive:) write") from None
        self.files: dict[str, tarfile.TarInfo] = {}
        links: dict[str, str] = {}
        for member in members:
            self._admit(member, links)
        for name in links:
            self.files[name] = self._alias(name, links)

    def _admit(self, m: tarfile.TarInfo, links: dict[str, str]) -> None:
        name = clean_name(m.name, "archive entry")
        if m.isdir():
            return
        if m.islnk():
            raise hostile(f"archive entry {m.name!r} is a hardlink (to {m.linkname!r}); an image archive holds only files")
        if not (m.isreg() or m.issym()) or m.issparse():
            raise hostile(f"archive entry {m.name!r} is not a regular file or directory")
        if name in self.files or name in links:
            raise hostile(f"archive entry {name!r} appears twice")
        if m.issym():
            links[name] = m.linkname
        else:
            self.files[name] = m

    def _alias(self, name: str, links: dict[str, str]) -> tarfile.TarInfo:
        """A symlink is never created on disk: it may only name another file of the archive
        (skopeo's and Docker < 25's docker-archives share a layer this way:
        ``<id>/layer.tar -> ../<other>/layer.tar``). Anything else is refused."""
        seen, current = [name], name
        while current in links:
            target = links[current]
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(current), target))
            if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
                raise hostile(f"archive entry {name!r} is a symlink to {target!r}, outside the archive")
            if resolved in seen or len(seen) > 8:
                raise hostile(f"archive entry {name!r} is a symlink loop")
            seen.append(resolved)
            current = resolved
        if current not in self.files:
            raise hostile(f"archive entry {name!r} is a symlink to {links[seen[-2]]!r}, not a file in the archive")
        return self.files[current]

    def member(self, name: str, what: str) -> tarfile.TarInfo:
        found = self.files.get(name)
        if found is None:
            raise hostile(f"{what} {name} is missing from the archive")
        return found

    def open(self, m: tarfile.TarInfo) -> IO[bytes]:
        return self.tar.extractfile(m)  # type: ignore[return-value] - a regular file always has data

    def read_small(self, name: str, what: str) -> bytes:
        m = self.member(name, what)
        if m.size > MAX_JSON:
            raise hostile(f"{what} {name} is {m.size} bytes; JSON files are read up to {MAX_JSON >> 20} MiB")
        try:
            with self.open(m) as f:
                return f.read()
        except (tarfile.TarError, EOFError) as e:
            raise hostile(f"{what} {name} cannot be read: {reason(e)}") from None

    def read_json(self, name: str, what: str) -> Any:
        return parse_json(self.read_small(name, what), f"{what} {name}")


def clean_name(name: str, what: str) -> str:
    """A relative name without ``..`` (``./a//b`` -> ``a/b``); anything else is hostile."""
    if name.startswith("/"):
        raise hostile(f"{what} {name!r} is an absolute path")
    if ".." in name.split("/"):
        raise hostile(f"{what} {name!r} climbs out with '..'")
    return posixpath.normpath(name)


def parse_json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise hostile(f"{what} is not valid JSON") from None


def descriptor(obj: Any, what: str) -> tuple[str, int, str]:
    """(digest, size, mediaType) of an OCI descriptor, each checked before use."""
    if not isinstance(obj, dict):
        raise hostile(f"{what} is not a descriptor object")
    digest, size, media_type = obj.get("digest"), obj.get("size"), obj.get("mediaType", "")
    if not isinstance(digest, str) or not DIGEST_RE.fullmatch(digest):
        raise hostile(f"{what} has an invalid digest {str(digest)[:90]!r} (want sha256:<64 lowercase hex>)")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise hostile(f"{what} {digest[:19]} has an invalid size {size!r}")
    return digest, size, media_type if isinstance(media_type, str) else ""


def blob_name(digest: str) -> str:
    return f"blobs/sha256/{digest[7:]}"


def verified_blob(archive: Archive, digest: str, size: int, what: str) -> bytes:
    """A small blob (JSON) whose size, then sha256, match its descriptor."""
    m = archive.member(blob_name(digest), what)
    if m.size != size:
        raise hostile(f"{what} {digest[:19]} is {m.size} bytes, but its descriptor says {size}")
    data = archive.read_small(blob_name(digest), what)
    if (actual := sha256(data)) != digest:
        raise hostile(f"{what} {digest[:19]} hashes to {actual[:19]}: its content does not match its digest")
    return data


# -- what the archive holds: images, verified up to their layers ------------------------------


@record
class LayerSource:
    member: str  # the layer's name in the archive
    digest: str | None  # the blob digest the archive names it by (None: a legacy <id>/layer.tar)
    size: int | None  # the descriptor's size (None: docker-archive has none)
    diff_id: str  # the config's digest of the uncompressed tar


@record
class Candidate:
    """An image found in the archive: config checked, layers not yet read."""

    config: bytes
    config_digest: str
    manifest: bytes | None  # the archive's manifest, when it can be stored as is
    layers: list[LayerSource]
    refs: list[str] = factory(list)


def candidates(archive: Archive) -> list[Candidate]:
    """The OCI index when there is one (its digests chain down to the layers), else manifest.json."""
    if "index.json" in archive.files and "oci-layout" in archive.files:
        found = from_oci(archive)
    elif "manifest.json" in archive.files:
        found = from_docker(archive)
    else:
        raise RuntimeFailure("the archive has neither index.json (OCI) nor manifest.json (docker)",
                             "load reads what save, docker save or skopeo copy (oci-archive:, docker-archive:) write")
    if not found:
        raise RuntimeFailure("the archive holds no image", "save IMAGE... writes one")
    return found


def from_oci(archive: Archive) -> list[Candidate]:
    layout = archive.read_json("oci-layout", "layout file")
    if not isinstance(layout, dict) or layout.get("imageLayoutVersion") != "1.0.0":
        raise hostile(f"oci-layout says {str(layout)[:60]!r}, not imageLayoutVersion 1.0.0")
    index = archive.read_json("index.json", "index")
    entries = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(entries, list):
        raise hostile("index.json has no manifests list")
    by_digest: dict[str, Candidate] = {}
    for entry in entries:
        digest, size, media_type = descriptor(entry, "an index.json entry")
        if digest not in by_digest:
            by_digest[digest] = image_at(archive, digest, size, media_type)
        ref = ref_of(entry.get("annotations"))
        if ref and ref not in by_digest[digest].refs:
            by_digest[digest].refs.append(ref)
    return list(by_digest.values())


def image_at(archive: Archive, digest: str, size: int, media_type: str, depth: int = 0) -> Candidate:
    """Follow a descriptor to an image manifest (through a multi-platform index, if any)."""
    data = verified_blob(archive, digest, size, "manifest")
    doc = parse_json(data, f"manifest {digest[:19]}")
    if not isinstance(doc, dict):
        raise hostile(f"manifest {digest[:19]} is not a JSON object")
    kind = doc.get("mediaType") or media_type
    if kind in INDEX_TYPES or "manifests" in doc:
        if depth >= 2:
            raise hostile("image indexes nest too deep")
        child = entry_for_platform(doc.get("manifests"))
        return image_at(archive, *descriptor(child, "an image index entry"), depth + 1)
    if kind and kind not in MANIFEST_TYPES:
        raise RuntimeFailure(f"manifest {digest[:19]} is a {kind}, not a container image",
                             "load reads container images (OCI or docker schema 2)")
    if doc.get("schemaVersion") != 2:
        raise hostile(f"manifest {digest[:19]} is not schema version 2")
    return from_manifest(archive, data, doc, keep_type=(kind or MT_MANIFEST) == MT_MANIFEST)


def entry_for_platform(entries: Any) -> dict[str, Any]:
    """The index entry for this machine (linux/amd64 here), as docker picks one."""
    if not isinstance(entries, list) or not entries:
        raise hostile("an image index lists no manifests")
    arch = ARCH.get(os.uname().machine, os.uname().machine)
    for entry in entries:
        platform = entry.get("platform") if isinstance(entry, dict) else None
        if isinstance(platform, dict) and platform.get("os") == "linux" and platform.get("architecture") == arch:
            return entry
    if len(entries) == 1:
        return entries[0]
    raise RuntimeFailure(f"the archive has no linux/{arch} image", "save it again for this machine's platform")


def from_manifest(archive: Archive, data: bytes, doc: dict[str, Any], keep_type: bool) -> Candidate:
    config_digest, config_size, config_type = descriptor(doc.get("config"), "the manifest's config")
    if config_type and config_type not in CONFIG_TYPES:
        raise RuntimeFailure(f"the config is a {config_type}, not a container image config",
                             "load reads container images (OCI or docker schema 2)")
    config = verified_blob(archive, config_digest, config_size, "config")
    diff_ids = diff_ids_of(config)
    layers = doc.get("layers")
    if not isinstance(layers, list) or len(layers) != len(diff_ids):
        raise hostile(f"the manifest lists {len(layers) if isinstance(layers, list) else 'no'} layers, "
                      f"the config {len(diff_ids)}")
    sources, as_is = [], keep_type and config_type == MT_CONFIG
    for desc, diff_id in zip(layers, diff_ids, strict=True):
        digest, size, media_type = descriptor(desc, "a layer")
        if media_type and media_type not in LAYER_TYPES:
            raise RuntimeFailure(f"layer {digest[:19]} is a {media_type}", "load reads tar layers (plain, gzip or zstd)")
        archive.member(blob_name(digest), "layer")  # missing blobs fail before any layer is read
        sources.append(LayerSource(blob_name(digest), digest, size, diff_id))
        as_is = as_is and media_type == MT_LAYER
    return Candidate(config, config_digest, data if as_is else None, sources)


def diff_ids_of(config: bytes) -> list[str]:
    doc = parse_json(config, "the image config")
    rootfs = doc.get("rootfs") if isinstance(doc, dict) else None
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list):
        raise hostile("the image config has no rootfs.diff_ids")
    for diff_id in diff_ids:
        if not isinstance(diff_id, str) or not DIGEST_RE.fullmatch(diff_id):
            raise hostile(f"the image config has an invalid diff_id {str(diff_id)[:90]!r}")
    return diff_ids


def from_docker(archive: Archive) -> list[Candidate]:
    entries = archive.read_json("manifest.json", "docker manifest")
    if not isinstance(entries, list):
        raise hostile("manifest.json is not a list of images")
    return [docker_image(archive, entry) for entry in entries]


def docker_image(archive: Archive, entry: Any) -> Candidate:
    """One manifest.json entry: Config and Layers are file names; the config's digest is
    its content's, and its diff_ids are all there is to check the layers against."""
    if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str) \
            or not isinstance(entry.get("Layers"), list):
        raise hostile("a manifest.json entry lacks Config or Layers")
    config_name = clean_name(entry["Config"], "config")
    config = archive.read_small(config_name, "config")
    config_digest = sha256(config)
    named = named_digest(config_name)
    if named and named != config_digest:
        raise hostile(f"config {config_name} hashes to {config_digest[:19]}: its content does not match its name")
    diff_ids = diff_ids_of(config)
    if len(entry["Layers"]) != len(diff_ids):
        raise hostile(f"manifest.json lists {len(entry['Layers'])} layers, the config {len(diff_ids)}")
    sources = []
    for name, diff_id in zip(entry["Layers"], diff_ids, strict=True):
        if not isinstance(name, str):
            raise hostile("a manifest.json layer is not a file name")
        layer = clean_name(name, "layer")
        archive.member(layer, "layer")
        sources.append(LayerSource(layer, named_digest(layer), None, diff_id))
    tags = entry.get("RepoTags") or []
    refs = [r for tag in tags if (r := familiar(tag))] if isinstance(tags, list) else []
    return Candidate(config, config_digest, None, sources, refs)


def named_digest(name: str) -> str | None:
    """The digest a file name states: blobs/sha256/<hex>, or <hex>.json for a legacy config."""
    match = re.fullmatch(r"blobs/sha256/([a-f0-9]{64})|([a-f0-9]{64})\.json", name)
    return f"sha256:{match[1] or match[2]}" if match else None


def ref_of(annotations: Any) -> str | None:
    """containerd's full-name annotation; else ref.name when it is a whole name (skopeo
    writes busybox:latest). A bare tag (``latest``) names no image: docker leaves it untagged."""
    if not isinstance(annotations, dict):
        return None
    name = annotations.get(NAME_ANNOTATION)
    if not isinstance(name, str) or not name:
        ref = annotations.get(TAG_ANNOTATION)
        name = ref if isinstance(ref, str) and (":" in ref or "/" in ref) else None
    return familiar(name) if name else None


def familiar(name: Any) -> str | None:
    """docker.io/library/busybox:latest -> busybox:latest (cshell has no default registry)."""
    if not isinstance(name, str):
        raise hostile(f"invalid image name {str(name)[:60]!r} in the archive")
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/", "index.docker.io/"):
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    match = ref_pattern().match(name)
    if match is None or len(name) > 255:
        raise hostile(f"invalid image name {name[:60]!r} in the archive")
    if match["digest"]:
        if not match["tag"]:
            return None  # name@digest only: nothing to tag by
        name = name.rsplit("@", 1)[0]
    return normalize_ref(name)


# -- layers: copied out, decompressed, hashed, held in temp files -----------------------------


class _Hashed:
    """A member being read, hashed as it passes (for the digest the archive names it by)."""

    def __init__(self, f: IO[bytes], label: str, total: int) -> None:
        self.f, self.label, self.total = f, label, total
        self.hash, self.size = _sha256(), 0

    def read(self, n: int) -> bytes:
        data = self.f.read(n)
        if data:
            self.hash.update(data)
            self.size += len(data)
            trace.progress(self.label, self.size, self.total, "bytes")
        return data

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


class _HashOnly:
    """A sink for a layer the store already has: checked, not written again."""

    def __init__(self) -> None:
        self.hash, self.size = _sha256(), 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        return len(data)

    def discard(self) -> None:
        pass


def compression_of(head: bytes) -> str | None:
    return next((kind for magic, kind in MAGIC if head.startswith(magic)), None)


def decompressor(kind: str) -> Callable[[], Any]:
    """A factory of objects with decompress(), eof and unused_data (zlib's shape)."""
    if kind == "gzip":
        return lambda: zlib.decompressobj(16 + zlib.MAX_WBITS)
    if kind == "bzip2":
        return bz2.BZ2Decompressor
    if kind == "xz":
        return lzma.LZMADecompressor
    try:
        from compression import zstd  # type: ignore[import-not-found]  # Python 3.14

        return zstd.ZstdDecompressor
    except ImportError:
        pass
    try:
        import zstandard  # type: ignore[import-not-found]
    except ImportError:
        raise RuntimeFailure("the data is zstd-compressed and this Python has no zstd module",
                             "install one into cshell's venv (pip install zstandard), or decompress it first "
                             "(zstd -d; for an image, skopeo copy --dest-compress-format gzip); nothing was stored") from None
    return lambda: _Zstandard(zstandard.ZstdDecompressor().decompressobj())


class _Zstandard:
    """zstandard's decompressobj in zlib's shape (it reads across frames itself)."""

    eof, unused_data = False, b""

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def decompress(self, data: bytes) -> bytes:
        return self.obj.decompress(data)


def decompressed(chunks: Iterator[bytes], kind: str | None, what: str = "") -> Iterator[bytes]:
    """The bytes of a (maybe) compressed stream; bounded (archive.Bound): a bomb stops early."""
    if kind is None:
        yield from chunks
        return
    from cshell.engine.image.archive import Bound

    bound = Bound(what or f"a {kind} stream")
    make = decompressor(kind)
    d = make()
    for chunk in chunks:
        fed = len(chunk)
        while chunk:
            try:
                out = d.decompress(chunk)
            except (zlib.error, OSError, lzma.LZMAError, ValueError, EOFError) as e:
                raise hostile(f"a {kind} stream is corrupt ({reason(e)})") from None
            bound.add(fed, len(out))
            fed = 0
            if out:
                yield out
            chunk = d.unused_data if d.eof else b""
            if chunk and not chunk.strip(b"\0"):
                chunk = b""  # zero padding after the last stream, as gzip(1) allows
            if chunk:  # concatenated streams (pigz, parallel xz): start the next one
                d = make()
    if hasattr(d, "eof") and not d.eof and kind != "zstd":
        raise hostile(f"a {kind} stream ends early")


def with_head(f: IO[bytes] | _Hashed) -> tuple[bytes, Iterator[bytes]]:
    """The first bytes (to sniff compression) and every chunk, those included."""
    head = f.read(8)

    def chunks() -> Iterator[bytes]:
        if head:
            yield head
        while chunk := f.read(CHUNK):
            yield chunk
    return head, chunks()


class Staging:
    """Layers copied into ``.ingest-`` temp files: renamed into the store by commit(),
    removed by discard(). Nothing in here is in the store yet."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.writers: dict[str, BlobWriter] = {}  # diff id -> its temp file
        self.sizes: dict[str, int] = {}  # member -> uncompressed size, once verified

    def layer(self, archive: Archive, src: LayerSource) -> int:
        """Verify one layer (size, blob digest, diff id) into a temp file; its uncompressed size."""
        if src.member in self.sizes:
            return self.sizes[src.member]
        m = archive.member(src.member, "layer")
        if src.size is not None and m.size != src.size:
            raise hostile(f"layer {src.member} is {m.size} bytes, but its descriptor says {src.size}")
        known = src.diff_id in self.writers or self.store.blob_path(src.diff_id).exists()
        sink: BlobWriter | _HashOnly = _HashOnly() if known else self.store.new_blob("load")
        try:
            self._copy(archive, m, src, sink)
        except (tarfile.TarError, EOFError) as e:
            sink.discard()
            raise hostile(f"layer {src.member} cannot be read: {reason(e)}") from None
        except BaseException:
            sink.discard()
            raise
        if isinstance(sink, BlobWriter):
            self.writers[src.diff_id] = sink
        self.sizes[src.member] = sink.size
        return sink.size

    @staticmethod
    def _copy(archive: Archive, m: tarfile.TarInfo, src: LayerSource, sink: BlobWriter | _HashOnly) -> None:
        trace.step(f"sha256sum {src.member}  # copied out of the archive, not extracted")
        with archive.open(m) as f:
            raw = _Hashed(f, f"Loading layer {src.diff_id[7:19]}", m.size)
            head, chunks = with_head(raw)
            for data in decompressed(chunks, compression_of(head), f"layer {src.member}"):
                sink.write(data)
        if src.digest and raw.digest != src.digest:
            raise hostile(f"layer blob {src.digest[:19]} hashes to {raw.digest[:19]}: "
                          "its content does not match its digest")
        if (actual := "sha256:" + sink.hash.hexdigest()) != src.diff_id:
            raise hostile(f"layer {src.member} unpacks to {actual[:19]}, "
                          f"but the config's diff_id says {src.diff_id[:19]}")
        if isinstance(sink, BlobWriter):  # new to the store: its entries are checked before it enters
            from cshell.engine.image import archive as layer_rules

            sink.file.flush()
            trace.step(f"tar -t {src.member}  # every entry checked: no '..', no outside hard link, bounded")
            layer_rules.check_layer(sink.tmp, src.diff_id[7:19])

    def commit(self) -> None:
        for diff_id, writer in self.writers.items():
            if self.store.blob_path(diff_id).exists():
                writer.discard()
            else:
                writer.commit()
        self.writers.clear()

    def discard(self) -> None:
        for writer in self.writers.values():
            writer.discard()
        self.writers.clear()


# -- load ------------------------------------------------------------------------------------------


@record
class Loaded:
    image: Image
    refs: list[str]
    displaced: list[Image]  # images that lost one of these names to it


def load(store: Store, source: Path | IO[bytes]) -> list[Loaded]:
    """Verify everything in the archive, then store the blobs and name the images."""
    with seekable(store, source) as f:
        archive = Archive(f)
        found = candidates(archive)
        staging = Staging(store)
        try:
            for image in found:
                sizes = [staging.layer(archive, src) for src in image.layers]
                if image.manifest is None:
                    image.manifest = manifest_for(image, sizes)
        except BaseException:
            staging.discard()
            raise
    trace.step("rename .ingest-* -> blobs/sha256/<digest>; index.json += the names")
    staging.commit()
    return [_store(store, image) for image in found]


def manifest_for(image: Candidate, sizes: list[int]) -> bytes:
    """Our own OCI manifest over the uncompressed layers (the archive's named compressed ones)."""
    manifest = {
        "schemaVersion": 2, "mediaType": MT_MANIFEST,
        "config": {"mediaType": MT_CONFIG, "digest": image.config_digest, "size": len(image.config)},
        "layers": [{"mediaType": MT_LAYER, "digest": src.diff_id, "size": size}
                   for src, size in zip(image.layers, sizes, strict=True)],
    }
    return json.dumps(manifest, sort_keys=True).encode()  # the shape Store.write_image writes


def _store(store: Store, image: Candidate) -> Loaded:
    store.put_blob(image.config, image.config_digest)
    manifest_digest = store.put_blob(image.manifest or b"")
    stored, displaced = store.add_manifest(manifest_digest, image.refs)
    events.emit(store.root.path, "image", "load", stored.id, name=stored.id)
    return Loaded(stored, stored.refs, displaced)


@contextlib.contextmanager
def seekable(store: Store, source: Path | IO[bytes]) -> Iterator[IO[bytes]]:
    """A plain tar file as it is; a compressed one, or a pipe, spooled (decompressed)
    into a temp file in the state root first: tarfile needs to seek."""
    with contextlib.ExitStack() as stack:
        f = stack.enter_context(open(source, "rb")) if isinstance(source, Path) else source
        head, chunks = with_head(f)
        kind = compression_of(head)
        if kind is None and isinstance(source, Path):
            f.seek(0)
            yield f
            return
        store.root.images.mkdir(parents=True, exist_ok=True)
        spool = stack.enter_context(tempfile.TemporaryFile(dir=store.root.images, prefix=".load-"))
        trace.step(f"{kind or 'cat'} > {store.root.images}/.load-*  # a seekable copy of the archive")
        for data in decompressed(chunks, kind, "the archive"):
            spool.write(data)
        spool.seek(0)
        yield spool
