"""layer stack, layer diff, layer whereis: on real containers, plus the lookup on hand-made layers."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Cshell

from cshell.engine.container.layers import (
    ABSENT,
    FILE,
    NOTDIR,
    SYMLINK,
    WHITEOUT,
    _through_link,
    probe,
    split_path,
)
from cshell.errors import UsageError

# The container's changes, one of each kind: a new file, an image file deleted, an image file
# modified (copied up), a directory replaced (opaque), and a symlink pointing at a host-looking path.
CHANGES = ("echo hi > /new.txt; rm /etc/group; echo x >> /etc/passwd; "
           "rm -rf /usr/sbin; mkdir /usr/sbin; touch /usr/sbin/tool; "
           "ln -s /etc /lnk; ln -s /tmp /t")


def ok(proc) -> str:  # noqa: ANN001 - CompletedProcess
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc.stdout


def failed(proc) -> str:  # noqa: ANN001
    """A one-line error with a hint, exit status 1, no traceback: returns stderr."""
    assert proc.returncode == 1, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-2].startswith("error: ") and lines[-1].startswith("hint: "), proc.stderr
    return proc.stderr


@pytest.fixture
def web(cshell: Cshell) -> Iterator[str]:
    """A running busybox container named web with CHANGES applied; its id."""
    cid = ok(cshell("run", "-d", "--name", "web", "busybox", "sleep", "1000")).strip()
    try:
        ok(cshell("exec", "web", "sh", "-c", CHANGES))
        yield cid
    finally:
        cshell("rm", "-f", "web")


def busybox_digest(cshell: Cshell) -> str:
    data = json.loads(ok(cshell("inspect", "busybox")))
    return data[0]["RootFS"]["Layers"][0][7:19]


def on_disk(out: str) -> list[str]:
    """Every host path whereis reports (on disk / original / hidden / below lines)."""
    return re.findall(r"^\s*(?:on disk|original|hidden|below):\s+(\S+)", out, re.M)


# -- layer diff ------------------------------------------------------------------------------------


@pytest.mark.kernel
def test_diff_lists_exactly_the_changes(cshell: Cshell, web: str) -> None:
    out = ok(cshell("layer", "diff", "web"))
    assert out.splitlines() == [
        "C /etc", "D /etc/group", "C /etc/passwd", "A /lnk", "A /new.txt", "A /t",
        "C /usr", "C /usr/sbin", "A /usr/sbin/tool",
    ]
    assert "\x1b[" not in out  # piped: plain


@pytest.mark.kernel
def test_diff_of_an_untouched_container_is_empty(cshell: Cshell) -> None:
    ok(cshell("run", "-d", "--name", "idle", "busybox", "sleep", "1000"))
    try:
        proc = cshell("layer", "diff", "idle")
        assert ok(proc) == "" and "nothing changed" in proc.stderr
    finally:
        cshell("rm", "-f", "idle")


# -- layer whereis -----------------------------------------------------------------------------------


@pytest.mark.kernel
def test_whereis_names_the_layer(cshell: Cshell, state_root: Path, web: str) -> None:
    layers = str(state_root / "layers")
    rw = str(state_root / "containers" / web / "rw")

    out = ok(cshell("layer", "whereis", "web", "/bin/busybox"))
    assert "comes from image layer 1" in out and "ADD" in out
    assert on_disk(out)[0].startswith(layers) and on_disk(out)[0].endswith("/diff/bin/busybox")

    out = ok(cshell("layer", "whereis", "web", "/etc/passwd"))
    assert "copied up" in out
    assert on_disk(out) == [f"{rw}/etc/passwd", on_disk(out)[1]] and on_disk(out)[1].startswith(layers)

    out = ok(cshell("layer", "whereis", "web", "/etc/group"))
    assert "was deleted" in out and "whiteout" in out
    assert on_disk(out)[0] == f"{rw}/etc/group"

    out = ok(cshell("layer", "whereis", "web", "/etc/hosts"))
    assert "bind mount" in out and on_disk(out) == [str(state_root / "containers" / web / "hosts")]

    out = ok(cshell("layer", "whereis", "web", "/usr/sbin/chroot"))
    assert "hidden" in out and "opaque" in out

    out = ok(cshell("layer", "whereis", "web", "usr/sbin/tool"))  # relative: from the container's /
    assert "comes from the rw layer" in out and on_disk(out) == [f"{rw}/usr/sbin/tool"]

    out = ok(cshell("layer", "whereis", "web", "/proc/1/status"))
    assert "proc" in out and not on_disk(out)


@pytest.mark.kernel
def test_whereis_never_leaves_the_layers(cshell: Cshell, state_root: Path, web: str) -> None:
    # /lnk -> /etc and /t -> /tmp are the container's symlinks: on the host they would
    # point at the host's /etc/passwd and at this test's own state root.
    for path in ("/lnk/passwd", f"/t/{state_root.name}", "/t/nothing-here"):
        out = ok(cshell("layer", "whereis", "web", path))
        assert "symlink" in out and not on_disk(out), out
    assert "try  layer whereis web /etc/passwd" in ok(cshell("layer", "whereis", "web", "/lnk/passwd"))

    out = ok(cshell("layer", "whereis", "web", "/lnk"))  # the link itself is fine to report
    assert "symlink -> /etc" in out

    for path in ("/../../../../etc/passwd", "etc/../../../etc/shadow", "/usr/.."):
        err = failed(cshell("layer", "whereis", "web", path))
        assert "'..'" in err

    err = failed(cshell("layer", "whereis", "web", "/nope/not/here"))
    assert "/nope/not/here is in no layer of web" in err


# -- layer stack -------------------------------------------------------------------------------------


@pytest.mark.kernel
def test_stack_of_a_container(cshell: Cshell, state_root: Path, web: str) -> None:
    digest = busybox_digest(cshell)
    upper = str(state_root / "containers" / web / "rw")

    out = ok(cshell("layer", "stack", "--full", "web"))
    assert "upperdir=" in out and upper in out
    assert f"overlay options: lowerdir={state_root}/containers/{web}/init:" in out
    assert f",upperdir={upper},workdir=" in out
    assert digest in out
    top = out.index("rw layer")
    assert top < out.index("init layer") < out.index('CMD ["sh"]') < out.index("image layer 1")
    assert "/etc/hosts" in out and "bind-mounted" in out
    assert "9 entries" in out  # etc, etc/group, etc/passwd, lnk, new.txt, t, usr, usr/sbin, usr/sbin/tool

    short = ok(cshell("layer", "stack", "web"))
    assert f"$ROOT = {state_root}" in short and f"$ROOT/containers/{web[:12]}…/rw" in short
    assert digest in short and "upperdir=" in short


@pytest.mark.kernel
def test_stack_of_an_image_and_svg(cshell: Cshell, tmp_path: Path) -> None:
    assert "image bootstrap busybox" in failed(cshell("layer", "stack", "busybox"))  # not built yet
    ok(cshell("run", "--rm", "busybox", "true"))
    svg = tmp_path / "stack.svg"
    out = ok(cshell("layer", "stack", "busybox", "--svg", str(svg)))
    assert "image layer 1" in out and busybox_digest(cshell) in out
    assert "per container" in out and "upperdir=" not in out
    assert svg.read_text().startswith("<svg")
    assert "image layer 1" in svg.read_text().replace("&#160;", " ")


@pytest.mark.kernel
def test_commit_adds_a_layer_with_its_instruction(cshell: Cshell, web: str) -> None:
    ok(cshell("commit", "-m", "one of each change", "web", "snap"))
    out = ok(cshell("layer", "stack", "snap"))
    assert "image layer 2/2 (top)" in out and "image layer 1/2 (bottom)" in out
    assert out.index("image layer 2/2") < out.index("sleep 1000") < out.index('CMD ["sh"]') \
        < out.index("image layer 1/2") < out.index("ADD")
    assert "one of each change" in out

    # whereis on the image unpacks the committed layer: the tar's .wh. files are whiteouts again
    out = ok(cshell("layer", "whereis", "snap", "/etc/group"))
    assert "was deleted" in out and "image layer 2" in out
    assert "comes from image layer 2" in ok(cshell("layer", "whereis", "snap", "/new.txt"))


@pytest.mark.kernel
def test_errors(cshell: Cshell) -> None:
    assert "no container or image named nosuch" in failed(cshell("layer", "stack", "nosuch"))
    assert "no container or image named Not_An_Image" in failed(cshell("layer", "stack", "Not_An_Image"))
    assert "no such container: nosuch" in failed(cshell("layer", "diff", "nosuch"))
    assert "no container or image" in failed(cshell("layer", "whereis", "nosuch", "/bin/sh"))
    ok(cshell("run", "--rm", "busybox", "true"))
    assert "in no layer of busybox" in failed(cshell("layer", "whereis", "busybox", "/nope"))
    assert "comes from image layer 1" in ok(cshell("layer", "whereis", "busybox", "/bin/busybox"))
    assert "only a container has a rw layer" in failed(cshell("layer", "diff", "busybox"))
    assert "/ is every layer" in failed(cshell("layer", "whereis", "busybox", "/"))
    assert "needs a sub-command" in failed(cshell("layer"))
    assert "cannot write" in failed(cshell("layer", "stack", "busybox", "--svg", "/nonexistent-dir/x.svg"))


# -- help ----------------------------------------------------------------------------------------------


def test_help_teaches(cshell: Cshell) -> None:
    out = ok(cshell("help", "layer", "stack"))
    for word in ("lowerdir", "upperdir", "workdir", "merged", "copy-up", "whiteout", "opaque", "init layer"):
        assert word in out, word
    assert "docker diff" in ok(cshell("help", "layer", "diff"))
    assert "bind mount" in ok(cshell("help", "layer", "whereis"))
    overview = ok(cshell("help"))
    assert "layer stack" in overview and "layer whereis" in overview


def test_completion_offers_containers_and_images(tmp_path: Path) -> None:
    from prompt_toolkit.completion import CompleteEvent
    from prompt_toolkit.document import Document

    from cshell.engine.state import StateRoot
    from cshell.shell.completer import CshellCompleter, StateCache

    completer = CshellCompleter(StateCache(StateRoot(tmp_path / "no-root-yet")))

    def complete(text: str) -> list[str]:
        return [c.text for c in completer.get_completions(Document(text), CompleteEvent(completion_requested=True))]

    assert sorted(complete("layer ")) == ["diff", "stack", "whereis"]
    assert complete("layer stack bus") == ["busybox"]  # an image is fine here
    assert complete("layer whereis bus") == ["busybox"]
    assert complete("layer diff bus") == []  # only a container has a rw layer


def test_diff_lines_colour_only_for_a_terminal() -> None:
    from cshell.engine.image.diff import Change
    from cshell.views.layers import change_lines

    found = [Change("A", "/new.txt"), Change("C", "/etc"), Change("D", "/etc/group")]
    assert change_lines(found, colour=False) == ["A /new.txt", "C /etc", "D /etc/group"]
    coloured = change_lines(found, colour=True)
    assert [line[:5] for line in coloured] == ["\x1b[32m", "\x1b[33m", "\x1b[31m"]
    assert all(line.endswith(c.path) for line, c in zip(coloured, found, strict=True))


# -- the lookup itself, on hand-made layer directories --------------------------------------------------


def test_split_path_refuses_climbing() -> None:
    assert split_path("/etc//./passwd") == ["etc", "passwd"]
    assert split_path("etc/passwd") == ["etc", "passwd"]
    for bad in ("/etc/../../x", "..", "/", "/a\0b"):
        with pytest.raises(UsageError):
            split_path(bad)


def test_probe_reports_symlinks_and_never_follows_them(tmp_path: Path) -> None:
    layer = tmp_path / "layer"
    (layer / "etc").mkdir(parents=True)
    (layer / "etc" / "passwd").write_text("root\n")
    (layer / "host").symlink_to("/")  # a container's link to "/": on the host, the host's root
    (layer / "file").write_text("x")

    assert probe(layer, ["etc", "passwd"]).state == FILE
    assert probe(layer, ["etc", "passwd"]).host_path == f"{layer}/etc/passwd"
    through = probe(layer, ["host", "etc", "passwd"])
    assert through.state == SYMLINK and through.at == "/host" and through.target == "/" and not through.host_path
    assert probe(layer, ["host"]).state == FILE and probe(layer, ["host"]).kind == "symlink"
    assert probe(layer, ["file", "x"]).state == NOTDIR
    assert probe(layer, ["nope", "x"]).state == ABSENT
    assert _through_link("/host", "/", "/host/etc/passwd") == "/etc/passwd"
    assert _through_link("/usr/lib64", "lib", "/usr/lib64/x.so") == "/usr/lib/x.so"
    assert _through_link("/a/b", "../../../c", "/a/b/d") == "/c/d"  # clamped at the container's /


@pytest.mark.skipif(os.geteuid() != 0, reason="a whiteout is a 0:0 character device: mknod needs root")
def test_probe_sees_whiteouts_and_opaque_dirs(tmp_path: Path) -> None:
    layer = tmp_path / "layer"
    (layer / "var" / "cache").mkdir(parents=True)
    os.mknod(layer / "var" / "gone", 0o600 | 0o020000, os.makedev(0, 0))
    os.setxattr(layer / "var" / "cache", "trusted.overlay.opaque", b"y")

    assert probe(layer, ["var", "gone"]).state == WHITEOUT
    assert probe(layer, ["var", "gone", "below"]).state == WHITEOUT  # a deleted directory hides all of it
    assert probe(layer, ["var", "cache"]).opaque
    assert probe(layer, ["var", "cache", "x"]).opaque_at == "/var/cache"
