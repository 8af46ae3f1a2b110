"""Real registries for the tests, on 127.0.0.1 (or an address a test adds to ``lo``).

* ``Registry``: Debian's ``docker-registry`` (distribution 2.8) with a temporary
  filesystem store, open, with htpasswd basic auth, or with token auth; plain http,
  or TLS with a certificate (and, for mutual TLS, the CAs client certificates must be from);
* ``TokenServer``: a small but real token endpoint (Docker's token spec): it
  checks a Basic login and answers with an RS256 JWT signed by a key whose
  self-signed certificate the registry trusts (``rootcertbundle``);
* ``FaultProxy``: an HTTP proxy in front of a registry that counts requests
  and, on demand, corrupts or cuts layer downloads.

Every server is stopped and its files removed by ``stop()``.
"""

from __future__ import annotations

import base64
import http.client
import http.server
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REGISTRY_BIN = "/usr/bin/docker-registry"
HTPASSWD_BIN = "/usr/bin/htpasswd"
SERVICE, ISSUER = "cshell-test-registry", "cshell-test-issuer"


def free_port(addr: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((addr, 0))
        return s.getsockname()[1]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def serve(auth: str = "open", users: dict[str, str] | None = None, addr: str = "127.0.0.1",
          tls: dict[str, Any] | None = None) -> Iterator[Registry]:
    """A registry for a fixture: skips when docker-registry is missing, stops it afterwards."""
    import pytest

    if not Path(REGISTRY_BIN).exists():
        pytest.skip("needs docker-registry (make deps installs it)")
    reg = Registry(auth, users, addr, tls).start()
    try:
        yield reg
    finally:
        reg.stop()
        assert reg.proc is None or reg.proc.poll() is not None, "docker-registry still runs"


class Registry:
    """docker-registry serve CONFIG, on ADDR:PORT; ``auth`` is "open", "htpasswd" or "token";
    ``tls`` ({"certificate": PEM file, "key": PEM file, "clientcas": [PEM files]}) serves https."""

    def __init__(self, auth: str = "open", users: dict[str, str] | None = None, addr: str = "127.0.0.1",
                 tls: dict[str, Any] | None = None) -> None:
        self.auth, self.users, self.addr, self.tls = auth, users or {"student": "s3cret-pass"}, addr, tls
        self.dir = Path(tempfile.mkdtemp(prefix="cshell-registry-", dir="/tmp"))
        self.port = free_port(addr)
        self.host = f"{addr}:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.token: TokenServer | None = None

    def start(self) -> Registry:
        config = self.dir / "config.yml"
        config.write_text(self._config())
        log = open(self.dir / "registry.log", "wb")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen([REGISTRY_BIN, "serve", str(config)], stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {self.log()[-2000:]}")
            try:
                if self.tls:  # no client certificate here to ask with: the port listening is enough
                    socket.create_connection((self.addr, self.port), timeout=1).close()
                    return self
                status, _, _ = request("GET", f"http://{self.host}/v2/")
                if status in (200, 401):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("docker-registry did not start")

    def _config(self) -> str:
        lines = ["version: 0.1", "log:", "  level: info", "  accesslog:", "    disabled: false", "storage:",
                 "  filesystem:", f"    rootdirectory: {self.dir / 'data'}", "  delete:", "    enabled: true",
                 "http:", f"  addr: {self.host}", "  secret: cshell-test-secret"]
        if self.tls:
            lines += ["  tls:", f"    certificate: {self.tls['certificate']}", f"    key: {self.tls['key']}"]
            if self.tls.get("clientcas"):
                lines += ["    clientcas:", *(f"      - {ca}" for ca in self.tls["clientcas"])]
        if self.auth == "htpasswd":
            path = self.dir / "htpasswd"
            path.write_text("".join(
                subprocess.run([HTPASSWD_BIN, "-Bbn", user, password], capture_output=True, text=True,
                               check=True).stdout.strip() + "\n" for user, password in self.users.items()))
            lines += ["auth:", "  htpasswd:", "    realm: cshell-test", f"    path: {path}"]
        elif self.auth == "token":
            tls_pair = (self.tls["certificate"], self.tls["key"]) if self.tls else None  # same name, same cert
            self.token = TokenServer(self.dir / "token", self.users, self.addr, tls_pair).start()
            lines += ["auth:", "  token:", f"    realm: {self.token.realm}", f"    service: {SERVICE}",
                      f"    issuer: {ISSUER}", f"    rootcertbundle: {self.token.cert}"]
        return "\n".join(lines) + "\n"

    def log(self) -> str:
        try:
            return (self.dir / "registry.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.token is not None:
            self.token.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    # raw API access for the tests (building indexes by hand, checking what is there)

    def url(self, path: str) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}{path}"


def request(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None,
            timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.netloc, timeout=timeout)
    try:
        conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body=body,
                     headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def put_blob(registry: Registry, repo: str, data: bytes, digest: str) -> None:
    status, headers, _ = request("POST", registry.url(f"/v2/{repo}/blobs/uploads/"), b"")
    assert status == 202, status
    location = urllib.parse.urljoin(registry.url("/"), headers["location"])
    sep = "&" if "?" in location else "?"
    status, _, body = request("PUT", f"{location}{sep}digest={digest}", data,
                              {"Content-Type": "application/octet-stream"})
    assert status == 201, (status, body)


def put_manifest(registry: Registry, repo: str, ref: str, data: bytes, media_type: str) -> None:
    status, _, body = request("PUT", registry.url(f"/v2/{repo}/manifests/{ref}"), data, {"Content-Type": media_type})
    assert status == 201, (status, body)


# -- the token server -----------------------------------------------------------------------------


class TokenServer:
    """GET /token?service=S&scope=repository:NAME:pull,push with an optional Basic login.

    A known user gets every action asked for; anyone gets ``pull`` on ``public/*``;
    a wrong password gets 401. Tokens are RS256 JWTs signed with ``openssl dgst``.
    """

    def __init__(self, directory: Path, users: dict[str, str], addr: str = "127.0.0.1",
                 tls: tuple[Any, Any] | None = None) -> None:
        self.dir, self.users = directory, users
        self.dir.mkdir(parents=True, exist_ok=True)
        self.key, self.cert = self.dir / "key.pem", self.dir / "cert.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(self.key),
                        "-out", str(self.cert), "-days", "2", "-subj", "/CN=cshell-test-token"],
                       check=True, capture_output=True)
        der = "".join(line for line in self.cert.read_text().splitlines() if "-----" not in line)
        self.x5c = [der]  # the PEM body is the base64 of the DER certificate
        self.requests: list[dict[str, Any]] = []
        self.server = http.server.ThreadingHTTPServer((addr, 0), self._handler())
        if tls is not None:  # https: the handshake happens in the handler thread, on first read
            import ssl

            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True,
                                                     do_handshake_on_connect=False)
        scheme = "https" if tls is not None else "http"
        self.realm = f"{scheme}://{addr}:{self.server.server_address[1]}/token"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> TokenServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def sign(self, claims: dict[str, Any]) -> str:
        header = {"typ": "JWT", "alg": "RS256", "x5c": self.x5c}
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)],
                                   input=signing_input.encode(), capture_output=True, check=True).stdout
        return f"{signing_input}.{b64url(signature)}"

    def grant(self, user: str | None, scopes: list[str]) -> list[dict[str, Any]]:
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind != "repository" or not name:
                continue
            wanted = [a for a in actions.split(",") if a]
            allowed = wanted if user else [a for a in wanted if a == "pull" and name.startswith("public/")]
            if allowed:
                access.append({"type": "repository", "name": name, "actions": allowed})
        return access

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                auth = self.headers.get("Authorization", "")
                user = None
                if auth.startswith("Basic "):
                    name, _, password = base64.b64decode(auth[6:]).decode().partition(":")
                    if server.users.get(name) != password:
                        server.requests.append({"user": name, "ok": False, "scopes": query.get("scope", [])})
                        return self._send(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad login"}]})
                    user = name
                scopes = query.get("scope", [])
                server.requests.append({"user": user, "ok": True, "scopes": scopes, "auth": auth})
                now = int(time.time())
                claims = {"iss": ISSUER, "sub": user or "", "aud": query.get("service", [""])[0],
                          "exp": now + 300, "nbf": now - 10, "iat": now, "jti": os.urandom(8).hex(),
                          "access": server.grant(user, scopes)}
                token = server.sign(claims)
                self._send(200, {"token": token, "access_token": token, "expires_in": 300})

            def _send(self, status: int, doc: dict[str, Any]) -> None:
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


# -- the faulty proxy ------------------------------------------------------------------------------------


HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade", "trailer"}


class FaultProxy:
    """Forwards to the registry. ``corrupt``: flip a byte in each layer blob sent;
    ``cut``: the first ``cut`` layer downloads stop half-way (the connection closes);
    ``endless``: each layer is sent with no Content-Length and followed by zeros until the
    client hangs up (or ENDLESS_CAP bytes), counted in ``sent``.
    Every request is recorded as (method, path, Range header)."""

    ENDLESS_CAP = 256 << 20

    def __init__(self, upstream: str, corrupt: bool = False, cut: int = 0, stall: bool = False,
                 layer_min: int = 1024, endless: bool = False) -> None:
        self.upstream, self.corrupt, self.cut, self.layer_min = upstream, corrupt, cut, layer_min
        self.endless, self.sent = endless, 0
        self.stall = stall  # send half of each layer, then hang (until stop): a download to interrupt
        self.release = threading.Event()
        self.requests: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def count(self, *methods: str) -> int:
        return sum(1 for m, _, _ in self.requests if m in methods)

    def _take_cut(self) -> bool:
        with self.lock:
            if self.cut > 0:
                self.cut -= 1
                return True
            return False

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                proxy.requests.append((self.command, self.path, self.headers.get("Range", "")))
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
                conn = http.client.HTTPConnection(proxy.upstream, timeout=30)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    self._relay(resp)
                finally:
                    conn.close()

            def _relay(self, resp: http.client.HTTPResponse) -> None:
                data = resp.read() if self.command != "HEAD" else b""
                is_layer = (self.command == "GET" and "/blobs/sha256:" in self.path and resp.status in (200, 206)
                            and len(data) >= proxy.layer_min)
                if is_layer and proxy.corrupt:
                    mid = len(data) // 2
                    data = data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1:]
                if is_layer and proxy.endless:
                    self._send_endless(resp, data)
                    return
                cut = is_layer and proxy._take_cut()
                self.send_response(resp.status)
                for key, value in resp.getheaders():
                    if key.lower() not in HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                length = resp.getheader("Content-Length") if self.command == "HEAD" else str(len(data))
                self.send_header("Content-Length", length or "0")
                if cut:
                    self.send_header("Connection", "close")
                self.end_headers()
                if is_layer and proxy.stall:
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    proxy.release.wait(60)
                    self.close_connection = True
                    return
                if cut:
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(data)

            def _send_endless(self, resp: http.client.HTTPResponse, data: bytes) -> None:
                self.send_response(resp.status)
                for key, value in resp.getheaders():
                    if key.lower() not in HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                self.send_header("Connection", "close")  # the body ends when the connection does
                self.end_headers()
                self.close_connection = True
                zeros = bytes(1 << 16)
                try:
                    self.wfile.write(data)
                    proxy.sent += len(data)
                    while proxy.sent < proxy.ENDLESS_CAP:
                        self.wfile.write(zeros)
                        proxy.sent += len(zeros)
                except OSError:
                    pass  # the client hung up: what it should do

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _forward  # noqa: N815

        return Handler
