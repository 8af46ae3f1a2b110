"""Root filesystem commands: layer stack, layer diff, layer whereis."""

from __future__ import annotations

from types import SimpleNamespace

from cshell.commands.context import Context
from cshell.commands.registry import CONTAINER, CTR_OR_IMAGE, Opt, Pos, command
from cshell.errors import RuntimeFailure


@command(
    "layer stack", "draw the layers of a container's (or an image's) root filesystem, top to bottom",
    options=(Opt(("--full",), "whole paths, and the exact overlay options line as mount(2) got it"),
             Opt(("--svg",), "also write the picture as an SVG file (for slides)", "FILE")),
    positionals=(Pos("target", "a container, or an image", complete=CTR_OR_IMAGE),),
    example="layer stack web",
    group="rootfs",
    docker="docker inspect -f '{{json .GraphDriver}}'",
    details="""
A container's `/` is one **overlay** mount of several directories:

- **lowerdir** — read-only layers, listed top first and separated by `:`.
  The image's layers (one per Dockerfile step that changed files; shared by
  every container of the image, never copied), and above them the **init
  layer**.
- **upperdir** — the container's **rw layer**. Every write lands here. When a
  process changes a file of a lower layer, overlayfs first copies the whole
  file up into upperdir (**copy-up**, copy-on-write) and changes the copy.
- **workdir** — overlay's scratch directory on the same filesystem: a
  copy-up is prepared there, then renamed into upperdir in one step.
- **merged** — the mount point where all of it appears as one tree: the
  container's `/` after pivot_root.

A deletion cannot remove a file from a read-only layer, so overlayfs puts a
**whiteout** in upperdir (a character device 0:0 with the same name) that
hides it. A directory removed and made again becomes **opaque** (xattr
`trusted.overlay.opaque=y`): nothing below it shows through.

The **init layer** holds empty placeholders for /etc/hosts, /etc/hostname and
/etc/resolv.conf (and the mount points /dev, /proc, /sys). The runtime
bind-mounts the real files from the container's state directory over them,
so what it writes there is never in the rw layer and `commit` never keeps it.

Image steps that only change settings (ENV, CMD, EXPOSE...) make no files:
they show as thin "empty layer" lines between the boxes. Run it on an IMAGE
to see only the read-only layers.""",
)
def layer_stack(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.engine.container.layers import stack
    from cshell.views.layers import WIDTH, save_svg, stack_view

    s = stack(ctx.runtime, args.target)
    picture = stack_view(s, full=args.full)
    ctx.out.print(picture)
    if args.full and s.plan is not None:
        # One plain line, never wrapped or cut: copy it into a mount command as is.
        ctx.out.text(f"overlay options: {s.plan.overlay_options}")
    if args.svg:
        try:
            save_svg(picture, args.svg, f"cshell layer stack {args.target}", width=160 if args.full else WIDTH)
        except OSError as e:
            raise RuntimeFailure(f"cannot write {args.svg}: {e.strerror}", "give a path in a writable directory") from None
        ctx.out.note(f"wrote {args.svg}")
    return 0


@command(
    "layer diff", "list what a container added (A), changed (C) and deleted (D) in its rw layer",
    positionals=(Pos("container", "the container", complete=CONTAINER),),
    example="layer diff web",
    group="rootfs",
    docker="docker diff",
    details="""
Reads the container's rw layer (overlay's upperdir) and compares each entry
with the image's layers:

- `A /new.txt` — added: the path is in no image layer.
- `C /etc` — changed: the image has it too; the rw layer holds a copied-up
  version (a directory shows as C as soon as anything inside it changed).
- `D /etc/group` — deleted: a whiteout (a 0:0 character device) hides it.

This list is what `commit` packs into the new layer (whiteouts become
`.wh.NAME` files in the tar). Files the runtime bind-mounts (/etc/hosts,
/etc/hostname, /etc/resolv.conf) are never in it.""",
)
@command(
    "diff", "list what a container added (A), changed (C) and deleted (D): docker diff, as `layer diff`",
    positionals=(Pos("container", "the container", complete=CONTAINER),),
    example="diff web",
    group="rootfs",
    docker="docker diff",
    details="The same list as `layer diff`, whose help says how it is read from the rw layer.",
)
def layer_diff(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.engine.container.layers import container_changes
    from cshell.views.layers import change_lines

    c, found = container_changes(ctx.runtime, args.container)
    for line in change_lines(found, ctx.out.color):
        ctx.out.text(line)
    if not found:
        ctx.out.note(f"{c.name}'s rw layer is empty: nothing changed")
    return 0


@command(
    "layer whereis", "find which layer provides a file of a container (or image)",
    positionals=(Pos("target", "a container, or an image", complete=CTR_OR_IMAGE),
                 Pos("path", "the path as the container sees it, e.g. /etc/passwd")),
    example="layer whereis web /etc/hosts",
    group="rootfs",
    docker="overlayfs' own lookup, by hand",
    details="""
Looks for PATH the way overlayfs does: in the rw layer first, then the init
layer, then the image's layers from the top, and stops at the first layer
that has it, or that hides it:

- found in the rw layer and in a layer below: it was **copied up** (the
  container changed it; the image's copy is untouched);
- a **whiteout** above: it was deleted;
- an **opaque** directory above: the directory was replaced;
- /etc/hosts, /etc/hostname, /etc/resolv.conf: a **bind mount** from the
  container's state dir, not a layer at all; /proc, /sys, /dev are mounts too.

It prints the real path on disk and what each layer holds at PATH. A
symlink on the way is reported, not followed: the link means something inside
the container, not on the host.""",
)
def layer_whereis(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.engine.container.layers import whereis
    from cshell.views.layers import whereis_view

    ctx.out.print(whereis_view(whereis(ctx.runtime, args.target, args.path)))
    return 0
