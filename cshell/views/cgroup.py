"""`cgroup show`: the container's cgroup directories as a tree of files and values."""

from __future__ import annotations

from rich.text import Text
from rich.tree import Tree

from cshell.engine.limits.limits import GroupView

UNLIMITED = ("max", "9223372036854771712", "-1")


def cgroup_tree(name: str, version: str, groups: list[GroupView]) -> Tree:
    tree = Tree(Text.assemble((name, "bold"), f"  cgroup {version}, {len(groups)} "
                              f"director{'y' if len(groups) == 1 else 'ies'}"))
    for g in groups:
        branch = tree.add(Text.assemble((g.controllers, "bold cyan"), "  ", (g.path, "dim")))
        for file, value in g.limits:
            style = "dim" if value in UNLIMITED else "green"
            branch.add(Text.assemble((f"{g.path}/{file}", ""), " = ", (value, style)))
        if g.usage:
            usage = branch.add(Text("usage", style="bold yellow"))
            for file, value in g.usage:
                usage.add(Text.assemble(f"{file}: ", (value, "yellow")))
    return tree
