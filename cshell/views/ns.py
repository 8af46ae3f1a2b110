"""The namespace table: one row per kind, one column per process; shared inodes share a colour."""

from __future__ import annotations

from collections import Counter

from rich.console import Group
from rich.table import Table
from rich.text import Text

from cshell.engine.kernel.namespaces import NS_KINDS, NsLink

PALETTE = ("cyan", "magenta", "green", "yellow", "blue", "red", "bright_cyan", "bright_magenta")


def ns_table(columns: list[tuple[str, list[NsLink]]]) -> Group:
    by_column = [{link.kind: link for link in links} for _, links in columns]
    # Shared means seen in more than one column (pid and pid_for_children often match within one).
    counts = Counter(inode for col in by_column for inode in {link.inode for link in col.values()})
    shared = sorted(inode for inode, n in counts.items() if n > 1)
    colour = {inode: PALETTE[i % len(PALETTE)] for i, inode in enumerate(shared)}
    table = Table(header_style="bold", show_lines=False)
    table.add_column("namespace", style="bold")
    for label, _ in columns:
        table.add_column(label, no_wrap=True)
    for kind in NS_KINDS:
        if not any(kind in col for col in by_column):
            continue
        cells: list[Text | str] = [kind]
        for col in by_column:
            link = col.get(kind)
            if link is None:
                cells.append("-")
            elif link.inode in colour and len(columns) > 1:
                cells.append(Text(f"= {link.link}", style=f"bold {colour[link.inode]}"))
            else:
                cells.append(Text(f"  {link.link}"))
        table.add_row(*cells)
    legend = Text("= shared: the same inode (same colour) means the same namespace", style="dim") \
        if len(columns) > 1 else Text("")
    return Group(table, legend)
