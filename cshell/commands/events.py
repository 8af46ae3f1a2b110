"""events: what happened to containers, images and volumes, read from the state root's journal."""

from __future__ import annotations

from types import SimpleNamespace

from cshell.commands.context import Context
from cshell.commands.registry import Opt, command


@command(
    "events", "show what happened: containers created, started, died, images pulled, tagged, deleted",
    options=(Opt(("--since",), "from this time: 10m, 1h30m (back from now), 2026-12-05T08:00:00 or a Unix time",
                 "WHEN"),
             Opt(("--until",), "up to this time (same forms); without it, events keep coming until Ctrl-C",
                 "WHEN"),
             Opt(("-f", "--filter"), "KEY=VALUE: container, event, image, type, volume, network, label "
                 "(a key twice: either value; two keys: both)", "KEY=VALUE", multi=True),
             Opt(("--format",), "a Go-style template, e.g. '{{json .}}' or '{{.Action}} {{.Actor.ID}}'",
                 "TEMPLATE")),
    example="events --since 10m -f type=container",
    docker="docker events",
    details="""
Docker's daemon keeps events in memory and streams them to `docker events`.
cshell has no daemon: the command that acts appends one JSON line to
ROOT/events.jsonl (look at it with `cat`), and a container's shim writes `die`
(with its exitCode, and `oom` before it when the kernel's OOM killer struck)
when PID 1 exits, even if no cshell is running then. `events` reads the file and,
without --until, keeps watching it, so a second terminal shows `run` and `rm`
in the first as they happen.""",
)
def events(ctx: Context, args: SimpleNamespace) -> int:
    import time

    from cshell.engine import events as journal
    from cshell.views.events import event_line
    from cshell.views.template import check, render

    if args.format:
        check(args.format)  # before the first event, which may be long in coming
    since = journal.parse_when(args.since, "--since") if args.since else None
    until = journal.parse_when(args.until, "--until") if args.until else None
    filters = journal.parse_filters(args.filter or [])
    if until is not None and until <= time.time():
        found = iter(journal.read(ctx.root.path, since, until))
    else:
        found = journal.follow(ctx.root.path, since, until)
    try:
        for event in found:
            if journal.matches(event, filters):
                ctx.out.text(render(args.format, event.docker()) if args.format else event_line(event))
    except KeyboardInterrupt:  # the way out of a stream, as in docker
        pass
    return 0
