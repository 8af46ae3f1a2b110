"""Container networks, Docker's four modes: bridge (default), none, host, container:NAME.

bridge, in the order it happens (``explain on`` shows each step):

1. the shell (``prepare``, under the state root's network lock): the bridge
   exists or is made (a free private subnet, the gateway address on it,
   route_localnet=1 so published ports answer on 127.0.0.1), the container gets
   a lease (its address), and published host ports are reserved;
2. the shim, before forking PID 1, unshares a new network namespace and at
   once steps back out, leaving PID 1 in it (``enter_for_init``/``leave``);
3. the shim, while PID 1 builds its root filesystem (``wire``): one veth pair,
   the host end on the bridge, the other end born inside the container's
   namespace as eth0; eth0's address, up, a default route via the bridge; the
   iptables rules of the published ports. Only then is PID 1 let go to exec.

When PID 1 ends the shim releases it all (``release``): the veth (its peer
dies with it), the rules, the lease, and the bridge when no container uses it
any more. ``rm`` and start-up ``reconcile`` release what a killed shim left.

none: a new namespace with only lo. host: the host's own namespace.
container:NAME: NAME's namespace, joined with setns(2): the same interfaces,
addresses and ports, no veth of its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cshell.engine import trace
from cshell.engine.kernel import syscalls as sc
from cshell.engine.state import DEFAULT_ROOT, StateRoot, atomic_write, file_lock
from cshell.errors import Conflict, CShellError, RuntimeFailure, UsageError, reason
from cshell.record import factory, record

if TYPE_CHECKING:
    from cshell.engine.net.ipam import Lease, Leases
    from cshell.engine.net.netlink import Rtnl
    from cshell.engine.net.portmap import PortBinding

MODES_HINT = "use --net bridge (the default), none, host or container:NAME"
HOST_LOCK = "/run/cshell/network.lock"  # one for the whole host: subnets must not overlap
STALE_LEASE = 30.0  # seconds: a younger lease may belong to a container being started right now


def parse_mode(value: str | None) -> str:
    """bridge | none | host | container:REF (docker's names; `default` is bridge)."""
    mode = value or "bridge"
    if mode == "default":
        return "bridge"
    if mode in ("bridge", "none", "host") or (mode.startswith("container:") and len(mode) > 10):
        return mode
    raise UsageError(f"unknown network mode {value!r}", MODES_HINT)


def bridge_name(root: StateRoot) -> str:
    """The state root's bridge: `cshell0` for the default root, `csh-<8 hex>` for others.

    One bridge per state root, because the leases (and so the addresses) belong
    to a state root: two roots on one bridge could hand out the same address.
    Tests each use a root of their own, so each gets its own bridge and subnet:
    removing one root's bridge never cuts off another's containers, and a leak
    check can tell its own veths and rules apart. Names stay within IFNAMSIZ (15).
    """
    if str(root.path) == DEFAULT_ROOT:
        return "cshell0"
    import zlib  # not hashlib: it loads OpenSSL, ~10 ms of every start

    return f"csh-{zlib.crc32(str(root.path).encode()):08x}"


def veth_name(cid: str) -> str:
    return f"veth{cid[:8]}"


def mac_for(ip: str) -> str:
    """02:42 and the address, as Docker derived container MACs: readable in `ip link`."""
    return "02:42:" + ":".join(f"{int(b):02x}" for b in ip.split("."))


@record
class NetConfig:
    """ROOT/network/config.json; `net config KEY=VALUE` edits it."""

    subnet: str = ""  # "": chosen at first use, like docker0's
    masquerade: bool = False  # outbound NAT to the host's networks; off unless asked for


@record
class NetPlan:
    """What the shell prepared and the shim carries out (and later releases)."""

    mode: str  # bridge | none | host | container
    cid: str = ""
    root: str = ""
    bridge: str = ""
    bridge_index: int = 0
    ip: str = ""
    prefixlen: int = 0
    gateway: str = ""
    veth: str = ""
    ports: list[PortBinding] = factory(list)
    port_fds: list[int] = factory(list)
    join_fd: int = -1  # container mode: the other container's /proc/PID/ns/net
    join_pid: int = 0
    network: str = ""  # a user-defined network's name ("": the state root's default bridge)

    @property
    def init_net(self) -> str:
        """What PID 1 does about its network namespace (init.ProcessSpec.net)."""
        return {"none": "new", "bridge": "ready"}.get(self.mode, "inherit")

    def fds(self) -> list[int]:
        return [*self.port_fds, *([self.join_fd] if self.join_fd >= 0 else [])]

    def close_fds(self) -> None:
        for fd in self.fds():
            with contextlib.suppress(OSError):
                os.close(fd)

    def state(self) -> dict[str, Any]:
        """The container's state.json "network": what inspect shows while it runs."""
        if self.mode != "bridge":
            return {"mode": self.mode}
        return {"mode": "bridge", "bridge": self.bridge, "ip": self.ip, "prefixlen": self.prefixlen,
                "gateway": self.gateway, "mac": mac_for(self.ip), "veth": self.veth,
                "ports": [b.to_json() for b in self.ports], **({"network": self.network} if self.network else {})}


@record
class InitNetns:
    """The shim's handles while it wires a namespace PID 1 was forked into."""

    home: int  # the shim's (the host's) namespace, to step back into
    netns: int  # the container's
    rtnl: Rtnl | None = None  # a netlink socket made inside the container's namespace

    def close(self) -> None:
        if self.rtnl is not None:
            self.rtnl.close()  # it holds the namespace: PID 1 alone must keep it alive
            self.rtnl = None
        for fd in (self.home, self.netns):
            with contextlib.suppress(OSError):
                os.close(fd)


@record(frozen=True)
class UserNet:
    """A user-defined network (`network create`), as ROOT/networks/ID/network.json keeps it."""

    id: str  # 64 hex, as docker's
    name: str
    subnet: str
    gateway: str
    created: str = ""
    driver: str = "bridge"

    @property
    def bridge(self) -> str:
        return f"{USER_BRIDGE_PREFIX}{self.id[:8]}"  # docker names its bridges br-<12 hex>; IFNAMSIZ allows 15


USER_BRIDGE_PREFIX = "csn-"  # every user network's bridge, of every state root: the isolation rules match csn-+


class Network:
    """One bridge with its leases and rules: the state root's default bridge, or a user network's.

    The default bridge exists only while a container uses it. A user network's
    bridge is made by `network create` and lives until `network rm`, as docker's
    br-… do (and is made again on first use if a reboot took it).
    """

    def __init__(self, root: StateRoot, user: UserNet | None = None) -> None:
        self.root = root
        self.user = user
        self.root_tag = f"cshell:{bridge_name(root)}"
        if user is None:
            self.dir = root.path / "network"
            self.bridge = bridge_name(root)
            self.tag = self.root_tag
        else:  # tagged below the root's own tag: the root's leak checks and sweeps see it as the root's
            self.dir = root.path / "networks" / user.id
            self.bridge = user.bridge
            self.tag = f"{self.root_tag}:n-{user.id[:8]}"

    @property
    def name(self) -> str:
        return self.user.name if self.user else "bridge"

    def owns_tag(self, tag: str) -> bool:
        """A container tag (TAG:CID) of this network's: the default bridge's never include a user network's."""
        if not tag.startswith(self.tag + ":"):
            return False
        return self.user is not None or not tag[len(self.tag) + 1:].startswith("n-")

    # -- files ------------------------------------------------------------------------

    @property
    def leases(self) -> Leases:
        from cshell.engine.net.ipam import Leases

        return Leases(self.dir / "leases")

    def config(self) -> NetConfig:
        try:
            data = json.loads((self.dir / "config.json").read_bytes())
        except (OSError, ValueError):
            return NetConfig()
        subnet = data.get("subnet") or ""
        return NetConfig(subnet="" if subnet == "auto" else subnet, masquerade=bool(data.get("masquerade")))

    def save_config(self, cfg: NetConfig) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.dir / "config.json",
                     json.dumps({"subnet": cfg.subnet or "auto", "masquerade": cfg.masquerade},
                                indent=1).encode())

    def locked(self) -> contextlib.AbstractContextManager[None]:
        """Serialise lease, bridge and rule changes of this state root between processes."""
        return file_lock(self.dir / "lock")

    def rule_tag(self, cid: str) -> str:
        return f"{self.tag}:{cid[:12]}"

    def bridge_exists(self) -> bool:
        return os.path.exists(f"/sys/class/net/{self.bridge}")

    # -- the shell's part: bridge, lease, reserved ports -----------------------------

    def prepare(self, cid: str, mode: str, ports: list[PortBinding], join_pid: int = 0,
                **endpoint: Any) -> NetPlan:
        """Everything that can fail for a reason the user can fix, before any process exists."""
        if mode in ("none", "host") and self.user is None:
            return NetPlan(mode, root=str(self.root.path))
        if mode.startswith("container:") and self.user is None:
            return self._prepare_join(join_pid)
        return self._prepare_bridge(cid, ports, **endpoint)

    def _prepare_join(self, pid: int) -> NetPlan:
        try:
            fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            raise Conflict("the container whose network was to be joined has just stopped",
                           "start it again, then retry") from None
        return NetPlan("container", root=str(self.root.path), join_fd=fd, join_pid=pid)

    def _prepare_bridge(self, cid: str, ports: list[PortBinding], **endpoint: Any) -> NetPlan:
        from cshell.engine.net import portmap
        from cshell.engine.net.netlink import Rtnl

        ports = [b.__class__(**b.to_json()) for b in ports]  # host port 0 is filled in per start
        if ports:
            portmap.iptables_binary()  # missing iptables: say so before anything is made
        fds = portmap.reserve(ports)
        try:
            with self.locked(), Rtnl() as rt:
                index, gateway, prefixlen = self._ensure_bridge(rt)
                lease = self._lease(cid, gateway, prefixlen, ports, **endpoint)
        except BaseException as e:
            for fd in fds:
                os.close(fd)
            with contextlib.suppress(CShellError, OSError):
                self.release(cid)
            if isinstance(e, OSError):  # a netlink or file step the kernel refused
                raise RuntimeFailure(f"network setup failed: {e.strerror or e}",
                                     "`explain on` shows the failing step") from None
            raise
        return NetPlan("bridge", cid=cid, root=str(self.root.path), bridge=self.bridge, bridge_index=index,
                       ip=lease.ip, prefixlen=prefixlen, gateway=gateway, veth=veth_name(cid),
                       ports=ports, port_fds=fds, network=self.user.name if self.user else "")

    def _lease(self, cid: str, gateway: str, prefixlen: int, ports: list[PortBinding], veth: str = "",
               ip: str = "", **names: Any) -> Lease:
        """The container's address (ip: the one asked for with --ip); names: what peers call it."""
        import ipaddress

        subnet = ipaddress.IPv4Network(f"{gateway}/{prefixlen}", strict=False)
        lease = self.leases.allocate(cid, subnet, gateway, {
            "veth": veth or veth_name(cid), "bridge": self.bridge, "ports": [b.to_json() for b in ports],
            **names}, want=ip)
        trace.step(f"lease {lease.ip}/{prefixlen} for the container: {lease.path}")
        return lease

    def _ensure_bridge(self, rt: Rtnl) -> tuple[int, str, int]:
        """(ifindex, gateway, prefixlen) of the bridge, made now if it does not exist."""
        with contextlib.suppress(OSError):
            index = socket.if_nametoindex(self.bridge)
            addrs = [a for a in rt.addresses() if a.index == index]
            if addrs:
                return index, addrs[0].address, addrs[0].prefixlen
            rt.delete_link(index)  # a crash left it without its address: make it again
        with file_lock(Path(HOST_LOCK)):
            return self._create_bridge(rt)

    def _create_bridge(self, rt: Rtnl) -> tuple[int, str, int]:
        import ipaddress

        from cshell.engine.net.ipam import choose_subnet

        cfg = self.config()
        if self.user is not None:
            subnet, gateway = ipaddress.IPv4Network(self.user.subnet), self.user.gateway
        else:
            routes = [ipaddress.IPv4Network(f"{r.dst or '0.0.0.0'}/{r.dst_len}", strict=False) for r in rt.routes()]
            subnet = choose_subnet(routes, cfg.subnet or None)
            gateway = str(next(subnet.hosts()))
        name = self.bridge
        trace.step(f"ip link add {name} type bridge  # subnet {subnet}: no host route overlaps it")
        try:
            rt.add_bridge(name)
        except OSError as e:
            raise _bridge_error(name, e) from None
        index = socket.if_nametoindex(name)
        try:
            # the alias (shown by `ip link`) says whose it is, as comments tag our iptables rules
            trace.step(f"ip link set {name} alias '{self.tag} {self.root.path}'")
            rt.set_alias(index, f"{self.tag} {self.root.path}")
            if self.user is not None:  # first: the address is what marks a bridge complete
                self._add_isolation_rules()
            trace.step(f"ip addr add {gateway}/{subnet.prefixlen} dev {name}  # the containers' gateway")
            rt.add_address(index, gateway, subnet.prefixlen)
            trace.step(f"sysctl -w net.ipv4.conf.{name}.route_localnet=1  # 127.0.0.1 may be DNATed out of it")
            from cshell.engine.net.netlink import write_sysctl

            write_sysctl(f"net/ipv4/conf/{name}/route_localnet", "1")
            trace.step(f"ip link set {name} up")
            rt.set_up(index)
            if self.user is None:
                self._add_bridge_rules(str(subnet), cfg)
        except BaseException:
            with contextlib.suppress(OSError):
                rt.delete_link(index)
            raise
        return index, gateway, subnet.prefixlen

    def _add_isolation_rules(self) -> None:
        """Docker's DOCKER-ISOLATION chains, flattened: nothing is forwarded between two bridges."""
        from cshell.engine.net import portmap

        portmap.remove(self.tag, exact=True)  # a crash between the rules and the address: no duplicates
        portmap.apply({"filter": isolation_rules(self.bridge, self.tag)})

    def _add_bridge_rules(self, subnet: str, cfg: NetConfig) -> None:
        """Rules for the bridge as a whole: forwarding between its ports, outbound NAT if asked."""
        from cshell.engine.net import portmap

        rules = bridge_rules(self.bridge, self.tag, subnet, cfg.masquerade, _forward_filtered())
        if not (rules["nat"] or rules["filter"]):
            return
        forward_was = Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() if cfg.masquerade else ""
        atomic_write(self.dir / "bridge.json", json.dumps({"rules": True, "ip_forward_was": forward_was}).encode())
        portmap.apply(rules)
        if cfg.masquerade and forward_was != "1":
            trace.step("sysctl -w net.ipv4.ip_forward=1  # route the containers' packets out (masquerade on)")
            Path("/proc/sys/net/ipv4/ip_forward").write_text("1")

    # -- the shim's part: the namespace, the veth pair, eth0, the rules -----------------

    def enter_for_init(self, plan: NetPlan) -> InitNetns | None:
        """Before the fork: put the shim where PID 1 must be born (left again by ``leave``)."""
        if plan.mode not in ("bridge", "container"):
            return None
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        if plan.mode == "container":
            trace.step(f"setns(open('/proc/{plan.join_pid}/ns/net'), CLONE_NEWNET)  # PID 1 will share it")
            sc.setns(plan.join_fd, sc.CLONE_NEWNET)
            return InitNetns(home, os.dup(plan.join_fd))
        from cshell.engine.net.netlink import Rtnl

        trace.step(f"unshare({sc.clone_flag_names(sc.CLONE_NEWNET)})  # made by the shim, "
                   "so it can wire it before PID 1 runs")
        sc.unshare(sc.CLONE_NEWNET)
        netns = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        return InitNetns(home, netns, Rtnl())

    @staticmethod
    def leave(ns: InitNetns | None) -> None:
        if ns is not None:
            sc.setns(ns.home, sc.CLONE_NEWNET)

    def wire(self, plan: NetPlan, ns: InitNetns, pid: int) -> None:
        """The veth pair, eth0 inside, the published ports' rules; undone by ``release``."""
        from cshell.engine.net import portmap
        from cshell.engine.net.netlink import Rtnl

        if plan.mode != "bridge":
            ns.close()
            return
        assert ns.rtnl is not None
        ctr, mac = ns.rtnl, mac_for(plan.ip)
        with Rtnl() as rt:
            trace.step(f"ip link add {plan.veth} master {plan.bridge} up type veth "
                       f"peer name eth0 address {mac} netns {pid}  # one cable, one end in each namespace")
            index = _add_veth(rt, plan, ns.netns, mac, self.rule_tag(plan.cid))
            trace.step(f"ip link set {plan.veth} alias {self.rule_tag(plan.cid)}  # whose it is")
            rt.set_alias(index, self.rule_tag(plan.cid))
        eth0 = ctr.link_index("eth0")
        inside = f"nsenter -t {pid} -n ip"
        trace.step(f"{inside} addr add {plan.ip}/{plan.prefixlen} dev eth0")
        ctr.add_address(eth0, plan.ip, plan.prefixlen)
        trace.step(f"{inside} link set eth0 up")
        ctr.set_up(eth0)
        trace.step(f"{inside} route add default via {plan.gateway}  # the bridge is the way out")
        ctr.add_default_route(plan.gateway)
        ns.close()
        if plan.ports:
            portmap.apply(portmap.rules(plan.ports, plan.ip, plan.bridge, self.rule_tag(plan.cid)))

    def attach(self, cid: str, pid: int, **endpoint: Any) -> Lease:
        """One more interface in a running container's namespace, on this bridge (network connect).

        The same cable as eth0's, named ethN inside, with an address and no default
        route (the first network keeps the way out, as in docker). Undone by ``release``.
        """
        from cshell.engine.net.netlink import Rtnl, in_netns

        veth = extra_veth_name(cid, self.user.id if self.user else "")
        fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            with self.locked(), Rtnl() as rt:
                index, gateway, prefixlen = self._ensure_bridge(rt)
                lease = self._lease(cid, gateway, prefixlen, [], veth=veth, **endpoint)
                try:
                    with in_netns(fd) as ctr:
                        names = {link.name for link in ctr.links()}
                        inside = next(f"eth{n}" for n in range(len(names) + 1) if f"eth{n}" not in names)
                        mac = mac_for(lease.ip)
                        trace.step(f"ip link add {veth} master {self.bridge} up type veth peer name {inside} "
                                   f"address {mac} netns {pid}  # one more cable: network {self.name}")
                        plan = NetPlan("bridge", veth=veth, bridge_index=index)
                        host_end = _add_veth(rt, plan, fd, mac, self.rule_tag(cid), inside)
                        rt.set_alias(host_end, self.rule_tag(cid))
                        dev = ctr.link_index(inside)
                        trace.step(f"nsenter -t {pid} -n ip addr add {lease.ip}/{prefixlen} dev {inside}")
                        ctr.add_address(dev, lease.ip, prefixlen)
                        trace.step(f"nsenter -t {pid} -n ip link set {inside} up")
                        ctr.set_up(dev)
                except BaseException:
                    self._undo(lease)
                    raise
        except OSError as e:
            raise RuntimeFailure(f"cannot connect the container to {self.name}: {e.strerror or e}",
                                 "`explain on` shows the failing step") from None
        finally:
            os.close(fd)
        return lease

    # -- releasing -------------------------------------------------------------------

    def release(self, cid: str, drop_bridge: bool = True) -> bool:
        """Remove the container's veth, rules and lease; the bridge too when unused. Idempotent.

        Deleting a bridge takes ~50 ms (the kernel waits out RCU grace periods): the
        shim passes drop_bridge=False, reports the exit, and only then calls
        ``drop_bridge``, so a foreground `run` does not wait for it.
        """
        leases = self.leases.of(cid)
        if not leases and not (drop_bridge and self.bridge_left() and not self.leases.all()):
            return False
        with self.locked():
            for lease in self.leases.of(cid):
                self._undo(lease)
            if drop_bridge:
                self.drop_bridge_if_unused()
        return True

    def bridge_left(self) -> bool:
        """The bridge, or its rules: a removal cut short (a killed shim) deleted the link but
        not the rules, which bridge.json still names."""
        return self.bridge_exists() or (self.dir / "bridge.json").exists()

    def drop_bridge(self) -> None:
        if self.bridge_left() and not self.leases.all() and self.user is None:
            with self.locked():
                self.drop_bridge_if_unused()

    def _undo(self, lease: Lease) -> None:
        from cshell.engine.net import portmap
        from cshell.engine.net.ipam import Leases

        veth = lease.data.get("veth", "")
        with contextlib.suppress(OSError):
            index = socket.if_nametoindex(veth)
            if _link_alias(veth) != self.rule_tag(lease.container):
                raise FileNotFoundError(veth)  # someone else's link under that name: never ours to delete
            from cshell.engine.net.netlink import Rtnl

            trace.step(f"ip link del {veth}  # its peer, eth0, goes with it")
            with Rtnl() as rt, contextlib.suppress(OSError):  # gone with its namespace meanwhile
                rt.delete_link(index)
        if lease.data.get("ports"):
            portmap.remove(self.rule_tag(lease.container))
        trace.step(f"rm {lease.path}  # release {lease.ip}")
        Leases.release(lease)

    def drop_bridge_if_unused(self) -> None:
        """Call under the lock: no lease left means no container is on the bridge."""
        if self.leases.all() or self.user is not None:  # a user network's bridge stays until `network rm`
            return
        # the rules first, then the link: cut short here (a killed shim, a removed state root),
        # a link is left that `bridge_exists` finds again, never a rule that nothing names
        marker = self.dir / "bridge.json"
        if marker.exists():
            from cshell.engine.net import portmap

            with contextlib.suppress(OSError, ValueError):
                was = json.loads(marker.read_bytes()).get("ip_forward_was", "")
                if was and was != "1":
                    trace.step(f"sysctl -w net.ipv4.ip_forward={was}  # as it was before the bridge")
                    Path("/proc/sys/net/ipv4/ip_forward").write_text(was)
            portmap.remove(self.tag, exact=True)  # the bridge's own rules, not the user networks' below its tag
            marker.unlink()
        if self.bridge_exists():
            from cshell.engine.net.netlink import Rtnl

            trace.step(f"ip link del {self.bridge}  # its last container is gone")
            with contextlib.suppress(OSError), Rtnl() as rt:
                rt.delete_link(socket.if_nametoindex(self.bridge))

    def delete_bridge(self) -> None:
        """`network rm`: the user network's bridge and its isolation rules (call under the lock)."""
        from cshell.engine.net import portmap

        if self.bridge_exists():
            from cshell.engine.net.netlink import Rtnl

            trace.step(f"ip link del {self.bridge}  # network rm {self.name}")
            with contextlib.suppress(OSError), Rtnl() as rt:
                rt.delete_link(socket.if_nametoindex(self.bridge))
        portmap.remove(self.tag)

    def reconcile(self, running: Any, rules: bool = False) -> list[str]:
        """Release leases whose container is gone or stopped (a killed shim); drop an unused bridge;
        delete veths (and with ``rules``, iptables rules) of ours that no lease accounts for.

        ``running(cid)`` says whether the container's PID 1 or shim still lives.
        Costs a few directory looks when there is nothing to do (``rules`` runs iptables-save).
        Raises the first error after trying every step.
        """
        fixed: list[str] = []
        errors: list[str] = []
        for lease in self.leases.all():
            gone = not (self.root.containers / lease.container).is_dir()
            if gone or (lease.age > STALE_LEASE and not running(lease.container)):
                try:
                    self.release(lease.container)
                    fixed.append(f"lease {lease.ip}")
                except (CShellError, OSError) as e:
                    errors.append(f"lease {lease.ip}: {reason(e)}")
        try:
            fixed += self.sweep(rules)
        except (CShellError, OSError) as e:
            errors.append(f"stray veths/rules: {reason(e)}")
        if self.bridge_left() and not self.leases.all() and self.user is None:
            try:
                self.drop_bridge()
                fixed.append(f"bridge {self.bridge}")
            except (CShellError, OSError) as e:
                errors.append(f"bridge {self.bridge}: {reason(e)}")
        if errors:
            raise RuntimeFailure("; ".join(errors), "`system check --repair` retries")
        return fixed

    def stray_links(self) -> list[str]:
        """Host veth ends tagged as ours (alias cshell:BRIDGE:ID) that no lease names.

        Call under the lock: a veth is made after its lease and deleted before it,
        so while we hold the lock a veth without a lease was left by a crash.
        """
        leased = {lease.data.get("veth") for lease in self.leases.all()}
        out = []
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir("/sys/class/net"):
                if not name.startswith("veth") or name in leased:
                    continue
                with contextlib.suppress(OSError):
                    alias = Path(f"/sys/class/net/{name}/ifalias").read_text().strip()
                    if self.owns_tag(alias):
                        out.append(name)
        return out

    def stray_rules(self) -> dict[str, list[str]]:
        """{tag: iptables-save lines} of per-container rules whose container holds no lease (call under the lock)."""
        from cshell.engine.net import portmap

        leased = {self.rule_tag(lease.container) for lease in self.leases.all()}
        stray: dict[str, list[str]] = {}
        for lines in portmap.saved_rules(self.tag).values():
            for line in lines:
                tag = line.split("--comment", 1)[1].split()[0].strip('"')
                if self.owns_tag(tag) and tag not in leased:  # not the bridge's own rules
                    stray.setdefault(tag, []).append(line)
        return stray

    def sweep(self, rules: bool = False) -> list[str]:
        """Delete stray veths (and, with ``rules``, stray rules); what was removed. Idempotent."""
        from cshell.engine.net import portmap

        if not self.dir.is_dir():
            return []
        fixed = []
        with self.locked():
            for name in self.stray_links():
                trace.step(f"ip link del {name}  # no lease: a crash left it")
                with contextlib.suppress(OSError):  # gone meanwhile (its namespace died)
                    from cshell.engine.net.netlink import Rtnl

                    with Rtnl() as rt:
                        rt.delete_link(socket.if_nametoindex(name))
                    fixed.append(f"veth {name}")
            for tag in self.stray_rules() if rules else {}:
                fixed.append(f"{portmap.remove(tag)} iptables rule(s) {tag}")
        return fixed


def bridge_rules(bridge: str, tag: str, subnet: str, masquerade: bool, forward_filtered: bool) -> dict[str, list[str]]:
    """{table: rules} for the bridge itself (removed with it)."""
    comment = f"-m comment --comment {tag}"
    nat, flt = [], []
    if forward_filtered:  # br_netfilter + a DROP policy (Docker's, now or later) would cut container from container
        flt.append(f"-I FORWARD -i {bridge} -o {bridge} {comment} -j ACCEPT")
    if masquerade:  # containers -> the host's networks, with the host's address as source
        nat.append(f"-A POSTROUTING -s {subnet} ! -o {bridge} {comment} -j MASQUERADE")
        flt.append(f"-I FORWARD -i {bridge} ! -o {bridge} {comment} -j ACCEPT")
        flt.append(f"-I FORWARD -o {bridge} -m conntrack --ctstate RELATED,ESTABLISHED {comment} -j ACCEPT")
    return {"nat": nat, "filter": flt}


def isolation_rules(bridge: str, tag: str) -> list[str]:
    """A user network's FORWARD rules: its containers talk among themselves, never to another bridge.

    -I puts each at the top, so the last is checked first: the ACCEPT within the
    bridge before the DROPs to and from every other bridge of cshell's.
    """
    comment = f"-m comment --comment {tag}"
    others = [f"{USER_BRIDGE_PREFIX}+", "csh-+", "cshell0"]
    drops = [f"-I FORWARD -i {bridge} -o {o} {comment} -j DROP" for o in others]
    drops += [f"-I FORWARD -i {o} -o {bridge} {comment} -j DROP" for o in others[1:]]
    return [*drops, f"-I FORWARD -i {bridge} -o {bridge} {comment} -j ACCEPT"]


def extra_veth_name(cid: str, net_id: str) -> str:
    """The host end of a connected network's cable: veth + 8 of the container + 3 of the network (15)."""
    return f"veth{cid[:8]}{net_id[:3]}"


def _add_veth(rt: Rtnl, plan: NetPlan, netns: int, mac: str, tag: str, inside: str = "eth0") -> int:
    import errno

    for attempt in (1, 2):
        try:
            return rt.add_veth(plan.veth, inside, netns, plan.bridge_index, mac)
        except OSError as e:
            if e.errno == errno.EEXIST and _link_alias(plan.veth) != tag:
                raise Conflict(f"a network interface named {plan.veth} exists already and is not this "
                               "container's", f"delete it (ip link del {plan.veth}), then start again") from None
            if e.errno == errno.EEXIST and attempt == 1:
                # the last run's pair, its namespace still being torn down by the kernel
                with contextlib.suppress(OSError):
                    rt.delete_link(socket.if_nametoindex(plan.veth))
                continue
            if e.errno == errno.EOPNOTSUPP:
                raise RuntimeFailure("the kernel cannot make a veth pair (no veth support)",
                                     "load the module: modprobe veth (or use --net none / host)") from None
            raise RuntimeFailure(f"cannot create the veth pair {plan.veth}: {e.strerror}",
                                 "is the bridge still there? `net ls` shows it") from None
    raise AssertionError("unreachable")


def _link_alias(name: str) -> str:
    """`ip link`'s alias of a link ("" if none or gone): ours say cshell:BRIDGE[:ID]."""
    try:
        return Path(f"/sys/class/net/{name}/ifalias").read_text().strip()
    except OSError:
        return ""


def _bridge_error(name: str, e: OSError) -> CShellError:
    import errno

    if e.errno in (errno.EOPNOTSUPP, errno.ENOENT, errno.EINVAL):
        return RuntimeFailure("the kernel cannot make a bridge (no bridge support)",
                              "load the module: modprobe bridge (or use --net none / host)")
    if e.errno == errno.EEXIST:
        return Conflict(f"a network interface named {name} exists already",
                        f"it is not one of ours: delete it (ip link del {name}) or use another --root")
    return RuntimeFailure(f"cannot create the bridge {name}: {e.strerror}", "`explain on` shows the failing step")


def _forward_filtered() -> bool:
    """Whether bridged packets may meet a FORWARD policy of DROP, now or while the bridge lives:
    whenever iptables is here. Docker, started after our bridge, sets the policy to DROP and
    loads br_netfilter (bridge-nf-call-iptables=1), which would cut container from container;
    so, as Docker does for its own bridge, the bridge's ACCEPT rule goes in from the start."""
    import shutil

    return shutil.which("iptables-restore", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is not None
