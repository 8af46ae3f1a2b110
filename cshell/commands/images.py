"""Image commands: images, history, tag, rmi, image prune, commit."""

from __future__ import annotations

from types import SimpleNamespace

from cshell.commands.context import Context, each_target
from cshell.commands.registry import CONTAINER, IMAGE, Opt, Pos, command
from cshell.errors import UsageError


@command(
    "images", "list the images in the store",
    options=(Opt(("-a", "--all"), "also untagged images (build steps kept for the cache)"),
             Opt(("-q", "--quiet"), "only the image ids")),
    positionals=(Pos("reference", "only REPOSITORY or REPOSITORY:TAG", optional=True, complete=IMAGE),),
    example="images",
    group="images",
    docker="docker images",
    details="""
Images live under the state root as an OCI image layout (images/index.json,
images/blobs/sha256/...), readable by skopeo or umoci. `busybox` is built here
on first use from Debian's busybox-static, so nothing has to come from Docker Hub.
The IMAGE ID is the sha256 of the image's config: the same content, the same id.""",
)
def images(ctx: Context, args: SimpleNamespace) -> int:
    ctx.root.ensure()
    found = ctx.runtime.store.list(all=args.all)
    if args.reference:
        found = _matching(found, args.reference)
    if args.quiet:
        for image in found:
            ctx.out.text(image.short_id)
        return 0
    from cshell.views.images import images_table

    ctx.out.print(images_table(found))
    return 0


def _matching(found: list, reference: str) -> list:
    """docker images REPO[:TAG]: the images with that name (every tag when none is given)."""
    import copy

    from cshell.engine.image.reference import normalize_ref

    full = normalize_ref(reference)  # an invalid name is refused here

    def wanted(ref: str) -> bool:  # a tag given: that name exactly; else every tag of the repository
        return ref == full if full == reference else ref.rpartition(":")[0] == reference

    out = []
    for image in found:
        if any(wanted(r) for r in image.refs):
            shown = copy.copy(image)  # only the matching names get a row, as docker's
            shown.refs = [r for r in image.refs if wanted(r)]
            out.append(shown)
    return out


@command(
    "history", "show the layers of an image and the instruction that made each",
    options=(Opt(("--no-trunc",), "show whole instructions"),),
    positionals=(Pos("image", "an image name or id", complete=IMAGE),),
    example="history busybox",
    group="images",
    docker="docker history",
    details="""
One row per instruction, newest first. Instructions that change only settings
(ENV, CMD, EXPOSE...) make an empty layer: 0B and no layer id, exactly what the
article points out.""",
)
def history(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.engine.build.commit import history as rows
    from cshell.views.images import history_table

    image = ctx.runtime.store.get_local(args.image)
    ctx.out.print(history_table(rows(image), no_trunc=args.no_trunc))
    return 0


@command(
    "tag", "give an image another name",
    positionals=(Pos("source", "the image", complete=IMAGE), Pos("target", "the new NAME[:TAG]")),
    example="tag helloworld geektime/helloworld:v1",
    group="images",
    docker="docker tag",
    details="A tag is only a name in index.json pointing at the same manifest: `images` shows the same IMAGE ID.",
)
def tag(ctx: Context, args: SimpleNamespace) -> int:
    store = ctx.runtime.store
    store.tag(args.target, store.get_local(args.source))
    return 0


@command(
    "rmi", "remove images (untag them; delete what no name or container uses)",
    options=(Opt(("-f", "--force"), "remove even if several names or a container use it"),),
    positionals=(Pos("images", "image names or ids", many=True, complete=IMAGE),),
    example="rmi geektime/helloworld:v1",
    group="images",
    docker="docker rmi",
    details="""
Removing a name that other names share only untags. When the last name goes and
no container uses the image, its manifest, config and the layers no other image
shares are deleted from the store.""",
)
def rmi(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.engine.build.commit import remove_image

    def one(ref: str) -> None:
        names, gone = remove_image(ctx.runtime, ref, force=args.force)
        for name in names:
            ctx.out.text(f"Untagged: {name}")
        if gone:
            ctx.out.text(f"Deleted: {ref}")

    return each_target(ctx, args.images, one)


@command(
    "image prune", "delete untagged images no container uses",
    options=(Opt(("-a", "--all"), "every image no container uses, tagged or not"),),
    example="image prune",
    group="images",
    docker="docker image prune",
    details="Then removes every blob and unpacked layer nothing refers to any more.",
)
def image_prune(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.engine.build.commit import prune

    ctx.root.ensure()
    dropped, blobs, layers = prune(ctx.runtime, everything=args.all)
    for ref in dropped:
        ctx.out.text(f"Deleted: {ref}")
    ctx.out.text(f"removed {blobs} blobs and {layers} unpacked layers")
    return 0


@command(
    "commit", "make a new image from a container's changes",
    options=(Opt(("-m", "--message"), "a comment for the history", "MSG"),
             Opt(("-a", "--author"), "who made it", "NAME"),
             Opt(("-c", "--change"), "apply a Dockerfile instruction, e.g. 'CMD [\"sh\"]'", "LINE", multi=True)),
    positionals=(Pos("container", "the container", complete=CONTAINER),
                 Pos("name", "NAME[:TAG] for the new image (none: untagged)", optional=True)),
    example="commit -m 'add test.txt' web geektime/helloworld:v2",
    group="images",
    docker="docker commit",
    details="""
The container's rw layer (its overlay upperdir) is written as a tar: new and
changed files as they are, deletions as `.wh.NAME` whiteout files, replaced
directories with `.wh..wh..opq`. That tar is the new top layer; the layers
below are shared with the old image, not copied. The init layer and the
bind-mounted /etc/hosts, /etc/hostname and /etc/resolv.conf are never in it.
The container keeps running.""",
)
def commit(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.engine.build.commit import CommitOptions
    from cshell.engine.build.commit import commit as do_commit

    container = ctx.runtime.get(args.container)
    for change in args.change:
        if not change.strip():
            raise UsageError("an empty --change", "e.g. -c 'CMD [\"sh\"]'")
    image = do_commit(ctx.runtime, container, CommitOptions(args.name, args.message or "", args.author or "",
                                                             tuple(args.change)))
    ctx.out.text(image.id)
    return 0
