"""A small subset of Go templates, enough for docker's `--format`.

Supported: ``{{.A.B}}`` paths, ``{{json .A}}``, ``{{.}}``, spaces inside the
braces, and literal text around them.
"""

from __future__ import annotations

import json
import re
from typing import Any

from cshell.errors import UsageError

ACTION = re.compile(r"{{\s*(.*?)\s*}}")


def _lookup(data: Any, path: str) -> Any:
    if path == ".":
        return data
    if not path.startswith("."):
        raise UsageError(f"cannot read {path!r} in the template", "fields start with a dot: {{.State.Pid}}")
    value = data
    for key in path[1:].split("."):
        if isinstance(value, dict) and key in value:
            value = value[key]
        else:
            raise UsageError(f"template: no field {key!r} in {path}", "`inspect` without --format shows the fields")
    return value


def _show(value: Any) -> str:
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + " ".join(_show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_show(v)}" for k, v in sorted(value.items())) + "]"
    return str(value)


def go_json(value: Any) -> str:
    """What docker's template `json` prints: Go's encoder with SetEscapeHTML(false), so no
    spaces after , and :, and UTF-8 kept as it is."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def render(template: str, data: Any) -> str:
    def action(match: re.Match[str]) -> str:
        expr = match.group(1)
        if expr.startswith("json "):
            return go_json(_lookup(data, expr[5:].strip()))
        return _show(_lookup(data, expr))

    return ACTION.sub(action, template)
