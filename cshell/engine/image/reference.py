"""Image references: NAME[:TAG][@DIGEST], read the way docker reads them.

Docker's reference grammar (distribution/reference): a name is path components,
lowercase, separated by ``/``, optionally after a registry host; a tag follows
``:``, a digest ``@``. ``normalize_ref`` adds only the default tag (the store's
names); ``parse_remote`` adds docker.io's defaults too (``busybox`` is
``docker.io/library/busybox:latest``), which pull, push and the store's
``NAME@DIGEST`` lookups need. Plain string work: no network, no files.
"""

from __future__ import annotations

import functools
import re

from cshell.errors import UsageError
from cshell.record import record

DOCKER_HUB = "docker.io"
HUB_NAMES = ("docker.io", "index.docker.io", "registry-1.docker.io")

# Docker's reference grammar (distribution/reference), without the docker.io defaults.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9-]+)*(?::[0-9]+)?)"


@functools.cache
def ref_pattern() -> re.Pattern[str]:
    """Compiled on first use: most commands never parse an image name."""
    return re.compile(
        rf"^(?:(?P<host>{_HOST})/)?(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)"
        r"(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>sha256:[a-f0-9]{64}))?$"
    )


def normalize_ref(ref: str) -> str:
    """NAME[:TAG][@DIGEST] with Docker's default tag: ``busybox`` -> ``busybox:latest``."""
    match = ref_pattern().match(ref or "")
    if not match or len(ref) > 255:
        raise UsageError(f"invalid image name {ref!r}",
                         "names are lowercase, like busybox, geektime/helloworld:v1 or localhost:5000/app:2")
    if match["digest"] and not match["tag"]:
        return ref
    return ref if match["tag"] else f"{ref}:latest"


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


def full_name(ref: str) -> str:
    """A reference spelled out (docker.io/library/busybox:latest); what cannot be parsed stays as it is.
    Docker sorts one image's names by this spelling."""
    try:
        return parse_remote(ref).full
    except UsageError:
        return ref
