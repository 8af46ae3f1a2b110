"""Commands about the shell itself: help, explain, exit."""

from __future__ import annotations

from types import SimpleNamespace

from cshell.commands.context import Context
from cshell.commands.registry import COMMAND, Pos, command


@command(
    "help", "list the commands, or explain one",
    positionals=(Pos("topic", "a command, e.g. run or ns join", optional=True, many=True, complete=COMMAND),),
    example="help ns join",
    group="shell",
    needs_root=False,
    details="Every command mirrors a docker command or a kernel concept; `help CMD` says which, with an example.",
)
def help_(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.commands.registry import REGISTRY, lookup
    from cshell.views.help import command_help, overview

    if args.topic:
        family = [c for n, c in REGISTRY.items() if n.startswith(args.topic[0] + " ")]
        if len(args.topic) == 1 and args.topic[0] not in REGISTRY and family:  # `help volume`, `help net`
            ctx.out.print(command_help(family[0]))
            for c in family[1:]:
                ctx.out.text(f"  {c.name:<16} {c.summary}")
            return 0
        cmd, extra = lookup(args.topic)
        ctx.out.print(command_help(cmd))
    else:
        ctx.out.print(overview(list(REGISTRY.values())))
    return 0


@command(
    "explain", "show the syscalls and mounts behind each command (on/off)",
    positionals=(Pos("state", "on or off (default: show the current state)", optional=True),),
    example="explain on",
    group="shell",
    needs_root=False,
    details="""
With explain on, every kernel-level step is printed under the command as it
happens: unshare(CLONE_NEW...), each mount with its options, pivot_root,
sethostname, the cgroup writes, setns and execve.""",
)
def explain(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.errors import UsageError

    if args.state is not None:
        if args.state not in ("on", "off"):
            raise UsageError(f"explain takes on or off, not {args.state!r}", "explain on")
        ctx.explain = args.state == "on"
    ctx.out.text(f"explain is {'on' if ctx.explain else 'off'}")
    return 0


@command(
    "exit", "leave the shell (containers keep running)",
    example="exit",
    group="shell",
    needs_root=False,
    details="Detached containers belong to their shims, not to the shell: they keep running.",
)
def exit_(ctx: Context, args: SimpleNamespace) -> int:
    ctx.wants_exit = True
    return 0


def _differences_text() -> str:
    """docs/differences.md, the one table of deliberate differences from docker (read, not copied)."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "docs" / "differences.md"
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return "The table is docs/differences.md in cshell's source tree."


@command(
    "differences", "where cshell deliberately does not do what docker does, and why",
    example="help differences",
    group="shell",
    needs_root=False,
    details=_differences_text(),
)
def differences(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.commands.registry import REGISTRY
    from cshell.views.help import command_help

    ctx.out.print(command_help(REGISTRY["differences"]))
    return 0
