"""The container commands every Docker tutorial uses next: pause, unpause, top, cp, ..."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from types import SimpleNamespace
from typing import IO

from cshell.commands.context import Context, each_target
from cshell.commands.registry import CONTAINER, FILE, RUNNING, Opt, Pos, command
from cshell.errors import NotFound, UsageError

FREEZER_HELP = """
The cgroup freezer stops every process of the container where it is, without a
signal it could see or catch: cgroup v1 writes FROZEN to
/sys/fs/cgroup/freezer/cshell/ID/freezer.state, cgroup v2 writes 1 to the
container group's cgroup.freeze (and waits for "frozen 1" in cgroup.events).
From the host, `cat /proc/PID/stat` shows the processes in state D (v1) or S
and stopped in the freezer (v2); `ps` shows `Up 5 seconds (Paused)` and
`inspect` .State.Status "paused", .State.Paused true. Memory, network and
files stay as they are. `exec` and `start` are refused until `unpause`;
`stop`, `kill` and `rm -f` work (the signal is sent, then the container is
thawed so it can act on it, as docker does). `explain on` shows the write."""


@command(
    "pause", "freeze every process of running containers (the cgroup freezer)",
    positionals=(Pos("containers", "containers to pause", many=True, complete=RUNNING),),
    example="pause web",
    docker="docker pause",
    details=FREEZER_HELP,
)
def pause(ctx: Context, args: SimpleNamespace) -> int:
    def one(ref: str) -> None:
        ctx.runtime.pause(ctx.runtime.get(ref))
        ctx.out.text(ref)

    return each_target(ctx, args.containers, one)


@command(
    "unpause", "let paused containers run again",
    positionals=(Pos("containers", "containers to unpause", many=True, complete=CONTAINER),),
    example="unpause web",
    docker="docker unpause",
    details="Writes THAWED (v1) or 0 (v2) to the freezer file `pause` wrote: the processes go on where they were.",
)
def unpause(ctx: Context, args: SimpleNamespace) -> int:
    def one(ref: str) -> None:
        ctx.runtime.unpause(ctx.runtime.get(ref))
        ctx.out.text(ref)

    return each_target(ctx, args.containers, one)


@command(
    "top", "the processes of a running container, with their PIDs on the host and inside",
    positionals=(Pos("container", "a running container", complete=RUNNING),
                 Pos("ps_args", "options for ps (default -ef), e.g. -o pid,user,args", optional=True, rest=True)),
    example="top web",
    docker="docker top",
    details="""
As docker: the host's `ps` (with -ef, or the options you give) of the processes in
the container's cgroup, so PID is the number the HOST knows them by. cshell adds
CTR PID beside it: the same process's number inside the container's pid namespace
(the last field of NSpid in /proc/PID/status). PID 1 of the container is some
large number on the host: one process, two names. ps options pass through
(`top web -o pid,user,args`, `top web aux`); the output must keep a PID column.""",
)
def top(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.views.containers import top_table

    ctx.out.print(top_table(ctx.runtime.top(ctx.runtime.get(args.container), args.ps_args)))
    return 0


@command(
    "cp", "copy files and directories between a container and the host",
    options=(Opt(("-a", "--archive"), "keep the owners (uid:gid) of the source"),
             Opt(("-L", "--follow-link"), "copy what a symlink SRC points to, not the link")),
    positionals=(Pos("src", "CTR:PATH, a host path, or - (a tar on stdin)", complete=FILE),
                 Pos("dst", "CTR:PATH, a host path, or - (a tar on stdout)", complete=FILE)),
    example="cp web:/etc/hostname .",
    docker="docker cp",
    details="""
As docker, one side is CTR:PATH and the other a host path (or `-` for a tar
stream). The container may be running, paused or stopped.

- SRC a file: copied to DST; into DST if it is a directory; a DST ending in `/`
  must be an existing directory.
- SRC a directory: DST is created as its copy, or if DST is a directory SRC goes
  into it under its own name; `SRC/.` copies only what is inside SRC.
- A symlink SRC is copied as the link (`-L` copies its target).
- Owners: files copied into the container belong to its root (0:0), files
  copied out to you; `-a` keeps the source's uid and gid. Modes and times are kept.

How it stays inside the container: the container's side is handled by a child
process whose root IS the container's root: for a running container it setns(2)es
into the container's mount namespace (volumes and /etc/hosts included); for a
stopped one it mounts the overlay and the volumes in a private mount namespace
and chroots there. The kernel then resolves every path inside the container: a
symlink to / means the container's /, never the host's, even when the container
swaps a directory for such a link while cp runs (CVE-2018-15664, the race that
let `docker cp` read and write host files). `explain on` shows the steps.""",
)
def cp(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.engine.container import copy

    if not args.src or not args.dst:
        raise UsageError(f"{'source' if not args.src else 'destination'} can not be empty", "e.g. cp web:/etc/hostname .")
    (src_ctr, src), (dst_ctr, dst) = copy.split_arg(args.src), copy.split_arg(args.dst)
    if src_ctr and dst_ctr:
        raise UsageError("copying between containers is not supported", "copy to the host first, then into the other")
    if not (src_ctr or dst_ctr):
        raise UsageError("must specify at least one container source", "write one side as CTR:PATH, e.g. web:/etc")
    if src_ctr:
        container = ctx.runtime.get(src_ctr)
        if dst != "-":
            copy.copy_from(container, src, dst, args.archive, args.follow_link)
            return 0
        with _binary_stdout(ctx) as out:
            copy.copy_from(container, src, out, args.archive, args.follow_link)
        return 0
    container = ctx.runtime.get(dst_ctr)
    source = sys.stdin.buffer if src == "-" else src
    copy.copy_to(container, source, dst, args.archive, args.follow_link)
    return 0


@contextlib.contextmanager
def _binary_stdout(ctx: Context) -> Iterator[IO[bytes]]:
    """stdout for the tar, as docker writes it; the REPL's screen has no place for one."""
    stream = ctx.out.out
    if ctx.out.guard is not None or not hasattr(stream, "buffer"):
        raise UsageError("a tar cannot be written to this screen", "from a shell: cshell cp CTR:PATH - > FILE.tar")
    stream.flush()
    yield stream.buffer
    stream.buffer.flush()


@command(
    "rename", "give a container a new name",
    positionals=(Pos("container", "the container", complete=CONTAINER), Pos("new_name", "its new name")),
    example="rename web web-old",
    docker="docker rename",
    details="Only the name changes (config.json): the id, the hostname and what runs inside stay.",
)
def rename(ctx: Context, args: SimpleNamespace) -> int:
    ctx.runtime.rename(ctx.runtime.get(args.container), args.new_name)
    return 0


@command(
    "port", "list a container's published ports, or the host address of one",
    positionals=(Pos("container", "the container", complete=CONTAINER),
                 Pos("private", "a container port, PORT[/PROTO] (tcp unless told)", optional=True)),
    example="port web 80",
    docker="docker port",
    details="""
`80/tcp -> 0.0.0.0:8080` for each port published with -p or -P while the container
runs; with a port, just its host addresses. The traffic goes through the iptables
DNAT rules `net inspect` lists.""",
)
def port(ctx: Context, args: SimpleNamespace) -> int:
    container = ctx.runtime.get(args.container)
    published = ctx.runtime.published_ports(container)
    if not args.private:
        for key, address in published:
            ctx.out.text(f"{key} -> {address}")
        return 0
    number, _, proto = args.private.partition("/")
    if not number.isdigit() or not 0 < int(number) < 65536 or proto not in ("", "tcp", "udp", "sctp"):
        raise UsageError(f"invalid port {args.private!r}", "PORT or PORT/PROTO, e.g. 80 or 53/udp")
    wanted = f"{int(number)}/{proto or 'tcp'}"
    addresses = [address for key, address in published if key == wanted]
    if not addresses:
        raise NotFound(f"no public port '{wanted}' published for {args.container}",
                       f"`port {args.container}` lists what is published")
    for address in addresses:
        ctx.out.text(address)
    return 0


@command(
    "restart", "stop then start containers again",
    options=(Opt(("-t", "--time"), "seconds to wait for it to stop before SIGKILL (default 10)", "N", default="10"),),
    positionals=(Pos("containers", "containers to restart", many=True, complete=CONTAINER),),
    example="restart -t 2 web",
    docker="docker restart",
    details="""
`stop` (SIGTERM, then SIGKILL after -t seconds), then `start`: a new PID 1 in new
namespaces, the same writable layer. A stopped container is just started.""",
)
def restart(ctx: Context, args: SimpleNamespace) -> int:
    timeout = _seconds(args.time, "restart")

    def one(ref: str) -> None:
        ctx.runtime.restart(ctx.runtime.get(ref), timeout)
        ctx.out.text(ref)

    return each_target(ctx, args.containers, one)


def _seconds(text: str, verb: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if value != value:  # nan
        raise UsageError(f"invalid time {text!r}", f"give seconds, e.g. {verb} -t 2 NAME")
    return value
