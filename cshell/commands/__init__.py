"""Commands: parse words, call the engine, hand the result to a view.

Importing this package registers every command (each module declares its
own with ``@command``); the modules import the engine and views lazily.
"""

from cshell.commands import containers, images, ns, shell  # noqa: F401  (registration)
from cshell.commands.registry import REGISTRY, Command, lookup, parse

__all__ = ["REGISTRY", "Command", "lookup", "parse"]
