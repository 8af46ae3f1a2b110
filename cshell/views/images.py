"""The image list, as `docker images` shows it."""

from __future__ import annotations

from rich.table import Table

from cshell.engine.store import Image


def human_size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.3g}{unit}"
        n /= 1000
    return f"{n:.3g}TB"


def images_table(images: list[Image]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"):
        table.add_column(col, no_wrap=True)
    for image in images:
        repo, _, tag = image.ref.rpartition(":")
        table.add_row(repo, tag, image.short_id, image.created[:19].replace("T", " "), human_size(image.size))
    return table
