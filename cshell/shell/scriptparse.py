"""Read a .cs script into steps and directives, and check it before anything runs.

The format is documented once, in ``help lesson`` (``FORMAT`` in cshell/commands/lesson.py). Parsing
checks everything that can be checked without running: each command against
the command declarations (name, flags, arguments), each regex, each variable
(set before it is used, and in a step that runs whenever the use runs), each
``requires`` line. A broken script fails at its line, with its number.
"""

from __future__ import annotations

import re
import shlex
import shutil
import textwrap
from pathlib import Path

from cshell.errors import CShellError, UsageError
from cshell.record import factory, record

LANGS = ("en", "zh")
VAR_NAME = re.compile(r"[A-Z][A-Z0-9_]*\Z")
VAR_REF = re.compile(r"\$(?:\{([A-Z][A-Z0-9_]*)\}|([A-Z][A-Z0-9_]*))")
BUILTINS = ("LESSON_DIR", "LESSON_TMP", "LESSON_LANG")
RESERVED = {"PATH", "HOME", "SHELL", "TERM", "LANG", "LC_ALL", "USER", "PWD", "IFS", "COLUMNS", "LINES"}
DIRECTIVES = ("title", "step", "say", "reality", "pause", "expect", "expect-not", "expect-status", "capture",
              "set", "wait-for", "requires", "cd", "cleanup")
DEFAULT_WAIT = 10.0


class ScriptError(UsageError):
    """A broken script: the message names the file and line."""


# -- what a script is made of -------------------------------------------------------------------


@record(frozen=True)
class Pattern:
    source: str  # as written: /net:\[\d+\]/ or plain text
    regex: bool
    flags: int = 0

    def compile(self, values: dict[str, str]) -> re.Pattern[str]:
        if self.regex:
            return re.compile(substitute(self.source, values, escape=re.escape), self.flags)
        return re.compile(re.escape(substitute(self.source, values)), self.flags)

    def shown(self) -> str:
        return f"/{self.source}/" if self.regex else self.source


@record
class Cmd:
    number: int
    text: str  # as written, without the leading ! of a host command
    host: bool = False
    status: int | str = 0  # what it must exit with: a number, or "nonzero"
    needs: tuple[str, ...] = ()  # the requirements in force where it is written


@record(frozen=True)
class Say:
    number: int
    texts: dict[str, str]  # lang (or "" for every language) -> markdown
    kind: str = "say"  # or "reality"

    def text(self, lang: str) -> str | None:
        return self.texts.get(lang) or self.texts.get("") or next(iter(self.texts.values()), None)


@record(frozen=True)
class Pause:
    number: int
    seconds: float | None


@record(frozen=True)
class Expect:
    number: int
    pattern: Pattern
    negate: bool = False


@record(frozen=True)
class Capture:
    number: int
    name: str
    pattern: Pattern


@record(frozen=True)
class SetVar:
    number: int
    name: str
    cmd: Cmd


@record(frozen=True)
class WaitFor:
    number: int
    pattern: Pattern
    timeout: float
    cmd: Cmd | None  # None: the previous command again


@record(frozen=True)
class Requires:
    number: int
    words: tuple[str, ...]  # ("run", "-p") or ("!gcc",)
    issue: int | None

    @property
    def label(self) -> str:
        return " ".join(self.words)


@record(frozen=True)
class Cd:
    number: int
    path: Path


Item = Cmd | Say | Pause | Expect | Capture | SetVar | WaitFor | Requires | Cd


@record
class Step:
    number: int  # its line
    index: int  # 1, 2, ... (0: what comes before the first step)
    titles: dict[str, str]
    items: list[Item] = factory(list)

    def title(self, lang: str) -> str:
        return self.titles.get(lang) or self.titles.get("en") or next(iter(self.titles.values()), "")


@record
class Script:
    path: Path
    titles: dict[str, str]
    steps: list[Step]  # steps[0] is the preamble (index 0): lines before the first `step`
    cleanup: list[Cmd]

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def is_lesson(self) -> bool:
        return len(self.steps) > 1 or bool(self.titles)

    def title(self, lang: str) -> str:
        return self.titles.get(lang) or self.titles.get("en") or next(iter(self.titles.values()), self.name)

    def commands(self) -> list[Cmd]:
        found: list[Cmd] = []
        for step in self.steps:
            for item in step.items:
                if isinstance(item, Cmd):
                    found.append(item)
                elif isinstance(item, SetVar) or isinstance(item, WaitFor) and item.cmd is not None:
                    found.append(item.cmd)
        return found


# -- variables ------------------------------------------------------------------------------------


def references(text: str, respect_quotes: bool = False) -> list[str]:
    """The $NAMEs a line uses (outside single quotes, when it is a command)."""
    return [m.group(1) or m.group(2) for m in _refs(text, respect_quotes)]


def _refs(text: str, respect_quotes: bool) -> list[re.Match[str]]:
    found = []
    quoted = _single_quoted_spans(text) if respect_quotes else []
    for m in VAR_REF.finditer(text):
        if not any(a <= m.start() < b for a, b in quoted):
            found.append(m)
    return found


def _single_quoted_spans(text: str) -> list[tuple[int, int]]:
    spans, i, start, in_double = [], 0, -1, False
    while i < len(text):
        c = text[i]
        if start >= 0:
            if c == "'":
                spans.append((start, i))
                start = -1
        elif c == "\\":
            i += 1
        elif c == '"':
            in_double = not in_double
        elif c == "'" and not in_double:
            start = i
        i += 1
    if start >= 0:
        spans.append((start, len(text)))
    return spans


def substitute(text: str, values: dict[str, str], respect_quotes: bool = False,
               escape=lambda s: s, keep_unknown: bool = False) -> str:  # noqa: ANN001 - str -> str
    """Replace $NAME with its value; unknown names raise KeyError unless kept."""
    out, pos = [], 0
    for m in _refs(text, respect_quotes):
        name = m.group(1) or m.group(2)
        if name not in values:
            if keep_unknown:
                continue
            raise KeyError(name)
        out.append(text[pos:m.start()])
        out.append(escape(values[name]))
        pos = m.end()
    out.append(text[pos:])
    return "".join(out)


# -- reading lines --------------------------------------------------------------------------------


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CShellError(f"no such script: {path}", "give the path of a .cs file, or a lesson name (lesson ls)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise CShellError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}",
                          "check the file and its permissions") from None


def parse_file(path: Path) -> Script:
    return Parser(path, read_text(path)).parse()


class Parser:
    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()
        self.titles: dict[str, str] = {}
        self.steps = [Step(0, 0, {})]
        self.cleanup: list[Cmd] | None = None
        self.needs: tuple[str, ...] = ()  # requirements in force in the current step

    def fail(self, number: int, message: str, hint: str = "") -> ScriptError:
        return ScriptError(f"{self.path}:{number}: {message}", hint or "`help lesson` describes the format")

    def parse(self) -> Script:
        i = 0
        while i < len(self.lines):
            raw = self.lines[i]
            line = raw.strip()
            i += 1
            if not line or line.startswith("#"):
                continue
            word = line.split(None, 1)[0]
            if word in ("say:", "reality:"):
                end = self._block_end(i, _indent(raw))
                self._say(i, word[:-1], self.lines[i:end], block=True)
                i = end
            else:
                self._line(i, line)
        script = Script(self.path, self.titles, self.steps, self.cleanup or [])
        _merge_says(script)
        check(script)
        return script

    def _block_end(self, start: int, indent: int) -> int:
        end = start
        while end < len(self.lines):
            text = self.lines[end]
            if text.strip() and _indent(text) <= indent:
                break
            end += 1
        while end > start and not self.lines[end - 1].strip():
            end -= 1
        return end

    # -- one line ----------------------------------------------------------------------------

    def _line(self, number: int, line: str) -> None:
        if line.startswith("!"):
            self._add(number, self._cmd(number, line))
            return
        word, _, rest = line.partition(" ")
        rest = rest.strip()
        handler = {
            "title": self._title, "step": self._step, "say": self._say_line, "reality": self._say_line,
            "pause": self._pause, "expect": self._expect, "expect-not": self._expect,
            "expect-status": self._expect_status, "capture": self._capture, "set": self._set,
            "wait-for": self._wait_for, "requires": self._requires, "cd": self._cd, "cleanup": self._cleanup,
        }.get(word)
        if handler is None:
            self._add(number, self._cmd(number, line))
        else:
            handler(number, word, rest)

    def _add(self, number: int, item: Item) -> None:
        if self.cleanup is not None:
            if not isinstance(item, Cmd):
                raise self.fail(number, "only commands can follow `cleanup`",
                                "cleanup holds commands and !host commands; put the rest in a step")
            self.cleanup.append(item)
        else:
            self.steps[-1].items.append(item)

    def _cmd(self, number: int, line: str) -> Cmd:
        host = line.startswith("!")
        text = line[1:].strip() if host else line
        if not text:
            raise self.fail(number, "an empty host command", "write the command after the !, e.g. !ls /proc")
        if not host:
            try:
                shlex.split(text, comments=True)
            except ValueError as e:
                raise self.fail(number, f"cannot read the command: {e}", "check the quotes") from None
        return Cmd(number, text, host, needs=self.needs)

    def _title(self, number: int, word: str, rest: str) -> None:
        lang, text = _lang_prefix(rest)
        if not text:
            raise self.fail(number, "`title` needs a text", "title en: Re-understanding the container")
        self.titles[lang or "en"] = text

    def _step(self, number: int, word: str, rest: str) -> None:
        if self.cleanup is not None:
            raise self.fail(number, "a step after `cleanup`", "`cleanup` comes last")
        try:
            words = shlex.split(rest)
        except ValueError as e:
            raise self.fail(number, f"cannot read the step's title: {e}", 'step "Build" / "构建"') from None
        if len(words) == 3 and words[1] == "/":
            titles = {"en": words[0], "zh": words[2]}
        elif len(words) == 1:
            titles = {"en": words[0]}
        else:
            raise self.fail(number, "a step takes a quoted title, and optionally / and a Chinese one",
                            'step "Build the image" / "构建镜像"')
        self.steps.append(Step(number, len(self.steps), titles))
        self.needs = ()

    def _say_line(self, number: int, word: str, rest: str) -> None:
        self._say(number, word, [rest], block=False)

    def _say(self, number: int, kind: str, lines: list[str], block: bool) -> None:
        texts = _say_texts(lines) if block else dict([_lang_prefix(lines[0])])
        texts = {lang: text for lang, text in texts.items() if text.strip()}
        if not texts:
            raise self.fail(number, f"`{kind}` with nothing to say",
                            f"{kind} en: TEXT, or a `{kind}:` block with indented en:/zh: parts")
        self._add(number, Say(number, texts, kind))

    def _pause(self, number: int, word: str, rest: str) -> None:
        seconds = None
        if rest:
            seconds = _number(rest)
            if seconds is None or seconds < 0:
                raise self.fail(number, f"pause takes seconds, not {rest!r}", "pause 3")
        self._add(number, Pause(number, seconds))

    def _expect(self, number: int, word: str, rest: str) -> None:
        self._add(number, Expect(number, self._pattern(number, rest), negate=word == "expect-not"))

    def _expect_status(self, number: int, word: str, rest: str) -> None:
        items = self.steps[-1].items
        last = next((it for it in reversed(items) if not isinstance(it, Expect | Capture)), None)
        if not isinstance(last, Cmd):
            raise self.fail(number, "expect-status must follow the command it checks",
                            "put it right after the command (other expects may come between)")
        if rest == "nonzero":
            last.status = "nonzero"
        elif rest.isdigit():
            last.status = int(rest)
        else:
            raise self.fail(number, f"expect-status takes a number or `nonzero`, not {rest!r}", "expect-status 1")

    def _pattern(self, number: int, text: str) -> Pattern:
        if not text:
            raise self.fail(number, "nothing to look for", "expect TEXT, or expect /REGEX/")
        m = re.fullmatch(r"/(.+)/([imsx]*)", text, re.S)
        if m:  # /…/ (and flags) is a regex; anything else, /etc/hosts included, is plain text
            flags = 0
            for letter in m.group(2):
                flags |= {"i": re.I, "m": re.M, "s": re.S, "x": re.X}[letter]
            pattern = Pattern(m.group(1), True, flags | re.M)
        else:
            pattern = Pattern(text, False)
        try:
            pattern.compile(dict.fromkeys(references(text), "x"))
        except re.error as e:
            raise self.fail(number, f"bad regex {text}: {e}", "check the brackets and escapes") from None
        return pattern

    def _assignment(self, number: int, word: str, rest: str) -> tuple[str, str]:
        name, eq, value = rest.partition("=")
        name, value = name.strip(), value.strip()
        if not eq or not value:
            raise self.fail(number, f"{word} needs NAME = …", f"{word} PID = inspect --format '{{{{.State.Pid}}}}' web"
                            if word == "set" else "capture INODE = /net:\\[(\\d+)\\]/")
        if not VAR_NAME.match(name):
            raise self.fail(number, f"a variable name is upper case letters, digits and _: {name!r}", "e.g. PID, NET_INODE")
        if name in RESERVED or name in BUILTINS:
            raise self.fail(number, f"${name} is taken (by the environment or the runner)", "choose another name")
        return name, value

    def _capture(self, number: int, word: str, rest: str) -> None:
        name, value = self._assignment(number, word, rest)
        if not value.startswith("/"):
            raise self.fail(number, "capture takes a /REGEX/", "capture INODE = /net:\\[(\\d+)\\]/")
        self._add(number, Capture(number, name, self._pattern(number, value)))

    def _set(self, number: int, word: str, rest: str) -> None:
        name, value = self._assignment(number, word, rest)
        self._add(number, SetVar(number, name, self._cmd(number, value)))

    def _wait_for(self, number: int, word: str, rest: str) -> None:
        head, sep, command = rest.partition(" -- ")
        if not sep and rest.endswith(" --"):
            head = rest[:-3]
        pattern_text, timeout = head.strip(), DEFAULT_WAIT
        m = re.search(r"\s+--timeout(?:\s+|=)(\S+)\s*$", pattern_text)
        if m:
            timeout = _number(m.group(1)) or -1
            if timeout <= 0:
                raise self.fail(number, f"--timeout takes seconds, not {m.group(1)!r}", "wait-for /ready/ --timeout 5")
            pattern_text = pattern_text[:m.start()]
        cmd = self._cmd(number, command.strip()) if command.strip() else None
        self._add(number, WaitFor(number, self._pattern(number, pattern_text.strip()), timeout, cmd))

    def _requires(self, number: int, word: str, rest: str) -> None:
        issue = None
        m = re.search(r"\s*\(issue #(\d+)\)\s*$", rest)
        if m:
            issue, rest = int(m.group(1)), rest[:m.start()]
        words = tuple(rest.split())
        if not words:
            raise self.fail(number, "requires what?", "requires run -p (issue #5), or requires !gcc")
        if words[0].startswith("!") and len(words) > 1:
            raise self.fail(number, "requires !PROGRAM takes one program", "requires !gcc")
        self._add(number, Requires(number, words, issue))
        self.needs = (*self.needs, " ".join(words))

    def _cd(self, number: int, word: str, rest: str) -> None:
        path = Path(rest).expanduser()
        path = path if path.is_absolute() else self.path.parent / path
        if not rest or not path.is_dir():
            raise self.fail(number, f"no such directory: {rest or '(none given)'}",
                            "cd takes a directory, relative to the script's own")
        self._add(number, Cd(number, path.resolve()))

    def _cleanup(self, number: int, word: str, rest: str) -> None:
        if rest or self.cleanup is not None:
            raise self.fail(number, "`cleanup` stands alone on its line, once", "cleanup")
        self.cleanup = []
        self.needs = ()


def _indent(text: str) -> int:
    return len(text.expandtabs(4)) - len(text.expandtabs(4).lstrip())


def _lang_prefix(text: str) -> tuple[str, str]:
    m = re.match(r"(en|zh):\s?(.*)\Z", text, re.S)
    return (m.group(1), m.group(2).strip()) if m else ("", text.strip())


def _say_texts(lines: list[str]) -> dict[str, str]:
    """A block's lines -> {lang: markdown}; each part is dedented on its own."""
    body = textwrap.dedent("\n".join(lines)).splitlines()
    parts: dict[str, list[str]] = {}
    lang = ""
    for line in body:
        m = re.match(r"(en|zh):\s?(.*)\Z", line)
        if m and not line.startswith((" ", "\t")):
            lang = m.group(1)
            parts[lang] = [m.group(2)]
        else:
            parts.setdefault(lang, []).append(line)
    out = {}
    for key, part in parts.items():
        first, rest = part[0], textwrap.dedent("\n".join(part[1:]))
        out[key] = (first + ("\n" + rest if rest.strip() else "")).strip()
    return out


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _merge_says(script: Script) -> None:
    """`say en: …` then `say zh: …` on the next line: one narration in two languages."""
    for step in script.steps:
        merged: list[Item] = []
        for item in step.items:
            prev = merged[-1] if merged else None
            if isinstance(item, Say) and isinstance(prev, Say) and prev.kind == item.kind \
                    and "" not in prev.texts and not set(prev.texts) & set(item.texts):
                merged[-1] = Say(prev.number, {**prev.texts, **item.texts}, prev.kind)
            else:
                merged.append(item)
        step.items = merged


# -- checks over the whole script ----------------------------------------------------------------


def requirement_met(req: Requires) -> bool:
    from cshell.commands.registry import REGISTRY

    if req.words[0].startswith("!"):
        return shutil.which(req.words[0][1:]) is not None
    name = req.words[0]
    flags = list(req.words[1:])
    if len(req.words) > 1 and f"{req.words[0]} {req.words[1]}" in REGISTRY:
        name, flags = f"{req.words[0]} {req.words[1]}", list(req.words[2:])
    cmd = REGISTRY.get(name)
    return cmd is not None and all(cmd.option(flag) is not None for flag in flags)


def check(script: Script) -> None:
    """Commands against the declarations, variables against their definitions."""
    unmet = {r.label for step in script.steps for r in step.items
             if isinstance(r, Requires) and not requirement_met(r)}
    defined: dict[str, tuple[int, tuple[str, ...], int]] = {n: (0, (), 0) for n in BUILTINS}
    for step in script.steps:
        for item in step.items:
            _check_item(script, item, defined, step.index, unmet)
    for cmd in script.cleanup:
        _check_command(script, cmd, unmet)
        _check_vars(script, cmd.number, references(cmd.text, respect_quotes=True), defined, (), -1, cmd.host)


def _check_item(script: Script, item: Item, defined: dict, step: int, unmet: set[str]) -> None:
    fail = _failer(script)
    if isinstance(item, Cmd):
        _check_command(script, item, unmet)
        _check_vars(script, item.number, references(item.text, True), defined, item.needs, step, item.host)
    elif isinstance(item, Say):
        for text in item.texts.values():
            _check_vars(script, item.number, references(text), defined, (), step, False)
    elif isinstance(item, Expect | Capture | WaitFor):
        _check_vars(script, item.number, references(item.pattern.source), defined, (), step, False)
        if isinstance(item, WaitFor) and item.cmd is not None:
            _check_item(script, item.cmd, defined, step, unmet)
    if isinstance(item, SetVar):
        _check_item(script, item.cmd, defined, step, unmet)
    own_command = isinstance(item, WaitFor) and item.cmd is not None
    if isinstance(item, Expect | Capture | WaitFor) and not own_command \
            and not _has_command_before(script, item, step):
        word = {"Expect": "expect", "Capture": "capture", "WaitFor": "wait-for"}[type(item).__name__]
        raise fail(item.number, f"{word} has no command before it in this step",
                   "checks look at the output of the step's last command")
    if isinstance(item, SetVar | Capture):
        needs = item.cmd.needs if isinstance(item, SetVar) else _needs_at(script, step, item.number)
        defined[item.name] = (item.number, needs, step)


def _check_command(script: Script, cmd: Cmd, unmet: set[str]) -> None:
    from cshell.commands.dispatch import split_words
    from cshell.commands.registry import lookup, parse

    if cmd.host or any(need in unmet for need in cmd.needs):
        return  # a host command is the shell's business; a guarded one may not exist yet
    try:
        words = split_words(cmd.text)
        command, rest = lookup(words)
        parse(command, rest)
    except CShellError as e:
        import difflib

        first = cmd.text.split(None, 1)[0]
        near = difflib.get_close_matches(first.rstrip(":"), DIRECTIVES, n=1, cutoff=0.6)
        if e.message.startswith("unknown command") and near:
            raise _failer(script)(cmd.number, f"unknown directive or command {first!r}",
                                  f"did you mean the directive `{near[0]}`? (`help lesson`)") from None
        raise _failer(script)(cmd.number, e.message, e.hint) from None


def _check_vars(script: Script, number: int, names: list[str], defined: dict, needs: tuple[str, ...],
                step: int, host: bool) -> None:
    fail = _failer(script)
    for name in names:
        if name not in defined:
            if host:
                continue  # $HOME and friends belong to the host shell
            later = _defined_later(script, name)
            raise fail(number, f"missing variable ${name}" + (f" (it is set later, at line {later})" if later else ""),
                       "set it before: set NAME = COMMAND, or capture NAME = /REGEX/")
        at, its_needs, its_step = defined[name]
        missing = [n for n in its_needs if n not in needs] if its_step != step else []
        if missing:
            raise fail(number, f"${name} comes from line {at}, which runs only with `requires {missing[0]}`",
                       f"add `requires {missing[0]}` to this step too")


def _defined_later(script: Script, name: str) -> int | None:
    for step in script.steps:
        for item in step.items:
            if isinstance(item, SetVar | Capture) and item.name == name:
                return item.number
    return None


def _has_command_before(script: Script, target: Item, step: int) -> bool:
    for item in script.steps[step].items:
        if item is target:
            return False
        if isinstance(item, Cmd | SetVar | WaitFor):
            return True
    return False


def _needs_at(script: Script, step: int, number: int) -> tuple[str, ...]:
    return tuple(r.label for r in script.steps[step].items if isinstance(r, Requires) and r.number < number)


def _failer(script: Script):  # noqa: ANN202 - (number, message, hint) -> ScriptError
    def fail(number: int, message: str, hint: str = "") -> ScriptError:
        return ScriptError(f"{script.path}:{number}: {message}", hint or "`help lesson` describes the format")
    return fail
