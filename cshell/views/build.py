"""`build`'s output, as docker's classic builder prints it.

    Step 3/7 : ADD . /app
     ---> Using cache
     ---> 5d1c4a7e9b2f
    Step 4/7 : RUN echo hello
     ---> Running in 0f3a9c2b7d1e
    hello
    Removing intermediate container 0f3a9c2b7d1e
     ---> 8e2b6f0a4c3d
    Successfully built 8e2b6f0a4c3d
    Successfully tagged helloworld:latest

Plain lines (no rich): a build streams, and the one-shot CLI stays fast.
"""

from __future__ import annotations

from cshell.engine.build.build import (
    BuildResult,
    BuildWarning,
    Event,
    RemovedContainer,
    RunningIn,
    StageSkipped,
    StepImage,
    StepOutput,
    StepStarted,
    TriggersStarted,
    UsingCache,
)
from cshell.views.console import CYAN, DIM, RESET, Output


class BuildView:
    """Receives the engine's events (a callable) and prints each as docker does."""

    def __init__(self, out: Output, quiet: bool = False) -> None:
        self.out, self.quiet = out, quiet
        self._line_open = False  # RUN output that did not end with a newline yet

    def _paint(self, code: str, text: str) -> str:
        return f"{code}{text}{RESET}" if self.out.color else text

    def __call__(self, event: Event) -> None:
        if isinstance(event, BuildWarning):
            self._close_output()
            self.out.note(f"[warning] {event.text}")
            return
        if self.quiet:
            return
        if isinstance(event, StepOutput):
            self.out.raw(event.data)
            self._line_open = not event.data.endswith(b"\n")
            return
        self._close_output()
        if isinstance(event, StepStarted):
            self.out.text(self._paint(CYAN, f"Step {event.index}/{event.total} : {event.text}"))
        elif isinstance(event, StageSkipped):
            self.out.text(self._paint(DIM, f"Skipping stage {event.stage}: the target stage {event.target} does not need it"))
        elif isinstance(event, TriggersStarted):
            self.out.text(f"# Executing {event.count} build trigger{'s' if event.count != 1 else ''}")
        elif isinstance(event, UsingCache):
            self.out.text(" ---> Using cache")
        elif isinstance(event, RunningIn):
            self.out.text(self._paint(DIM, f" ---> Running in {event.container[:12]}"))
        elif isinstance(event, RemovedContainer):
            self.out.text(self._paint(DIM, f"Removing intermediate container {event.container[:12]}"))
        elif isinstance(event, StepImage):
            self.out.text(f" ---> {event.image.short_id}" if event.image else " ---> (scratch: no layers yet)")

    def _close_output(self) -> None:
        if self._line_open:
            self.out.text("")
            self._line_open = False

    def finished(self, result: BuildResult) -> None:
        if self.quiet:
            self.out.text(result.image.id)
            return
        self.out.text(f"Successfully built {result.image.short_id}")
        for tag in result.tags:
            self.out.text(f"Successfully tagged {tag}")
        cached = f", {result.cached} from the cache" if result.cached else ""
        self.out.note(f"{result.steps} steps{cached} in {result.seconds:.2f}s")
