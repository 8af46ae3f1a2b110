"""What Docker on this machine already knows about registries, read the way Docker reads it.

* the daemon's ``/etc/docker/daemon.json``: ``insecure-registries`` (names, HOST:PORT
  or CIDRs) and ``registry-mirrors``;
* the daemon's ``/etc/docker/certs.d/HOST:PORT/``: CA certificates (``*.crt``) and client
  certificates for mutual TLS (``NAME.cert`` with its ``NAME.key``), see tls.py;
* the CLI's ``~/.docker/config.json`` (or ``$DOCKER_CONFIG/config.json``): logins a
  student made with ``docker login``, in ``auths`` (base64 ``user:password``), or kept
  by a credential helper named in ``credHelpers`` (per registry) or ``credsStore`` (all):
  ``docker-credential-NAME get`` reads the server on stdin and answers with JSON.

``$CSHELL_DOCKER_ETC`` replaces ``/etc/docker`` (the tests use their own). cshell never
writes any of these files: `login` stores in cshell's own config (config.py).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from cshell.engine import trace
from cshell.engine.image.reference import DOCKER_HUB
from cshell.errors import RuntimeFailure

HUB_SERVER = "https://index.docker.io/v1/"  # what Docker stores Docker Hub logins under
HUB_HOSTS = ("index.docker.io", "docker.io", "registry-1.docker.io")
NOT_FOUND = "credentials not found in native keychain"  # docker-credential-helpers' message
TOKEN_USER = "<token>"  # a helper's Username for an OAuth identity token
HELPER_TIMEOUT = 30.0


def etc() -> Path:
    """Docker's daemon configuration directory: /etc/docker, or $CSHELL_DOCKER_ETC."""
    return Path(os.environ.get("CSHELL_DOCKER_ETC") or "/etc/docker")


def daemon_json() -> Path:
    return etc() / "daemon.json"


def certs_d() -> Path:
    return etc() / "certs.d"


def read_json_object(file: Path, hint: str,
                     absent: tuple[type[OSError], ...] = (FileNotFoundError,)) -> dict[str, Any]:
    """A JSON object from a config file: {} when the file is absent or empty, one line otherwise."""
    try:
        data = file.read_bytes()
    except absent:
        return {}
    except OSError as e:
        raise RuntimeFailure(f"cannot read {file}: {e.strerror}", "check the file's permissions") from None
    if not data.strip():
        return {}
    try:
        doc = json.loads(data)
    except ValueError:
        raise RuntimeFailure(f"{file} is not valid JSON", hint) from None
    if not isinstance(doc, dict):
        raise RuntimeFailure(f"{file} is not a JSON object", hint)
    return doc


def _read_json(path: Path, hint: str) -> dict[str, Any]:
    """Docker's files: a path through a plain file counts as absent, as docker treats it."""
    return read_json_object(path, hint, absent=(FileNotFoundError, NotADirectoryError))


def daemon() -> dict[str, Any]:
    return _read_json(daemon_json(), "fix it (dockerd refuses to start with it too), or move it away")


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def insecure_registries() -> list[str]:
    return _strings(daemon().get("insecure-registries"))


def registry_mirrors() -> list[str]:
    return _strings(daemon().get("registry-mirrors"))


# -- the CLI's logins -----------------------------------------------------------------------------


def cli_config() -> Path:
    """$DOCKER_CONFIG/config.json, else ~/.docker/config.json of the user who ran cshell: under
    sudo that is $SUDO_USER's (their `docker login`, made as themselves), when they have one."""
    override = os.environ.get("DOCKER_CONFIG")
    if override:
        return Path(override) / "config.json"
    user = _sudo_user()
    if user is not None and (theirs := Path(user.pw_dir) / ".docker" / "config.json").exists():
        return theirs
    return Path.home() / ".docker" / "config.json"


def _sudo_user() -> Any:
    """The pwd entry of the user who ran cshell through sudo (cli.py re-runs it so), or None."""
    name = os.environ.get("SUDO_USER")
    if not name or name == "root" or os.geteuid() != 0:
        return None
    import pwd

    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def _as_owner(config: Path) -> dict[str, Any]:
    """subprocess arguments that run a helper as the user whose config names it (their keyring)."""
    user = _sudo_user()
    if user is None or not config.is_relative_to(user.pw_dir):
        return {}
    env = {**os.environ, "HOME": user.pw_dir, "USER": user.pw_name, "LOGNAME": user.pw_name}
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": [], "env": env, "cwd": user.pw_dir}


def server_for(registry: str) -> str:
    """The key Docker stores a registry's login under (and hands a credential helper)."""
    return HUB_SERVER if registry == DOCKER_HUB else registry


def _hostname(key: str) -> str:
    """Docker's ConvertToHostname: ``https://host:5000/v1/`` -> ``host:5000``."""
    return key.split("://", 1)[-1].split("/", 1)[0]


def _matches(key: str, registry: str) -> bool:
    host = _hostname(key)
    return host in HUB_HOSTS if registry == DOCKER_HUB else host == registry


def credentials(registry: str) -> tuple[str, str] | None:
    """The login Docker's CLI has for the registry: its credential helper's, else ``auths``'."""
    doc = _read_json(cli_config(), "fix it, or move it away (`docker login` writes a new one)")
    helpers = doc.get("credHelpers") if isinstance(doc.get("credHelpers"), dict) else {}
    helper = next((v for k, v in helpers.items() if _matches(k, registry) and isinstance(v, str)), None)
    if helper is None and isinstance(doc.get("credsStore"), str) and doc["credsStore"]:
        helper = doc["credsStore"]
    if helper:
        return _from_helper(helper, registry)
    auths = doc.get("auths") if isinstance(doc.get("auths"), dict) else {}
    for key, entry in auths.items():
        if _matches(key, registry) and isinstance(entry, dict) and (found := decode_auth(entry)):
            trace.step(f"# the login for {registry}: auths[{key!r}] in {cli_config()} (docker login's)")
            return found
    return None


def has_login(registry: str) -> bool:
    """Whether Docker's CLI config holds (or names a helper for) a login here; no helper is run."""
    try:
        doc = _read_json(cli_config(), "")
    except RuntimeFailure:
        return False
    helpers = doc.get("credHelpers") if isinstance(doc.get("credHelpers"), dict) else {}
    if doc.get("credsStore") or any(_matches(k, registry) for k in helpers):
        return True
    auths = doc.get("auths") if isinstance(doc.get("auths"), dict) else {}
    return any(_matches(k, registry) and isinstance(v, dict) and decode_auth(v) for k, v in auths.items())


def decode_auth(entry: dict[str, Any], need_user: bool = True) -> tuple[str, str] | None:
    """An ``auths`` entry's (user, password): base64 "user:password" in "auth", or the two fields.
    Docker's own files need a user in "auth"; cshell's config.json (``need_user=False``) did not."""
    if isinstance(entry.get("auth"), str) and entry["auth"]:
        try:
            user, sep, password = base64.b64decode(entry["auth"]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return (user, password) if sep and (user or not need_user) else None
    if isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
        return entry["username"], entry["password"]
    return None


def _from_helper(name: str, registry: str) -> tuple[str, str] | None:
    """``docker-credential-NAME get``, the server on stdin, JSON {ServerURL, Username, Secret} out."""
    program, server = f"docker-credential-{name}", server_for(registry)
    if "/" in name or name.startswith("."):  # a name, looked up on PATH: never a path to run
        raise RuntimeFailure(f"{cli_config()} names a credential helper {name!r}, which is not a name",
                             "credsStore and credHelpers name a helper: docker-credential-NAME on PATH")
    trace.step(f"echo {server} | {program} get    # the credential helper named in {cli_config()}")
    try:
        proc = subprocess.run([program, "get"], input=server.encode(), capture_output=True,
                              timeout=HELPER_TIMEOUT, check=False, **_as_owner(cli_config()))
    except FileNotFoundError:
        raise RuntimeFailure(f"error getting credentials for {registry}: {program} is not on PATH "
                             f"({cli_config()} names it)",
                             f"install {program}, or remove \"credsStore\"/\"credHelpers\" from {cli_config()}") \
            from None
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RuntimeFailure(f"error getting credentials for {registry}: {program} failed ({e})",
                             f"run `echo {server} | {program} get` to see why") from None
    out = proc.stdout.decode(errors="replace").strip()
    if proc.returncode != 0:
        if NOT_FOUND in out:
            return None  # no login stored there: anonymous, as with docker
        detail = (out or proc.stderr.decode(errors="replace").strip()).splitlines()[:1]
        raise RuntimeFailure(f"error getting credentials for {registry}: {program} exited {proc.returncode}"
                             + (f": {detail[0]}" if detail else ""),
                             f"run `echo {server} | {program} get` to see why")
    try:
        doc = json.loads(out)
        user, secret = doc["Username"], doc["Secret"]
    except (ValueError, KeyError, TypeError):
        raise RuntimeFailure(f"{program} answered something that is not its JSON",
                             "a credential helper prints {\"ServerURL\", \"Username\", \"Secret\"}") from None
    if not isinstance(user, str) or not isinstance(secret, str) or not secret:
        return None
    if user == TOKEN_USER:
        trace.step(f"# {program} holds an OAuth identity token for {registry}: cshell sends no login")
        return None
    return user, secret
