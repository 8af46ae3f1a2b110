"""build: a Dockerfile to an image, one layer per instruction (docker's classic builder)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import SimpleNamespace

from cshell.commands.context import Context
from cshell.commands.registry import FILE, Opt, Pos, command
from cshell.errors import UsageError


@command(
    "build", "build an image from a Dockerfile: one step, one image, per instruction",
    options=(
        Opt(("-t", "--tag"), "name the image NAME[:TAG] (repeatable)", "NAME[:TAG]", multi=True),
        Opt(("-f", "--file"), "the Dockerfile (default: DIR/Dockerfile; - reads it from stdin)", "FILE",
            complete=FILE),
        Opt(("--target",), "build up to this stage (FROM IMAGE AS NAME) and stop there", "STAGE"),
        Opt(("--build-arg",), "set an ARG of the Dockerfile (K=V, or K to take it from here)", "K=V",
            multi=True),
        Opt(("--no-cache",), "run every step again instead of reusing cached step images"),
        Opt(("--pull",), "pull each FROM image again from its registry, even when it is here"),
        Opt(("--network",), "network of RUN steps: none (default), bridge or host", "MODE", default="none"),
        Opt(("-q", "--quiet"), "print only the image id"),
    ),
    positionals=(Pos("dir", "the build context: the Dockerfile's directory, where ADD and COPY read "
                            "(-: stdin, a Dockerfile alone or a tar of the context)", complete=FILE),),
    example="build -t helloworld -f lessons/app/Dockerfile.busybox lessons/app",
    group="images",
    docker="docker build (the classic builder)",
    details="""
**One layer per instruction.** Each instruction starts from the image the
previous one made and makes a new, untagged image (`images -a` shows them;
`history IMAGE` lists one line per instruction). FROM picks the first
(`busybox` is made here on first use; `scratch` means no layers at all).

- **RUN** runs its command in a real container on the image so far (no
  network unless `--network host`). What the command changed is the
  container's overlay upper dir: that directory becomes the new layer, then
  the container is removed.
- **ADD** and **COPY** write files of DIR into the image; they too make a layer.
  ADD also unpacks a local tar archive (gzip, bzip2, xz). `.dockerignore` in
  DIR hides files, with docker's patterns (`*.log`, `**/tmp`, `!keep.log`).
- **ENV, WORKDIR, EXPOSE, CMD, ENTRYPOINT, USER, LABEL, VOLUME, ARG,
  STOPSIGNAL** change only the image's settings: an **empty layer**, a
  history entry with `empty_layer: true` and no new files, shown as 0B. That
  is the article's point: every instruction has its layer, even when the
  layer is empty.

**The cache.** A step is skipped (" ---> Using cache") when the same
instruction already ran on the same parent image. The key is (parent image
id, the instruction text after $ARG/$ENV substitution, the build args a RUN
sees) and, for ADD and COPY, the sha256 of the copied files' contents, names
and modes: COPY **hashes the content**, so editing a file invalidates that
step and every step after it, while `touch` changes nothing. A RUN is never
re-checked: `RUN apt-get update` stays cached until something before it
changes (or `--no-cache`). `image prune` deletes the cached step images; the
next build simply runs those steps again.

Like docker: exec form `CMD ["a", "b"]` must be valid JSON, otherwise it runs
as `/bin/sh -c '...'`; ADD/COPY cannot reach outside DIR (`../x`, or a
symlink pointing out of DIR); errors name the Dockerfile line.
RUN steps have no network unless asked: `--network bridge` gives each its own
veth on the bridge (reaching the internet needs `net config masquerade=on`),
`--network host` shares the host's.

**Stages (multi-stage builds).** Each FROM starts a new stage, numbered
from 0 and named with `FROM IMAGE AS NAME`. `COPY --from=NAME` (or an index,
or any image) copies files out of another stage's root: the path and its
symlinks are resolved inside that root, never on the host. A later stage can
also start `FROM NAME`. Only the last stage (or `--target NAME`) ends up in
the image; the stages it does not need are skipped, and the build says so.
So a `gcc` stage compiles and a `busybox` stage ships only the binary
(`lessons/multistage/`). ARG before the first FROM serves the FROM lines.

**Stdin.** `build -t NAME - < Dockerfile` reads the Dockerfile from stdin
with no context (COPY can only use `--from`); `build -f - DIR` reads it from
stdin and the files from DIR. `build - < context.tar` (a tar, gzip, bzip2 or
xz) is the whole context, with its Dockerfile inside (or `-f NAME` inside it).

**ONBUILD INSTRUCTION** is stored in the image (`OnBuild` in its config) and
runs when another build starts `FROM` that image, right after its FROM; the
child image does not keep it. **HEALTHCHECK [--interval=30s --timeout=30s
--start-period=0s --retries=3] CMD ...** (or NONE) is stored as docker's
`Healthcheck`; containers of the image run it (see `help run`).

Not yet: ADD from a URL, RUN as another USER (the
user is recorded for later, RUN still runs as root).""",
)
def build(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.engine.build.build import BuildOptions
    from cshell.engine.build.build import build as do_build
    from cshell.views.build import BuildView

    from_stdin = args.dir == "-" or args.file == "-"
    data = _stdin(ctx) if from_stdin else None
    tar = data if args.dir == "-" and data is not None and _is_tar(data) else None
    opts = BuildOptions(context=None if args.dir == "-" else Path(args.dir),
                        dockerfile=Path(args.file) if args.file and args.file != "-" else None,
                        tags=list(args.tag), build_args=_build_args(args.build_arg),
                        no_cache=args.no_cache, network=args.network or "none", target=args.target or "",
                        dockerfile_text=_text(data) if data is not None and tar is None else None,
                        context_tar=tar, pull=args.pull)
    view = BuildView(ctx.out, quiet=args.quiet)
    result = do_build(ctx.runtime, opts, view)
    view.finished(result)
    return 0


def _stdin(ctx: Context) -> bytes:
    """`build -` and `build -f - DIR`: a Dockerfile (or, for `build -`, a tar context) piped in."""
    if ctx.interactive or sys.stdin is None or sys.stdin.isatty():
        raise UsageError("build - reads the Dockerfile from stdin, and nothing is piped in",
                         "cshell build -t NAME - < Dockerfile (or: build -f - DIR < Dockerfile)")
    return sys.stdin.buffer.read()


def _is_tar(data: bytes) -> bool:
    """Docker's detection: a (compressed) tar is a context, anything else a Dockerfile."""
    return data.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")) or data[257:262] == b"ustar"


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise UsageError(f"the Dockerfile on stdin is not UTF-8 text ({e.reason})",
                         "pipe a Dockerfile saved as UTF-8, or a tar of the context: build - < context.tar") from None


def _build_args(items: list[str]) -> dict[str, str]:
    """--build-arg K=V, or K alone: the value of K in this shell's environment (as docker)."""
    out: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not key:
            raise UsageError(f"invalid --build-arg {item!r}", "e.g. --build-arg VERSION=1.2")
        if eq:
            out[key] = value
        elif key in os.environ:
            out[key] = os.environ[key]
    return out
