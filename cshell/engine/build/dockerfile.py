"""Reading a Dockerfile the way docker's parser does.

``dockerfile-parse`` joins continuation lines, drops comments (also those
inside a continued instruction) and honours the ``# escape=`` directive; it
gives each instruction with its first and last line. Everything after that
is docker's own grammar, reproduced here: which instructions split their
arguments how (moby/buildkit ``frontend/dockerfile/parser/line_parsers.go``),
the exec form's JSON with its quirks, ``--flag=value`` options, and the
word expansion of ``$VAR``, ``${VAR:-default}`` and quotes (``shell/lex.go``).

Every error carries the line number, like ``Dockerfile:3: unknown
instruction FORM (did you mean FROM?)``, and the whole file is checked before
anything is built.
"""

from __future__ import annotations

import difflib
import io
import re
from collections.abc import Mapping

from cshell.engine.image.imageconfig import duration, exec_form, json_or_words
from cshell.errors import CShellError, UsageError
from cshell.record import factory, record

# What each instruction accepts: the ones cshell builds, and the ones it knows but refuses.
BUILT = ("FROM", "ARG", "ENV", "LABEL", "WORKDIR", "ADD", "COPY", "RUN", "EXPOSE", "CMD",
         "ENTRYPOINT", "USER", "VOLUME", "STOPSIGNAL", "SHELL", "MAINTAINER", "ONBUILD", "HEALTHCHECK")
REFUSED: dict[str, str] = {}
HEALTH_FLAGS = ("interval", "timeout", "start-period", "start-interval", "retries")
FLAGS = {"ADD": ("chown", "chmod"), "COPY": ("chown", "chmod", "from"), "FROM": ("platform",),
         "HEALTHCHECK": HEALTH_FLAGS}
NOT_TRIGGERS = ("ONBUILD", "FROM", "MAINTAINER")  # docker refuses these after ONBUILD
STAGE_NAME_RE = re.compile(r"^[a-z][a-z0-9._-]*$")
DIRECTIVE_RE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
PORT_RE = re.compile(r"^\d{1,5}(-\d{1,5})?(/(tcp|udp|sctp))?$", re.I)


class DockerfileError(UsageError):
    """A Dockerfile that cannot be built, found at one line."""

    def __init__(self, where: str, line: int, message: str, hint: str = "") -> None:
        super().__init__(f"{where}:{line}: {message}", hint)
        self.line = line


@record
class Instruction:
    line: int  # first line, 1-based
    keyword: str  # upper case
    original: str  # as written, continuations joined: what `Step 3/7 :` shows
    value: str  # the arguments after the flags
    flags: dict[str, str] = factory(dict)


@record
class Stage:
    """One FROM and the instructions after it, up to the next FROM."""

    index: int
    name: str  # lower case, "" when unnamed (FROM x AS name)
    base: str  # the FROM argument as written (ARGs before FROM not expanded yet)
    instructions: list[Instruction]  # the FROM first

    @property
    def label(self) -> str:
        return f"{self.index} ({self.name})" if self.name else str(self.index)


@record
class Dockerfile:
    name: str  # the file's name, for messages
    escape: str
    instructions: list[Instruction]

    def error(self, ins: Instruction, message: str, hint: str = "") -> DockerfileError:
        return DockerfileError(self.name, ins.line, message, hint)

    @property
    def meta(self) -> list[Instruction]:
        """The ARGs before the first FROM: they only serve FROM lines."""
        return self.instructions[:self._first_from()]

    def _first_from(self) -> int:
        return next(i for i, ins in enumerate(self.instructions) if ins.keyword == "FROM")

    def stages(self) -> list[Stage]:
        stages: list[Stage] = []
        for ins in self.instructions[self._first_from():]:
            if ins.keyword == "FROM":
                words = ins.value.split()
                stages.append(Stage(len(stages), words[2].lower() if len(words) == 3 else "", words[0], []))
            stages[-1].instructions.append(ins)
        return stages


def parse(text: str, name: str = "Dockerfile") -> Dockerfile:
    """Parse and check a whole Dockerfile (syntax only; sources are checked when built)."""
    from dockerfile_parse import DockerfileParser  # only builds need it

    escape = _directives(text, name)
    # dockerfile-parse loses an instruction whose continuation runs to the end of the file,
    # and one with no argument on a last line without newline: two newlines end both.
    parser = DockerfileParser(fileobj=io.BytesIO((text.rstrip("\n") + "\n\n").encode()))
    instructions = []
    for item in parser.structure:
        if item["instruction"] == "COMMENT":
            continue
        instructions.append(_instruction(item, name))
    df = Dockerfile(name, escape, instructions)
    _check(df)
    return df


def _directives(text: str, name: str) -> str:
    """Parser directives (`# escape=`), only at the very top, as docker reads them."""
    escape, seen = "\\", False
    for number, line in enumerate(text.splitlines(), 1):
        match = DIRECTIVE_RE.match(line.strip())
        if not match:
            break
        key, value = match[1].lower(), match[2]
        if key != "escape":
            continue  # `# syntax=` and unknown directives change nothing here
        if seen:
            raise DockerfileError(name, number, "only one escape parser directive can be used")
        if value not in ("\\", "`"):
            raise DockerfileError(name, number, f"invalid escape character {value!r}",
                                  "the escape directive takes \\ or ` (backtick)")
        escape, seen = value, True
    return escape


def _instruction(item: dict, name: str) -> Instruction:
    line = item["startline"] + 1
    keyword = item["instruction"]
    written = item["content"].split(None, 1)[0]
    value = (item["value"] or "").strip()
    if keyword not in BUILT:
        if keyword in REFUSED:
            raise DockerfileError(name, line, f"{REFUSED[keyword]} not supported by cshell yet",
                                  "remove the line; `help build` lists the instructions cshell builds")
        close = difflib.get_close_matches(keyword, BUILT, n=1)
        hint = "instructions are FROM, RUN, COPY, ADD, WORKDIR, ENV, ARG, EXPOSE, CMD, ENTRYPOINT, ..."
        raise DockerfileError(name, line, f"unknown instruction {keyword}"
                              + (f" (did you mean {close[0]}?)" if close else ""), hint)
    flags, value = _flags(value, keyword, name, line)
    return Instruction(line, keyword, f"{written} {item['value'] or ''}".strip(), value, flags)


def _flags(value: str, keyword: str, name: str, line: int) -> tuple[dict[str, str], str]:
    """Leading `--name=value` options (docker's extractBuilderFlags)."""
    flags: dict[str, str] = {}
    while value.startswith("--"):
        word, _, rest = value.partition(" ")
        flag, eq, flag_value = word[2:].partition("=")
        if flag not in FLAGS.get(keyword, ()):
            allowed = ", ".join(f"--{f}" for f in FLAGS.get(keyword, ())) or "none"
            raise DockerfileError(name, line, f"unknown flag --{flag} for {keyword}",
                                  f"{keyword} takes these flags: {allowed}")
        if not eq or not flag_value:
            raise DockerfileError(name, line, f"--{flag} needs a value", f"e.g. {keyword} --{flag}=VALUE ...")
        flags[flag] = flag_value
        value = rest.lstrip()
    return flags, value


def _check(df: Dockerfile) -> None:
    """What docker refuses before building: no FROM first, empty arguments, several stages."""
    if not df.instructions:
        raise DockerfileError(df.name, 1, "the Dockerfile has no instructions",
                              "start it with FROM IMAGE (FROM busybox, or FROM scratch)")
    stage_seen, names = False, set()
    for ins in df.instructions:
        if ins.keyword == "FROM":
            stage_seen = True
        elif not stage_seen and ins.keyword != "ARG":
            raise df.error(ins, f"{ins.keyword} before FROM: every build starts from an image",
                           "put FROM IMAGE (or FROM scratch) first; only ARG may come before it")
        if not ins.value:
            raise df.error(ins, f"{ins.keyword} requires at least one argument", _example(ins.keyword))
        _check_arguments(df, ins)
        if ins.keyword == "FROM" and len(words := ins.value.split()) == 3:
            name = words[2].lower()
            if not STAGE_NAME_RE.match(name):
                raise df.error(ins, f"invalid name for build stage: {words[2]!r}, name can't start with a number "
                               "or contain symbols", "e.g. FROM gcc:12 AS builder")
            if name in names:
                raise df.error(ins, f"duplicate name {name!r}: each stage needs its own name",
                               "rename one of the stages (FROM IMAGE AS OTHER)")
            names.add(name)
    if not stage_seen:
        raise df.error(df.instructions[-1], "no build stage: the Dockerfile has no FROM",
                       "add FROM IMAGE (FROM busybox, or FROM scratch) after the ARG lines")


def _check_arguments(df: Dockerfile, ins: Instruction) -> None:
    try:
        if ins.keyword == "FROM":
            words = ins.value.split()
            if len(words) not in (1, 3) or (len(words) == 3 and words[1].lower() != "as"):
                raise df.error(ins, "FROM requires either one or three arguments", "FROM IMAGE [AS NAME]")
        elif ins.keyword in ("ENV", "LABEL"):
            name_values(ins.value, ins.keyword, df.escape)
        elif ins.keyword == "ARG":
            arg_pairs(ins.value, df.escape)
        elif ins.keyword in ("ADD", "COPY"):
            if len(json_or_words(ins.value)) < 2:
                raise df.error(ins, f"{ins.keyword} requires at least two arguments",
                               f"{ins.keyword} SOURCE... DEST, e.g. {ins.keyword} . /app")
        elif ins.keyword in ("USER", "STOPSIGNAL") and len(ins.value.split()) != 1:
            raise df.error(ins, f"{ins.keyword} requires exactly one argument", _example(ins.keyword))
        elif ins.keyword == "SHELL":
            argv = exec_form(ins.value)
            if argv is None or not argv:
                raise df.error(ins, "SHELL requires the arguments to be in JSON form",
                               'e.g. SHELL ["/bin/sh", "-c"]')
        elif ins.keyword in ("RUN", "CMD", "ENTRYPOINT"):
            exec_form(ins.value)
        elif ins.keyword == "ONBUILD":
            trigger(ins, df.name)
        elif ins.keyword == "HEALTHCHECK":
            healthcheck(ins)
    except DockerfileError:
        raise
    except CShellError as e:
        raise df.error(ins, e.message, e.hint) from None


def _example(keyword: str) -> str:
    return {
        "FROM": "FROM busybox", "RUN": "RUN echo hello > /hello.txt", "CMD": 'CMD ["python", "app.py"]',
        "ENTRYPOINT": 'ENTRYPOINT ["python"]', "ENV": "ENV NAME=World", "ARG": "ARG VERSION=1.0",
        "WORKDIR": "WORKDIR /app", "EXPOSE": "EXPOSE 80", "USER": "USER nobody", "LABEL": "LABEL team=geektime",
        "VOLUME": "VOLUME /data", "STOPSIGNAL": "STOPSIGNAL SIGTERM", "MAINTAINER": "MAINTAINER you",
        "ONBUILD": "ONBUILD COPY . /app", "HEALTHCHECK": "HEALTHCHECK --interval=5s CMD wget -q -O- localhost/",
    }.get(keyword, f"`help build` shows {keyword}'s form")


# -- ONBUILD and HEALTHCHECK --------------------------------------------------------------------


def trigger(ins: Instruction, name: str = "Dockerfile") -> Instruction:
    """The instruction an ONBUILD keeps, parsed and checked as if it were its own line."""
    keyword = ins.value.split(None, 1)[0].upper()
    if keyword in NOT_TRIGGERS:
        raise DockerfileError(name, ins.line, f"{keyword} isn't allowed as an ONBUILD trigger",
                              "ONBUILD takes RUN, COPY, ADD, ENV and the other build instructions")
    try:
        df = parse(f"FROM scratch\n{ins.value}\n", name)
    except DockerfileError as e:  # told at the ONBUILD's own line, not the line of the parse above
        message = e.message.split(": ", 1)[1] if ": " in e.message else e.message
        raise DockerfileError(name, ins.line, message, e.hint) from None
    inner = df.instructions[1]
    inner.line = ins.line
    return inner


def healthcheck(ins: Instruction) -> dict[str, object]:
    """HEALTHCHECK [--interval --timeout --start-period --retries] CMD ... | NONE -> docker's Healthcheck."""
    word, _, rest = ins.value.partition(" ")
    kind = word.upper()
    if kind == "NONE":
        if rest.strip() or ins.flags:
            raise UsageError("HEALTHCHECK NONE takes no arguments", "HEALTHCHECK NONE")
        return {"Test": ["NONE"]}
    if kind != "CMD" or not rest.strip():
        raise UsageError("HEALTHCHECK needs CMD and a command, or NONE",
                         "e.g. HEALTHCHECK --interval=5s CMD wget -q -O- localhost/ || exit 1")
    argv = exec_form(rest)
    out: dict[str, object] = {"Test": ["CMD", *argv] if argv is not None else ["CMD-SHELL", rest.strip()]}
    for flag, key in (("interval", "Interval"), ("timeout", "Timeout"), ("start-period", "StartPeriod"),
                      ("start-interval", "StartInterval")):
        if flag in ins.flags:
            value = duration(ins.flags[flag], flag)
            if value and value < 1_000_000:
                raise UsageError(f"--{flag} cannot be less than 1ms", f"e.g. --{flag}=1s")
            if value:
                out[key] = value
    if "retries" in ins.flags:
        retries = ins.flags["retries"]
        if not retries.isdigit():
            raise UsageError(f"--retries must be a number, not {retries!r}", "e.g. --retries=3")
        if int(retries):
            out["Retries"] = int(retries)
    return out


# -- argument forms -------------------------------------------------------------------------


def looks_like_json(value: str) -> bool:
    """A `[` that did not parse: worth a warning that it runs as a shell command."""
    return value.lstrip().startswith("[") and exec_form(value) is None


def split_quoted(value: str, escape: str) -> list[str]:
    """Words split on whitespace outside quotes; quotes and escapes are kept (parseWords)."""
    words, word, quote, escaped = [], "", "", False
    for ch in value:
        if escaped:
            word += ch
            escaped = False
        elif ch == escape:
            word += ch
            escaped = True
        elif quote:
            word += ch
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            word += ch
            quote = ch
        elif ch.isspace():
            if word:
                words.append(word)
            word = ""
        else:
            word += ch
    if word:
        words.append(word)
    return words


def name_values(value: str, keyword: str, escape: str) -> list[tuple[str, str]]:
    """ENV/LABEL: `K=V K2="v 2"`, or the old `K the rest of the line` form (unexpanded)."""
    words = split_quoted(value, escape)
    if not words:
        raise UsageError(f"{keyword} requires at least one argument", f"e.g. {keyword} NAME=value")
    if "=" not in words[0]:
        key, _, rest = value.strip().partition(" ")
        if not rest.strip():
            raise UsageError(f"{keyword} names can not be blank" if not key else
                             f"{keyword} {key} needs a value", f"e.g. {keyword} {key or 'NAME'}=value")
        return [(key, rest.strip())]
    pairs = []
    for word in words:
        key, eq, val = word.partition("=")
        if not eq:
            raise UsageError(f"{keyword}: can't find = in {word!r}; must be of the form name=value",
                             f"e.g. {keyword} {word}=value")
        if not key:
            raise UsageError(f"{keyword} names can not be blank", f"e.g. {keyword} NAME=value")
        pairs.append((key, val))
    return pairs


def arg_pairs(value: str, escape: str) -> list[tuple[str, str | None]]:
    """ARG NAME[=default] ...: a name without `=` has no default."""
    pairs: list[tuple[str, str | None]] = []
    for word in split_quoted(value, escape):
        key, eq, default = word.partition("=")
        if not NAME_RE.match(key):
            raise UsageError(f"ARG: invalid name {key!r}", "ARG names are letters, digits and _, e.g. ARG VERSION=1")
        pairs.append((key, default if eq else None))
    return pairs


def check_port(port: str) -> None:
    if not PORT_RE.match(port):
        raise UsageError(f"invalid containerPort: {port}", "EXPOSE 80, EXPOSE 80/tcp, EXPOSE 8000-8010/udp")


# -- word expansion (docker's ShellLex) -----------------------------------------------------


class _Lexer:
    def __init__(self, text: str, env: Mapping[str, str], escape: str) -> None:
        self.text, self.env, self.escape, self.i = text, env, escape, 0

    def peek(self) -> str:
        return self.text[self.i] if self.i < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        self.i += 1
        return ch

    def word(self, stop: str = "") -> str:
        out = []
        while self.i < len(self.text):
            ch = self.peek()
            if stop and ch == stop:
                self.i += 1
                return "".join(out)
            if ch == "'":
                out.append(self.single_quoted())
            elif ch == '"':
                out.append(self.double_quoted())
            elif ch == "$":
                out.append(self.dollar())
            else:
                self.i += 1
                if ch == self.escape:
                    if self.i >= len(self.text):
                        break  # a trailing escape is dropped
                    ch = self.next()
                out.append(ch)
        if stop:
            raise UsageError(f"missing '{stop}' in {self.text!r}", "close the ${...} substitution")
        return "".join(out)

    def single_quoted(self) -> str:
        self.i += 1
        end = self.text.find("'", self.i)
        if end == -1:
            raise UsageError(f"unexpected end of statement while looking for matching single-quote in {self.text!r}",
                             "close the ' quote")
        value, self.i = self.text[self.i:end], end + 1
        return value

    def double_quoted(self) -> str:
        self.i += 1
        out = []
        while True:
            ch = self.peek()
            if not ch:
                raise UsageError(f"unexpected end of statement while looking for matching double-quote in "
                                 f"{self.text!r}", 'close the " quote')
            if ch == '"':
                self.i += 1
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            self.i += 1
            if ch == self.escape and self.peek() in ('"', "$", self.escape) and self.peek():
                ch = self.next()
            out.append(ch)

    def name(self) -> str:
        start = self.i
        while self.peek() and (self.peek().isalnum() or self.peek() == "_"):
            self.i += 1
        return self.text[start:self.i]

    def dollar(self) -> str:
        self.i += 1
        if self.peek() != "{":
            name = self.name()
            return self.env.get(name, "") if name else "$"
        self.i += 1
        name = self.name()
        if self.peek() == "}":
            self.i += 1
            return self.env.get(name, "")
        colon = self.peek() == ":"
        if colon:
            self.i += 1
        op = self.next()
        if op not in ("-", "+", "?") or not name:
            raise UsageError(f"unsupported modifier ({op or 'end'}) in substitution {self.text!r}",
                             "docker knows ${VAR}, ${VAR:-default}, ${VAR:+alternative}, ${VAR:?message}")
        word = self.word(stop="}")
        value = self.env.get(name)
        is_set = value is not None and (value != "" or not colon)
        if op == "-":
            return value if is_set else word  # type: ignore[return-value]
        if op == "+":
            return word if is_set else ""
        if not is_set:
            raise UsageError(f"{name}: {word or 'is not allowed to be unset'}", f"set it with ARG {name}=... or ENV")
        return value  # type: ignore[return-value]


def expand(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """One word with $VAR, ${VAR:-x}, quotes and escapes processed (ProcessWord)."""
    return _Lexer(word, env, escape).word()
