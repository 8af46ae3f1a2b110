"""The instructions that change an image's settings but no files (Docker's #(nop) steps).

CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, WORKDIR, VOLUME and STOPSIGNAL
write into the config's ``config`` object, exactly where docker puts them.
`build` uses this for its metadata steps and `commit -c` for its changes.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from typing import Any

from cshell.errors import UsageError

CONFIG_INSTRUCTIONS = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "USER", "WORKDIR", "VOLUME", "STOPSIGNAL")


def exec_form(value: str) -> list[str] | None:
    """The JSON exec form, or None for the shell form, exactly as docker decides.

    Docker (parseMaybeJSON) decodes the first JSON value: text that is not valid
    JSON is the shell form, so `CMD [python, app.py]` runs `/bin/sh -c '[python,
    app.py]'` (docker accepts it silently; the builder warns). A valid array
    with a non-string in it is an error. Like Go's json.Decoder, data after the
    array is ignored.
    """
    text = value.lstrip()
    if not text.startswith("["):
        return None
    try:
        argv, _ = json.JSONDecoder().raw_decode(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(argv, list):
        return None
    if not all(isinstance(a, str) for a in argv):
        raise UsageError("when using JSON array syntax, arrays must be comprised of strings only",
                         'quote every item: ["python", "app.py"]')
    return argv


def json_or_words(value: str) -> list[str]:
    """ADD/COPY/VOLUME: a JSON list, or words split on whitespace (quotes are not special)."""
    if value.lstrip().startswith("["):
        try:
            items = json.loads(value)
        except json.JSONDecodeError:
            items = None
        if isinstance(items, list) and all(isinstance(i, str) for i in items):
            return items
    return value.split()


def command_form(value: str) -> list[str]:
    """Exec form (a JSON array) as it is; shell form wrapped in /bin/sh -c, as docker does."""
    argv = exec_form(value)
    return argv if argv is not None else ["/bin/sh", "-c", value.strip()]


def parse_pairs(value: str, instruction: str) -> dict[str, str]:
    """``K=V K2="two words"`` (or the legacy ``K the rest``) -> {K: V}."""
    try:
        words = shlex.split(value, posix=True)
    except ValueError as e:
        raise UsageError(f"{instruction}: {e}", f"e.g. {instruction} KEY=value") from None
    if words and "=" not in words[0]:
        key, _, rest = value.strip().partition(" ")
        if not rest.strip():
            raise UsageError(f"{instruction} {key} needs a value", f"e.g. {instruction} {key}=value")
        return {key: rest.strip()}
    pairs = {}
    for word in words:
        key, eq, val = word.partition("=")
        if not eq or not key:
            raise UsageError(f"{instruction}: {word!r} is not KEY=value", f"e.g. {instruction} KEY=value")
        pairs[key] = val
    return pairs


def apply(settings: dict[str, Any], instruction: str, value: str) -> None:
    """Change ``settings`` (an image config's ``config``) as the instruction says."""
    ins = instruction.upper()
    if ins == "CMD":
        settings["Cmd"] = command_form(value)
    elif ins == "ENTRYPOINT":
        settings["Entrypoint"] = command_form(value)
        settings["Cmd"] = None  # docker: a new ENTRYPOINT drops the CMD it inherited
    elif ins == "ENV":
        env = {item.split("=", 1)[0]: item for item in settings.get("Env") or []}
        for key, val in parse_pairs(value, "ENV").items():
            env[key] = f"{key}={expand(val, settings)}"
        settings["Env"] = list(env.values())
    elif ins == "EXPOSE":
        ports = settings.setdefault("ExposedPorts", {}) or {}
        for port in value.split():
            ports[port if "/" in port else f"{port}/tcp"] = {}
        settings["ExposedPorts"] = ports
    elif ins == "LABEL":
        labels = settings.get("Labels") or {}
        labels.update(parse_pairs(value, "LABEL"))
        settings["Labels"] = labels
    elif ins == "USER":
        settings["User"] = value.strip()
    elif ins == "WORKDIR":
        base = settings.get("WorkingDir") or "/"
        settings["WorkingDir"] = posixpath.normpath(posixpath.join(base, expand(value.strip(), settings)))
    elif ins == "VOLUME":
        volumes = settings.get("Volumes") or {}
        for path in json_or_words(value):
            volumes[path] = {}
        settings["Volumes"] = volumes
    elif ins == "STOPSIGNAL":
        settings["StopSignal"] = value.strip()
    else:
        raise UsageError(f"{instruction} does not change an image's settings",
                         f"one of {', '.join(CONFIG_INSTRUCTIONS)}")


def expand(text: str, settings: dict[str, Any], extra: dict[str, str] | None = None) -> str:
    """$VAR and ${VAR} from the image's ENV (and build ARGs), as the Dockerfile does."""
    env = dict(item.split("=", 1) for item in settings.get("Env") or [] if "=" in item)
    env.update(extra or {})
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] == "$":
            out.append("$")
            i += 2
            continue
        if ch == "$" and i + 1 < len(text):
            if text[i + 1] == "{":
                end = text.find("}", i)
                if end != -1:
                    name, _, default = text[i + 2:end].partition(":-")
                    out.append(env.get(name, default))
                    i = end + 1
                    continue
            j = i + 1
            while j < len(text) and (text[j].isalnum() or text[j] == "_"):
                j += 1
            if j > i + 1:
                out.append(env.get(text[i + 1:j], ""))
                i = j
                continue
        out.append(ch)
        i += 1
    return "".join(out)


DURATION_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
DURATION_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


def duration(text: str, flag: str) -> int:
    """A Go duration (30s, 1m30s, 500ms) in nanoseconds, as docker stores it."""
    pos, total = 0, 0
    for match in DURATION_RE.finditer(text):
        if match.start() != pos:
            break
        total += int(float(match[1]) * DURATION_NS[match[2]])
        pos = match.end()
    if pos != len(text) or not text:
        raise UsageError(f"invalid value {text!r} for --{flag}: a duration like 30s, 1m30s or 500ms",
                         f"e.g. --{flag}=5s")
    return total
