"""stats: each container's CPU, memory, network, block I/O and PIDs, read from its cgroup."""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING

from cshell.commands.context import Context
from cshell.commands.registry import CONTAINER, Opt, Pos, command

if TYPE_CHECKING:
    from cshell.engine.container.containers import Container


@command(
    "stats", "live CPU %, memory, network and disk I/O and PIDs of containers, from their cgroups",
    options=(Opt(("-a", "--all"), "all containers (stopped ones show zeros); default: the running ones"),
             Opt(("--no-stream",), "print one reading and stop (it takes a second: a rate needs two)"),
             Opt(("--no-trunc",), "full container ids"),
             Opt(("--format",), "a Go-style template per container, e.g. '{{.Name}} {{.CPUPerc}}', or "
                 "'table {{.Name}}\\t{{.MemUsage}}' for a table with headers", "TEMPLATE")),
    positionals=(Pos("containers", "the containers (default: every running one)", many=True, optional=True,
                     complete=CONTAINER),),
    example="stats --no-stream web",
    docker="docker stats",
    details="""
Where each number comes from, so you can read it yourself with `cat`:

- CPU %: the cgroup's CPU time (v1 cpuacct.usage, v2 cpu.stat usage_usec) over
  one second, divided by the host's (/proc/stat) and times the CPUs, as docker:
  100 % is one CPU kept busy, 200 % two.
- MEM USAGE / LIMIT: memory.usage_in_bytes (v2 memory.current) minus the page
  cache the kernel may drop (inactive_file); the limit is --memory, else the
  host's memory.
- NET I/O: received / sent bytes of the container's interfaces, from
  /proc/PID/net/dev, which shows the counters of PID's network namespace.
- BLOCK I/O: read / written bytes (v2 io.stat; on v1, /proc/PID/io of each
  process, since cshell makes no blkio group there).
- PIDS: pids.current, what --pids-limit caps.

Without --no-stream the table is drawn again every second until Ctrl-C.""",
)
def stats(ctx: Context, args: SimpleNamespace) -> int:
    import time

    from cshell.engine.limits.usage import measure
    from cshell.views.template import check

    if args.format:
        check(args.format.removeprefix("table "))
    previous = None
    try:
        while True:
            found = _targets(ctx, args)
            rates, previous = measure([(c.id, c.pid if c.alive() else 0) for c, _ in found], previous=previous)
            rows = [_fields(c, ref, rates[c.id], args.no_trunc) for c, ref in found]
            _show(ctx, rows, args.format, refresh=not args.no_stream)
            if args.no_stream:
                return 0
            time.sleep(1.0)
    except KeyboardInterrupt:  # the way out of the live view
        return 0


def _targets(ctx: Context, args: SimpleNamespace) -> list[tuple[Container, str]]:
    """(container, as the user named it): the named ones (missing ones fail), else running or all."""
    if args.containers:
        return [(ctx.runtime.get(ref), ref) for ref in args.containers]
    return [(c, c.short_id) for c in ctx.runtime.list(all=True) if args.all or c.alive()]


def _fields(c: Container, ref: str, rates, no_trunc: bool) -> dict[str, str]:  # noqa: ANN001 - usage.Rates
    from cshell.views.stats import fields

    return fields(c.id, c.name, rates, ref, no_trunc)


def _show(ctx: Context, rows: list[dict[str, str]], template: str | None, refresh: bool) -> None:
    from cshell.views.stats import FIELDS, stats_table
    from cshell.views.template import render

    draw = ctx.out.refresh if refresh else ctx.out.print
    if not template:
        draw(stats_table(rows))
        return
    body = template.removeprefix("table ").strip().replace("\\t", "\t").replace("\\n", "\n")  # as docker
    lines = [render(body, row) for row in rows]
    if template.startswith("table "):
        header = body
        for key, title in FIELDS.items():
            header = header.replace(f"{{{{.{key}}}}}", title).replace(f"{{{{ .{key} }}}}", title)
        lines.insert(0, header)
    draw("\n".join(_tabs(lines)) if lines else "")


def _tabs(lines: list[str]) -> list[str]:
    """Go's tabwriter as docker sets it (minwidth 10, padding 3): tab-separated cells in columns."""
    cells = [line.split("\t") for line in lines]
    widths: dict[int, int] = {}
    for row in cells:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths.get(i, 10), len(cell) + 3)
    return ["".join(cell.ljust(widths[i]) if i < len(row) - 1 else cell for i, cell in enumerate(row))
            for row in cells]
