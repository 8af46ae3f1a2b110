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


def check(template: str) -> None:
    """Refuse a template Go would not parse: an action opened and never closed."""
    if "{{" in ACTION.sub("", template):
        raise UsageError(f"template: unclosed action in {template!r}", "close each action: '{{.State.Pid}}'")


def render(template: str, data: Any) -> str:
    check(template)

    def action(match: re.Match[str]) -> str:
        expr = match.group(1)
        if expr.startswith("json "):
            return go_json(_lookup(data, expr[5:].strip()))
        return _show(_lookup(data, expr))

    return ACTION.sub(action, template)


def go_json(value: Any) -> str:
    """The template's `json` as Go's json.Marshal: compact, UTF-8 as it is, <, > and & escaped."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def docker_json(data: Any) -> str:
    """`inspect`'s JSON as docker prints it (Go's encoder, SetEscapeHTML(false), 4-space
    indent): UTF-8 as it is, `<`, `>` and `&` unescaped, the keys in the order given."""
    return json.dumps(data, indent=4, ensure_ascii=False)
