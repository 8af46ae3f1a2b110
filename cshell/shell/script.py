"""Scripts: `cshell --script FILE` and `lesson run NAME`.

A script is one cshell command a line, `#` comments and `!CMD` host
commands, plus the lesson directives (``help lesson``; the parser is
``scriptparse``, the runner ``lesson``). The whole script is checked before
its first line runs; then each command is echoed as if typed and run, and the
script stops at the first command that fails or the first check that does
not hold, naming the file and line. FILE is a path, or the name of a lesson
shipped with cshell (``lesson08`` or ``lesson08.cs``), from any directory.

``ScriptRunner`` is this front end's side of the `lesson` and `history export`
commands (``cshell.commands.context.Scripts``): cli.main hands one to the
Context, and the commands call it, never importing the shell themselves. It
imports the runner only when it is used: every one-shot command makes one.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cshell.commands.context import Context
from cshell.errors import CShellError

if TYPE_CHECKING:
    from cshell.shell.lesson import Options


def run_script(ctx: Context, path: str, opts: Options | None = None) -> int:
    from cshell.shell.lesson import Options, default_lang, run

    try:
        return run(ctx, path, opts or Options(lang=default_lang()))
    except CShellError as e:
        ctx.out.error(e)
        return 1


class ScriptRunner:
    """Lessons and history, for the commands that drive them (see ``Scripts``)."""

    def lessons(self, lang: str | None) -> list[tuple[str, str, int, str]]:
        from cshell.shell.lesson import default_lang
        from cshell.shell.lessontrack import shipped
        from cshell.shell.scriptparse import Requires, parse_file, requirement_met

        lang = lang or default_lang()
        rows = []
        for path in shipped():
            script = parse_file(path)
            if not script.is_lesson:
                continue  # a plain script (demo.cs): `cshell --script` runs it, it is no lesson
            waiting = sorted({f"#{r.issue}" if r.issue else r.label for s in script.steps for r in s.items
                              if isinstance(r, Requires) and not requirement_met(r)})
            rows.append((script.name, script.title(lang), len(script.steps) - 1, ", ".join(waiting)))
        return rows

    def run(self, ctx: Context, name: str, mode: str, start: str | None, lang: str | None,
            typing: bool) -> int:
        from cshell.shell.lesson import Options, default_lang, run

        return run(ctx, name, Options(mode=mode, start=start, lang=lang or default_lang(), typing=typing))

    def reset(self, ctx: Context, name: str) -> list[str]:
        from cshell.shell.lesson import reset

        return reset(ctx, name)

    def export_history(self, ctx: Context, file: str, last: str | None, everything: bool,
                       force: bool) -> tuple[int, Path]:
        from cshell.shell.historyexport import export

        return export(ctx, file, last=last, everything=everything, force=force)
