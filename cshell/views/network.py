"""Pictures of the network: the bridge with its veth cables, one container's interfaces and rules."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from cshell.engine.net.netinfo import Attachment, BridgeInfo, Iface

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
    t = Text("host ", style="dim")
    if not b.exists or b.iface is None:
        t.append(f"bridge {b.name}", style="bold")
        t.append("  not there: made with the first bridge-mode container, removed with the last", style="dim")
        return t
    t.append_text(_iface_text(b.iface, "magenta"))
    t.append(f"  bridge · route_localnet={b.route_localnet or '?'}", style="dim")
    if b.masquerade:
        t.append(" · masquerade on", style="yellow")
    return t


def _bridged(a: Attachment, joiners: list[Attachment]) -> Text:
    t = Text()
    if a.host_end is not None:
        t.append_text(_iface_text(a.host_end, "cyan"))
    else:
        t.append("(no host end)", style="red")
    t.append(CABLE, style="yellow")
    eth0 = next((i for i in a.inside if i.name == "eth0"), None)
    if eth0 is not None:
        t.append_text(_iface_text(eth0, "cyan"))
        t.append(f"  {eth0.mac}", style="dim")
    t.append("\n")
    t.append(a.name, style="bold")
    t.append(f"  {a.netns}", style="blue")
    for p in a.ports:
        t.append(f"  {p.shown}", style="green")
    for j in joiners:
        t.append(f"\n+ {j.name} shares this namespace (--net container:{a.name})", style="dim")
    return t


def net_ls_view(bridge: BridgeInfo, attachments: list[Attachment]) -> Group:
    tree = Tree(_bridge_line(bridge), guide_style="dim")
    owners = {a.netns: a for a in attachments if a.mode == "bridge"}
    for a in attachments:
        if a.mode == "bridge":
            joiners = [j for j in attachments if j.mode.startswith("container:") and j.netns == a.netns]
            tree.add(_bridged(a, joiners))
    others = Table(box=None, header_style="bold", pad_edge=False, title="not on the bridge",
                   title_justify="left", title_style="dim")
    for col in ("CONTAINER", "MODE", "NET NAMESPACE", "INTERFACES"):
        others.add_column(col, no_wrap=True)
    for a in attachments:
        if a.mode == "bridge" or (a.mode.startswith("container:") and a.netns in owners):
            continue
        ifaces = "the host's" if a.mode == "host" else ", ".join(
            f"{i.name} {' '.join(i.addresses)}".strip() for i in a.inside)
        others.add_row(a.name, a.mode, a.netns, ifaces)
    parts: list[object] = [tree]
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
