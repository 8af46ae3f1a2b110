"""Pictures of the network: the bridge with its veth cables, one container's interfaces and rules."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from cshell.engine.net.netinfo import Attachment, BridgeInfo, Iface, Member

CABLE = " ━━━━ veth pair ━━━━ "


def _iface_text(i: Iface, style: str = "") -> Text:
    t = Text(i.name, style=f"bold {style}".strip())
    t.append(f" (if {i.index})", style="dim")
    if i.peer:
        t.append(f" peer if {i.peer}", style="dim")
    if not i.up:
        t.append(" DOWN", style="red")
    for addr in i.addresses:
        t.append(f"  {addr}", style="green")
    return t


def _bridge_line(b: BridgeInfo) -> Text:
    t = Text(f"network {b.network}: ", style="bold")
    t.append("host ", style="dim")
    if not b.exists or b.iface is None:
        t.append(f"bridge {b.name}", style="bold")
        t.append("  not there: made with the first bridge-mode container, removed with the last"
                 if b.network == "bridge" else "  not there: made again for its first container", style="dim")
        return t
    t.append_text(_iface_text(b.iface, "magenta"))
    t.append(f"  bridge · route_localnet={b.route_localnet or '?'}", style="dim")
    if b.network != "bridge":
        t.append(" · names in /etc/hosts · isolated from other bridges", style="dim")
    if b.masquerade:
        t.append(" · masquerade on", style="yellow")
    return t


def _bridged(m: Member, joiners: list[Attachment]) -> Text:
    a = m.attachment
    t = Text()
    if m.host_end is not None:
        t.append_text(_iface_text(m.host_end, "cyan"))
    else:
        t.append("(no host end)", style="red")
    t.append(CABLE, style="yellow")
    if m.inside is not None:
        t.append_text(_iface_text(m.inside, "cyan"))
        t.append(f"  {m.inside.mac}", style="dim")
    t.append("\n")
    t.append(a.name, style="bold")
    t.append(f"  {a.netns}", style="blue")
    for p in a.ports:
        t.append(f"  {p.shown}", style="green")
    for j in joiners:
        t.append(f"\n+ {j.name} shares this namespace (--net container:{a.name})", style="dim")
    return t


def net_ls_view(bridges: list[tuple[BridgeInfo, list[Member]]], attachments: list[Attachment]) -> Group:
    """Every bridge (the default one, then each user network's) with its cables, then the rest."""
    parts: list[object] = []
    cabled = set()
    for bridge, cables in bridges:
        if bridge.network != "bridge" or bridge.exists or cables:
            tree = Tree(_bridge_line(bridge), guide_style="dim")
            for m in cables:
                joiners = [j for j in attachments if j.mode.startswith("container:") and j.netns == m.attachment.netns]
                tree.add(_bridged(m, joiners))
                cabled.add(m.attachment.netns)
            parts.append(tree)
    if not parts:
        parts.append(Tree(_bridge_line(bridges[0][0]), guide_style="dim"))
    others = Table(box=None, header_style="bold", pad_edge=False, title="not on the bridge",
                   title_justify="left", title_style="dim")
    for col in ("CONTAINER", "MODE", "NET NAMESPACE", "INTERFACES"):
        others.add_column(col, no_wrap=True)
    for a in attachments:
        if a.netns in cabled:
            continue
        ifaces = "the host's" if a.mode == "host" else ", ".join(
            f"{i.name} {' '.join(i.addresses)}".strip() for i in a.inside)
        others.add_row(a.name, a.mode, a.netns, ifaces)
    if others.row_count:
        parts.append(others)
    parts.append(Text("(if N) is an interface index; `peer if N` names the other end of a veth, "
                      "in the other namespace", style="dim"))
    return Group(*parts)


def container_view(a: Attachment) -> Group:
    head = Table(box=None, show_header=False, pad_edge=False)
    head.add_column(style="bold", no_wrap=True)
    head.add_column()
    head.add_row("container", a.name)
    head.add_row("mode", a.mode)
    head.add_row("namespace", a.netns)
    if a.ip:
        head.add_row("address", a.ip)
    if a.host_end is not None:
        head.add_row("host end", _iface_text(a.host_end))
    ifaces = Table(title="interfaces inside", title_justify="left", header_style="bold")
    for col in ("IF", "NAME", "KIND", "STATE", "MAC", "ADDRESSES", "PEER"):
        ifaces.add_column(col, no_wrap=True)
    for i in a.inside:
        ifaces.add_row(str(i.index), i.name, i.kind or "-", "up" if i.up else "down", i.mac,
                       " ".join(i.addresses) or "-", f"if {i.peer} (host)" if i.peer and i.kind == "veth" else "")
    parts: list[object] = [head]
    if a.mode == "host":
        parts.append(Text("the host's own network namespace: `ip addr` on the host shows the same", style="dim"))
    else:
        parts.append(ifaces)
    if a.routes:
        parts.append(Text("routes: " + "; ".join(a.routes)))
    if a.ports:
        parts.append(Text("published: " + ", ".join(p.shown for p in a.ports), style="green"))
    for table, lines in a.rules.items():
        rules = Text(f"iptables -t {table}:\n", style="bold")
        for line in lines:
            rules.append(f"  {line}\n", style="yellow")
        parts.append(rules)
    return Group(*parts)


def bridge_view(b: BridgeInfo) -> Group:
    t = Table(box=None, show_header=False, pad_edge=False)
    t.add_column(style="bold", no_wrap=True)
    t.add_column()
    t.add_row("bridge", b.name + ("" if b.exists else "  (not there now)"))
    if b.iface is not None:
        t.add_row("address", " ".join(b.iface.addresses) or "-")
        t.add_row("state", "up" if b.iface.up else "down")
        t.add_row("ports", ", ".join(p.name for p in b.ports) or "-")
        t.add_row("route_localnet", b.route_localnet or "?")
    t.add_row("subnet setting", b.subnet)
    t.add_row("masquerade", "on" if b.masquerade else "off")
    leases = ", ".join(f"{ip} → {cid[:12]}" for ip, cid in sorted(b.leases.items())) or "-"
    t.add_row("leases", leases)
    return Group(t)


def network_table(rows: list[tuple[str, str, str]]) -> Table:
    """docker network ls: NETWORK ID, NAME, DRIVER, SCOPE."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("NETWORK ID", "NAME", "DRIVER", "SCOPE"):
        table.add_column(col, no_wrap=True)
    for nid, name, driver in rows:
        table.add_row(nid[:12], name, driver, "local")
    return table
