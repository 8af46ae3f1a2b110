"""cshell's client config: registry logins, mirrors and insecure registries.

The file is ``~/.cshell/config.json`` (or the file ``$CSHELL_CONFIG`` names),
in the shape of Docker's ``~/.docker/config.json`` plus the two daemon keys
Docker keeps in ``daemon.json``::

    {"auths": {"localhost:5000": {"auth": "<base64 of user:password>"}},
     "registry-mirrors": ["https://mirror.example"],
     "insecure-registries": ["myregistry:5000", "10.0.0.0/8"]}

``auth`` is base64, not encryption, as in Docker's file: the protection is
the file's mode (0600, in a 0700 directory), and it is written atomically so
that a crash never leaves half a file of passwords.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

from cshell.engine.image.reference import DOCKER_HUB

HUB_AUTH_KEY = "https://index.docker.io/v1/"  # the key docker login writes for Docker Hub
HUB_ALIASES = (HUB_AUTH_KEY, "docker.io", "index.docker.io", "registry-1.docker.io", "https://index.docker.io/v1")


def path() -> Path:
    override = os.environ.get("CSHELL_CONFIG")
    return Path(override) if override else Path.home() / ".cshell" / "config.json"


def load() -> dict[str, Any]:
    from cshell.engine.registry.dockercfg import read_json_object

    return read_json_object(path(), "fix or remove it; `login` writes a new one")


def save(doc: dict[str, Any]) -> None:
    """Atomically, mode 0600: readers see the old file or the new one, nobody else reads it."""
    target = path()
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # O_CREAT's mode is only for a new file
        os.write(fd, json.dumps(doc, indent=1, sort_keys=True).encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, target)


def auth_key(registry: str) -> str:
    return HUB_AUTH_KEY if registry == DOCKER_HUB else registry


def _keys_for(registry: str) -> tuple[str, ...]:
    if registry == DOCKER_HUB:
        return HUB_ALIASES
    return (registry, f"https://{registry}", f"http://{registry}")


def credentials(registry: str) -> tuple[str, str] | None:
    """(user, password) stored for the registry, or None (anonymous)."""
    from cshell.engine.registry.dockercfg import decode_auth

    auths = load().get("auths") or {}
    for key in _keys_for(registry):
        entry = auths.get(key)
        if isinstance(entry, dict):
            found = decode_auth(entry, need_user=False)
            if found:
                return found
    return None


def store_credentials(registry: str, user: str, password: str) -> Path:
    doc = load()
    auths = doc.setdefault("auths", {})
    for key in _keys_for(registry):
        auths.pop(key, None)
    auths[auth_key(registry)] = {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}
    save(doc)
    return path()


def remove_credentials(registry: str) -> bool:
    doc = load()
    auths = doc.get("auths") or {}
    found = [key for key in _keys_for(registry) if key in auths]
    if not found:
        return False
    for key in found:
        del auths[key]
    save(doc)
    return True


def mirrors() -> list[str]:
    """Docker Hub mirrors, tried in order before Docker Hub itself (pulls only): cshell's, then Docker's."""
    from cshell.engine.registry import dockercfg

    found = [*(load().get("registry-mirrors") or []), *dockercfg.registry_mirrors()]
    return list(dict.fromkeys(m.rstrip("/") for m in found
                              if isinstance(m, str) and m.startswith(("http://", "https://"))))


def is_insecure(host: str) -> bool:
    """Docker's insecure registries: loopback, and those listed in cshell's config or Docker's
    daemon.json. They are tried over https without verification, then over plain http."""
    from cshell.engine.registry import dockercfg

    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.endswith("]") else host
    name = name.strip("[]")
    if name == "localhost" or _is_loopback(name):
        return True
    listed = [e for e in load().get("insecure-registries") or [] if isinstance(e, str)]
    listed += dockercfg.insecure_registries()
    if host in listed or name in listed:
        return True
    return any("/" in entry and _in_network(name, entry) for entry in listed)


def _is_loopback(name: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _in_network(name: str, cidr: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(name) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False
