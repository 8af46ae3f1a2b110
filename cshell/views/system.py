"""`system df`, `system prune` and `system check`, as tables and one line per finding."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from cshell.engine.state import human_size
from cshell.engine.system import CheckReport, DiskUsage, Item, PruneReport
from cshell.views.images import ago


def _table(*columns: str) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in columns:
        table.add_column(col, no_wrap=True, justify="right" if col in ("TOTAL", "ACTIVE", "SIZE") else "left")
    return table


def df_view(usage: DiskUsage, verbose: bool = False) -> Group:
    """docker system df: TYPE TOTAL ACTIVE SIZE RECLAIMABLE (-v: one table per kind)."""
    table = _table("TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE")
    for row in usage.rows:
        share = f" ({100 * row.reclaimable / row.size:.0f}%)" if row.size else ""
        reclaim = Text(human_size(row.reclaimable) + share, style="yellow" if row.reclaimable else "dim")
        table.add_row(Text(row.kind, style="bold"), str(row.total), str(row.active), human_size(row.size), reclaim)
    parts: list[Table | Text] = [table]
    if verbose:
        parts += _details(usage)
    parts.append(Text("sizes are bytes on disk under the state root (blobs, unpacked layers, rw layers, "
                      "logs, volume data); a layer shared by several images counts once", style="dim"))
    return Group(*parts)


def _details(usage: DiskUsage) -> list[Table | Text]:
    images = _table("REPOSITORY:TAG", "IMAGE ID", "CREATED", "SIZE", "SHARED SIZE", "CONTAINERS")
    for i in usage.images:
        images.add_row(i.name, i.detail["id"], ago(i.detail["created"]), human_size(i.size),
                       human_size(i.detail["shared"]), str(i.detail["containers"]))
    containers = _table("CONTAINER ID", "IMAGE", "STATUS", "SIZE", "NAMES")
    for c in usage.containers:
        containers.add_row(c.detail["id"], c.detail["image"], c.detail["status"], human_size(c.size), c.name)
    volumes = _table("VOLUME NAME", "LINKS", "SIZE")
    for v in usage.volumes:
        volumes.add_row(Text(v.name, style="dim" if v.detail["anonymous"] else ""), str(v.detail["links"]),
                        human_size(v.size))
    cache = _table("CACHE ID", "CREATED", "SIZE", "STEP")
    for b in usage.cache:
        cache.add_row(b.name, ago(b.detail["created"]), human_size(b.size), _short(b.detail["step"]))
    out: list[Table | Text] = []
    for title, table, items in (("Images space usage:", images, usage.images),
                                ("Containers space usage:", containers, usage.containers),
                                ("Local Volumes space usage:", volumes, usage.volumes),
                                ("Build cache usage:", cache, usage.cache)):
        out += [Text(""), Text(title, style="bold"), table if items else Text("(none)", style="dim")]
    return out


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def prune_view(r: PruneReport) -> Group:
    lines: list[Text] = []

    def section(title: str, items: list[str]) -> None:
        if items:
            lines.append(Text(title, style="bold"))
            lines.extend(Text(f"  {item}") for item in items)

    section("Deleted Containers:", r.containers)
    section("Deleted Images:", r.images)
    section("Deleted Volumes:", r.volumes)
    section("Deleted Networks:", r.networks)
    section("Network state released:", r.network)
    section("Left by interrupted commands:", r.partials)
    if r.cache_entries:
        lines.append(Text(f"Build cache: {r.cache_entries} entries forgotten", style="bold"))
    if r.blobs or r.layers:
        lines.append(Text(f"removed {r.blobs} blobs and {r.layers} unpacked layers"))
    for e in r.errors:
        lines.append(Text(f"failed: {e}", style="red"))
    lines.append(Text(f"Total reclaimed space: {human_size(r.reclaimed)}", style="bold"))
    return Group(*lines)


def check_view(r: CheckReport) -> Group:
    head = Text(f"checked {r.blobs} blobs, {r.images} images, {r.containers} containers: ", style="bold")
    if not r.problems:
        return Group(head + Text("no problems", style="green"))
    head.append(f"{len(r.problems)} problem(s)", style="red")
    lines = [head]
    for p in r.problems:
        line = Text(f"{p.subject}: ", style="bold") + Text(p.text)
        if r.repaired and p.repair:
            line.append(f"  → {p.repair}" if p.fixed else f"  → repair failed: {p.error}",
                        style="green" if p.fixed else "red")
        elif p.repair:
            line.append(f"  (--repair: {p.repair})", style="dim")
        else:
            line.append("  (not repaired automatically)", style="dim")
        lines.append(line)
    return Group(*lines)


__all__ = ["Item", "check_view", "df_view", "prune_view"]
