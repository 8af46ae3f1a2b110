"""build: Dockerfiles to images, one layer per instruction, with docker's cache and errors.

The parser and .dockerignore tests need nothing; the rest (marked kernel)
build real images as root: RUN steps run in real containers.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
from conftest import REPO, Cshell, cshell_argv, cshell_env, wait_for

from cshell.engine.build import dockerfile
from cshell.engine.build.context import BuildContext, Ignore
from cshell.engine.build.dockerfile import DockerfileError, expand

kernel = pytest.mark.kernel


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc.stdout


def context(tmp_path: Path, dockerfile_text: str, files: dict[str, str | bytes] | None = None) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile_text)
    for name, data in (files or {}).items():
        (ctx / name).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            (ctx / name).write_bytes(data)
        else:
            (ctx / name).write_text(data)
    return ctx


def store_of(state_root: Path):  # noqa: ANN201 - cshell.engine.image.store.Store
    from cshell.engine.image.store import Store
    from cshell.engine.state import StateRoot

    return Store(StateRoot(state_root))


def left_behind(state_root: Path) -> list[str]:
    """Containers, layer staging dirs and half-written blobs a build must never leave."""
    found = [str(p) for p in (state_root / "containers").glob("*")]
    found += [str(p) for p in (state_root / "layers").glob("*.unpacking")]
    found += [str(p) for p in (state_root / "images" / "blobs" / "sha256").glob(".ingest-*")]
    return found


def tags(state_root: Path) -> list[str]:
    return store_of(state_root).refs()


# -- the parser (no root needed) --------------------------------------------------------------


def test_parser_joins_lines_skips_comments_and_numbers_lines() -> None:
    df = dockerfile.parse("# a comment\nFROM busybox\n\nRUN echo a \\\n  # inside\n    b\nCMD [\"sh\"]\n")
    assert [(i.line, i.keyword, i.value) for i in df.instructions] == [
        (2, "FROM", "busybox"), (4, "RUN", "echo a     b"), (7, "CMD", '["sh"]')]


def test_parser_keeps_an_instruction_continued_to_the_end_of_the_file() -> None:
    # dockerfile-parse alone drops these two (see dockerfile.parse)
    df = dockerfile.parse("FROM busybox\nRUN echo a \\")
    assert df.instructions[-1].value == "echo a"
    with pytest.raises(DockerfileError, match=r"Dockerfile:2: CMD requires at least one argument"):
        dockerfile.parse("FROM busybox\nCMD")


def test_escape_directive() -> None:
    df = dockerfile.parse("# escape=`\nFROM busybox\nRUN echo a `\n b\nCOPY c:\\dir /x\n")
    assert df.escape == "`"
    assert df.instructions[1].value == "echo a  b"
    assert expand(r"c:\dir", {}, df.escape) == r"c:\dir"  # a backslash is a plain character now
    with pytest.raises(DockerfileError, match=r"Dockerfile:1: invalid escape"):
        dockerfile.parse("# escape=x\nFROM busybox\n")


@pytest.mark.parametrize("text, line, message", [
    ("FROM busybox\nRUN true\nFORM x\n", 3, "unknown instruction FORM (did you mean FROM?)"),
    ("RUN true\nFROM busybox\n", 1, "RUN before FROM"),
    ("", 1, "no instructions"),
    ("FROM busybox\nCMD [\"a\", 1]\n", 2, "must be comprised of strings"),
    ("FROM busybox\nENV\n", 2, "ENV requires at least one argument"),
    ("FROM busybox\nENV A=1 B\n", 2, "can't find = in 'B'"),
    ("FROM busybox\nCOPY onlyone\n", 2, "COPY requires at least two arguments"),
    ("FROM busybox\nCOPY --mode=1 a /b\n", 2, "unknown flag --mode for COPY"),
    ("FROM busybox AS a\nFROM busybox AS A\n", 2, "duplicate name 'a'"),
    ("FROM busybox AS 1x\n", 1, "invalid name for build stage"),
    ("ARG A=1\n", 1, "no build stage"),
    ("FROM busybox\nONBUILD FROM busybox\n", 2, "FROM isn't allowed as an ONBUILD trigger"),
    ("FROM busybox\nRUN true\nONBUILD FORM x\n", 3, "unknown instruction FORM"),
    ("FROM busybox\nHEALTHCHECK true\n", 2, "HEALTHCHECK needs CMD"),
    ("FROM busybox\nHEALTHCHECK --interval=soon CMD true\n", 2, "invalid value 'soon' for --interval"),
    ("FROM busybox\nHEALTHCHECK --retries=x CMD true\n", 2, "--retries must be a number"),
    ("FROM busybox extra\n", 1, "FROM requires either one or three arguments"),
])
def test_parser_errors_name_the_line(text: str, line: int, message: str) -> None:
    with pytest.raises(DockerfileError) as info:
        dockerfile.parse(text)
    assert info.value.line == line
    assert info.value.message.startswith(f"Dockerfile:{line}: ")
    assert message in info.value.message
    assert info.value.hint


def test_exec_form_like_docker() -> None:
    assert dockerfile.exec_form('["python", "app.py"]') == ["python", "app.py"]
    assert dockerfile.exec_form('["a"] trailing') == ["a"]  # Go's json.Decoder stops after the array
    assert dockerfile.exec_form("[python, app.py]") is None  # not JSON: docker runs it with /bin/sh -c
    assert dockerfile.exec_form("python app.py") is None


def test_word_expansion() -> None:
    env = {"A": "1", "EMPTY": ""}
    assert expand("$A-${A}-${B:-two}-${EMPTY:-d}-${EMPTY-e}-${A:+set}-${B:+x}", env) == "1-1-two-d--set-"
    assert expand("'$A' \"$A\" \\$A", env) == "$A 1 $A"
    assert expand('"a\\"b"', env) == 'a"b'


def test_dockerignore_semantics(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text("# comment\n*.log\n!keep.log\nbuild\n**/*.tmp\n/abs.txt\n")
    ignore = Ignore.read(tmp_path / ".dockerignore")
    assert ignore.excluded("a.log") and not ignore.excluded("keep.log")
    assert not ignore.excluded("sub/a.log")  # * stops at /
    assert ignore.excluded("build") and ignore.excluded("build/out/x.c")  # a parent dir matches
    assert ignore.excluded("x.tmp") and ignore.excluded("deep/er/x.tmp")
    assert ignore.excluded("abs.txt") and not ignore.excluded("src/app.py")


def test_sources_stay_inside_the_context(tmp_path: Path) -> None:
    (tmp_path / "real.txt").write_text("x")
    (tmp_path / "inside").symlink_to("real.txt")
    (tmp_path / "out").symlink_to("/etc/passwd")
    (tmp_path / "up").symlink_to("../../etc")
    ctx = BuildContext(tmp_path)
    assert ctx.resolve(ctx.clean("inside"))[0] == "real.txt"
    assert ctx.clean("/real.txt") == "real.txt"  # absolute sources are relative to the context
    for bad in ("../x", "/../../etc/passwd", "a/../../x"):
        with pytest.raises(Exception, match="outside the build context"):
            ctx.clean(bad)
    for bad in ("out", "up/passwd"):
        with pytest.raises(Exception, match="outside the build context"):
            ctx.resolve(ctx.clean(bad))


def test_copy_digest_follows_content_and_mode_not_time(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("one")
    ctx = BuildContext(tmp_path)
    first = ctx.plan(["a.txt"], "COPY", False).digest
    os.utime(tmp_path / "a.txt", (1, 1))
    assert ctx.plan(["a.txt"], "COPY", False).digest == first
    os.chmod(tmp_path / "a.txt", 0o755)
    assert ctx.plan(["a.txt"], "COPY", False).digest != first
    (tmp_path / "a.txt").write_text("two")
    assert ctx.plan(["a.txt"], "COPY", False).label.startswith("file:")


def test_help_build_teaches_layers_and_the_cache(cshell: Cshell) -> None:
    text = " ".join(ok(cshell("help", "build")).split())
    for phrase in ("One layer per instruction", "empty layer", "empty_layer", "The cache",
                   "parent image id", "hashes the content", "--network"):
        assert phrase in text, phrase


# -- the article's app, on busybox -------------------------------------------------------------


def app_context(tmp_path: Path) -> Path:
    ctx = tmp_path / "app"
    shutil.copytree(REPO / "lessons" / "app", ctx)
    return ctx


def build_app(cshell: Cshell, ctx: Path, *extra: str) -> subprocess.CompletedProcess:
    return cshell("build", "-t", "helloworld", "-f", str(ctx / "Dockerfile.busybox"), *extra, str(ctx))


@kernel
def test_article_app_one_history_entry_per_instruction(cshell: Cshell, tmp_path: Path, state_root: Path) -> None:
    ctx = app_context(tmp_path)
    out = ok(build_app(cshell, ctx))
    assert "Step 1/7 : FROM busybox" in out and "Step 7/7 : CMD" in out
    assert "Successfully tagged helloworld:latest" in out
    store = store_of(state_root)
    image, base = store.get_local("helloworld"), store.get_local("busybox")
    assert out.split("Successfully built ")[1].split()[0] == image.short_id
    mine = image.history[len(base.history):]
    assert [e["created_by"].split("#(nop)")[-1].split()[0] if "#(nop)" in e["created_by"] else "RUN"
            for e in mine] == ["WORKDIR", "ADD", "RUN", "EXPOSE", "ENV", "CMD"]
    # the article: ENV and the other settings leave empty layers; ADD and RUN make real ones, and
    # WORKDIR too when it makes its directory (docker's classic builder commits a step container)
    assert [bool(e.get("empty_layer")) for e in mine] == [False, False, False, True, True, True]
    assert len(image.layers) == len(base.layers) + 3
    assert mine[2]["created_by"] == "/bin/sh -c mkdir -p /app/www && chmod +x /app/app.sh"
    assert mine[4]["created_by"] == "/bin/sh -c #(nop)  ENV NAME=World"
    assert mine[1]["created_by"].startswith("/bin/sh -c #(nop) ADD dir:")
    settings = image.settings
    assert settings["WorkingDir"] == "/app" and "NAME=World" in settings["Env"]
    assert settings["ExposedPorts"] == {"80/tcp": {}} and settings["Cmd"] == ["sh", "/app/app.sh"]
    # every step image is kept, untagged, for the cache (docker's intermediate images)
    assert len(store.list(all=True)) == len(store.list()) + 5  # 6 steps, the last one tagged
    history = ok(cshell("history", "helloworld"))
    assert history.count("<empty>") >= 4

    cid = ok(cshell("run", "-d", "helloworld")).strip()
    try:
        page = wait_for(lambda: cshell("exec", cid, "wget", "-qO-", "http://127.0.0.1:80/").stdout, timeout=5)
        assert page == f"<h3>Hello World!</h3><b>Hostname:</b> {cid[:12]}<br/>"
    finally:
        ok(cshell("rm", "-f", cid))
    assert not left_behind(state_root)


@kernel
def test_rebuild_uses_the_cache_for_every_step(cshell: Cshell, tmp_path: Path, state_root: Path) -> None:
    ctx = app_context(tmp_path)
    first = ok(build_app(cshell, ctx)).split("Successfully built ")[1].split()[0]
    started = time.monotonic()
    out = ok(build_app(cshell, ctx))
    elapsed = time.monotonic() - started
    assert out.count(" ---> Using cache") == 6, out
    assert " ---> Running in" not in out
    assert out.split("Successfully built ")[1].split()[0] == first
    assert elapsed < 2.0, f"an unchanged rebuild took {elapsed:.2f}s"
    cache = json.loads((state_root / "build-cache.json").read_text())
    assert len(cache["entries"]) == 6

    # a new content in one file: the ADD step and everything after it run again
    (ctx / "app.sh").write_text((ctx / "app.sh").read_text() + "# changed\n")
    out = ok(build_app(cshell, ctx))
    steps = out.split("Step ")[1:]
    assert [" ---> Using cache" in s for s in steps] == [False, True, False, False, False, False, False]
    assert " ---> Running in" in steps[3]
    # a new timestamp alone changes nothing: COPY hashes content, not times
    os.utime(ctx / "app.py", (1, 1))
    assert ok(build_app(cshell, ctx)).count(" ---> Using cache") == 6
    # --no-cache runs every step
    assert " ---> Using cache" not in ok(build_app(cshell, ctx, "--no-cache"))


@kernel
def test_pruned_cache_images_are_misses(cshell: Cshell, tmp_path: Path, state_root: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nRUN echo one > /one\nENV A=b\n")
    ok(cshell("build", "-t", "pruned", str(ctx)))
    ok(cshell("rmi", "pruned"))
    assert "Deleted" in ok(cshell("image", "prune"))
    out = ok(cshell("build", "-t", "pruned", str(ctx)))
    assert " ---> Using cache" not in out and " ---> Running in" in out
    assert ok(cshell("run", "--rm", "pruned", "cat", "/one")) == "one\n"
    assert ok(cshell("build", "-t", "pruned", str(ctx))).count(" ---> Using cache") == 2


# -- instructions ----------------------------------------------------------------------------


@kernel
def test_build_args(cshell: Cshell, tmp_path: Path, state_root: Path) -> None:
    ctx = context(tmp_path, "ARG BASE=busybox\nFROM $BASE\nARG GREETING=hello\nARG WHO\nENV WHO=${WHO:-world}\n"
                            'RUN echo "$GREETING $WHO" > /greeting\nLABEL said=$GREETING\n')
    proc = cshell("build", "-t", "args", "--build-arg", "GREETING=hi", "--build-arg", "UNUSED=1", str(ctx))
    ok(proc)
    assert "build-args [UNUSED] were not consumed" in proc.stderr
    assert ok(cshell("run", "--rm", "args", "cat", "/greeting")) == "hi world\n"
    image = store_of(state_root).get_local("args")
    run = next(e["created_by"] for e in image.history if "greeting" in e["created_by"])
    assert run.startswith("|1 GREETING=hi /bin/sh -c echo")  # docker records the args a RUN saw
    assert image.settings["Labels"]["said"] == "hi"
    assert not any("GREETING" in item for item in image.settings["Env"])  # ARGs are not kept

    ok(cshell("build", "-t", "args", "--build-arg", "WHO=class", str(ctx)))
    assert ok(cshell("run", "--rm", "args", "cat", "/greeting")) == "hello class\n"


@kernel
def test_dockerignore_and_copy_forms(cshell: Cshell, tmp_path: Path) -> None:
    files = {
        ".dockerignore": "*.env\nlogs\n!logs/keep.log\n**/*.tmp\n",
        "a.txt": "a", "b.txt": "b", "secret.env": "x", "logs/drop.log": "x", "logs/keep.log": "k",
        "sub/dir/x.tmp": "x", "sub/y.txt": "y", "tool.sh": "#!/bin/sh\necho tool\n",
    }
    ctx = context(tmp_path, "FROM busybox\nWORKDIR /w\nCOPY . ctx/\nCOPY a.txt /renamed\nCOPY a.txt /etc/\n"
                            "COPY *.txt /glob/\nCOPY [\"sub\", \"/subdir\"]\nCOPY --chmod=755 tool.sh .\n", files)
    (ctx / "link").symlink_to("a.txt")
    ok(cshell("build", "-t", "ign", str(ctx)))
    listing = ok(cshell("run", "--rm", "ign", "sh", "-c",
                        "cd /w/ctx && find . ! -type d | sort; cat /renamed /etc/a.txt; echo; ls /glob; "
                        "ls /subdir; readlink /w/ctx/link; /w/tool.sh"))
    assert listing.split() == [
        "./.dockerignore", "./Dockerfile", "./a.txt", "./b.txt", "./link", "./logs/keep.log", "./sub/y.txt",
        "./tool.sh", "aa", "a.txt", "b.txt", "dir", "y.txt", "a.txt", "tool"]

    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY secret.env /\n")
    proc = cshell("build", str(ctx))
    assert proc.returncode == 1 and "Dockerfile:2: file not found in build context or excluded" in proc.stderr


@kernel
def test_add_extracts_local_archives_copy_does_not(cshell: Cshell, tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data, uid in (("dir/a.txt", b"from the archive\n", 1234), ("b.txt", b"b\n", 0)):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid = len(data), 0o640, uid, uid
            tar.addfile(info, io.BytesIO(data))
    ctx = context(tmp_path, "FROM busybox\nADD bundle.tar.gz /opt/\nCOPY bundle.tar.gz /copied/\n",
                  {"bundle.tar.gz": buf.getvalue()})
    ok(cshell("build", "-t", "added", str(ctx)))
    out = ok(cshell("run", "--rm", "added", "sh", "-c",
                    "cat /opt/dir/a.txt; stat -c '%u:%g %a' /opt/dir/a.txt; ls /opt; ls /copied"))
    assert out.split("\n")[:2] == ["from the archive", "1234:1234 640"]
    assert out.split()[-3:] == ["b.txt", "dir", "bundle.tar.gz"]


@kernel
def test_copy_chown_numeric_and_by_name(cshell: Cshell, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nCOPY --chown=1000:1000 a.txt /a.txt\n"
                            "COPY --chown=nobody:nogroup a.txt /b/\nCOPY --chown=55 d /new/d/\n",
                  {"a.txt": "a", "d/x.txt": "x"})
    ok(cshell("build", "-t", "owned", str(ctx)))
    out = ok(cshell("run", "--rm", "owned", "stat", "-c", "%u:%g %n", "/a.txt", "/b/a.txt", "/new", "/new/d",
                    "/new/d/x.txt"))
    assert out.split("\n")[:5] == ["1000:1000 /a.txt", "65534:65534 /b/a.txt", "55:55 /new", "55:55 /new/d",
                                   "55:55 /new/d/x.txt"]


@kernel
def test_settings_instructions(cshell: Cshell, tmp_path: Path, state_root: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nMAINTAINER someone\nENV DIR=/srv A=1\nWORKDIR $DIR\nWORKDIR sub\n"
                            "CMD [\"-c\", \"echo hi\"]\nENTRYPOINT [\"sh\"]\nUSER nobody\nLABEL a=\"two words\" b=2\n"
                            "VOLUME /data /logs\nSTOPSIGNAL SIGINT\nEXPOSE 80 53/udp\nENV B=\"$A two\"\n"
                            "CMD [python, app.py]\n")
    proc = cshell("build", "-t", "settings", str(ctx))
    ok(proc)
    assert "not valid JSON" in proc.stderr  # docker runs it as a shell command; we say so
    image = store_of(state_root).get_local("settings")
    s = image.settings
    assert s["WorkingDir"] == "/srv/sub" and s["Entrypoint"] == ["sh"] and s["User"] == "nobody"
    assert s["Cmd"] == ["/bin/sh", "-c", "[python, app.py]"]
    assert s["Labels"]["a"] == "two words" and s["Labels"]["b"] == "2" and s["StopSignal"] == "SIGINT"
    assert s["Volumes"] == {"/data": {}, "/logs": {}}
    assert s["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert "B=1 two" in s["Env"] and image.config["author"] == "someone"
    # settings only: empty layers; WORKDIR made /srv and /srv/sub, a layer each (docker's classic builder)
    assert all(e.get("empty_layer") != ("WORKDIR" in e["created_by"]) for e in image.history[-13:])


@kernel
def test_scratch_with_a_static_busybox(cshell: Cshell, tmp_path: Path, state_root: Path) -> None:
    ctx = context(tmp_path, "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"mkdir\", \"/made\"]\n"
                            "CMD [\"/bin/busybox\", \"ls\", \"/\"]\n")
    shutil.copy(os.path.realpath("/bin/busybox"), ctx / "busybox")
    ok(cshell("build", "-t", "tiny", str(ctx)))
    image = store_of(state_root).get_local("tiny")
    assert len(image.layers) == 2 and len(image.history) == 3
    assert ok(cshell("run", "--rm", "tiny")).split() == ["bin", "dev", "etc", "made", "proc", "sys"]


@kernel
def test_network_none_and_host(cshell: Cshell, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nRUN ls /sys/class/net > /nets\n")
    ok(cshell("build", "-t", "net", str(ctx)))
    # the runs read the file with --net none: a bridge of theirs would change the host's links
    assert ok(cshell("run", "--rm", "--net", "none", "net", "cat", "/nets")).split() == ["lo"]
    ok(cshell("build", "--no-cache", "--network", "host", "-t", "net", str(ctx)))
    seen = ok(cshell("run", "--rm", "--net", "none", "net", "cat", "/nets")).split()
    assert sorted(seen) == sorted(os.listdir("/sys/class/net"))
    ok(cshell("build", "--no-cache", "--network", "bridge", "-t", "net", str(ctx)))
    assert ok(cshell("run", "--rm", "net", "cat", "/nets")).split() == ["eth0", "lo"]  # a veth of its own
    proc = cshell("build", "--network", "wifi", str(ctx))
    assert proc.returncode == 1 and "unknown network mode" in proc.stderr and "hint:" in proc.stderr


# -- bad input: the right line, nothing left behind -------------------------------------------------


def evil_archive() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("../../escaped.txt")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    return buf.getvalue()


BAD = [
    ("FROM busybox\nRUN true\nFORM x\n", 3, "unknown instruction FORM (did you mean FROM?)"),
    ("RUN true\nFROM busybox\n", 1, "RUN before FROM"),
    ("FROM busybox\nCMD [\"python\", 2]\n", 2, "arrays must be comprised of strings"),
    ("FROM busybox\nRUN true\nCOPY ../x /\n", 3, "forbidden path outside the build context: ../x"),
    ("FROM busybox\nCOPY /../../etc/passwd /\n", 2, "forbidden path outside the build context"),
    ("FROM busybox\nWORKDIR /w\nCOPY out /\n", 3, "out is a symlink to /etc/passwd, outside the build context"),
    ("FROM busybox\nCOPY up/passwd /\n", 2, "outside the build context"),
    ("FROM busybox\nCOPY nothere.txt /\n", 2, "file not found in build context"),
    ("FROM busybox\nCOPY *.nope /\n", 2, "no source files were specified"),
    ("FROM busybox\nCOPY a.txt a.txt /notadir\n", 2, "must be a directory and end with a /"),
    ("FROM busybox\nRUN true\nADD evil.tar.gz /app/\n", 3, "the archive is unsafe"),
    ("FROM busybox\nCOPY --chown=bob a.txt /\n", 2, "can't find uid for user bob"),
    ("FROM busybox\nADD http://example.com/x /\n", 2, "not supported"),
    ("FROM nosuchimage\n", 1, "no such image: nosuchimage"),
    ("FROM scratch\nRUN true\n", 2, "RUN on scratch"),
]


@kernel
@pytest.mark.parametrize("text, line, message", BAD, ids=[m.split(":")[0][:30] for _, _, m in BAD])
def test_bad_input_fails_at_its_line_leaving_nothing(cshell: Cshell, tmp_path: Path, state_root: Path,
                                                      text: str, line: int, message: str) -> None:
    ctx = context(tmp_path, text, {"a.txt": "a", "evil.tar.gz": evil_archive()})
    (ctx / "out").symlink_to("/etc/passwd")
    (ctx / "up").symlink_to("../../../../etc")
    proc = cshell("build", "-t", "bad", str(ctx))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    error = next(ln for ln in proc.stderr.splitlines() if ln.startswith("error: "))
    assert error.startswith(f"error: Dockerfile:{line}: "), error
    assert message in error
    assert "hint: " in proc.stderr
    assert "bad:latest" not in tags(state_root)
    assert not left_behind(state_root)
    assert not (tmp_path / "escaped.txt").exists() and not Path("/escaped.txt").exists()


@kernel
def test_no_dockerfile(cshell: Cshell, tmp_path: Path) -> None:
    proc = cshell("build", "-t", "x", str(tmp_path))
    assert proc.returncode == 1 and f"no Dockerfile in {tmp_path}" in proc.stderr and "hint:" in proc.stderr
    proc = cshell("build", "-t", "Bad Name", str(tmp_path))
    assert proc.returncode == 1 and "invalid image name" in proc.stderr


@kernel
def test_failing_run_stops_the_build(cshell: Cshell, tmp_path: Path, state_root: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nENV A=1\nRUN echo about to fail; exit 3\nCMD [\"sh\"]\n")
    proc = cshell("build", "-t", "failing", str(ctx))
    assert proc.returncode == 3  # docker build exits with the failing RUN's own code
    assert "about to fail" in proc.stdout
    assert "error: Dockerfile:3: step 3/4: the command '/bin/sh -c echo about to fail; exit 3' " \
           "returned a non-zero code: 3" in proc.stderr
    assert "Step 4/4" not in proc.stdout
    assert "failing:latest" not in tags(state_root)
    assert not left_behind(state_root)
    # the steps before it were kept: the next try starts from the cache
    (ctx / "Dockerfile").write_text("FROM busybox\nENV A=1\nRUN echo fixed\nCMD [\"sh\"]\n")
    assert ok(cshell("build", "-t", "failing", str(ctx))).count(" ---> Using cache") == 1


@kernel
def test_ctrl_c_during_run_removes_its_container(runtime, tmp_path: Path, state_root: Path) -> None:  # noqa: ANN001
    from cshell.engine.build.build import BuildOptions, StepOutput, build

    ctx = context(tmp_path, "FROM busybox\nRUN echo started; sleep 30\n")

    def emit(event: object) -> None:
        if isinstance(event, StepOutput):
            os.kill(os.getpid(), signal.SIGINT)  # the student presses Ctrl-C while the RUN runs
            time.sleep(1)

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        build(runtime, BuildOptions(ctx, tags=["stopped"]), emit)
    assert time.monotonic() - started < 10
    assert not left_behind(state_root)
    assert "stopped:latest" not in tags(state_root)
    assert store_of(state_root).list(all=True)  # the store still reads fine


@kernel
def test_killed_build_is_cleaned_up_at_the_next_start(cshell: Cshell, tmp_path: Path, state_root: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nRUN echo started; sleep 30\n")
    proc = subprocess.Popen([*cshell_argv(), "--root", str(state_root), "build", "-t", "killed", str(ctx)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                            env=cshell_env(), cwd=REPO, text=True)
    try:
        for line in proc.stdout:  # type: ignore[union-attr]
            if line.startswith("started"):
                break
        proc.kill()  # SIGKILL: no clean-up code runs
    finally:
        proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
    containers = list((state_root / "containers").iterdir())
    assert len(containers) == 1 and (containers[0] / "state.json").exists()  # a normal container
    ok(cshell("ps", "-a"))  # any next start reconciles: the orphaned build step goes
    assert not left_behind(state_root)
    assert "killed:latest" not in tags(state_root)
