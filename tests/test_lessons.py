"""Lessons: the .cs format, the runner's modes, the shipped lessons replayed against golden transcripts.

Unit tests (no root): parsing and checking scripts, variables, requires,
capture of fds 1 and 2, history export. Kernel tests (root): every shipped
lesson replayed with --fast in both languages, diffed against
tests/golden/NAME.LANG.txt after normalising what changes from run to run
(ids, PIDs, inodes, addresses, times). Regenerate the goldens after an
intended change with: CSHELL_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_lessons.py
"""

from __future__ import annotations

import difflib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, cshell_argv, cshell_env, run_cshell, wait_for

import cshell.commands  # noqa: F401 - registers the commands
from cshell.commands.registry import REGISTRY, Command, Opt
from cshell.shell import scriptparse as sp
from cshell.shell.capture import plain
from cshell.shell.lesson import default_lang
from cshell.shell.lessontrack import SHIPPED, resolve, shipped

GOLDEN = Path(__file__).parent / "golden"
LESSONS = [p.stem for p in shipped() if sp.parse_file(p).is_lesson]
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="makes real containers: needs root")


def parse(tmp_path: Path, text: str, name: str = "t.cs") -> sp.Script:
    path = tmp_path / name
    path.write_text(text)
    return sp.parse_file(path)


def broken(tmp_path: Path, text: str) -> str:
    with pytest.raises(sp.ScriptError) as err:
        parse(tmp_path, text)
    return err.value.message


# -- the format ---------------------------------------------------------------------------------


def test_parse_steps_says_and_directives(tmp_path: Path) -> None:
    script = parse(tmp_path, """\
title en: A test
title zh: 测试
say en: preamble
step "Build it" / "构建"
say:
  en: First line
      second line.

      A paragraph.
  zh: 第一行
      第二行。
run --rm busybox echo hi
expect hi
expect-not /bye$/i
set PID = inspect --format '{{.State.Pid}}' web
capture N = /(\\d+)/
wait-for /ready/ --timeout 3 -- !echo ready
pause 2
step "Two"
say en: one
say zh: 一
!echo done
expect-status 0
cleanup
!echo bye
""")
    assert script.is_lesson and script.title("zh") == "测试" and script.title("en") == "A test"
    assert [s.title("zh") for s in script.steps[1:]] == ["构建", "Two"]
    say = script.steps[1].items[0]
    assert isinstance(say, sp.Say)
    assert say.texts["en"] == "First line\nsecond line.\n\nA paragraph."
    assert say.texts["zh"] == "第一行\n第二行。"
    kinds = [type(it).__name__ for it in script.steps[1].items]
    assert kinds == ["Say", "Cmd", "Expect", "Expect", "SetVar", "Capture", "WaitFor", "Pause"]
    wait = script.steps[1].items[6]
    assert isinstance(wait, sp.WaitFor) and wait.timeout == 3 and wait.cmd is not None and wait.cmd.host
    merged = script.steps[2].items[0]
    assert isinstance(merged, sp.Say) and merged.texts == {"en": "one", "zh": "一"}  # two one-liners, one say
    assert [c.text for c in script.cleanup] == ["echo bye"]


def test_plain_script_is_not_a_lesson(tmp_path: Path) -> None:
    script = parse(tmp_path, "# a comment\nps\n!ls\n")
    assert not script.is_lesson and len(script.steps) == 1 and len(script.commands()) == 2


@pytest.mark.parametrize("text, line, words", [
    ("ps\nfrobnicate --now\n", 2, "unknown command 'frobnicate'"),
    ('step "x"\nsya en: hello\n', 2, "unknown directive or command 'sya'"),
    ("ps\nps --frob\n", 2, "unknown flag --frob"),
    ('step "x"\nps\nexpect /unclosed(/\n', 3, "bad regex"),
    ('step "x"\nrun --rm busybox echo $NOPE\n', 2, "missing variable $NOPE"),
    ('step "x"\n!echo $PID\nset PID = ps -q\nps\nexpect $LATER\ncapture LATER = /x/\n', 5,
     "missing variable $LATER (it is set later, at line 6)"),
    ('step "x"\nexpect hi\n', 2, "no command before it"),
    ('step "x"\nps\npause soon\n', 3, "pause takes seconds"),
    ('step "x"\nset path = ps\n', 2, "upper case"),
    ('step "x"\nset PATH = ps\n', 2, "is taken"),
    ('step "x"\nsay en:\n', 2, "nothing to say"),
    ('step "x" "y" "z"\n', 1, "quoted title"),
    ('step "x"\nrun --rm busybox echo "open\n', 2, "cannot read the command"),
    ('cleanup\nexpect x\n', 2, "only commands"),
    ('step "x"\nps\nexpect-status maybe\n', 3, "expect-status takes"),
    ('step "x"\ncd no/such/dir\n', 2, "no such directory"),
    ('step "a"\nrequires frobnicate (issue #9)\nset X = frobnicate\nstep "b"\n!echo $X\n', 5,
     "requires frobnicate"),
])
def test_broken_scripts_fail_at_their_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    message = broken(tmp_path, text)
    assert message.startswith(f"{tmp_path / 't.cs'}:{line}: "), message
    assert words in message


def test_host_commands_keep_their_shell_variables(tmp_path: Path) -> None:
    script = parse(tmp_path, 'step "x"\n!echo $HOME $PATH\n')  # the host shell's, not ours
    assert script.commands()[0].text == "echo $HOME $PATH"


def test_requires_follows_the_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = 'step "x"\nrequires frobnicate --loud (issue #42)\nfrobnicate --loud now\n'
    script = parse(tmp_path, text)  # not declared: the guarded line is not checked
    req = script.steps[1].items[0]
    assert isinstance(req, sp.Requires) and req.issue == 42 and not sp.requirement_met(req)
    cmd = Command("frobnicate", "test", lambda ctx, args: 0, (Opt(("--loud",), "louder"),))
    monkeypatch.setitem(REGISTRY, "frobnicate", cmd)
    assert sp.requirement_met(req)
    assert broken(tmp_path, text).endswith("got an extra argument 'now'")  # declared: checked fully
    assert sp.requirement_met(sp.Requires(1, ("!sh",), None))
    assert not sp.requirement_met(sp.Requires(1, ("!no-such-program-here",), None))


def test_substitution_respects_single_quotes() -> None:
    values = {"PID": "42", "NAME": "web"}
    line = "exec $NAME sh -c 'echo $PID $HOME' ${PID}"
    assert sp.substitute(line, values, respect_quotes=True) == "exec web sh -c 'echo $PID $HOME' 42"
    assert sp.references(line, respect_quotes=True) == ["NAME", "PID"]
    assert sp.substitute("$HOME/$PID", values, keep_unknown=True) == "$HOME/42"
    with pytest.raises(KeyError):
        sp.substitute("$NOPE", values)


def test_patterns(tmp_path: Path) -> None:
    script = parse(tmp_path, 'step "x"\nps\nexpect /etc/hosts\nexpect /a.c/i\ncapture N = /(x)/\nexpect net:[$N]\n')
    literal, regex = script.steps[1].items[1].pattern, script.steps[1].items[2].pattern
    assert not literal.regex and literal.compile({}).search("see /etc/hosts")
    assert regex.regex and regex.compile({}).search("ABC")
    assert script.steps[1].items[4].pattern.compile({"N": "1+2"}).search("net:[1+2]")  # values are escaped


def test_default_language_from_the_locale() -> None:
    assert default_lang({"LANG": "zh_CN.UTF-8"}) == "zh"
    assert default_lang({"LANG": "en_US.UTF-8", "LC_ALL": "zh_TW.UTF-8"}) == "zh"
    assert default_lang({"LC_ALL": "C.UTF-8", "LANG": "zh_CN.UTF-8"}) == "en"
    assert default_lang({}) == "en"


# -- the shipped lessons ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", shipped(), ids=lambda p: p.stem)
def test_shipped_lessons_check_and_speak_both_languages(path: Path) -> None:
    script = sp.parse_file(path)
    if not script.is_lesson:
        return
    assert set(script.titles) == {"en", "zh"}
    for step in script.steps[1:]:
        assert set(step.titles) == {"en", "zh"}, f"step {step.index} needs a title in both languages"
    for step in script.steps:
        for item in step.items:
            if isinstance(item, sp.Say):
                assert set(item.texts) == {"en", "zh"}, f"{path.name}:{item.number} needs en: and zh:"


def test_lessons_are_found_by_name_from_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve("lesson08") == SHIPPED / "lesson08.cs" == resolve("lesson08.cs")
    (tmp_path / "lesson08.cs").write_text("ps\n")
    assert resolve("lesson08.cs") == Path("lesson08.cs")  # a path that exists wins
    with pytest.raises(Exception, match="no such script or lesson"):
        resolve("nope")
    assert {"lesson05", "lesson06", "lesson07", "lesson08"} <= set(LESSONS)


def test_lesson_ls_and_help(tmp_path: Path) -> None:
    listing = run_cshell(tmp_path / "root", "lesson", "ls", "--lang", "zh")
    assert listing.returncode == 0 and "lesson08" in listing.stdout and "重新认识容器" in listing.stdout
    for name, words in (("lesson06", "Cgroups"), ("lesson07", "chroot")):
        assert re.search(rf"{name}\s.*{words}", listing.stdout), listing.stdout
    helped = run_cshell(tmp_path / "root", "help", "lesson")
    assert helped.returncode == 0 and "requires COMMAND" in helped.stdout and "wait-for" in helped.stdout


# -- capture ----------------------------------------------------------------------------------------


def test_tee_captures_python_and_child_processes() -> None:
    code = """
import subprocess, sys
from cshell.shell.capture import FdTee
t = FdTee(); t.start()
m = t.mark()
print("from python")
subprocess.call("echo from-child; echo to-stderr >&2", shell=True)
got = t.since(m)
t.set_echo(False)
m = t.mark()
subprocess.call("echo hidden", shell=True)
hidden = t.since(m)
t.set_echo(True)
t.stop()
print(repr(got), repr(hidden))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, cwd=REPO)
    out = result.stdout
    assert out.startswith("from python\nfrom-child\n")
    assert "'from python\\nfrom-child\\nto-stderr\\n' 'hidden\\n'" in out
    assert "hidden\n" not in out.split("'")[0]  # captured, not shown
    assert result.stderr == "to-stderr\n"  # a separate stderr stays separate


def test_plain_strips_colours_and_redraws() -> None:
    assert plain("\x1b[1;32mok\x1b[0m\n50%\r100%\n") == "ok\n100%\n"


# -- history export -----------------------------------------------------------------------------------


def test_history_export(tmp_path: Path) -> None:
    history = tmp_path / "history"
    history.write_text("\n# 2026-01-01 10:00:00.000001\n+run -d --name web busybox sleep 9\n"
                       "\n# 2026-01-01 10:00:01.000001\n+psx\n"
                       "\n# 2026-01-01 10:00:02.000001\n+!ls /proc\n"
                       "\n# 2026-01-01 10:00:03.000001\n+exit\n"
                       "\n# 2026-01-01 10:00:04.000001\n+history export x.cs\n"
                       "\n# 2026-01-01 10:00:05.000001\n+ns ls web\n")
    env = {**cshell_env(), "CSHELL_HISTORY": str(history)}
    argv = [*cshell_argv(), "--root", str(tmp_path / "root"), "history", "export", "rec.cs"]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=30)
    assert done.returncode == 0 and "wrote 3 commands" in done.stdout, done.stderr
    lines = [x for x in (tmp_path / "rec.cs").read_text().splitlines() if x and not x.startswith("# R")]
    assert lines[-4:] == ["run -d --name web busybox sleep 9", "# left out (unknown command 'psx'): psx",
                          "!ls /proc", "ns ls web"]
    assert len(sp.parse_file(tmp_path / "rec.cs").commands()) == 3  # a valid script
    again = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=30)
    assert again.returncode == 1 and "exists already" in again.stderr
    last = subprocess.run([*argv[:-1], "-n", "1", "-f", "rec.cs"], capture_output=True, text=True, cwd=tmp_path,
                          env=env, timeout=30)
    assert last.returncode == 0 and "wrote 1 command " in last.stdout


# -- real containers: the runner ------------------------------------------------------------------------


def lesson_proc(root: Path, *args: str, input: str | None = None, cwd: Path | str = "/",
                timeout: float = 120) -> subprocess.CompletedProcess:
    """cshell with stdout and stderr in one pipe: the order the student sees."""
    return subprocess.run([*cshell_argv(), "--root", str(root), *args], input=input, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=cshell_env(), cwd=cwd,
                          timeout=timeout, stdin=None if input is not None else subprocess.DEVNULL)


def containers_in(root: Path) -> list[str]:
    done = run_cshell(root, "ps", "-a", "-q")
    return done.stdout.split()


SMALL = """\
title en: Small
title zh: 小
step "Start" / "启动"
run -d --name small-box busybox sleep 60
set PID = inspect --format '{{.State.Pid}}' small-box
!echo "pid $PID"
expect /^pid \\d+$/
step "Check" / "检查"
run --rm busybox sh -c 'echo out; echo err >&2; exit 3'
expect-status 3
expect out
expect err
!echo "still $PID"
expect still $PID
step "Fail" / "失败"
exec small-box echo hello
expect hellp
step "Never" / "不会"
!echo never-runs
"""


@root_only
@pytest.mark.kernel
def test_failed_expectation_stops_and_cleans_up(state_root: Path, tmp_path: Path) -> None:
    (tmp_path / "small.cs").write_text(SMALL)
    done = lesson_proc(state_root, "--script", str(tmp_path / "small.cs"), "--fast", "--lang", "en")
    out = done.stdout
    assert done.returncode == 1, out
    assert "out\nerr\n" in out  # a foreground container's stdout and stderr, captured in order
    assert "expectation failed" in out and f"{tmp_path / 'small.cs'}:17: expectation failed: expect hellp" in out
    assert "~ │ hello" in out  # the closest line, marked
    assert "never-runs" not in out
    assert "cleaning up what the lesson made: container small-box" in out
    assert containers_in(state_root) == []


@root_only
@pytest.mark.kernel
def test_from_step_replays_earlier_steps_unseen(state_root: Path, tmp_path: Path) -> None:
    (tmp_path / "small.cs").write_text(SMALL.split('step "Fail"')[0])
    done = lesson_proc(state_root, "--script", str(tmp_path / "small.cs"), "--fast", "--from", "check")
    out = done.stdout
    assert done.returncode == 0, out
    assert "⏩ fast-forward Step 1/2 · Start" in out and "cshell> run -d --name small-box" not in out
    assert re.search(r"^still \d+$", out, re.M)  # $PID was set by the unseen step
    bad = lesson_proc(state_root, "--script", str(tmp_path / "small.cs"), "--fast", "--from", "nope")
    assert bad.returncode == 1 and "no step 'nope'" in bad.stdout and "1. Start; 2. Check" in bad.stdout


@root_only
@pytest.mark.kernel
def test_quit_leaves_containers_and_reset_removes_them(state_root: Path, tmp_path: Path) -> None:
    script = tmp_path / "small.cs"
    script.write_text(SMALL.split('step "Check"')[0])
    done = lesson_proc(state_root, "--script", str(script), "--step", input="q\n")
    assert done.returncode == 0, done.stdout
    assert "step 1/1" not in done.stdout or "end of the lesson" in done.stdout
    assert "lesson reset small" in done.stdout
    assert len(containers_in(state_root)) == 1
    reset = run_cshell(state_root, "lesson", "reset", str(script))
    assert reset.returncode == 0 and "removed container small-box" in reset.stdout
    assert containers_in(state_root) == []
    assert run_cshell(state_root, "lesson", "reset", str(script)).stderr.strip() == "nothing to remove"


@root_only
@pytest.mark.kernel
def test_wait_for_retries_then_times_out(state_root: Path, tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    script = tmp_path / "wait.cs"
    script.write_text(f'step "w"\n!(sleep 0.5; touch {flag}) >/dev/null 2>&1 &\n'
                      f'wait-for /yes/ --timeout 10 -- !test -e {flag} && echo yes || echo no\n'
                      f'wait-for /never/ --timeout 0.5 -- !echo no\n')
    done = lesson_proc(state_root, "--script", str(script), "--fast")
    assert done.returncode == 1
    assert re.search(r"yes\n  … matched after \d+ tries", done.stdout), done.stdout
    assert "wait-for /never/" in done.stdout and "still not there after 0.5 s" in done.stdout


@root_only
@pytest.mark.kernel
def test_script_name_works_from_any_directory(state_root: Path, tmp_path: Path) -> None:
    broken_here = tmp_path / "lesson05.cs"  # a file that exists is used as given: not the shipped one
    broken_here.write_text("psx\n")
    done = lesson_proc(state_root, "--script", "lesson05.cs", "--fast", "--from", "99", cwd=tmp_path)
    assert done.returncode == 1 and "lesson05.cs:1: unknown command 'psx'" in done.stdout
    shipped_one = lesson_proc(state_root, "--script", "lesson05", "--fast", "--from", "99", cwd=tmp_path)
    assert "no step '99' in lesson05" in shipped_one.stdout


# -- real containers: the shipped lessons against their golden transcripts --------------------------------


def normalise(text: str, root: Path) -> str:
    """What changes from run to run becomes a placeholder; the rest must match the golden."""
    text = text.replace(str(root), "<ROOT>")
    text = re.sub(r"/tmp/cshell-[\w-]+?-[a-z0-9_]{8}\b", "<LESSON_TMP>", text)
    found = dict(re.findall(r"^\s*→ \$(\w+) = (.+)$", text, re.M))
    for name, value in sorted(found.items(), key=lambda kv: -len(kv[1])):
        text = re.sub(rf"(?<![\w.]){re.escape(value.strip())}(?![\w])", f"<{name}>", text)
    rules = [
        (r"\b[0-9a-f]{64}\b", "<ID64>"), (r"\b[0-9a-f]{12}\b", "<ID>"),
        (r"(:)\[\d+\]", r"\1[<INODE>]"), (r"\(pid \d+\)", "(pid <N>)"), (r"@if\d+", "@if<N>"),
        (r"\b(?:[0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}\b", "<MAC>"), (r"\bfe80::[0-9a-f:]+(/\d+)?", "<IP6>"),
        (r"\b(?!127\.0\.0\.1\b)\d{1,3}(?:\.\d{1,3}){3}\b", "<IP>"),
        (r"(Less than a second|About a minute|About an hour|\d+ (?:second|minute|hour|day)s?)", "<DUR>"),
        (r"\b\d+(?:\.\d+)? ?s\b", "<SECS>"), (r"\b[A-Z][a-z]{2} [ \d]\d \d\d:\d\d\b", "<DATE>"),
        (r"\b(?!0B)\d+(?:\.\d+)?(?:B|kB|MB|GB)\b", "<SIZE>"), (r"\b\d+ bytes\b", "<N> bytes"),
        (r"size: \d+", "size: <N>"), (r"^\d+ \d+ \d+:\d+ ", "<MNT> "),
        (r"matched after \d+ tr(?:y|ies)", "matched after <N> tries"),
        # lesson06: what the kernel measured (the lesson's expects check the ranges)
        # (a measured number may equal a $VARIABLE's value, e.g. a PID in the guest: <PID> then)
        (r"(nr_periods|nr_throttled) \+(?:\d+|<\w+>)", r"\1 +<N>"),
        (r"CPU time used: (?:\d+|<\w+>) ms", "CPU time used: <N> ms"),
        (r"≈ (?:\d+|<\w+>)% of one CPU", "≈ <N>% of one CPU"),
        (r"^(\s*1\s+0\s+root\s+R\s+\d+\s+\d+%\s+(?:\d+\s+)?)\d+%", r"\1<N>%"),  # busybox top's %CPU
        (r"((?:memory\.(?:usage_in_bytes|max_usage_in_bytes|failcnt|current|peak|stat|swap\.current)|cpuacct\.usage"
         r"|cpu\.stat|pids\.(?:current|peak)): ).*$", r"\1<N>"),
        (r"(pids\.events: .*max )\d+", r"\1<N>"),
        (r"(memory\.events: max=)\d+", r"\1<N>"),  # v2: how often the group hit memory.max
    ]
    for pattern, repl in rules:
        text = re.sub(pattern, repl, text, flags=re.M)
    text = re.sub(r"^busybox +latest .*\n", "", text, flags=re.M)  # the base image's row: its place varies
    text = re.sub(r"^ *(<[A-Z_0-9]+>)", r"\1", text, flags=re.M)  # right-aligned numbers of any width
    lines = [re.sub(r"([─━═┄┆ ])\1+", r"\1\1", line).rstrip() for line in text.splitlines()]
    return "\n".join(lines) + "\n"


def golden_path(name: str, lang: str) -> Path:
    """The goldens were recorded on cgroup v1 (hybrid) hosts; a v2 host prints other cgroup
    files and paths, so it has goldens of its own: NAME.LANG.cgroup2.txt."""
    from cshell.engine.limits import cgroups

    return GOLDEN / (f"{name}.{lang}.cgroup2.txt" if cgroups.is_v2() else f"{name}.{lang}.txt")


@root_only
@pytest.mark.kernel
@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("name", LESSONS)
def test_lesson_replays_like_its_golden(name: str, lang: str, state_root: Path) -> None:
    assert run_cshell(state_root, "image", "bootstrap", "busybox").returncode == 0  # no first-use note
    started = time.monotonic()
    done = lesson_proc(state_root, "--script", f"{name}.cs", "--fast", "--lang", lang)
    took = time.monotonic() - started
    assert done.returncode == 0, done.stdout[-6000:]
    assert "expectation failed" not in done.stdout
    assert containers_in(state_root) == []  # it cleaned up after itself
    got = normalise(done.stdout, state_root)
    golden = golden_path(name, lang)
    if not golden.exists() and golden.name.endswith(".cgroup2.txt") and not os.environ.get("CSHELL_UPDATE_GOLDEN"):
        pytest.skip(f"{name} ({lang}) passed every expectation; no cgroup-v2 golden to diff against yet "
                    f"(record one on a v2 host with CSHELL_UPDATE_GOLDEN=1)")
    if os.environ.get("CSHELL_UPDATE_GOLDEN") or not golden.exists():
        GOLDEN.mkdir(exist_ok=True)
        new = not golden.exists()
        golden.write_text(got)
        if new and not os.environ.get("CSHELL_UPDATE_GOLDEN"):
            pytest.fail(f"wrote a new golden transcript {golden}: read it, then keep it", pytrace=False)
    want = golden.read_text()
    if got != want:
        diff = "".join(difflib.unified_diff(want.splitlines(True), got.splitlines(True), str(golden), "this replay"))
        pytest.fail(f"{name} ({lang}) drifted from its golden transcript; if the change is intended, "
                    f"regenerate with CSHELL_UPDATE_GOLDEN=1:\n{diff[:8000]}", pytrace=False)
    assert took < float(os.environ.get("CSHELL_LESSON_SECONDS", 30)), f"{name} took {took:.1f} s"


def mounts_under(prefix: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(prefix)]


@root_only
@pytest.mark.kernel
def test_lesson07_reset_unmounts_its_overlay(state_root: Path) -> None:
    """Quit lesson07 with its overlay mounted on the host: `lesson reset` unmounts it and removes the rest."""
    assert run_cshell(state_root, "image", "bootstrap", "busybox").returncode == 0
    script = sp.parse_file(resolve("lesson07"))
    union = next(s.index for s in script.steps if "union mount" in s.title("en").lower())
    done = lesson_proc(state_root, "--script", "lesson07", "--step", "--lang", "en", input="\n" * union + "q")
    assert done.returncode == 0, done.stdout[-3000:]
    assert "lesson reset lesson07" in done.stdout
    tmp = re.search(r"(/tmp/cshell-lesson07-\w+)/merged", done.stdout).group(1)
    assert mounts_under(tmp + "/") == [tmp + "/merged"]  # left for exploration
    assert len(containers_in(state_root)) == 2
    reset = run_cshell(state_root, "lesson", "reset", "lesson07")
    assert reset.returncode == 0 and "removed container layered" in reset.stdout, reset.stdout + reset.stderr
    assert mounts_under(tmp + "/") == [] and not Path(tmp).exists()
    assert containers_in(state_root) == []
    images = run_cshell(state_root, "images").stdout
    assert "lesson07" not in images


@root_only
@pytest.mark.kernel
def test_demo_script_still_runs(state_root: Path) -> None:
    done = lesson_proc(state_root, "--script", "demo.cs", "--fast")
    assert done.returncode == 0, done.stdout[-3000:]
    assert "hello from" in done.stdout and containers_in(state_root) == []


# -- --step through a terminal ------------------------------------------------------------------------------


STEPPED = """\
title en: Stepping
title zh: 逐步
step "Start" / "启动"
run -d --name stepper busybox sleep 60
set WORD = !echo one
step "End" / "结束"
!echo "two-$WORD"
expect two-one
"""


@root_only
@pytest.mark.kernel
def test_step_mode_through_a_pty(state_root: Path, tmp_path: Path) -> None:
    pexpect = pytest.importorskip("pexpect")
    script = tmp_path / "stepped.cs"
    script.write_text(STEPPED)
    env = {**cshell_env(), "CSHELL_HISTORY": str(tmp_path / "history"), "PROMPT_TOOLKIT_NO_CPR": "1",
           "TERM": "xterm"}
    argv = cshell_argv()
    child = pexpect.spawn(argv[0], [*argv[1:], "--root", str(state_root), "--script", str(script), "--step",
                                    "--lang", "en"], env=env, dimensions=(40, 160), encoding="utf-8", timeout=30)
    try:
        child.expect("step 1/2 done")
        first = containers_in(state_root)
        assert len(first) == 1
        child.send("b")  # again: what step 1 made is removed, then it runs once more
        child.expect("removed container stepper")
        child.expect("step 1/2 done")
        again = containers_in(state_root)
        assert len(again) == 1 and again != first
        child.send("s")  # a shell at this point of the lesson
        child.expect("Ctrl-D goes back")
        child.expect("cshell> ")
        child.sendline("ps")
        child.expect("stepper")
        child.expect("cshell> ")
        child.sendeof()
        child.expect("back in the lesson")
        child.expect("step 1/2 done")
        child.send("\r")
        child.expect("two-one")
        child.expect("end of the lesson")
        child.send("\r")
        child.expect("cleaning up what the lesson made: container stepper")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    assert wait_for(lambda: containers_in(state_root) == [], timeout=5)


# -- pacing: reading speed, typing, and the keys of --step (no containers) -------------------------------------


def run_in_process(tmp_path: Path, text: str, opts, keys=None):  # noqa: ANN001, ANN201 - Options, key list
    from cshell.commands.context import Context
    from cshell.engine import trace
    from cshell.engine.state import StateRoot
    from cshell.shell.lesson import LessonRunner
    from cshell.views.console import Output

    script = parse(tmp_path, text)
    sleeps: list[float] = []
    pressed = iter(keys or [])
    ctx = Context(StateRoot(tmp_path / "root"), Output())
    try:
        status = LessonRunner(ctx, script, opts, keys=lambda: next(pressed), sleep=sleeps.append).run()
    finally:
        trace.set_listener(None)
    return status, sleeps


PACED = f"""\
title en: Paced
step "A"
say en: {"x" * 200}
!echo hi
pause 3
step "B"
say en: short
"""


def test_reading_speed_typing_and_fast(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from cshell.shell.lesson import Options

    status, sleeps = run_in_process(tmp_path, PACED, Options(mode="read", lang="en", typing=True))
    assert status == 0
    assert sleeps == [10.0, *[0.035] * len("echo hi"), 1.0, 3.0, 1.5]  # say, typing, command, pause, say
    out = capfd.readouterr().out
    assert "host$ echo hi\nhi\n" in out and "✔ lesson finished: 2 steps" in out
    status, sleeps = run_in_process(tmp_path, PACED, Options(mode="fast", lang="en", typing=True))
    assert status == 0 and sleeps == []


def test_step_keys_again_and_quit(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from cshell.shell.lesson import Options

    keys = ["\n", "b", "\n", "?", "\n", "q"]  # pause, again, pause, an unknown key, next, quit
    status, sleeps = run_in_process(tmp_path, PACED, Options(mode="step", lang="zh"), keys)
    out = capfd.readouterr().out
    assert status == 0 and sleeps == []  # no reading pauses between keys
    assert out.count("第 1/2 步 · A") == 2 and out.count("第 1/2 步完成") == 3
    assert "课程结束" in out and "课程完成" not in out  # quit at the end: no summary, nothing removed
