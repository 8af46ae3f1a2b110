"""The build cache: which image a step made, by what went into it.

A key is the sha256 of (the parent image's id, the instruction as it ran:
ARG and ENV values substituted, build args a RUN saw, and for ADD/COPY the
sha256 of the copied content with names and modes). The value is the id of
the untagged step image that instruction made on that parent. The map lives
in ROOT/build-cache.json, rewritten atomically; an entry whose image was
removed since (`image prune`, `rmi`) is simply a miss.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from cshell.engine.state import StateRoot, read_json, write_json

try:  # the builtin sha256 (hashlib would load OpenSSL, ~10 ms)
    from _sha256 import sha256 as _sha256
except ImportError:
    from hashlib import sha256 as _sha256

VERSION = 1


def key(parent: str, instruction: str, content: str = "") -> str:
    text = json.dumps([VERSION, parent, instruction, content])
    return "sha256:" + _sha256(text.encode()).hexdigest()


class BuildCache:
    def __init__(self, root: StateRoot) -> None:
        self.root = root
        self.path: Path = root.path / "build-cache.json"
        self._entries: dict[str, str] | None = None

    @property
    def entries(self) -> dict[str, str]:
        if self._entries is None:
            try:
                data = read_json(self.path)
                self._entries = dict(data.get("entries", {})) if data.get("version") == VERSION else {}
            except (FileNotFoundError, ValueError, AttributeError):
                self._entries = {}  # no cache yet, or a damaged one: every step is a miss
        return self._entries

    def lookup(self, cache_key: str, existing: set[str]) -> str | None:
        """The image id for the key, if that image still exists."""
        image_id = self.entries.get(cache_key)
        return image_id if image_id in existing else None

    def remember(self, cache_key: str, image_id: str, exists: Callable[[str], bool]) -> None:
        """Add an entry (re-reading the file under the state lock: builds may run side by side)."""
        with self.root.locked():
            self._entries = None
            entries = {k: v for k, v in self.entries.items() if exists(v)}  # forget pruned images
            entries[cache_key] = image_id
            write_json(self.path, {"version": VERSION, "entries": entries})
            self._entries = entries
