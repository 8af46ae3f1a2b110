"""System commands, as docker system: df, prune; and check (cshell's own fsck)."""

from __future__ import annotations

import sys
from types import SimpleNamespace

from cshell.commands.context import Context
from cshell.commands.registry import Opt, command
from cshell.errors import UsageError

RECONCILE = """
Every cshell command starts by reconciling the state root with the kernel: a
container recorded as running whose shim is gone (killed, or the machine
crashed) has what is left of it killed, its veth, iptables rules, lease,
cgroup and any host mount below its directory released, and is marked exited
with status 255, as containerd does; a PID that now belongs to another process
(compared by start time) is never touched. Half-made things a crash left (a
container directory without state, a layer still being unpacked, a blob being
written, an empty cgroup, a lease or veth of no running container) go once
they are old enough not to be another shell's work in progress. Each step is
idempotent and the next one runs even when one fails; failures are reported
in one line each (`reconcile: …`)."""


@command("system df", "show the disk space images, containers, volumes and the build cache use",
         options=(Opt(("-v", "--verbose"), "one line per image, container, volume and cache entry"),),
         example="system df", docker="docker system df", group="images", needs_root=False,
         details="""
TYPE, TOTAL, ACTIVE (used by a container; running, for containers), SIZE and
RECLAIMABLE: what `system prune -a --volumes` could free, roughly. Sizes are
bytes on disk under the state root: an image is its blobs (manifest, config,
layer tars) plus its unpacked layer directories, a layer shared by several
images counted once; a container is its rw layer, init layer and log; a
volume its data. The build cache is the untagged step images `build` keeps.""")
def system_df(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.engine.system import disk_usage
    from cshell.views.system import df_view

    ctx.out.print(df_view(disk_usage(ctx.runtime), verbose=args.verbose))
    return 0


@command("system prune", "remove stopped containers, dangling images, the build cache and stale network state",
         options=(Opt(("-a", "--all"), "every image no container uses, not only dangling ones"),
                  Opt(("--volumes",), "unused anonymous volumes too"),
                  Opt(("-f", "--force"), "do not ask for confirmation")),
         example="system prune -f", docker="docker system prune", group="images",
         details="""
In order: stopped containers (`rm`; one being started by another shell right
now is left alone), dangling images (untagged, no container uses them; with -a
every unused image), the blobs and unpacked layers nothing needs any more, the
build cache, with --volumes the anonymous volumes no container uses (named
volumes stay, as in docker 23+), the user-defined networks no container uses
(their bridges and rules), and network state of no running container
(leases, veths, iptables rules, an unused bridge). Prints what went and the
space reclaimed. Running containers and what they use are never touched.""")
def system_prune(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.engine.system import prune
    from cshell.views.system import prune_view

    if not args.force:
        what = ["all stopped containers", "all networks not used by at least one container",
                "all stale network state (leases, veths, rules)",
                "all images without at least one container associated to them" if args.all
                else "all dangling images", "the build cache"]
        if args.volumes:
            what.insert(2, "all anonymous volumes not used by at least one container")
        if not sys.stdin.isatty():
            raise UsageError("system prune asks before it removes anything, and stdin is not a terminal",
                             "confirm on the command line: system prune -f")
        ctx.out.text("WARNING! This will remove:\n" + "\n".join(f"  - {w}" for w in what))
        if input("Are you sure you want to continue? [y/N] ").strip().lower() not in ("y", "yes"):
            ctx.out.text("nothing removed")
            return 0
    ctx.root.ensure()
    report = prune(ctx.runtime, all_images=args.all, volumes=args.volumes)
    ctx.out.print(prune_view(report))
    return 1 if report.errors else 0


@command("system check", "re-verify every blob digest and every container's state against the kernel",
         options=(Opt(("--repair",), "fix what can be fixed without losing data (see help)"),),
         example="system check --repair", docker="(cshell's own; docker has no fsck)", group="images",
         details="""
Re-hashes every blob in the store and compares it with its name (its digest);
reads every image's manifest and config; looks for half-written blobs and
half-unpacked layers; holds every container's record against the kernel:
PID 1 alive and the same process (its start time), its shim alive, its cgroup
there with PID 1 in it, its veth and lease there, no host mount below its
directory; and for a stopped one, that none of those is left. Then leases,
veths and iptables rules that no container accounts for. One line per
problem; the exit status is 1 when any remains.

--repair is conservative: a blob whose content does not match its digest is
deleted (a content address must never hold other bytes); an image whose
manifest or config cannot be read loses its names (it could not be used
anyway), unless a container was made from it; an image missing only a layer
blob keeps running from its unpacked layer and is only reported (`rmi -f`,
then pull or build it again). A container whose shim is gone is settled as
reconcile does; a stopped one loses the cgroup, lease, veth and mounts it no
longer needs. A container's files and any image in use are never removed.
""" + RECONCILE)
def system_check(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.engine.system import check
    from cshell.views.system import check_view

    report = check(ctx.runtime, repair=args.repair)
    ctx.out.print(check_view(report))
    left = [p for p in report.problems if not p.fixed]
    return 1 if left else 0
