"""Volume commands, as docker volume: create, ls, inspect, rm, prune."""

from __future__ import annotations

import os
from types import SimpleNamespace

from cshell.commands.context import Context, each_target
from cshell.commands.registry import RUNNING, Opt, Pos, command
from cshell.errors import Conflict, UsageError

VOLUME_DETAILS = """
A volume (docker's `local` driver) is a directory under the state root,
`volumes/NAME/_data`. `run -v NAME:/path` bind-mounts it into the container,
inside the container's own mount namespace, so the host's mount table never
shows it, and files written under /path go into `_data`, not into the
container's writable layer (so `commit` never carries them).

`-v /path` makes an anonymous volume (a 64-hex name), removed by `rm -v` or
`--rm`; a named one lives until `volume rm`. A volume in use by any container,
running or not, cannot be removed.

copyData: when a NEW, empty volume is mounted over a directory the image
has content in, that content is copied into the volume first (so `-v /etc`
still has the image's /etc). Docker does it once, at container create; cshell at
the container's first start (the image's files are reachable only once its root
filesystem is mounted), also once: a volume the user empties stays empty through
stop and start. The next container to use it sees what the volume holds. A host bind mount (`-v /host:/path`) copies nothing: it hides the
image's files under the host directory's for as long as it is mounted."""


def _volumes(ctx: Context):  # noqa: ANN202 - cshell.engine.volumes.volumes.Volumes
    from cshell.engine.volumes.volumes import Volumes

    return Volumes(ctx.root)


@command("volume create", "create a named volume (an empty directory under the state root)",
         positionals=(Pos("name", "its name (default: 64 random hex digits)", optional=True),),
         example="volume create data", docker="docker volume create", group="volumes",
         details=VOLUME_DETAILS)
def volume_create(ctx: Context, args: SimpleNamespace) -> int:
    ctx.root.ensure()
    ctx.out.text(_volumes(ctx).create(args.name, options={})["Name"])
    return 0


@command("volume ls", "list volumes: driver, name, mountpoint on the host, containers using them",
         options=(Opt(("-q", "--quiet"), "only the names"),),
         example="volume ls", docker="docker volume ls", group="volumes", details=VOLUME_DETAILS)
def volume_ls(ctx: Context, args: SimpleNamespace) -> int:
    vols = _volumes(ctx)
    volumes = vols.list()
    if args.quiet:
        for v in volumes:
            ctx.out.text(v["Name"])
        return 0
    from cshell.views.volume import volume_table

    names = {c.id: c.name for c in ctx.runtime.list()}
    users = {v["Name"]: [names.get(cid, cid[:12]) for cid in vols.users(v["Name"])] for v in volumes}
    ctx.out.print(volume_table(volumes, users))
    return 0


@command("volume inspect", "show volumes as JSON (docker's shape)",
         options=(Opt(("-f", "--format"), "a Go-style template, e.g. '{{.Mountpoint}}'", "TEMPLATE"),),
         positionals=(Pos("names", "volume names", many=True),),
         example="volume inspect data", docker="docker volume inspect", group="volumes")
def volume_inspect(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.views.template import docker_json, render

    vols = _volumes(ctx)
    found: list[dict] = []
    status = each_target(ctx, args.names, lambda name: found.append(vols.inspect(name)))
    if args.format:
        for item in found:
            ctx.out.text(render(args.format, item))
    else:
        ctx.out.text(docker_json(found))
    return status


@command("volume rm", "remove volumes (refused while a container uses one)",
         options=(Opt(("-f", "--force"), "remove even if a container still refers to it"),),
         positionals=(Pos("names", "volume names", many=True),),
         example="volume rm data", docker="docker volume rm", group="volumes")
def volume_rm(ctx: Context, args: SimpleNamespace) -> int:
    vols = _volumes(ctx)

    def one(name: str) -> None:
        vols.remove(name, force=args.force)
        ctx.out.text(name)

    return each_target(ctx, args.names, one)


@command("volume prune", "remove unused anonymous volumes (-a: every unused volume)",
         options=(Opt(("-a", "--all"), "named volumes too"),),
         example="volume prune", docker="docker volume prune", group="volumes")
def volume_prune(ctx: Context, args: SimpleNamespace) -> int:
    removed = _volumes(ctx).prune(everything=args.all)
    for name in removed:
        ctx.out.text(name)
    ctx.out.text(f"Deleted {len(removed)} volume(s)")
    return 0


@command(
    "bind", "bind-mount a host directory onto another path and show the dentry → inode switch",
    options=(Opt(("--in",), "a running container: bind into ITS mount namespace (DST inside its root)", "CTR",
                  complete=RUNNING),
             Opt(("--ro",), "read-only: writes through DST get EROFS (SRC itself stays writable)")),
    positionals=(Pos("src", "a host directory"), Pos("dst", "where it appears (a directory)")),
    example="bind /home /mnt", docker="mount --bind SRC DST", group="rootfs",
    details="""
A bind mount does not copy anything: the path DST (its dentry) now leads to
SRC's inode, so stat shows SRC's inode and device and writes under DST land in
SRC. Without --in it happens in a child's private mount namespace: cshell
shows DST's inode before, while mounted, and after umount (DST's own inode is
back, its files were only hidden), and that the host's mount table never shows
it. With --in CTR the host directory is cloned with open_tree(2), a child
setns()es into CTR's mount namespace, resolves DST inside the container's root
(openat2 RESOLVE_IN_ROOT: a symlink cannot lead out) and move_mount()s it there:
the container sees SRC at DST, the host's mount table does not. `unbind DST --in CTR`
undoes it; `run -v` does the same at start, before pivot_root.""",
)
def bind(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.engine.volumes import bindmount
    from cshell.views.volume import bind_view

    src = os.path.abspath(args.src)
    if args.__dict__["in"]:
        c = ctx.runtime.get(args.__dict__["in"])
        if not c.alive():
            raise Conflict(f"container {c.name} is not running", f"start it first: start {c.name}")
        report = bindmount.bind_in(c.pid, c.name, src, args.dst, args.ro)
    else:
        report = bindmount.bind_demo(src, os.path.abspath(args.dst), args.ro)
    ctx.out.print(bind_view(report))
    return 0


@command(
    "unbind", "undo `bind --in CTR`: umount DST inside a running container",
    options=(Opt(("--in",), "the running container", "CTR", complete=RUNNING),),
    positionals=(Pos("dst", "the mounted path inside the container"),),
    example="unbind /mnt --in web", docker="nsenter -m -t PID umount DST", group="rootfs",
)
def unbind(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.engine.volumes import bindmount

    if not args.__dict__["in"]:
        raise UsageError("unbind needs --in CTR", "a `bind` without --in is undone by itself (its namespace ends)")
    c = ctx.runtime.get(args.__dict__["in"])
    if not c.alive():
        raise Conflict(f"container {c.name} is not running", f"start it first: start {c.name}")
    bindmount.unbind_in(c.pid, args.dst)
    ctx.out.text(args.dst)
    return 0
