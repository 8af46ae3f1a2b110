"""`stats`: docker's table (its units: binary for memory, decimal for I/O) or a --format line."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from cshell.engine.limits.usage import Rates

COLUMNS = ("CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS")
FIELDS = {"Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %",
          "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O",
          "PIDs": "PIDS"}


def _size(n: float, base: float, units: tuple[str, ...], digits: int) -> str:
    """Go's units.CustomSize: %.{digits}g and the unit."""
    i = 0
    while n >= base and i < len(units) - 1:
        n /= base
        i += 1
    return f"{n:.{digits}g}{units[i]}"


def binary(n: float) -> str:  # units.BytesSize: 1.5MiB
    return _size(n, 1024.0, ("B", "KiB", "MiB", "GiB", "TiB", "PiB"), 4)


def decimal(n: float) -> str:  # units.HumanSizeWithPrecision(n, 3): 1.02kB
    return _size(n, 1000.0, ("B", "kB", "MB", "GB", "TB", "PB"), 3)


def fields(cid: str, name: str, r: Rates, container_ref: str, no_trunc: bool = False) -> dict[str, str]:
    """The row as docker's template fields (.CPUPerc, .MemUsage, ...), sorted as its `{{json .}}` prints them."""
    return dict(sorted({"Container": container_ref, "ID": cid if no_trunc else cid[:12], "Name": name,
            "CPUPerc": f"{r.cpu_percent:.2f}%", "MemUsage": f"{binary(r.memory)} / {binary(r.memory_limit)}",
            "MemPerc": f"{r.memory_percent:.2f}%", "NetIO": f"{decimal(r.net_rx)} / {decimal(r.net_tx)}",
            "BlockIO": f"{decimal(r.block_read)} / {decimal(r.block_write)}", "PIDs": str(r.pids)}.items()))


def stats_table(rows: list[dict[str, str]]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in COLUMNS:
        table.add_column(col, no_wrap=True, justify="left")
    for row in rows:
        cpu = float(row["CPUPerc"].rstrip("%"))
        table.add_row(row["ID"], row["Name"], Text(row["CPUPerc"], style="yellow" if cpu >= 50 else ""),
                      row["MemUsage"], row["MemPerc"], row["NetIO"], row["BlockIO"], row["PIDs"])
    return table
