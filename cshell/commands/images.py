"""Image commands (the store grows in later work: build, commit, tag, push, pull)."""

from __future__ import annotations

from types import SimpleNamespace

from cshell.commands.context import Context
from cshell.commands.registry import Opt, command


@command(
    "images", "list the images in the store",
    options=(Opt(("-q", "--quiet"), "only the image ids"),),
    example="images",
    group="images",
    docker="docker images",
    details="""
Images live under the state root as an OCI image layout (images/index.json,
images/blobs/sha256/...). `busybox` is built here on first use from Debian's
busybox-static, so nothing has to come from Docker Hub.""",
)
def images(ctx: Context, args: SimpleNamespace) -> int:
    ctx.root.ensure()
    found = ctx.runtime.store.list()
    if args.quiet:
        for image in found:
            ctx.out.text(image.short_id)
        return 0
    from cshell.views.images import images_table

    ctx.out.print(images_table(found))
    return 0
