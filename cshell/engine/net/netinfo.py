"""What `net ls` and `net inspect` show: the kernel's view of a state root's network.

Everything is read from the kernel at the moment of asking (netlink dumps in
the host's and in each container's namespace, /proc/PID/ns/net, iptables-save),
not from our own records, so the picture is the truth even after a crash.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cshell.engine.net.network import Network
from cshell.engine.net.portmap import PortBinding
from cshell.record import factory, record

if TYPE_CHECKING:
    from cshell.engine.container.containers import Container
    from cshell.engine.net.netlink import Rtnl


@record
class Iface:
    index: int
    name: str
    kind: str
    up: bool
    mac: str
    addresses: list[str] = factory(list)  # "172.17.0.2/16"
    peer: int = 0  # a veth's other end (its ifindex in the other namespace)
    master: int = 0


@record
class BridgeInfo:
    name: str
    exists: bool
    subnet: str = ""  # the configured one, or "auto"
    iface: Iface | None = None
    ports: list[Iface] = factory(list)  # the veths attached to it
    route_localnet: str = ""
    masquerade: bool = False
    leases: dict[str, str] = factory(dict)  # address -> container id
    network: str = "bridge"  # docker's name for it: bridge (the default one) or a user network's


@record
class Member:
    """One cable on a bridge: the container, its host end and the interface inside it."""

    attachment: Attachment
    host_end: Iface | None
    inside: Iface | None


@record
class Attachment:
    """One running container's network, as the kernel has it."""

    cid: str
    name: str
    mode: str  # bridge, none, host, container:NAME
    netns: str  # net:[4026532281]
    ip: str = ""
    host_end: Iface | None = None  # the veth on the bridge
    inside: list[Iface] = factory(list)  # the container's interfaces
    routes: list[str] = factory(list)
    ports: list[PortBinding] = factory(list)
    rules: dict[str, list[str]] = factory(dict)  # iptables table -> rules tagged for it


def _ifaces(rt: Rtnl) -> list[Iface]:
    addrs: dict[int, list[str]] = {}
    for a in rt.addresses():
        addrs.setdefault(a.index, []).append(f"{a.address}/{a.prefixlen}")
    return [Iface(link.index, link.name, link.kind, link.up, link.mac, addrs.get(link.index, []),
                  link.peer, link.master) for link in rt.links()]


def bridge_info(net: Network) -> BridgeInfo:
    from cshell.engine.net.netlink import Rtnl

    cfg = net.config()
    info = BridgeInfo(net.bridge, net.bridge_exists(), net.user.subnet if net.user else cfg.subnet or "auto",
                      masquerade=cfg.masquerade and net.user is None,
                      leases={lease.ip: lease.container for lease in net.leases.all()}, network=net.name)
    if not info.exists:
        return info
    with Rtnl() as rt:
        ifaces = _ifaces(rt)
    info.iface = next((i for i in ifaces if i.name == net.bridge), None)
    if info.iface is not None:
        info.ports = [i for i in ifaces if i.master == info.iface.index]
    with contextlib.suppress(OSError):
        info.route_localnet = Path(f"/proc/sys/net/ipv4/conf/{net.bridge}/route_localnet").read_text().strip()
    return info


def attachment(net: Network, c: Container, names: dict[str, str], detail: bool = False) -> Attachment:
    """A running container's interfaces (inside its namespace) and, on the bridge, its veth's host end."""
    mode = c.config.get("network", "none")
    if mode.startswith("container:"):
        owner = mode.partition(":")[2]
        mode = f"container:{names.get(owner, owner[:12])}"
    state: dict[str, Any] = c.state.get("network") or {}
    a = Attachment(c.id, c.name, mode, os.readlink(f"/proc/{c.pid}/ns/net"), ip=state.get("ip", ""),
                   ports=[PortBinding.from_json(p) for p in state.get("ports", [])])
    if mode != "host":
        a.inside, a.routes = _inside(c.pid, detail)
    veth = state.get("veth")
    if veth:
        from cshell.engine.net.netlink import Rtnl

        with contextlib.suppress(OSError), Rtnl() as rt:
            index = socket.if_nametoindex(veth)
            a.host_end = next((i for i in _ifaces(rt) if i.index == index), None)
    if detail and a.ports:
        from cshell.engine.net import portmap

        a.rules = portmap.saved_rules(net.rule_tag(c.id))
    return a


def _inside(pid: int, with_routes: bool) -> tuple[list[Iface], list[str]]:
    from cshell.engine.net.netlink import in_netns

    fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        with in_netns(fd) as rt:
            ifaces = _ifaces(rt)
            routes = [_route_text(r, ifaces) for r in rt.routes()] if with_routes else []
    finally:
        os.close(fd)
    return ifaces, routes


def _route_text(r: Any, ifaces: list[Iface]) -> str:
    dev = next((i.name for i in ifaces if i.index == r.oif), str(r.oif))
    dst = f"{r.dst}/{r.dst_len}" if r.dst_len else "default"
    return f"{dst} via {r.gateway} dev {dev}" if r.gateway else f"{dst} dev {dev}"


def members(net: Network, info: BridgeInfo, attachments: list[Attachment]) -> list[Member]:
    """The bridge's cables, one per lease: which veth on the host, which interface inside (eth0, eth1…)."""
    by_id = {a.cid: a for a in attachments}
    out = []
    for lease in sorted(net.leases.all(), key=lambda item: tuple(int(b) for b in item.ip.split("."))):
        a = by_id.get(lease.container)
        if a is None:
            continue  # stopped meanwhile
        host_end = next((p for p in info.ports if p.name == lease.data.get("veth")), None)
        inside = next((i for i in a.inside if host_end is not None and i.index == host_end.peer), None)
        out.append(Member(a, host_end, inside))
    return out
