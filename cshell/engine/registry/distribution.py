"""Registries: endpoints, errors, and what pull and push share.

A registry speaks the OCI distribution API (Docker's "registry v2") over HTTP::

    GET  /v2/                              is this a registry? (401: log in first)
    GET  /v2/NAME/manifests/TAG|DIGEST     the manifest, or an index of manifests
    GET  /v2/NAME/blobs/DIGEST             a config or a layer, by its sha256
    HEAD /v2/NAME/blobs/DIGEST             does the registry have it?
    POST /v2/NAME/blobs/uploads/           start an upload (or ?mount=D&from=OTHER)
    PATCH/PUT <upload URL>?digest=D        send the bytes, then close the upload
    PUT  /v2/NAME/manifests/TAG            name the image

Everything but the tag is content-addressed: the client checks each sha256.
``pull.py`` and ``push.py`` hold the two directions; this module holds the
endpoints (mirrors; https, verified unless the registry is insecure, where
http is the fallback: loopback and ``insecure-registries``), the
small JSON under the state root that remembers which repository each blob
came from or went to (for cross-repository mounts), and the worker pool with
its progress bars. References (Docker's defaults: ``busybox`` is
``docker.io/library/busybox:latest``) are ``image/reference.py``; `login` and
`logout` are ``login.py``; an image `run` needs that is not here, ``fetch.py``.

Imports stay light: the HTTP machinery (client.py) is imported only when a
request is really made.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from cshell.engine import trace
from cshell.engine.image.reference import DOCKER_HUB, HUB_NAMES, Remote, ref_pattern
from cshell.engine.registry import config as regconfig
from cshell.engine.state import StateRoot, read_json, write_json
from cshell.errors import RuntimeFailure, UsageError
from cshell.record import factory, record

HUB_API = "https://registry-1.docker.io"
KEEP_REPOS = 8  # repositories remembered per blob (mount sources)


# -- errors, names and addresses ------------------------------------------------------------------


class Interrupted(RuntimeFailure):
    """Ctrl-C during a pull or push: reported as one line, not a traceback."""


class Unreachable(RuntimeFailure):
    """The registry cannot be reached at all (DNS, refused, timeout): a fallback may apply."""


class Unauthorized(RuntimeFailure):
    """401: no login, a wrong one, or no access to the repository."""


class ConnectionCut(RuntimeFailure):
    """The connection broke in the middle of a response."""


class DigestMismatch(RuntimeFailure):
    """Content that does not hash to the digest that names it: never stored, never resumed."""


class RegistryError(RuntimeFailure):
    """The registry answered with an error status."""

    def __init__(self, message: str, hint: str = "", status: int = 0, code: str = "") -> None:
        super().__init__(message, hint)
        self.status = status
        self.code = code


def resolve(host: str, port: int, timeout: float) -> list[tuple[Any, ...]]:
    """getaddrinfo with a deadline: a resolver that does not answer must not hang a `run`."""
    result: list[Any] = []

    def lookup() -> None:
        try:
            result.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as e:
            result.append(e)

    worker = threading.Thread(target=lookup, daemon=True)
    worker.start()
    worker.join(timeout)
    if not result:
        raise Unreachable(f"cannot resolve {host}: the DNS server did not answer within {timeout:g}s",
                          "check the network (cat /etc/resolv.conf), or work offline: CSHELL_OFFLINE=1")
    if isinstance(result[0], OSError):
        raise unreachable(host, result[0])
    return result[0]


def unreachable(host: str, e: OSError) -> Unreachable:
    if isinstance(e, socket.gaierror):
        return Unreachable(f"cannot resolve {host}: {e.strerror or e} (DNS)",
                           "check the name; with no network, images can be built or loaded locally")
    if isinstance(e, ConnectionRefusedError):
        return Unreachable(f"cannot connect to {host}: connection refused",
                           "is the registry running, on that port?")
    if isinstance(e, TimeoutError):
        return Unreachable(f"cannot connect to {host}: no answer (timed out)",
                           "check the network and the registry's address")
    return Unreachable(f"cannot connect to {host}: {e.strerror or e}", "check the network and the registry's address")


@record(frozen=True)
class Endpoint:
    url: str  # "https://registry-1.docker.io", "https://127.0.0.1:5000", "http://127.0.0.1:5000"
    registry: str  # the name logins are stored under: "docker.io", "127.0.0.1:5000"
    mirror: bool = False
    insecure: bool = False  # https unverified; a registry's (not a mirror's) falls back to plain http

    @property
    def netloc(self) -> str:
        return self.url.split("://", 1)[-1].split("/", 1)[0]


def registry_name(server: str | None) -> str:
    """What `login SERVER` means: ``https://index.docker.io/v1/`` and no server are Docker Hub."""
    if not server:
        return DOCKER_HUB
    name = server.split("://", 1)[-1].split("/", 1)[0]
    if name in HUB_NAMES:
        return DOCKER_HUB
    if not ref_pattern().match(f"{name}/x") or ref_pattern().match(f"{name}/x")["host"] != name:
        raise UsageError(f"invalid registry {server!r}", "a host and port, e.g. login localhost:5000")
    return name


def endpoint_for(registry: str) -> Endpoint:
    """https always; an insecure registry's certificate is not verified and, if https fails,
    the client falls back to http (Docker's order for loopback and insecure-registries)."""
    if registry == DOCKER_HUB:
        return Endpoint(HUB_API, DOCKER_HUB)
    return Endpoint(f"https://{registry}", registry, insecure=regconfig.is_insecure(registry))


def endpoints(remote: Remote, push: bool = False) -> list[Endpoint]:
    """Where to pull from: Docker Hub's mirrors first, in order (as Docker's registry-mirrors)."""
    found = []
    if remote.registry == DOCKER_HUB and not push:
        found = [Endpoint(url, netloc, mirror=True, insecure=regconfig.is_insecure(netloc))
                 for url in regconfig.mirrors() for netloc in [Endpoint(url, "").netloc]]
    return [*found, endpoint_for(remote.registry)]


def offline() -> bool:
    return os.environ.get("CSHELL_OFFLINE", "") not in ("", "0")


# -- where blobs came from and went -------------------------------------------------------------------


class BlobSources:
    """``distribution/blobs.json``: for each blob digest, its diff id and the repositories
    (``host/name``) known to hold it. Push mounts a blob from one of those repositories
    on the same registry instead of uploading it again (what Docker's v2 metadata does)."""

    def __init__(self, root: StateRoot) -> None:
        self.root = root
        self.path = root.path / "distribution" / "blobs.json"

    def _read(self) -> dict[str, Any]:
        try:
            doc = read_json(self.path)
        except (FileNotFoundError, ValueError):
            return {}
        return doc if isinstance(doc, dict) else {}

    def record(self, seen: list[tuple[str, str, str]]) -> None:
        """(blob digest, diff id, "host/repository") triples, newest first."""
        self.path.parent.mkdir(mode=0o700, exist_ok=True)
        with self.root.locked():
            doc = self._read()
            for digest, diff_id, repo in seen:
                entry = doc.setdefault(digest, {"diff_id": diff_id, "repos": []})
                entry["repos"] = [repo, *(r for r in entry.get("repos", []) if r != repo)][:KEEP_REPOS]
            write_json(self.path, doc)

    def mount_source(self, registry: str, digest: str, repository: str) -> str | None:
        """Another repository on the same registry that has the blob."""
        for repo in self._read().get(digest, {}).get("repos", []):
            host, _, name = repo.partition("/")
            if host == registry and name != repository:
                return name
        return None


def downloads(root: StateRoot) -> Path:
    """Partial layer downloads, ``<blob hex>.part``: a later pull resumes them (reconcile removes stale ones)."""
    path = root.path / "distribution" / "downloads"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


# -- concurrent transfers: workers move bytes, the main thread draws ---------------------------------------


class Abortable(Protocol):
    """What a Job needs of client.Response (named here so distribution never imports client)."""

    def abort(self) -> None: ...


@record
class Job:
    """One blob to move. Workers update ``done``; the main thread turns it into a progress bar."""

    digest: str
    size: int
    label: str
    status: str = ""
    done: int = 0
    shown: int = -1
    response: Abortable | None = None
    extra: dict[str, Any] = factory(dict)

    def abort(self) -> None:
        if self.response is not None:
            self.response.abort()


class Cancelled(Exception):  # noqa: N818 - a signal between threads, never shown
    """Raised in a worker after another worker failed or the user pressed Ctrl-C."""


class Relay:
    """Explain lines from worker threads, printed by the main thread (the view is single-threaded)."""

    def __init__(self) -> None:
        import queue

        self.queue: queue.SimpleQueue[str] = queue.SimpleQueue()

    def say(self, text: str) -> None:
        if not trace.explaining:
            return
        if threading.current_thread() is threading.main_thread():
            trace.step(text)
        else:
            self.queue.put(text)

    def drain(self) -> None:
        while not self.queue.empty():
            trace.step(self.queue.get_nowait())


def run_jobs(jobs: list[Job], work: Callable[[Job, threading.Event], None], relay: Relay, workers: int,
             abort: Callable[[], None]) -> None:
    """Run ``work`` on the jobs in a few threads; the first failure (or Ctrl-C) stops them all.

    Plain threads and a queue (concurrent.futures would import logging: 15 ms)."""
    import queue

    if not jobs:
        return
    cancel = threading.Event()
    todo: queue.SimpleQueue[Job] = queue.SimpleQueue()
    for job in jobs:
        todo.put(job)
    errors: list[BaseException] = []

    def worker() -> None:
        while not cancel.is_set():
            try:
                job = todo.get_nowait()
            except queue.Empty:
                return
            try:
                work(job, cancel)
            except BaseException as e:  # noqa: BLE001 - handed to the main thread, raised there
                errors.append(e)
                cancel.set()
                return

    threads = [threading.Thread(target=worker, name=f"cshell-blob-{i}", daemon=True)
               for i in range(min(workers, len(jobs)))]
    for thread in threads:
        thread.start()
    try:
        while alive := [t for t in threads if t.is_alive()]:
            alive[0].join(0.1)
            relay.drain()
            _show_progress(jobs)
            if errors:
                raise errors[0]
        if errors:
            raise errors[0]
        _show_progress(jobs)
    except BaseException:
        cancel.set()
        abort()  # unblock sockets mid-read or mid-send: the workers see `cancel` and stop
        raise
    finally:
        for thread in threads:
            thread.join()
        relay.drain()


def _show_progress(jobs: list[Job]) -> None:
    for job in jobs:
        if job.label and job.done != job.shown and job.size and job.done:
            job.shown = job.done
            trace.progress(job.label, job.done, job.size, "bytes")


def check(cancel: threading.Event) -> None:
    if cancel.is_set():
        raise Cancelled()
