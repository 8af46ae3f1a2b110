"""Base images made on this machine, so nothing has to come from Docker Hub.

``busybox`` is built from Debian's busybox-static: one statically linked
binary plus a symlink per applet, a minimal /etc, and the empty directories
a root filesystem has. The result is an ordinary OCI image in the store: one
tar layer with its sha256 digest, a config and a manifest.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cshell.engine import archive, trace
from cshell.errors import RuntimeFailure

if TYPE_CHECKING:
    from cshell.engine.store import Image, Store

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def can_bootstrap(ref: str) -> bool:
    return ref.removesuffix(":latest") in RECIPES


def bootstrap(store: Store, ref: str) -> Image:
    name = ref.removesuffix(":latest")
    trace.info(f"image {name} is not here yet: building it locally (first use only)")
    return RECIPES[name](store)


def _is_static_elf(path: Path) -> bool:
    """True when the ELF has no PT_INTERP, i.e. runs without a dynamic loader."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit ELF only
            return False
        phoff, = struct.unpack_from("<Q", head, 32)
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return all(struct.unpack_from("<I", table, i * phentsize)[0] != 3 for i in range(phnum))


def _find_static_busybox() -> Path:
    for candidate in BUSYBOX_CANDIDATES:
        path = Path(candidate)
        if path.exists() and _is_static_elf(path.resolve()):
            return path.resolve()
    raise RuntimeFailure(
        "no statically linked busybox on this machine",
        "install it: apt-get install busybox-static (make demo does this)",
    )


def _busybox_rootfs(root: Path, busybox: Path) -> None:
    for d in ("bin", "dev", "etc", "home", "proc", "root", "sys", "tmp", "usr/bin", "usr/sbin",
              "sbin", "var/log", "var/tmp"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "tmp").chmod(0o1777)
    (root / "var/tmp").chmod(0o1777)
    (root / "root").chmod(0o700)
    shutil.copy2(busybox, root / "bin/busybox")
    (root / "bin/busybox").chmod(0o755)
    applets = subprocess.run([str(busybox), "--list-full"], capture_output=True, text=True,
                             check=True).stdout.split()
    for applet in applets:
        link = root / applet
        if link.exists() or applet == "bin/busybox":
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        depth = len(Path(applet).parts) - 1
        link.symlink_to("../" * depth + "bin/busybox")
    (root / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n")
    (root / "etc/group").write_text("root:x:0:\nnogroup:x:65534:\n")


def busybox(store: Store) -> Image:
    binary = _find_static_busybox()
    with tempfile.TemporaryDirectory(prefix="cshell-busybox-") as tmp:
        root = Path(tmp) / "rootfs"
        root.mkdir()
        _busybox_rootfs(root, binary)
        layer = archive.tar_directory(root)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    config = {
        "architecture": "amd64", "os": "linux", "created": now,
        "config": {"Env": [DEFAULT_PATH], "Cmd": ["sh"]},
        "history": [
            {"created": now, "created_by": f"ADD {binary} + applet links  # cshell bootstrap from busybox-static"},
            {"created": now, "created_by": 'CMD ["sh"]', "empty_layer": True},
        ],
    }
    return store.add_image("busybox:latest", config, [layer])


RECIPES: dict[str, Callable[[Store], Image]] = {"busybox": busybox}
