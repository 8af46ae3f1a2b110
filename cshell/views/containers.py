"""Tables of containers, as `docker ps` shows them, with colour that means state."""

from __future__ import annotations

import shlex
import time

from rich.table import Table
from rich.text import Text

from cshell.engine.container.containers import Container
from cshell.engine.container.top import CTR_PID, Top
from cshell.engine.state import parse_time

STATUS_STYLE = {"running": "green", "paused": "cyan", "restarting": "yellow", "exited": "dim", "created": "yellow"}


def human_duration(seconds: float) -> str:
    """docker's wording: 'Less than a second', '5 seconds', '3 minutes', 'About an hour'."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second")):
        if s >= size:
            n = s // size
            if unit == "hour" and n == 1:
                return "About an hour"
            return f"{n} {unit}{'s' if n > 1 else ''}"
    return f"{s} seconds"


def status_text(c: Container) -> str:
    now = time.time()
    status = c.status
    if status in ("running", "paused"):
        up = f"Up {human_duration(now - parse_time(c.state.get('started_at', '')))}"
        return up + (" (Paused)" if status == "paused" else _health_suffix(c.health()))  # docker's
    if status == "restarting":  # docker's words while the policy waits to start it again
        finished = parse_time(c.state.get("finished_at", ""))
        return f"Restarting ({c.state.get('exit_code', 0)}) {human_duration(now - finished)} ago"
    if status == "exited":
        finished = parse_time(c.state.get("finished_at", ""))
        ago = f" {human_duration(now - finished)} ago" if finished else ""
        return f"Exited ({c.state.get('exit_code', 0)}){ago}"
    return "Created"


def _health_suffix(health: dict | None) -> str:
    """docker ps: Up 5 seconds (healthy), (unhealthy) or (health: starting)."""
    status = (health or {}).get("Status")
    if not status:
        return ""
    return " (health: starting)" if status == "starting" else f" ({status})"


def ports_text(c: Container) -> str:
    """docker ps's PORTS while the container runs: 0.0.0.0:8080->80/tcp for a published port,
    80/tcp for one the image EXPOSEs and nobody published, ordered by the container's port."""
    if not c.running:
        return ""
    shown: list[tuple[int, str, str]] = []
    for p in (c.state.get("network") or {}).get("ports", []):
        key = f"{p['ctr_port']}/{p['proto']}"
        shown.append((p["ctr_port"], key, f"{p.get('host_ip') or '0.0.0.0'}:{p['host_port']}->{key}"))
    published = {key for _, key, _ in shown}
    for key in c.config.get("exposed", []):
        port, _, _proto = key.partition("/")
        if key not in published and port.isdigit():
            shown.append((int(port), key, key))
    return ", ".join(text for _, _, text in sorted(shown))


def ps_table(containers: list[Container], no_trunc: bool = False) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"):
        table.add_column(col, no_wrap=True)
    now = time.time()
    for c in containers:
        command = shlex.join(c.config["argv"])
        if not no_trunc and len(command) > 20:
            command = command[:19] + "…"
        created = human_duration(now - parse_time(c.config["created"])) + " ago"
        table.add_row(
            c.id if no_trunc else c.short_id, c.config["image"].removesuffix(":latest"),
            f'"{command}"', created, Text(status_text(c), style=STATUS_STYLE.get(c.status, "")),
            ports_text(c), c.name,
        )
    return table


def top_table(top: Top) -> Table:
    """docker top's columns, with cshell's CTR PID (the PID inside the container) beside PID."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    for title in top.titles:
        table.add_column(title, no_wrap=title != top.titles[-1], style="cyan" if title == CTR_PID else "")
    for row in top.rows:
        table.add_row(*row)
    return table
