"""The lesson runner: steps, narration, checks, variables, and the modes a class needs.

A script is parsed and checked whole first (``scriptparse``). Then each
command runs through ``dispatch.run_line``, the same path as the REPL, while
``capture.FdTee`` records what appears on fds 1 and 2 — cshell's own output
and that of containers and host commands alike — so ``expect``, ``set`` and
``capture`` see exactly what the student saw.

Modes: reading speed (pauses sized to the narration), ``--step`` (a key
between steps: Enter, b, s, q), ``--fast`` (no waiting: CI), ``--from STEP``
(earlier steps replayed quietly, so their containers and variables exist),
``--typing`` (commands appear as if typed).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cshell.commands.context import Context
from cshell.commands.dispatch import run_line
from cshell.errors import CShellError, UsageError
from cshell.record import record
from cshell.shell import scriptparse as sp
from cshell.shell.capture import FdTee, TtyLike, plain
from cshell.shell.lessontrack import Tracker
from cshell.views.console import Output

if TYPE_CHECKING:
    from cshell.shell.parity import Twin

QUIT = -1  # `q` in --step mode: leave, keep the containers
WAIT_INTERVAL = 0.2
MODES = ("read", "step", "fast")


@record
class Options:
    mode: str = "read"
    start: str | None = None  # --from: a step number or words of its title
    lang: str = "en"
    typing: bool = False
    parity: str | None = None  # --parity docker: each container command through Docker too


def default_lang(env: dict[str, str] | None = None) -> str:
    """zh when the locale says Chinese (LC_ALL, then LC_MESSAGES, then LANG), else en."""
    env = os.environ if env is None else env
    for key in ("LC_ALL", "LC_MESSAGES", "LANG"):
        if env.get(key):
            return "zh" if env[key].lower().startswith("zh") else "en"
    return "en"


class StepFailed(Exception):
    def __init__(self, error: CShellError, view: Any = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.view = view


class Pacer:
    """How long to let people read: nothing with --fast or between --step keys."""

    def __init__(self, opts: Options, sleep: Callable[[float], None] = time.sleep) -> None:
        self.opts = opts
        self.sleep = sleep

    def after_say(self, text: str) -> None:
        if self.opts.mode == "read":
            per_second = 8 if self.opts.lang == "zh" else 20
            self.sleep(min(max(len(text) / per_second, 1.5), 12.0))

    def after_command(self) -> None:
        if self.opts.mode == "read":
            self.sleep(1.0)

    def typing_delay(self) -> float:
        return 0.035 if self.opts.typing and self.opts.mode != "fast" else 0.0


def read_key() -> str:
    """One key from the terminal (no Enter needed), or the first letter of a line from a pipe."""
    if not os.isatty(0):
        line = sys.stdin.readline()
        return line[:1] if line else "\n"
    import termios
    import tty

    saved = termios.tcgetattr(0)
    try:
        tty.setcbreak(0)
        return os.read(0, 1).decode(errors="replace")
    finally:
        termios.tcsetattr(0, termios.TCSADRAIN, saved)


class LessonRunner:
    def __init__(self, ctx: Context, script: sp.Script, opts: Options, *,
                 keys: Callable[[], str] = read_key, sleep: Callable[[float], None] = time.sleep) -> None:
        self.ctx = ctx
        self.script = script
        self.opts = opts
        self.lang = opts.lang
        self.keys = keys
        self.sleep = sleep
        self.pacer = Pacer(opts, sleep)
        self.tee = FdTee()
        self.tracker = Tracker(ctx, script.name)
        self.values: dict[str, str] = {"LESSON_DIR": str(script.path.parent.resolve()), "LESSON_LANG": self.lang}
        self.met = {r.label: sp.requirement_met(r) for s in script.steps for r in s.items
                    if isinstance(r, sp.Requires)}
        self.waiting: list[str] = []
        self.timings: list[dict[str, object]] = []
        self.last_output = ""
        self.last_cmd: sp.Cmd | None = None
        self.step = 0
        self.quiet = False
        self.twin: Twin | None = None

    # -- the whole run ----------------------------------------------------------------------------

    def run(self) -> int:
        start = self._start_index()
        if self.opts.parity:
            from cshell.shell.parity import Twin

            self.twin = Twin.open(self.ctx, self.opts.parity)  # before anything runs: Docker must answer
        saved_out, cwd, env = self.ctx.out, os.getcwd(), dict(os.environ)
        self.tee.start()
        self._use_output(self._lesson_output())
        status = 1
        try:
            self._prepare()
            status = self._run_steps(start)
        except StepFailed as e:
            self._show_failure(e)
        except KeyboardInterrupt:
            self.tee.set_echo(True)
            self.ctx.out.note("interrupted")
            status = 130
        finally:
            try:
                self._finish(status)
                self._close_twin()
            finally:
                self._use_output(saved_out)
                os.chdir(cwd)
                os.environ.clear()
                os.environ.update(env)
                self.tee.stop()
                self._write_timings()
        return 0 if status == QUIT else status

    def _lesson_output(self) -> Output:
        if self.tee.original_isatty(1) and "COLUMNS" not in os.environ:
            with contextlib.suppress(OSError):
                os.environ["COLUMNS"] = str(os.get_terminal_size(self.tee.original_fd(1)).columns)
        return Output(TtyLike(sys.stdout, self.tee.original_isatty(1)), TtyLike(sys.stderr, self.tee.original_isatty(2)))

    def _use_output(self, out: Output) -> None:
        from cshell.engine import trace

        self.ctx.out = out
        trace.set_listener(out.event)

    def _prepare(self) -> None:
        if not self.script.is_lesson:
            self.values["LESSON_TMP"] = self.tracker.make_tmp(self.script.name)
            return
        from cshell.views import lesson as view

        self.ctx.out.print(view.lesson_header(self.script.title(self.lang), self.script.name,
                                              view.subtitle(self.lang, len(self.script.steps) - 1, self.opts.mode)))
        self._remove_leftovers()
        self.values["LESSON_TMP"] = self.tracker.make_tmp(self.script.name)
        self.tracker.save()

    def _remove_leftovers(self) -> None:
        old = Tracker.load(self.ctx, self.script.name)
        if old is None:
            return
        from cshell.views import lesson as view

        self.ctx.out.note(view.word(self.lang, "leftovers", name=self.script.name))
        self._run_cleanup_section(old.tmp)
        for what in old.remove():
            self.ctx.out.note(f"  removed {what}")

    def _start_index(self) -> int:
        if self.opts.start is None:
            return 1
        wanted = self.opts.start.strip()
        steps = self.script.steps[1:]
        if wanted.isdigit() and 1 <= int(wanted) <= len(steps):
            return int(wanted)
        for step in steps:
            if any(wanted.lower() in t.lower() for t in step.titles.values()):
                return step.index
        listing = "; ".join(f"{s.index}. {s.title(self.lang)}" for s in steps)
        raise UsageError(f"no step {wanted!r} in {self.script.name}", f"give a number or words of a title: {listing}")

    def _run_steps(self, start: int) -> int:
        steps = self.script.steps
        i = 0
        while i < len(steps):
            step = steps[i]
            began = time.monotonic()
            quiet = start > 1 and i < start  # --from: what comes before runs, unseen
            self._run_step(step, quiet)
            self.timings.append({"step": step.index, "title": step.title("en"),
                                 "seconds": round(time.monotonic() - began, 3)})
            if self.ctx.wants_exit:
                return 0
            if self.opts.mode == "step" and not quiet and self._shows_prompt(step):
                answer = self._ask(step)
                if answer == "quit":
                    return QUIT
                if answer == "again":
                    self._undo(step)
                    continue
            i += 1
        if self.script.is_lesson:
            from cshell.views import lesson as view

            self.ctx.out.print(view.summary(self.lang, len(steps) - 1, self.waiting))
        return 0

    def _shows_prompt(self, step: sp.Step) -> bool:
        return step.index > 0 or any(isinstance(it, sp.Say) for it in step.items)

    def _finish(self, status: int) -> None:
        self.tee.set_echo(True)
        if not self.script.is_lesson:
            self.tracker.remove()
            return
        from cshell.views import lesson as view

        if status == QUIT:
            what = ", ".join(f"{c['name']}" for c in self.tracker.containers) or "-"
            self.ctx.out.note(view.word(self.lang, "quit", what=what, name=self.script.name))
            return
        self._run_cleanup_section(self.tracker.tmp)
        removed = self.tracker.remove()
        if removed:
            self.ctx.out.note(f"{view.word(self.lang, 'cleanup')}: {', '.join(removed)}")

    def _run_cleanup_section(self, tmp: str) -> None:
        values = {**self.values, "LESSON_TMP": tmp} if tmp else self.values
        for cmd in self.script.cleanup:
            text = sp.substitute(cmd.text, values, respect_quotes=True, keep_unknown=True)
            if cmd.host:
                subprocess.call(["/bin/sh", "-c", text], env={**os.environ, **values},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            else:
                self.tee.set_echo(False)
                run_line(self.ctx, text)
                self.tee.set_echo(True)

    def _write_timings(self) -> None:
        path = os.environ.get("CSHELL_LESSON_TIMES")
        if path:
            with contextlib.suppress(OSError), open(path, "w") as f:
                json.dump(self.timings, f, indent=1)

    # -- one step ---------------------------------------------------------------------------------

    def _run_step(self, step: sp.Step, quiet: bool) -> None:
        from cshell.views import lesson as view

        self.step, self.quiet = step.index, quiet
        self.last_output, self.last_cmd = "", None
        total = len(self.script.steps) - 1
        if step.index > 0:
            if quiet:
                self.ctx.out.text(view.fast_forward(self.lang, step.index, total, step.title(self.lang)))
            else:
                self.ctx.out.text("")
                self.ctx.out.print(view.step_header(self.lang, step.index, total, step.title(self.lang)))
        self.tee.set_echo(not quiet)
        try:
            for n, item in enumerate(step.items):
                if isinstance(item, sp.Requires) and not self.met[item.label]:
                    self._skip_rest(item, step.items[n + 1:])
                    return
                self._item(item)
        finally:
            self.tee.set_echo(True)

    def _item(self, item: sp.Item) -> None:
        if isinstance(item, sp.Cmd):
            self._command(item)
        elif isinstance(item, sp.Say):
            self._say(item)
        elif isinstance(item, sp.Expect):
            self._expect(item)
        elif isinstance(item, sp.Capture):
            self._capture(item)
        elif isinstance(item, sp.SetVar):
            self._set(item)
        elif isinstance(item, sp.WaitFor):
            self._wait_for(item)
        elif isinstance(item, sp.Pause):
            self._pause(item)
        elif isinstance(item, sp.Cd):
            os.chdir(item.path)

    def _skip_rest(self, req: sp.Requires, rest: list[sp.Item]) -> None:
        from cshell.views import lesson as view

        if req.words[0].startswith("!"):
            why = view.word(self.lang, "needs_host", prog=req.words[0][1:])
            self.waiting.append(req.words[0][1:])
        elif req.issue is not None:
            why = view.word(self.lang, "coming", n=req.issue)
            self.waiting.append(f"#{req.issue}")
        else:
            why = view.word(self.lang, "coming_later")
            self.waiting.append(req.label)
        if self.quiet:
            return
        commands = [self._shown(c) for c in _commands_in(rest)]
        self.ctx.out.print(view.skipped(f"{why} (requires {req.label})", self.lang, commands))

    def _shown(self, cmd: sp.Cmd) -> str:
        text = sp.substitute(cmd.text, self.values, respect_quotes=True, keep_unknown=True)
        return f"host$ {text}" if cmd.host else f"cshell> {text}"

    # -- directives --------------------------------------------------------------------------------

    def _say(self, item: sp.Say) -> None:
        if self.quiet:
            return
        from cshell.views import lesson as view

        text = item.text(self.lang)
        if not text:
            return
        self.ctx.out.print(view.narration(sp.substitute(text, self.values, keep_unknown=True), item.kind, self.lang))
        self.pacer.after_say(text)

    def _pause(self, item: sp.Pause) -> None:
        if self.quiet or self.opts.mode == "fast":
            return
        if self.opts.mode == "step":
            from cshell.views import lesson as view

            self._prompt(view.word(self.lang, "pause"))
            self.keys()
            return
        self.sleep(2.0 if item.seconds is None else item.seconds)

    def _command(self, cmd: sp.Cmd) -> str:
        text = self._expand(cmd)
        self._echo(text, cmd.host)
        status, output = self._execute(cmd, text, mirror=True)
        self.last_output, self.last_cmd = output, cmd
        self._check_status(cmd, text, status)
        if not self.quiet:
            self.pacer.after_command()
        return output

    def _expand(self, cmd: sp.Cmd) -> str:
        try:
            return sp.substitute(cmd.text, self.values, respect_quotes=True, keep_unknown=cmd.host)
        except KeyError as e:
            raise self._error(cmd.number, f"missing variable ${e.args[0]}: the line that sets it did not run",
                              "check the steps before this one") from None

    def _execute(self, cmd: sp.Cmd, text: str, mirror: bool = False) -> tuple[int, str]:
        mark, began = self.tee.mark(), time.monotonic()
        if cmd.host:
            status = subprocess.call(["/bin/sh", "-c", text], env={**os.environ, **self.values})
        else:
            before = self.tracker.snapshot() if self.script.is_lesson else None
            status = run_line(self.ctx, text)
            if before is not None:
                self.tracker.update(self.step, before)
        output = plain(self.tee.since(mark))
        if output and not output.endswith("\n"):
            self.ctx.out.text("")  # `curl` ends without one: the next line starts on its own
        if mirror and self.twin is not None:
            self._mirror(cmd, text, status, output, time.monotonic() - began)
        return status, output

    def _mirror(self, cmd: sp.Cmd, text: str, status: int, output: str, seconds: float) -> None:
        """--parity: the same line through Docker, and one line saying how it compared."""
        from cshell.shell.parity import Outcome
        from cshell.views import parity as view

        assert self.twin is not None
        mine = Outcome(status, output, seconds)
        unmirrored = dict(self.twin.unmirrored)
        row = (self.twin.mirror_host if cmd.host else self.twin.mirror)(self.step, text, mine)
        if self.quiet:
            return
        if row is not None:
            self.ctx.out.print(view.row_line(row, self.lang))
        for what, step in self.twin.unmirrored.items():
            if what not in unmirrored:  # said once, the first time it appears
                self.ctx.out.print(view.unmirrored_line(what, step, self.lang))

    def _close_twin(self) -> None:
        if self.twin is None:
            return
        from cshell.views import parity as view

        removed = self.twin.close()
        self.tee.set_echo(True)
        if self.twin.rows:
            self.ctx.out.print(view.summary(self.twin.rows, self.lang))
        if removed:
            self.ctx.out.note(view.word(self.lang, "removed", what=", ".join(removed)))

    def _check_status(self, cmd: sp.Cmd, text: str, status: int) -> None:
        ok = status != 0 if cmd.status == "nonzero" else status == cmd.status
        if ok:
            return
        if cmd.status == 0:
            raise self._error(cmd.number, f"`{text}` exited with status {status}",
                              "the script stops at the first command that fails")
        raise self._error(cmd.number, f"`{text}` exited with status {status}, not {cmd.status}",
                          "expect-status says how it should end")

    def _echo(self, text: str, host: bool) -> None:
        from cshell.views.lesson import command_prompt

        prefix = command_prompt(host, self.ctx.out.color)
        delay = self.pacer.typing_delay()
        if not delay or self.quiet:
            self.ctx.out.text(prefix + text)
            return
        self.ctx.out.text(prefix, end="")
        for ch in text:
            self.ctx.out.text(ch, end="")
            self.sleep(delay)
        self.ctx.out.text("")

    def _expect(self, item: sp.Expect) -> None:
        pattern = item.pattern.compile(self.values)
        lines = self.last_output.rstrip("\n").split("\n")
        if item.negate:
            marked = {i: "-" for i, line in enumerate(lines) if pattern.search(line)}
            if marked or pattern.search(self.last_output):
                self._expect_failed(item, "expect-not", "the output shows what it must not", marked)
        elif not pattern.search(self.last_output):
            from cshell.views.lesson import closest_line

            near = closest_line(sp.substitute(item.pattern.source, self.values), lines)
            self._expect_failed(item, "expect", "not found in the output" + ("; the closest line is marked ~"
                                                                            if near is not None else ""),
                                {} if near is None else {near: "~"})

    def _expect_failed(self, item: sp.Expect | sp.Capture | sp.WaitFor, word: str, message: str,
                       marked: dict[int, str]) -> None:
        from cshell.views import lesson as view

        shown = sp.substitute(item.pattern.shown(), self.values, keep_unknown=True)
        check = f"{word} {shown}"
        after = self._shown(self.last_cmd) if self.last_cmd else None
        panel = view.failure(f"{self.script.path.name}:{item.number}", check, after, self.last_output, marked, message)
        error = CShellError(f"{self.script.path}:{item.number}: expectation failed: {check}", message)
        raise StepFailed(error, panel)

    def _capture(self, item: sp.Capture) -> None:
        m = item.pattern.compile(self.values).search(self.last_output)
        if m is None:
            self._expect_failed(item, f"capture {item.name} =", "the pattern matches nothing in the output", {})
            return
        self._assign(item.name, m.group(1) if m.re.groups else m.group(0))

    def _set(self, item: sp.SetVar) -> None:
        value = self._command(item.cmd).strip()
        if not value:
            raise self._error(item.number, f"set {item.name}: the command printed nothing",
                              "the command must print the value")
        self._assign(item.name, value)

    def _assign(self, name: str, value: str) -> None:
        from cshell.views.lesson import variable

        self.values[name] = value
        if not self.quiet:
            self.ctx.out.note(variable(name, value))

    def _wait_for(self, item: sp.WaitFor) -> None:
        cmd = item.cmd or self.last_cmd
        assert cmd is not None  # the parser saw to it
        text = self._expand(cmd)
        pattern = item.pattern.compile(self.values)
        self._echo(text, cmd.host)
        began, tries = time.monotonic(), 0
        self.tee.set_echo(False)
        try:
            while True:
                tries += 1
                _, output = self._execute(cmd, text)
                if pattern.search(output) or time.monotonic() - began > item.timeout:
                    break
                self.sleep(WAIT_INTERVAL)
        finally:
            self.tee.set_echo(not self.quiet)
        self.last_output, self.last_cmd = output, cmd
        if output.strip():
            self.ctx.out.text(output.rstrip("\n"))
        if not pattern.search(output):
            self._expect_failed(item, "wait-for", f"still not there after {item.timeout:g} s ({tries} tries)", {})
        if not self.quiet:
            self.ctx.out.note(f"  … matched after {tries} tr{'y' if tries == 1 else 'ies'} "
                              f"({time.monotonic() - began:.1f} s)")

    # -- --step: the keys between steps ---------------------------------------------------------------

    def _prompt(self, text: str) -> None:
        self.ctx.out.text(_dim(text, self.ctx.out.color), end=" ")
        self.tee.sync()

    def _ask(self, step: sp.Step) -> str:
        from cshell.views import lesson as view

        total = len(self.script.steps) - 1
        if step.index == 0:
            text = view.word(self.lang, "prompt_start")
        elif step.index == total:
            text = view.word(self.lang, "prompt_end")
        else:
            text = view.word(self.lang, "prompt", i=step.index, n=total)
        while True:
            self._prompt(text)
            key = self.keys().lower()
            self.ctx.out.text("")
            if key in ("\n", "\r", " ", "n", ""):
                return "next"
            if key == "b" and step.index > 0:
                return "again"
            if key == "q":
                return "quit"
            if key == "s":
                self._shell()

    def _shell(self) -> None:
        from cshell.shell.repl import run_repl
        from cshell.views import lesson as view

        self.ctx.out.note(view.word(self.lang, "shell"))
        lesson_out, interactive = self.ctx.out, self.ctx.interactive
        with self.tee.suspended():
            self._use_output(Output())
            self.ctx.interactive = True
            try:
                run_repl(self.ctx)
            finally:
                self.ctx.wants_exit = False
                self.ctx.interactive = interactive
                self._use_output(lesson_out)
        self.ctx.out.note(view.word(self.lang, "back"))

    def _undo(self, step: sp.Step) -> None:
        removed = self.tracker.remove(step.index)
        if removed:
            self.ctx.out.note("  removed " + ", ".join(removed))

    # -- failures ---------------------------------------------------------------------------------------

    def _error(self, number: int, message: str, hint: str) -> StepFailed:
        return StepFailed(CShellError(f"{self.script.path}:{number}: {message}", hint))

    def _show_failure(self, e: StepFailed) -> None:
        self.tee.set_echo(True)
        if e.view is not None:
            self.ctx.out.print(e.view)
        self.ctx.out.error(e.error)


def _commands_in(items: list[sp.Item]) -> list[sp.Cmd]:
    found = []
    for item in items:
        if isinstance(item, sp.Cmd):
            found.append(item)
        elif isinstance(item, sp.SetVar) or (isinstance(item, sp.WaitFor) and item.cmd is not None):
            found.append(item.cmd)
    return found


def _dim(text: str, color: bool) -> str:
    return f"\x1b[2m{text}\x1b[0m" if color else text


def run(ctx: Context, name: str, opts: Options) -> int:
    """`cshell --script NAME` and `lesson run NAME`: resolve, parse and check, then run."""
    from cshell.shell.lessontrack import resolve

    if opts.mode not in MODES:
        raise UsageError(f"unknown mode {opts.mode!r}", "--step, --fast, or neither (reading speed)")
    if opts.lang not in sp.LANGS:
        raise UsageError(f"no lessons in {opts.lang!r}", "--lang zh or --lang en")
    script = sp.parse_file(resolve(name))
    return LessonRunner(ctx, script, opts).run()



def reset(ctx: Context, name: str) -> list[str]:
    """`lesson reset NAME`: what an earlier run left (its record, its cleanup section)."""
    from cshell.shell.lessontrack import resolve

    script = sp.parse_file(resolve(name))
    tracker = Tracker.load(ctx, script.name)
    if tracker is None:
        return []
    runner = LessonRunner(ctx, script, Options(mode="fast"))
    runner.values["LESSON_TMP"] = tracker.tmp
    runner._run_cleanup_section(tracker.tmp)
    return tracker.remove()
