"""The state root on disk and the atomic file writes everything else uses.

Layout (Docker/containerd names where they exist)::

    ROOT/images/            OCI image layout: oci-layout, index.json, blobs/sha256/
    ROOT/layers/<chain>/    one unpacked image layer: diff/ and layer.json
    ROOT/containers/<id>/   config.json, state.json, init/, rw/, work/, merged/, log
    ROOT/volumes/<name>/    _data/ (what the container sees) and volume.json (docker's local driver)
    ROOT/lock               flock taken while names and ids are handed out
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cshell.errors import PrivilegeError, RuntimeFailure

DEFAULT_ROOT = "/var/lib/cshell"


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write temp, fsync, rename: a reader sees the old file or the new one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)


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
            raise RuntimeFailure(
                f"cannot create the state root {self.path}: {e.strerror}",
                "choose another directory with --root DIR or CSHELL_ROOT",
            ) from None
        return self

    def container_dir(self, cid: str) -> Path:
        return self.containers / cid

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Serialise name and id allocation between concurrent shells."""
        fd = os.open(self.path / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
