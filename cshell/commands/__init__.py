"""Commands: parse words, call the engine, hand the result to a view.

Importing this package registers every command (each module declares its
own with ``@command``); the modules import the engine and views lazily.
"""

from cshell.commands import (  # noqa: F401  (registration)
    bootstrap,
    build,
    cgroup,
    containers,
    events,
    images,
    layers,
    lesson,
    lifecycle,
    network,
    ns,
    remote,
    shell,
    stats,
    system,
    transfer,
    volume,
)
from cshell.commands.registry import REGISTRY, Command, lookup, parse

__all__ = ["REGISTRY", "Command", "lookup", "parse"]
