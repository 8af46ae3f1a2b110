"""pull, push, login against real registries: Debian's docker-registry on 127.0.0.1
(open, htpasswd, token auth with a real token server), skopeo both ways, and faults
(a closed port, a .invalid name, a proxy that corrupts or cuts layers, Ctrl-C)."""

from __future__ import annotations

import base64
import gzip
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import cshell_argv, cshell_env, run_cshell, wait_for
from registryd import REGISTRY_BIN, FaultProxy, Registry, put_blob, put_manifest, request, serve
from test_transfer import fails, make_image, ok, sha, tar_of

from cshell.engine.image.reference import parse_remote
from cshell.engine.image.store import Store
from cshell.engine.registry import config as regconfig
from cshell.engine.registry.distribution import registry_name
from cshell.engine.state import StateRoot

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="cshell's image commands run as root"),
    pytest.mark.skipif(not Path(REGISTRY_BIN).exists(), reason="needs docker-registry (make deps installs it)"),
]
USER, PASSWORD = "student", "s3cret-pass"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


# -- fixtures: one registry of each kind per module, a private config per test --------------------------


@pytest.fixture(scope="module")
def registry() -> Iterator[Registry]:
    yield from serve("open", {USER: PASSWORD})


@pytest.fixture(scope="module")
def basic_registry() -> Iterator[Registry]:
    yield from serve("htpasswd", {USER: PASSWORD})


@pytest.fixture(scope="module")
def token_registry() -> Iterator[Registry]:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make the token server's key")
    yield from serve("token", {USER: PASSWORD})


@pytest.fixture(autouse=True)
def config(client_config: Path) -> Path:
    """Every test has its own config file: the real ~/.cshell is never read or written."""
    return client_config


@pytest.fixture
def fresh_root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="cshell-test-pull-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def proxies() -> Iterator[list[FaultProxy]]:
    made: list[FaultProxy] = []
    yield made
    for proxy in made:
        proxy.stop()


def cs(root: Path, *args: str, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return run_cshell(root, *args, input=input, timeout=timeout)


def app_image(root: Path, ref: str, payload: bytes = b"hello from the registry\n") -> None:
    make_image(root, ref, {"hello.txt": payload, "bin/data": os.urandom(20000)})


def pushed_app(registry: Registry, root: Path, repo: str, *flags: str) -> str:
    """An app image in ``root``, pushed to ``registry`` as REPO:v1; returns its reference."""
    ref = f"{registry.host}/{repo}:v1"
    app_image(root, ref)
    ok(cs(root, "push", *flags, ref))
    return ref


def store_of(root: Path) -> Store:
    return Store(StateRoot(root))


def leftovers(root: Path) -> list[str]:
    """Temp files a failed pull must not leave (partial downloads are allowed: they resume)."""
    found = [p.name for p in (root / "images" / "blobs" / "sha256").glob(".ingest-*")]
    found += [p.name for p in (root / "layers").glob("*.unpacking")]
    return found


def parts(root: Path) -> list[Path]:
    return sorted((root / "distribution" / "downloads").glob("*.part"))


def manifest_layers(root: Path, ref: str) -> list[str]:
    image = store_of(root).get_local(ref)
    return [layer["digest"] for layer in json.loads(store_of(root).read_blob(image.manifest_digest))["layers"]]


# -- references and config (no registry needed) ----------------------------------------------------------


@pytest.mark.parametrize("ref, registry, repository, tag, digest, local", [
    ("busybox", "docker.io", "library/busybox", "latest", None, "busybox:latest"),
    ("docker.io/library/busybox:1.36", "docker.io", "library/busybox", "1.36", None, "busybox:1.36"),
    ("geektime/helloworld:v1", "docker.io", "geektime/helloworld", "v1", None, "geektime/helloworld:v1"),
    ("localhost:5000/app:v1", "localhost:5000", "app", "v1", None, "localhost:5000/app:v1"),
    ("127.0.0.1:5123/x/y:tag", "127.0.0.1:5123", "x/y", "tag", None, "127.0.0.1:5123/x/y:tag"),
    ("quay.io/org/img", "quay.io", "org/img", "latest", None, "quay.io/org/img:latest"),
    ("busybox@sha256:" + "a" * 64, "docker.io", "library/busybox", None, "sha256:" + "a" * 64, None),
])
def test_reference_defaults(ref: str, registry: str, repository: str, tag: str | None, digest: str | None,
                            local: str | None) -> None:
    remote = parse_remote(ref)
    assert (remote.registry, remote.repository, remote.tag, remote.digest, remote.local) == \
        (registry, repository, tag, digest, local)


def test_registry_names_and_insecure_rules(config: Path) -> None:
    assert registry_name(None) == registry_name("https://index.docker.io/v1/") == "docker.io"
    assert registry_name("localhost:5000") == "localhost:5000"
    assert regconfig.is_insecure("127.0.0.1:5000") and regconfig.is_insecure("localhost:5000")
    assert not regconfig.is_insecure("registry.example:5000")
    config.parent.mkdir()
    config.write_text(json.dumps({"insecure-registries": ["registry.example:5000", "10.0.0.0/8"]}))
    assert regconfig.is_insecure("registry.example:5000") and regconfig.is_insecure("10.1.2.3:5000")
    assert not regconfig.is_insecure("11.1.2.3:5000")


def test_help_teaches_the_words(cshell) -> None:  # noqa: ANN001
    for name in ("pull", "push", "login", "logout"):
        text = ok(cshell("help", name))
        assert f"usage: {name}" in text
    pull_help = ok(cshell("help", "pull"))
    for word in ("manifest", "index", "blob", "Bearer", "config.json", "0600", "Range"):
        assert word in pull_help, word
    assert "mount" in ok(cshell("help", "push"))


# -- push and pull ---------------------------------------------------------------------------------------


def test_push_then_pull_into_a_fresh_root(registry: Registry, state_root: Path, fresh_root: Path) -> None:
    ref = f"{registry.host}/lesson/app:v1"
    app_image(state_root, ref)
    out = ok(cs(state_root, "push", ref)).splitlines()
    assert out[0] == f"The push refers to repository [{registry.host}/lesson/app]"
    assert out[1].endswith(": Pushed")
    ours = store_of(state_root).get_local(ref)
    assert out[-1] == f"v1: digest: {ours.manifest_digest} size: " \
                      f"{store_of(state_root).blob_path(ours.manifest_digest).stat().st_size}"

    pulled = ok(cs(fresh_root, "pull", ref)).splitlines()
    assert pulled[0] == "v1: Pulling from lesson/app"
    assert pulled[1].endswith(": Pull complete")
    assert pulled[-3:] == [f"Digest: {ours.manifest_digest}", f"Status: Downloaded newer image for {ref}", ref]
    theirs = store_of(fresh_root).get_local(ref)
    assert (theirs.id, theirs.manifest_digest) == (ours.id, ours.manifest_digest)  # the same image, byte for byte
    inspect = json.loads(ok(cs(fresh_root, "inspect", ref)))[0]
    assert inspect["RepoDigests"] == [f"{registry.host}/lesson/app@{ours.manifest_digest}"]

    again = ok(cs(fresh_root, "pull", ref))
    assert "Already exists" in again and f"Status: Image is up to date for {ref}" in again
    by_digest = f"{registry.host}/lesson/app@{ours.manifest_digest}"
    assert store_of(fresh_root).find(by_digest) is not None


def test_pull_by_digest_leaves_the_image_untagged(registry: Registry, state_root: Path, fresh_root: Path) -> None:
    ref = pushed_app(registry, state_root, "lesson/bydigest")
    digest = store_of(state_root).get_local(ref).manifest_digest
    by_digest = f"{registry.host}/lesson/bydigest@{digest}"
    out = ok(cs(fresh_root, "pull", by_digest))
    assert f"Status: Downloaded newer image for {by_digest}" in out
    assert ok(cs(fresh_root, "images", "-q")) == ""  # no name, as `docker pull NAME@DIGEST`
    image = store_of(fresh_root).find(by_digest)
    assert image is not None and image.refs == [] and image.repo_digests == [by_digest]
    assert "invalid image name" in fails(cs(fresh_root, "pull", f"{registry.host}/lesson/bydigest@sha256:1234"))


@pytest.mark.kernel
def test_push_built_image_pull_fresh_root_and_run(registry: Registry, cshell, state_root: Path,  # noqa: ANN001
                                                   fresh_root: Path, tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM busybox\nRUN echo built-here > /msg\nCMD [\"cat\", \"/msg\"]\n")
    ok(cshell("build", "-t", "hello", str(context)))
    ref = f"{registry.host}/geektime/helloworld:v1"
    ok(cshell("tag", "hello", ref))
    ok(cshell("push", ref))
    ok(cs(fresh_root, "pull", ref))
    assert ok(cs(fresh_root, "run", "--rm", ref)) == "built-here\n"


@pytest.mark.kernel
def test_run_pulls_a_missing_image(registry: Registry, cshell, state_root: Path, fresh_root: Path) -> None:  # noqa: ANN001
    ok(cshell("image", "bootstrap", "busybox"))
    ref = f"{registry.host}/base/busybox:1"
    ok(cshell("tag", "busybox", ref))
    ok(cshell("push", ref))
    proc = cs(fresh_root, "run", "--rm", ref, "echo", "pulled-and-ran")
    assert ok(proc) == "pulled-and-ran\n"
    assert f"Unable to find image '{ref}' locally" in proc.stderr


def test_push_again_uploads_nothing(registry: Registry, state_root: Path, proxies: list[FaultProxy]) -> None:
    proxy = FaultProxy(registry.host)
    proxies.append(proxy)
    ref = f"{proxy.host}/again/app:v1"
    app_image(state_root, ref)
    ok(cs(state_root, "push", ref))
    assert proxy.count("PUT") == 3  # the layer, the config, the manifest
    proxy.requests.clear()
    started = time.monotonic()
    out = ok(cs(state_root, "push", ref))
    took = time.monotonic() - started
    assert ": Layer already exists" in out and ": Pushed" not in out
    assert proxy.count("POST", "PATCH") == 0 and proxy.count("PUT") == 1  # only the manifest
    assert proxy.count("HEAD") == 2 and took < 5


def test_cross_repository_mount(registry: Registry, state_root: Path, proxies: list[FaultProxy]) -> None:
    proxy = FaultProxy(registry.host)
    proxies.append(proxy)
    first, second = f"{proxy.host}/team/one:v1", f"{proxy.host}/team/two:v1"
    app_image(state_root, first)
    ok(cs(state_root, "push", first))
    ok(cs(state_root, "tag", first, second))
    proxy.requests.clear()
    out = ok(cs(state_root, "push", second))
    assert ": Mounted from team/one" in out
    mounts = [p for m, p, _ in proxy.requests if m == "POST" and "mount=" in p]
    assert mounts and "from=team%2Fone" in mounts[0]
    assert not [p for m, p, _ in proxy.requests if m in ("PUT", "PATCH") and "/blobs/" in p]


def test_chunked_upload(registry: Registry, state_root: Path, fresh_root: Path, proxies: list[FaultProxy],
                        monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = FaultProxy(registry.host)
    proxies.append(proxy)
    ref = f"{proxy.host}/chunked/app:v1"
    app_image(state_root, ref)
    monkeypatch.setenv("CSHELL_PUSH_CHUNK", "8192")
    ok(cs(state_root, "push", ref))
    assert proxy.count("PATCH") >= 3  # ~30 kB of layer in 8 kB chunks
    monkeypatch.delenv("CSHELL_PUSH_CHUNK")
    ok(cs(fresh_root, "pull", f"{registry.host}/chunked/app:v1"))
    assert manifest_layers(fresh_root, f"{registry.host}/chunked/app:v1") == manifest_layers(state_root, ref)


def test_push_compressed_and_pull_back(registry: Registry, state_root: Path, fresh_root: Path) -> None:
    ref = f"{registry.host}/gz/app:v1"
    app_image(state_root, ref)
    out = ok(cs(state_root, "push", "--compress", ref))
    digest = out.split("digest: ")[1].split()[0]
    status, _, body = request("GET", registry.url(f"/v2/gz/app/manifests/{digest}"),
                              headers={"Accept": OCI_MANIFEST})
    assert status == 200 and json.loads(body)["layers"][0]["mediaType"].endswith("+gzip")
    ok(cs(fresh_root, "pull", ref))
    assert store_of(fresh_root).get_local(ref).id == store_of(state_root).get_local(ref).id


# -- multi-platform indexes, made by hand with raw HTTP ----------------------------------------------------


def push_platform_image(registry: Registry, repo: str, arch: str, manifest_type: str) -> tuple[str, int, str]:
    """A gzip-layered image for one architecture: (manifest digest, size, config digest)."""
    layer = tar_of({"arch.txt": arch.encode()})
    packed = gzip.compress(layer, mtime=0)
    config = json.dumps({"architecture": arch, "os": "linux", "config": {"Cmd": ["cat", "/arch.txt"]},
                         "rootfs": {"type": "layers", "diff_ids": [sha(layer)]}}).encode()
    put_blob(registry, repo, packed, sha(packed))
    put_blob(registry, repo, config, sha(config))
    docker = manifest_type == DOCKER_MANIFEST
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": manifest_type,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json" if docker else
                   "application/vnd.oci.image.config.v1+json", "digest": sha(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip" if docker else
                    "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha(packed), "size": len(packed)}],
    }).encode()
    put_manifest(registry, repo, sha(manifest), manifest, manifest_type)
    return sha(manifest), len(manifest), sha(config)


@pytest.mark.parametrize("index_type, manifest_type", [(OCI_INDEX, OCI_MANIFEST), (DOCKER_LIST, DOCKER_MANIFEST)],
                         ids=["oci-index", "docker-manifest-list"])
def test_pull_multiarch_index_picks_this_platform(registry: Registry, fresh_root: Path, index_type: str,
                                                  manifest_type: str) -> None:
    repo = f"multi/{'oci' if index_type == OCI_INDEX else 'docker'}"
    entries, configs = [], {}
    for arch in ("arm64", "amd64"):  # arm64 first: the choice is by platform, not order
        digest, size, configs[arch] = push_platform_image(registry, repo, arch, manifest_type)
        entries.append({"mediaType": manifest_type, "digest": digest, "size": size,
                        "platform": {"os": "linux", "architecture": arch}})
    index = json.dumps({"schemaVersion": 2, "mediaType": index_type, "manifests": entries}).encode()
    put_manifest(registry, repo, "v1", index, index_type)

    ref = f"{registry.host}/{repo}:v1"
    out = ok(cs(fresh_root, "pull", ref))
    assert f"Digest: {sha(index)}" in out  # the repo digest is the index's, as docker records it
    image = store_of(fresh_root).get_local(ref)
    assert image.id == configs["amd64"] and image.config["architecture"] == "amd64"
    assert image.repo_digests == [f"{registry.host}/{repo}@{sha(index)}"]

    other = f"{registry.host}/{repo}:v1"
    ok(cs(fresh_root, "pull", "--platform", "linux/arm64", other))
    assert store_of(fresh_root).get_local(other).id == configs["arm64"]
    assert "has no linux/s390x image (it has: linux/amd64, linux/arm64)" in \
        fails(cs(fresh_root, "pull", "--platform", "linux/s390x", ref))


def test_zstd_layers_need_a_zstd_module(registry: Registry, fresh_root: Path) -> None:
    try:
        import zstandard  # noqa: F401
        pytest.skip("a zstd module is installed: zstd layers are pulled")
    except ImportError:
        pass
    blob = b"\x28\xb5\x2f\xfd" + os.urandom(64)  # zstd's magic; never read
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers",
                                                                           "diff_ids": [sha(b"tar")]}}).encode()
    put_blob(registry, "zstd/app", blob, sha(blob))
    put_blob(registry, "zstd/app", config, sha(config))
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": sha(config), "size": len(config)},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd",
                                       "digest": sha(blob), "size": len(blob)}]}).encode()
    put_manifest(registry, "zstd/app", "v1", manifest, OCI_MANIFEST)
    proc = cs(fresh_root, "pull", f"{registry.host}/zstd/app:v1")
    assert "zstd" in fails(proc) and "pip install zstandard" in proc.stderr
    assert ok(cs(fresh_root, "images", "-qa")) == "" and parts(fresh_root) == []


# -- skopeo, both ways -------------------------------------------------------------------------------------


@pytest.fixture
def skopeo() -> str:
    path = shutil.which("skopeo")
    if path is None:
        pytest.skip("needs skopeo (make deps installs it)")
    return path


def test_skopeo_copies_what_cshell_pushed(registry: Registry, state_root: Path, tmp_path: Path,
                                          skopeo: str) -> None:
    ref = pushed_app(registry, state_root, "interop/ours")
    layout = tmp_path / "oci"
    subprocess.run([skopeo, "copy", "--src-tls-verify=false", "--preserve-digests", "--dest-oci-accept-uncompressed-layers",
                    f"docker://{ref}", f"oci:{layout}:v1"],
                   check=True, capture_output=True, timeout=60)
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads((layout / "blobs" / "sha256" / index["manifests"][0]["digest"][7:]).read_text())
    assert [layer["digest"] for layer in manifest["layers"]] == manifest_layers(state_root, ref)
    assert index["manifests"][0]["digest"] == store_of(state_root).get_local(ref).manifest_digest


@pytest.mark.kernel
def test_cshell_pulls_and_runs_what_skopeo_pushed(registry: Registry, cshell, state_root: Path,  # noqa: ANN001
                                                  fresh_root: Path, skopeo: str) -> None:
    ok(cshell("image", "bootstrap", "busybox"))
    ref = f"{registry.host}/interop/theirs:v1"
    subprocess.run([skopeo, "copy", "--dest-tls-verify=false", f"oci:{state_root}/images:busybox:latest",
                    f"docker://{ref}"], check=True, capture_output=True, timeout=120)
    status, _, body = request("GET", registry.url("/v2/interop/theirs/manifests/v1"),
                              headers={"Accept": f"{OCI_MANIFEST}, {DOCKER_MANIFEST}"})
    assert status == 200 and "gzip" in json.loads(body)["layers"][0]["mediaType"]  # skopeo compressed it
    ok(cs(fresh_root, "pull", ref))
    assert store_of(fresh_root).get_local(ref).id == store_of(state_root).get_local("busybox").id
    assert ok(cs(fresh_root, "run", "--rm", ref, "echo", "skopeo-pushed")) == "skopeo-pushed\n"


# -- registry mirrors ----------------------------------------------------------------------------------------


def test_docker_hub_names_go_to_the_mirrors_first(registry: Registry, state_root: Path, fresh_root: Path,
                                                  config: Path) -> None:
    app_image(state_root, f"{registry.host}/library/mirrored:latest")
    ok(cs(state_root, "push", f"{registry.host}/library/mirrored:latest"))
    config.parent.mkdir()
    config.write_text(json.dumps({"registry-mirrors": ["http://127.0.0.1:1", f"http://{registry.host}"]}))
    proc = cs(fresh_root, "pull", "mirrored")
    out = ok(proc)
    assert out.splitlines()[-1] == "docker.io/library/mirrored:latest"
    assert "mirror http://127.0.0.1:1: cannot connect" in proc.stderr
    assert store_of(fresh_root).get_local("mirrored").refs == ["mirrored:latest"]  # the name as typed


# -- logins: basic auth and the token flow -------------------------------------------------------------------


def login(root: Path, host: str, password: str = PASSWORD, *extra: str) -> subprocess.CompletedProcess:
    return cs(root, *extra, "login", "-u", USER, "--password-stdin", host, input=password + "\n")


def test_basic_auth_login_push_logout(basic_registry: Registry, state_root: Path, config: Path) -> None:
    host = basic_registry.host
    ref = f"{host}/private/app:v1"
    app_image(state_root, ref)
    error = fails(proc := cs(state_root, "push", ref))
    assert "wants a login" in error and f"hint: login {host}" in proc.stderr

    bad = login(state_root, host, "wrong-password")
    assert "incorrect username or password" in fails(bad)
    assert not config.exists()

    proc = login(state_root, host, PASSWORD, "--explain")
    assert ok(proc) == "Login Succeeded\n"
    assert PASSWORD not in proc.stdout + proc.stderr
    assert base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode() not in proc.stdout + proc.stderr
    assert "Authorization: <redacted>" in proc.stderr
    assert stat.S_IMODE(config.stat().st_mode) == 0o600 and stat.S_IMODE(config.parent.stat().st_mode) == 0o700
    auth = json.loads(config.read_text())["auths"][host]["auth"]
    assert base64.b64decode(auth).decode() == f"{USER}:{PASSWORD}"

    proc = cs(state_root, "--explain", "push", ref)
    assert ": Pushed" in ok(proc) and PASSWORD not in proc.stderr and auth not in proc.stderr

    assert ok(cs(state_root, "logout", host)) == f"Removing login credentials for {host}\n"
    assert host not in json.loads(config.read_text()).get("auths", {})
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert ok(cs(state_root, "logout", host)) == f"Not logged in to {host}\n"
    assert "wants a login" in fails(cs(state_root, "pull", ref))


def test_login_refuses_a_password_it_cannot_read(basic_registry: Registry, state_root: Path) -> None:
    proc = cs(state_root, "login", "-u", USER, basic_registry.host)  # no terminal to ask on
    assert "stdin is not a terminal" in fails(proc)


def test_token_flow(token_registry: Registry, state_root: Path, fresh_root: Path, config: Path) -> None:
    host = token_registry.host
    token = token_registry.token
    assert token is not None
    ref = f"{host}/public/app:v1"
    app_image(state_root, ref)
    assert "wants a login" in fails(cs(state_root, "push", ref))  # anonymous: a token with pull only

    ok(login(state_root, host))
    assert [r["user"] for r in token.requests][-1] == USER
    token.requests.clear()
    proc = cs(state_root, "--explain", "push", ref)
    assert ": Pushed" in ok(proc)
    assert "Authorization: <redacted>" in proc.stderr and "Bearer ey" not in proc.stderr
    assert any(f"repository:{'public/app'}:pull,push" in r["scopes"] for r in token.requests)
    assert len(token.requests) <= 2  # one token for the command (a 401 per worker may race once)

    private = f"{host}/private/app:v1"
    ok(cs(state_root, "tag", ref, private))
    ok(cs(state_root, "push", private))

    ok(cs(state_root, "logout", host))
    ok(cs(fresh_root, "pull", ref))  # anonymous: public/* may be pulled without a login
    assert store_of(fresh_root).get_local(ref).id == store_of(state_root).get_local(ref).id
    assert token.requests[-1]["user"] is None
    assert "pull access denied for" in fails(cs(fresh_root, "pull", private))
    ok(login(state_root, host))
    ok(cs(fresh_root, "pull", private))

    assert "incorrect username or password" in fails(login(state_root, host, "wrong"))
    assert base64.b64decode(json.loads(config.read_text())["auths"][host]["auth"]).decode() == f"{USER}:{PASSWORD}"


# -- faults: each one line, nothing half-stored, and a later pull completes ----------------------------------


def test_unreachable_and_dns_failures(state_root: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # bound, never listening: connections are refused
        proc = cs(state_root, "pull", f"127.0.0.1:{closed}/x/app:v1")
    assert f"cannot connect to 127.0.0.1:{closed}: connection refused" in fails(proc)
    started = time.monotonic()
    proc = cs(state_root, "pull", "registry.cshell-test.invalid/x/app:v1")
    assert "cannot resolve registry.cshell-test.invalid" in fails(proc)
    assert time.monotonic() - started < 5


def test_manifest_unknown(registry: Registry, state_root: Path) -> None:
    proc = cs(state_root, "pull", f"{registry.host}/nothing/here:v9")
    assert "manifest unknown" in fails(proc)
    assert "check the name and the tag" in proc.stderr


@pytest.mark.parametrize("compress", [False, True], ids=["plain-layer", "gzip-layer"])
def test_corrupt_blob_is_refused(registry: Registry, state_root: Path, fresh_root: Path,
                                 proxies: list[FaultProxy], compress: bool) -> None:
    ref = f"{registry.host}/fault/corrupt{int(compress)}:v1"
    app_image(state_root, ref)
    ok(cs(state_root, "push", *(["--compress"] if compress else []), ref))
    proxy = FaultProxy(registry.host, corrupt=True)
    proxies.append(proxy)
    proc = cs(fresh_root, "pull", f"{proxy.host}/fault/corrupt{int(compress)}:v1")
    error = fails(proc)
    assert "does not match its digest" in error or "stream is corrupt" in error, error
    assert ok(cs(fresh_root, "images", "-qa")) == ""
    assert leftovers(fresh_root) == [] and parts(fresh_root) == []  # damaged bytes are not kept
    ok(cs(fresh_root, "pull", ref))
    assert store_of(fresh_root).get_local(ref).id == store_of(state_root).get_local(ref).id


def test_connection_cut_mid_layer(registry: Registry, state_root: Path, fresh_root: Path,
                                  proxies: list[FaultProxy]) -> None:
    pushed_app(registry, state_root, "fault/cut")
    always = FaultProxy(registry.host, cut=100)
    proxies.append(always)
    proc = cs(fresh_root, "pull", f"{always.host}/fault/cut:v1")
    assert "the connection broke while downloading layer" in fails(proc)
    assert "resumes" in proc.stderr
    assert ok(cs(fresh_root, "images", "-qa")) == "" and leftovers(fresh_root) == []
    assert len(parts(fresh_root)) == 1 and parts(fresh_root)[0].stat().st_size > 0  # kept to resume
    assert [r for m, _, r in always.requests if m == "GET" and r]  # it did try Range requests

    clean = FaultProxy(registry.host)
    proxies.append(clean)
    ok(cs(fresh_root, "pull", f"{clean.host}/fault/cut:v1"))
    ranges = [r for m, p, r in clean.requests if m == "GET" and "/blobs/" in p and r]
    assert ranges and ranges[0].startswith("bytes=") and not ranges[0].startswith("bytes=0-")
    assert parts(fresh_root) == [] and leftovers(fresh_root) == []


def test_one_cut_is_resumed_within_the_pull(registry: Registry, state_root: Path, fresh_root: Path,
                                            proxies: list[FaultProxy]) -> None:
    pushed_app(registry, state_root, "fault/once")
    proxy = FaultProxy(registry.host, cut=1)
    proxies.append(proxy)
    ok(cs(fresh_root, "pull", f"{proxy.host}/fault/once:v1"))
    assert [r for m, _, r in proxy.requests if m == "GET" and r.startswith("bytes=")]


def test_ctrl_c_during_pull(registry: Registry, state_root: Path, fresh_root: Path,
                            proxies: list[FaultProxy]) -> None:
    ref = pushed_app(registry, state_root, "fault/slow")
    proxy = FaultProxy(registry.host, stall=True)
    proxies.append(proxy)
    proc = subprocess.Popen([*cshell_argv(), "--root", str(fresh_root), "pull", f"{proxy.host}/fault/slow:v1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cshell_env(),
                            stdin=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: any(p.stat().st_size for p in parts(fresh_root)), timeout=20)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1 and "Traceback" not in err, err
    assert "error: pull of" in err and "interrupted (Ctrl-C): nothing was stored" in err
    assert ok(cs(fresh_root, "images", "-qa")) == "" and leftovers(fresh_root) == []
    assert len(parts(fresh_root)) == 1
    ok(cs(fresh_root, "pull", ref))  # resumes the part, completes
    assert parts(fresh_root) == [] and store_of(fresh_root).get_local(ref) is not None


def _docker_hub_resolves() -> bool:
    try:
        socket.getaddrinfo("registry-1.docker.io", 443)
        return True
    except OSError:
        return False


@pytest.mark.kernel
@pytest.mark.skipif(_docker_hub_resolves(), reason="Docker Hub is reachable here: run pulls the real busybox")
def test_offline_run_builds_busybox_in_one_line(cshell, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    started = time.monotonic()
    proc = cshell("run", "--rm", "busybox", "echo", "hi")
    assert ok(proc) == "hi\n"
    notes = [line for line in proc.stderr.splitlines() if "busybox" in line]
    assert len(notes) == 1 and "docker.io is out of reach" in notes[0], proc.stderr
    assert time.monotonic() - started < 10
    monkeypatch.setenv("CSHELL_OFFLINE", "1")
    proc = cshell("run", "--rm", "alpine", "true")
    assert "no such image: alpine" in fails(proc, status=125) and "CSHELL_OFFLINE" in proc.stderr
