"""mmdebstrap: a Debian root filesystem as a tar, with its progress shown.

mmdebstrap draws its progress bars only when its stderr is its controlling
terminal, so it runs in a session of its own on a pty; the output is parsed:
``downloading:  52.45 [===>  ]`` becomes a progress event, ``I: running
apt-get update...`` an explain step, ``E: ...`` the error message.

The packages come from the mirror apt already uses on this machine (its
sources.list), else from deb.debian.org, mmdebstrap's default.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import shlex
import shutil
import signal
import struct
import subprocess
import termios
from pathlib import Path

from cshell.engine import trace
from cshell.errors import RuntimeFailure
from cshell.record import record

APT_SOURCES = Path("/etc/apt")
ANSI = re.compile(rb"\x1b\[[0-9;]*[A-Za-z]")
BAR = re.compile(r"^\s*([a-z][a-z ]*):\s+(\d+(?:\.\d+)?)")
MESSAGE = re.compile(r"^([IWE]): (.*)")
# Debian's slim images (debuerreotype --slimify) leave these out of every package.
SLIM_DPKG_OPTS = (
    "path-exclude=/usr/share/doc/*", "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/groff/*", "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/linda/*", "path-exclude=/usr/share/lintian/*",
    "path-exclude=/usr/share/locale/*", "path-exclude=/usr/share/man/*",
)


@record(frozen=True)
class Spec:
    """What to install: ``mmdebstrap --variant=VARIANT --include=... SUITE``."""

    suite: str = "bookworm"
    variant: str = "minbase"
    include: tuple[str, ...] = ()
    dpkg_opts: tuple[str, ...] = ()
    hooks: tuple[str, ...] = ()  # customize hooks: shell, "$1" is the new root


# -- the mirror ---------------------------------------------------------------------------


def mirror_lines(suite: str) -> list[str]:
    """``deb URI SUITE main`` lines for SUITE, -updates and -security from the host's apt
    sources; [] when the host has none for SUITE (then mmdebstrap uses deb.debian.org)."""
    wanted = (suite, f"{suite}-updates", f"{suite}-security")
    lines: list[str] = []
    for uri, suites, components in _apt_sources():
        for s in suites:
            line = f"deb {uri} {s} main"
            if s in wanted and "main" in components and line not in lines:
                lines.append(line)
    if not any(line.split()[2] == suite for line in lines):
        return []
    return sorted(lines, key=lambda line: wanted.index(line.split()[2]))


def _apt_sources() -> list[tuple[str, list[str], list[str]]]:
    """(uri, suites, components) of every enabled binary source."""
    found = []
    files = [APT_SOURCES / "sources.list", *sorted((APT_SOURCES / "sources.list.d").glob("*.list"))]
    for path in files:
        found += _one_line_sources(_read(path))
    for path in sorted((APT_SOURCES / "sources.list.d").glob("*.sources")):
        found += _deb822_sources(_read(path))
    return found


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _one_line_sources(text: str) -> list[tuple[str, list[str], list[str]]]:
    out = []
    for line in text.splitlines():
        words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()  # drop [options]
        if len(words) >= 4 and words[0] == "deb":
            out.append((words[1], [words[2]], words[3:]))
    return out


def _deb822_sources(text: str) -> list[tuple[str, list[str], list[str]]]:
    out = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue  # comments and continuation lines (Signed-By key blocks)
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            out.append((uri, fields.get("suites", "").split(), fields.get("components", "").split()))
    return out


# -- running it -----------------------------------------------------------------------------


def argv(spec: Spec, mirrors: list[str], out: Path, versions: Path) -> list[str]:
    args = ["mmdebstrap", f"--variant={spec.variant}", "--format=tar"]
    if spec.include:
        args.append("--include=" + ",".join(spec.include))
    args += [f"--dpkgopt={opt}" for opt in spec.dpkg_opts]
    args += [f"--customize-hook={hook}" for hook in spec.hooks]
    # The installed versions, for the cache's record (dpkg's database, read from outside).
    args.append("--customize-hook=dpkg-query --admindir=\"$1/var/lib/dpkg\" -W "
                f"-f='${{Package}}\\t${{Version}}\\n' > {shlex.quote(str(versions))}")
    return [*args, spec.suite, str(out), *mirrors]


def run(spec: Spec, out: Path, label: str, log: Path) -> dict[str, str]:
    """Build the root filesystem tar ``out``; return {package: version}."""
    if shutil.which("mmdebstrap") is None:
        raise RuntimeFailure("mmdebstrap is not installed",
                             "apt-get install mmdebstrap (make deps does this)")
    versions = out.with_name(out.name + ".versions")
    command = argv(spec, mirror_lines(spec.suite), out, versions)
    trace.step(shlex.join(command))
    try:
        _run_on_pty(command, label, log)
        return dict(line.split("\t", 1) for line in versions.read_text().splitlines() if "\t" in line)
    finally:
        versions.unlink(missing_ok=True)


def _run_on_pty(command: list[str], label: str, log: Path) -> None:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    try:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=slave, start_new_session=True, preexec_fn=_take_terminal)
    finally:
        os.close(slave)
    parser = _Parser(label)
    try:
        with open(log, "wb") as log_file, os.fdopen(master, "rb", buffering=0) as tty:
            while chunk := _read_tty(tty):
                log_file.write(chunk)
                parser.feed(chunk)
        status = proc.wait()
    except BaseException:  # Ctrl-C: mmdebstrap cleans its temp dir on SIGINT
        _stop(proc)
        raise
    if status != 0:
        reason = parser.errors[0] if parser.errors else f"exit status {status}"  # the cause, not the fallout
        raise RuntimeFailure(f"mmdebstrap failed: {reason}",
                             f"can apt reach the Debian mirror (apt-get update)? full log: {log}")


def _take_terminal() -> None:
    """In the child, after setsid: stderr (the pty) becomes the controlling terminal."""
    fcntl.ioctl(2, termios.TIOCSCTTY, 0)


def _read_tty(tty) -> bytes:  # noqa: ANN001 - a raw file on the pty master
    try:
        return tty.read(65536)
    except OSError:  # EIO: every writer of the pty has gone
        return b""


def _stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        proc.kill()
        proc.wait()


class _Parser:
    """mmdebstrap's terminal output -> progress, explain and error events."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.pending = b""
        self.status = ""
        self.errors: list[str] = []

    def feed(self, data: bytes) -> None:
        *segments, self.pending = re.split(rb"[\r\n]", self.pending + data)
        for segment in segments:
            self.segment(ANSI.sub(b"", segment).decode(errors="replace").strip())

    def segment(self, text: str) -> None:
        if not text:
            return
        if text == "done":
            if self.status:  # 100 only here: a bar is finished once, not also at "100.00"
                trace.progress(f"{self.label}: {self.status}", 100, 100)
            return
        if match := MESSAGE.match(text):
            kind, message = match.groups()
            if kind == "E":
                self.errors.append(message)
            trace.step(f"mmdebstrap: {message}")
            return
        if match := BAR.match(text):
            self.status = match[1]
            trace.progress(f"{self.label}: {self.status}", min(float(match[2]), 99.9), 100)
