"""ADD and COPY into an image, confined to the image's own root.

A destination path means what it means inside the image: `/bin` may be a
symlink to `usr/bin`, `/app` may already be a directory, and `--chown=www`
names a user of the image's /etc/passwd. So the copy runs where those
answers are true: a forked child unshares a mount namespace, mounts an
overlay of the image's layers with the new layer's directory as upperdir,
chroot()s into it and unpacks the tar stream the builder sends through a
pipe. Every path then resolves inside the image (an absolute symlink in a
layer points into the image, never into the host), and the upperdir ends up
holding exactly the step's changes: the new layer. The mount dies with the
child's mount namespace; the host's mount table never sees it.

Docker's rules kept here (moby builder/dockerfile/copy.go): a single file
goes to DEST itself unless DEST ends in '/' or is a directory in the image;
a directory's contents (not the directory) go into DEST; new parent
directories are made 0755 and owned like the files; without --chown files
are owned by 0:0; ADD extracts a local tar (gzip, bzip2, xz) into DEST.
"""

from __future__ import annotations

import contextlib
import glob
import os
import posixpath
import shutil
import signal
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, NoReturn

from cshell.engine.image import archive

from cshell.engine import trace
from cshell.engine.kernel import syscalls as sc
from cshell.engine.build.context import UNPACK_HEADER
from cshell.engine.kernel.processes import close_all_but
from cshell.errors import RuntimeFailure, reason


class CopyFailed(RuntimeFailure):
    """The child refused or could not write something into the image."""


def copy_into(staging: Path, lowerdirs: list[Path], header: dict[str, Any],
              send: Callable[[IO[bytes]], None]) -> Path:
    """Run one copy on an overlay of ``lowerdirs`` (bottom first); return the upper dir."""
    upper, work, merged, empty = (staging / d for d in ("upper", "work", "merged", "empty"))
    for d in (upper, work, merged, empty):
        d.mkdir(parents=True, exist_ok=True)
    lowers = [str(p) for p in reversed(lowerdirs)] or [str(empty)]  # overlayfs needs one lowerdir
    options = f"lowerdir={':'.join(lowers)},upperdir={upper},workdir={work}"
    trace.step(f"fork(); unshare(CLONE_NEWNS); mount -t overlay overlay -o {options} {merged}")
    trace.step(f"chroot({str(merged)!r}); tar -x into {header['dest']}  # the image's paths, the image's users")
    data_r, data_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(data_w)
        os.close(err_r)
        _child(str(merged), options, data_r, err_w, header)
    os.close(data_r)
    os.close(err_w)
    try:
        _feed(data_w, send)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(err_r)
        raise
    with os.fdopen(err_r, "rb") as r:
        problem = r.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if problem or os.waitstatus_to_exitcode(status) != 0:
        message, _, hint = (problem or "the copy process died").partition("\t")
        raise CopyFailed(message, hint or "nothing was written to the image")
    return upper


def _feed(fd: int, send: Callable[[IO[bytes]], None]) -> None:
    """Send the tar; a child that gave up closes the pipe early."""
    out = os.fdopen(fd, "wb")
    try:
        send(out)
    except BrokenPipeError:
        pass  # the child's own error says why
    finally:
        with contextlib.suppress(BrokenPipeError):
            out.close()


def export_from(staging: Path, lowerdirs: list[Path], sources: list[str]) -> tuple[Path, int, bool]:
    """COPY --from: tar SOURCES out of another image's root -> (tar file, sources matched, one file?).

    A forked child mounts a read-only overlay of the image's layers in its own mount
    namespace and chroot()s into it, so every path and every symlink of the source
    resolves inside that image, never on the host (an absolute link means the image's /).
    """
    merged, empty = staging / "from-root", staging / "from-empty"
    for d in (merged, empty):
        d.mkdir(parents=True, exist_ok=True)
    options = f"lowerdir={':'.join([*(str(p) for p in reversed(lowerdirs)), str(empty)])}"
    trace.step(f"fork(); unshare(CLONE_NEWNS); mount -t overlay overlay -o ro,{options} {merged}")
    trace.step(f"chroot({str(merged)!r}); tar -c {' '.join(sources)}  # the source image's paths and symlinks")
    tar_path = staging / "from.tar"
    out_fd = os.open(tar_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    info_r, info_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(info_r)
        _export_child(str(merged), options, out_fd, info_w, sources)
    os.close(info_w)
    os.close(out_fd)
    with os.fdopen(info_r, "rb") as r:
        answer = r.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0 or not answer.startswith("ok\t"):
        message, _, hint = (answer or "the copy process died").partition("\t")
        raise CopyFailed(message, hint or "nothing was written to the image")
    _, count, single = answer.split("\t")
    return tar_path, int(count), single == "1"


def _export_child(merged: str, options: str, out_fd: int, info_w: int, sources: list[str]) -> NoReturn:
    code = 0
    try:
        _enter_image(merged, options, sc.MS_RDONLY, keep={out_fd, info_w})
        tarfile.pwd = tarfile.grp = None  # type: ignore[attr-defined]  # no NSS: it would load the image's libraries
        with os.fdopen(out_fd, "wb") as out:
            count, single = _export(out, sources)
        os.write(info_w, f"ok\t{count}\t{int(single)}".encode())
    except BaseException as e:  # noqa: BLE001 - everything is reported to the parent
        _report(info_w, e, "cannot read the source image")
        code = 1
    os._exit(code)


def _export(out: IO[bytes], sources: list[str]) -> tuple[int, bool]:
    """Inside the source's root: a directory gives its contents, a file itself (a symlink is followed)."""
    found: list[str] = []
    for src in sources:
        path = posixpath.normpath("/" + src)
        names = sorted(glob.glob(path)) if set("*?[") & set(path) else [path]
        missing = [n for n in names if not os.path.exists(n)]
        if not names or missing:
            raise _Refused(f"{src}: no such file or directory in the source",
                           "check the path in that stage or image (e.g. run --rm IMAGE ls -l DIR)")
        found += names
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for name in found:
            real = os.path.realpath(name)  # resolved in the chroot: it cannot leave the image
            if os.path.isdir(real):
                for entry in sorted(os.listdir(real)):
                    tar.add(os.path.join(real, entry), arcname=entry, recursive=True)
            else:
                tar.add(real, arcname=posixpath.basename(name), recursive=False)
    return len(found), len(found) == 1 and os.path.isfile(found[0])


# -- the child, inside the image -----------------------------------------------------------------


def _child(merged: str, options: str, data_r: int, err_w: int, header: dict[str, Any]) -> NoReturn:
    code = 0
    try:
        _enter_image(merged, options, 0, keep={data_r, err_w})
        with os.fdopen(data_r, "rb") as stream:
            _apply(stream, header)
    except BaseException as e:  # noqa: BLE001 - everything is reported to the parent
        _report(err_w, e, "cannot write into the image")
        code = 1
    os._exit(code)


def _enter_image(merged: str, options: str, flags: int, keep: set[int]) -> None:
    """A copy child's way in: only its pipes open, its own private mount namespace, the image's
    overlay mounted (``flags``: MS_RDONLY to read a source) and made its root."""
    _preload()
    close_all_but({0, 1, 2, *keep})
    trace.set_listener(None)  # the parent shows the steps; a child must not print
    sc.unshare(sc.CLONE_NEWNS)
    sc.mount("none", "/", None, sc.MS_REC | sc.MS_PRIVATE)
    sc.mount("overlay", merged, "overlay", flags, options)
    os.chroot(merged)
    os.chdir("/")


def _report(fd: int, e: BaseException, doing: str) -> None:
    """Tell the parent "MESSAGE\tHINT": a refusal's own words, else what failed and why."""
    text = e.args[0] if isinstance(e, _Refused) else f"{doing}: {reason(e)}"
    hint = e.args[1] if isinstance(e, _Refused) else ""
    with contextlib.suppress(OSError):
        os.write(fd, f"{text}\t{hint}".encode()[:4000])


def _preload() -> None:
    """Import now what tarfile loads lazily: after chroot() there is no Python library."""
    import bz2  # noqa: F401
    import encodings.latin_1  # noqa: F401
    import gzip  # noqa: F401
    import lzma  # noqa: F401
    import zlib  # noqa: F401


class _Refused(Exception):
    """(message, hint) for the parent."""


def _apply(stream: IO[bytes], header: dict[str, Any]) -> None:
    owner = owner_of(header.get("chown"))
    dest: str = header["dest"]
    target, rename = dest, None
    if header["single"] and not dest.endswith("/") and not os.path.isdir(dest):
        target, rename = posixpath.dirname(dest.rstrip("/")) or "/", posixpath.basename(dest.rstrip("/"))
    make_dirs(target, owner or (0, 0))
    base = os.path.realpath(target)
    mode = header.get("chmod")
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for m in tar:
            if m.pax_headers.get(UNPACK_HEADER):
                _unpack_archive(tar.extractfile(m), base, owner)  # type: ignore[arg-type]
                continue
            name = rename or archive._safe_name(m.name)
            if name:
                write_member(tar, m, base, name, owner or (0, 0), mode)


def _unpack_archive(fileobj: IO[bytes], base: str, owner: tuple[int, int] | None) -> None:
    """ADD of a local archive: extract it under ``base`` (its own owners unless --chown)."""
    limit, total = archive.max_layer_bytes(), 0
    with tarfile.open(fileobj=fileobj, mode="r|*") as tar:
        for m in tar:
            try:
                name = archive._safe_name(m.name)
            except ValueError as e:
                raise _Refused(f"the archive is unsafe: {e}", "ADD refuses entries with '..' in their path") from None
            total += m.size if m.isreg() else 0
            if total > limit:  # a decompression bomb (or a sparse file of a terabyte) fills the disk otherwise
                raise _Refused(f"the archive expands past {archive.human(limit)} (CSHELL_MAX_LAYER_BYTES): "
                               "refused as a decompression bomb", archive.LIMIT_HINT)
            if name and not (m.ischr() or m.isblk()):  # device nodes are never made (runtime notes 1.8)
                write_member(tar, m, base, name, owner or (m.uid, m.gid), None)


def write_member(tar: tarfile.TarFile, m: tarfile.TarInfo, base: str, name: str,
                 owner: tuple[int, int], mode: int | None) -> None:
    parent = os.path.dirname(os.path.join(base, name))
    if not os.path.isdir(parent):
        make_dirs(parent, owner)
    real = os.path.realpath(parent)
    if real != base and not real.startswith(base.rstrip("/") + "/"):
        raise _Refused(f"{name} would be written through a symlink to {real}, outside {base}",
                       "a symlink in the image or the archive points elsewhere; Docker refuses this too")
    path = os.path.join(real, os.path.basename(name))
    _replace(path, m.isdir())
    if m.isdir():
        if not os.path.isdir(path):
            os.mkdir(path)
    elif m.isreg():
        with tar.extractfile(m) as src, open(path, "wb") as out:  # type: ignore[union-attr]
            shutil.copyfileobj(src, out, 1 << 20)
    elif m.issym():
        os.symlink(m.linkname, path)
    elif m.islnk():
        target = os.path.realpath(os.path.join(base, archive._safe_name(m.linkname)))
        if not target.startswith(base.rstrip("/") + "/"):
            raise _Refused(f"hard link {name} -> {m.linkname} leaves the destination", "")
        os.link(target, path)
        return
    elif m.isfifo():
        os.mkfifo(path)
    else:
        return
    os.lchown(path, *owner)
    if not m.issym():
        os.chmod(path, mode if mode is not None else m.mode & 0o7777)
        os.utime(path, (m.mtime, m.mtime))


def _replace(path: str, want_dir: bool) -> None:
    """Clear the way: anything but a directory that stays a directory is removed first."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        if not want_dir:
            shutil.rmtree(path)
    else:
        os.unlink(path)


def make_dirs(path: str, owner: tuple[int, int]) -> None:
    """mkdir -p where each new directory is 0755 and owned like the copied files."""
    current = "/"
    for part in [p for p in path.split("/") if p]:
        current = os.path.join(current, part)
        if os.path.isdir(current):
            continue
        try:
            os.mkdir(current, 0o755)
        except FileExistsError:
            raise _Refused(f"cannot copy into {path}: {current} exists in the image and is not a directory",
                           "choose another destination, or end it in / only when it is a directory") from None
        os.lchown(current, *owner)
        os.chmod(current, 0o755)


def owner_of(spec: str | None) -> tuple[int, int] | None:
    """--chown=USER[:GROUP], names looked up in the image (moby's parseChownFlag)."""
    if not spec:
        return None
    user, _, group = spec.partition(":")
    return _lookup(user, "/etc/passwd", "uid", "user"), _lookup(group or user, "/etc/group", "gid", "group")


def _lookup(name: str, table: str, what: str, kind: str) -> int:
    if name.isdigit():
        return int(name)
    try:
        with open(table, encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if len(fields) > 2 and fields[0] == name and fields[2].isdigit():
                    return int(fields[2])
    except FileNotFoundError:
        pass
    raise _Refused(f"unable to convert --chown: can't find {what} for {kind} {name}: no such {kind} in the "
                   f"image's {table}", "use numeric ids (--chown=1000:1000) or a name the image defines")
