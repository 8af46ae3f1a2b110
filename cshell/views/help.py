"""help, generated from the command declarations.

The command hands them in (the registry is the commands' own): a view never imports
cshell.commands. ``Declaration`` names what is read of each.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from rich.console import Group
from rich.markdown import Markdown
from rich.table import Table
from rich.text import Text


class Option(Protocol):
    names: tuple[str, ...]
    value: str | None
    help: str


class Declaration(Protocol):
    """A command as `@command` declares it (cshell.commands.registry.Command)."""

    name: str
    summary: str
    usage: str
    group: str
    docker: str
    details: str
    example: str
    options: Sequence[Option]


GROUPS = (("containers", "Containers"), ("images", "Images"), ("namespaces", "Namespaces"),
          ("cgroups", "Cgroups (limits)"), ("volumes", "Volumes"), ("network", "Network"), ("rootfs", "Root filesystem (layers)"), ("shell", "The shell"))


def overview(commands: Iterable[Declaration]) -> Group:
    declared = list(commands)
    parts: list[object] = [Text("cshell: see what a container really is. Every command drives the real kernel.",
                                style="bold")]
    for key, title in GROUPS:
        table = Table(box=None, show_header=False, pad_edge=False, title=title, title_justify="left",
                      title_style="bold underline")
        table.add_column(style="cyan", no_wrap=True)
        table.add_column()
        for cmd in sorted((c for c in declared if c.group == key), key=lambda c: c.name):
            table.add_row(cmd.name, cmd.summary)
        parts.append(table)
    parts.append(Text("`help CMD` explains one command with an example.  `!CMD` runs a host command.  "
                      "`explain on` shows the syscalls.", style="dim"))
    return Group(*parts)


def command_help(cmd: Declaration) -> Group:
    parts: list[object] = [Text(f"usage: {cmd.usage}", style="bold"), Text(cmd.summary)]
    if cmd.docker:
        parts.append(Text(f"mirrors: {cmd.docker}", style="dim"))
    if cmd.details:
        parts.append(Markdown(cmd.details))
    if cmd.options:
        table = Table(box=None, show_header=False, pad_edge=False, title="options", title_justify="left",
                      title_style="bold")
        table.add_column(style="cyan", no_wrap=True)
        table.add_column()
        for opt in cmd.options:
            # Text, not markup: a help like "[IP:]PORT[/tcp|udp]" must not read as rich tags.
            table.add_row(", ".join(opt.names) + (f" {opt.value}" if opt.value else ""), Text(opt.help))
        parts.append(table)
    if cmd.example:
        parts.append(Text.assemble(("example: ", "bold"), (cmd.example, "green")))
    return Group(*parts)
