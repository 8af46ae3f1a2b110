"""What a command handler gets: the state root, the engine, the output funnel, the script runner."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from cshell.engine import trace
from cshell.engine.state import StateRoot
from cshell.views.console import Output

if TYPE_CHECKING:
    from pathlib import Path

    from cshell.engine.container.containers import Runtime


class Scripts(Protocol):
    """What `lesson` and `history export` ask of the front end that runs scripts.

    The script and lesson runner is a front end, like the REPL (cshell/shell/): it runs
    command lines through the dispatcher and opens a prompt on `s`. Commands never
    import it; whoever makes the Context hands it in (cli.main gives
    ``cshell.shell.script.ScriptRunner()``), and these commands call it through ``ctx.scripts``.
    """

    def lessons(self, lang: str | None) -> list[tuple[str, str, int, str]]:
        """(name, title, steps, waiting for) of each shipped lesson."""

    def run(self, ctx: Context, name: str, mode: str, start: str | None, lang: str | None,
            typing: bool) -> int:
        """Replay a lesson or a .cs script; its exit status."""

    def reset(self, ctx: Context, name: str) -> list[str]:
        """Remove what an earlier run of the lesson left; what was removed."""

    def export_history(self, ctx: Context, file: str, last: str | None, everything: bool,
                       force: bool) -> tuple[int, Path]:
        """Write the REPL's history as a script: (commands written, the file)."""


class Context:
    def __init__(self, root: StateRoot, out: Output, interactive: bool = False,
                 scripts: Scripts | None = None) -> None:
        self.root = root
        self.out = out
        self.interactive = interactive  # inside the REPL (exit means leave it)
        self.scripts = scripts  # the front end's script runner (`lesson`, `history export`), if it has one
        self.wants_exit = False
        self._runtime: Runtime | None = None
        trace.set_listener(out.event)

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            from cshell.engine.container.containers import Runtime

            self._runtime = Runtime(self.root)
        return self._runtime

    @property
    def explain(self) -> bool:
        return trace.explaining

    @explain.setter
    def explain(self, on: bool) -> None:
        trace.set_explain(on)


def each_target(ctx: Context, refs: list[str], action: Callable[[str], object],
                ok_missing: bool = False) -> int:
    """docker's way with several targets (`rm a b`, `stop`, `kill`, `rmi`, `volume rm`):
    act on every one that can be acted on, one error per failure, exit 1 if any failed.
    ``ok_missing``: a target that does not exist is reported but is no failure (`rm -f`)."""
    from cshell.errors import CShellError, NotFound

    status = 0
    for ref in refs:
        try:
            action(ref)
        except CShellError as e:
            ctx.out.error(e)
            if not (ok_missing and isinstance(e, NotFound)):
                status = 1
    return status
