"""docker pull: manifest, config and layers from a registry, each checked before it is stored.

1. ``GET /v2/NAME/manifests/TAG``, accepting an image index (a list of
   manifests, one per platform: OCI index or Docker manifest list) or an
   image manifest (OCI or Docker schema 2). For an index, the entry for
   this machine (linux/amd64 here) is fetched by its digest. The digest of
   what the tag named is the image's *repo digest* (``busybox@sha256:…``).
2. The config (``GET /v2/NAME/blobs/DIGEST``): its ``rootfs.diff_ids`` are
   the sha256 of each layer *uncompressed*.
3. The layers, three at a time. Each streams into
   ``distribution/downloads/<digest>.part`` while being hashed and (gzip,
   zstd when a module is there) decompressed into a store temp file. Both
   digests must match: the blob's from the manifest, the tar's from the
   config. A cut connection resumes with ``Range: bytes=N-``; a partial file
   left by a failed or interrupted pull is resumed by the next one.
4. Only when everything matched: temp files are renamed into
   ``images/blobs/sha256/``, and the name goes into ``index.json``. The store
   keeps layers uncompressed (what overlayfs needs unpacked anyway), under a
   manifest of its own; the config is stored byte for byte, so the IMAGE ID
   is the registry's.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cshell.engine import events, trace
from cshell.engine.image.archive import TooBig, check_layer
from cshell.engine.image.load import (
    ARCH,
    CONFIG_TYPES,
    HOSTILE,
    INDEX_TYPES,
    LAYER_TYPES,
    MAX_JSON,
    MT_DOCKER_LIST,
    MT_DOCKER_MANIFEST,
    MT_INDEX,
    Candidate,
    LayerSource,
    compression_of,
    decompressed,
    descriptor,
    diff_ids_of,
    manifest_for,
)
from cshell.engine.image.reference import Remote, parse_remote
from cshell.engine.image.store import (
    MT_CONFIG,
    MT_LAYER,
    MT_MANIFEST,
    BlobWriter,
    Image,
    Store,
    bulk_hasher,
    sha256,
)
from cshell.engine.registry.client import BLOCK, Client, Response
from cshell.engine.registry.distribution import (
    BlobSources,
    Cancelled,
    ConnectionCut,
    DigestMismatch,
    Endpoint,
    Interrupted,
    Job,
    RegistryError,
    Relay,
    Unauthorized,
    Unreachable,
    check,
    downloads,
    endpoints,
    run_jobs,
)
from cshell.engine.state import space_checked
from cshell.errors import NotFound, RuntimeFailure
from cshell.record import factory, record

ACCEPT = ", ".join((MT_MANIFEST, MT_DOCKER_MANIFEST, MT_INDEX, MT_DOCKER_LIST))
DOWNLOADS = 3  # docker's max-concurrent-downloads
RETRIES = 3  # a cut connection is resumed this many times before the pull fails
DAMAGED = "nothing was stored; pull again (if it persists, the registry or a proxy damages the data)"


@record
class Pulled:
    remote: Remote
    image: Image
    digest: str  # the repo digest: of what the tag names (an index, or the manifest)
    layers: list[tuple[str, str]] = factory(list)  # (blob digest, "Pull complete" | "Already exists")
    updated: bool = True  # False: the name already pointed at this image
    source: str = ""  # the endpoint it came from (a mirror, or the registry)


def pull(store: Store, ref: str, platform: str | None = None, implicit: bool = False) -> Pulled:
    """docker pull NAME[:TAG|@DIGEST]: mirrors first for Docker Hub, then the registry."""
    remote = parse_remote(ref)
    store.root.ensure()
    found = endpoints(remote)
    for i, endpoint in enumerate(found):
        try:
            pulled = _pull_from(store, remote, endpoint, platform, implicit)
            events.emit(store.root.path, "image", "pull", str(remote), name=remote.familiar)
            return pulled
        except (Unreachable, RegistryError, NotFound, Unauthorized, ConnectionCut) as e:
            if not endpoint.mirror:
                raise
            trace.info(f"mirror {endpoint.url}: {e.message}; trying {found[i + 1].url}")
    raise AssertionError("the last endpoint is the registry itself")


def _pull_from(store: Store, remote: Remote, endpoint: Endpoint, platform: str | None, implicit: bool) -> Pulled:
    relay = Relay()
    client = Client(endpoint, [f"repository:{remote.repository}:pull"], say=relay.say,
                    connect_timeout=3.0 if implicit else 5.0)
    jobs: list[LayerJob] = []
    try:
        try:
            top_digest, manifest = _manifest(client, remote, platform)
        except Unauthorized as e:
            raise _denied(remote, e) from None
        config_digest, config = _config(store, client, remote, manifest)
        layers, jobs = _plan(store, remote, manifest, config)
        run_jobs(list(jobs), lambda job, cancel: _download(store, client, remote, job, cancel, relay),  # type: ignore[arg-type]
                 relay, DOWNLOADS, client.abort)
        return _commit(store, remote, client.endpoint, (top_digest, manifest), (config_digest, config), layers, jobs)
    except KeyboardInterrupt:
        raise Interrupted(f"pull of {remote} interrupted (Ctrl-C): nothing was stored",
                          "pull again: layers downloaded in part resume where they stopped") from None
    finally:
        for job in jobs:
            job.discard()
        client.close()


def _denied(remote: Remote, e: Unauthorized) -> Unauthorized:
    """Docker Hub answers 401 for a repository that does not exist, too: say both, as docker does."""
    return Unauthorized(f"pull access denied for {remote.familiar}: the repository does not exist "
                        f"or needs a login ({e.message})", e.hint)


# -- manifests -------------------------------------------------------------------------------------


@record
class Manifest:
    data: bytes
    doc: dict[str, Any]
    digest: str


def _manifest(client: Client, remote: Remote, platform: str | None) -> tuple[str, Manifest]:
    """(the repo digest, the image manifest for this platform)."""
    top = _fetch_manifest(client, remote, remote.reference)
    kind = top.doc.get("mediaType", "")
    if kind in INDEX_TYPES or (not kind and "manifests" in top.doc):
        entry = choose_platform(top.doc.get("manifests"), platform, str(remote))
        digest, size, _ = _checked(descriptor, entry, "an index entry")
        plat = entry.get("platform", {})
        trace.step(f"# an index of {len(top.doc['manifests'])} manifests: "
                   f"{plat.get('os')}/{plat.get('architecture')} is {digest[:19]}")
        child = _fetch_manifest(client, remote, digest)
        if len(child.data) != size:
            raise RuntimeFailure(f"manifest {digest[:19]} is {len(child.data)} bytes, the index says {size}", DAMAGED)
        if child.doc.get("mediaType", "") in INDEX_TYPES or "manifests" in child.doc:
            raise RuntimeFailure(f"{remote}: an index inside an index", "cshell pulls one level of index")
        return top.digest, child
    return top.digest, top  # one platform only: --platform has nothing to choose from


def _fetch_manifest(client: Client, remote: Remote, reference: str) -> Manifest:
    resp = client.get_manifest(remote.repository, reference, ACCEPT)
    said = resp.header("Docker-Content-Digest") or ""
    data = resp.body()
    digest = sha256(data)
    if reference.startswith("sha256:") and digest != reference:
        raise RuntimeFailure(f"manifest {reference[:19]} from {remote.registry} hashes to {digest[:19]}", DAMAGED)
    if said.startswith("sha256:") and said != digest:
        raise RuntimeFailure(f"manifest of {remote} hashes to {digest[:19]}, the registry says {said[:19]}", DAMAGED)
    try:
        doc = json.loads(data)
    except ValueError:
        raise RuntimeFailure(f"the manifest of {remote} is not JSON", DAMAGED) from None
    if not isinstance(doc, dict):
        raise RuntimeFailure(f"the manifest of {remote} is not a JSON object", DAMAGED)
    if doc.get("schemaVersion") == 1:
        raise RuntimeFailure(f"{remote} has a Docker schema 1 manifest (deprecated since 2017)",
                             "push it again with a current docker or skopeo: cshell reads schema 2 and OCI")
    return Manifest(data, doc, digest)


def host_platform() -> tuple[str, str]:
    machine = os.uname().machine
    return "linux", ARCH.get(machine, machine)


def choose_platform(entries: Any, wanted: str | None, name: str) -> dict[str, Any]:
    """The index entry for OS/ARCH[/VARIANT] (this machine's by default), as docker picks one."""
    if not isinstance(entries, list) or not entries:
        raise RuntimeFailure(f"the index of {name} lists no manifests", DAMAGED)
    want = (wanted.split("/") if wanted else list(host_platform()))
    for entry in entries:
        plat = entry.get("platform") if isinstance(entry, dict) else None
        if isinstance(plat, dict) and [plat.get("os"), plat.get("architecture"), plat.get("variant")][:len(want)] == want:
            return entry
    have = sorted({"/".join(str(p.get(k)) for k in ("os", "architecture")) for e in entries
                   if isinstance(e, dict) and isinstance(p := e.get("platform"), dict)} - {"unknown/unknown"})
    raise NotFound(f"{name} has no {'/'.join(want)} image (it has: {', '.join(have) or 'no platforms'})",
                   "pull --platform OS/ARCH picks another one (it runs only where the CPU can run it)")


def _config(store: Store, client: Client, remote: Remote, manifest: Manifest) -> tuple[str, bytes]:
    doc = manifest.doc
    if doc.get("mediaType", MT_MANIFEST) not in (MT_MANIFEST, MT_DOCKER_MANIFEST) or doc.get("schemaVersion") != 2:
        raise RuntimeFailure(f"{remote} is a {doc.get('mediaType') or 'manifest of an unknown kind'}, "
                             "not a container image", "cshell pulls OCI and Docker schema 2 images")
    digest, size, kind = _checked(descriptor, doc.get("config"), "the manifest's config")
    if kind and kind not in CONFIG_TYPES:
        raise RuntimeFailure(f"{remote} is not a container image: its config is a {kind}",
                             "it is an OCI artifact (a chart, a signature...), not something to run")
    if store.blob_path(digest).exists():
        return digest, store.read_blob(digest)  # verified when it entered the store
    if size > MAX_JSON:
        raise RuntimeFailure(f"the config {digest[:19]} of {remote} is {size} bytes by its descriptor; "
                             f"configs are read up to {MAX_JSON >> 20} MiB", DAMAGED)
    resp = client.request("GET", f"/v2/{remote.repository}/blobs/{digest}")
    if resp.status != 200:
        raise resp.error(f"GET config {digest[:19]}")
    what = f"the config {digest[:19]} of {remote}"
    config = _exactly(resp, size, what)
    if sha256(config) != digest:
        raise DigestMismatch(f"{what} hashes to {sha256(config)[:19]}: it does not match its digest", DAMAGED)
    return digest, config


def _exactly(resp: Response, size: int, what: str) -> bytes:
    """A small blob's bytes, never more than its descriptor's size (one more tells it lies)."""
    said = _total(resp)
    if said is not None and said != size:
        resp.close()
        raise _size_lies(what, f"is {said} bytes, not", size)
    data = b""
    while len(data) <= size and (chunk := resp.read(min(BLOCK, size + 1 - len(data)))):
        data += chunk
    resp.close()
    if len(data) != size:
        raise _size_lies(what, "is longer than" if len(data) > size else f"is {len(data)} bytes, not", size)
    return data


def _total(resp: Response) -> int | None:
    """The whole blob's length as the response states it (Content-Range's total for a 206)."""
    if resp.status == 206:
        total = (resp.header("Content-Range") or "").rpartition("/")[2]
    else:
        total = resp.header("Content-Length") or ""
    return int(total) if total.isdigit() else None


def _size_lies(what: str, said: str, size: int) -> DigestMismatch:
    """A length that differs from the descriptor's: the blob cannot hash to its digest."""
    return DigestMismatch(f"{what} {said} the {size} bytes its descriptor says: it does not match its digest",
                          DAMAGED)


def _checked(fn: Any, *args: Any) -> Any:
    """image/load.py's checks, with a hint about the registry rather than an archive."""
    try:
        return fn(*args)
    except RuntimeFailure as e:
        raise RuntimeFailure(e.message, DAMAGED) from None


# -- layers ------------------------------------------------------------------------------------------


class LayerJob(Job):
    """A layer to download: the blob (maybe compressed) and the diff id its tar must hash to."""

    def __init__(self, digest: str, size: int, diff_id: str) -> None:
        super().__init__(digest, size, f"Downloading {digest[7:19]}")
        self.diff_id = diff_id
        self.writer: BlobWriter | None = None  # the decompressed tar, for a compressed blob
        self.part: Path | None = None  # the .part file: the blob itself when uncompressed
        self.tar_size = 0

    def discard(self) -> None:
        """After a failure: drop the decompressed temp file; the .part stays (resumable)."""
        if self.writer is not None:
            self.writer.discard()
            self.writer = None

    def commit(self, store: Store) -> None:
        target = store.blob_path(self.diff_id)
        if self.writer is not None:
            if target.exists():
                self.writer.discard()
            else:
                self.writer.commit()
            self.writer = None
            if self.part is not None:
                with contextlib.suppress(FileNotFoundError):
                    self.part.unlink()
        elif self.part is not None:
            try:
                os.rename(self.part, target)
            except FileNotFoundError:
                if not target.exists():  # else a concurrent pull of the same layer moved it first
                    raise


def _plan(store: Store, remote: Remote, manifest: Manifest, config: bytes) -> tuple[list[tuple[str, str, str]], list[LayerJob]]:
    """[(blob digest, diff id, media type)] for every layer, and jobs for those not in the store."""
    diff_ids = _checked(diff_ids_of, config)
    descs = manifest.doc.get("layers")
    if not isinstance(descs, list) or len(descs) != len(diff_ids):
        raise RuntimeFailure(f"the manifest of {remote} lists {len(descs) if isinstance(descs, list) else 'no'} "
                             f"layers, its config {len(diff_ids)}", DAMAGED)
    layers, jobs = [], {}
    for desc, diff_id in zip(descs, diff_ids, strict=True):
        digest, size, kind = _checked(descriptor, desc, "a layer")
        if kind and kind not in LAYER_TYPES:
            raise RuntimeFailure(f"layer {digest[7:19]} of {remote} is a {kind}", "cshell reads tar layers "
                                 "(plain, gzip, or zstd with a Python zstd module)")
        if kind.endswith("+zstd"):
            from cshell.engine.image.load import decompressor

            decompressor("zstd")  # no zstd module: say so before anything is downloaded
        layers.append((digest, diff_id, kind))
        if not store.blob_path(diff_id).exists() and diff_id not in {j.diff_id for j in jobs.values()}:
            jobs[digest] = LayerJob(digest, size, diff_id)
    return layers, list(jobs.values())


def _download(store: Store, client: Client, remote: Remote, job: LayerJob, cancel: threading.Event,
              relay: Relay) -> None:
    """Stream one layer into its .part file, hash it, decompress it; leave it verified and staged."""
    with space_checked(store.root.path):  # a full disk is judged here, before other workers clean up
        _download_into(store, client, remote, job, cancel, relay)


def _download_into(store: Store, client: Client, remote: Remote, job: LayerJob, cancel: threading.Event,
                   relay: Relay) -> None:
    part = downloads(store.root) / f"{job.digest[7:]}.part"
    with _locked(part) as f:
        if store.blob_path(job.diff_id).exists():  # another pull stored it meanwhile
            job.status = "Already exists"
            return
        have = os.fstat(f.fileno()).st_size
        if have > job.size:
            f.truncate(0)
            have = 0
        if have:
            relay.say(f"resume {part.name}: {have} of {job.size} bytes are here")
        raw = bulk_hasher()

        def hashed() -> Iterator[bytes]:
            for chunk in _chunks(client, remote, job, f, have, cancel, relay):
                raw.update(chunk)
                yield chunk
        try:
            tar_digest = _unpack_stream(store, job, hashed())
            if (got := "sha256:" + raw.hexdigest()) != job.digest:
                raise DigestMismatch(f"layer {job.digest[7:19]} from {remote.registry} hashes to {got[:19]}: "
                                     "it does not match its digest", DAMAGED)
            if (tar_digest or got) != job.diff_id:
                raise DigestMismatch(f"layer {job.digest[7:19]} unpacks to {(tar_digest or got)[:19]}, but the "
                                     f"config's diff_id says {job.diff_id[:19]}", DAMAGED)
            f.flush()
            if job.writer is not None:
                job.writer.file.flush()
            relay.say(f"# layer {job.digest[7:19]}: every entry checked (no '..', no outside hard link, bounded)")
            check_layer(job.writer.tmp if job.writer is not None else part, job.digest[7:19])
        except RuntimeFailure as e:
            hostile_layer = isinstance(e, TooBig) or e.hint.startswith("the layer archive is damaged or hostile")
            if isinstance(e, DigestMismatch) or e.hint == HOSTILE or hostile_layer:  # a corrupt gzip stream too
                f.truncate(0)  # damaged bytes are not worth resuming
                with contextlib.suppress(FileNotFoundError):
                    part.unlink()
                if hostile_layer:
                    raise
                if not isinstance(e, DigestMismatch):
                    raise DigestMismatch(f"layer {job.digest[7:19]}: {e.message}", DAMAGED) from None
            raise
        relay.say(f"# layer {job.digest[7:19]}: sha256 of the blob and of its tar (diff_id) match")
        if job.writer is None:
            os.fsync(f.fileno())  # the .part is the blob: it gets renamed into the store
        job.part = part
        job.status = "Pull complete"


@contextlib.contextmanager
def _locked(part: Path) -> Iterator[Any]:
    """The .part file, locked: two pulls of one layer take turns (the second finds it done)."""
    while True:
        f = open(part, "a+b")  # noqa: SIM115 - closed below
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            same = os.stat(part).st_ino == os.fstat(f.fileno()).st_ino
        except FileNotFoundError:
            same = False  # the pull that held it finished and removed it
        if same:
            break
        f.close()
    try:
        yield f
    finally:
        if os.fstat(f.fileno()).st_size == 0:  # nothing to resume: removed while still locked
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
        f.close()


def _unpack_stream(store: Store, job: LayerJob, chunks: Iterator[bytes]) -> str | None:
    """Consume the blob's bytes: a compressed one is decompressed into a store temp file
    (returns its digest); an uncompressed one is only read (its .part file is the tar)."""
    first = next(chunks, b"")
    while len(first) < 8:
        more = next(chunks, b"")
        if not more:
            break
        first += more
    kind = compression_of(first)

    def everything() -> Iterator[bytes]:
        yield first
        yield from chunks
    if kind is None:
        for _ in everything():
            pass
        job.tar_size = job.size
        return None
    job.writer = store.new_blob("pull")
    _inflate_beside(everything(), kind, job.writer, job.digest[7:19])
    job.tar_size = job.writer.size
    return "sha256:" + job.writer.hash.hexdigest()


def _inflate_beside(chunks: Iterator[bytes], kind: str, writer: BlobWriter, writer_label: str = "") -> None:
    """Decompress (and hash, and write) in a second thread while this one receives and
    hashes the compressed bytes: zlib and sha256 release the GIL, so the two overlap."""
    import queue

    pipe: queue.Queue[bytes | None] = queue.Queue(maxsize=16)
    failed: list[BaseException] = []
    ended: list[bool] = []

    def inflate() -> None:
        def received() -> Iterator[bytes]:
            while (chunk := pipe.get()) is not None:
                yield chunk
            ended.append(True)
        try:
            for data in decompressed(received(), kind, f"layer {writer_label}"):
                writer.write(data)
        except BaseException as e:  # noqa: BLE001 - raised in the receiving thread below
            failed.append(e)
            while not ended and pipe.get() is not None:  # unblock the sender until its end mark
                pass

    helper = threading.Thread(target=inflate, name="cshell-inflate", daemon=True)
    helper.start()
    try:
        for chunk in chunks:
            if failed:
                break
            pipe.put(chunk)
    finally:
        pipe.put(None)
        helper.join()
        getattr(chunks, "close", lambda: None)()  # a generator left early: its response closes now
    if failed:
        raise failed[0]


def _chunks(client: Client, remote: Remote, job: LayerJob, f: Any, have: int, cancel: threading.Event,
            relay: Relay) -> Iterator[bytes]:
    """The blob's bytes: what the .part already holds, then the rest from the registry
    (appended to the .part as it comes). A cut connection is resumed with a Range request."""
    fd = f.fileno()
    offset = 0
    while offset < have:
        data = os.pread(fd, min(BLOCK, have - offset), offset)
        if not data:
            break
        offset += len(data)
        job.done = offset
        yield data
    cuts = 0
    while offset < job.size:
        check(cancel)
        resp, skip = _open_blob(client, remote, job, offset)
        try:
            while offset < job.size:
                check(cancel)
                data = resp.read(min(BLOCK, skip + job.size - offset))  # never past the descriptor's size
                if not data:
                    raise ConnectionCut(f"the registry ended layer {job.digest[7:19]} early", "pull again")
                if skip:
                    data, skip = data[skip:], max(0, skip - len(data))
                    if not data:
                        continue
                os.pwrite(fd, data, offset)
                offset += len(data)
                job.done = min(offset, job.size)
                yield data
            if resp.read(1):  # a response with no length (or a lying one) that goes on
                raise _size_lies(f"layer {job.digest[7:19]} from {remote.registry}", "is longer than", job.size)
        except ConnectionCut:
            if cancel.is_set():
                raise Cancelled() from None
            cuts += 1
            if cuts > RETRIES:
                raise ConnectionCut(f"the connection broke while downloading layer {job.digest[7:19]} "
                                    f"({offset} of {job.size} bytes, {cuts} tries)",
                                    "pull again: it resumes where it stopped") from None
            relay.say(f"# the connection broke at byte {offset} of {job.size}: resuming with Range: bytes={offset}-")
        finally:
            resp.close()
            job.response = None


def _open_blob(client: Client, remote: Remote, job: LayerJob, offset: int) -> tuple[Response, int]:
    """GET the blob from ``offset``; (response, bytes to skip when the server ignored the Range)."""
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    resp = client.request("GET", f"/v2/{remote.repository}/blobs/{job.digest}", headers)
    job.response = resp
    what = f"layer {job.digest[7:19]} from {remote.registry}"
    if resp.status in (200, 206) and (total := _total(resp)) is not None and total != job.size:
        resp.close()
        raise _size_lies(what, f"is {total} bytes, not", job.size)
    if resp.status == 416:  # the blob ends before the bytes a .part already holds
        resp.close()
        raise _size_lies(what, f"ends before byte {offset}, short of", job.size)
    if resp.status == 206 and (resp.header("Content-Range") or "").startswith(f"bytes {offset}-"):
        return resp, 0
    if resp.status == 200:
        return resp, offset  # no Range support: read from the start, drop what we have
    if resp.status == 404:
        resp.close()
        raise NotFound(f"layer {job.digest[7:19]} is missing from {remote.registry}/{remote.repository}",
                       "the registry lost a blob its manifest names; push the image again")
    raise resp.error(f"GET layer {job.digest[7:19]}")


# -- into the store ------------------------------------------------------------------------------------


def _commit(store: Store, remote: Remote, endpoint: Endpoint, manifests: tuple[str, Manifest],
            configs: tuple[str, bytes], layers: list[tuple[str, str, str]], downloaded: list[LayerJob]) -> Pulled:
    """Everything is verified: move the blobs in, write our manifest, name the image."""
    (top_digest, manifest), (config_digest, config) = manifests, configs
    jobs = {job.diff_id: job for job in downloaded}
    store.blobs.mkdir(parents=True, exist_ok=True)
    trace.step("rename distribution/downloads/*.part and .ingest-* -> images/blobs/sha256/<diff id>")
    for job in jobs.values():
        job.commit(store)
    store.put_blob(config, config_digest)
    manifest_digest = store.put_blob(_local_manifest(store, manifest, config_digest, config, layers))
    old = store.find(remote.local) if remote.local else None
    image, _ = store.add_manifest(manifest_digest, [remote.local] if remote.local else [])
    store.add_repo_digest(image, f"{remote.familiar}@{top_digest}")
    repo = f"{remote.registry}/{remote.repository}"
    BlobSources(store.root).record([(d, diff, repo) for d, diff, _ in layers] + [(config_digest, config_digest, repo)])
    statuses = [(d, jobs[diff].status if diff in jobs else "Already exists") for d, diff, _ in layers]
    updated = bool(jobs) or old is None or old.manifest_digest != manifest_digest
    return Pulled(remote, image, top_digest, statuses, updated, endpoint.url)


def _local_manifest(store: Store, manifest: Manifest, config_digest: str, config: bytes,
                    layers: list[tuple[str, str, str]]) -> bytes:
    """The registry's manifest when it already names uncompressed layers (an image cshell
    pushed: the same digest here and there); else ours over the uncompressed blobs."""
    doc = manifest.doc
    if doc.get("mediaType") == MT_MANIFEST and doc["config"].get("mediaType") == MT_CONFIG \
            and all(kind == MT_LAYER for _, _, kind in layers):
        return manifest.data
    sources = [LayerSource("", d, None, diff) for d, diff, _ in layers]
    sizes = [store.blob_path(diff).stat().st_size for _, diff, _ in layers]
    return manifest_for(Candidate(config, config_digest, None, sources), sizes)
