"""Container commands, mirroring the docker CLI: run, ps, inspect, logs, exec, stop, start, rm."""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import TYPE_CHECKING

from cshell.commands.context import Context, each_target
from cshell.commands.registry import (
    COMMAND,
    CONTAINER,
    FILE,
    IMAGE,
    NETMODE,
    RUNNING,
    Opt,
    Pos,
    command,
)
from cshell.errors import UsageError

if TYPE_CHECKING:
    from cshell.engine.container.containers import RunOptions

ENV = Opt(("-e", "--env"), "set an environment variable (K=V, or K to copy it from here)", "K=V", multi=True)
ENV_FILE = Opt(("--env-file",), "read variables from a file: K=V or K lines, # comments (docker's format; "
               "-e wins)", "FILE", multi=True, complete=FILE)
INTERACTIVE = Opt(("-i", "--interactive"), "keep stdin open and pass it to the container")
TTY = Opt(("-t", "--tty"), "give the process a real pseudo-terminal (job control, Ctrl-C)")
WORKDIR = Opt(("-w", "--workdir"), "working directory inside the container", "DIR")
USER = Opt(("-u", "--user"), "run as USER[:GROUP] (names from the container's /etc/passwd, or numbers)",
           "USER")
SECURITY_OPTIONS = (
    USER,
    Opt(("--cap-add",), "give a capability (NET_ADMIN, SYS_PTRACE, … or ALL)", "CAP", multi=True),
    Opt(("--cap-drop",), "take away a capability (CHOWN, NET_RAW, … or ALL)", "CAP", multi=True),
    Opt(("--privileged",), "every capability, no seccomp filter, no masked paths, /sys writable"),
    Opt(("--security-opt",), "seccomp=unconfined | seccomp=PROFILE.json | no-new-privileges", "OPT",
        multi=True),
)
SECURITY_HELP = """Containment: what root inside the container may NOT do. It is uid 0, but:

- **capabilities**: root's power comes in ~40 pieces (capabilities(7)). The
  container keeps docker's 14: CHOWN, DAC_OVERRIDE, FSETID, FOWNER, MKNOD,
  NET_RAW, SETGID, SETUID, SETFCAP, SETPCAP, NET_BIND_SERVICE, SYS_CHROOT, KILL,
  AUDIT_WRITE. The rest (SYS_ADMIN for mount, SYS_MODULE for insmod, SYS_PTRACE,
  NET_ADMIN, SYS_TIME, …) leave the bounding set, so not even a setuid binary
  gets them back. See them: `grep Cap /proc/self/status` (CapEff a80425fb) and
  `capsh --decode=a80425fb` on the host. `--cap-add NET_ADMIN` / `--cap-drop
  CHOWN` change the set (names with or without CAP_, or ALL: `--cap-drop ALL
  --cap-add NET_BIND_SERVICE` keeps just one).
- **seccomp**: a BPF filter the kernel runs on every system call. About 360
  ordinary calls are allowed; mount, unshare, setns, bpf, keyctl, add_key,
  init_module, reboot, kexec_load, open_by_handle_at, clone with CLONE_NEW*
  flags, socket(AF_VSOCK) and others fail with EPERM unless the matching
  capability was added (docker's default profile, written out in
  cshell/engine/kernel/seccomp.py). `grep Seccomp /proc/self/status` shows 2 (filter).
  `--security-opt seccomp=unconfined` turns it off; `seccomp=FILE` loads a
  profile in docker's JSON format.
- **masked and read-only paths**: /proc/kcore, /proc/keys, /proc/timer_list,
  /proc/interrupts, /sys/firmware, … are covered (by /dev/null or an empty
  read-only tmpfs) and /proc/sys, /proc/sysrq-trigger, /proc/irq, /proc/bus,
  /proc/fs are read-only: the host's kernel settings cannot be changed from
  inside. /sys and the container's own cgroup are read-only too.
- **nodev**: the root filesystem, /dev and the volumes are mounted nodev: MKNOD
  lets root *make* /dev/sda, but opening it fails. Only /dev/null, zero, full,
  random, urandom and tty work.
- **users**: `-u 1000`, `-u nobody`, `-u app:staff` (looked up in the
  container's /etc/passwd and /etc/group, never the host's; a USER line of the
  image is the default). A non-root user has NO capabilities (CapEff 0).
  `--security-opt no-new-privileges` also stops a setuid-root program from
  making it root again.
- **--privileged** undoes all of it: every capability, no seccomp, nothing
  masked, /sys and the cgroup writable, nothing nodev. (Docker would also give
  the container every host device in /dev; cshell keeps its small /dev.) Use it
  to see the difference, never for code you do not trust.

`inspect` shows .HostConfig.CapAdd, .CapDrop, .Privileged, .SecurityOpt and
.Config.User; `explain on` shows each step: the masks, PR_CAPBSET_DROP,
setgroups/setresgid/setresuid, capset, PR_SET_NO_NEW_PRIVS and the seccomp
program being loaded, just before execve. `exec` and `ns join` into a
container get the same user, capabilities and filter as its PID 1."""
LIMIT_FIELDS = ("memory", "memory_swap", "cpus", "cpu_shares", "cpuset_cpus", "pids_limit")
LIMIT_OPTIONS = (
    Opt(("-m", "--memory"), "memory limit (b, k, m, g; at least 6m): memory.limit_in_bytes / memory.max", "SIZE"),
    Opt(("--memory-swap",), "memory plus swap (-1: unlimited swap; default 2 x --memory)", "SIZE"),
    Opt(("--cpus",), "CPU time, e.g. 0.5: cpu.cfs_quota_us / cpu.max over a 100 ms period", "N"),
    Opt(("--cpu-shares",), "relative CPU weight (default 1024): cpu.shares / cpu.weight", "N"),
    Opt(("--cpuset-cpus",), "CPUs the container may run on, e.g. 0 or 0-1: cpuset.cpus", "LIST"),
    Opt(("--pids-limit",), "most processes at once (-1: unlimited): pids.max", "N"),
)
LIMITS_HELP = """Resource limits, docker's flags, written into the container's cgroup by the shim
right after it creates the group and before PID 1 is moved in. The file names
differ between cgroup v1 (this kind of host: one directory per controller,
/sys/fs/cgroup/CONTROLLER/cshell/ID) and v2 (one directory, /sys/fs/cgroup/cshell/ID):

| flag | cgroup v1 file | cgroup v2 file |
|---|---|---|
| --memory 64m | memory.limit_in_bytes = 67108864 | memory.max = 67108864 |
| --memory-swap 128m | memory.memsw.limit_in_bytes = 134217728 | memory.swap.max = 67108864 (swap - memory) |
| --cpus 0.5 | cpu.cfs_quota_us = 50000, cpu.cfs_period_us = 100000 | cpu.max = "50000 100000" |
| --cpu-shares 512 | cpu.shares = 512 | cpu.weight = 1 + (512 - 2) x 9999 / 262142 = 20 |
| --cpuset-cpus 0 | cpuset.cpus = 0 (and cpuset.mems copied) | cpuset.cpus = 0 |
| --pids-limit 100 | pids.max = 100 | pids.max = 100 |

Impossible values (less than 6m of memory, --cpus 0 or more than the machine's
CPUs, CPUs that do not exist) are refused before anything is made. A process
the OOM killer kills ends the container with 137 and `inspect` shows
.State.OOMKilled true. Inside, /proc/self/cgroup shows `/` (the cgroup
namespace) and /sys/fs/cgroup is the container's own group, read-only: it cannot
raise its own limits. `cgroup show NAME` shows the files; `cgroup set` changes them."""
VOLUMES_HELP = """Volumes and bind mounts (`-v`, `--mount`, `--tmpfs`), as docker:

- `-v /test`: an anonymous volume, a new directory `volumes/<64 hex>/_data`
  under the state root; `-v data:/test` a named one (made if missing, kept
  until `volume rm`). `rm -v` (and `--rm`) remove anonymous volumes.
- `-v /home:/test`: a bind mount of a host directory. As docker's `-v` does, a
  missing host directory is created (empty, root's); `--mount type=bind` refuses
  it instead. A source that is not absolute (`data:/x`) is a volume *name*;
  write `./dir` for a directory relative to here. `:ro` makes it read-only.
- copyData: a NEW (empty) volume mounted over an image path that has content
  gets that content copied in first (modes, owners, symlinks as symlinks), so
  `-v /etc` still shows the image's /etc; once per container (docker: at create;
  here: at its first start), so a volume emptied later stays empty. A bind mount copies nothing: it HIDES
  the image's files under the host directory's. `volume-nocopy` turns copyData off.
- An option of another kind of mount is refused before anything is made, as
  docker refuses it: `:nocopy` or `volume-nocopy` on a bind or a tmpfs,
  `tmpfs-size` on a bind or a volume, `source=` on a tmpfs, and a mode or
  `readonly` on an anonymous volume (`-v /x:ro`: name it, `-v data:/x:ro`).
- The mounts are made by the container's init, inside its own mount namespace,
  after the overlay and before pivot_root: the host's mount table never shows
  them. Each target is resolved inside the container root (openat2
  RESOLVE_IN_ROOT), created if missing, and mounted through /proc/self/fd/N,
  so a symlink in the image cannot redirect a mount onto a host path.
- `commit` keeps the mount-point directory (empty) but never a volume's
  content: files written there land in the volume, not in the writable layer."""


HEALTH_OPTIONS = (
    Opt(("--health-cmd",), "a health check command, run with /bin/sh -c inside the container", "CMD"),
    Opt(("--health-interval",), "time between checks (default 30s)", "DURATION"),
    Opt(("--health-timeout",), "a check running longer fails (default 30s)", "DURATION"),
    Opt(("--health-retries",), "failures in a row that make it unhealthy (default 3)", "N"),
    Opt(("--health-start-period",), "failures in this first time do not count (default 0s)", "DURATION"),
    Opt(("--no-healthcheck",), "do not run the image's HEALTHCHECK"),
)
HEALTH_HELP = """Health checks (an image's HEALTHCHECK, or --health-cmd), as docker: the
container's shim runs the command inside the container every --health-interval,
as `exec` would, and kills it after --health-timeout. Exit 0 is healthy; after
--health-retries failures in a row the container is unhealthy (failures in the
--health-start-period do not count). `ps` shows `Up 3 minutes (healthy)`,
`(unhealthy)` or `(health: starting)`; `inspect --format '{{json .State.Health}}'`
shows the Status, the FailingStreak and the last five checks with their output."""


def _health(args: SimpleNamespace) -> dict:
    from cshell.engine.container.health import from_flags

    return {"healthcheck": from_flags(args.health_cmd, args.health_interval, args.health_timeout,
                                      args.health_start_period, args.health_retries),
            "no_healthcheck": args.no_healthcheck}


def _check_tty(args: SimpleNamespace) -> None:
    if args.tty and args.interactive and not os.isatty(0):
        raise UsageError("the input device is not a TTY", "drop -t (keep -i), or run from a terminal", status=1)


RUN_OPTIONS = (  # run's and create's
    INTERACTIVE, TTY,
    Opt(("--rm",), "remove the container when it exits"),
    Opt(("--restart",), "no (default), on-failure[:N], always or unless-stopped: its shim starts it "
        "again when it exits", "POLICY"),
    Opt(("--name",), "a name for the container (default: a random adjective_scientist)", "NAME"),
    ENV, ENV_FILE, WORKDIR,
    Opt(("-h", "--hostname"), "hostname inside (default: the short container id, as docker): "
        "letters, digits, '-' in dot-separated labels, at most 64 characters", "NAME"),
    Opt(("--domainname",), "NIS domain name inside (setdomainname(2)); /etc/hostname becomes "
        "HOST.DOMAIN", "NAME"),
    Opt(("-p", "--publish"), "publish a container port on the host: [IP:][HOSTPORT:]CTRPORT[/tcp|udp]",
        "SPEC", multi=True),
    Opt(("-P", "--publish-all"), "publish every port the image EXPOSEs, each on a free host port"),
    Opt(("--net", "--network"), "bridge (default), none, host, container:NAME, or a network from "
        "`network create`", "MODE", complete=NETMODE),
    Opt(("--network-alias",), "another name for the container on its user-defined network", "NAME",
        multi=True),
    Opt(("--ip",), "the container's address on its user-defined network", "IP"),
    Opt(("-v", "--volume"), "a volume or bind mount: /PATH (anonymous), NAME:/PATH, /HOST:/PATH, + :ro",
        "SPEC", multi=True),
    Opt(("--mount",), "type=bind|volume|tmpfs,source=…,target=…[,readonly]", "SPEC", multi=True),
    Opt(("--tmpfs",), "a tmpfs at PATH[:size=64m] (noexec, nosuid, nodev)", "PATH", multi=True),
    *LIMIT_OPTIONS,
    Opt(("--init",), "run a tiny init (cshell-init) as PID 1: it forwards signals and reaps zombies"),
    Opt(("--read-only",), "mount the container's root read-only (volumes, --tmpfs, /dev and /dev/shm stay writable)"),
    *SECURITY_OPTIONS,
    *HEALTH_OPTIONS,
)
RUN_POSITIONALS = (Pos("image", "the image to start from", complete=IMAGE),
                   Pos("cmd", "the command and its arguments (default: the image's CMD)",
                       optional=True, rest=True, complete=COMMAND))


@command(
    "run", "create and start a container from an image",
    options=(
        Opt(("-d", "--detach"), "run in the background and print the container id"),
        *RUN_OPTIONS,
    ),
    positionals=RUN_POSITIONALS,
    example="run --rm busybox echo hello",
    docker="docker run",
    details="""
The container gets new pid, mount, uts, ipc, net and cgroup namespaces. Its root
is an overlay of the image's read-only layers, an init layer (placeholders for
/etc/hosts, /etc/hostname and /etc/resolv.conf, whose real files are bind-mounted
from the container's state directory, so `commit` never keeps them) and a
writable layer. cshell mounts /proc, a read-only /sys and a small /dev, then
pivot_root()s into it (never chroot) and execs your command as PID 1.

Like docker: without -d you are attached and the exit status is the
container's; Ctrl-C sends SIGINT to PID 1 (a second Ctrl-C kills it, since a
PID 1 ignores signals it has no handler for). Turn on `explain on` to watch
each syscall and mount as it happens.

Networks (`--net`), docker's four modes:

- **bridge** (default): a veth pair, one end on the bridge (`cshell0` for the
  default state root), the other the container's `eth0` with its own address
  and a default route via the bridge; /etc/hosts gets the address. As in
  docker, the address is held while the container runs: `stop` releases it and
  `start` takes the lowest free one again (usually the same).
- **none**: only `lo`.
- **host**: the host's own network namespace (its interfaces, its ports, its hostname).
- **container:NAME**: the network namespace of the running container NAME: the
  same `eth0`, address and ports, no veth of its own (`ns ls` shows one net inode).
- **a user-defined network** (`network create NAME`): its own bridge and subnet;
  containers on it find each other by name and `--network-alias` (see `help network create`).

`-p 8080:80` makes the container's port 80 answer on port 8080 of every host
address, 127.0.0.1 included (`-p 127.0.0.1:8080:80` on one address, `-p 80` on
a free port, `/udp` for UDP, `8000-8001:80-81` for ranges; `-P` publishes the
image's EXPOSEd ports). As docker without its userland proxy: the host port is
reserved (bound, never listening) and iptables DNAT rules redirect the traffic:
PREROUTING for other machines, OUTPUT for this host's own connections,
MASQUERADE so replies to 127.0.0.1 come back. `net inspect NAME` lists them.
Other machines reach the port when the host forwards (`net.ipv4.ip_forward=1`);
containers reach beyond the host only with masquerading, off by default
(`net config masquerade=on`).

`--restart` (docker's policies): `on-failure[:N]` starts it again when it exits
with a status other than 0 (at most N times), `always` and `unless-stopped`
whatever its status (the same thing here: cshell has no daemon to restart). Its
shim does it, after docker's backoff (100 ms, doubled each time): a new PID 1,
the same writable layer; `inspect` counts them in .RestartCount and `ps` shows
`Restarting (3) 1 second ago` meanwhile. `stop`, `kill` and `rm -f` end it for good.

""" + LIMITS_HELP + "\n\n" + VOLUMES_HELP + "\n\n" + SECURITY_HELP + "\n\n" + HEALTH_HELP,
)
def run(ctx: Context, args: SimpleNamespace) -> int:
    _check_tty(args)
    container, code = ctx.runtime.run(_run_options(args, detach=args.detach))
    if code is None:
        ctx.out.text(container.id)
        return 0
    container.state = container.reload_state()
    if note := container.log_note():  # what you saw is complete; the log file is not
        ctx.out.note(note)
    return code


def _run_options(args: SimpleNamespace, detach: bool) -> RunOptions:
    from cshell.engine.container.containers import RunOptions

    return RunOptions(image=args.image, cmd=args.cmd, name=args.name, detach=detach,
                      interactive=args.interactive, tty=args.tty, auto_remove=args.rm,
                      env=args.env, env_file=args.env_file, workdir=args.workdir, hostname=args.hostname,
                      domainname=args.domainname,
                      network=args.network or "bridge", network_aliases=args.network_alias or [], ip=args.ip,
                      publish=args.publish, publish_all=args.publish_all,
                      volumes=args.volume, mounts=args.mount, tmpfs=args.tmpfs, init=args.init,
                      read_only=args.read_only, restart=args.restart, user=args.user, cap_add=args.cap_add, cap_drop=args.cap_drop,
                      privileged=args.privileged, security_opt=args.security_opt,
                      **{k: getattr(args, k) for k in LIMIT_FIELDS}, **_health(args))


@command(
    "create", "create a container from an image, without starting it",
    options=RUN_OPTIONS,
    positionals=RUN_POSITIONALS,
    example="create --name web busybox sleep 300",
    docker="docker create",
    details="""
`run` without the start: the container's directory, config.json, its (empty)
writable layer and init layer are made and its id is printed; `ps -a` shows it
as Created. No namespace, cgroup, mount or process exists until `start` (or
`start -a` to wait for it and see its output, `-i` to give it your stdin).
`run`'s options are all accepted (`help run`).""",
)
def create(ctx: Context, args: SimpleNamespace) -> int:
    _check_tty(args)
    container = ctx.runtime.create(_run_options(args, detach=True))
    ctx.out.text(container.id)
    return 0


@command(
    "ps", "list containers",
    options=(Opt(("-a", "--all"), "show stopped containers too"),
             Opt(("-q", "--quiet"), "only the ids"),
             Opt(("--no-trunc",), "full ids and commands")),
    example="ps -a",
    docker="docker ps",
    details="""
The status is checked against the kernel each time: a container whose PID 1
is gone shows as exited even if nobody recorded it.""",
)
def ps(ctx: Context, args: SimpleNamespace) -> int:
    containers = ctx.runtime.list(all=args.all)
    if args.quiet:
        for c in containers:
            ctx.out.text(c.id if args.no_trunc else c.short_id)
        return 0
    from cshell.views.containers import ps_table

    ctx.out.print(ps_table(containers, no_trunc=args.no_trunc))
    return 0


@command(
    "inspect", "show a container's or an image's details as JSON (docker's shape)",
    options=(Opt(("-f", "--format"), "a Go-style template, e.g. '{{.State.Pid}}' or '{{json .Config}}'",
                 "TEMPLATE"),),
    positionals=(Pos("containers", "containers or images (name or id)", many=True, complete=CONTAINER),),
    example="inspect --format '{{.State.Pid}}' web",
    docker="docker inspect",
    details="""
.State.Pid is the container's PID 1 as the host sees it: try `ls -l /proc/PID/ns`
or `ns ls PID` with it. .GraphDriver.Data shows the overlay directories.""",
)
def inspect(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.views.template import docker_json, render

    data: list[dict] = []
    status = each_target(ctx, args.containers, lambda ref: data.append(_inspect_one(ctx, ref)))
    if args.format:
        for item in data:
            ctx.out.text(render(args.format, item))
    else:
        ctx.out.text(docker_json(data))
    return status


def _inspect_one(ctx: Context, ref: str) -> dict:
    """A container by that name or id, else an image (docker inspect looks at both)."""
    from cshell.errors import NotFound

    try:
        return ctx.runtime.get(ref).inspect()
    except NotFound:
        from cshell.engine.build.commit import inspect as inspect_image

        image = ctx.runtime.store.find(ref) if ctx.root.images.is_dir() else None
        if image is None:
            raise NotFound(f"no such container or image: {ref}",
                           "`ps -a` lists the containers, `images` the images") from None
        return inspect_image(image)


@command(
    "logs", "show what a container wrote to stdout and stderr",
    options=(Opt(("-f", "--follow"), "keep following the output until the container stops (or Ctrl-C)"),
             Opt(("-n", "--tail"), "only the last N lines (default: all)", "N", default="all"),
             Opt(("-t", "--timestamps"), "each line with the time it was written"),
             Opt(("--since",), "only lines since then: 10m, 1h30m, a unix time, or 2026-12-05T08:00:00Z", "TIME")),
    positionals=(Pos("container", "the container", complete=CONTAINER),),
    example="logs -f --tail 10 web",
    docker="docker logs",
    details="""
The shim copies the container's output into containers/<id>/log, even after you
leave cshell, and notes in log.times when each piece came: that is what -t shows
and --since filters on (RFC 3339 with nanoseconds, as docker).""",
)
def logs(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.engine.container.logs import LogOptions, parse_since, parse_tail

    opts = LogOptions(follow=args.follow, tail=parse_tail(args.tail), timestamps=args.timestamps,
                      since=parse_since(args.since) if args.since else 0.0)
    container = ctx.runtime.get(args.container)
    for chunk in ctx.runtime.logs(container, opts=opts):
        ctx.out.raw(chunk)
    container.state = container.reload_state()
    if note := container.log_note():
        ctx.out.note(note)
    return 0


@command(
    "exec", "run a command inside a running container",
    options=(INTERACTIVE, TTY, ENV, ENV_FILE, WORKDIR,
             Opt(("-u", "--user"), "run as USER[:GROUP] (default: the container's user)", "USER"),
             Opt(("--privileged",), "every capability for this process (the container's seccomp filter "
                 "and mounts stay, as docker)")),
    positionals=(Pos("container", "a running container", complete=RUNNING),
                 Pos("cmd", "the command and its arguments", rest=True, complete=COMMAND)),
    example="exec -it web sh",
    docker="docker exec",
    details="""
What docker exec does: the new process joins the container's cgroup, then
setns(2)s into each of its namespaces (ipc, uts, net, pid, cgroup, and mnt last,
which also moves it to the container's root) and execs, as the container's user
(or -u) with its capabilities and seccomp filter. Before setns the helper marks
itself non-dumpable, so nothing in the container can open /proc/PID/exe of the
host's interpreter while it is still running it (CVE-2019-5736). `ns join` is the same
thing for one namespace at a time.""",
)
def exec_(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.engine.container.containers import ExecOptions

    _check_tty(args)
    container = ctx.runtime.get(args.container)
    return ctx.runtime.exec(container, ExecOptions(cmd=args.cmd, interactive=args.interactive, tty=args.tty,
                                                   env=args.env, env_file=args.env_file, workdir=args.workdir,
                                                   user=args.user, privileged=args.privileged))


@command(
    "stop", "stop running containers (SIGTERM, then SIGKILL after a grace period)",
    options=(Opt(("-t", "--time"), "seconds to wait before SIGKILL (default 10)", "N", default="10"),),
    positionals=(Pos("containers", "containers to stop", many=True, complete=RUNNING),),
    example="stop -t 2 web",
    docker="docker stop",
    details="""
A PID 1 gets no default signal actions: if it installed no SIGTERM handler
(like `sleep`), SIGTERM does nothing and stop waits for the grace period.""",
)
def stop(ctx: Context, args: SimpleNamespace) -> int:
    try:
        timeout = float(args.time)
    except ValueError:
        raise UsageError(f"invalid time {args.time!r}", "give seconds, e.g. stop -t 2 NAME") from None
    if timeout != timeout:  # nan
        raise UsageError(f"invalid time {args.time!r}", "give seconds, e.g. stop -t 2 NAME (-1: wait forever)")

    def one(ref: str) -> None:
        ctx.runtime.stop(ctx.runtime.get(ref), timeout)
        ctx.out.text(ref)

    return each_target(ctx, args.containers, one)


@command(
    "start", "start created or stopped containers (in the background, or attached with -a)",
    options=(Opt(("-a", "--attach"), "stay attached: show its output, wait, and exit with its status"),
             Opt(("-i", "--interactive"), "attached, and your stdin goes to it (it must be made with -i)")),
    positionals=(Pos("containers", "containers to start", many=True, complete=CONTAINER),),
    example="start -a web",
    docker="docker start",
    details="""
The writable layer is kept: files written before are still there. With -a (or -i)
the start is like `run` in the foreground: the output comes to you, Ctrl-C goes to
its PID 1, and cshell exits with the container's status. `start -a` of a container
that runs already shows what it writes from then on (read from its log: stdout and
stderr together, no stdin) and its exit status.""",
)
def start(ctx: Context, args: SimpleNamespace) -> int:
    if args.attach or args.interactive:
        if len(args.containers) > 1:
            raise UsageError("you cannot start and attach multiple containers at once", "start them one by one")
        container = ctx.runtime.get(args.containers[0])
        code = ctx.runtime.start_attached(container, stdin=args.interactive)
        if code is None:  # running already: its output from now on, then its exit status
            for chunk in ctx.runtime.attach_output(container):
                ctx.out.raw(chunk)
            code = ctx.runtime.wait(container)
        container.state = container.reload_state()
        if note := container.log_note():
            ctx.out.note(note)
        return code

    def one(ref: str) -> None:
        ctx.runtime.start(ctx.runtime.get(ref))
        ctx.out.text(ref)

    return each_target(ctx, args.containers, one)


@command(
    "rm", "remove containers",
    options=(Opt(("-f", "--force"), "kill a running container first"),
             Opt(("-v", "--volumes"), "remove its anonymous volumes too (named ones stay)")),
    positionals=(Pos("containers", "containers to remove", many=True, complete=CONTAINER),),
    example="rm -f web",
    docker="docker rm",
    details="Removes the writable layer, the init layer, the logs and the cgroup. Mounts died with the container's mount namespace.",
)
def rm(ctx: Context, args: SimpleNamespace) -> int:
    def one(ref: str) -> None:
        ctx.runtime.remove(ctx.runtime.get(ref), force=args.force, volumes=args.volumes)
        ctx.out.text(ref)

    return each_target(ctx, args.containers, one, ok_missing=args.force)  # docker 20.10: rm -f MISSING exits 0


@command(
    "wait", "wait until containers stop, then print each one's exit code",
    positionals=(Pos("containers", "containers to wait for", many=True, complete=CONTAINER),),
    example="wait web",
    docker="docker wait",
    details="Returns at once for a container that is not running: its last exit code.",
)
def wait(ctx: Context, args: SimpleNamespace) -> int:
    def one(ref: str) -> None:
        ctx.out.text(str(ctx.runtime.wait(ctx.runtime.get(ref))))

    return each_target(ctx, args.containers, one)


@command(
    "kill", "send a signal to running containers' PID 1 (default SIGKILL)",
    options=(Opt(("-s", "--signal"), "the signal: a name (TERM, SIGHUP) or a number", "SIG", default="KILL"),),
    positionals=(Pos("containers", "containers to signal", many=True, complete=RUNNING),),
    example="kill -s HUP web",
    docker="docker kill",
    details="""
kill(2) on the container's PID 1 as the host sees it (.State.Pid). A PID 1 gets no
default signal actions: a signal it has no handler for does nothing, except
SIGKILL (and SIGSTOP), which the kernel delivers from outside the namespace.""",
)
def kill(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.engine.kernel.processes import parse_signal

    sig = parse_signal(args.signal)

    def one(ref: str) -> None:
        ctx.runtime.kill_running(ctx.runtime.get(ref), sig)
        ctx.out.text(ref)

    return each_target(ctx, args.containers, one)
