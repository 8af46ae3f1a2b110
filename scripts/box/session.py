"""One interactive cshell session in the students' VM, on a pty over `vagrant ssh -- -t cshell`.

What a student does first, checked by what they see: the prompt (as the `vagrant` user, who
types plain `cshell`), Tab completion, a `run`, `ns ls`, Ctrl-C during an attached `run`,
and `exit`. Run by scripts/box/smoke.sh (FULL=1) on the host, with the VM up and
VAGRANT_DOTFILE_PATH/CSHELL_BOX set; needs pexpect (the test extra of the host's .venv).
Prints each step and how long the student waited for it; exits 1 at the first wrong screen.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time

import pexpect

PROMPT = "cshell> "  # cshell.shell.repl.PROMPT
CPR_REQUEST = "\x1b[6n"  # prompt_toolkit asks where the cursor is; a terminal answers
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][AB0-2]|\r")
SLOW = 120  # seconds: the first start of cshell under TCG (Python's imports, sudo)


class Session:
    def __init__(self) -> None:
        argv = os.environ.get("CSHELL_SESSION_ARGV", "vagrant ssh -- -t cshell").split()  # another: to try it
        self.child = pexpect.spawn(argv[0], argv[1:], encoding="utf-8",
                                   dimensions=(40, 160), timeout=SLOW, env=_env())
        self.t0 = time.monotonic()

    def expect(self, pattern: str, timeout: float = SLOW) -> str:
        """Wait for PATTERN (a regex) while answering cursor position requests; return what came before."""
        before = ""
        while True:
            i = self.child.expect([re.escape(CPR_REQUEST), pattern], timeout=timeout)
            before += self.child.before
            if i == 0:
                self.child.send("\x1b[1;1R")
                continue
            return before

    def prompt(self, timeout: float = SLOW) -> str:
        """Text until the prompt, then until it stops being redrawn; without escape sequences."""
        before = self.expect(re.escape(PROMPT), timeout)
        while True:
            try:
                before += PROMPT + self.expect(re.escape(PROMPT), timeout=1)
            except pexpect.TIMEOUT:
                return ANSI.sub("", before + (self.child.before or ""))

    def tab(self, typed: str) -> None:
        """Type TYPED, then Tab, and wait until the line is redrawn and settles: the completer
        runs in the background, so keys typed before it answers would land before its text.
        (The redraw writes only what changed, so the completed word is never on the screen whole:
        the command that then runs shows that it was completed.)"""
        self.child.send(typed)
        time.sleep(0.5)
        self.child.send("\t")
        self.expect(r"\S", timeout=30)
        with contextlib.suppress(pexpect.TIMEOUT):
            while True:
                self.expect(r"\S", timeout=1)

    def step(self, what: str, keys: str, want: str, timeout: float = SLOW) -> str:
        """Type KEYS; WANT (a regex) must come on the screen, then the prompt again.

        The prompt alone says little: prompt_toolkit redraws it as the line is accepted,
        before the command's output (which under TCG can take seconds)."""
        t0 = time.monotonic()
        self.child.send(keys)
        seen = ""
        while not re.search(want, seen):
            left = timeout - (time.monotonic() - t0)
            try:
                seen += ANSI.sub("", self.expect(re.escape(PROMPT), timeout=max(left, 0.1))) + PROMPT
            except pexpect.TIMEOUT:
                fail(f"{what}: {want!r} not on the screen after {timeout} s; it showed:\n"
                     f"{(seen + ANSI.sub('', self.child.before or ''))[-2000:]}")
        seen += self._settle()
        print(f"session: {what:<36} ok ({time.monotonic() - t0:.1f} s)")
        return seen

    def _settle(self) -> str:
        """What comes until the screen has been quiet for a second (the prompt's last redraws)."""
        got = ""
        with contextlib.suppress(pexpect.TIMEOUT):
            while True:
                got += ANSI.sub("", self.expect(re.escape(PROMPT), timeout=1)) + PROMPT
        return got


def _env() -> dict[str, str]:
    return {**os.environ, "TERM": "xterm", "COLUMNS": "160", "LINES": "40"}


def fail(message: str) -> None:
    print(f"session: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def main() -> None:
    s = Session()
    try:
        first = s.prompt()
        if "not running as root" in first:
            fail("the vagrant user's cshell did not become root")
        print(f"session: {'prompt (as vagrant, through sudo)':<36} ok ({time.monotonic() - s.t0:.1f} s)")
        s.child.send("rm -f pty-keeper pty-sleeper\r")  # what an earlier, failed run left (if any)
        s.prompt()
        # Tab completes `expl` to `explain` (the line then runs as `explain on`)
        s.tab("expl")
        s.step("Tab completion: expl<Tab> on", " on\r", r"explain is on")
        s.step("run, explained", "run --rm busybox echo hello-from-the-vm\r",
               r"(?s)unshare\(.*hello-from-the-vm")
        s.step("explain off", "explain off\r", r"explain is off")
        s.step("run -d", "run -d --name pty-keeper busybox sleep 300\r", r"[0-9a-f]{64}")
        s.tab("ns l")
        s.step("ns l<Tab> pty-keeper", " pty-keeper\r", r"(?s)\bnet\b.*\bpid\b|\bpid\b.*\bnet\b")
        # Ctrl-C during an attached run: sleep is PID 1 and ignores SIGINT, a second Ctrl-C kills it
        t0 = time.monotonic()
        s.child.send("run --name pty-sleeper busybox sleep 100\r")
        time.sleep(10)  # let it start (slow under TCG)
        s.child.sendintr()
        time.sleep(2)
        s.child.sendintr()
        s.expect(re.escape(PROMPT), timeout=60)
        s._settle()
        print(f"session: {'Ctrl-C twice during an attached run':<36} ok ({time.monotonic() - t0:.1f} s)")
        s.step("ps -a: pty-sleeper exited", "ps -a\r", r"Exited \(\d+\)[^\n]*pty-sleeper", timeout=60)
        s.step("rm -f", "rm -f pty-keeper pty-sleeper\r", r"pty-keeper\s*\npty-sleeper")
        t0 = time.monotonic()
        s.child.send("exit\r")
        s.child.expect(pexpect.EOF, timeout=60)
        s.child.close()
        if s.child.exitstatus != 0:
            fail(f"exit: ssh ended with status {s.child.exitstatus}")
        print(f"session: {'exit':<36} ok ({time.monotonic() - t0:.1f} s)")
    except (pexpect.TIMEOUT, pexpect.EOF) as e:
        fail(f"{type(e).__name__}; last output:\n{ANSI.sub('', s.child.before or '')[-2000:]}")
    finally:
        if s.child.isalive():
            s.child.close(force=True)


if __name__ == "__main__":
    main()
