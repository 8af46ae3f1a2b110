"""Namespace commands: see the /proc/PID/ns links, and join them with setns(2)."""

from __future__ import annotations

import os
from types import SimpleNamespace

from cshell.commands.context import Context
from cshell.commands.registry import COMMAND, NSKIND, TARGET, Opt, Pos, command
from cshell.errors import Conflict, NotFound


def resolve_target(ctx: Context, target: str) -> tuple[str, int]:
    """A container name/id, a host PID, or `host` -> (label, host PID)."""
    if target == "host":
        return "host", os.getpid()  # this shell's own namespaces: the host's
    try:
        c = ctx.runtime.get(target)
    except NotFound:
        if target.isdigit() and os.path.exists(f"/proc/{target}"):
            return f"pid {target}", int(target)
        raise NotFound(f"no container or process {target!r}",
                       "give a running container's name or id, a host PID, or `host` (ps lists containers)") from None
    if not c.running:
        raise Conflict(f"container {c.name} is not running, so it has no namespaces",
                       f"start it first: start {c.name}")
    return c.name, c.pid


@command(
    "ns ls", "show the namespaces of containers and processes, side by side",
    positionals=(Pos("targets", "container names or ids, host PIDs, or `host` (default: host and every running container)",
                     optional=True, many=True, complete=TARGET),),
    example="ns ls host web",
    group="namespaces",
    docker="ls -l /proc/PID/ns",
    details="""
Each cell is what `readlink /proc/PID/ns/KIND` prints, e.g. net:[4026532281].
The number is the namespace's inode: two processes with the same number are in
the same namespace. Matching numbers share a colour, so you see at a glance
what a container shares with the host (usually user and time) and what it has
of its own.""",
)
def ns_ls(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.engine.kernel import namespaces
    from cshell.views.ns import ns_table

    targets = args.targets or ["host", *[c.name for c in ctx.runtime.list(all=False)]]
    columns = []
    for target in targets:
        label, pid = resolve_target(ctx, target)
        columns.append((f"{label}\n(pid {pid})", namespaces.links(pid)))
    ctx.out.print(ns_table(columns))
    return 0


@command(
    "ns join", "run a host program inside some namespaces of a container (setns)",
    options=(Opt(("--ns",), "which namespaces, comma-separated (default: all)", "KINDS", complete=NSKIND),),
    positionals=(Pos("target", "a running container, a host PID, or `host`", complete=TARGET),
                 Pos("cmd", "the host program and its arguments (after --)", rest=True, complete=COMMAND)),
    example="ns join web --ns net -- ip addr",
    group="namespaces",
    docker="nsenter / the article's set_ns.c",
    details="""
The article's set_ns.c in one line: open /proc/PID/ns/KIND, setns(2) into it,
then exec the program. With `--ns net` the program is still the host's (`ip`
from your machine) but it sees only the container's network interfaces. Join
`mnt` too and the program is looked up inside the container instead.""",
)
def ns_join(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.engine.kernel import namespaces

    kinds = namespaces.parse_kinds(args.ns)
    _, pid = resolve_target(ctx, args.target)
    return ctx.runtime.join(pid, kinds, args.cmd)
