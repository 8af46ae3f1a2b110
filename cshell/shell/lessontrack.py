"""What a lesson made, so that it can remove it: at its end, before a new run, on `lesson reset`.

Around each cshell command a lesson runs, the runner compares the containers
and image names before and after. What appeared is written to
``ROOT/lessons/NAME.json`` at once, so a lesson left with `q` (or killed) can
still be cleaned up later. Base images that cshell builds on first use
(busybox, ...) are a cache, like docker's pulled images: they stay.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

from cshell.commands.context import Context
from cshell.errors import CShellError

SHIPPED = Path(__file__).resolve().parent.parent / "lessons"


def resolve(name: str) -> Path:
    """A path that exists, as given; otherwise a lesson shipped with cshell (lesson08, lesson08.cs)."""
    given = Path(name).expanduser()
    if given.is_file():
        return given
    for candidate in (SHIPPED / name, SHIPPED / f"{name}.cs"):
        if candidate.is_file() and candidate.suffix == ".cs":
            return candidate
    from cshell.errors import NotFound

    raise NotFound(f"no such script or lesson: {name}",
                   "give the path of a .cs file, or a shipped lesson's name (`lesson ls` lists them)")


def shipped() -> list[Path]:
    return sorted(SHIPPED.glob("*.cs"))


Snapshot = tuple[dict[str, str], set[str]]  # container id -> name, image names


class Tracker:
    def __init__(self, ctx: Context, name: str) -> None:
        self.ctx = ctx
        self.path = ctx.root.path / "lessons" / f"{name}.json"
        self.containers: list[dict[str, object]] = []  # {"id", "name", "step"}
        self.images: list[dict[str, object]] = []  # {"ref", "step"}
        self.tmp = ""

    # -- the record on disk -----------------------------------------------------------------

    @classmethod
    def load(cls, ctx: Context, name: str) -> Tracker | None:
        t = cls(ctx, name)
        try:
            data = json.loads(t.path.read_text())
        except (OSError, ValueError):
            return None
        t.containers, t.images, t.tmp = data.get("containers", []), data.get("images", []), data.get("tmp", "")
        return t

    def save(self) -> None:
        from cshell.engine.state import write_json

        with contextlib.suppress(OSError):
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_json(self.path, {"containers": self.containers, "images": self.images, "tmp": self.tmp})

    def forget(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()

    # -- following what commands make ----------------------------------------------------------

    def snapshot(self) -> Snapshot:
        rt, root = self.ctx.runtime, self.ctx.root
        try:
            ids = {c.id: c.name for c in rt.list(all=True)} if root.containers.is_dir() else {}
            refs = set(rt.store.refs()) if root.images.is_dir() else set()
        except (CShellError, OSError, ValueError):
            return {}, set()
        return ids, refs

    def update(self, step: int, before: Snapshot) -> None:
        from cshell.engine.image.bootstrap import can_bootstrap

        ids, refs = self.snapshot()
        old_ids, old_refs = before
        made = [{"id": i, "name": n, "step": step} for i, n in ids.items() if i not in old_ids]
        named = [{"ref": r, "step": step} for r in sorted(refs - old_refs) if not can_bootstrap(r)]
        gone = set(old_ids) - set(ids)
        if not made and not named and not any(c["id"] in gone for c in self.containers):
            return
        self.containers = [c for c in self.containers if c["id"] not in gone] + made
        self.images += [i for i in named if i["ref"] not in {x["ref"] for x in self.images}]
        self.save()

    # -- removing it -----------------------------------------------------------------------------

    def remove(self, step: int | None = None) -> list[str]:
        """Remove what was made (in one step, or all); return what was removed, for the user."""
        removed = [*self._remove_containers(step), *self._remove_images(step)]
        if step is None:
            if self.tmp:
                shutil.rmtree(self.tmp, ignore_errors=True)
            self.forget()
        else:
            self.save()
        return removed

    def _remove_containers(self, step: int | None) -> list[str]:
        from cshell.errors import NotFound

        removed, kept = [], []
        for entry in self.containers:
            if step is not None and entry["step"] != step:
                kept.append(entry)
                continue
            try:
                c = self.ctx.runtime.get(str(entry["id"]))
                self.ctx.runtime.remove(c, force=True, volumes=True)  # its anonymous volumes too
                removed.append(f"container {entry['name']}")
            except NotFound:
                pass
            except CShellError as e:
                self.ctx.out.note(f"could not remove container {entry['name']}: {e.message}")
                kept.append(entry)
        self.containers = kept
        return removed

    def _remove_images(self, step: int | None) -> list[str]:
        from cshell.engine.build.commit import remove_image
        from cshell.errors import NotFound

        removed, kept = [], []
        for entry in reversed(self.images):
            if step is not None and entry["step"] != step:
                kept.insert(0, entry)
                continue
            try:
                remove_image(self.ctx.runtime, str(entry["ref"]))
                removed.append(f"image {entry['ref']}")
            except NotFound:
                pass
            except CShellError as e:
                self.ctx.out.note(f"kept image {entry['ref']}: {e.message}")
        self.images = kept
        return removed

    def make_tmp(self, name: str) -> str:
        import tempfile

        self.tmp = tempfile.mkdtemp(prefix=f"cshell-{name}-")
        os.chmod(self.tmp, 0o755)
        return self.tmp
