"""HTTP for the OCI distribution API: connections, redirects, errors and auth.

Only pull, push and login import this module (http.client and ssl cost
~30 ms to import; a `run` of an image that is here never pays it).

Auth follows what Docker does. A request goes out anonymously; a ``401``
carries ``WWW-Authenticate``, which says how to authenticate:

* ``Basic realm=...``: send ``Authorization: Basic base64(user:password)``
  (the login stored by `login`), or fail with a hint to log in;
* ``Bearer realm=URL,service=S,scope=repository:NAME:pull``: ask the token
  server at URL for a token for that service and scope (with the stored
  login as Basic auth, or anonymously), then retry with
  ``Authorization: Bearer TOKEN``. Tokens are kept per scope for the command.

Credentials and tokens never appear in explain lines or errors: the lines
say ``Authorization: Basic <redacted>``.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import re
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Callable
from typing import IO, Any

from cshell import __version__
from cshell.engine.registry import config as regconfig
from cshell.engine.registry import dockercfg, tls
from cshell.engine.registry.distribution import (
    ConnectionCut,
    Endpoint,
    RegistryError,
    Unauthorized,
    Unreachable,
    resolve,
    unreachable,
)
from cshell.errors import NotFound, RuntimeFailure, reason

USER_AGENT = f"cshell/{__version__} (teaching shell; docker-compatible)"
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 60.0
MAX_JSON = 4 << 20
BLOCK = 1 << 20  # bytes per socket send/recv: small blocks cost Python calls
REDIRECTS = (301, 302, 303, 307, 308)
CHALLENGE_RE = re.compile(r'(\w+)\s*=\s*"([^"]*)"')


def _connector(connect_timeout: float) -> Callable[..., socket.socket]:
    """socket.create_connection with a resolver deadline and a connect timeout (the TLS handshake
    too gets that long; the connection classes below then set the read timeout)."""

    def create(address: tuple[str, int], timeout: Any = None, source: Any = None) -> socket.socket:
        host, port = address
        last: OSError | None = None
        for family, kind, proto, _, addr in resolve(host, port, connect_timeout):
            sock = socket.socket(family, kind, proto)
            sock.settimeout(connect_timeout)
            try:
                sock.connect(addr)
            except OSError as e:
                sock.close()
                last = e
                continue
            return sock
        raise unreachable(f"{host}:{port}", last or OSError("no address"))
    return create


class _HTTP(http.client.HTTPConnection):
    def connect(self) -> None:
        super().connect()
        self.sock.settimeout(READ_TIMEOUT)


class _HTTPS(http.client.HTTPSConnection):
    def connect(self) -> None:
        super().connect()  # connect, then the handshake, both within the connect timeout
        self.sock.settimeout(READ_TIMEOUT)


# -- sockets and responses --------------------------------------------------------------------------------


class Response:
    """A response being read; ``close`` drops the connection when the body was not read to its end."""

    def __init__(self, raw: http.client.HTTPResponse, conn: http.client.HTTPConnection, url: str) -> None:
        self.raw, self.conn, self.url = raw, conn, url
        self.status = raw.status
        self.sock = conn.sock  # for abort(): shut down from another thread

    def header(self, name: str) -> str | None:
        return self.raw.getheader(name)

    def read(self, n: int = BLOCK) -> bytes:
        """What has arrived, up to n bytes (b"" at the end): progress moves as bytes come."""
        try:
            return self.raw.read1(n)
        except (http.client.IncompleteRead, ConnectionError, TimeoutError, OSError) as e:
            self.close()
            raise ConnectionCut(f"the connection to {urllib.parse.urlsplit(self.url).netloc} broke: "
                                f"{type(e).__name__}", "try again") from None

    def body(self, limit: int = MAX_JSON) -> bytes:
        data = b""
        while chunk := self.read(BLOCK):
            data += chunk
            if len(data) > limit:
                self.close()
                raise RuntimeFailure(f"{self.url} sent more than {limit >> 20} MiB",
                                     "a manifest or config is small; the registry misbehaves")
        self.close()
        return data

    def json(self) -> Any:
        data = self.body()
        try:
            return json.loads(data)
        except ValueError:
            raise RuntimeFailure(f"{self.url} did not answer with JSON", "is it an OCI registry?") from None

    def close(self) -> None:
        if not self.raw.isclosed():
            self.raw.close()
            self.conn.close()  # the unread rest of the body would poison the next request

    def abort(self) -> None:
        """From another thread: unblock a read in progress (Ctrl-C)."""
        with contextlib.suppress(OSError, AttributeError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def error(self, what: str) -> RegistryError:
        """The registry's own error (``{"errors": [{"code", "message"}]}``) as one line."""
        code, message = "", ""
        with contextlib.suppress(Exception):
            first = json.loads(self.body(1 << 16))["errors"][0]
            code, message = str(first.get("code", "")), str(first.get("message", ""))
        self.close()
        detail = f"{code.lower().replace('_', ' ')}: {message}" if code else f"HTTP {self.status} {self.raw.reason}"
        return RegistryError(f"{what}: {detail}", "", self.status, code)


# -- auth --------------------------------------------------------------------------------------


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(CHALLENGE_RE.findall(rest))


def merge_scopes(scopes: list[str]) -> tuple[str, ...]:
    """One scope per resource with all its actions: repository:a:pull + repository:a:push -> pull,push."""
    merged: dict[str, dict[str, None]] = {}
    for scope in scopes:
        resource, _, actions = scope.rpartition(":")
        if not resource:
            resource, actions = scope, ""
        merged.setdefault(resource, {}).update(dict.fromkeys(a for a in actions.split(",") if a))
    return tuple(f"{r}:{','.join(a)}" if a else r for r, a in merged.items())


def basic(creds: tuple[str, str]) -> str:
    return "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()


class Auth:
    """The Authorization header for one registry, renewed when it answers 401."""

    def __init__(self, registry: str, creds: tuple[str, str] | None, scopes: list[str]) -> None:
        self.registry, self.creds, self.scopes = registry, creds, list(scopes)
        self.header: str | None = None
        self.tokens: dict[tuple[str, ...], str] = {}
        self.lock = threading.Lock()
        self.refused = False  # the last 401 was for a login we sent (not a missing one)

    def renew(self, client: Client, challenge: str, sent: str | None) -> bool:
        """After a 401 for a request sent with ``sent``: a new header to retry with, or False."""
        scheme, params = parse_challenge(challenge)
        with self.lock:
            if self.header != sent:  # another thread already renewed it
                return True
            if scheme == "basic":
                if self.creds is None or sent is not None:
                    self.refused = sent is not None
                    return False
                self.header = basic(self.creds)
                return True
            if scheme != "bearer" or "realm" not in params:
                return False
            scopes = merge_scopes([*self.scopes, *params.get("scope", "").split()])
            key = (params.get("service", ""), *scopes)
            if key in self.tokens and sent == f"Bearer {self.tokens[key]}" \
                    and params.get("error") != "invalid_token":  # an expired token is renewed below
                self.refused = self.creds is not None
                return False  # a token for exactly this scope was refused: no access
            self.tokens[key] = client.token(params["realm"], params.get("service", ""), scopes, self.creds)
            self.header = f"Bearer {self.tokens[key]}"
            return True


# -- the client ------------------------------------------------------------------------------


class Client:
    """Requests to one registry endpoint, from any number of threads (one connection each)."""

    def __init__(self, endpoint: Endpoint, scopes: list[str], creds: tuple[str, str] | None = None,
                 say: Callable[[str], None] | None = None, connect_timeout: float = CONNECT_TIMEOUT,
                 use_stored_login: bool = True) -> None:
        self.endpoint = endpoint
        self.creds_from = "the login given"
        if creds is None and use_stored_login:  # cshell's own login, else the one Docker's CLI has
            creds = regconfig.credentials(endpoint.registry)
            self.creds_from = f"the login stored in {regconfig.path()}"
            if creds is None:
                creds = dockercfg.credentials(endpoint.registry)
                self.creds_from = f"the login Docker's CLI has ({dockercfg.cli_config()})"
        self.auth = Auth(endpoint.registry, creds, scopes)
        self.say = say or (lambda text: None)
        self.connect = _connector(connect_timeout)
        self.local = threading.local()
        self.contexts: dict[str, ssl.SSLContext] = {}
        self.all_conns: list[http.client.HTTPConnection] = []
        self.settle_lock, self.context_lock = threading.Lock(), threading.Lock()
        self.settled = not (endpoint.insecure and endpoint.url.startswith("https://") and not endpoint.mirror)

    # connections: one per thread and host, kept alive

    def _conn(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        pool = self.local.__dict__.setdefault("pool", {})
        conn = pool.get((scheme, netloc))
        if conn is None:
            if scheme == "https":
                conn = _HTTPS(netloc, context=self._context(netloc), blocksize=BLOCK)
            else:
                conn = _HTTP(netloc, blocksize=BLOCK)
            conn._create_connection = self.connect  # type: ignore[attr-defined]  # our deadlines
            pool[(scheme, netloc)] = conn
            self.all_conns.append(conn)
        return conn

    def _context(self, netloc: str) -> ssl.SSLContext:
        """The registry's (its certs.d; unverified when insecure). Its token server and redirects
        (another host) trust its certs.d CAs too, as with Docker, but are always verified and get no
        client certificate."""
        with self.context_lock:
            if netloc not in self.contexts:
                registry = self.endpoint.netloc
                self.contexts[netloc] = tls.context(registry, not self.endpoint.insecure, self.say) \
                    if netloc == registry else tls.context(registry, True, client=False)
            return self.contexts[netloc]

    def _settle(self) -> None:
        """An insecure registry: https without verification if it answers TLS, else plain http (Docker's order)."""
        if self.settled:
            return
        with self.settle_lock:
            if self.settled:
                return
            netloc = self.endpoint.netloc
            conn = self._conn("https", netloc)  # a bad certs.d file is an error here, not a reason for http
            try:
                conn.connect()
            except (ssl.SSLError, OSError, Unreachable) as e:
                conn.close()
                self.say(f"# https://{netloc}: {tls.why(e)}; {netloc} is an insecure registry: trying http://{netloc}")
                self.endpoint = Endpoint(f"http://{netloc}", self.endpoint.registry, insecure=True)
            else:
                self.say(f"# https://{netloc} answers TLS (not verified: {netloc} is an insecure registry)")
            self.settled = True

    def close(self) -> None:
        for conn in self.all_conns:
            conn.close()

    def abort(self) -> None:
        """From the main thread (Ctrl-C, a failed worker): unblock every socket in use."""
        for conn in list(self.all_conns):
            with contextlib.suppress(OSError, AttributeError):
                conn.sock.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]

    # requests

    def url(self, path: str) -> str:
        return path if "://" in path else self.endpoint.url + path

    def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                body: bytes | Callable[[], IO[bytes]] | None = None, length: int | None = None,
                follow: bool = True) -> Response:
        """One API request: authenticated (renewing the token on a 401), redirects followed."""
        self._settle()
        url = self.url(path)
        for _ in range(6):
            own = urllib.parse.urlsplit(url).netloc == self.endpoint.netloc
            sent = self.auth.header if own else None  # a redirect to a CDN gets no credentials
            resp = self._send(method, url, headers or {}, body, length, sent)
            if resp.status == 401 and own:
                challenge = resp.header("WWW-Authenticate") or ""
                self.say(f"# 401 Unauthorized, WWW-Authenticate: {challenge}")
                resp.close()
                if self.auth.renew(self, challenge, sent):
                    resp = self._send(method, url, headers or {}, body, length, self.auth.header)
                if resp.status == 401:
                    resp.close()
                    if self.auth.header is not None and self.auth.creds is not None:
                        self.auth.refused = True  # a login went with it: refused, not missing
                    raise self.unauthorized(method, url)
            if follow and resp.status in REDIRECTS and resp.header("Location"):
                location = urllib.parse.urljoin(url, resp.header("Location") or "")
                resp.close()
                url = location
                continue
            return resp
        raise RuntimeFailure(f"too many redirects from {self.endpoint.url}", "the registry misbehaves")

    def _send(self, method: str, url: str, headers: dict[str, str], body: bytes | Callable[[], IO[bytes]] | None,
              length: int | None, authorization: str | None) -> Response:
        parts = urllib.parse.urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        all_headers = {"User-Agent": USER_AGENT, **headers}
        if authorization:
            all_headers["Authorization"] = authorization
        if body is not None:
            all_headers["Content-Length"] = str(length if length is not None else len(body))  # type: ignore[arg-type]
        redacted = " (Authorization: <redacted>)" if authorization else ""
        self.say(f"{method} {parts.scheme}://{parts.netloc}{_short(urllib.parse.unquote(target))}{redacted}")
        for attempt in (0, 1):
            conn = self._conn(parts.scheme, parts.netloc)
            reused = conn.sock is not None
            data = body() if callable(body) else body
            try:
                conn.request(method, target, body=data, headers=all_headers)
                return Response(conn.getresponse(), conn, url)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                conn.close()
                if not reused or attempt:  # a kept-alive connection the server closed: retry once
                    raise ConnectionCut(f"{parts.netloc} closed the connection", "try again") from None
            except ssl.SSLError as e:
                conn.close()
                raise tls.error(parts.netloc, e) from None
            except TimeoutError:
                conn.close()
                raise ConnectionCut(f"{parts.netloc} did not answer within {READ_TIMEOUT:g}s",
                                    "the registry is overloaded or the network stalls; try again") from None
            except (http.client.HTTPException, OSError) as e:
                conn.close()
                raise ConnectionCut(f"talking to {parts.netloc} failed: {reason(e)}", "try again") from None
            finally:
                if hasattr(data, "close"):
                    data.close()  # type: ignore[union-attr]
        raise AssertionError("unreachable")

    def unauthorized(self, method: str, url: str) -> Unauthorized:
        login = "login" if self.endpoint.registry == regconfig.DOCKER_HUB else f"login {self.endpoint.registry}"
        what = urllib.parse.urlsplit(url).path
        if self.auth.refused:
            return Unauthorized(f"{self.endpoint.registry} refused access ({method} {_short(what)}) for {self.creds_from}",
                                f"the user may lack access to this repository, or the password changed: {login}")
        return Unauthorized(f"{self.endpoint.registry} wants a login ({method} {_short(what)}: 401 unauthorized)",
                            f"{login}  (it asks for a user and password and stores them in {regconfig.path()})")

    # the token server

    def token(self, realm: str, service: str, scopes: tuple[str, ...], creds: tuple[str, str] | None) -> str:
        query = urllib.parse.urlencode([("service", service), *(("scope", s) for s in scopes if s)])
        url = f"{realm}{'&' if '?' in realm else '?'}{query}"
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "https" and not regconfig.is_insecure(parts.netloc):
            raise RuntimeFailure(f"the token server {parts.netloc} is plain http", "a login is only sent over https")
        resp = self._send("GET", url, {"Accept": "application/json"}, None, None,
                          basic(creds) if creds else None)
        if resp.status == 401:
            resp.close()
            self.auth.refused = True
            raise Unauthorized(f"{parts.netloc} refused the login: incorrect username or password",
                               f"login {self.endpoint.registry} again")
        if resp.status != 200:
            raise resp.error(f"the token server {parts.netloc} refused a token")
        doc = resp.json()
        token = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise RuntimeFailure(f"the token server {parts.netloc} sent no token", "the registry's auth misbehaves")
        return token

    # the API calls

    def get_manifest(self, repository: str, reference: str, accept: str) -> Response:
        resp = self.request("GET", f"/v2/{repository}/manifests/{reference}", {"Accept": accept})
        if resp.status == 404:
            raise NotFound(f"manifest for {repository}:{reference} not found: manifest unknown",
                           "check the name and the tag (a registry's web page or `skopeo list-tags` lists them)")
        if resp.status != 200:
            raise resp.error(f"GET manifest {repository}:{reference}")
        return resp

    def blob_exists(self, repository: str, digest: str) -> bool:
        resp = self.request("HEAD", f"/v2/{repository}/blobs/{digest}")
        resp.close()
        if resp.status in (200, 404):
            return resp.status == 200
        raise resp.error(f"HEAD blob {digest[:19]}")


def _short(target: str) -> str:
    """Upload URLs carry a long opaque _state: the explain line keeps the start of it."""
    return target if len(target) <= 160 else target[:150] + "…"
