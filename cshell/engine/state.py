"""The state root on disk and the atomic file writes everything else uses.

Layout (Docker/containerd names where they exist)::

    ROOT/images/            OCI image layout: oci-layout, index.json, blobs/sha256/
    ROOT/layers/<chain>/    one unpacked image layer: diff/ and layer.json
    ROOT/containers/<id>/   config.json, state.json, init/, rw/, work/, merged/, log
    ROOT/volumes/<name>/    _data/ (what the container sees) and volume.json (docker's local driver)
    ROOT/lock               flock taken while names and ids are handed out

Also the helpers every package writes its files with: ``sha256`` (digests, without
loading OpenSSL), ``now`` and ``parse_time`` (RFC 3339 stamps, as docker inspect shows).
It stands on nothing in the engine but ``trace`` and ``kernel.syscalls``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from cshell.errors import PrivilegeError, RuntimeFailure, reason

try:  # Python 3.11's builtin sha256: hashlib would load OpenSSL (~10 ms on every start)
    from _sha256 import sha256 as _sha256
except ImportError:  # newer Pythons
    from hashlib import sha256 as _sha256

DEFAULT_ROOT = "/var/lib/cshell"
T = TypeVar("T")


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write temp, fsync, rename, fsync the directory: a reader sees the old file or the
    new one, and after a power cut the rename itself is on disk too (~0.15 ms more).

    On any failure (a full disk, say) the temp file goes and the old file stays.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with space_checked(path.parent):
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        with space_checked(path.parent):
            try:
                view = memoryview(data)
                while view:  # a large write may be partial
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive flock on PATH (made if missing) for the length of the block: how
    concurrent cshell processes take turns; the kernel drops it if the holder dies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def human_size(n: float) -> str:
    """docker's sizes: decimal units, three significant digits."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.3g}{unit}"
        n /= 1000
    return f"{n:.3g}TB"


def hold(fd: int) -> None:
    """Mark a half-made file or directory as in progress: an flock its maker holds until it
    finishes or dies (the kernel drops it then), which is what ``abandoned`` asks about."""
    fcntl.flock(fd, fcntl.LOCK_EX)


ABANDON_GRACE = 1.0  # seconds between making a partial and holding it: younger ones are left alone


def abandoned(path: Path) -> bool:
    """A half-made file or directory (``hold``) whose maker is gone: nobody holds its lock.

    Unlike an age limit this is right at once after a kill, and never wrong for a
    slow maker that is still at work.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False  # gone meanwhile
    try:
        if time.time() - os.fstat(fd).st_mtime < ABANDON_GRACE:
            return False  # just made: its maker may be about to take the lock
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class NoSpace(RuntimeFailure):
    """The disk (or a quota) under the state root is full: of bytes, or of files (inodes)."""


@contextlib.contextmanager
def space_checked(path: str | os.PathLike[str]) -> Iterator[None]:
    """ENOSPC/EDQUOT inside the block become NoSpace, judged at once (blocks or inodes?):
    the clean-up that follows a failure frees some, and a later look would be misled."""
    try:
        yield
    except OSError as e:
        if e.errno in NO_SPACE:
            raise no_space(path, e.errno) from None
        raise


def no_space(path: str | os.PathLike[str], code: int = errno.ENOSPC) -> NoSpace:
    """ENOSPC/EDQUOT as words: which of a filesystem's two limits ran out. A disk with free
    blocks can still refuse a new file when every inode is taken (a tmpfs's nr_inodes=, an
    ext4 full of small files); "free some bytes" is the wrong advice then."""
    if code == errno.EDQUOT:
        return NoSpace(f"disk quota exceeded under {path}",
                       "free some space (rm, rmi, system prune) or ask for a larger quota; "
                       "what was being written was not kept")
    try:
        st = os.statvfs(path)
        inodes = st.f_files > 0 and st.f_favail == 0  # f_files 0: no inode limit (btrfs)
    except OSError:
        inodes, st = False, None
    if inodes and st is not None:
        return NoSpace(f"no space left on device under {path} (inodes: all {st.f_files} files it can hold "
                       "are used)", "the filesystem has bytes free but room for no more files: remove images "
                       "or containers (rmi, rm, system prune), or use a state root on a filesystem with more "
                       "inodes (--root DIR); what was being written was not kept")
    return NoSpace(f"no space left on device under {path} (blocks)",
                   "free some space (rm, rmi, system prune) or use a state root with room (--root DIR); "
                   "what was being written was not kept")


def write_json(path: Path, obj: Any) -> None:
    atomic_write(path, json.dumps(obj, indent=1, sort_keys=True).encode())


def read_json(path: Path) -> Any:
    with open(path, "rb") as f:
        return json.load(f)


def ensure_std_fds() -> None:
    """Make sure 0, 1 and 2 are open, or pipes we create would take their numbers."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            os.open(os.devnull, os.O_RDWR)  # takes the lowest free number: this one


def new_id() -> str:
    """A 64-hex id, like Docker's; the first 12 are the short id."""
    return os.urandom(32).hex()


class StateRoot:
    """Paths under one state root. Creating it is cheap and touches nothing."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        chosen = path or os.environ.get("CSHELL_ROOT") or DEFAULT_ROOT
        self.path = Path(chosen).absolute()
        self.images = self.path / "images"
        self.layers = self.path / "layers"
        self.containers = self.path / "containers"

    def ensure(self) -> StateRoot:
        """Create the directories; fail with a hint when that is not allowed."""
        try:
            for d in (self.path, self.images, self.layers, self.containers):
                d.mkdir(mode=0o711, exist_ok=True)
        except PermissionError:
            raise PrivilegeError(
                f"cannot write the state root {self.path}",
                "cshell creates namespaces and mounts: run it as root (sudo cshell)",
            ) from None
        except OSError as e:
            if e.errno in NO_SPACE:
                raise no_space(self.path.parent if not self.path.exists() else self.path, e.errno) from None
            raise RuntimeFailure(
                f"cannot create the state root {self.path}: {reason(e)}",
                "choose another directory with --root DIR or CSHELL_ROOT",
            ) from None
        return self

    def container_dir(self, cid: str) -> Path:
        return self.containers / cid

    def locked(self) -> contextlib.AbstractContextManager[None]:
        """Serialise name and id allocation between concurrent shells."""
        return file_lock(self.path / "lock")


class Cleanup:
    """Clean-up steps that must all be tried (reconcile, rm, system prune/check --repair).

    Each step is idempotent (a second run finds nothing to do); a step that fails
    is noted in one line and the next one still runs, as containers/storage joins
    its deletion errors: a half-finished clean-up must never stop the rest.
    """

    def __init__(self) -> None:
        self.done: list[str] = []
        self.errors: list[str] = []

    def attempt(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - any failure is reported, the next step runs
            self.errors.append(f"{what}: {reason(e)}".replace("\n", " "))
            return None

    def note(self, what: str) -> None:
        self.done.append(what)


_OCTAL = re.compile(r"\\([0-7]{3})")


def mounts_below(path: str | os.PathLike[str]) -> list[str]:
    """Mount points of our mount namespace strictly below PATH, deepest first."""
    prefix = str(path).rstrip("/") + "/"
    found = []
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            point = _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), line.split()[4].decode(errors="replace"))
            if point.startswith(prefix):
                found.append(point)
    return sorted(set(found), key=lambda p: (p.count("/"), p), reverse=True)


def detach_mount(point: str) -> None:
    """umount2(MNT_DETACH): gone from the tree now, freed once nothing uses it (EINVAL: not a mount)."""
    import errno

    from cshell.engine import trace
    from cshell.engine.kernel import syscalls as sc

    trace.step(f"umount2({point!r}, MNT_DETACH)  # a mount a crash left on the host")
    try:
        sc.umount2(point, sc.MNT_DETACH)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOENT):
            raise


# -- digests and times, the way the state files write them ---------------------------------------

def sha256(data: bytes) -> str:
    return "sha256:" + _sha256(data).hexdigest()


def now() -> str:
    """RFC 3339 in UTC with microseconds, the way docker inspect shows times."""
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"


def parse_time(stamp: str) -> float:
    """Seconds since the epoch for a stamp written by now() (0 when unset)."""
    import calendar

    if not stamp or stamp.startswith("0001"):
        return 0.0
    whole, _, frac = stamp.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + float(f"0.{frac or 0}")
