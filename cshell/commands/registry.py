"""One declaration per command: the REPL, the CLI, scripts, completion and help read it.

A command is declared with ``@command(...)`` on its handler. The declaration
lists its options and positionals; ``parse`` turns words into a namespace the
handler receives, with Docker's conventions: flags before the image, ``-it``
bundles, ``--name=N`` or ``--name N``, and everything after the command's
"rest" positional (``run IMAGE CMD...``) or after ``--`` passed through as is.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from cshell.errors import UsageError
from cshell.record import record

# What a value can be completed from (the REPL's completer knows each source).
CONTAINER, RUNNING, IMAGE, NSKIND, COMMAND, TARGET, FILE = (
    "container", "running", "image", "nskind", "command", "target", "file")
CTR_OR_IMAGE = "container_or_image"  # layer stack/whereis take either
NETMODE = "netmode"  # bridge, none, host, container:NAME
# Commands whose own flags end where their "rest" begins (cobra's SetInterspersed(false)):
# `run IMAGE -x`, `create IMAGE -x` and `top CTR -ef` pass -x and -ef on, to the container and to ps.
FLAGS_END_AT_REST = ("run", "create", "top")


@record(frozen=True)
class Opt:
    names: tuple[str, ...]  # ("-d", "--detach")
    help: str
    value: str | None = None  # metavar when the option takes a value
    multi: bool = False  # repeatable, collected into a list
    default: Any = None
    complete: str | None = None

    @property
    def dest(self) -> str:
        longest = max(self.names, key=len)
        return longest.lstrip("-").replace("-", "_")


@record(frozen=True)
class Pos:
    name: str
    help: str
    optional: bool = False
    many: bool = False  # one or more (zero or more when optional)
    rest: bool = False  # everything that follows, flags included (a command line)
    complete: str | None = None


@record
class Command:
    name: str
    summary: str
    handler: Callable[..., int | None]
    options: tuple[Opt, ...] = ()
    positionals: tuple[Pos, ...] = ()
    example: str = ""
    details: str = ""
    group: str = "containers"
    needs_root: bool = True
    docker: str = ""  # the docker command it mirrors, for help

    @property
    def usage(self) -> str:
        parts = [self.name]
        if self.options:
            parts.append("[OPTIONS]")
        for p in self.positionals:
            label = p.name.upper() + (" ..." if p.many or p.rest else "")
            parts.append(f"[{label}]" if p.optional else label)
        return " ".join(parts)

    def option(self, word: str) -> Opt | None:
        for opt in self.options:
            if word in opt.names:
                return opt
        return None


REGISTRY: dict[str, Command] = {}


def command(name: str, summary: str, *, options: tuple[Opt, ...] = (), positionals: tuple[Pos, ...] = (),
            example: str = "", details: str = "", group: str = "containers", needs_root: bool = True,
            docker: str = "") -> Callable[[Callable[..., int | None]], Callable[..., int | None]]:
    def register(handler: Callable[..., int | None]) -> Callable[..., int | None]:
        REGISTRY[name] = Command(name, summary, handler, options, positionals, example,
                                 details.strip(), group, needs_root, docker)
        return handler
    return register


def lookup(words: list[str]) -> tuple[Command, list[str]]:
    """The command the words name (two-word commands first) and the words left."""
    if not words:
        raise UsageError("no command given", "type `help` to see the commands")
    if len(words) >= 2 and f"{words[0]} {words[1]}" in REGISTRY:
        return REGISTRY[f"{words[0]} {words[1]}"], words[2:]
    if words[0] in REGISTRY:
        return REGISTRY[words[0]], words[1:]
    group = [n for n in REGISTRY if n.startswith(words[0] + " ")]
    if group:
        wanted = words[1] if len(words) > 1 else ""
        subs = ", ".join(n.split(" ", 1)[1] for n in group)
        raise UsageError(f"`{words[0]}` needs a sub-command{f' (not {wanted!r})' if wanted else ''}",
                         f"one of: {subs}; e.g. `{group[0]}`")
    import difflib  # only on a typo

    close = difflib.get_close_matches(words[0], sorted({n.split(" ")[0] for n in REGISTRY}), n=1)
    hint = f"did you mean `{close[0]}`? (`help` lists every command)" if close else "`help` lists every command"
    raise UsageError(f"unknown command {words[0]!r}", hint)


def _expand_bundle(cmd: Command, word: str) -> list[str] | None:
    """-it -> -i -t, when every letter is a short flag that takes no value."""
    if len(word) > 2 and word[0] == "-" and word[1] != "-":
        flags = [f"-{c}" for c in word[1:]]
        if all((o := cmd.option(f)) is not None and o.value is None for f in flags):
            return flags
    return None


def parse(cmd: Command, words: list[str]) -> SimpleNamespace:
    ns = SimpleNamespace(**{o.dest: ([] if o.multi else (o.default if o.value else bool(o.default)))
                            for o in cmd.options})
    positionals: list[str] = []
    rest: list[str] | None = None
    rest_index = next((i for i, p in enumerate(cmd.positionals) if p.rest), None)
    flags_done = False
    i = 0
    while i < len(words):
        word = words[i]
        if rest is not None:
            rest.append(word)
        elif word == "--" and not flags_done:
            flags_done = True  # `run -- IMAGE CMD`, `rm -- NAME`: what follows are positionals
            if rest_index is not None and len(positionals) >= rest_index:
                rest = []
        elif cmd.name in FLAGS_END_AT_REST and rest_index is not None and len(positionals) >= rest_index:
            rest = [word]  # docker's `run IMAGE --x`: the container's command starts here, flags or not
        elif word.startswith("-") and word != "-" and not flags_done:
            i = _take_option(cmd, ns, words, i)
        elif rest_index is not None and len(positionals) >= rest_index:
            rest = [word]  # the command line inside the container starts here
        else:
            positionals.append(word)
        i += 1
    _assign_positionals(cmd, ns, positionals, rest)
    return ns


def _take_option(cmd: Command, ns: SimpleNamespace, words: list[str], i: int) -> int:
    word = words[i]
    bundle = _expand_bundle(cmd, word)
    if bundle:
        for flag in bundle:
            setattr(ns, cmd.option(flag).dest, True)  # type: ignore[union-attr]
        return i
    name, eq, inline = word.partition("=")
    opt = cmd.option(name)
    if opt is None:
        known = [n for o in cmd.options for n in o.names if n.startswith("--")]
        import difflib  # only on a typo

        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {close[0]}?" if close else f"`help {cmd.name}` lists its options"
        raise UsageError(f"unknown flag {name} for `{cmd.name}`", hint, status=125)  # docker's flag parser
    if opt.value is None:
        if eq:
            raise UsageError(f"{name} takes no value", f"write just {name}", status=125)
        setattr(ns, opt.dest, True)
        return i
    if eq:
        value = inline
    elif i + 1 < len(words):
        i += 1
        value = words[i]
    else:
        raise UsageError(f"{name} needs a value ({opt.value})", f"e.g. {cmd.example or cmd.usage}", status=125)
    if opt.multi:
        getattr(ns, opt.dest).append(value)
    else:
        setattr(ns, opt.dest, value)
    return i


def _assign_positionals(cmd: Command, ns: SimpleNamespace, given: list[str], rest: list[str] | None) -> None:
    queue = list(given)
    for p in cmd.positionals:
        if p.rest:
            value: Any = rest if rest is not None else []
            if not value and not p.optional:
                raise UsageError(f"`{cmd.name}` needs {p.name.upper()}", f"usage: {cmd.usage}")
        elif p.many:
            value, queue = queue, []
            if not value and not p.optional:
                raise UsageError(f"`{cmd.name}` needs at least one {p.name.upper()}", f"usage: {cmd.usage}")
        elif queue:
            value = queue.pop(0)
        elif p.optional:
            value = None
        else:
            raise UsageError(f"`{cmd.name}` needs {p.name.upper()}", f"usage: {cmd.usage}")
        setattr(ns, p.name, value)
    if queue:
        raise UsageError(f"`{cmd.name}` got an extra argument {queue[0]!r}", f"usage: {cmd.usage}")
