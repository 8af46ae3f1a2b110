"""Base images made on this machine, so nothing has to come from Docker Hub.

``busybox`` is built from Debian's busybox-static: one statically linked
binary plus a symlink per applet, a minimal /etc, and the empty directories
a root filesystem has. Debian links it statically against glibc, whose name
lookups (getaddrinfo: `wget http://web/`, `ping web`) still dlopen the NSS
modules at run time, and crash without them: the image also gets the host's
libnss_files/libnss_dns with the libc.so.6 and ld.so they load (~2 MB, the
same glibc busybox-static was built against on Debian) and an nsswitch.conf. ``debian:bookworm`` and ``python:3.11-slim`` are
local stand-ins for Docker Hub's images: mmdebstrap installs Debian's
packages into a root filesystem tar, which becomes the image's one layer.

mmdebstrap takes a minute, so its result (already converted to a layer tar)
is cached under /var/cache/cshell/bootstrap, keyed on the recipe, with the
installed package versions in a .json beside it: every later state root
(each test has its own) only copies that tar into its store.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shlex
import shutil
import struct
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from cshell.engine import trace
from cshell.engine.image import archive, mmdebstrap
from cshell.engine.state import file_lock, read_json, write_json
from cshell.errors import CShellError, RuntimeFailure, UsageError
from cshell.record import record

if TYPE_CHECKING:
    from cshell.engine.image.store import Image, Layer, Store

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PYTHON_PATH = "PATH=/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # as python:3.11-slim
CACHE = Path(os.environ.get("CSHELL_CACHE", "/var/cache/cshell")) / "bootstrap"
RECIPE_VERSION = 1  # bump when the code below changes what a recipe builds: the cache is rebuilt
SOURCE_LABEL = "org.cshell.source"
# Files the runtime provides in every container (mmdebstrap copied the host's in).
RUNTIME_FILES = frozenset({"etc/hostname", "etc/resolv.conf"})
KEPT_PAX = ("SCHILY.xattr.security.capability",)  # file capabilities; nothing host-specific


@record(frozen=True)
class Recipe:
    name: str  # the canonical reference: "python:3.11-slim"
    aliases: tuple[str, ...]  # other references it answers to
    note: str  # what the image is, said when it is built
    spec: mmdebstrap.Spec | None = None  # None: made from busybox-static
    env: tuple[str, ...] = (DEFAULT_PATH,)
    cmd: tuple[str, ...] = ("sh",)
    version_of: str = ""  # the package whose version labels the image

    @property
    def slow(self) -> bool:
        return self.spec is not None

    @property
    def slug(self) -> str:
        return self.name.replace("/", "_").replace(":", "-")

    def key(self, mirrors: list[str]) -> str:
        """What the cached tar was made from: rebuilt when any of it changes."""
        spec = self.spec.__dict__ if self.spec else {}
        text = json.dumps([RECIPE_VERSION, self.name, spec, mirrors], sort_keys=True)
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


PYTHON_HOOKS = (
    # Docker Hub's python image lets root `pip install`; Debian's marks its python
    # as managed by apt (PEP 668), which would refuse `pip install -r requirements.txt`.
    'rm -f "$1"/usr/lib/python3.11/EXTERNALLY-MANAGED',
    'ln -sf /usr/bin/python3 "$1"/usr/local/bin/python',
)
RECIPE_LIST = (
    Recipe("busybox:latest", (), "busybox is built here from Debian's busybox-static"),
    Recipe("debian:bookworm", ("debian:12",),
           "debian:bookworm is a local stand-in built from Debian packages (mmdebstrap "
           "--variant=minbase), not Docker Hub's image",
           mmdebstrap.Spec("bookworm", "minbase"), cmd=("bash",), version_of="base-files"),
    Recipe("python:3.11-slim", ("python:3.11-slim-bookworm", "python:3.11", "python:3.11-bookworm"),
           "python:3.11-slim is a local stand-in built from Debian packages, not Docker Hub's image",
           mmdebstrap.Spec("bookworm", "minbase", ("python3", "python3-pip", "python3-venv"),
                           mmdebstrap.SLIM_DPKG_OPTS, PYTHON_HOOKS),
           env=(PYTHON_PATH, "LANG=C.UTF-8"), cmd=("python3",), version_of="python3.11"),
    # Multi-stage builds compile in a gcc stage and copy the binary onto busybox (lessons/multistage).
    Recipe("gcc:12", ("gcc:12-bookworm",),
           "gcc:12 is a local stand-in built from Debian packages (gcc-12, libc6-dev), not Docker Hub's image",
           mmdebstrap.Spec("bookworm", "minbase", ("gcc", "libc6-dev"), mmdebstrap.SLIM_DPKG_OPTS),
           cmd=("bash",), version_of="gcc-12"),
)
RECIPES: dict[str, Recipe] = {ref: r for r in RECIPE_LIST for ref in (r.name, *r.aliases)}


@record
class Bootstrapped:
    """What `image bootstrap` did."""

    image: Image
    recipe: Recipe
    ref: str
    already: bool = False  # it was in the store; nothing was built
    cached: bool = False  # the root filesystem came from the cache, not mmdebstrap
    cache_path: Path | None = None
    packages: int = 0
    seconds: float = 0.0


def recipe_for(ref: str) -> Recipe | None:
    from cshell.engine.image.reference import normalize_ref

    try:
        return RECIPES.get(normalize_ref(ref))
    except CShellError:
        return None


def can_bootstrap(ref: str) -> bool:
    return recipe_for(ref) is not None


def bootstrap(store: Store, ref: str, unreachable: str | None = None) -> Image:
    """A missing base image (registry/fetch.py, or `image bootstrap`): build it, saying so in one line
    (and why: ``unreachable`` names the registry a pull could not reach)."""
    recipe = recipe_for(ref)
    assert recipe is not None  # the store asked can_bootstrap first
    how = "a local stand-in from Debian packages, not Docker Hub's image" if recipe.slow else \
        "it from Debian's busybox-static"
    if unreachable:
        trace.info(f"image {ref} is not here yet and {unreachable} is out of reach: building {how} instead")
    else:
        trace.info(f"image {ref} is not here yet: building {how} (first use only)")
    return build(store, ref, announce=False).image


def build(store: Store, ref: str, force: bool = False, announce: bool = True) -> Bootstrapped:
    """`image bootstrap REF`: build the image (unless it is here and not ``force``) and tag it."""
    from cshell.engine.image.reference import normalize_ref

    recipe = recipe_for(ref)
    if recipe is None:
        known = ", ".join(r.name.removesuffix(":latest") for r in RECIPE_LIST)
        raise UsageError(f"no local recipe for {ref}", f"cshell can build: {known}; other images: pull or build")
    name = normalize_ref(ref)
    existing = store.find(name)
    if existing is not None and not force:
        return Bootstrapped(existing, recipe, name, already=True)
    if announce:
        trace.info(recipe.note)
    started = time.monotonic()
    if recipe.slow:
        result = _debian_image(store, recipe, name, force)
    else:
        result = Bootstrapped(busybox(store, name), recipe, name)
    result.seconds = time.monotonic() - started
    return result


# -- busybox ------------------------------------------------------------------------------


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
    _add_nss(root)


NSS_MODULES = ("libnss_files.so.2", "libnss_dns.so.2")
NSSWITCH = "passwd: files\ngroup: files\nhosts: files dns\nservices: files\n"


def nss_libraries() -> list[Path]:
    """The host's NSS modules and what they load (libc.so.6, ld.so), by ldd; [] if it has none."""
    ldd = shutil.which("ldd")
    found: list[Path] = []
    for directory in ("/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu", "/usr/lib64", "/lib64", "/usr/lib"):
        modules = [Path(directory) / m for m in NSS_MODULES]
        if all(m.exists() for m in modules):
            found = modules
            break
    if not found or ldd is None:
        return []
    deps = subprocess.run([ldd, *map(str, found)], capture_output=True, text=True, check=False).stdout
    for line in deps.splitlines():
        path = line.split("=>")[-1].split("(")[0].strip()
        if path.startswith("/") and Path(path).exists() and Path(path) not in found:
            found.append(Path(path))
    return found


def _add_nss(root: Path) -> None:
    """What glibc's static getaddrinfo needs to resolve a name: the modules, libc, ld.so, nsswitch.conf.

    Each file is copied to the path it has on the host (the loader and the modules look there).
    Without them (not a glibc host) the image still works; only names do not resolve.
    """
    for lib in nss_libraries():
        real = lib.resolve()
        target = root / str(real).lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            shutil.copy2(real, target)
        link = root / str(lib).lstrip("/")
        if link != target and not link.is_symlink():  # /lib64/ld-linux-x86-64.so.2 -> the real one
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(real)
    (root / "etc/nsswitch.conf").write_text(NSSWITCH)


def busybox(store: Store, ref: str = "busybox:latest") -> Image:
    binary = _find_static_busybox()
    with tempfile.TemporaryDirectory(prefix="cshell-busybox-") as tmp:
        root = Path(tmp) / "rootfs"
        root.mkdir()
        _busybox_rootfs(root, binary)
        layer = archive.tar_directory(root)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    config = {
        "architecture": _arch(), "os": "linux", "created": now,
        "config": {"Env": [DEFAULT_PATH], "Cmd": ["sh"],
                   "Labels": {SOURCE_LABEL: "bootstrap", "org.cshell.bootstrap.recipe": "busybox:latest"}},
        "history": [
            {"created": now, "created_by": f"ADD {binary} + applet links + glibc's NSS modules  "
                                           "# cshell bootstrap from busybox-static"},
            {"created": now, "created_by": 'CMD ["sh"]', "empty_layer": True},
        ],
    }
    return store.add_image(ref, config, [layer])


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(machine, machine)


# -- Debian images: mmdebstrap, the cache, the store --------------------------------------------


def _debian_image(store: Store, recipe: Recipe, ref: str, force: bool) -> Bootstrapped:
    tar, meta, cached = cached_rootfs(recipe, force)
    layer = _ingest(store, tar, meta, ref)
    image = store.write_image(_config(recipe, meta), [layer], ref)
    return Bootstrapped(image, recipe, ref, cached=cached, cache_path=tar, packages=len(meta["packages"]))


def cached_rootfs(recipe: Recipe, force: bool = False) -> tuple[Path, dict[str, Any], bool]:
    """The recipe's layer tar from the cache, built first if missing, stale or ``force``d.
    Returns (tar, its record, whether it came from the cache)."""
    assert recipe.spec is not None
    mirrors = mmdebstrap.mirror_lines(recipe.spec.suite)
    tar = CACHE / f"{recipe.slug}.tar"
    record = tar.with_suffix(".json")
    with file_lock(CACHE / f".{recipe.slug}.lock"):  # another cshell may be building the same one
        meta = _read_record(record)
        fresh = meta.get("key") == recipe.key(mirrors) and tar.exists() and tar.stat().st_size == meta.get("size")
        if fresh and not force:
            trace.step(f"using the cached root filesystem {tar} (built {meta['built']})")
            return tar, meta, True
        meta = _build_rootfs(recipe, tar, mirrors)
        write_json(record, meta)
        return tar, meta, False


def _read_record(path: Path) -> dict[str, Any]:
    try:
        meta = read_json(path)
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _build_rootfs(recipe: Recipe, tar: Path, mirrors: list[str]) -> dict[str, Any]:
    assert recipe.spec is not None
    raw = tar.with_name(f".{tar.name}.mmdebstrap")
    packed = tar.with_name(f".{tar.name}.packing")
    log = tar.with_suffix(".log")
    try:
        packages = mmdebstrap.run(recipe.spec, raw, recipe.name, log)
        digest, size = pack_layer(raw, packed, f"{recipe.name}: packing layer")
        tar.with_suffix(".json").unlink(missing_ok=True)  # a crash until the new one is written: rebuilt
        os.rename(packed, tar)
    finally:
        raw.unlink(missing_ok=True)
        packed.unlink(missing_ok=True)
    return {
        "recipe": recipe.name, "key": recipe.key(mirrors), "mirrors": mirrors,
        "built": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": shlex.join(mmdebstrap.argv(recipe.spec, mirrors, Path("OUT.tar"), Path("VERSIONS"))),
        "digest": digest, "size": size, "packages": packages,
    }


# -- the layer tar: mmdebstrap's tar, streamed and cleaned --------------------------------------


class _HashingFile:
    """A write-only file that hashes what goes through it (the layer's diff id)."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f = f
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        return self.f.write(data)


class _Meter:
    """trace.progress at most once per percent: a root filesystem has ~10,000 files."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.shown = label, max(total, 1), -1.0

    def update(self, done: int) -> None:
        if done - self.shown >= self.total / 100:
            self.shown = done
            trace.progress(self.label, min(done, self.total - 1), self.total)  # total only in finish

    def finish(self) -> None:
        trace.progress(self.label, self.total, self.total)


def pack_layer(src: Path, dest: Path, label: str) -> tuple[str, int]:
    """Copy a root filesystem tar into a layer tar, streaming: names made relative,
    device nodes and the host's /etc files left out (the runtime provides /dev and
    those), owners, modes, setuid bits, hardlinks, symlinks and file capabilities
    kept. Returns the layer's (diff id, size)."""
    meter = _Meter(label, src.stat().st_size)
    with open(src, "rb") as raw, open(dest, "wb") as f:
        out = _HashingFile(f)
        with tarfile.open(fileobj=raw, mode="r|") as tin, \
                tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tout:  # type: ignore[arg-type]
            for member in _layer_members(tin):
                tout.addfile(member, tin.extractfile(member) if member.isreg() else None)
                meter.update(raw.tell())
        f.flush()
        os.fsync(f.fileno())
    meter.finish()
    return "sha256:" + out.hash.hexdigest(), out.size


def _layer_members(tin: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """The members worth keeping, cleaned, in name order. mmdebstrap puts /dev first;
    the (emptied) dev directory goes back to its place among the sorted names."""
    dev: tarfile.TarInfo | None = None
    for member in tin:
        name = member.name.removeprefix("./").strip("/")
        if name == "dev" and member.isdir():
            dev = _clean(member, name)
            continue
        if dev is not None and name.split("/")[0] > "dev":
            yield dev
            dev = None
        if name in ("", ".") or name.startswith("dev/") or name in RUNTIME_FILES:
            continue
        if member.ischr() or member.isblk():
            continue  # device nodes are never part of a layer
        yield _clean(member, name)
    if dev is not None:
        yield dev


def _clean(member: tarfile.TarInfo, name: str) -> tarfile.TarInfo:
    member.name = name
    if member.islnk():
        member.linkname = member.linkname.removeprefix("./")
    member.uname = member.gname = ""  # numeric owners only: the image's, not this host's names
    member.mtime = int(member.mtime)
    # A stale "path" record would rename the member back; keep only what a layer needs.
    member.pax_headers = {k: v for k, v in member.pax_headers.items() if k in KEPT_PAX}
    return member


# -- into the store ---------------------------------------------------------------------------


def _ingest(store: Store, tar: Path, meta: dict[str, Any], ref: str) -> Layer:
    """Copy the cached tar into the store as a blob (skipped when it is there) and unpack it."""
    digest, size = meta["digest"], meta["size"]
    if not store.blob_path(digest).exists():
        got, size = _copy_blob(store, tar, f"{ref}: copying layer")
        if got != digest:
            raise RuntimeFailure(f"the cached root filesystem {tar} is damaged (digest {got[:19]})",
                                 f"rebuild it: image bootstrap --force {ref}")
    return store.layer_from_blob(digest, size, None)


def _copy_blob(store: Store, src: Path, label: str) -> tuple[str, int]:
    meter = _Meter(label, src.stat().st_size)
    writer = store.new_blob("bootstrap")
    try:
        with open(src, "rb") as f:
            while chunk := f.read(1 << 20):
                writer.write(chunk)
                meter.update(f.tell())
        result = writer.commit()
    except BaseException:
        writer.discard()
        raise
    meter.finish()
    return result


def _config(recipe: Recipe, meta: dict[str, Any]) -> dict[str, Any]:
    """Docker Hub's settings for the image; created = when the cached tar was built,
    so every state root gets the same image id from the same cache."""
    assert recipe.spec is not None
    created = meta["built"]
    env = list(recipe.env)
    version = meta["packages"].get(recipe.version_of, "")
    if recipe.version_of.startswith("python"):
        env.append(f"PYTHON_VERSION={version.split('-')[0]}")
    labels = {SOURCE_LABEL: "bootstrap", "org.cshell.bootstrap.recipe": recipe.name,
              "org.opencontainers.image.description": recipe.note,
              "org.opencontainers.image.version": version}
    hooks = "".join(f" && {hook.replace(chr(34) + '$1' + chr(34), '')}" for hook in recipe.spec.hooks)
    include = f" --include={','.join(recipe.spec.include)}" if recipe.spec.include else ""
    built_by = f"mmdebstrap --variant={recipe.spec.variant}{include} {recipe.spec.suite}{hooks}  # cshell bootstrap"
    history = [
        {"created": created, "created_by": built_by, "comment": f"{len(meta['packages'])} Debian packages"},
        *({"created": created, "created_by": f"ENV {e}", "empty_layer": True} for e in env),
        {"created": created, "created_by": f"CMD {json.dumps(list(recipe.cmd))}", "empty_layer": True},
    ]
    return {"architecture": _arch(), "os": "linux", "created": created,
            "config": {"Env": env, "Cmd": list(recipe.cmd), "Labels": labels}, "history": history}
