"""`volume ls` as docker shows it, plus who uses each volume."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from cshell.engine.volumes.bindmount import BindReport


def volume_table(volumes: list[dict[str, Any]], users: dict[str, list[str]]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("DRIVER", "VOLUME NAME", "MOUNTPOINT", "USED BY"):
        table.add_column(col, overflow="fold")
    for v in volumes:
        anonymous = "com.docker.volume.anonymous" in v["Labels"]
        name = Text(v["Name"], style="dim" if anonymous else "bold")
        used = ", ".join(users.get(v["Name"], [])) or Text("-", style="dim")
        table.add_row(v["Driver"], name, v["Mountpoint"], used)
    return table


def bind_view(r: BindReport) -> Group:
    """The dentry → inode switch: SRC, DST before, during and after the bind."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("PATH", "WHEN", "INODE", "DEVICE", "ENTRIES"):
        table.add_column(col, overflow="fold")
    same = r.after.inode == r.src_view.inode and r.after.device == r.src_view.device
    rows = [(r.src, "the source (host)", r.src_view, ""), (r.dst, "before the bind", r.before, ""),
            (r.dst, "after mount --bind", r.after, "green" if same else "red")]
    if r.restored is not None:
        rows.append((r.dst, "after umount", r.restored, ""))
    for path, when, v, style in rows:
        table.add_row(path, when, Text(str(v.inode), style=style), v.device, " ".join(v.entries) or "(empty)")
    lines = [Text(f"bind mount in {r.where}:", style="bold"), table,
             Text(f"{r.dst} now leads to {r.src}'s inode {r.src_view.inode}: the dentry points elsewhere; "
                  f"writes under {r.dst} land in {r.src}" if same else "the inode did not change (?)",
                  style="green" if same else "red")]
    if r.restored is not None:
        back = r.restored.inode == r.before.inode
        lines.append(Text(f"after umount, {r.dst} is its own inode {r.restored.inode} again"
                          if back else "after umount the inode differs from before (?)"))
    if r.readonly:
        lines.append(Text(f"read-only: a write under {r.dst} got \"{r.write_refused}\" from the kernel",
                          style="green" if "Read-only" in r.write_refused else "red"))
    lines.append(Text("the host's /proc/self/mountinfo " + ("SHOWED it" if r.host_sees_it else
                                                            "never showed it: the mount lives in another mount namespace"),
                      style="red" if r.host_sees_it else "dim"))
    return Group(*lines)
