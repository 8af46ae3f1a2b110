"""`login` and `logout`: a registry's credentials, checked against it, then kept in the config."""

from __future__ import annotations

from pathlib import Path

from cshell.engine import trace
from cshell.engine.registry import config as regconfig
from cshell.engine.registry import dockercfg
from cshell.engine.registry.client import Client
from cshell.engine.registry.distribution import Unauthorized, endpoint_for, registry_name
from cshell.errors import RuntimeFailure, UsageError


def login(server: str | None, user: str, password: str) -> tuple[str, Path]:
    """Check the login against the registry (GET /v2/ with it), then store it. Returns (registry, file)."""
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


def logout(server: str | None) -> tuple[str, bool, Path | None]:
    """(registry, whether cshell's login was removed, Docker's config if it still has a login there:
    cshell never edits Docker's files, and uses that login when it has none of its own)."""
    registry = registry_name(server)
    removed = regconfig.remove_credentials(registry)
    return registry, removed, dockercfg.cli_config() if dockercfg.has_login(registry) else None
