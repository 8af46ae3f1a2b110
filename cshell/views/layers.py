"""The layer diagram, docker diff's lines and whereis' answer.

Colour means a layer kind everywhere: the rw layer green, the init layer
magenta, image layers cyan, steps that made no files dim. The same colour
marks a layer's path in the overlay mount options, so the student can match
``lowerdir=…:…`` to the boxes above it.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

from rich import box
from rich.console import Console, Group, RenderableType
from rich.constrain import Constrain
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from cshell.engine.container.layers import (
    ABSENT,
    COPIED_UP,
    DELETED,
    FILE,
    FOUND,
    HIDDEN,
    IMAGE,
    INIT,
    MERGED_DIR,
    NO_LAYER,
    NOTDIR,
    OPAQUE_DIR,
    REPLACED,
    RW,
    SYMLINK,
    THROUGH_SYMLINK,
    WHITEOUT,
    EmptyStep,
    ImageLayerRow,
    LayerRef,
    Probe,
    Stack,
    Whereis,
)
from cshell.engine.image.diff import Change
from cshell.engine.state import human_size

STYLE = {RW: "green", INIT: "magenta", IMAGE: "cyan"}
EMPTY = "dim"
WIDTH = 112  # the diagram's width when paths are shortened (and of the SVG)
LONG_ID = re.compile(r"\b([0-9a-f]{12})[0-9a-f]{52}\b")
CHANGE_COLOUR = {"A": "\x1b[32m", "C": "\x1b[33m", "D": "\x1b[31m"}


class Paths:
    """Shortens paths under the state root to $ROOT/…/abcdef012345…/… (or keeps them whole)."""

    def __init__(self, root: str, full: bool) -> None:
        self.root, self.full = root.rstrip("/"), full

    def __call__(self, path: str | Path) -> str:
        text = str(path)
        if self.full:
            return text
        if text == self.root or text.startswith(self.root + "/"):
            text = "$ROOT" + text[len(self.root):]
        return LONG_ID.sub(r"\1…", text)

    def legend(self) -> Text:
        text = Text("layer directories are named by chain id (the layer and every layer below it), "
                    "not by diff id", style="dim")
        if not self.full:
            text.append(f"\n$ROOT = {self.root}   (ids cut to 12 characters; --full shows whole paths)")
        return text


# -- layer stack ---------------------------------------------------------------------------


def stack_view(s: Stack, full: bool = False) -> RenderableType:
    short = Paths(s.root, full)
    parts: list[RenderableType] = [_title(s)]
    if s.rw is not None:
        parts.append(_rw_panel(s, short))
    if s.init is not None:
        parts.append(_init_panel(s, short))
    if s.container is None:
        parts.append(_container_note())  # what would sit on top of these
    layers = len(s.image_layers)
    for row in s.rows:
        parts.append(_image_panel(row, layers, short, s.image_found) if isinstance(row, ImageLayerRow)
                     else _empty_step(row))
    if s.plan is not None:
        parts.append(_mount_panel(s, short))
    parts.append(short.legend())
    return Constrain(Group(*parts), _full_width(s) if full else WIDTH)


def _full_width(s: Stack) -> int:
    """Wide enough for whole paths and their notes on one line (a pipe or a wide terminal)."""
    paths = [str(r.layer.path) for r in s.image_layers]
    if s.plan is not None:
        paths += [*s.plan.lowerdirs, s.plan.upperdir, s.plan.workdir, s.plan.merged]
    return max(WIDTH, max(map(len, paths), default=0) + 80)


def _title(s: Stack) -> Text:
    if s.container is None:
        return Text.assemble(("image ", "bold"), (s.image_ref, "bold cyan"),
                             (f"  {s.image_id[7:19]}  read-only layers, top to bottom", "dim"))
    state = "running" if s.running else "not running"
    return Text.assemble(("container ", "bold"), (s.container, "bold green"),
                         (f"  {s.container_id[:12]} ({state}), image {s.image_ref}  top to bottom", "dim"))


def _panel(body: RenderableType, title: Text, kind: str) -> Panel:
    return Panel(body, title=title, title_align="left", border_style=STYLE[kind], box=box.ROUNDED, padding=(0, 1))


def _rw_panel(s: Stack, short: Paths) -> Panel:
    assert s.rw is not None
    rw = s.rw
    body = Text.assemble(
        (f"{rw.entries} entries, {human_size(rw.size)}", "bold"),
        ("  what the container wrote: new files, copied-up files, whiteouts", "dim"), "\n",
        ("upperdir ", "dim"), (short(rw.layer.path), STYLE[RW]),
    )
    return _panel(body, Text.assemble(("rw layer", f"bold {STYLE[RW]}"), " · writable · commit turns it into a layer"), RW)


def _init_panel(s: Stack, short: Paths) -> Panel:
    assert s.init is not None
    init = s.init
    binds = {dest for dest, _ in init.binds}
    files = [p for p in init.placeholders if p in binds]
    dirs = [p for p in init.placeholders if p not in binds and p.count("/") == 1 and p != "/etc"]
    others = [p for p in init.placeholders if p not in binds and p not in dirs and p != "/etc"]
    state_dir = str(Path(init.binds[0][1]).parent) if init.binds else ""
    body = Text.assemble(
        ("empty placeholders ", "dim"), (" ".join(files), "bold"), ("   mount points ", "dim"),
        (" ".join(dirs), "bold"), ("   also " if others else "", "dim"), (" ".join(others), "bold"), "\n",
        ("the real files are bind-mounted over them from the container's state dir ", "dim"),
        (short(state_dir) + "/", STYLE[INIT]), "\n",
        ("so the runtime's writes never reach the rw layer, and commit never keeps them", "dim"), "\n",
        ("lowerdir ", "dim"), (short(init.layer.path), STYLE[INIT]),
    )
    return _panel(body, Text.assemble(("init layer", f"bold {STYLE[INIT]}"), " · read-only · made by cshell"), INIT)


def _image_panel(row: ImageLayerRow, count: int, short: Paths, image_found: bool) -> Panel:
    n = row.layer.number
    where = "" if count == 1 else " (top)" if n == count else " (bottom)" if n == 1 else ""
    title = Text.assemble((f"image layer {n}", f"bold {STYLE[IMAGE]}"), f"/{count}{where} · read-only · diff id ",
                          (row.layer.diff_id[7:19] or "?", "bold"))
    size = human_size(row.size) if row.size is not None else "size unknown"
    body = Text.assemble(
        (row.created_by or ("(no history entry for it)" if image_found else "(the image is removed, its history too)"),
         "bold" if row.created_by else "dim"),
        (f"  # {row.comment}" if row.comment else "", "dim"), "\n",
        (size, ""), ("  EMPTY: no files" if row.empty else "", "yellow"), "  ",
        ("lowerdir " if row.unpacked else "not unpacked yet: ", "dim"), (short(row.layer.path), STYLE[IMAGE]),
    )
    return _panel(body, title, IMAGE)


def _empty_step(step: EmptyStep) -> Text:
    comment = f"  # {step.comment}" if step.comment else ""
    return Text(f"   ┆ {step.created_by}{comment}   (empty layer: settings only, no files)", style=EMPTY)


def _mount_panel(s: Stack, short: Paths) -> Panel:
    assert s.plan is not None and s.init is not None
    plan = s.plan
    kinds = {str(s.init.layer.path): INIT, **{str(r.layer.path): IMAGE for r in s.image_layers}}
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column(style="dim")
    grid.add_row(Text("mount -t overlay overlay -o", style="bold"), "")
    for i, lower in enumerate(plan.lowerdirs):
        key = "  lowerdir=" if i == 0 else "          :"
        note = "read-only layers, top first" if i == 0 else ""
        grid.add_row(Text.assemble((key, "bold"), (short(lower), STYLE[kinds.get(lower, IMAGE)])), note)
    grid.add_row(Text.assemble(("  ,upperdir=", "bold"), (short(plan.upperdir), STYLE[RW])), "where every write goes")
    grid.add_row(Text.assemble(("  ,workdir=", "bold"), short(plan.workdir)),
                 "copy-ups are prepared here, then renamed")
    where = "seen only in its mount namespace" if s.running else "mounted while it runs"
    grid.add_row(Text.assemble(("  ", ""), short(plan.merged)), f"merged: the container's /, {where}")
    return Panel(grid, title=Text("overlay mount", style="bold"), title_align="left", box=box.ROUNDED, padding=(0, 1))


def _container_note() -> Panel:
    body = Text("a container of this image gets two more layers on top of these:\n"
                "  an init layer: placeholders for /etc/hosts, /etc/hostname, /etc/resolv.conf, /dev, /proc, /sys\n"
                "  a rw layer (overlay's upperdir): every change the container makes, by copy-on-write\n"
                "`layer stack CONTAINER` shows them with the real overlay mount options", style="dim")
    return Panel(body, title=Text("+ per container", style="dim"), title_align="left", box=box.ROUNDED,
                 border_style="dim", padding=(0, 1))


def save_svg(renderable: RenderableType, path: str, title: str, width: int = WIDTH) -> None:
    """The same picture as an SVG for slides (rich's own terminal-look export)."""
    console = Console(record=True, width=width, file=io.StringIO(), force_terminal=True,
                      color_system="truecolor", highlight=False, markup=False)
    console.print(renderable)
    console.save_svg(path, title=title)


# -- layer diff ------------------------------------------------------------------------------


def change_lines(found: list[Change], colour: bool) -> list[str]:
    """docker diff's lines: 'A /new.txt'; coloured only for a terminal."""
    if not colour:
        return [f"{c.kind} {c.path}" for c in found]
    return [f"{CHANGE_COLOUR.get(c.kind, '')}{c.kind}\x1b[0m {c.path}" for c in found]


# -- layer whereis ---------------------------------------------------------------------------

LOWER_LABEL = {COPIED_UP: "original:", REPLACED: "hidden:  ", DELETED: "hidden:  ", HIDDEN: "hidden:  ", MERGED_DIR: "below:   ",
               OPAQUE_DIR: "hidden:  ", THROUGH_SYMLINK: "below:   "}


def whereis_view(w: Whereis) -> RenderableType:
    parts: list[RenderableType] = [_verdict(w)]
    if w.mount is not None and w.mount.fstype == "bind":
        parts.append(Text.assemble(("  on disk:  ", "bold"), w.mount.source))
    elif w.mount is not None and _user_mount(w.mount.fstype):
        sub = w.path[len(w.mount.dest):]
        parts.append(Text.assemble(("  on disk:  ", "bold"), w.mount.source + sub))
    elif w.probe is not None and w.probe.host_path:
        parts.append(Text.assemble(("  on disk:  ", "bold"), w.probe.host_path, (f"  ({_what(w.probe)})", "dim")))
    if w.lower is not None and w.lower_probe is not None and w.lower_probe.host_path:
        parts.append(Text.assemble((f"  {LOWER_LABEL.get(w.verdict, 'below:   ')} ", "bold"), w.lower_probe.host_path,
                                   (f"  ({w.lower.label}, {_what(w.lower_probe)})", "dim")))
    parts.append(_trail_table(w))
    return Group(*parts)


def _user_mount(fstype: str) -> bool:
    """A -v/--mount volume or host bind (engine/container/layers.py runtime_mounts names them so)."""
    return fstype.startswith("volume") or fstype == "host bind"


def _what(p: Probe) -> str:
    size = f", {human_size(p.size)}" if p.kind == "regular file" else ""
    return p.kind + (f" -> {p.target}" if p.target else "") + size


def _verdict(w: Whereis) -> Text:
    text = Text(w.path, style="bold")
    if w.mount is not None:
        m = w.mount
        if m.fstype == "bind":
            text.append(" is a runtime bind mount from the container's state dir, over the init layer's "
                        "empty placeholder:\n  no layer holds it, writes go to the state dir file, "
                        "and commit never keeps it", style="yellow")
        elif _user_mount(m.fstype):
            text.append(f" is under {m.dest}, a {m.fstype} mount from {m.source} (made in the container's "
                        "mount namespace before pivot_root):\n  no layer holds it, writes go to the "
                        f"{m.fstype.split()[0]}, and commit never keeps it", style="yellow")
        else:
            text.append(f" is inside {m.dest}: the runtime mounts a fresh {m.fstype} there, in the "
                        "container's mount namespace; no layer holds it", style="yellow")
        return text
    assert w.layer is not None
    style = "red" if w.verdict in (DELETED, HIDDEN) else STYLE[w.layer.kind]
    text.append(_sentence(w), style=style)
    return text


def _sentence(w: Whereis) -> str:
    """What the verdict means, after the path: ' was deleted: ...'."""
    assert w.layer is not None and w.probe is not None
    p, layer, lower = w.probe, _called(w.layer), _called(w.lower)
    if w.verdict == FOUND:
        return f" comes from {layer}"
    if w.verdict == COPIED_UP:
        return _copied_up(w, lower) if w.layer.kind == RW else f" comes from {layer}, which replaces the copy in {lower}"
    if w.verdict == REPLACED:
        return f" is a {p.kind} in {layer}, replacing the {w.lower_probe.kind if w.lower_probe else '?'} in {lower}"
    if w.verdict == MERGED_DIR:
        return f" is a directory in {_merged_with(w)}: overlay merges their entries into one"
    if w.verdict == OPAQUE_DIR:
        return f" is an opaque directory in {layer}: it replaced the directory of {lower}, whose entries are hidden"
    if w.verdict == DELETED:
        return f" was deleted: a whiteout (a 0:0 character device) at {p.at} in {layer} hides it in {lower}"
    if w.verdict == HIDDEN and p.state == NOTDIR:
        return f" is hidden: {p.at} is a {p.kind} in {layer}, covering the directory of {lower}"
    if w.verdict == HIDDEN:
        return f" is hidden: {p.opaque_at} is an opaque directory in {layer}, so the copy in {lower} is not seen"
    return (f" goes through a symlink: {p.at} -> {p.target} in {layer}.\n"
            "  A symlink means a path inside the container, never on the host: "
            f"try  layer whereis {w.subject} {w.suggestion}")


def _merged_with(w: Whereis) -> str:
    """Every layer whose directory shows through at this path, top first."""
    names = []
    for layer, p in w.trail[next(i for i, (lay, _) in enumerate(w.trail) if lay == w.layer):]:
        if p.state == FILE and p.kind == "directory":
            names.append(_called(layer))
            if p.opaque:
                break  # nothing below an opaque directory shows through
        elif p.state != ABSENT or p.opaque_at:
            break
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]


def _copied_up(w: Whereis, lower: str) -> str:
    if w.probe is not None and w.probe.origin:
        return (f" was copied up: the rw layer holds the container's copy; the original in {lower} is untouched\n"
                "  (overlayfs marked the copy with the xattr trusted.overlay.origin)")
    return (f" was copied up or written anew: the rw layer's copy hides the one in {lower}, which is untouched\n"
            "  (no trusted.overlay.origin mark: deleted and made again, or copied by an older kernel)")


def _called(layer: LayerRef | None) -> str:
    """'the rw layer', 'the init layer', 'image layer 2': how a sentence names it."""
    if layer is None:
        return "?"
    return layer.label if layer.kind == IMAGE else f"the {layer.label}"


def _trail_table(w: Whereis) -> Table:
    table = Table(box=None, pad_edge=False, title="overlayfs looks in the layers top first:",
                  title_justify="left", title_style="dim")
    for col in ("LAYER", "AT THIS PATH", "MADE BY", "DIRECTORY"):
        table.add_column(col, no_wrap=col in ("LAYER", "AT THIS PATH"), style="dim" if col == "DIRECTORY" else None)
    for layer, p in w.trail:
        deciding = w.layer is not None and layer == w.layer
        label = Text(layer.label, style=STYLE[layer.kind] + (" bold" if deciding else ""))
        made = {RW: "the container", INIT: "cshell"}.get(layer.kind) or w.created_by.get(layer.number, "")
        table.add_row(label, Text(_cell(p), style="bold" if deciding else ""), _cut(made, 48), str(layer.path))
    return table


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def _cell(p: Probe) -> str:
    if p.state == FILE:
        return _what(p) + (" (opaque)" if p.opaque else "")
    if p.state == WHITEOUT:
        return f"whiteout at {p.at}"
    if p.state == SYMLINK:
        return f"{p.at} is a symlink -> {p.target}"
    if p.state == NOTDIR:
        return f"{p.at} is a {p.kind}"
    if p.state == NO_LAYER:
        return "(layer not unpacked)"
    return f"— (under opaque {p.opaque_at})" if p.opaque_at else "—"
