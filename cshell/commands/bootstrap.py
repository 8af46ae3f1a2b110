"""image bootstrap: base images built on this machine, without any registry."""

from __future__ import annotations

from types import SimpleNamespace

from cshell.commands.context import Context
from cshell.commands.registry import Opt, Pos, command


@command(
    "image bootstrap", "build a base image here from Debian packages (no registry needed)",
    options=(Opt(("-f", "--force"), "build it again, even if it is here or cached"),),
    positionals=(Pos("name", "busybox, debian:bookworm or python:3.11-slim"),),
    example="image bootstrap python:3.11-slim",
    group="images",
    docker="docker pull (of the official image it stands in for)",
    details="""
Where Docker Hub is out of reach (as on the machines cshell is built on),
the base images are made locally:

- `busybox`: Debian's busybox-static, one static binary and its applet links
- `debian:bookworm` (also `debian:12`): `mmdebstrap --variant=minbase bookworm`
- `python:3.11-slim` (also `python:3.11`): bookworm minbase, slimmed like Debian's
  slim images, + python3, python3-pip, python3-venv; `python` -> /usr/bin/python3;
  PATH, LANG and CMD ["python3"] as in the official image

The Debian ones are local stand-ins, not Docker Hub's images. One difference is
made on purpose: Debian marks its python as managed by apt (PEP 668,
/usr/lib/python3.11/EXTERNALLY-MANAGED), so `pip install` would be refused;
the stand-in removes that file, so `pip install -r requirements.txt` works as
root, as it does in the official image.

Packages come from the mirror in this machine's apt sources (else
deb.debian.org). The first build takes a minute; its layer tar is cached in
/var/cache/cshell/bootstrap (the package versions in a .json beside it), so
later ones, in any state root, take seconds. --force rebuilds it from the
mirror. `run`, `build` (FROM) and friends pull a missing image first; when no
registry can be reached (or `CSHELL_OFFLINE=1`), they bootstrap these images
themselves, saying so in one line. Each is labelled org.cshell.source=bootstrap.""",
)
def image_bootstrap(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.engine.image.bootstrap import build
    from cshell.views.bootstrap import bootstrap_summary

    ctx.root.ensure()
    result = build(ctx.runtime.store, args.name, force=args.force)
    ctx.out.text(bootstrap_summary(result))
    return 0
