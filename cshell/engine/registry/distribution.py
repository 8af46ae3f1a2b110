"""Registries: image references, endpoints, login, and what pull and push share.

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
references (Docker's defaults: ``busybox`` is ``docker.io/library/busybox:latest``),
the endpoints (mirrors, http only for loopback and insecure registries), the
small JSON under the state root that remembers which repository each blob
came from or went to (for cross-repository mounts), the worker pool with its
progress bars, `login`/`logout`, and what ``Store.get`` calls for an image
that is not here.

Imports stay light: the HTTP machinery (regclient) is imported only when a
request is really made.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cshell.engine import trace
from cshell.engine.image.store import ref_pattern
from cshell.engine.registry import config as regconfig
from cshell.engine.state import StateRoot, read_json, write_json
from cshell.errors import NotFound, RuntimeFailure, UsageError
from cshell.record import factory, record

if TYPE_CHECKING:
    from cshell.engine.image.store import Image, Store
    from cshell.engine.registry.client import Response

DOCKER_HUB = regconfig.DOCKER_HUB
HUB_API = "https://registry-1.docker.io"
HUB_NAMES = ("docker.io", "index.docker.io", "registry-1.docker.io")
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
    url: str  # "https://registry-1.docker.io", "http://127.0.0.1:5000"
    registry: str  # the name logins are stored under: "docker.io", "127.0.0.1:5000"
    mirror: bool = False

    @property
    def netloc(self) -> str:
        return self.url.split("://", 1)[-1].split("/", 1)[0]


# -- references ---------------------------------------------------------------------------------


@record(frozen=True)
class Remote:
    """An image reference with Docker's defaults filled in."""

    registry: str  # "docker.io", "localhost:5000"
    repository: str  # "library/busybox", "app"
    tag: str | None
    digest: str | None = None

    @property
    def familiar(self) -> str:
        """The repository as docker shows it: ``busybox``, ``user/app``, ``localhost:5000/app``."""
        if self.registry == DOCKER_HUB:
            return self.repository.removeprefix("library/")
        return f"{self.registry}/{self.repository}"

    @property
    def local(self) -> str | None:
        """The name in the store (None for a pull by digest only: the image stays untagged)."""
        return f"{self.familiar}:{self.tag}" if self.tag else None

    @property
    def reference(self) -> str:
        return self.digest or self.tag or "latest"

    @property
    def full(self) -> str:
        """docker.io/library/busybox:latest, as the last line of `docker pull` prints it."""
        return f"{self.registry}/{self.repository}" + (f":{self.tag}" if self.tag else "") + \
            (f"@{self.digest}" if self.digest else "")

    def __str__(self) -> str:
        return self.familiar + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")


def parse_remote(ref: str) -> Remote:
    """Docker's rules: the first part is a registry when it has a '.' or ':' or is localhost."""
    match = ref_pattern().match(ref or "")
    if not match or len(ref) > 255:
        raise UsageError(f"invalid image name {ref!r}",
                         "names are lowercase, like busybox, geektime/helloworld:v1 or localhost:5000/app:2")
    first, sep, rest = ref.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, rest
    else:
        registry, path = DOCKER_HUB, ref
    name, _, digest = path.partition("@")
    repository, tag = name, None
    if ":" in name.rsplit("/", 1)[-1]:
        repository, _, tag = name.rpartition(":")
    if registry in HUB_NAMES:
        registry = DOCKER_HUB
        if "/" not in repository:
            repository = f"library/{repository}"
    return Remote(registry, repository, tag or (None if digest else "latest"), digest or None)


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
    if registry == DOCKER_HUB:
        return Endpoint(HUB_API, DOCKER_HUB)
    scheme = "http" if regconfig.is_insecure(registry) else "https"
    return Endpoint(f"{scheme}://{registry}", registry)


def endpoints(remote: Remote, push: bool = False) -> list[Endpoint]:
    """Where to pull from: Docker Hub's mirrors first, in order (as Docker's registry-mirrors)."""
    found = []
    if remote.registry == DOCKER_HUB and not push:
        found = [Endpoint(url, Endpoint(url, "").netloc, mirror=True) for url in regconfig.mirrors()]
    return [*found, endpoint_for(remote.registry)]


def offline() -> bool:
    return os.environ.get("CSHELL_OFFLINE", "") not in ("", "0")


# -- Store.get: an image that is not here --------------------------------------------------------


def fetch_missing(store: Store, ref: str) -> Image:
    """Pull it; when no registry can be reached and cshell has a recipe for it, build it instead."""
    from cshell.engine.image import bootstrap

    remote = parse_remote(ref)
    if offline():
        if bootstrap.can_bootstrap(ref):
            return bootstrap.bootstrap(store, ref)
        raise NotFound(f"no such image: {ref}", "CSHELL_OFFLINE is set, so nothing is pulled: "
                       "build, load or `image bootstrap` an image")
    try:
        _quick_resolve(remote)
        from cshell.engine.registry.pull import pull

        pulled = pull(store, ref, implicit=True)
    except Unreachable as e:
        if not bootstrap.can_bootstrap(ref):
            raise NotFound(f"no such image: {ref} (and {remote.registry} is out of reach: {e.message})",
                           "`images` lists what is here; build, load or `image bootstrap` one") from None
        trace.step(f"# {e.message}")
        return bootstrap.bootstrap(store, ref, unreachable=remote.registry)
    except (NotFound, Unauthorized, RegistryError) as e:
        raise NotFound(f"no such image: {ref} here, and pulling it failed: {e.message}", e.hint) from None
    trace.info(f"Unable to find image '{ref}' locally: pulled {pulled.remote.full} ({pulled.digest[:19]}…)")
    return pulled.image


def _quick_resolve(remote: Remote) -> None:
    """Offline machines fail here in milliseconds, before the HTTP machinery is even imported."""
    last: Unreachable | None = None
    for endpoint in endpoints(remote):
        host = endpoint.netloc.rsplit(":", 1)[0] if endpoint.netloc.count(":") == 1 else endpoint.netloc
        try:
            resolve(host.strip("[]"), 443, 3.0)
            return
        except Unreachable as e:
            last = e
    assert last is not None
    raise last


# -- login ----------------------------------------------------------------------------------------


def login(server: str | None, user: str, password: str) -> tuple[str, Path]:
    """Check the login against the registry (GET /v2/ with it), then store it. Returns (registry, file)."""
    from cshell.engine.registry.client import Client

    registry = registry_name(server)
    if not user or not password:
        raise UsageError("login needs a username and a password", f"login -u USER --password-stdin {registry}")
    client = Client(endpoint_for(registry), [], creds=(user, password), say=trace.step)
    try:
        resp = client.request("GET", "/v2/")
        resp.close()
    except Unauthorized:
        raise Unauthorized(f"login to {registry} failed: incorrect username or password",
                           "check them and try again; nothing was stored") from None
    finally:
        client.close()
    if resp.status != 200:
        raise RuntimeFailure(f"{registry} answered GET /v2/ with HTTP {resp.status}",
                             "is it a registry (the OCI distribution API lives under /v2/)?")
    trace.step(f"write {regconfig.path()} (mode 0600): auths[{regconfig.auth_key(registry)!r}]")
    return registry, regconfig.store_credentials(registry, user, password)


def logout(server: str | None) -> tuple[str, bool]:
    registry = registry_name(server)
    return registry, regconfig.remove_credentials(registry)


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


@record
class Job:
    """One blob to move. Workers update ``done``; the main thread turns it into a progress bar."""

    digest: str
    size: int
    label: str
    status: str = ""
    done: int = 0
    shown: int = -1
    response: Response | None = None
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
            trace.progress(job.label, job.done, job.size)


def check(cancel: threading.Event) -> None:
    if cancel.is_set():
        raise Cancelled()
