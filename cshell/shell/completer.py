"""Tab completion, read from the command declarations and nothing else.

The completer knows the grammar only through ``REGISTRY``: command names
(two-word ones such as ``ns join`` too), each command's ``Opt.names``, and the
``complete`` hint of the option or positional being typed. The hint says where
values come from: containers and images on disk (``StateCache``, re-read at
most once a second), namespace kinds, or the command names themselves.

No rich here, and no engine work beyond reading state files: completion runs
while the user waits at the prompt.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from prompt_toolkit.completion import CompleteEvent, Completer, Completion, PathCompleter
from prompt_toolkit.document import Document

from cshell.commands.registry import (
    COMMAND,
    CONTAINER,
    CTR_OR_IMAGE,
    FILE,
    IMAGE,
    NETMODE,
    NSKIND,
    REGISTRY,
    RUNNING,
    TARGET,
    Command,
    Opt,
    Pos,
)
from cshell.engine.state import StateRoot
from cshell.record import factory, record

if TYPE_CHECKING:
    from cshell.engine.container.containers import Runtime

# Offered even before the first `run busybox` builds it (the store bootstraps it on use).
ALWAYS_IMAGES = ("busybox",)


@record(frozen=True)
class ContainerInfo:
    name: str
    short_id: str
    running: bool


class StateCache:
    """Containers and image names from the state root, re-read at most every ``ttl`` seconds."""

    def __init__(self, root: StateRoot, runtime: Runtime | None = None, ttl: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.root = root
        self._runtime = runtime
        self.ttl = ttl
        self.clock = clock
        self._containers: tuple[float, list[ContainerInfo]] | None = None
        self._images: tuple[float, list[str]] | None = None

    def invalidate(self) -> None:
        """Forget what was read (after a command ran: it may have started or removed one)."""
        self._containers = None
        self._images = None

    def _fresh(self, entry: tuple[float, object] | None) -> bool:
        return entry is not None and self.clock() - entry[0] < self.ttl

    def containers(self) -> list[ContainerInfo]:
        if not self._fresh(self._containers):
            self._containers = (self.clock(), self._read_containers())
        assert self._containers is not None
        return self._containers[1]

    def running(self) -> list[ContainerInfo]:
        return [c for c in self.containers() if c.running]

    def images(self) -> list[str]:
        if not self._fresh(self._images):
            self._images = (self.clock(), self._read_images())
        assert self._images is not None
        return self._images[1]

    def _read_containers(self) -> list[ContainerInfo]:
        try:
            if self._runtime is None:
                from cshell.engine.container.containers import Runtime

                self._runtime = Runtime(self.root)
            return [ContainerInfo(c.name, c.short_id, c.running) for c in self._runtime.list(all=True)]
        except Exception:  # noqa: BLE001 - no root yet, no permission, a half-written file: nothing to offer
            return []

    def networks(self) -> list[str]:
        """User-defined networks' names (a few small files: read each time)."""
        try:
            from cshell.engine.net.usernets import all_networks

            return [n.name for n in all_networks(self.root)]
        except Exception:  # noqa: BLE001 - completion never fails loudly
            return []

    def _read_images(self) -> list[str]:
        try:
            from cshell.engine.image.store import Store

            refs = Store(self.root).refs()
        except Exception:  # noqa: BLE001 - same: completion never fails loudly
            refs = []
        names: list[str] = []
        for ref in [*refs, *ALWAYS_IMAGES]:
            short = ref.removesuffix(":latest")  # what people type: busybox, not busybox:latest
            if short not in names:
                names.append(short)
        return names


@record
class ArgState:
    """Where the cursor is in a command's arguments (the words before the current one)."""

    pending: Opt | None = None  # the previous word is this option and it wants a value
    positionals: list[str] = factory(list)
    used: set[Opt] = factory(set)
    in_rest: bool = False  # inside the command line the command passes on (`exec web CMD...`)
    flags_done: bool = False  # after `--`: only positionals follow


def scan_args(cmd: Command, words: list[str]) -> ArgState:
    """Follow ``registry.parse`` far enough to know what the next word is."""
    state = ArgState()
    rest_index = next((i for i, p in enumerate(cmd.positionals) if p.rest), None)
    for word in words:
        if state.pending is not None:
            state.pending = None
        elif word == "--" and not state.flags_done:
            state.flags_done = True
            state.in_rest = rest_index is not None and len(state.positionals) >= rest_index
        elif word.startswith("-") and word != "-" and not state.flags_done:
            name, eq, _ = word.partition("=")
            opt = cmd.option(name)
            if opt is not None:
                state.used.add(opt)
                if opt.value is not None and not eq:
                    state.pending = opt
        elif rest_index is not None and len(state.positionals) >= rest_index:
            state.in_rest = True
        else:
            state.positionals.append(word)
        if state.in_rest:
            break
    return state


def positional_at(cmd: Command, index: int) -> Pos | None:
    """The declared positional that the ``index``-th positional word fills."""
    for pos in cmd.positionals:
        if pos.rest or pos.many or index == 0:
            return pos
        index -= 1
    return None


def _matching(candidates: Iterable[str], current: str, meta: Mapping[str, str] | None = None,
              exclude: Iterable[str] = ()) -> Iterator[Completion]:
    skip = set(exclude)
    seen: set[str] = set()
    for text in candidates:
        if text.startswith(current) and text not in skip and text not in seen:
            seen.add(text)
            yield Completion(text, -len(current), display_meta=(meta or {}).get(text, ""))


class CshellCompleter(Completer):
    def __init__(self, cache: StateCache, registry: Mapping[str, Command] | None = None) -> None:
        self.cache = cache
        self.registry = REGISTRY if registry is None else registry

    # -- entry point ----------------------------------------------------------------

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterator[Completion]:
        text = document.text_before_cursor
        if text.lstrip().startswith(("!", "#")):
            return  # a host command or a comment: not our grammar
        words = text.split()
        current = "" if not text or text[-1].isspace() else words.pop()
        yield from self.complete_words(words, current)

    def complete_words(self, words: list[str], current: str) -> Iterator[Completion]:
        if not words:
            yield from self._command_words([], current)
            return
        if len(words) == 1 and self._subcommands(words[0]):
            yield from self._command_words(words, current)
            if words[0] not in self.registry:
                return
        found = self._command(words)
        if found is not None:
            yield from self._arguments(*found, current)

    # -- command names ----------------------------------------------------------------

    def _subcommands(self, first: str) -> list[str]:
        return [name.split(" ", 1)[1] for name in self.registry if name.startswith(first + " ")]

    def _command_words(self, given: list[str], current: str) -> Iterator[Completion]:
        """The first word of a command, or the second of a two-word one (``ns `` -> ls, join)."""
        if not given:
            meta: dict[str, str] = {}
            for name, cmd in self.registry.items():
                first, _, sub = name.partition(" ")
                meta[first] = f"{meta[first]}, {sub}" if sub and first in meta else (
                    f"{first} {sub}" if sub else cmd.summary)
            yield from _matching(sorted(meta), current, meta)
        elif len(given) == 1:
            subs = self._subcommands(given[0])
            summaries = {s: self.registry[f"{given[0]} {s}"].summary for s in subs}
            yield from _matching(subs, current, summaries)

    def _command(self, words: list[str]) -> tuple[Command, list[str]] | None:
        if len(words) >= 2 and f"{words[0]} {words[1]}" in self.registry:
            return self.registry[f"{words[0]} {words[1]}"], words[2:]
        if words[0] in self.registry:
            return self.registry[words[0]], words[1:]
        return None

    # -- flags and values -----------------------------------------------------------------

    def _arguments(self, cmd: Command, args: list[str], current: str) -> Iterator[Completion]:
        state = scan_args(cmd, args)
        if state.in_rest:
            return  # the command line inside the container: its own words
        if state.pending is not None:
            yield from self._values(state.pending.complete, current, state)
        elif current.startswith("-") and not state.flags_done:
            yield from self._flags(cmd, current, state)
        else:
            pos = positional_at(cmd, len(state.positionals))
            if pos is not None and not pos.rest:
                yield from self._values(pos.complete, current, state)

    def _flags(self, cmd: Command, current: str, state: ArgState) -> Iterator[Completion]:
        name, eq, value = current.partition("=")
        opt = cmd.option(name)
        if eq and opt is not None and opt.value is not None:
            yield from self._values(opt.complete, value, state)  # --name=we -> web
            return
        names = [n for o in cmd.options if o.multi or o not in state.used for n in o.names]
        helps = {n: o.help for o in cmd.options for n in o.names}
        yield from _matching(names, current, helps)

    def _values(self, hint: str | None, current: str, state: ArgState) -> Iterator[Completion]:
        given = state.positionals
        if hint in (CONTAINER, RUNNING, CTR_OR_IMAGE):
            pool = self.cache.containers() if hint != RUNNING else self.cache.running()
            meta = {c.name: ("running" if c.running else "stopped") for c in pool}
            meta.update({c.short_id: c.name for c in pool})
            candidates = [c.name for c in pool] + [c.short_id for c in pool]
            yield from _matching(candidates, current, meta, exclude=given)
            if hint == CTR_OR_IMAGE:
                yield from _matching(self.cache.images(), current, exclude=given)
        elif hint == TARGET:
            running = self.cache.running()
            meta = {c.name: "running container" for c in running} | {"host": "this machine's namespaces"}
            candidates = ["host", *(c.name for c in running), *(c.short_id for c in running)]
            yield from _matching(candidates, current, meta, exclude=given)
        elif hint == IMAGE:
            yield from _matching(self.cache.images(), current)
        elif hint == NSKIND:
            yield from self._ns_kinds(current)
        elif hint == NETMODE:
            modes = ["bridge", "none", "host", *self.cache.networks(),
                     *(f"container:{c.name}" for c in self.cache.running())]
            yield from _matching(modes, current)
        elif hint == COMMAND:
            # a cshell command name (`help ns join`); a command line inside a container is never offered
            yield from self._command_words(given, current)
        elif hint == FILE:
            yield from PathCompleter(expanduser=True).get_completions(
                Document(current), CompleteEvent(completion_requested=True))

    @staticmethod
    def _ns_kinds(current: str) -> Iterator[Completion]:
        """``net,u`` -> uts, user: complete the part after the last comma."""
        from cshell.engine.kernel.namespaces import JOINABLE

        head, _, part = current.rpartition(",")
        chosen = set(head.split(",")) if head else set()
        yield from _matching(JOINABLE, part, exclude=chosen)
