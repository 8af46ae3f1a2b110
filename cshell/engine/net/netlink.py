"""rtnetlink, the kernel interface `ip link`/`ip addr`/`ip route` speak, through pyroute2.

pyroute2 builds and parses the netlink messages (ifinfmsg, ifaddrmsg, rtmsg);
this module sends them on a plain NETLINK_ROUTE socket and reads the kernel's
acknowledgement. Why not pyroute2's IPRoute: `import pyroute2` runs the
package's __init__, which loads ~100 modules (asyncio, multiprocessing, NDB,
conntrack…) and costs 120-170 ms; the three message classes cost ~25 ms when
the package body is skipped (see _load). A container start pays that once.

A netlink socket works in the network namespace it was created in, so
``in_netns(fd)`` makes one inside a container's namespace by stepping in with
setns(2) and straight back out: the shim configures the container's eth0 from
the host, without forking a helper into the namespace.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import struct
import sys
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

from cshell.engine.kernel import syscalls as sc
from cshell.record import record

NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE, NLM_F_DUMP = 0x1, 0x4, 0x200, 0x400, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_GETADDR, RTM_NEWROUTE, RTM_GETROUTE = 20, 22, 24, 26
IFF_UP = 0x1
RT_TABLE_MAIN, RTPROT_BOOT, RTN_UNICAST, RT_SCOPE_UNIVERSE = 254, 3, 1, 0

_msgs: SimpleNamespace | None = None


def _load() -> SimpleNamespace:
    """pyroute2's message classes, without running pyroute2/__init__.py (see above).

    A bare package object stands in for ``pyroute2`` while the submodules load,
    then is dropped again: a later plain ``import pyroute2`` still gets the real
    package (the submodules are already cached).
    """
    global _msgs
    if _msgs is None:
        import importlib.util
        import types

        bare = "pyroute2" not in sys.modules
        if bare:
            spec = importlib.util.find_spec("pyroute2")
            if spec is None or spec.submodule_search_locations is None:
                from cshell.errors import RuntimeFailure

                raise RuntimeFailure("pyroute2 is not installed", "install cshell's dependencies: make venv")
            pkg = types.ModuleType("pyroute2")
            pkg.__path__ = list(spec.submodule_search_locations)
            pkg.__spec__ = spec
            sys.modules["pyroute2"] = pkg
        try:
            from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
            from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
            from pyroute2.netlink.rtnl.rtmsg import rtmsg
        finally:
            if bare:
                del sys.modules["pyroute2"]
        _msgs = SimpleNamespace(ifinfmsg=ifinfmsg, ifaddrmsg=ifaddrmsg, rtmsg=rtmsg)
    return _msgs


@record
class Link:
    index: int
    name: str
    kind: str  # "bridge", "veth", "loopback", "" (a plain device)
    up: bool
    mac: str
    master: int = 0  # the bridge it is a port of
    peer: int = 0  # a veth's other end: its ifindex in the peer's namespace (IFLA_LINK)
    mtu: int = 0
    carrier: bool = False


@record
class Address:
    index: int
    address: str
    prefixlen: int


@record
class Route:
    dst: str  # "" for the default route
    dst_len: int
    gateway: str
    oif: int


class Rtnl:
    """One NETLINK_ROUTE socket: synchronous requests, each acknowledged or an OSError."""

    def __init__(self) -> None:
        self.m = _load()
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, msg: Any, mtype: int, flags: int) -> int:
        self.seq += 1
        msg["header"]["type"] = mtype
        msg["header"]["flags"] = flags | NLM_F_REQUEST
        msg["header"]["sequence_number"] = self.seq
        msg.encode()
        self.sock.send(msg.data)
        return self.seq

    def _replies(self, seq: int) -> Iterator[tuple[int, bytes, int]]:
        """(type, data, offset) of each message answering ``seq``, until DONE or an ack."""
        while True:
            data = self.sock.recv(1 << 17)
            offset = 0
            while offset < len(data):
                length, mtype, _flags, mseq, _pid = struct.unpack_from("=IHHII", data, offset)
                if mseq == seq:
                    if mtype == NLMSG_DONE:
                        return
                    if mtype == NLMSG_ERROR:
                        err = struct.unpack_from("=i", data, offset + 16)[0]
                        if err:
                            raise OSError(-err, os.strerror(-err))
                        return
                    yield mtype, data[offset:offset + length], offset
                offset += (length + 3) & ~3

    def request(self, msg: Any, mtype: int, flags: int = 0) -> None:
        for _ in self._replies(self._send(msg, mtype, flags | NLM_F_ACK)):
            pass

    def dump(self, msg: Any, mtype: int, parser: Any) -> list[Any]:
        out = []
        for _, raw, _ in self._replies(self._send(msg, mtype, NLM_F_DUMP)):
            reply = parser(raw)
            reply.decode()
            out.append(reply)
        return out

    # -- links -------------------------------------------------------------------

    def _ifinfmsg(self, index: int = 0, up: bool | None = None, **attrs: Any) -> Any:
        msg = self.m.ifinfmsg()
        msg["family"] = socket.AF_UNSPEC
        msg["index"] = index
        if up is not None:
            msg["flags"], msg["change"] = (IFF_UP if up else 0), IFF_UP
        msg["attrs"] = [(k, v) for k, v in attrs.items() if v is not None]
        return msg

    def add_bridge(self, name: str) -> None:
        info = {"attrs": [("IFLA_INFO_KIND", "bridge")]}
        self.request(self._ifinfmsg(IFLA_IFNAME=name, IFLA_LINKINFO=info), RTM_NEWLINK,
                     NLM_F_CREATE | NLM_F_EXCL)

    def set_alias(self, index: int, alias: str) -> None:
        """`ip link set DEV alias TEXT` (the kernel ignores an alias given at creation)."""
        self.request(self._ifinfmsg(index, IFLA_IFALIAS=alias), RTM_NEWLINK)

    def add_veth(self, name: str, peer: str, peer_netns_fd: int, master: int, peer_mac: str) -> int:
        """One message: the pair, its host end on the bridge and up, the peer born in the netns.

        Returns the host end's ifindex.
        """
        # txqueuelen 0 on both ends, as Docker makes its pairs (`ip link` shows no qlen): a veth
        # has no queue of its own (noqueue), so the kernel's default of 1000 only misleads
        peer_info = {"attrs": [("IFLA_IFNAME", peer), ("IFLA_ADDRESS", peer_mac), ("IFLA_TXQLEN", 0),
                               ("IFLA_NET_NS_FD", peer_netns_fd)]}
        info = {"attrs": [("IFLA_INFO_KIND", "veth"),
                          ("IFLA_INFO_DATA", {"attrs": [("VETH_INFO_PEER", peer_info)]})]}
        self.request(self._ifinfmsg(up=True, IFLA_IFNAME=name, IFLA_MASTER=master, IFLA_TXQLEN=0,
                                    IFLA_LINKINFO=info),
                     RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL)
        return socket.if_nametoindex(name)

    def set_up(self, index: int) -> None:
        self.request(self._ifinfmsg(index, up=True), RTM_NEWLINK)

    def delete_link(self, index: int) -> None:
        self.request(self._ifinfmsg(index), RTM_DELLINK)

    def link_index(self, name: str) -> int:
        """The ifindex of NAME in this socket's namespace (0: none)."""
        return next((link.index for link in self.links() if link.name == name), 0)

    def links(self) -> list[Link]:
        return [_link(msg) for msg in self.dump(self._ifinfmsg(), RTM_GETLINK, self.m.ifinfmsg)]

    # -- addresses and routes ----------------------------------------------------------

    def add_address(self, index: int, address: str, prefixlen: int) -> None:
        msg = self.m.ifaddrmsg()
        msg["family"], msg["prefixlen"], msg["index"] = socket.AF_INET, prefixlen, index
        net = ipaddress.IPv4Network(f"{address}/{prefixlen}", strict=False)
        msg["attrs"] = [("IFA_LOCAL", address), ("IFA_ADDRESS", address),
                        ("IFA_BROADCAST", str(net.broadcast_address))]
        self.request(msg, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL)

    def addresses(self) -> list[Address]:
        msg = self.m.ifaddrmsg()
        msg["family"] = socket.AF_INET
        return [Address(r["index"], r.get_attr("IFA_LOCAL") or r.get_attr("IFA_ADDRESS"), r["prefixlen"])
                for r in self.dump(msg, RTM_GETADDR, self.m.ifaddrmsg)]

    def add_default_route(self, gateway: str) -> None:
        msg = self.m.rtmsg()
        msg["family"], msg["table"], msg["proto"] = socket.AF_INET, RT_TABLE_MAIN, RTPROT_BOOT
        msg["scope"], msg["type"] = RT_SCOPE_UNIVERSE, RTN_UNICAST
        msg["attrs"] = [("RTA_GATEWAY", gateway)]
        self.request(msg, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL)

    def routes(self) -> list[Route]:
        """IPv4 routes of every table (a subnet must not clash with any of them)."""
        msg = self.m.rtmsg()
        msg["family"] = socket.AF_INET
        out = []
        for r in self.dump(msg, RTM_GETROUTE, self.m.rtmsg):
            if r["type"] != RTN_UNICAST:
                continue  # local, broadcast: the host's own addresses, not networks it reaches
            out.append(Route(r.get_attr("RTA_DST") or "", r["dst_len"], r.get_attr("RTA_GATEWAY") or "",
                             r.get_attr("RTA_OIF") or 0))
        return out


def _link(msg: Any) -> Link:
    info = msg.get_attr("IFLA_LINKINFO")
    kind = info.get_attr("IFLA_INFO_KIND") if info is not None else ""
    if not kind and msg.get_attr("IFLA_IFNAME") == "lo":
        kind = "loopback"
    return Link(index=msg["index"], name=msg.get_attr("IFLA_IFNAME"), kind=kind or "",
                up=bool(msg["flags"] & IFF_UP), mac=msg.get_attr("IFLA_ADDRESS") or "",
                master=msg.get_attr("IFLA_MASTER") or 0, peer=msg.get_attr("IFLA_LINK") or 0,
                mtu=msg.get_attr("IFLA_MTU") or 0, carrier=bool(msg.get_attr("IFLA_CARRIER")))


@contextlib.contextmanager
def entered(netns_fd: int) -> Iterator[None]:
    """Run the body inside another network namespace, then come back to ours."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        sc.setns(netns_fd, sc.CLONE_NEWNET)
        try:
            yield
        finally:
            sc.setns(home, sc.CLONE_NEWNET)
    finally:
        os.close(home)


def in_netns(netns_fd: int) -> Rtnl:
    """A netlink socket that works inside the namespace ``netns_fd`` refers to."""
    with entered(netns_fd):
        return Rtnl()


def write_sysctl(path: str, value: str) -> None:
    """e.g. net/ipv4/conf/cshell0/route_localnet -> /proc/sys/…, in our namespace."""
    with open(f"/proc/sys/{path}", "w") as f:
        f.write(value)
