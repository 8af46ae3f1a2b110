"""User-defined networks (`network create`): one bridge each, and names kept in /etc/hosts.

A network is ROOT/networks/<id>/network.json (its name, subnet, gateway) with
its leases and lock beside it. Its bridge, csn-<8 hex>, is made at `create`
and removed at `rm`, as docker's br-<id> are; isolation rules keep every
bridge's traffic to itself (no forwarding from one bridge to another).

Names. Docker answers name lookups from an embedded DNS server at 127.0.0.11
inside each container. cshell keeps each container's /etc/hosts current
instead: when a container joins or leaves a network, every container on it
gets one block of lines (`IP  name alias… id`) for its peers. The file is the
one bind-mounted at /etc/hosts, so it is rewritten in place (same inode; a
rename would leave the container's mount on the old file), under flock(2).
It needs no process in the container, works for every libc, and a student
can `cat /etc/hosts` to see why `web` resolves.

Crash consistency: the definition is written (atomically) before the bridge
is made and deleted after it is gone, so a shell killed mid-way leaves either
a network whose bridge is made again on first use, or a tagged bridge
without a definition, which the next start-up (``reconcile``) deletes.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import re
import shutil
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cshell.engine import trace
from cshell.engine.net.network import HOST_LOCK, USER_BRIDGE_PREFIX, Network, UserNet
from cshell.engine.state import StateRoot, file_lock, read_json, write_json
from cshell.errors import Conflict, CShellError, NotFound, RuntimeFailure, UsageError, reason

if TYPE_CHECKING:
    from cshell.engine.net.ipam import Lease

PREDEFINED = ("bridge", "host", "none")
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")  # docker's
# /24s of 10.222.0.0/16: never the default bridge's pools (172.17-31/16, 192.168/20),
# nor Docker's 172.17/16, nor the parity harness's 10.213.0.0/24.
POOL = ipaddress.IPv4Network("10.222.0.0/16")
POOL_PREFIX = 24
HOSTS_MARK = "# cshell network "  # starts each network's block in a container's /etc/hosts


def networks_dir(root: StateRoot) -> Path:
    return root.path / "networks"


def all_networks(root: StateRoot) -> list[UserNet]:
    out = []
    with contextlib.suppress(FileNotFoundError):
        for d in sorted(networks_dir(root).iterdir()):
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                out.append(UserNet(**read_json(d / "network.json")))
    return sorted(out, key=lambda n: n.created)


def find(root: StateRoot, ref: str) -> UserNet | None:
    """By name, full id or unique id prefix (docker's order); None if there is none."""
    nets = all_networks(root)
    for n in nets:
        if ref in (n.name, n.id):
            return n
    matches = [n for n in nets if len(ref) >= 1 and n.id.startswith(ref)]
    return matches[0] if len(matches) == 1 else None


def get(root: StateRoot, ref: str) -> UserNet:
    net = find(root, ref)
    if net is None:
        raise NotFound(f"no such network: {ref}", "see the networks: network ls")
    return net


def is_user_mode(mode: str) -> bool:
    """A --network value naming a user network (not bridge/none/host/container:X)."""
    return mode not in PREDEFINED and mode != "default" and not mode.startswith("container:")


def network_for(root: StateRoot, mode: str) -> Network:
    """The Network a container's mode puts it on: the default bridge or the named user network."""
    if not is_user_mode(mode):
        return Network(root)
    net = find(root, mode)
    if net is None:
        raise NotFound(f"network {mode} not found", "use bridge, none, host, container:NAME or a network of `network ls` (network create NAME makes one)")
    return Network(root, net)


# -- create, rm, prune -----------------------------------------------------------------------


def create(root: StateRoot, name: str, subnet: str = "", gateway: str = "", driver: str = "bridge") -> UserNet:
    """The definition, then the bridge (see the module's note on crashes)."""
    if driver != "bridge":
        raise UsageError(f"driver {driver!r} is not supported", "cshell makes bridge networks only: -d bridge")
    import secrets
    from datetime import UTC, datetime

    check_name(name)
    root.ensure()
    from cshell.engine.net.netlink import Rtnl

    # The host lock from the subnet's choice until the bridge holds it: two state roots
    # creating networks at once never pick the same subnet.
    with file_lock(networks_dir(root) / ".lock"), file_lock(Path(HOST_LOCK)):
        taken = find(root, name)
        if taken is not None and taken.name == name:
            raise Conflict(f"network with name {name} already exists", f"choose another name, or: network rm {name}")
        net_subnet = _subnet(root, subnet)
        gw = _gateway(net_subnet, gateway)
        net = UserNet(secrets.token_hex(32), name, str(net_subnet), gw,
                      datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"))
        d = networks_dir(root) / net.id
        d.mkdir(parents=True)
        trace.step(f"write {d}/network.json  # the network: {net.subnet}, gateway {net.gateway}")
        write_json(d / "network.json", net.__dict__)
        network = Network(root, net)
        try:
            with network.locked(), Rtnl() as rt:
                network._create_bridge(rt)
        except BaseException as e:
            with contextlib.suppress(CShellError, OSError):
                network.delete_bridge()
            shutil.rmtree(d, ignore_errors=True)
            if isinstance(e, OSError):
                raise RuntimeFailure(f"cannot make the bridge {net.bridge}: {e.strerror or e}",
                                     "`explain on` shows the failing step") from None
            raise
    return net


def check_name(name: str) -> None:
    if name in (*PREDEFINED, "default") or name.startswith("container:"):
        raise UsageError(f"{name} is a pre-defined network name", "choose another name, e.g. network create mynet")
    if not NAME_RE.match(name):
        raise UsageError(f"invalid network name {name!r}",
                         "letters, digits and _ . - and start with a letter or digit, e.g. backend")


def _taken_subnets(root: StateRoot) -> list[ipaddress.IPv4Network]:
    """The host's routes (every bridge of every state root has one) and our own networks' subnets."""
    from cshell.engine.net.netlink import Rtnl

    with Rtnl() as rt:
        routes = [ipaddress.IPv4Network(f"{r.dst or '0.0.0.0'}/{r.dst_len}", strict=False)
                  for r in rt.routes() if r.dst_len]
    return routes + [ipaddress.IPv4Network(n.subnet) for n in all_networks(root)]


def _subnet(root: StateRoot, wanted: str) -> ipaddress.IPv4Network:
    taken = _taken_subnets(root)
    if not wanted:
        for candidate in POOL.subnets(new_prefix=POOL_PREFIX):
            if not any(candidate.overlaps(t) for t in taken):
                return candidate
        raise Conflict(f"no free subnet left in {POOL}", "give one: network create --subnet CIDR NAME")
    try:
        subnet = ipaddress.IPv4Network(wanted, strict=False)
    except ValueError:
        raise UsageError(f"invalid subnet {wanted!r}", "give an IPv4 network, e.g. --subnet 10.30.0.0/24") from None
    if subnet.prefixlen > 30:
        raise UsageError(f"subnet {subnet} is too small", "give a /30 or larger, e.g. --subnet 10.30.0.0/24")
    clash = next((t for t in taken if t.overlaps(subnet)), None)
    if clash is not None:
        raise Conflict(f"subnet {subnet} overlaps {clash}, already in use on this host",
                       "choose another --subnet (ip route shows what is taken)")
    return subnet


def _gateway(subnet: ipaddress.IPv4Network, wanted: str) -> str:
    if not wanted:
        return str(next(subnet.hosts()))
    try:
        gw = ipaddress.IPv4Address(wanted)
    except ValueError:
        raise UsageError(f"invalid gateway {wanted!r}", f"give an address of {subnet}, e.g. --gateway "
                         f"{next(subnet.hosts())}") from None
    if gw not in subnet or gw in (subnet.network_address, subnet.broadcast_address):
        raise UsageError(f"gateway {gw} is not a host address of {subnet}",
                         f"give one inside it, e.g. --gateway {next(subnet.hosts())}")
    return str(gw)


def check_ip(net: UserNet, ip: str) -> None:
    """--ip: a host address of the network's subnet, not its gateway."""
    subnet = ipaddress.IPv4Network(net.subnet)
    try:
        addr = ipaddress.IPv4Address(ip)
    except ValueError:
        raise UsageError(f"invalid IPv4 address {ip!r}", f"give one of {subnet}, e.g. --ip {subnet[10]}") from None
    if addr not in subnet or addr in (subnet.network_address, subnet.broadcast_address):
        raise UsageError(f"address {ip} is not a host address of network {net.name} ({subnet})",
                         f"give one inside it, e.g. --ip {subnet[10]}")
    if str(addr) == net.gateway:
        raise UsageError(f"address {ip} is the gateway of network {net.name}", f"give another, e.g. --ip {subnet[10]}")


def in_use(root: StateRoot, net: UserNet) -> list[str]:
    """The containers (ids) holding an address on it: docker's active endpoints."""
    return sorted({lease.container for lease in Network(root, net).leases.all()})


def remove(root: StateRoot, ref: str) -> UserNet:
    """The bridge and its rules, then the definition; refused while a container is on it."""
    if ref in PREDEFINED:
        raise Conflict(f"{ref} is a pre-defined network and cannot be removed", "only networks you created can go")
    net = get(root, ref)
    network = Network(root, net)
    with network.locked():
        users = in_use(root, net)
        if users:
            raise Conflict(f"network {net.name} is in use by {len(users)} running container(s)",
                           f"stop them or disconnect them first: network disconnect {net.name} CONTAINER")
        network.delete_bridge()
        trace.step(f"rm -r {network.dir}")
        shutil.rmtree(network.dir / "leases", ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            (network.dir / "network.json").unlink()
    shutil.rmtree(network.dir, ignore_errors=True)
    return net


def prune(root: StateRoot) -> list[str]:
    """Every user network no container is on (docker: not used by at least one container)."""
    referenced = _referenced(root)
    removed = []
    for net in all_networks(root):
        if net.name in referenced or in_use(root, net):
            continue
        with contextlib.suppress(Conflict, NotFound):
            removed.append(remove(root, net.id).name)
    return removed


def _referenced(root: StateRoot) -> set[str]:
    """Network names that some container (running or not) is configured to use."""
    names: set[str] = set()
    with contextlib.suppress(FileNotFoundError):
        for d in root.containers.iterdir():
            with contextlib.suppress(OSError, ValueError):
                cfg = read_json(d / "config.json")
                names.add(cfg.get("network", ""))
                names.update(cfg.get("networks") or {})
    return names


# -- endpoints: what a container is called on a network ---------------------------------------


def endpoint(config: dict[str, Any], net: str) -> dict[str, Any]:
    """The lease's extra fields on user network NET: the names peers use, the address asked for."""
    ep = (config.get("networks") or {}).get(net) or {}
    names = list(dict.fromkeys([config["name"], *ep.get("aliases", []), config["id"][:12]]))
    return {"name": config["name"], "names": names, "ip": ep.get("ip", "")}


def attach(root: StateRoot, net: UserNet, config: dict[str, Any], pid: int) -> Lease:
    """Plug a running container into NET as one more interface (network connect), and tell the peers."""
    network = Network(root, net)
    lease = network.attach(config["id"], pid, **endpoint(config, net.name))
    refresh_hosts(root, network)
    return lease


def release_all(root: StateRoot, cid: str, drop_bridge: bool = True) -> None:
    """Every lease of the container: the default bridge's and each user network's (peers told)."""
    Network(root).release(cid, drop_bridge)
    for net in all_networks(root):
        network = Network(root, net)
        if network.leases.of(cid):
            network.release(cid)
            refresh_hosts(root, network, leaving=cid)


def detach(root: StateRoot, net: UserNet, cid: str) -> bool:
    network = Network(root, net)
    released = network.release(cid)
    refresh_hosts(root, network, leaving=cid)
    return released


# -- /etc/hosts --------------------------------------------------------------------------------


def refresh_hosts(root: StateRoot, network: Network, leaving: str = "") -> None:
    """Rewrite this network's block in the /etc/hosts of every container on it (and drop it from LEAVING's).

    Under the network's lock: two containers starting at once each write what both see,
    never one an older list over the other's newer one."""
    with network.locked():
        leases = network.leases.all()
        for lease in leases:
            peers = [f"{p.ip}\t{' '.join(p.data.get('names') or [p.data.get('name', '')])}"
                     for p in leases if p.container != lease.container]
            _write_block(root.containers / lease.container / "hosts", network.name, peers)
        if leaving:
            _write_block(root.containers / leaving / "hosts", network.name, [])


def _write_block(path: Path, netname: str, lines: list[str]) -> None:
    """Replace NETNAME's block in a hosts file in place (same inode: it is bind-mounted), under flock."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return  # removed meanwhile (rm)
    with os.fdopen(fd, "r+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        text = f.read().decode(errors="replace")
        updated = replace_block(text, netname, lines)
        if updated != text:
            trace.step(f"write {path}  # {netname}: " + (", ".join(lines) or "no peers").replace("\t", " "))
            data = updated.encode()
            os.pwrite(f.fileno(), data, 0)  # one write, then cut: a reader never sees an empty file
            os.ftruncate(f.fileno(), len(data))


def replace_block(text: str, netname: str, lines: list[str]) -> str:
    """The hosts text with NETNAME's block (a mark line, then its lines) replaced, or dropped if no lines."""
    out: list[str] = []
    skipping = False
    for line in text.splitlines():
        if line.startswith(HOSTS_MARK):
            skipping = line == HOSTS_MARK + netname
            if skipping:
                continue
        if not skipping:
            out.append(line)
    if lines:
        out += [HOSTS_MARK + netname, *lines]
    return "\n".join(out) + "\n"


# -- start-up ----------------------------------------------------------------------------------


def reconcile(root: StateRoot, running: Callable[[str], bool], rules: bool = False) -> list[str]:
    """Each network's leases of stopped containers; bridges of ours without a definition (a crash)."""
    fixed: list[str] = []
    errors: list[str] = []
    nets = all_networks(root)
    for net in nets:
        network = Network(root, net)
        if not network.dir.is_dir():
            continue
        try:
            gone = network.reconcile(running, rules)
            if gone:
                refresh_hosts(root, network)
            fixed += [f"{net.name}: {what}" for what in gone]
        except (CShellError, OSError) as e:
            errors.append(f"network {net.name}: {reason(e)}")
    try:
        fixed += _stray_bridges(root, {n.bridge for n in nets})
    except (CShellError, OSError) as e:
        errors.append(f"stray bridges: {reason(e)}")
    if errors:
        raise RuntimeFailure("; ".join(errors), "`system check --repair` retries")
    return fixed


def _stray_bridges(root: StateRoot, known: set[str]) -> list[str]:
    """csn- bridges tagged as this root's whose network is gone (killed during create or rm)."""
    from cshell.engine.net import portmap
    from cshell.engine.net.netlink import Rtnl

    prefix = Network(root).tag + ":n-"
    fixed = []
    for name in os.listdir("/sys/class/net"):
        if not name.startswith(USER_BRIDGE_PREFIX) or name in known:
            continue
        with contextlib.suppress(OSError):
            alias = Path(f"/sys/class/net/{name}/ifalias").read_text().strip()
            if not alias.startswith(prefix):
                continue
            trace.step(f"ip link del {name}  # its network is gone: a crash left it")
            with Rtnl() as rt:
                rt.delete_link(socket.if_nametoindex(name))
            portmap.remove(alias.split(" ")[0])
            fixed.append(f"bridge {name}")
    return fixed


# -- connect, disconnect, inspect ---------------------------------------------------------------


def _save_config(root: StateRoot, cdir: Path, config: dict[str, Any]) -> None:
    with root.locked():
        write_json(cdir / "config.json", config)


def connect(root: StateRoot, cdir: Path, config: dict[str, Any], pid: int, ref: str,
            aliases: list[str], ip: str = "") -> UserNet:
    """docker network connect: recorded in the container's config; plugged in now if it runs (PID)."""
    net = get(root, ref)
    mode = config.get("network", "none")
    if not is_user_mode(mode) and mode != "bridge":
        raise Conflict(f"container {config['name']} uses --network {mode.split(':')[0]}: it cannot join other networks",
                       "only containers on bridge or user networks can be connected")
    networks = dict(config.get("networks") or {})
    if net.name in networks or mode == net.name:
        raise Conflict(f"container {config['name']} is already connected to network {net.name}",
                       f"see its interfaces: net inspect {config['name']}")
    if ip:
        check_ip(net, ip)
    networks[net.name] = {"aliases": list(aliases), "ip": ip}
    updated = {**config, "networks": networks}
    if pid:
        attach(root, net, updated, pid)
    _save_config(root, cdir, updated)
    return net


def disconnect(root: StateRoot, cdir: Path, config: dict[str, Any], ref: str) -> UserNet:
    """docker network disconnect: the extra interface is unplugged (now, if it runs) and forgotten."""
    net = get(root, ref)
    networks = dict(config.get("networks") or {})
    if config.get("network") == net.name:
        raise Conflict(f"{net.name} is the network container {config['name']} was started with (--network)",
                       "cshell disconnects only networks added by `network connect`; rm and run it again instead")
    if net.name not in networks:
        raise Conflict(f"container {config['name']} is not connected to network {net.name}",
                       f"connect it first: network connect {net.name} {config['name']}")
    detach(root, net, config["id"])
    del networks[net.name]
    _save_config(root, cdir, {**config, "networks": networks})
    return net


def addresses(root: StateRoot, cid: str, names: list[str]) -> dict[str, dict[str, Any]]:
    """inspect's .NetworkSettings.Networks entries of CID on the named networks (those it holds a lease on)."""
    from cshell.engine.net.network import mac_for

    out = {}
    for name in names:
        net = find(root, name)
        lease = next(iter(Network(root, net).leases.of(cid)), None) if net else None
        if net is not None and lease is not None:
            out[name] = {"Gateway": net.gateway, "IPAddress": lease.ip,
                         "IPPrefixLen": ipaddress.IPv4Network(net.subnet).prefixlen, "MacAddress": mac_for(lease.ip)}
    return out


def inspect(root: StateRoot, net: UserNet, names: dict[str, str]) -> dict[str, Any]:
    """docker network inspect's shape; Containers: those holding an address on it now."""
    containers = {}
    prefix = ipaddress.IPv4Network(net.subnet).prefixlen
    from cshell.engine.net.network import mac_for

    for lease in sorted(Network(root, net).leases.all(), key=lambda item: ipaddress.IPv4Address(item.ip)):
        containers[lease.container] = {"Name": names.get(lease.container, lease.data.get("name", "")),
                                       "EndpointID": "", "MacAddress": mac_for(lease.ip),
                                       "IPv4Address": f"{lease.ip}/{prefix}", "IPv6Address": ""}
    return {"Name": net.name, "Id": net.id, "Created": net.created, "Scope": "local", "Driver": net.driver,
            "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": {}, "Config": [{"Subnet": net.subnet, "Gateway": net.gateway}]},
            "Internal": False, "Attachable": False, "Ingress": False, "ConfigFrom": {"Network": ""},
            "ConfigOnly": False, "Containers": containers, "Options": {}, "Labels": {}}
