"""Images and containers as files: save, load, export, import."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import IO

from cshell.commands.context import Context
from cshell.commands.registry import CONTAINER, FILE, IMAGE, Opt, Pos, command
from cshell.errors import NotFound, UsageError


@command(
    "save", "write images to a tar file (docker-archive and OCI layout in one)",
    options=(Opt(("-o", "--output"), "the file to write (default: stdout, if it is not a terminal)", "FILE",
                 complete=FILE),
             Opt(("--format",), "docker+oci (default, as Docker 25+), oci, or docker (the pre-25 layout)",
                 "FORMAT", default="docker+oci")),
    positionals=(Pos("images", "image names or ids", many=True, complete=IMAGE),),
    example="save -o hello.tar geektime/helloworld:v1",
    group="images",
    docker="docker save",
    details="""
The tar holds the image's blobs once, under `blobs/sha256/<digest>`: the
manifest, the config and each layer (uncompressed tars, as in the store).
Two indexes point at them:

* `index.json` (with `oci-layout`) is the **OCI image layout**: one entry per
  name, each the sha256 of a manifest, annotated with the name
  (`io.containerd.image.name`, `org.opencontainers.image.ref.name`). The
  manifest names the config and layers by sha256 too: a chain of digests.
* `manifest.json` is the **docker-archive**: for each image, `Config` and
  `Layers` as file names in the tar, and its names in `RepoTags`.

That is what `docker save` writes since Docker 25, and what `skopeo` reads as
`oci-archive:FILE` or `docker-archive:FILE`. `--format oci` writes only the
OCI layout; `--format docker` the older docker layout (`<id>/layer.tar`,
`<config>.json`, `repositories`).

Like docker: NAME:TAG saves that tag, a bare NAME every tag of it, an image
id the image without a name.""",
)
def save(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.engine.image.transfer import FORMATS, choose
    from cshell.engine.image.transfer import save as do_save

    if args.format not in FORMATS:
        raise UsageError(f"unknown format {args.format!r}", f"--format {' | '.join(FORMATS)}")
    choose(ctx.runtime.store, args.images)  # a missing image fails before any file is made
    with _output(ctx, args.output, "save") as out:
        do_save(ctx.runtime.store, args.images, out, args.format)
    return 0


@command(
    "load", "read images from a tar file made by save (or docker save, skopeo, umoci)",
    options=(Opt(("-i", "--input"), "the tar to read (default: stdin, if it is not a terminal)", "FILE",
                 complete=FILE),
             Opt(("-q", "--quiet"), "print nothing but errors")),
    example="load -i hello.tar",
    group="images",
    docker="docker load",
    details="""
Reads a docker-archive (`manifest.json`, the Docker 25+ kind or the older
`<id>/layer.tar` kind) or an OCI image layout (`oci-layout`, `index.json`,
`blobs/sha256/`), plain or gzip/bzip2/xz-compressed, with plain or gzip
layers (zstd ones when a Python zstd module is installed).

An archive can come from anyone, so it is never unpacked on disk: cshell reads
the tar's headers, refuses any `..`, absolute path, hardlink or device in it
(a symlink only as another name for a file inside the archive, the way skopeo
shares a layer), then follows the digests: index.json → manifest → config → each layer,
checking each blob's **size, then its sha256** against what points at it, and
each layer's uncompressed sha256 against the config's `diff_ids`. The blobs
are copied into temp files meanwhile; only when everything matched do they
move into the store and the names into index.json. One wrong byte, and the
store is exactly as before. Layers are unpacked at the first `run`, each into
its own empty directory by a child confined to it: names are kept inside it,
device nodes are skipped, and setuid/setgid bits and file capabilities are
kept, as docker keeps them (su and ping need them; a container's root holds
those rights anyway).

Prints `Loaded image: NAME:TAG` per name, or `Loaded image ID: sha256:…` for an
image without one (an OCI layout whose only name is a bare tag like `latest`
names no image, as with docker: `tag ID NAME` then).""",
)
def load(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.engine.image.load import load as do_load

    ctx.root.ensure()
    with _input(ctx, args.input, "load") as source:
        loaded = do_load(ctx.runtime.store, source)
    if args.quiet:
        return 0
    for result in loaded:
        for old in result.displaced:
            ctx.out.text(f"The image {old.refs[0] if old.refs else old.short_id} already exists, "
                         f"renaming the old one with ID {old.id} to empty string")
        for ref in result.refs:
            ctx.out.text(f"Loaded image: {ref}")
        if not result.refs:
            ctx.out.text(f"Loaded image ID: {result.image.id}")
    return 0


@command(
    "export", "write a container's filesystem as a flat tar",
    options=(Opt(("-o", "--output"), "the file to write (default: stdout, if it is not a terminal)", "FILE",
                 complete=FILE),),
    positionals=(Pos("container", "a container, running or stopped", complete=CONTAINER),),
    example="export -o web.tar web",
    group="images",
    docker="docker export",
    details="""
One tar of what the container sees at `/`: its image layers, the init layer
and its writable layer merged, with no layers or history (`save` keeps those).
As docker: volumes are not in it, /proc, /sys and /dev are empty directories,
and /etc/hosts, /etc/hostname and /etc/resolv.conf are the init layer's empty
placeholders (the real ones are bind mounts, outside the overlay).

It is written by a child process that sees only the container's files: for a
running container it joins the container's mount namespace (setns), for a
stopped one it mounts a read-only overlay in a private mount namespace. No
container path is ever followed from the host, and no mount appears there.
`import` turns the tar back into an image.""",
)
def export(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.engine.container.export import export as do_export

    container = ctx.runtime.get(args.container)
    with _output(ctx, args.output, "export") as out:
        do_export(container, out)
    return 0


@command(
    "import", "make a one-layer image from a flat rootfs tar",
    options=(Opt(("-c", "--change"), "apply a Dockerfile instruction, e.g. 'CMD [\"sh\"]'", "LINE", multi=True),
             Opt(("-m", "--message"), "the history comment (default: Imported from FILE)", "MSG")),
    positionals=(Pos("file", "the tar (plain, gzip, bzip2 or xz), or - for stdin", complete=FILE),
                 Pos("name", "NAME[:TAG] for the image (none: untagged)", optional=True)),
    example="import -c 'CMD [\"sh\"]' web.tar web:flat",
    group="images",
    docker="docker import",
    details="""
The whole tar becomes the image's only layer, stored as it is (uncompressed):
a flattened image, with one history entry and no settings but those given with
`-c` (CMD, ENTRYPOINT, ENV, WORKDIR, ...). Without `-c 'CMD ...'` you must name
the command at `run`. Prints the new image's id.""",
)
def import_(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.engine.container.export import ImportOptions, import_rootfs
    from cshell.engine.image.reference import normalize_ref

    ctx.root.ensure()
    if args.name:
        normalize_ref(args.name)  # a bad name fails before the tar is read
    for change in args.change:
        if not change.strip():
            raise UsageError("an empty --change", "e.g. -c 'CMD [\"sh\"]'")
    opts = ImportOptions(args.name, args.message or "", tuple(args.change), args.file)
    with _input(ctx, None if args.file == "-" else args.file, "import") as source:
        image = import_rootfs(ctx.runtime.store, source, opts)
    ctx.out.text(image.id)
    return 0


# -- files and the standard streams ----------------------------------------------------------


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return True  # no real stream under it: treat as a terminal, write no binary there


@contextlib.contextmanager
def _output(ctx: Context, path: str | None, verb: str) -> Iterator[IO[bytes]]:
    """The file (written to a temp name, renamed when complete), or stdout when it is no terminal."""
    if path is None:
        stream = ctx.out.out
        if ctx.out.guard is not None or _is_terminal(stream) or not hasattr(stream, "buffer"):
            raise UsageError(f"cowardly refusing to {verb} a tar to a terminal",
                             f"use -o FILE, or redirect: cshell {verb} ... > FILE.tar")
        stream.flush()
        yield stream.buffer  # type: ignore[attr-defined]
        stream.buffer.flush()  # type: ignore[attr-defined]
        return
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        f = open(tmp, "wb")  # noqa: SIM115 - closed below, before the rename
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror}", "choose a file in a directory you can write") from None
    try:
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@contextlib.contextmanager
def _input(ctx: Context, path: str | None, verb: str) -> Iterator[Path | IO[bytes]]:
    """The named file (a Path: the engine seeks in it), or stdin when it is no terminal."""
    if path is None:
        stream = sys.stdin
        if ctx.interactive or _is_terminal(stream) or not hasattr(stream, "buffer"):
            raise UsageError(f"{verb} needs a tar file, and stdin is a terminal",
                             f"give the file ({'load -i FILE' if verb == 'load' else 'import FILE'}), "
                             f"or pipe it: cshell {verb} {'' if verb == 'load' else '- '}< FILE.tar")
        yield stream.buffer  # type: ignore[attr-defined]
        return
    source = Path(path)
    if not source.is_file():
        raise NotFound(f"no such file: {path}", "give the path of a tar file")
    yield source

