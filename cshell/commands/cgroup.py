"""Cgroup commands: change a running container's limits, and see its cgroup files."""

from __future__ import annotations

from types import SimpleNamespace

from cshell.commands.context import Context, each_target
from cshell.commands.registry import CONTAINER, Opt, Pos, command
from cshell.errors import Conflict

FILES_HELP = """
Where the groups are. v1: one directory per controller, /sys/fs/cgroup/CONTROLLER/cshell/ID.
v2: one directory, /sys/fs/cgroup/cshell/ID. v2 on a machine booted by systemd (the
students' VM): systemd owns the tree there and lets a program change only a subtree it
has delegated, so, as runc's systemd driver does, cshell asks systemd (D-Bus,
StartTransientUnit) for a scope per container, cshell.slice/cshell-ID12.scope, with
Delegate=yes. The shim lives in its shim/ group (so it leaves your ssh session's
scope and survives your logout), the container in container/, where the limits go;
systemd never writes inside a delegated subtree, so `systemctl daemon-reload` keeps
them, and `systemctl status cshell-ID12.scope` shows the container.
CSHELL_CGROUP_DRIVER=cgroupfs asks for the plain layout instead (docker's
native.cgroupdriver=cgroupfs).

v1 and v2 name the same limits differently:

| limit | cgroup v1 | cgroup v2 |
|---|---|---|
| memory | memory.limit_in_bytes | memory.max |
| memory + swap | memory.memsw.limit_in_bytes | memory.swap.max (swap only) |
| CPU time | cpu.cfs_quota_us / cpu.cfs_period_us | cpu.max ("QUOTA PERIOD") |
| CPU weight | cpu.shares (2-262144) | cpu.weight (1-10000) |
| CPUs | cpuset.cpus | cpuset.cpus |
| processes | pids.max | pids.max |
| memory used | memory.usage_in_bytes, memory.max_usage_in_bytes | memory.current, memory.peak |
| throttling | cpu.stat nr_throttled, throttled_time (ns) | cpu.stat nr_throttled, throttled_usec |
| OOM kills | memory.oom_control oom_kill | memory.events oom_kill |"""


@command(
    "cgroup set", "change a container's limits (docker update), or any of its cgroup files",
    positionals=(Pos("container", "a container (a stopped one gets the change at its next start)",
                     complete=CONTAINER),
                 Pos("values", "KEY=VALUE: memory, memory-swap, cpus, cpu-shares, cpuset-cpus, pids, "
                     "or a file name such as cpu.cfs_quota_us", many=True)),
    example="cgroup set web memory=64m cpus=0.5 pids=100",
    group="cgroups",
    docker="docker update",
    details="""
Each KEY=VALUE becomes one write into the container's own cgroup directory,
shown as `echo VALUE > FILE` (turn on `explain on`). Docker's keys take docker's
units (memory=64m, cpus=0.5 -> a quota of 50000 us per 100000 us); a raw file
name (cpu.cfs_quota_us=50000 on v1, memory.max=64m is not a unit the kernel
reads: write bytes) is written as is, and only a file inside the container's
own groups. Every value is checked before the first write.

The new values are recorded with the container, as docker update records them:
`inspect` shows them under HostConfig (Memory, MemorySwap, NanoCpus, CpuShares,
CpusetCpus, PidsLimit; CpuQuota and CpuPeriod for a raw cpu.max or
cpu.cfs_quota_us), and `start` after `stop` applies them again.
""" + FILES_HELP,
)
def cgroup_set(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.engine.limits import limits

    c = ctx.runtime.get(args.container)
    if not c.running:  # no cgroup now: record the change for the next start, as docker update does
        now = limits.record_values(args.values, c.config.get("limits") or {})
        limits.persist(c.dir, now)
        ctx.out.text(f"{c.name} is not running: recorded, written to its cgroup files at the next start")
        return 0
    done, now = limits.set_values(c.id, args.values, c.config.get("limits") or {})
    limits.persist(c.dir, now)  # inspect's HostConfig shows it; the next start applies it again
    for path, value in done:
        ctx.out.text(f"{path} = {value}")
    return 0


UPDATE_FLAGS = (("memory", ("-m", "--memory"), "memory limit (6m at least): 64m, 1g", "BYTES"),
                ("memory-swap", ("--memory-swap",), "memory + swap; -1: unlimited swap", "BYTES"),
                ("cpus", ("--cpus",), "CPUs' worth of time: 0.5 = half of one CPU", "N"),
                ("cpu-shares", ("-c", "--cpu-shares"), "relative weight when CPUs are contended (1024)", "N"),
                ("cpuset-cpus", ("--cpuset-cpus",), "which CPUs: 0-1, 0,2", "CPUS"),
                ("pids", ("--pids-limit",), "most processes at once; -1: no limit", "N"))


@command(
    "update", "change containers' limits (memory, CPUs, pids): docker update, the same writes as cgroup set",
    options=tuple(Opt(flags, text, metavar) for _, flags, text, metavar in UPDATE_FLAGS),
    positionals=(Pos("containers", "the containers", many=True, complete=CONTAINER),),
    example="update --memory 64m --cpus 0.5 web",
    group="cgroups",
    docker="docker update",
    details="""
docker's form of `cgroup set`: `update --memory 64m --cpus 0.5 web` is
`cgroup set web memory=64m cpus=0.5`. Each flag is written into the running
container's cgroup files (see them with `explain on`, read them back with
`cgroup show`), and recorded so `inspect` and the next start have it. A stopped
container gets it at its next start.""",
)
def update(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.errors import UsageError

    given = {key: getattr(args, flags[-1].lstrip("-").replace("-", "_")) for key, flags, _, _ in UPDATE_FLAGS}
    values = [f"{key}={value}" for key, value in given.items() if value is not None]
    if not values:
        raise UsageError("update needs at least one limit to change", "e.g. update --memory 64m --cpus 0.5 web")
    return each_target(ctx, args.containers, lambda ref: _update_one(ctx, ref, values))


def _update_one(ctx: Context, ref: str, values: list[str]) -> None:
    from cshell.engine.limits import limits

    c = ctx.runtime.get(ref)
    if c.running:
        _, now = limits.set_values(c.id, values, c.config.get("limits") or {})
    else:
        now = limits.record_values(values, c.config.get("limits") or {})
    limits.persist(c.dir, now)
    ctx.out.text(ref)  # docker prints each container as named


@command(
    "cgroup show", "show a container's cgroup directories: limit files, their values and usage",
    positionals=(Pos("container", "a running container", complete=CONTAINER),),
    example="cgroup show web",
    group="cgroups",
    docker="cat /sys/fs/cgroup/.../cshell/ID/*",
    details="""
A tree with one branch per cgroup directory of the container (v1: one per
controller; v2: one), each limit file with its full path and current value
("max" or 9223372036854771712 mean no limit), then the usage: memory used and
its peak, how often the CPU quota throttled the container, processes now.
""" + FILES_HELP,
)
def cgroup_show(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.engine.limits import cgroups, limits
    from cshell.views.cgroup import cgroup_tree

    c = ctx.runtime.get(args.container)
    groups = limits.show(c.id)
    if not groups:
        raise Conflict(f"container {c.name} has no cgroup now (it is not running)",
                       f"start it first: start {c.name}")
    ctx.out.print(cgroup_tree(c.name, "v2" if cgroups.is_v2() else "v1", groups))
    return 0
