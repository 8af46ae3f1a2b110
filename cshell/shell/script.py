"""Scripts: `cshell --script FILE` and `lesson run NAME`.

A script is one cshell command a line, `#` comments and `!CMD` host
commands, plus the lesson directives (``help lesson``; the parser is
``scriptparse``, the runner ``lesson``). The whole script is checked before
its first line runs; then each command is echoed as if typed and run, and the
script stops at the first command that fails or the first check that does
not hold, naming the file and line. FILE is a path, or the name of a lesson
shipped with cshell (``lesson08`` or ``lesson08.cs``), from any directory.
"""

from __future__ import annotations

from cshell.commands.context import Context
from cshell.errors import CShellError
from cshell.shell.lesson import Options, default_lang


def run_script(ctx: Context, path: str, opts: Options | None = None) -> int:
    from cshell.shell.lesson import run

    try:
        return run(ctx, path, opts or Options(lang=default_lang()))
    except CShellError as e:
        ctx.out.error(e)
        return 1
