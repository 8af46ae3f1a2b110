"""`run --init`: cshell-init, a tiny static PID 1 (docker's tini), and how it gets in.

The program is cshell/data/init.c (about 60 lines of C): it forwards every
signal to its one child and reaps every process that ends under it. It is
built once, static (``gcc -static -Os``), by ``make venv`` (``python -m
cshell.engine.container.initbin``), or here on first use if that did not happen.

Why a static C binary and not Python: PID 1 must be tiny, start at once and
run inside any image (busybox has no Python, an image's libc may differ from
the host's). Why a bind mount: the binary stays on the host, read-only; the
container sees it at ``/.cshell-init``, a placeholder file in the container's
init layer (like docker's /.dockerenv), so the image's own directories are not
touched and ``commit`` never carries it. The command becomes
``/.cshell-init -- ENTRYPOINT CMD``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from cshell.engine import trace
from cshell.errors import RuntimeFailure

SOURCE = Path(__file__).resolve().parents[2] / "data" / "init.c"
BINARY = SOURCE.with_name("cshell-init")
TARGET = "/.cshell-init"  # where the container sees it
CFLAGS = ("-static", "-Os", "-s", "-Wall")


def ensure() -> str:
    """The binary's path, built now if missing or older than its source."""
    try:
        if BINARY.stat().st_mtime >= SOURCE.stat().st_mtime:
            return str(BINARY)
    except FileNotFoundError:
        if not SOURCE.exists() and BINARY.exists():
            return str(BINARY)  # installed without its source
    build()
    return str(BINARY)


def build() -> None:
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise RuntimeFailure("--init needs cshell-init, built from cshell/data/init.c, and there is no C compiler",
                             "install one (apt-get install gcc libc6-dev) and run `make venv`, or drop --init")
    tmp = BINARY.with_name(f".cshell-init.{os.getpid()}.tmp")
    trace.step(f"{cc} {' '.join(CFLAGS)} -o {BINARY} {SOURCE}  # once: cshell-init, the --init PID 1")
    try:
        proc = subprocess.run([cc, *CFLAGS, "-o", str(tmp), str(SOURCE)], capture_output=True, text=True,
                              check=False)
        if proc.returncode != 0:
            detail = (proc.stderr.strip().splitlines() or ["failed"])[-1]
            raise RuntimeFailure(f"building cshell-init failed: {detail}",
                                 "static linking needs libc.a: apt-get install libc6-dev")
        os.rename(tmp, BINARY)  # atomic: a concurrent build or run sees the old file or the new one
    except OSError as e:
        raise RuntimeFailure(f"cannot write {BINARY}: {e.strerror}", "run `make venv` as root") from None
    finally:
        if tmp.exists():
            tmp.unlink()


def mount_entry() -> dict[str, Any]:
    """A config.json "mounts" entry: the binary, bind-mounted read-only onto its placeholder."""
    return {"type": "bind", "source": str(BINARY), "destination": TARGET, "rw": False, "is_dir": False}


def make_placeholder(init_layer: Path) -> None:
    (init_layer / TARGET.lstrip("/")).touch(mode=0o755)


if __name__ == "__main__":  # make venv
    print(ensure())
