"""Network commands: docker's `network create|ls|inspect|rm|prune|connect|disconnect`, and the
teaching views `net ls`, `net inspect`, `net config`."""

from __future__ import annotations

import sys
from types import SimpleNamespace

from cshell.commands.context import Context, each_target
from cshell.commands.registry import CONTAINER, RUNNING, Opt, Pos, command
from cshell.errors import Conflict, UsageError

NETWORK_DETAILS = """
A user-defined network is a bridge of its own (`csn-` and 8 hex of its id;
docker's are `br-…`) on a subnet of its own (a free /24 of 10.222.0.0/16
unless `--subnet`), made by `network create` and deleted by `network rm`.
Containers join it with `run --network NAME` (`--net` is the same flag) or
`network connect NAME CTR` (one more interface, eth1, in the container).

Isolation, as docker's: iptables FORWARD rules (tagged with the network's
name, removed with it) drop whatever would be forwarded from one bridge to
another; containers on one network talk freely among themselves.

Names: on a user-defined network containers find each other by name, by
`--network-alias` and by short id; on the default bridge they do not (as in
docker). Docker answers these lookups from a DNS server it embeds at
127.0.0.11 in every container; cshell instead keeps each container's
/etc/hosts current, rewriting (in place: it is bind-mounted) one block of
lines per network whenever a container joins or leaves it. No resolver runs
in the container; `cat /etc/hosts` shows exactly why `web` resolves
(docs/differences.md says what this changes).

Try it (busybox's wget and ping resolve names through /etc/hosts):

    network create demo
    run -d --name web --network demo busybox sh -c 'mkdir /www; echo hi from web > /www/index.html; httpd -f -h /www'
    run --rm --network demo busybox wget -qO- http://web/
    run --rm --network demo busybox cat /etc/hosts
    run --rm busybox ping -c1 web          # the default bridge: no names, as in docker
    net ls                                 # both bridges, each with its containers
    rm -f web; network rm demo"""


def _network(ctx: Context):  # noqa: ANN202 - cshell.engine.net.network.Network
    from cshell.engine.net.network import Network

    return Network(ctx.root)


@command(
    "net ls", "draw every bridge (default and user networks), each container's veth pairs, addresses and ports",
    example="net ls",
    group="network",
    docker="docker network inspect bridge; ip link; brctl show",
    details="""
The bridge is a virtual switch on the host (`ip link add NAME type bridge`),
holding the gateway address of the containers' subnet. Each bridge-mode
container gets a **veth pair**, a virtual cable: one end stays on the host
and is plugged into the bridge; the other end was created inside the
container's network namespace and is its `eth0`. `eth0@ifN` means "my peer is
interface N in the other namespace": match the numbers across the picture.

Containers in `--net container:X` mode have no cable of their own: they are in
X's namespace (same net inode). `--net host` containers are in the host's.
The bridge of the default state root is `cshell0`; other state roots (e.g.
tests) get `csh-<8 hex>` so they never share addresses.""",
)
def net_ls(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.engine.net import usernets
    from cshell.engine.net.netinfo import attachment, bridge_info, members
    from cshell.engine.net.network import Network
    from cshell.views.network import net_ls_view

    net = _network(ctx)
    running = ctx.runtime.list(all=False)
    names = {c.id: c.name for c in ctx.runtime.list()}
    attachments = []
    for c in running:
        try:
            attachments.append(attachment(net, c, names))
        except OSError:
            continue  # it stopped while we looked
    bridges = []
    for network in [net, *(Network(ctx.root, u) for u in usernets.all_networks(ctx.root))]:
        info = bridge_info(network)
        bridges.append((info, members(network, info, attachments)))
    ctx.out.print(net_ls_view(bridges, attachments))
    return 0


@command(
    "net inspect", "a container's network in detail: interfaces, routes, its veth, ports and their iptables rules",
    positionals=(Pos("container", "a running container (default: the bridge itself)", optional=True,
                     complete=RUNNING),),
    example="net inspect web",
    group="network",
    docker="docker inspect -f '{{json .NetworkSettings}}'; ip netns exec; iptables -t nat -S",
    details="""
Everything is read from the kernel as you ask: the interfaces and routes inside
the container's network namespace (as `nsenter -t PID -n ip addr` would show),
the host end of its veth pair, and the iptables rules that publish its ports:

- nat PREROUTING DNAT: traffic from other machines to HOSTPORT goes to the container;
- nat OUTPUT DNAT: the same for connections made on this host (127.0.0.1 too);
- nat POSTROUTING MASQUERADE: 127.0.0.1 is rewritten to the bridge's address so
  the container can answer (the bridge has route_localnet=1);
- filter FORWARD ACCEPT: for hosts whose FORWARD policy is DROP.

Without a container: the bridge, its subnet, the leases and the settings.""",
)
def net_inspect(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.engine.net.netinfo import attachment, bridge_info
    from cshell.views.network import bridge_view, container_view

    net = _network(ctx)
    if args.container is None:
        ctx.out.print(bridge_view(bridge_info(net)))
        return 0
    c = ctx.runtime.get(args.container)
    if not c.running:
        raise Conflict(f"container {c.name} is not running, so it has no network",
                       f"start it first: start {c.name}")
    from cshell.engine.net import usernets

    names = {x.id: x.name for x in ctx.runtime.list()}
    own = usernets.network_for(ctx.root, c.config.get("network", "none")) if usernets.is_user_mode(
        c.config.get("network", "none")) and usernets.find(ctx.root, c.config["network"]) else net
    ctx.out.print(container_view(attachment(own, c, names, detail=True)))
    return 0


@command(
    "net config", "show or change the network settings of this state root",
    positionals=(Pos("settings", "subnet=CIDR|auto, masquerade=on|off", optional=True, many=True),),
    example="net config subnet=172.20.0.0/16",
    group="network",
    docker="/etc/docker/daemon.json: bip, ip-masq",
    details="""
Stored in ROOT/network/config.json; used the next time the bridge is made
(it exists only while a container uses it).

- `subnet`: `auto` (default) picks the first of 172.17.0.0/16 … 172.31.0.0/16,
  192.168.0.0/20 … that no host route overlaps, as Docker does for docker0.
- `masquerade`: `on` lets containers reach beyond the host (package mirrors...):
  a MASQUERADE rule for the subnet, FORWARD rules, and net.ipv4.ip_forward=1
  while the bridge exists. Off by default.""",
)
def net_config(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.engine.net.network import NetConfig

    net = _network(ctx)
    cfg = net.config()
    for item in args.settings or []:
        key, eq, value = item.partition("=")
        if key == "subnet" and eq:
            cfg = NetConfig(subnet=_subnet(value), masquerade=cfg.masquerade)
        elif key == "masquerade" and value in ("on", "off", "true", "false"):
            cfg = NetConfig(subnet=cfg.subnet, masquerade=value in ("on", "true"))
        else:
            raise UsageError(f"unknown setting {item!r}", "give subnet=CIDR|auto or masquerade=on|off")
    if args.settings:
        ctx.root.ensure()
        net.save_config(cfg)
        if net.bridge_exists():
            ctx.out.note(f"the bridge {net.bridge} exists: the change applies once its containers are gone")
    ctx.out.text(f"bridge     {net.bridge}\nsubnet     {cfg.subnet or 'auto'}\n"
                 f"masquerade {'on' if cfg.masquerade else 'off'}")
    return 0


def _subnet(value: str) -> str:
    if value == "auto":
        return ""
    import ipaddress

    try:
        return str(ipaddress.IPv4Network(value, strict=False))
    except ValueError:
        raise UsageError(f"{value!r} is not an IPv4 network", "e.g. subnet=172.20.0.0/16, or subnet=auto") from None


# -- docker network … ------------------------------------------------------------------------


@command(
    "network create", "create a user-defined bridge network (its own bridge, subnet and names)",
    options=(Opt(("--subnet",), "its subnet (default: a free /24 of 10.222.0.0/16)", "CIDR"),
             Opt(("--gateway",), "the bridge's address (default: the subnet's first host)", "IP"),
             Opt(("-d", "--driver"), "bridge (the only one cshell has)", "DRIVER", default="bridge")),
    positionals=(Pos("name", "the network's name"),),
    example="network create demo",
    group="network",
    docker="docker network create",
    details=NETWORK_DETAILS,
)
def network_create(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.engine.net import usernets

    net = usernets.create(ctx.root, args.name, args.subnet or "", args.gateway or "", args.driver or "bridge")
    ctx.out.text(net.id)
    return 0


@command(
    "network ls", "list networks: bridge, host, none and the ones you created",
    options=(Opt(("-q", "--quiet"), "only the ids"),),
    example="network ls",
    group="network",
    docker="docker network ls",
    details="The pictures of the bridges and their containers: `net ls`.",
)
def network_ls(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.engine.net import usernets
    from cshell.views.network import network_table

    rows = [(predefined_id(ctx, name), name, driver) for name, driver in
            (("bridge", "bridge"), ("host", "host"), ("none", "null"))]
    rows += [(n.id, n.name, n.driver) for n in usernets.all_networks(ctx.root)]
    rows.sort(key=lambda r: r[1])
    if args.quiet:
        ctx.out.text("\n".join(r[0][:12] for r in rows))
        return 0
    ctx.out.print(network_table(rows))
    return 0


def predefined_id(ctx: Context, name: str) -> str:
    """bridge, host and none have no record of their own: a stable id per state root."""
    import hashlib

    return hashlib.sha256(f"{ctx.root.path}:{name}".encode()).hexdigest()


@command(
    "network inspect", "show networks as JSON (docker's shape): subnet, gateway, containers",
    options=(Opt(("-f", "--format"), "a Go-style template, e.g. '{{range .IPAM.Config}}{{.Subnet}}{{end}}'",
                 "TEMPLATE"),),
    positionals=(Pos("networks", "network names or ids", many=True),),
    example="network inspect demo",
    group="network",
    docker="docker network inspect",
)
def network_inspect(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.engine.net import usernets
    from cshell.views.template import docker_json, render

    names = {c.id: c.name for c in ctx.runtime.list()}
    found: list[dict] = []
    status = each_target(ctx, args.networks,
                         lambda ref: found.append(usernets.inspect(ctx.root, _user_net(ctx, ref), names)))
    if args.format:
        for item in found:
            ctx.out.text(render(args.format, item))
    else:
        ctx.out.text(docker_json(found))
    return status


def _user_net(ctx: Context, ref: str):  # noqa: ANN202 - cshell.engine.net.network.UserNet
    from cshell.engine.net import usernets

    if ref in usernets.PREDEFINED:
        raise UsageError(f"{ref} is a pre-defined network: cshell describes it elsewhere",
                         "net inspect (the bridge), net ls (every network); network inspect takes your networks")
    return usernets.get(ctx.root, ref)


@command(
    "network rm", "remove networks (refused while a container is on one)",
    positionals=(Pos("networks", "network names or ids", many=True),),
    example="network rm demo",
    group="network",
    docker="docker network rm",
)
def network_rm(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.engine.net import usernets

    def one(ref: str) -> None:
        usernets.remove(ctx.root, ref)
        ctx.out.text(ref)

    return each_target(ctx, args.networks, one)


@command(
    "network prune", "remove every user-defined network no container uses",
    options=(Opt(("-f", "--force"), "do not ask for confirmation"),),
    example="network prune -f",
    group="network",
    docker="docker network prune",
)
def network_prune(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.engine.net import usernets

    if not args.force:
        if not sys.stdin.isatty():
            raise UsageError("network prune asks before it removes anything, and stdin is not a terminal",
                             "confirm on the command line: network prune -f")
        ctx.out.text("WARNING! This will remove all custom networks not used by at least one container.")
        if input("Are you sure you want to continue? [y/N] ").strip().lower() not in ("y", "yes"):
            return 0
    removed = usernets.prune(ctx.root)
    if removed:
        ctx.out.text("Deleted Networks:\n" + "\n".join(removed) + "\n")  # docker's blank line after
    return 0


@command(
    "network connect", "plug a container into one more network (an extra ethN; at its next start if stopped)",
    options=(Opt(("--alias",), "another name for the container on this network", "NAME", multi=True),
             Opt(("--ip",), "its address on this network", "IP")),
    positionals=(Pos("network", "a user-defined network"), Pos("container", "a container", complete=CONTAINER)),
    example="network connect demo web",
    group="network",
    docker="docker network connect",
)
def network_connect(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.engine.net import usernets

    c = ctx.runtime.get(args.container)
    usernets.connect(ctx.root, c.dir, c.config, c.pid if c.alive() else 0, args.network, args.alias or [],
                     args.ip or "")
    return 0


@command(
    "network disconnect", "unplug a container from a network it was connected to",
    positionals=(Pos("network", "a user-defined network"), Pos("container", "a container", complete=CONTAINER)),
    example="network disconnect demo web",
    group="network",
    docker="docker network disconnect",
)
def network_disconnect(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.engine.net import usernets

    c = ctx.runtime.get(args.container)
    usernets.disconnect(ctx.root, c.dir, c.config, args.network)
    return 0
