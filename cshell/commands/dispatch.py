"""Run one line of cshell: the same path for the REPL, `-c`, one-shot and scripts."""

from __future__ import annotations

import os
import shlex

from cshell.commands.context import Context
from cshell.commands.registry import lookup, parse
from cshell.errors import CShellError, PrivilegeError, UsageError, command_status


def split_words(line: str) -> list[str]:
    try:
        return shlex.split(line, comments=True)
    except ValueError as e:
        raise UsageError(f"cannot read the line: {e}", "check the quotes") from None


def split_commands(text: str) -> list[str]:
    """`run -d busybox sleep 9; ps` -> two lines; a quoted ';' stays inside its word."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";")
    lexer.whitespace_split = True
    lexer.commenters = ""
    lines: list[list[str]] = [[]]
    try:
        for token in lexer:
            if token and set(token) == {";"}:
                lines.append([])
            else:
                lines[-1].append(token)
    except ValueError as e:
        raise UsageError(f"cannot read the commands: {e}", "check the quotes") from None
    return [shlex.join(words) for words in lines if words]


def run_host(ctx: Context, command: str) -> int:
    """`!CMD`: a command on the host, shown as such."""
    import subprocess

    ctx.out.note(f"host$ {command}")
    return subprocess.call(command, shell=True)


def run_line(ctx: Context, line: str) -> int:
    """Execute one command line; print errors; return the exit status."""
    line = line.strip()
    if not line or line.startswith("#"):
        return 0
    try:
        if line.startswith("!"):
            return run_host(ctx, line[1:].strip())
        return run_words(ctx, split_words(line))
    except CShellError as e:
        ctx.out.error(e)
        return e.status


def run_words(ctx: Context, words: list[str]) -> int:
    """Execute one command given as words (the one-shot CLI's argv)."""
    if not words:
        return 0
    name = ""
    try:
        cmd, rest = lookup(words)
        args = parse(cmd, rest)  # its errors keep their own status (docker's parser: 125 for a flag)
        name = cmd.name
        if cmd.needs_root and os.geteuid() != 0:
            raise PrivilegeError(f"`{cmd.name}` needs root: namespaces, mounts and cgroups are root's tools",
                                 "run it as root (sudo cshell …), or ask an admin to add you to the "
                                 "cshell group (scripts/provision.sh USER), which lets cshell use sudo itself")
        status = cmd.handler(ctx, args)
        return int(status or 0)
    except CShellError as e:
        ctx.out.error(e)
        return command_status(e, name)
    except KeyboardInterrupt:
        ctx.out.note("interrupted")
        return 130
    except Exception as e:  # noqa: BLE001 - a traceback reaching a user is a bug; keep it in a file
        from cshell.engine.state import NO_SPACE, no_space

        if isinstance(e, OSError) and e.errno in NO_SPACE:  # the disk, not a bug: blocks or inodes?
            ctx.out.error(no_space(ctx.root.path, e.errno))
            return 1
        path = _save_traceback()
        ctx.out.error(CShellError(f"internal error: {type(e).__name__}: {e}",
                                  f"this is a bug in cshell; the details are in {path}"))
        return 1


def _save_traceback() -> str:
    import tempfile
    import traceback

    fd, path = tempfile.mkstemp(prefix="cshell-error-", suffix=".txt")
    with os.fdopen(fd, "w") as f:
        f.write(traceback.format_exc())
    return path
