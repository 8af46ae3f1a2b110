"""An image that is not here: pull it, or build a base image when no registry can be reached.

``fetch_missing`` is what `run` and `build` do with a missing image (docker pulls it);
the image store calls it only through the ``fetch`` the Runtime hands to ``Store``,
so the store itself knows no registry. An offline machine fails the name lookup in
milliseconds, before the HTTP machinery (client.py, pull.py) is even imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cshell.engine import trace
from cshell.engine.image.reference import Remote, parse_remote
from cshell.engine.registry.distribution import (
    RegistryError,
    Unauthorized,
    Unreachable,
    endpoints,
    offline,
    resolve,
)
from cshell.errors import NotFound

if TYPE_CHECKING:
    from cshell.engine.image.store import Image, Store


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
