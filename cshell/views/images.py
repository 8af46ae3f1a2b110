"""The image list and image history, as docker shows them."""

from __future__ import annotations

import time

from rich.table import Table
from rich.text import Text

from cshell.engine.build.commit import HistoryRow
from cshell.engine.image.reference import full_name
from cshell.engine.image.store import Image
from cshell.engine.state import human_size, parse_time
from cshell.views.containers import human_duration


def ago(stamp: str) -> str:
    when = parse_time(stamp)
    return f"{human_duration(time.time() - when)} ago" if when else ""


def images_table(images: list[Image]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"):
        table.add_column(col, no_wrap=True)
    for image in images:
        for ref in sorted(image.refs, key=full_name) or ["<none>:<none>"]:
            repo, _, tag = ref.rpartition(":")
            table.add_row(repo, tag, image.short_id, ago(image.created), human_size(image.size))
    return table


def history_table(rows: list[HistoryRow], no_trunc: bool = False) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("LAYER", "CREATED", "CREATED BY", "SIZE", "COMMENT"):
        table.add_column(col, no_wrap=col != "CREATED BY")
    for row in rows:
        created_by = row.created_by if no_trunc or len(row.created_by) <= 60 else row.created_by[:59] + "…"
        layer = Text(row.layer[7:19], style="cyan") if row.layer else Text("<empty>", style="dim")
        size = Text(human_size(row.size)) if row.layer else Text("0B", style="dim")
        table.add_row(layer, ago(row.created), created_by, size, row.comment)
    return table
