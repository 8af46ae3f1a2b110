"""What a user sees, normalised so docker's and cshell's results compare equal when they match.

Ids, digests, times, durations, sizes and addresses differ between any two runs of
the same engine: they become ``<ID>``, ``<TIME>``, ``<SIZE>``, ``<IP>``. Tables are
compared cell by cell (docker pads columns with 3 spaces, cshell with 2). Errors
are compared by kind (``missing``, ``conflict``, ``flag`` ...), never by wording:
cshell's messages are its own, each with a hint.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from typing import Any

NOISE = ("WARNING: IPv4 forwarding is disabled",)  # the isolated daemon runs with --ip-forward=false
SUBS = (
    (re.compile(r"sha256:[0-9a-f]{64}"), "sha256:<ID>"),
    (re.compile(r"\b[0-9a-f]{64}\b"), "<ID>"),
    (re.compile(r"\b[0-9a-f]{12}\b"), "<ID>"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)"), "<TIME>"),
    (re.compile(r"\b(Less than a second|About an? (minute|hour)|\d+ (seconds?|minutes?|hours?|days?|weeks?))\b"),
     "<DUR>"),
    (re.compile(r"\b\d+(\.\d+)?\s?([kKMG]i?)?B\b"), "<SIZE>"),
    (re.compile(r"\b\d{1,3}(\.\d{1,3}){3}(/\d+)?\b"), "<IP>"),
    (re.compile(r"\b[a-z]+_[a-z]+\b(?=\s*$)", re.M), "<NAME>"),  # a random name at a line's end (ps)
)
KINDS = (  # (kind, pattern): the first that matches stderr names the kind of error
    ("exec-not-found", r"executable file not found|exec: .*no such file"),
    ("cannot-execute", r"permission denied"),
    ("flag", r"unknown (shorthand )?flag|flag needs an argument|takes no value|needs a value"),
    ("arguments", r"requires (at least|exactly|at most)|needs at least|needs [A-Z]+\b|got an extra argument|accepts \d"),
    ("command", r"is not a docker command|unknown command"),
    ("paused", r"\bpaused\b"),  # pause twice, unpause a running one, exec/start/rm of a paused one
    ("no-port", r"no public port"),
    ("not-running", r"is not running"),
    ("predefined", r"pre-defined network"),
    ("not-connected", r"is not connected to network"),
    ("missing", r"no such|unable to find|not found|does not exist|unknown network"),
    ("conflict", r"already in use|conflict|is running|cannot remove a running|in use|used by|must force|stop it first|already exists|active endpoints"),
    ("invalid", r"invalid|not a valid|bad |minimum|failed to parse"),
    ("build", r"returned a non-zero code|step \d+/\d+"),
)


@dataclass(frozen=True)
class Seen:
    """One engine's result as a user compares it."""

    status: int
    stdout: str
    error: str  # the kind of error on stderr, "" when none


def normalise(text: str) -> str:
    for pattern, repl in SUBS:
        text = pattern.sub(repl, text)
    return text


def table(text: str) -> str:
    """Cells split on runs of 2+ spaces, joined by ' | ': padding no longer matters."""
    return "\n".join(" | ".join(re.split(r"\s{2,}", line.strip())) for line in text.splitlines() if line.strip())


def shape(value: Any, path: str = "") -> list[str]:
    """inspect's JSON as 'path: type' lines, in the order of its keys."""
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return [f"{path}: list"] + shape(value[0], path + "[0]")
    if isinstance(value, dict):
        lines = [f"{path}: dict"] if path else []
        for key, item in value.items():
            lines += shape(item, f"{path}.{key}")
        return lines
    kind = "null" if value is None else type(value).__name__
    return [f"{path}: {kind}"]


def error_kind(stderr: str) -> str:
    text = "\n".join(line for line in stderr.splitlines()
                     if line.strip() and not line.startswith(NOISE) and not line.startswith("hint: ")
                     and not line.lstrip().startswith("…"))  # cshell's progress notes (unpacking a layer)
    if not text:
        return ""
    for kind, pattern in KINDS:
        if re.search(pattern, text, re.I):
            return kind
    return "other: " + text.splitlines()[0][:80]


def seen(proc: subprocess.CompletedProcess, view: str, engine: str) -> Seen:
    """``view``: text (normalised stdout), lines (its lines in sorted order), table (cells), shape (inspect's keys and types),
    status (the exit status and the kind of error only), exit (the exit status only: docker
    exec prints its runtime's errors on stdout)."""
    out = proc.stdout
    if view == "table":
        out = table(normalise(out))
    elif view == "shape":
        try:
            out = "\n".join(shape(json.loads(out)))
        except json.JSONDecodeError:
            out = f"(not JSON from {engine}) {out[:200]}"
    elif view == "lines":  # a set of lines: docker diff's order comes from a Go map, a new one each run
        out = "\n".join(sorted(normalise(out).splitlines()))
    elif view in ("status", "exit"):
        out = ""
    else:
        out = normalise(out)
    return Seen(proc.returncode, out, "" if view == "exit" else error_kind(proc.stderr))
