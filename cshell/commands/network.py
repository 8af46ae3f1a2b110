"""Network commands: net ls, net inspect, net config."""

from __future__ import annotations

from types import SimpleNamespace

from cshell.commands.context import Context
from cshell.commands.registry import RUNNING, Pos, command
from cshell.errors import Conflict, UsageError


def _network(ctx: Context):  # noqa: ANN202 - cshell.engine.net.network.Network
    from cshell.engine.net.network import Network

    return Network(ctx.root)


@command(
    "net ls", "draw the bridge, each container's veth pair (both ends), addresses and published ports",
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
    from cshell.engine.net.netinfo import attachment, bridge_info
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
    ctx.out.print(net_ls_view(bridge_info(net), attachments))
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
    names = {x.id: x.name for x in ctx.runtime.list()}
    ctx.out.print(container_view(attachment(net, c, names, detail=True)))
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
