"""Parity mode: `cshell --script LESSON --parity docker`.

Each container command of the lesson runs through cshell as usual, then the
same command line through Docker; the two results are compared the way a
student would compare them (exit status, then what was printed, once ids,
addresses, times and sizes are set aside) and shown side by side with each
one's time. Commands Docker has no word for (`ns`, `layer`, `cgroup`, ...) are
named once. Docker must already be running (`docker version` answers), the
same client a student would use: `docker` on PATH, or `$CSHELL_DOCKER`.

Docker works beside cshell, never on cshell's things: published host ports
are moved up by PORT_SHIFT (the same port cannot be bound twice), names pushed
to a registry get a `docker-parity/` repository prefix, files written by
`save`/`export` get a `.docker` suffix, and the images a Docker command needs
are handed over from cshell's store (`save` piped into `docker load`). What
Docker had before the run is kept; what the run made in it is removed at the
end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cshell.errors import CShellError, UsageError

if TYPE_CHECKING:
    from cshell.commands.context import Context
    from cshell.engine.image.store import Store

PORT_SHIFT = 10000
REPO_PREFIX = "docker-parity/"
DOCKER_TIMEOUT = 120.0
# Docker has these too, with the same words: each is mirrored.
MIRRORED = {"run", "create", "exec", "ps", "logs", "stop", "start", "restart", "rm", "kill", "inspect", "images",
            "history", "tag", "rmi", "commit", "save", "load", "export", "import", "pull", "push", "login",
            "logout", "build", "volume", "cp", "top", "pause", "unpause", "wait", "port", "rename", "diff"}
# What the student reads is the container's output or a table: compare it. For the
# rest (build logs, pull progress, ids) the exit status is what both must agree on.
OUTPUT_COMPARED = {"run", "exec", "logs", "ps", "images", "history", "volume", "inspect", "top", "port", "diff",
                   "cp", "wait"}
SUBCOMMANDS_WITHOUT_DOCKER = {("image", "bootstrap"), ("history", "export"), ("system", "check")}
# A registry host: has a dot or a port, or is localhost (docker's rule for the first component).
REGISTRY_HOST = re.compile(r"^(?:[^/]*[.:][^/]*|localhost)/")
# Command lines whose difference is deliberate: the row of docs/differences.md that says why.
# Only a line that differs is looked up, so a pattern may be broad.
KNOWN = (
    (re.compile(r"^history\b"), "D3"),
    (re.compile(r"^volume\s+(?:ls|list)\b"), "D6"),
    (re.compile(r"/proc/(?:self|\d+|\$\w+)/cgroup\b"), "D10"),
    (re.compile(r"\bls\b.*\s-\w*a\w*\s+/\s*$"), "D1"),
    (re.compile(r"grep\s+'\s*/\s+/\s*'\s+/proc/(?:self|1)/mountinfo"), "D12"),  # the root mount's own line
    (re.compile(r"/proc/(?:self|1)/mountinfo\b"), "D2"),
    (re.compile(r"^exec\b.*(?:\bps\b|/proc/\[0-9\]|\$\$)"), "D11"),
)


@dataclass
class Outcome:
    status: int
    output: str
    seconds: float


@dataclass
class Row:
    step: int
    text: str
    cshell: Outcome
    docker: Outcome | None
    compared: str  # "output" or "status"
    same: bool
    why: str = ""
    known: str = ""  # the row of docs/differences.md a difference is listed under ("D3")


@dataclass
class Twin:
    """Docker, run beside a lesson: one mirrored command at a time."""

    ctx: Context
    docker: str
    rows: list[Row] = field(default_factory=list)
    unmirrored: dict[str, int] = field(default_factory=dict)  # command word -> first step it appeared in
    ports: dict[str, str] = field(default_factory=dict)  # a published host port -> Docker's
    before: dict[str, set[str]] = field(default_factory=dict)
    roots: tuple[str, ...] = ()  # cshell's state root, Docker's data-root

    # -- start and end ---------------------------------------------------------------------------

    @classmethod
    def open(cls, ctx: Context, engine: str) -> Twin:
        if engine != "docker":
            raise UsageError(f"cannot compare with {engine!r}", "--parity docker (the only engine compared so far)")
        docker = os.environ.get("CSHELL_DOCKER") or shutil.which("docker")
        if not docker:
            raise UsageError("--parity docker: no docker client here",
                             "install Docker (apt-get install docker.io), or set CSHELL_DOCKER to its client")
        twin = cls(ctx, docker)
        version = twin._docker(["version", "--format", "{{.Server.Version}}"], timeout=15)
        if version.returncode != 0:
            raise UsageError("--parity docker: Docker's daemon does not answer",
                             "start it (dockerd, or systemctl start docker), or point DOCKER_HOST at it")
        twin.before = twin._inventory()
        docker_root = twin._docker(["info", "--format", "{{.DockerRootDir}}"]).stdout.strip()
        twin.roots = tuple(r for r in (docker_root, str(ctx.root.path)) if r)
        return twin

    def close(self) -> list[str]:
        """Remove what the run made in Docker: containers, then images, then volumes."""
        now = self._inventory()
        made = {kind: sorted(now[kind] - self.before.get(kind, set())) for kind in now}
        if made["containers"]:
            self._docker(["rm", "-f", "-v", *made["containers"]])
        if made["images"]:
            self._docker(["rmi", "-f", *made["images"]])
        dangling = self._docker(["images", "-q", "--filter", "dangling=true"]).stdout.split()
        fresh = [i for i in dangling if i not in self.before.get("ids", set())]
        if fresh:
            self._docker(["rmi", "-f", *fresh])
        if made["volumes"]:
            self._docker(["volume", "rm", "-f", *made["volumes"]])
        return [f"{len(v)} {k}" for k, v in made.items() if v and k != "ids"]

    def _inventory(self) -> dict[str, set[str]]:
        def listed(*args: str) -> set[str]:
            return set(self._docker(list(args)).stdout.split())

        return {"containers": listed("ps", "-aq", "--no-trunc"),
                "images": listed("images", "--format", "{{.Repository}}:{{.Tag}}") - {"<none>:<none>"},
                "ids": listed("images", "-q"),
                "volumes": listed("volume", "ls", "-q")}

    # -- one command ------------------------------------------------------------------------------

    def mirror(self, step: int, text: str, cshell: Outcome) -> Row | None:
        """Run the cshell command `text` through Docker too; None when Docker has no such command."""
        words = _split(text)
        if not words:
            return None
        if words[0] not in MIRRORED or tuple(words[:2]) in SUBCOMMANDS_WITHOUT_DOCKER:
            self.unmirrored.setdefault(" ".join(words[:2]) if words[0] in {"image", "history", "system"}
                                       else words[0], step)
            return None
        args = self._translate(words)
        self._hand_over(words, args)
        began = time.monotonic()
        done = self._docker(args, env={"DOCKER_BUILDKIT": "0"}, merged=True)  # as the lesson shows cshell's
        docker = Outcome(done.returncode, done.stdout, time.monotonic() - began)
        row = self._compare(step, text, words[0], cshell, docker)
        self._log(row)
        return row

    def mirror_host(self, step: int, text: str, cshell: Outcome) -> Row | None:
        """A host command that reaches a published port (`curl localhost:4000`) asks Docker's port too."""
        moved = self._move_ports(text)
        if moved == text:
            return None
        began = time.monotonic()
        done = subprocess.run(["/bin/sh", "-c", moved], capture_output=True, text=True, timeout=DOCKER_TIMEOUT,
                              check=False)
        docker = Outcome(done.returncode, done.stdout, time.monotonic() - began)
        row = self._compare(step, "!" + text, "!", cshell, docker, compared="output")
        self._log(row)
        return row

    def _log(self, row: Row) -> None:
        """Keep the row; with $CSHELL_PARITY_LOG, append it as a JSON line (both outputs whole)."""
        self.rows.append(row)
        path = os.environ.get("CSHELL_PARITY_LOG")
        if path:
            with contextlib.suppress(OSError), open(path, "a") as f:
                f.write(json.dumps(dataclasses.asdict(row), ensure_ascii=False) + "\n")

    def _compare(self, step: int, text: str, verb: str, cshell: Outcome, docker: Outcome,
                 compared: str | None = None) -> Row:
        compared = compared or ("output" if verb in OUTPUT_COMPARED else "status")
        if cshell.status != docker.status:
            return Row(step, text, cshell, docker, compared, False,
                       f"exit {cshell.status} here, {docker.status} under Docker", known_difference(text))
        if compared == "output":
            mine = normalise(_drop_own_lines(cshell.output, CSHELL_OWN), self.roots)
            theirs = normalise(_drop_own_lines(self._unmove(docker.output), DOCKER_OWN), self.roots)
            if mine != theirs:
                return Row(step, text, cshell, docker, compared, False, first_difference(mine, theirs),
                           known_difference(text))
        return Row(step, text, cshell, docker, compared, True)

    # -- what Docker is asked ---------------------------------------------------------------------

    def _translate(self, words: list[str]) -> list[str]:
        args: list[str] = []
        i = 0
        while i < len(words):
            word = words[i]
            if word in ("-p", "--publish") and i + 1 < len(words):
                args += [word, self._publish(words[i + 1])]
                i += 2
                continue
            if word.startswith("--publish="):
                word = "--publish=" + self._publish(word.partition("=")[2])
            elif words[0] in ("save", "export") and word in ("-o", "--output") and i + 1 < len(words):
                args += [word, words[i + 1] + ".docker"]
                i += 2
                continue
            elif words[0] in ("load", "import") and word in ("-i", "--input") and i + 1 < len(words):
                theirs = words[i + 1] + ".docker"
                args += [word, theirs if os.path.exists(theirs) else words[i + 1]]
                i += 2
                continue
            args.append(_prefixed(word))
            i += 1
        return args

    def _publish(self, spec: str) -> str:
        """-p [IP:]HOST:CTR[/proto] -> the same with HOST moved up by PORT_SHIFT."""
        parts = spec.split(":")
        if len(parts) < 2 or not parts[-2].isdigit():
            return spec  # -p 80 (a port Docker picks) or a range: nothing to move
        mine = parts[-2]
        theirs = str(int(mine) + PORT_SHIFT)
        self.ports[mine] = theirs
        parts[-2] = theirs
        return ":".join(parts)

    def _move_ports(self, text: str) -> str:
        for mine, theirs in self.ports.items():
            text = re.sub(rf"(?<=:){mine}\b", theirs, text)
        return text

    def _unmove(self, output: str) -> str:
        for mine, theirs in self.ports.items():
            output = re.sub(rf"(?<=:){theirs}\b", mine, output)
        return output.replace(REPO_PREFIX, "")

    def _hand_over(self, words: list[str], args: list[str]) -> None:
        """Give Docker the images of cshell's store that this command names and Docker lacks."""
        store = self.ctx.runtime.store
        wanted = _inputs(words, args)
        for mine, theirs in wanted:
            if mine.startswith("-") or not _in_store(store, mine):
                continue
            if self._docker(["image", "inspect", theirs]).returncode == 0:
                continue
            self._load(mine)
            if theirs != mine:
                self._docker(["tag", mine, theirs])

    def _load(self, ref: str) -> None:
        from cshell.engine.image.transfer import save

        proc = subprocess.Popen([self.docker, "load", "-q"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        assert proc.stdin is not None
        try:
            save(self.ctx.runtime.store, [ref], proc.stdin)
        finally:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
            proc.wait(timeout=DOCKER_TIMEOUT)

    def _docker(self, args: list[str], timeout: float = DOCKER_TIMEOUT, env: dict[str, str] | None = None,
                merged: bool = False) -> subprocess.CompletedProcess[str]:
        """`docker ARGS`; with ``merged``, stderr is interleaved into stdout (the container's own
        stderr is part of what the student reads)."""
        try:
            return subprocess.run([self.docker, *args], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT if merged else subprocess.PIPE, text=True,
                                  timeout=timeout, stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})},
                                  check=False)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(args, 124, "", f"no answer from Docker in {timeout:g} s")


# Each engine's own messages (a refusal, a warning), worded by each its own way: the exit status
# compares them. What the container's programs print on stderr is compared like stdout.
CSHELL_OWN = re.compile(r"^(?:[Ee]rror|hint|warning): ")
DOCKER_OWN = re.compile(r"^(?:Error(?: response from daemon)?:|docker: |WARNING: |See 'docker )")


def _drop_own_lines(output: str, own: re.Pattern[str]) -> str:
    return "".join(line for line in output.splitlines(keepends=True) if not own.match(line))


def known_difference(text: str) -> str:
    """The row of docs/differences.md that explains why `text` differs under Docker, or ""."""
    line = text.lstrip("!").strip()
    return next((row for pattern, row in KNOWN if pattern.search(line)), "")


def _in_store(store: Store, word: str) -> bool:
    try:
        return store.find(word) is not None
    except CShellError:  # not an image name at all (a path, a command, a flag's value)
        return False


def _split(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:
        return []


def _prefixed(word: str) -> str:
    """registry/repo:tag -> registry/docker-parity/repo:tag, so Docker's pushes never overwrite cshell's."""
    m = REGISTRY_HOST.match(word)
    if not m or word.startswith(("/", ".", "http")) or " " in word:
        return word
    return m.group(0) + REPO_PREFIX + word[m.end():]


def _inputs(words: list[str], args: list[str]) -> list[tuple[str, str]]:
    """The images a command reads (cshell's name, Docker's name): never one it makes, since
    cshell ran first and already has `build -t X`'s or `commit`'s result."""
    verb = words[0]
    if verb == "build":
        return [(f, f) for f in _from_images(words)]
    if verb in ("commit", "pull", "rmi", "images", "load", "import", "login", "logout", "ps", "volume"):
        return []
    pairs = list(zip(words, args, strict=False))[1:]
    if verb == "tag":
        return [p for p in pairs if not p[0].startswith("-")][:1]
    return pairs


def _from_images(words: list[str]) -> list[str]:
    """The FROM images of the Dockerfile a `build` line uses (they must be in Docker first)."""
    if words[0] != "build":
        return []
    dockerfile, context = None, None
    i = 1
    while i < len(words):
        if words[i] in ("-f", "--file") and i + 1 < len(words):
            dockerfile = words[i + 1]
            i += 2
            continue
        if words[i] in ("-t", "--tag", "--target", "--build-arg") and i + 1 < len(words):
            i += 2
            continue
        if not words[i].startswith("-"):
            context = words[i]
        i += 1
    path = Path(dockerfile) if dockerfile else Path(context or ".") / "Dockerfile"
    if dockerfile and not path.is_absolute() and not path.exists() and context:
        path = Path(context) / dockerfile
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    images = []
    for line in lines:
        parts = line.split()
        if len(parts) >= 2 and parts[0].upper() == "FROM":
            image = next((p for p in parts[1:] if not p.startswith("--")), None)
            if image and image.lower() != "scratch":
                images.append(image)
    return images


# -- comparing what each printed ---------------------------------------------------------------------

_NORMALISERS = [
    (re.compile(r"^\s*… .*$\n?", re.M), ""),  # cshell's progress notes (stderr), not the command's output
    (re.compile(r"\b(net|pid|mnt|uts|ipc|user|cgroup|time):\[\d+\]"), r"\1:[<inode>]"),
    (re.compile(r"^\d+: (?=\w+[@:\s])", re.M), "<ifindex>: "),  # `ip -o addr`: the host's counter numbers links
    (re.compile(r"@if\d+\b"), "@if<ifindex>"),  # eth0's peer: the veth's index on the host
    (re.compile(r"\b(?:[0-9a-f]{2}:){5}[0-9a-f]{2}\b"), "<mac>"),  # made from the address, which differs
    (re.compile(r"^\d+$", re.M), "<n>"),  # a number alone on its line: a PID, a count of things made
    (re.compile(r"sha256:[0-9a-f]{64}"), "sha256:<id>"),
    (re.compile(r"\b[0-9a-f]{64}\b"), "<id>"),
    (re.compile(r"\b[0-9a-f]{12}\b"), "<id>"),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?:/\d+)?\b"), "<ip>"),
    (re.compile(r"\b\d{4}-\d\d-\d\dT[\d:.]+(?:Z|[+-]\d\d:\d\d)\b"), "<time>"),
    (re.compile(r"(?:About an?|Less than a|\d+) (?:second|minute|hour|day|week|month|year)s? ago"), "<ago>"),
    (re.compile(r"Up (?:About an?|Less than a|\d+) (?:second|minute|hour|day)s?"), "Up <for>"),
    (re.compile(r"\b\d+(?:\.\d+)?\s?(?:B|kB|KB|MB|GB)\b"), "<size>"),
    (re.compile(r"\b\d+(?:\.\d+)?%"), "<pct>"),  # a measured share (top's %CPU, %VSZ): never the same twice
    (re.compile(r"[ \t]+"), " "),
]


def normalise(text: str, roots: tuple[str, ...] = ()) -> str:
    for root in roots:  # where each engine keeps its state: volumes' Source, layers' paths
        text = text.replace(root, "<root>")
    for pattern, replacement in _NORMALISERS:
        text = pattern.sub(replacement, text)
    return "\n".join(line.strip() for line in text.strip().splitlines())


def first_difference(mine: str, theirs: str) -> str:
    a, b = mine.splitlines(), theirs.splitlines()
    for i in range(max(len(a), len(b))):
        left = a[i] if i < len(a) else "(nothing)"
        right = b[i] if i < len(b) else "(nothing)"
        if left != right:
            return f"line {i + 1}: {_short(left)!r} here, {_short(right)!r} under Docker"
    return "the same lines, spaced differently"


def _short(line: str, width: int = 60) -> str:
    return line if len(line) <= width else line[: width - 1] + "…"
