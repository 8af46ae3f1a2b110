"""The build context: the directory `build` reads ADD and COPY sources from.

Only what is inside the context can reach an image: a source that climbs out
(``../x``), or a symlink that points out of it, is refused, and
``.dockerignore`` hides files exactly as docker's patternmatcher does (Go
``filepath.Match`` syntax plus ``**``, ``!`` exceptions, the last matching
line wins, a pattern that matches a directory hides what is inside it).

For each ADD/COPY the sources become a ``CopyPlan``: the entries to write,
named relative to the destination, and the sha256 of their names, types,
modes, link targets and contents. That digest is the step's cache key part:
the content decides, not timestamps (as docker: ``touch`` changes nothing).
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from cshell.errors import NotFound, UsageError
from cshell.record import factory, record

try:  # the builtin sha256 (hashlib would load OpenSSL, ~10 ms)
    from _sha256 import sha256 as _sha256
except ImportError:
    from hashlib import sha256 as _sha256

UNPACK_HEADER = "CSHELL.unpack"  # pax header: extract this archive into the destination (ADD)
GLOB_CHARS = frozenset("*?[")
MAX_LINKS = 40  # symlink hops while resolving a source, like the kernel's limit
COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")


# -- .dockerignore -------------------------------------------------------------------------


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """Go filepath.Match syntax plus `**` as a regexp (moby/patternmatcher's compile)."""
    out, i = ["^"], 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            if i < len(pattern) and pattern[i] == "*":
                i += 1
                if i < len(pattern) and pattern[i] == "/":
                    i += 1  # `**/` is `**`
                out.append(".*" if i >= len(pattern) else "(.*/)?")
            else:
                out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\":
            out.append(re.escape(pattern[i]) if i < len(pattern) else "\\\\")
            i += 1
        elif ch in "[]":
            out.append(ch)
        else:
            out.append(re.escape(ch))
    out.append("$")
    try:
        return re.compile("".join(out))
    except re.error as e:
        raise UsageError(f"bad pattern {pattern!r}: {e}", "patterns use *, ?, [a-z] and **") from None


@record
class Ignore:
    """The rules of a .dockerignore: (regexp, is an exception) in file order."""

    rules: list[tuple[re.Pattern[str], bool]] = factory(list)

    @property
    def has_exceptions(self) -> bool:
        return any(exception for _, exception in self.rules)

    @classmethod
    def read(cls, path: Path) -> Ignore:
        try:
            text = path.read_text(errors="replace")
        except FileNotFoundError:
            return cls()
        rules = []
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            exception = line.startswith("!")
            if exception:
                line = line[1:].strip()
                if not line:
                    raise UsageError(f".dockerignore:{number}: illegal exclusion pattern: \"!\"",
                                     "write !PATTERN to keep files an earlier line ignores")
            line = posixpath.normpath(line)
            if len(line) > 1 and line.startswith("/"):
                line = line.lstrip("/")  # patterns are relative to the context's root
            rules.append((pattern_regex(line), exception))
        return cls(rules)

    def excluded(self, rel: str) -> bool:
        """The last matching line decides; a match on a parent directory counts."""
        matched = False
        parents = posixpath.dirname(rel).split("/") if "/" in rel else []
        for regex, exception in self.rules:
            if exception != matched:
                continue  # an inclusion only matters while unmatched, an exception once matched
            hit = bool(regex.match(rel)) or any(regex.match("/".join(parents[:i + 1]))
                                                for i in range(len(parents)))
            if hit:
                matched = not exception
        return matched


# -- sources ---------------------------------------------------------------------------------


@record(frozen=True)
class Entry:
    name: str  # relative to the destination directory
    path: Path  # on the host
    kind: str  # "file", "dir", "symlink", or "archive" (ADD: extract into the destination)
    mode: int
    size: int = 0
    link: str = ""
    mtime: float = 0


@record
class CopyPlan:
    entries: list[Entry]
    single_file: bool  # one regular file: DEST may name the file itself
    label: str  # docker's history form: file:<hex>, dir:<hex> or multi:<hex>
    digest: str  # what the cache key uses
    total: int  # content bytes to copy
    sources: int  # how many sources (after wildcards): more than one needs DEST/


class BuildContext:
    def __init__(self, root: Path, ignore_file: Path | None = None) -> None:
        self.root = root.resolve()
        self.ignore = Ignore.read(ignore_file or self.root / ".dockerignore")

    # -- where a source is -------------------------------------------------------------

    def clean(self, src: str) -> str:
        """A source as a path relative to the root; `..` out of it is refused (as docker)."""
        rel = posixpath.normpath(src.lstrip("/") or ".")
        if rel == ".." or rel.startswith("../"):
            raise UsageError(f"forbidden path outside the build context: {src}",
                             "ADD and COPY only see files inside the build directory; move the file into it")
        return "" if rel == "." else rel

    def resolve(self, rel: str) -> tuple[str, Path]:
        """Follow symlinks inside the context; refuse one that leads out. -> (rel, host path)."""
        parts, done, hops = [p for p in rel.split("/") if p], "", 0
        while parts:
            part = parts.pop(0)
            candidate = f"{done}/{part}" if done else part
            path = self.root / candidate
            try:
                st = os.lstat(path)
            except (FileNotFoundError, NotADirectoryError):
                raise self._missing(rel) from None
            if not stat.S_ISLNK(st.st_mode):
                done = candidate
                continue
            hops += 1
            target = os.readlink(path)
            inside = posixpath.normpath(posixpath.join(done, target)) if not target.startswith("/") else None
            if hops > MAX_LINKS or inside is None or inside == ".." or inside.startswith("../"):
                raise UsageError(f"{candidate} is a symlink to {target}, outside the build context",
                                 "a build only reads files inside its directory: copy the real file in")
            parts = [p for p in inside.split("/") if p and p != "."] + parts
            done = ""
        if rel and (self.ignore.excluded(rel) or (done and self.ignore.excluded(done))):
            raise self._missing(rel)
        return done, self.root / done if done else self.root

    def _missing(self, rel: str) -> NotFound:
        return NotFound(f"file not found in build context or excluded by .dockerignore: {rel}",
                        f"check the name (ls {self.root}) and the .dockerignore patterns")

    def glob(self, pattern: str) -> list[str]:
        """Context paths matching a wildcard source (files and directories, sorted)."""
        regex = pattern_regex(pattern)
        found: list[str] = []
        for rel, _ in self.walk(""):
            if regex.match(rel) and not any(rel.startswith(f + "/") for f in found):
                found.append(rel)
        return found

    def walk(self, top: str) -> Iterator[tuple[str, os.stat_result]]:
        """Every path under ``top`` (relative to the root) that .dockerignore keeps, sorted."""
        base = self.root / top if top else self.root
        try:
            names = sorted(os.listdir(base))
        except OSError:
            return
        for name in names:
            rel = f"{top}/{name}" if top else name
            st = os.lstat(self.root / rel)
            hidden = self.ignore.excluded(rel)
            if not hidden:
                yield rel, st
            if stat.S_ISDIR(st.st_mode) and (not hidden or self.ignore.has_exceptions):
                yield from self.walk(rel)

    # -- what a step copies ----------------------------------------------------------------

    def plan(self, sources: list[str], instruction: str, extract_archives: bool) -> CopyPlan:
        found: list[tuple[str, str, Path]] = []  # (as named, resolved, host path)
        for src in sources:
            if re.match(r"^[a-z][a-z0-9+.-]*://|^git@", src):
                raise UsageError(f"{instruction} from a URL ({src}) is not supported: builds here have no network",
                                 "download the file into the build directory first, then COPY it")
            rel = self.clean(src)
            names = self.glob(rel) if GLOB_CHARS & set(rel) else [rel]
            if not names:
                raise NotFound(f"no source files were specified: nothing matches {src}",
                               f"check the pattern against the files in {self.root}")
            found += [(name, *self.resolve(name)) for name in names]
        entries: list[Entry] = []
        for named, rel, path in found:
            entries += self._entries(posixpath.basename(named) or path.name, rel, path, extract_archives)
        is_dir = os.path.isdir(found[0][2])
        single = len(found) == 1 and not is_dir and entries[0].kind == "file"
        digest = _digest(entries)
        kind = "multi" if len(found) > 1 else ("dir" if is_dir else "file")
        return CopyPlan(entries, single, f"{kind}:{digest[7:]}", digest,
                        sum(e.size for e in entries if e.kind in ("file", "archive")), len(found))

    def _entries(self, name: str, rel: str, path: Path, extract_archives: bool) -> list[Entry]:
        st = os.stat(path)
        if stat.S_ISREG(st.st_mode):
            kind = "archive" if extract_archives and is_archive(path) else "file"
            return [Entry(name, path, kind, stat.S_IMODE(st.st_mode), st.st_size, mtime=st.st_mtime)]
        if not stat.S_ISDIR(st.st_mode):
            raise UsageError(f"{rel or '.'} is not a regular file or directory", "COPY copies files and directories")
        out = []
        for sub, sst in self.walk(rel):
            inner = sub[len(rel) + 1:] if rel else sub
            host = self.root / sub
            mode = stat.S_IMODE(sst.st_mode)
            if stat.S_ISDIR(sst.st_mode):
                out.append(Entry(inner, host, "dir", mode, mtime=sst.st_mtime))
            elif stat.S_ISREG(sst.st_mode):
                out.append(Entry(inner, host, "file", mode, sst.st_size, mtime=sst.st_mtime))
            elif stat.S_ISLNK(sst.st_mode):
                out.append(Entry(inner, host, "symlink", 0o777, link=os.readlink(host), mtime=sst.st_mtime))
            # sockets, fifos and devices in a context are not copied
        return out


def is_archive(path: Path) -> bool:
    """ADD extracts local archives: gzip, bzip2, xz or a plain tar, by content (as docker)."""
    with open(path, "rb") as f:
        head = f.read(512)
    if head.startswith(COMPRESSED_MAGIC):
        return True
    return len(head) == 512 and head[257:262] == b"ustar"


def _digest(entries: list[Entry]) -> str:
    h = _sha256()
    for e in entries:
        content = _file_digest(e.path) if e.kind in ("file", "archive") else ""
        h.update(f"{e.name}\0{e.kind}\0{e.mode:o}\0{e.link}\0{content}\n".encode())
    return "sha256:" + h.hexdigest()


def _file_digest(path: Path) -> str:
    h = _sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


# -- the stream a COPY step sends into the image ------------------------------------------------


class _Counting:
    """A write-only file that reports how many bytes went through it."""

    def __init__(self, out: IO[bytes], report: Callable[[int], None]) -> None:
        self.out, self.report, self.done = out, report, 0

    def write(self, data: bytes) -> int:
        n = self.out.write(data)
        self.done += len(data)
        self.report(self.done)
        return n


def write_tar(plan: CopyPlan, out: IO[bytes], report: Callable[[int], None] | None = None) -> None:
    """The plan's entries as a tar stream, named relative to the destination."""
    sink = _Counting(out, report) if report else out
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[arg-type]
        for e in plan.entries:
            info = tarfile.TarInfo(e.name)
            info.mode, info.mtime = e.mode, int(e.mtime)
            if e.kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif e.kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, e.link
                tar.addfile(info)
            else:
                info.size = e.size
                if e.kind == "archive":
                    info.pax_headers = {UNPACK_HEADER: "1"}
                with open(e.path, "rb") as f:
                    tar.addfile(info, f)
