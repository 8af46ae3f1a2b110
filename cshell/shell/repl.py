"""The interactive shell: a prompt_toolkit prompt around ``dispatch.run_line``.

One line at a time: prompt, run, repeat. Commands run after ``prompt()`` has
returned, so they write to the terminal normally; while the prompt is on
screen a guard on ``ctx.out`` moves any write above it (``run_in_terminal``),
which keeps rich's colours intact where ``patch_stdout`` would not.

Keys: Tab completes (from the command declarations), Up/Down and Ctrl-R search
the history (~/.cshell_history, or $CSHELL_HISTORY), Ctrl-C drops the line,
Ctrl-D leaves. A foreground container gets Ctrl-C from the engine, which
forwards SIGINT (and SIGKILL on the second press).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path

from prompt_toolkit import PromptSession
from prompt_toolkit.application import Application, get_app_or_none, run_in_terminal
from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.input import Input
from prompt_toolkit.output import Output as PtOutput
from prompt_toolkit.styles import Style

from cshell import __version__
from cshell.commands.context import Context
from cshell.commands.dispatch import run_line
from cshell.shell.completer import CshellCompleter, StateCache

PROMPT = "cshell> "  # a benchmark waits for exactly this text
WELCOME = f"cshell {__version__} — type help, or explain on to see the syscalls. Ctrl-D leaves."
NOT_ROOT = ("note: not running as root. help and explain work; commands that make containers "
            "need root: sudo cshell, or join the cshell group (scripts/provision.sh USER).")
STYLE = Style.from_dict({"prompt": "bold ansigreen", "bottom-toolbar": "noreverse bg:ansibrightblack ansiwhite"})
TOOLBAR_NAMES = 5  # names shown in the toolbar before "+N more"


def history_path() -> Path:
    return Path(os.environ.get("CSHELL_HISTORY") or Path.home() / ".cshell_history")


def open_history(ctx: Context) -> History:
    """The history file, or an in-memory one (with a note) when it cannot be written."""
    path = history_path()
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600))  # private, like bash's
    except OSError as e:
        ctx.out.note(f"history not saved: cannot write {path} ({e.strerror})")
        return InMemoryHistory()
    return FileHistory(str(path))


def toolbar_text(ctx: Context, cache: StateCache) -> str:
    """e.g. `2 running: web, db  ·  explain: off` — from the cached container list."""
    names = [c.name for c in cache.running()]
    if not names:
        running = "0 running"
    else:
        shown = ", ".join(names[:TOOLBAR_NAMES])
        more = f" +{len(names) - TOOLBAR_NAMES} more" if len(names) > TOOLBAR_NAMES else ""
        running = f"{len(names)} running: {shown}{more}"
    return f" {running}  ·  explain: {'on' if ctx.explain else 'off'} "


def make_session(ctx: Context, cache: StateCache, input: Input | None = None,
                 output: PtOutput | None = None) -> PromptSession[str]:
    def toolbar() -> StyleAndTextTuples:
        return [("class:bottom-toolbar", toolbar_text(ctx, cache))]

    return PromptSession(
        [("class:prompt", PROMPT)],
        completer=CshellCompleter(cache),
        complete_while_typing=False,  # Tab completes, as in bash
        enable_history_search=True,
        history=open_history(ctx),
        bottom_toolbar=toolbar,
        refresh_interval=1.0,
        style=STYLE,
        input=input,
        output=output,
    )


def output_guard(session: PromptSession[str]) -> Callable[[Callable[[], None]], None]:
    """Writes while the prompt is shown go above it; other writes go straight out."""

    def guard(write: Callable[[], None]) -> None:
        app = get_app_or_none() or session.app
        if not app.is_running or app.loop is None:
            write()
            return
        try:
            in_loop = asyncio.get_running_loop() is app.loop
        except RuntimeError:
            in_loop = False
        if in_loop:
            run_in_terminal(write)
        else:  # another thread: hand the write to the prompt's loop, in the app's context
            _call_in_app(app, write)

    return guard


def _call_in_app(app: Application[str], write: Callable[[], None]) -> None:
    assert app.loop is not None
    context = app.context.copy() if app.context is not None else None
    app.loop.call_soon_threadsafe(lambda: run_in_terminal(write), context=context)


def read_line(ctx: Context, session: PromptSession[str]) -> str:
    """Show the prompt, with the output guard in place only while it is on screen."""
    previous = ctx.out.guard
    ctx.out.guard = output_guard(session)
    try:
        return session.prompt()
    finally:
        ctx.out.guard = previous


def greet(ctx: Context) -> None:
    ctx.out.text(WELCOME)
    if os.geteuid() != 0:
        ctx.out.note(NOT_ROOT)


def repl_loop(ctx: Context, session: PromptSession[str], cache: StateCache) -> int:
    while not ctx.wants_exit:
        try:
            line = read_line(ctx, session)
        except KeyboardInterrupt:
            continue  # Ctrl-C drops the line being typed
        except EOFError:
            break  # Ctrl-D
        try:
            run_line(ctx, line)
        except KeyboardInterrupt:  # a Ctrl-C that landed between two steps of the dispatcher
            ctx.out.note("interrupted")
        cache.invalidate()  # the command may have started or removed containers
    return 0


def run_plain(ctx: Context) -> int:
    """stdin is not a terminal (`cshell < cmds`): run its lines, without a prompt."""
    status = 0
    for line in sys.stdin:
        status = run_line(ctx, line)
        if ctx.wants_exit:
            break
    return status


def run_repl(ctx: Context, input: Input | None = None, output: PtOutput | None = None) -> int:
    """The interactive shell; ``input``/``output`` let tests drive it through a pipe."""
    if input is None and not sys.stdin.isatty():
        return run_plain(ctx)
    cache = StateCache(ctx.root, ctx.runtime)
    greet(ctx)
    session = make_session(ctx, cache, input, output)
    return repl_loop(ctx, session, cache)
