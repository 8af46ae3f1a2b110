"""Registries the way Docker reaches them: TLS with a classroom's own CA, mutual TLS,
insecure registries, and the logins a student already made with Docker.

Real servers: Debian's docker-registry serving TLS with a certificate from a test CA
made here with openssl, on an address added to ``lo`` for the module (198.18.x.y, a
benchmarking range: not loopback, so not implicitly insecure) and removed afterwards.
Docker's files are read from the test's own directories: ``$CSHELL_DOCKER_ETC`` (for
/etc/docker: daemon.json, certs.d) and ``$DOCKER_CONFIG`` (for ~/.docker).
"""

from __future__ import annotations

import base64
import json
import os
import random
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_cshell
from registryd import REGISTRY_BIN, Registry, serve
from test_transfer import fails, make_image, ok

from cshell.engine.image.store import Store
from cshell.engine.state import StateRoot

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="adds an address to lo; cshell's image commands run as root"),
    pytest.mark.skipif(not Path(REGISTRY_BIN).exists(), reason="needs docker-registry (make deps installs it)"),
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make the test CA"),
]
USER, PASSWORD = "student", "s3cret-pass"
HELPER = "cshelltest"


# -- the address, the CA, the registries ------------------------------------------------------------------


@pytest.fixture(scope="module")
def addr() -> Iterator[str]:
    """An address of 198.18.0.0/15 no interface has, on lo for this module only."""
    taken = subprocess.run(["ip", "-o", "addr", "show"], capture_output=True, text=True, check=True).stdout
    while (chosen := f"198.18.{random.randint(1, 254)}.{random.randint(1, 254)}") + "/" in taken:
        pass
    subprocess.run(["ip", "addr", "add", f"{chosen}/32", "dev", "lo"], check=True)
    try:
        yield chosen
    finally:
        subprocess.run(["ip", "addr", "del", f"{chosen}/32", "dev", "lo"], check=True)


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(addr: str) -> Iterator[Path]:
    """ca.crt/ca.key, the registry's server.crt/key for ADDR, a client's client.cert/key; all from the CA."""
    d = Path(tempfile.mkdtemp(prefix="cshell-test-ca-", dir="/tmp"))
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / "ca.key"), "-out", str(d / "ca.crt"),
            "-days", "2", "-subj", "/CN=cshell test classroom CA")
    (d / "san.cnf").write_text(f"subjectAltName=IP:{addr}\n")
    for name, subject, ext in (("server", addr, ["-extfile", str(d / "san.cnf")]), ("client", "student", [])):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.csr"),
                "-subj", f"/CN={subject}")
        openssl("x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / "ca.crt"), "-CAkey", str(d / "ca.key"),
                "-CAcreateserial", "-out", str(d / f"{name}.crt"), "-days", "2", *ext)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def tls_registry(addr: str, pki: Path) -> Iterator[Registry]:
    """https with the classroom CA's certificate, htpasswd logins."""
    yield from serve("htpasswd", {USER: PASSWORD}, addr, {"certificate": pki / "server.crt", "key": pki / "server.key"})


@pytest.fixture(scope="module")
def mtls_registry(addr: str, pki: Path) -> Iterator[Registry]:
    """https that also wants a client certificate from the CA (mutual TLS)."""
    yield from serve("open", None, addr, {"certificate": pki / "server.crt", "key": pki / "server.key",
                                          "clientcas": [pki / "ca.crt"]})


@pytest.fixture(scope="module")
def token_tls_registry(addr: str, pki: Path) -> Iterator[Registry]:
    """Token auth, the registry and its token server both on https with the classroom CA's certificate."""
    yield from serve("token", {USER: PASSWORD}, addr, {"certificate": pki / "server.crt", "key": pki / "server.key"})


@pytest.fixture(scope="module")
def http_registry(addr: str) -> Iterator[Registry]:
    """Plain http on the non-loopback address: only usable once listed as insecure."""
    yield from serve("open", None, addr)


@pytest.fixture
def docker(client_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """This test's /etc/docker and ~/.docker (client_config points the variables at them), and a
    bin directory first on PATH for a credential helper."""
    etc, home, bin_dir = Path(os.environ["CSHELL_DOCKER_ETC"]), Path(os.environ["DOCKER_CONFIG"]), tmp_path / "bin"
    for d in (etc, home, bin_dir):
        d.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return {"etc": etc, "home": home, "bin": bin_dir, "cshell": client_config.parent}


@pytest.fixture
def fresh_root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="cshell-test-pull-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


# -- helpers -------------------------------------------------------------------------------------------------


def cs(root: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return run_cshell(root, *args, input=input)


def login(root: Path, host: str, password: str = PASSWORD) -> subprocess.CompletedProcess:
    return cs(root, "login", "-u", USER, "--password-stdin", host, input=password + "\n")


def app_image(root: Path, ref: str) -> None:
    make_image(root, ref, {"hello.txt": b"hello over TLS\n", "bin/data": os.urandom(5000)})


def image_id(root: Path, ref: str) -> str:
    return Store(StateRoot(root)).get_local(ref).id


def files(root: Path) -> dict[str, int]:
    """Every file under the state root and its size: what 'nothing changed' is checked against."""
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def trust(docker: dict[str, Path], host: str, pki: Path, where: str = "etc") -> Path:
    """The CA where Docker looks (etc: /etc/docker/certs.d) or beside cshell's config (cshell)."""
    directory = docker[where] / "certs.d" / host
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(pki / "ca.crt", directory / "ca.crt")
    return directory


def daemon_json(docker: dict[str, Path], insecure: list[str]) -> None:
    (docker["etc"] / "daemon.json").write_text(json.dumps({"insecure-registries": insecure}))


# -- an unknown CA, then the CA in certs.d ------------------------------------------------------------------------


def test_unknown_ca_is_refused_and_changes_nothing(tls_registry: Registry, docker: dict[str, Path],
                                                   state_root: Path, fresh_root: Path) -> None:
    host = tls_registry.host
    ref = f"{host}/class/app:v1"
    app_image(state_root, ref)
    ok(cs(fresh_root, "images"))
    before = files(state_root), files(fresh_root)
    expected_path = f"{docker['etc']}/certs.d/{host}/ca.crt"
    for root, args in ((fresh_root, ("pull", ref)), (state_root, ("push", ref))):
        proc = cs(root, *args)
        error = fails(proc)
        assert f"{host}'s TLS certificate is signed by an unknown authority" in error, error
        assert expected_path in proc.stderr and f"insecure-registries in {docker['etc']}/daemon.json" in proc.stderr
    proc = login(state_root, host)
    assert "unknown authority" in fails(proc) and expected_path in proc.stderr
    assert (files(state_root), files(fresh_root)) == before
    assert not (docker["cshell"] / "config.json").exists()


@pytest.mark.parametrize("where", ["etc", "cshell"])
def test_with_the_ca_in_certs_d_login_push_pull_work(tls_registry: Registry, docker: dict[str, Path], where: str,
                                                     state_root: Path, fresh_root: Path) -> None:
    host = tls_registry.host
    ref = f"{host}/class/app:v1"
    app_image(state_root, ref)
    trust(docker, host, pki_of(tls_registry), where)
    assert "wants a login" in fails(cs(state_root, "push", ref))
    proc = cs(state_root, "--explain", "login", "-u", USER, "--password-stdin", host, input=PASSWORD + "\n")
    assert ok(proc) == "Login Succeeded\n"
    assert f"trust the CA in {docker[where]}/certs.d/{host}/ca.crt" in proc.stderr
    assert f"GET https://{host}/v2/" in proc.stderr
    assert ": Pushed" in ok(cs(state_root, "push", ref))
    ok(cs(fresh_root, "pull", ref))
    assert image_id(fresh_root, ref) == image_id(state_root, ref)


def pki_of(registry: Registry) -> Path:
    assert registry.tls is not None
    return Path(registry.tls["certificate"]).parent


def test_the_token_server_trusts_the_registrys_ca(token_tls_registry: Registry, docker: dict[str, Path],
                                                  state_root: Path) -> None:
    """The token server is another host:port: the CA in the registry's certs.d covers it, as with Docker."""
    host, token = token_tls_registry.host, token_tls_registry.token
    assert token is not None and token.realm.startswith(f"https://{host.split(':')[0]}:")
    ref = f"{host}/public/app:v1"
    app_image(state_root, ref)
    assert "unknown authority" in fails(login(state_root, host))
    trust(docker, host, pki_of(token_tls_registry))
    ok(login(state_root, host))
    assert ": Pushed" in ok(cs(state_root, "push", ref))
    assert token.requests[-1]["user"] == USER and token.requests[-1]["ok"]


# -- mutual TLS -----------------------------------------------------------------------------------------------------


def test_mutual_tls_needs_the_client_certificate(mtls_registry: Registry, docker: dict[str, Path],
                                                 state_root: Path, fresh_root: Path) -> None:
    host = mtls_registry.host
    pki = pki_of(mtls_registry)
    ref = f"{host}/class/app:v1"
    app_image(state_root, ref)
    certs = trust(docker, host, pki)
    before = files(state_root)
    proc = cs(state_root, "push", ref)
    assert "wants a client certificate it trusts (mutual TLS)" in fails(proc)
    assert f"put client.cert and client.key in {certs}/" in proc.stderr
    assert files(state_root) == before

    shutil.copy(pki / "client.crt", certs / "client.cert")  # without its key: Docker's own error
    proc = cs(state_root, "push", ref)
    assert f"missing key {certs}/client.key for client certificate {certs}/client.cert" in fails(proc)

    shutil.copy(pki / "client.key", certs / "client.key")
    proc = cs(state_root, "--explain", "push", ref)
    assert ": Pushed" in ok(proc) and f"client certificate {certs}/client.cert (mutual TLS)" in proc.stderr
    ok(cs(fresh_root, "pull", ref))
    assert image_id(fresh_root, ref) == image_id(state_root, ref)


# -- insecure registries: https without verification first, then plain http ---------------------------------------


def test_insecure_registries_in_daemon_json(tls_registry: Registry, http_registry: Registry, docker: dict[str, Path],
                                            state_root: Path, fresh_root: Path) -> None:
    plain, secure = http_registry.host, tls_registry.host
    plain_ref, secure_ref = f"{plain}/class/app:v1", f"{secure}/class/app:v1"
    app_image(state_root, plain_ref)
    proc = cs(state_root, "push", plain_ref)  # not insecure: https only, and it speaks http
    assert f"TLS with {plain} failed: it answers in plain http" in fails(proc)
    assert f"list {plain} under insecure-registries in {docker['etc']}/daemon.json" in proc.stderr

    daemon_json(docker, [plain])
    proc = cs(state_root, "--explain", "push", plain_ref)
    assert ": Pushed" in ok(proc)
    assert f"https://{plain}: no TLS there, it answers in plain http" in proc.stderr
    assert f"{plain} is an insecure registry: trying http://{plain}" in proc.stderr
    assert f"PUT http://{plain}/v2/class/app/manifests/v1" in proc.stderr
    ok(cs(fresh_root, "pull", plain_ref))
    assert image_id(fresh_root, plain_ref) == image_id(state_root, plain_ref)

    assert "unknown authority" in fails(login(state_root, secure))  # only HOST:PORT was listed
    daemon_json(docker, [f"{secure.split(':')[0]}/32"])  # a CIDR, as Docker allows
    ok(login(state_root, secure))  # the CA is unknown, but an insecure registry's certificate is not checked
    ok(cs(state_root, "tag", plain_ref, secure_ref))
    proc = cs(state_root, "--explain", "push", secure_ref)
    assert ": Pushed" in ok(proc)
    assert f"https://{secure} answers TLS (not verified" in proc.stderr and f"http://{secure}" not in proc.stderr


def test_a_bad_certs_d_file_is_an_error_not_a_reason_for_http(http_registry: Registry, docker: dict[str, Path],
                                                               state_root: Path) -> None:
    host = http_registry.host
    ref = f"{host}/class/app:v1"
    app_image(state_root, ref)
    daemon_json(docker, [host])
    (docker["etc"] / "certs.d" / host).mkdir(parents=True)
    (docker["etc"] / "certs.d" / host / "ca.crt").write_text("not a certificate")
    proc = cs(state_root, "--explain", "push", ref)
    assert f"cannot use {docker['etc']}/certs.d/{host}/ca.crt" in fails(proc)
    assert f"http://{host}" not in proc.stderr


def test_loopback_is_insecure_https_first_then_http(docker: dict[str, Path], state_root: Path) -> None:
    for registry in serve("open"):
        ref = f"{registry.host}/class/app:v1"
        app_image(state_root, ref)
        proc = cs(state_root, "--explain", "push", ref)
        assert ": Pushed" in ok(proc)
        assert f"https://{registry.host}: " in proc.stderr and f"trying http://{registry.host}" in proc.stderr


# -- logins made with Docker -------------------------------------------------------------------------------------


def docker_config(docker: dict[str, Path], doc: dict[str, object]) -> None:
    (docker["home"] / "config.json").write_text(json.dumps(doc))


def test_a_docker_login_in_config_json_is_used(tls_registry: Registry, docker: dict[str, Path],
                                               state_root: Path) -> None:
    host = tls_registry.host
    ref = f"{host}/class/app:v1"
    app_image(state_root, ref)
    trust(docker, host, pki_of(tls_registry))
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    docker_config(docker, {"auths": {f"https://{host}": {"auth": auth}}})
    proc = cs(state_root, "--explain", "push", ref)
    assert ": Pushed" in ok(proc) and f"in {docker['home']}/config.json (docker login's)" in proc.stderr
    assert PASSWORD not in proc.stderr and auth not in proc.stderr
    assert not (docker["cshell"] / "config.json").exists()  # read, never copied

    wrong = base64.b64encode(f"{USER}:wrong".encode()).decode()
    docker_config(docker, {"auths": {host: {"auth": wrong}}})
    assert "refused access" in fails(cs(state_root, "push", ref))
    ok(login(state_root, host))  # cshell's own login comes first
    assert "Layer already exists" in ok(cs(state_root, "push", ref))


def write_helper(docker: dict[str, Path], host: str) -> Path:
    """docker-credential-cshelltest: knows the login for HOST, logs each server it is asked about."""
    log = docker["bin"] / "asked.log"
    helper = docker["bin"] / f"docker-credential-{HELPER}"
    helper.write_text(f"""#!/bin/sh
read -r server
echo "$1 $server" >> {log}
if [ "$server" = "{host}" ]; then
  printf '{{"ServerURL": "%s", "Username": "{USER}", "Secret": "{PASSWORD}"}}\\n' "$server"
else
  echo "credentials not found in native keychain"; exit 1
fi
""")
    helper.chmod(0o755)
    return log


@pytest.mark.parametrize("how", ["credsStore", "credHelpers"])
def test_a_credential_helper_is_asked(tls_registry: Registry, docker: dict[str, Path], how: str,
                                      state_root: Path) -> None:
    host = tls_registry.host
    ref = f"{host}/class/app:v1"
    app_image(state_root, ref)
    trust(docker, host, pki_of(tls_registry))
    docker_config(docker, {"auths": {host: {}}, how: HELPER if how == "credsStore" else {host: HELPER}})
    proc = cs(state_root, "push", ref)
    assert proc.returncode == 1 and "not on PATH" in fails(proc) and f"docker-credential-{HELPER}" in proc.stderr

    log = write_helper(docker, host)
    proc = cs(state_root, "--explain", "push", ref)
    assert ": Pushed" in ok(proc) and f"docker-credential-{HELPER} get" in proc.stderr
    assert PASSWORD not in proc.stderr
    assert log.read_text().splitlines() == [f"get {host}"]

    other = f"{host.split(':')[0]}:1/class/app:v1"  # the helper knows no login there: anonymous, as docker
    ok(cs(state_root, "tag", ref, other))
    assert "cannot connect" in fails(cs(state_root, "push", other))


def test_logout_says_dockers_login_stays(tls_registry: Registry, docker: dict[str, Path], state_root: Path) -> None:
    host = tls_registry.host
    docker_config(docker, {"auths": {host: {"auth": base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}}})
    proc = cs(state_root, "logout", host)
    assert ok(proc) == f"Not logged in to {host}\n"
    assert f"Docker's login for {host} in {docker['home']}/config.json stays" in proc.stderr
    assert (docker["home"] / "config.json").exists()


# -- bad files of Docker's: one line and a hint, nothing changed -----------------------------------------------------


@pytest.mark.parametrize("what, content, message", [
    ("daemon.json", "{not json", "daemon.json is not valid JSON"),
    ("config.json", "[1, 2]", "config.json is not a JSON object"),
    ("config.json", json.dumps({"credsStore": "../../tmp/x"}), "names a credential helper '../../tmp/x'"),
    ("ca.crt", "not a certificate", "cannot use"),
])
def test_bad_docker_files_are_one_line(tls_registry: Registry, docker: dict[str, Path], state_root: Path,
                                       what: str, content: str, message: str) -> None:
    host = tls_registry.host
    ref = f"{host}/class/app:v1"
    app_image(state_root, ref)
    where = {"daemon.json": docker["etc"], "config.json": docker["home"],
             "ca.crt": docker["etc"] / "certs.d" / host}[what]
    where.mkdir(parents=True, exist_ok=True)
    (where / what).write_text(content)
    before = files(state_root)
    for args in (("push", ref), ("pull", ref)):
        assert message in fails(cs(state_root, *args))
    assert files(state_root) == before


def test_help_names_certs_d(cshell) -> None:  # noqa: ANN001
    for name in ("pull", "push", "login"):
        text = ok(cshell("help", name))
        assert "/etc/docker/certs.d/HOST:PORT/" in text and "insecure-registries" in text, name
    assert "credsStore" in ok(cshell("help", "login"))
