"""What pull and push print: docker's lines."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cshell.engine.registry.pull import Pulled
    from cshell.engine.registry.push import Pushed


def pull_lines(asked: str, pulled: Pulled, quiet: bool = False) -> list[str]:
    remote = pulled.remote
    if quiet:
        return [remote.full]
    lines = []
    if remote.tag and not remote.digest and not _has_tag(asked):
        lines.append("Using default tag: latest")
    lines.append(f"{remote.reference}: Pulling from {remote.repository}")
    lines += [f"{digest[7:19]}: {status}" for digest, status in pulled.layers]
    lines.append(f"Digest: {pulled.digest}")
    name = remote.local or f"{remote.familiar}@{remote.digest}"
    lines.append(f"Status: {'Downloaded newer image' if pulled.updated else 'Image is up to date'} for {name}")
    lines.append(remote.full)
    return lines


def _has_tag(ref: str) -> bool:
    return ":" in ref.rsplit("/", 1)[-1].split("@", 1)[0]


def push_lines(pushed: Pushed, quiet: bool = False) -> list[str]:
    tag = pushed.remote.tag or "latest"
    last = f"{tag}: digest: {pushed.digest} size: {pushed.size}"
    if quiet:
        return [last]
    lines = [f"The push refers to repository [{pushed.remote.registry}/{pushed.remote.repository}]"]
    lines += [f"{digest[7:19]}: {status}" for digest, status in pushed.layers]
    return [*lines, last]
