"""Scripts: one cshell command a line, `#` comments, `!CMD` for host commands.

Each command is echoed as if typed, then run; the script stops at the first
command that fails, naming the file and line. (Lessons extend this format.)
"""

from __future__ import annotations

from pathlib import Path

from cshell.commands.context import Context
from cshell.commands.dispatch import run_line
from cshell.errors import CShellError, NotFound


def read_script(path: str) -> list[tuple[int, str]]:
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise NotFound(f"no such script: {path}", "give the path of a .cs file") from None
    except OSError as e:
        raise CShellError(f"cannot read {path}: {e.strerror}", "check the file's permissions") from None
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line and not line.startswith("#"):
            lines.append((number, line))
    return lines


def run_script(ctx: Context, path: str) -> int:
    try:
        lines = read_script(path)
    except CShellError as e:
        ctx.out.error(e)
        return 1
    for number, line in lines:
        ctx.out.text(ctx.out._paint("\x1b[1;32m", "cshell> ") + line)
        status = run_line(ctx, line)
        if ctx.wants_exit:
            return status
        if status != 0:
            ctx.out.error(CShellError(f"{path}:{number}: `{line}` exited with status {status}",
                                      "the script stops at the first command that fails"))
            return status
    return 0
