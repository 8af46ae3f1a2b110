"""Lessons: list, run and reset the shipped lessons; turn the REPL's history into a script."""

from __future__ import annotations

from types import SimpleNamespace

from cshell.commands.context import Context, Scripts
from cshell.commands.registry import FILE, Opt, Pos, command
from cshell.errors import UsageError

# The .cs format, documented once: `help lesson` shows it, cshell/shell/scriptparse.py reads it.
FORMAT = """
A script (`.cs`) is one cshell command a line. A **lesson** is a script with
`step` sections: it is checked whole before it starts, runs in steps, and
removes what it made when it ends (`lesson reset NAME` does that on demand).

| line | meaning |
|---|---|
| `COMMAND` | a cshell command, shown as if typed, e.g. `run -d --name web helloworld` |
| `!CMD` | a host command (`/bin/sh -c`), shown as `host$ CMD` |
| `# text` | a comment |
| `title en: TEXT` / `title zh: TEXT` | the lesson's title (`lesson ls`) |
| `step "TITLE" / "标题"` | a named section; `--from` takes its number or words of its title |
| `say en: TEXT` / `say zh: TEXT` | narration in markdown; `say TEXT` is the same in every language |
| `reality en: …` / `reality zh: …` | "on your machine today": where the 2018 article no longer holds |
| `pause [SECONDS]` | a stop for the audience (Enter in `--step` mode; nothing with `--fast`) |
| `expect TEXT`, `expect /REGEX/i` | the previous command's output must show it, else the lesson stops |
| `expect-not TEXT`, `expect-not /REGEX/` | … must not show it |
| `expect-status N` (or `nonzero`) | the previous command must exit with N (so it may fail) |
| `set NAME = COMMAND` | run the command (cshell or `!host`); its output, trimmed, becomes `$NAME` |
| `capture NAME = /REGEX/` | `$NAME` = the first group (or the match) in the previous output |
| `wait-for /REGEX/ [--timeout S] [-- COMMAND]` | run COMMAND (default: the previous one) until its output matches |
| `requires COMMAND [FLAGS] [(issue #N)]` | the rest of the step needs that command or flag: skipped, with a note, until it exists |
| `requires !PROGRAM` | … needs that program on the host (e.g. `requires !gcc`) |
| `cd DIR` | run the next lines in DIR (relative to the script's own directory) |
| `cleanup` | what follows runs when the lesson ends, and on `lesson reset` |

**Blocks.** `say:` or `reality:` alone on a line starts a block: the indented
lines below it, with `en:` and `zh:` starting each language's part;
continuation lines are indented further. Blank lines inside a block make
paragraphs.

    say:
      en: Every instruction made an image: **ENV** and **CMD**
          changed only settings, so their layers are empty.
      zh: 每条指令都产生了一个镜像……

**Patterns.** Written between slashes, `/…/` with optional flags `i m s x`, a
pattern is a Python regex (`^` and `$` match at each line); anything else is
plain text to find, `/etc/hosts` included.

**Variables.** `$NAME` or `${NAME}` (upper case) in commands, narration and
patterns; inside single quotes a command's `$NAME` is left alone, as in the
shell. Host commands also get them as environment variables. Built in:
`$LESSON_DIR` (the script's directory), `$LESSON_TMP` (a scratch directory
removed at the end), `$LESSON_LANG` (en or zh).
"""

LESSON_OPTIONS = (
    Opt(("--step",), "wait for a key after each step: Enter next, b again, s shell, q quit"),
    Opt(("--fast",), "no pauses at all (CI); the default waits at reading speed"),
    Opt(("--from",), "start at this step (number, or words of its title); earlier steps run unseen", "STEP"),
    Opt(("--lang",), "zh or en (default: from LANG / LC_ALL)", "LANG"),
    Opt(("--typing",), "show each command as if typed"),
)

LESSON_HELP = """
Lessons replay an article step by step on real containers: each command runs,
its output is checked, and the narration explains it (in Chinese or English).
`cshell --script lesson08.cs` is the same as `lesson run lesson08`, from any
directory. A step that needs a feature cshell does not have yet is skipped
with a note saying which issue brings it; it turns on by itself once the
command or flag exists.

**Modes.** By default a lesson runs at reading speed: it pauses after each
narration as long as it takes to read it. `--step` waits for a key after each
step: **Enter** goes on, **b** runs the step again (what it made is removed
first), **s** opens a cshell prompt right there (Ctrl-D comes back), **q**
quits and leaves the containers to explore (`lesson reset NAME` removes them
later). `--fast` never waits (CI). `--from STEP` starts at a step, its number
or words of its title; the steps before it run unseen, so their containers
and variables exist. `--lang zh|en` picks the narration (default: from
LANG/LC_ALL); `--typing` shows each command as if typed, for a stage.
""" + FORMAT


def scripts(ctx: Context) -> Scripts:
    """The front end's script runner: lessons are run by the shell (cshell/shell), not by a command."""
    if ctx.scripts is None:
        raise UsageError("this front end runs no scripts", "use the cshell command: cshell lesson ..., "
                         "cshell --script FILE, or its prompt")
    return ctx.scripts


@command(
    "lesson", "the lessons shipped with cshell (`help lesson`: the .cs format)",
    example="lesson run lesson08 --step",
    group="shell",
    needs_root=False,
    details=LESSON_HELP,
)
def lesson(ctx: Context, args: SimpleNamespace) -> int:
    return lesson_ls(ctx, args)


@command(
    "lesson ls", "list the shipped lessons with their titles",
    options=(Opt(("--lang",), "zh or en (default: from the locale)", "LANG"),),
    example="lesson ls",
    group="shell",
    needs_root=False,
    details="Lessons live in the installed package (cshell/lessons/*.cs). WAITING FOR names the issues "
            "whose features some steps still wait for.",
)
def lesson_ls(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.views.lesson import lessons_table

    ctx.out.print(lessons_table(scripts(ctx).lessons(getattr(args, "lang", None))))
    return 0


@command(
    "lesson run", "replay a lesson (or any .cs script) step by step",
    options=LESSON_OPTIONS,
    positionals=(Pos("name", "a shipped lesson (lesson08) or a .cs file", complete=FILE),),
    example="lesson run lesson08 --step --lang en",
    group="shell",
    details="The same as `cshell --script NAME`. `help lesson` describes the format and the modes.",
)
def lesson_run(ctx: Context, args: SimpleNamespace) -> int:
    if args.step and args.fast:
        raise UsageError("--step and --fast do not go together", "choose one: --step (a class) or --fast (CI)")
    mode = "step" if args.step else "fast" if args.fast else "read"
    return scripts(ctx).run(ctx, args.name, mode=mode, start=args.__dict__["from"], lang=args.lang,
                            typing=args.typing)


@command(
    "lesson reset", "remove what a lesson made (containers, images, scratch files)",
    positionals=(Pos("name", "a shipped lesson (lesson08) or a .cs file", complete=FILE),),
    example="lesson reset lesson08",
    group="shell",
    details="""
A lesson removes what it made when it ends; `q` in --step mode leaves it all for
exploration, and a killed lesson leaves it too. This removes it: the containers
and image names the lesson's commands created (recorded under the state root
as they were made), its scratch directory, and whatever its `cleanup` section
stops. Base images cshell built on first use (busybox, ...) stay.""",
)
def lesson_reset(ctx: Context, args: SimpleNamespace) -> int:
    removed = scripts(ctx).reset(ctx, args.name)
    for what in removed:
        ctx.out.text(f"removed {what}")
    if not removed:
        ctx.out.note("nothing to remove")
    return 0


@command(
    "history export", "write what you typed in the shell as a script (a lesson to be)",
    options=(Opt(("-n", "--last"), "only the last N commands", "N"),
             Opt(("--all",), "everything in the history file, not only this session"),
             Opt(("-f", "--force"), "overwrite FILE if it exists")),
    positionals=(Pos("file", "the script to write, NAME.cs", complete=FILE),),
    example="history export mylesson.cs",
    group="shell",
    needs_root=False,
    details="""
Reads the shell's history file (~/.cshell_history, or $CSHELL_HISTORY). Inside
the shell it takes the commands typed since this shell started; elsewhere, or
with `--all`, the whole file. `exit`, `history export` and `lesson` commands are
left out, and a line that is not a valid command is kept only as a comment, so
the script runs as it is: `cshell --script FILE`. Add `step`, `say` and
`expect` lines to make it a lesson (`help lesson`). `history IMAGE` (without
`export`) still shows an image's layers.""",
)
def history_export(ctx: Context, args: SimpleNamespace) -> int:
    count, path = scripts(ctx).export_history(ctx, args.file, last=args.last, everything=args.all,
                                              force=args.force)
    ctx.out.text(f"wrote {count} command{'s' if count != 1 else ''} to {path}")
    return 0
