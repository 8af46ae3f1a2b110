"""The interactive shell: completion, a pipe-driven round trip, and a real pty.

Kernel tests make real containers (root needed); each test removes what it
made and its state root.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

import cshell.commands  # noqa: F401 - registers the commands
from cshell.commands.context import Context
from cshell.engine import trace
from cshell.engine.container.containers import Container, RunOptions, Runtime
from cshell.engine.state import StateRoot
from cshell.shell import repl
from cshell.shell.completer import CshellCompleter, StateCache
from cshell.views.console import Output

pytestmark = pytest.mark.repl
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="makes real containers: needs root")

REPO = Path(__file__).resolve().parents[1]
CSHELL = REPO / ".venv" / "bin" / "cshell"
CSHELL_ARGV = [str(CSHELL)] if CSHELL.exists() else [sys.executable, "-m", "cshell"]
CPR_REQUEST = "\x1b[6n"  # prompt_toolkit asks where the cursor is; a terminal answers
PROMPT = repl.PROMPT


# -- fixtures ----------------------------------------------------------------------


def _clean_root(path: str) -> None:
    rt = Runtime(StateRoot(path))
    for c in rt.list(all=True):
        rt.remove(c, force=True)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A temporary directory removed after the test (pytest's tmp_path is kept around)."""
    path = Path(tempfile.mkdtemp(prefix="cshell-repl-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def state_root() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="cshell-repl-")
    try:
        yield path
    finally:
        _clean_root(path)


@pytest.fixture(scope="module")
def containers() -> Iterator[tuple[Runtime, Container, Container]]:
    """A running `web` and a stopped `done`, in a state root of their own."""
    if os.geteuid() != 0:
        pytest.skip("makes real containers: needs root")
    path = tempfile.mkdtemp(prefix="cshell-repl-")
    rt = Runtime(StateRoot(path))
    try:
        web, _ = rt.run(RunOptions(image="busybox", cmd=["sleep", "100"], detach=True, name="web"))
        done, _ = rt.run(RunOptions(image="busybox", cmd=["true"], detach=True, name="done"))
        _wait_for(lambda: not rt.get("done").running)
        yield rt, web, done
    finally:
        _clean_root(path)


@pytest.fixture
def completer(containers: tuple[Runtime, Container, Container]) -> CshellCompleter:
    rt = containers[0]
    return CshellCompleter(StateCache(rt.root, rt))


@pytest.fixture
def quiet_trace() -> Iterator[None]:
    """Context() points the global trace listener at its Output; put explain back after."""
    yield
    trace.set_explain(False)


def _wait_for(check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def complete(completer: CshellCompleter, text: str) -> list[str]:
    event = CompleteEvent(completion_requested=True)
    return [c.text for c in completer.get_completions(Document(text), event)]


# -- the completer, against real containers ---------------------------------------------


@root_only
def test_complete_command_names(completer: CshellCompleter) -> None:
    assert {"run", "rm"} <= set(complete(completer, "r"))
    assert "ns" in complete(completer, "n")
    assert complete(completer, "") and all(" " not in w for w in complete(completer, ""))


@root_only
def test_complete_two_word_commands(completer: CshellCompleter) -> None:
    assert sorted(complete(completer, "ns ")) == ["join", "ls"]
    assert complete(completer, "ns j") == ["join"]
    assert sorted(complete(completer, "help ns ")) == ["join", "ls"]  # help's topic is a COMMAND
    assert "run" in complete(completer, "help ru")


@root_only
def test_complete_flags(completer: CshellCompleter) -> None:
    flags = complete(completer, "run --")
    assert {"--rm", "--name", "--detach"} <= set(flags)
    assert all(f.startswith("--") for f in flags)
    assert "-d" in complete(completer, "run -")
    assert "--rm" not in complete(completer, "run --rm --")  # given once already
    assert complete(completer, "ns join web --") == ["--ns"]


@root_only
def test_complete_containers(completer: CshellCompleter, containers: tuple[Runtime, Container, Container]) -> None:
    _, web, done = containers
    assert complete(completer, "exec w") == ["web"]
    running_only = complete(completer, "exec ")
    assert {"web", web.short_id} <= set(running_only) and "done" not in running_only
    assert {"web", "done", done.short_id} <= set(complete(completer, "rm "))
    assert complete(completer, f"logs {done.short_id[:5]}") == [done.short_id]
    assert "web" not in complete(completer, "rm web ")  # already given
    assert complete(completer, "exec web ") == []  # the command inside the container: not ours
    assert complete(completer, "run busybox ") == []


@root_only
def test_complete_targets_and_ns_kinds(completer: CshellCompleter) -> None:
    targets = complete(completer, "ns ls ")
    assert {"host", "web"} <= set(targets) and "done" not in targets
    assert sorted(complete(completer, "ns join web --ns net,u")) == ["user", "uts"]
    assert "net" not in complete(completer, "ns join web --ns net,")
    assert complete(completer, "ns join web --ns=ut") == ["uts"]
    assert complete(completer, "ns join web --ns net -- ") == []
    assert complete(completer, "ns join --ns net -- w") == ["web"]  # `--` ends the flags only
    assert complete(completer, "rm -- --") == []


@root_only
def test_complete_images(completer: CshellCompleter) -> None:
    assert complete(completer, "run bus") == ["busybox"]
    assert complete(completer, "run -d --name x bus") == ["busybox"]
    assert complete(completer, "run --name ") == []  # a new name: nothing to offer


def test_complete_without_state_root(scratch: Path) -> None:
    """No state root yet (first start): names still complete, busybox is offered, nothing fails."""
    c = CshellCompleter(StateCache(StateRoot(scratch / "missing")))
    assert complete(c, "run bus") == ["busybox"]
    assert complete(c, "exec ") == []
    assert complete(c, "!ls ") == []


@root_only
def test_toolbar_text(containers: tuple[Runtime, Container, Container], scratch: Path,
                      quiet_trace: None) -> None:
    rt = containers[0]
    ctx = Context(rt.root, Output(io.StringIO(), io.StringIO()), interactive=True)
    assert repl.toolbar_text(ctx, StateCache(rt.root, rt)).strip() == "1 running: web  ·  explain: off"
    ctx.explain = True
    empty = StateCache(StateRoot(scratch / "missing"))
    assert repl.toolbar_text(ctx, empty).strip() == "0 running  ·  explain: on"


def test_state_cache_reads_at_most_once_per_ttl(scratch: Path) -> None:
    now = [0.0]
    cache = StateCache(StateRoot(scratch), ttl=1.0, clock=lambda: now[0])
    reads = []
    cache._read_containers = lambda: reads.append(now[0]) or []  # type: ignore[method-assign]
    for t in (0.0, 0.3, 0.9, 1.2, 1.5):
        now[0] = t
        cache.running()
    assert reads == [0.0, 1.2]
    cache.invalidate()
    cache.running()
    assert reads == [0.0, 1.2, 1.5]


# -- the REPL through prompt_toolkit's pipe input -----------------------------------------


def _pipe_repl(scratch: Path, feed: Callable[[Context, object], None],
               monkeypatch: pytest.MonkeyPatch) -> tuple[int, Context, str, str]:
    monkeypatch.setenv("CSHELL_HISTORY", str(scratch / "history"))
    out, err = io.StringIO(), io.StringIO()
    ctx = Context(StateRoot(scratch / "root"), Output(out, err), interactive=True)
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
        feed(ctx, pipe)
        status = repl.run_repl(ctx, input=pipe, output=DummyOutput())
    return status, ctx, out.getvalue(), err.getvalue()


def test_repl_round_trip(scratch: Path, monkeypatch: pytest.MonkeyPatch, quiet_trace: None) -> None:
    status, ctx, out, _ = _pipe_repl(
        scratch, lambda ctx, pipe: pipe.send_text("help\nexplain on\nexit\nexplain off\n"), monkeypatch)
    assert status == 0
    assert ctx.wants_exit and ctx.explain  # left at `exit`: the line after it never ran
    assert out.startswith("cshell ") and "Ctrl-D leaves" in out.splitlines()[0]
    assert "ns join" in out  # the help overview
    assert "explain is on" in out and "explain is off" not in out
    history = (scratch / "history").read_text()
    assert "+help" in history and "+explain on" in history and "+exit" in history


def test_repl_ctrl_c_and_ctrl_d(scratch: Path, monkeypatch: pytest.MonkeyPatch, quiet_trace: None) -> None:
    """Ctrl-C drops the line being typed; Ctrl-D leaves with status 0."""
    status, ctx, out, _ = _pipe_repl(
        scratch, lambda ctx, pipe: pipe.send_text("explain on\x03explain\n\x04"), monkeypatch)
    assert status == 0 and not ctx.wants_exit
    assert not ctx.explain  # the dropped line never ran
    assert "explain is off" in out


def test_repl_errors_do_not_end_it(scratch: Path, monkeypatch: pytest.MonkeyPatch, quiet_trace: None) -> None:
    status, _, out, err = _pipe_repl(
        scratch, lambda ctx, pipe: pipe.send_text("nosuch\nns\nexplain 'unclosed\nexplain\n\x04"),
        monkeypatch)
    assert status == 0
    assert "unknown command 'nosuch'" in err and "needs a sub-command" in err
    assert "Traceback" not in err and "explain is off" in out


def test_repl_tab_completion(scratch: Path, monkeypatch: pytest.MonkeyPatch, quiet_trace: None) -> None:
    """Type `expl`, press Tab, then ` on`: the completed command runs."""

    def feed(ctx: Context, pipe: object) -> None:
        def typist() -> None:
            for keys in ("expl", "\t", " on\n", "exit\n"):
                time.sleep(0.3)
                pipe.send_text(keys)  # type: ignore[attr-defined]
        threading.Thread(target=typist, daemon=True).start()

    status, ctx, out, _ = _pipe_repl(scratch, feed, monkeypatch)
    assert status == 0 and ctx.explain
    assert "explain is on" in out


def test_repl_session_completer(scratch: Path, quiet_trace: None) -> None:
    ctx = Context(StateRoot(scratch), Output(io.StringIO(), io.StringIO()), interactive=True)
    cache = StateCache(ctx.root)
    with create_pipe_input() as pipe:
        session = repl.make_session(ctx, cache, pipe, DummyOutput())
        assert session.completer is not None
        found = session.completer.get_completions(Document("ps -"), CompleteEvent(completion_requested=True))
        assert {"-a", "--all", "-q"} <= {c.text for c in found}


def test_output_while_prompt_is_shown_goes_above_it(scratch: Path, monkeypatch: pytest.MonkeyPatch,
                                                   quiet_trace: None) -> None:
    """A write from another thread while the prompt is up goes through the guard (run_in_terminal)."""
    guarded = []

    def feed(ctx: Context, pipe: object) -> None:
        def writer() -> None:
            time.sleep(0.5)
            guarded.append(ctx.out.guard is not None)
            ctx.out.text("hello from a thread")
            time.sleep(0.3)
            pipe.send_text("exit\n")  # type: ignore[attr-defined]
        threading.Thread(target=writer, daemon=True).start()

    status, ctx, out, _ = _pipe_repl(scratch, feed, monkeypatch)
    assert status == 0 and guarded == [True]
    assert "hello from a thread" in out
    assert ctx.out.guard is None  # only while the prompt is on screen


def test_repl_notes_when_not_root(scratch: Path, monkeypatch: pytest.MonkeyPatch, quiet_trace: None) -> None:
    monkeypatch.setattr(repl.os, "geteuid", lambda: 1000)
    status, _, _, err = _pipe_repl(scratch, lambda ctx, pipe: pipe.send_text("\x04"), monkeypatch)
    assert status == 0 and "not running as root" in err


def test_unwritable_history_falls_back_to_memory(scratch: Path, monkeypatch: pytest.MonkeyPatch,
                                                 quiet_trace: None) -> None:
    monkeypatch.setenv("CSHELL_HISTORY", str(scratch / "no" / "such" / "dir" / "history"))
    err = io.StringIO()
    ctx = Context(StateRoot(scratch), Output(io.StringIO(), err))
    assert type(repl.open_history(ctx)).__name__ == "InMemoryHistory"
    assert "history not saved" in err.getvalue()


def test_stdin_not_a_terminal_runs_lines(scratch: Path) -> None:
    result = subprocess.run([*CSHELL_ARGV, "--root", str(scratch / "root")], input="explain\nexit\nexplain on\n",
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert result.stdout.strip() == "explain is off"


# -- a real pty ------------------------------------------------------------------------


class Pty:
    """cshell on a pseudo-terminal, answering prompt_toolkit's cursor position requests."""

    def __init__(self, root: str, history: Path) -> None:
        import pexpect

        self.pexpect = pexpect
        env = dict(os.environ, CSHELL_HISTORY=str(history), TERM="xterm")
        env.pop("PROMPT_TOOLKIT_NO_CPR", None)
        self.child = pexpect.spawn(CSHELL_ARGV[0], [*CSHELL_ARGV[1:], "--root", root], env=env,
                                   dimensions=(24, 120), encoding="utf-8", timeout=15)
        self.seen = ""

    def expect(self, pattern: str, timeout: float = 15, regex: bool = False) -> str:
        """Wait for the text (answering CPRs meanwhile); return what came before it."""
        target = re.compile(pattern) if regex else re.escape(pattern)
        before = ""
        while True:
            i = self.child.expect([re.escape(CPR_REQUEST), target], timeout=timeout)
            before += self.child.before
            if i == 0:
                self.child.send("\x1b[1;1R")
                continue
            self.seen += before + self.child.after
            return before

    def prompt(self, timeout: float = 15) -> str:
        """Wait for the prompt and let it settle (it is redrawn as keys echo and CPRs are answered).

        Returns all the text that came meanwhile: the echoed line and the command's output.
        """
        before = self.expect(PROMPT, timeout)
        while True:
            try:
                before += PROMPT + self.expect(PROMPT, timeout=0.3)
            except self.pexpect.TIMEOUT:
                return before

    def drain(self) -> str:
        """Read whatever is already there (the echo of the line just sent)."""
        got = ""
        while True:
            try:
                got += self.expect(PROMPT, timeout=0.3) + PROMPT
            except self.pexpect.TIMEOUT:
                return got + self.child.before

    def run(self, line: str, timeout: float = 30) -> str:
        self.child.sendline(line)
        return self.prompt(timeout)

    def leave(self) -> int:
        self.child.sendeof()
        self.child.expect(self.pexpect.EOF, timeout=15)
        self.child.close()
        return self.child.exitstatus

    def close(self) -> None:
        if self.child.isalive():
            self.child.close(force=True)


@pytest.fixture
def pty_factory(state_root: str, scratch: Path) -> Iterator[Callable[[], Pty]]:
    pytest.importorskip("pexpect")
    made: list[Pty] = []

    def make() -> Pty:
        made.append(Pty(state_root, scratch / "history"))
        return made[-1]

    yield make
    for p in made:
        p.close()


@root_only
def test_pty_foreground_container_and_ctrl_c(state_root: str, pty_factory: Callable[[], Pty],
                                             scratch: Path) -> None:
    sh = pty_factory()
    started = time.monotonic()
    sh.prompt()
    assert time.monotonic() - started < 5
    sh.child.sendline("run --rm busybox echo hi-there")
    sh.expect(r"\nhi-there", regex=True)  # the container's output, not the echoed command line
    sh.prompt()

    rt = Runtime(StateRoot(state_root))
    sh.child.sendline("run --rm busybox sleep 30")
    _wait_for(lambda: len(rt.list(all=False)) == 1)
    sh.drain()
    sh.child.sendintr()  # SIGINT: sleep is PID 1 and ignores it
    time.sleep(0.5)
    assert len(rt.list(all=False)) == 1
    sh.child.sendintr()  # the second Ctrl-C kills it
    sh.prompt(timeout=5)

    listing = sh.run("ps -a")
    assert "CONTAINER ID" in listing and "sleep" not in listing
    _wait_for(lambda: rt.list(all=True) == [])  # --rm removed it
    assert sh.leave() == 0


@root_only
def test_pty_ctrl_c_on_prompt_and_history(state_root: str, pty_factory: Callable[[], Pty],
                                          scratch: Path) -> None:
    sh = pty_factory()
    sh.prompt()
    sh.child.send("explain on")
    sh.child.sendintr()  # drops the line
    sh.prompt()
    assert "explain is off" in sh.run("explain")  # the dropped `explain on` never ran
    assert sh.child.isalive()
    assert sh.leave() == 0
    history = (scratch / "history").read_text()
    assert "+explain\n" in history and "+explain on" not in history


@root_only
def test_detached_container_outlives_the_repl(state_root: str, pty_factory: Callable[[], Pty]) -> None:
    sh = pty_factory()
    sh.prompt()
    sh.run("run -d --name keeper busybox sleep 100")
    sh.expect("1 running: keeper")  # the toolbar, refreshed after the command
    assert sh.leave() == 0

    rt = Runtime(StateRoot(state_root))
    assert [c.name for c in rt.list(all=False)] == ["keeper"]
    result = subprocess.run([*CSHELL_ARGV, "--root", state_root, "ps"], capture_output=True, text=True,
                            timeout=30, env=dict(os.environ, COLUMNS="200"))
    assert result.returncode == 0 and "keeper" in result.stdout

    again = pty_factory()
    again.expect("1 running: keeper")  # a new shell sees it too
    assert again.leave() == 0
    rt.remove(rt.get("keeper"), force=True)
    assert rt.list(all=True) == []
