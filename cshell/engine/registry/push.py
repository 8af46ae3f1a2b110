"""docker push: an image's blobs, then its manifest, to a registry.

For each layer and the config (five at a time)::

    HEAD /v2/NAME/blobs/DIGEST                  200: "Layer already exists", nothing sent
    POST /v2/NAME/blobs/uploads/?mount=DIGEST&from=OTHER
                                                201: "Mounted from OTHER" (the registry copies
                                                it from another repository it holds: no bytes sent)
    POST /v2/NAME/blobs/uploads/                202 + Location: an upload session
    PUT  LOCATION&digest=DIGEST  <the blob>     monolithic: one request (most blobs)
    PATCH LOCATION  <chunk> (Content-Range)...  chunked, for big blobs; then PUT ?digest= to close

then ``PUT /v2/NAME/manifests/TAG`` names the image. The registry checks
every digest itself and refuses a manifest whose blobs it does not have.

The store keeps layers as uncompressed tars, and an uncompressed tar is a
valid OCI layer (``application/vnd.oci.image.layer.v1.tar``): by default the
blobs and the manifest go as they are, so the manifest digest the registry
reports is the image's own. ``--compress`` gzips each layer first (smaller
over a slow link, a new manifest and digest).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import threading
import urllib.parse
import zlib
from pathlib import Path
from typing import IO, Any

from cshell.engine import events, trace
from cshell.engine.image.reference import Remote, parse_remote
from cshell.engine.image.store import (
    MT_CONFIG,
    MT_LAYER,
    MT_MANIFEST,
    Image,
    Store,
    bulk_hasher,
    sha256,
)
from cshell.engine.registry.client import Client
from cshell.engine.registry.distribution import (
    BlobSources,
    Interrupted,
    Job,
    Relay,
    Unauthorized,
    check,
    endpoint_for,
    run_jobs,
)
from cshell.errors import NotFound, RuntimeFailure, UsageError
from cshell.record import factory, record

UPLOADS = 5  # docker's max-concurrent-uploads
CHUNKED_ABOVE = 128 << 20  # blobs bigger than this go in PATCH chunks of this size
OCTETS = {"Content-Type": "application/octet-stream"}


@record
class Pushed:
    remote: Remote
    digest: str  # the manifest's: what `pull NAME@DIGEST` asks for
    size: int  # the manifest's size, as docker prints it
    layers: list[tuple[str, str]] = factory(list)  # (blob digest, status), top layer first


class UploadJob(Job):
    def __init__(self, digest: str, size: int, path: Path, diff_id: str, media_type: str) -> None:
        super().__init__(digest, size, f"Pushing {digest[7:19]}")
        self.path, self.diff_id, self.media_type = path, diff_id, media_type
        self.mount_from: str | None = None
        self.compress_into: Path | None = None  # --compress: gzip here first (digest and size change)

    @property
    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


def chunk_size() -> int:
    """CSHELL_PUSH_CHUNK=BYTES makes big-blob PATCH uploads visible on small images (teaching, tests)."""
    value = os.environ.get("CSHELL_PUSH_CHUNK", "")
    return int(value) if value.isdigit() and int(value) > 0 else CHUNKED_ABOVE


def push(store: Store, ref: str, compress: bool = False) -> Pushed:
    remote = parse_remote(ref)
    if remote.digest or not remote.local:
        raise UsageError(f"push takes NAME[:TAG], not a digest ({ref})", "tag the image with a name first")
    image = store.find(remote.local)
    if image is None:
        raise NotFound(f"An image does not exist locally with the tag: {remote.local}",
                       f"push sends an image by its name: tag IMAGE {remote.local} first")
    tmp = Path(tempfile.mkdtemp(prefix="push-", dir=_tmp_root(store))) if compress else None
    jobs, config_job = _jobs(store, image, tmp)
    sources = BlobSources(store.root)
    for job in (*jobs, config_job):
        job.mount_from = sources.mount_source(remote.registry, job.digest, remote.repository)
    mounts = sorted({f"repository:{j.mount_from}:pull" for j in (*jobs, config_job) if j.mount_from})
    relay = Relay()
    client = Client(endpoint_for(remote.registry), [f"repository:{remote.repository}:pull,push", *mounts],
                    say=relay.say)
    chunk = chunk_size()
    try:
        run_jobs([*jobs, config_job], lambda job, cancel: _upload(client, remote, job, cancel, chunk),  # type: ignore[arg-type]
                 relay, UPLOADS, client.abort)
        data, media_type = _manifest(store, image, jobs, config_job, compress)
        digest = _put_manifest(client, remote, data, media_type)
    except KeyboardInterrupt:
        raise Interrupted(f"push of {remote} interrupted (Ctrl-C): the tag was not written",
                          "push again: blobs already uploaded are skipped") from None
    finally:
        client.close()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    repo = f"{remote.registry}/{remote.repository}"
    sources.record([(j.digest, j.diff_id, repo) for j in [*jobs, config_job]])
    store.add_repo_digest(image, f"{remote.familiar}@{digest}")
    events.emit(store.root.path, "image", "push", str(remote), name=remote.familiar)
    return Pushed(remote, digest, len(data), [(j.digest, j.status) for j in reversed(jobs)])


def _tmp_root(store: Store) -> Path:
    path = store.root.path / "distribution" / "tmp"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def _jobs(store: Store, image: Image, tmp: Path | None) -> tuple[list[UploadJob], UploadJob]:
    manifest = json.loads(store.read_blob(image.manifest_digest))
    jobs = []
    for desc, layer in zip(manifest["layers"], image.layers, strict=True):
        path = store.blob_path(desc["digest"])
        job = UploadJob(desc["digest"], path.stat().st_size, path, layer.diff_id, desc.get("mediaType", MT_LAYER))
        if tmp is not None and desc["digest"] == layer.diff_id:
            job.compress_into = tmp / f"{layer.diff_id[7:]}.gz"
        jobs.append(job)
    config = store.blob_path(image.id)
    config_job = UploadJob(image.id, config.stat().st_size, config, image.id, MT_CONFIG)
    config_job.label = ""  # small: no progress bar, no line
    return jobs, config_job


def _upload(client: Client, remote: Remote, job: UploadJob, cancel: threading.Event, chunk: int) -> None:
    if job.compress_into is not None:
        _compress(job, cancel)
    check(cancel)
    if client.blob_exists(remote.repository, job.digest):
        job.status = "Layer already exists"
        return
    location = _start(client, remote, job)
    if location is None:
        return  # mounted from another repository
    if job.size <= chunk:
        resp = client.request("PUT", _with_digest(location, job.digest), OCTETS,
                              lambda: _Slice(job, 0, job.size, cancel), job.size)
    else:
        resp = _patch_chunks(client, location, job, cancel, chunk)
    if resp.status != 201:
        raise resp.error(f"PUT blob {job.digest[7:19]}")
    said = resp.header("Docker-Content-Digest")
    resp.close()
    if said and said != job.digest:
        raise RuntimeFailure(f"the registry stored blob {job.digest[7:19]} as {said[:19]}",
                             "the upload was damaged in transit; push again")
    job.done, job.status = job.size, "Pushed"


def _start(client: Client, remote: Remote, job: UploadJob) -> str | None:
    """An upload session's URL; None when the registry mounted the blob from another repository."""
    repo = remote.repository
    if job.mount_from:
        query = urllib.parse.urlencode({"mount": job.digest, "from": job.mount_from})
        with contextlib.suppress(Unauthorized):  # no pull right on the other repository: upload it
            resp = client.request("POST", f"/v2/{repo}/blobs/uploads/?{query}", body=b"")
            resp.close()
            if resp.status == 201:
                job.status = f"Mounted from {job.mount_from}"
                return None
            if resp.status == 202 and resp.header("Location"):
                return urllib.parse.urljoin(client.endpoint.url, resp.header("Location") or "")
    resp = client.request("POST", f"/v2/{repo}/blobs/uploads/", body=b"")
    if resp.status != 202 or not resp.header("Location"):
        raise resp.error(f"POST upload of {job.digest[7:19]}")
    resp.close()
    return urllib.parse.urljoin(client.endpoint.url, resp.header("Location") or "")


def _patch_chunks(client: Client, location: str, job: UploadJob, cancel: threading.Event, chunk: int) -> Any:
    offset = 0
    while offset < job.size:
        n = min(chunk, job.size - offset)
        headers = {**OCTETS, "Content-Range": f"{offset}-{offset + n - 1}"}
        resp = client.request("PATCH", location, headers, lambda o=offset, n=n: _Slice(job, o, n, cancel), n)
        if resp.status != 202 or not resp.header("Location"):
            raise resp.error(f"PATCH blob {job.digest[7:19]} at byte {offset}")
        resp.close()
        location = urllib.parse.urljoin(location, resp.header("Location") or "")
        offset += n
    return client.request("PUT", _with_digest(location, job.digest), OCTETS, b"")


def _with_digest(location: str, digest: str) -> str:
    return f"{location}{'&' if '?' in location else '?'}digest={urllib.parse.quote(digest)}"


class _Slice:
    """A request body: ``length`` bytes of the blob from ``offset``, counted for the progress bar."""

    def __init__(self, job: UploadJob, offset: int, length: int, cancel: threading.Event) -> None:
        self.job, self.left, self.cancel = job, length, cancel
        self.f: IO[bytes] = open(job.path, "rb")  # noqa: SIM115 - http.client closes it through close()
        self.f.seek(offset)
        job.done = offset

    def read(self, n: int = -1) -> bytes:
        check(self.cancel)
        data = self.f.read(self.left if n < 0 else min(n, self.left))
        self.left -= len(data)
        self.job.done += len(data)
        return data

    def close(self) -> None:
        self.f.close()


GZIP_BLOCK = 128 << 10  # bytes per gzip member
GZIP_WINDOW = 64  # blocks compressed at once (8 MiB in memory)


def _compress(job: UploadJob, cancel: threading.Event) -> None:
    """gzip the tar, fast: 128 KiB blocks, each a gzip member of its own (members
    concatenate into one valid gzip file, as pigz writes), compressed by a few threads
    at once (zlib releases the GIL). No timestamps: the same tar gives the same blob."""
    from concurrent.futures import ThreadPoolExecutor

    assert job.compress_into is not None
    digest, size = bulk_hasher(), 0
    with open(job.path, "rb") as src, open(job.compress_into, "wb") as out, \
            ThreadPoolExecutor(os.cpu_count() or 2, thread_name_prefix="cshell-gzip") as pool:
        while window := [block for _ in range(GZIP_WINDOW) if (block := src.read(GZIP_BLOCK))]:
            check(cancel)
            for data in pool.map(_gzip_member, window):
                digest.update(data)
                out.write(data)
                size += len(data)
    job.path, job.digest, job.size = job.compress_into, "sha256:" + digest.hexdigest(), size
    job.media_type = MT_LAYER + "+gzip"
    job.label = f"Pushing {job.digest[7:19]}"
    job.compress_into = None


def _gzip_member(block: bytes) -> bytes:
    """Level 1; a block whose sample does not shrink (random or compressed data) is
    stored (level 0), which costs a copy instead of a futile search for repeats."""
    sample = block[:4096]
    level = 1 if len(zlib.compress(sample, 1)) < 0.9 * len(sample) else 0
    packer = zlib.compressobj(level, zlib.DEFLATED, 31)
    return packer.compress(block) + packer.flush()


def _manifest(store: Store, image: Image, jobs: list[UploadJob], config_job: UploadJob,
              compress: bool) -> tuple[bytes, str]:
    """The store's manifest as it is; with --compress, one over the gzipped blobs."""
    if not compress:
        data = store.read_blob(image.manifest_digest)
        return data, json.loads(data).get("mediaType") or MT_MANIFEST
    manifest = {"schemaVersion": 2, "mediaType": MT_MANIFEST, "config": config_job.descriptor,
                "layers": [job.descriptor for job in jobs]}
    return json.dumps(manifest, sort_keys=True).encode(), MT_MANIFEST


def _put_manifest(client: Client, remote: Remote, data: bytes, media_type: str) -> str:
    tag = remote.tag or "latest"
    trace.step(f"# every blob is there: name the image {remote.repository}:{tag}")
    resp = client.request("PUT", f"/v2/{remote.repository}/manifests/{tag}", {"Content-Type": media_type}, data)
    if resp.status not in (200, 201):
        raise resp.error(f"PUT manifest {remote.repository}:{tag}")
    said = resp.header("Docker-Content-Digest")
    resp.close()
    digest = sha256(data)
    if said and said != digest:
        raise RuntimeFailure(f"the registry stored the manifest as {said[:19]}, not {digest[:19]}",
                             "the registry rewrote the manifest; pull by tag instead of by digest")
    return digest
