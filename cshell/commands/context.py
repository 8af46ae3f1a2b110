"""What a command handler gets: the state root, the engine, the output funnel."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cshell.engine import trace
from cshell.engine.state import StateRoot
from cshell.views.console import Output

if TYPE_CHECKING:
    from cshell.engine.container.containers import Runtime


class Context:
    def __init__(self, root: StateRoot, out: Output, interactive: bool = False) -> None:
        self.root = root
        self.out = out
        self.interactive = interactive  # inside the REPL (exit means leave it)
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
