"""Multi-stage builds, `build -` and `build -f -`, as docker's classic builder does them.

Real builds (RUN steps in real containers) on busybox, each on its own state root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Cshell
from test_build import context, left_behind, ok, store_of, tags

kernel = pytest.mark.kernel

STAGES = """\
ARG BASE=busybox
FROM $BASE AS builder
RUN mkdir -p /out/sub && echo built > /out/hello.txt && echo deep > /out/sub/deep.txt \\
 && ln -s /etc/passwd /out/passwd-link && ln -s /out/hello.txt /hl && ln -s {secret} /secret
FROM busybox AS unused
RUN echo never-runs
FROM busybox
COPY --from=builder /out /app/
COPY --from=0 /hl /from-link.txt
COPY --from=busybox /bin/busybox /bb
CMD ["cat", "/app/hello.txt"]
"""


def stages_context(tmp_path: Path) -> Path:
    secret = tmp_path / "host-secret"
    secret.write_text("host only")
    return context(tmp_path, STAGES.format(secret=secret))


@kernel
def test_multi_stage_copies_between_stages_and_skips_the_unneeded(cshell: Cshell, tmp_path: Path,
                                                                   state_root: Path) -> None:
    out = ok(cshell("build", "-t", "ms", str(stages_context(tmp_path))))
    assert "Skipping stage 1 (unused): the target stage 2 does not need it" in out
    assert "never-runs" not in out.replace("RUN echo never-runs", "")
    assert "Step 1/8 : ARG BASE=busybox" in out and "Step 8/8 : CMD" in out
    listing = ok(cshell("run", "--rm", "ms", "sh", "-c",
                        "cat /app/hello.txt /app/sub/deep.txt /from-link.txt; readlink /app/passwd-link; "
                        "ls /bb; ls /out /secret 2>&1 | head -1"))
    # a directory gives its contents; a symlink source is followed; links inside stay links
    assert listing.splitlines()[:5] == ["built", "deep", "built", "/etc/passwd", "/bb"]
    assert "No such file" in listing  # nothing of the builder but what was copied
    assert ok(cshell("run", "--rm", "ms")) == "built\n"
    # history is the final stage's: busybox's entries and the three COPY and the CMD
    history = store_of(state_root).get_local("ms").history
    assert not any("never-runs" in e["created_by"] or "mkdir" in e["created_by"] for e in history)
    assert sum("COPY --from=" in e["created_by"] for e in history) == 3
    # the cache works across stages: a second build runs nothing
    again = ok(cshell("build", "-t", "ms", str(stages_context(tmp_path))))
    assert "Running in" not in again and again.count("Using cache") == 5
    assert not left_behind(state_root)


@kernel
def test_copy_from_resolves_symlinks_inside_the_source_image(cshell: Cshell, tmp_path: Path,
                                                             state_root: Path) -> None:
    # /secret in the builder points at a path that exists on the host only: never the host's file
    ctx = stages_context(tmp_path)
    (ctx / "Dockerfile").write_text((ctx / "Dockerfile").read_text() + "COPY --from=builder /secret /got\n")
    proc = cshell("build", "-t", "leak", str(ctx))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "/secret: no such file or directory in the source" in proc.stderr
    assert "leak:latest" not in tags(state_root) and not left_behind(state_root)


@kernel
def test_target_stops_at_a_stage(cshell: Cshell, tmp_path: Path, state_root: Path) -> None:
    out = ok(cshell("build", "--target", "BUILDER", "-t", "b", str(stages_context(tmp_path))))
    assert "Step 3/3 : RUN" in out and "Skipping" not in out and "COPY" not in out
    assert ok(cshell("run", "--rm", "b", "cat", "/out/hello.txt")) == "built\n"


@kernel
@pytest.mark.parametrize("text, extra, message", [
    ("FROM busybox AS a\nRUN true\n", ("--target", "nope"), "failed to reach build target nope in Dockerfile"),
    ("FROM busybox AS a\nRUN true\nFROM busybox\nCOPY --from=nosuch /x /x\n", (),
     "Dockerfile:4: COPY --from=nosuch: no such stage or image"),
    ("FROM busybox AS a\nRUN true\nFROM busybox\nCOPY --from=1 /x /x\n", (),
     "Dockerfile:4: COPY --from=1: stage 1 is not built before this one"),
    ("FROM busybox AS a\nRUN true\nCOPY --from=b /x /x\nFROM busybox AS b\n", (),
     "Dockerfile:3: COPY --from=b: circular dependency"),
    ("FROM busybox AS a\nRUN true\nCOPY --from=a /x /x\n", (), "Dockerfile:3: COPY --from=a: circular dependency"),
])
def test_bad_stage_references_fail_before_anything_is_built(cshell: Cshell, tmp_path: Path, state_root: Path,
                                                            text: str, extra: tuple[str, ...], message: str) -> None:
    proc = cshell("build", "-t", "bad", *extra, str(context(tmp_path, text)))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0], proc.stderr
    assert "hint: " in proc.stderr
    assert "Step 2/" not in proc.stdout  # checked before the first step ran
    assert store_of(state_root).list(all=True) == [] or "bad:latest" not in tags(state_root)
    assert not any(i.history and "RUN" in str(i.history) for i in store_of(state_root).list(all=True))
    assert not left_behind(state_root)


def build_stdin(state_root: Path, *args: str, dockerfile: str) -> subprocess.CompletedProcess:
    from conftest import run_cshell

    return run_cshell(state_root, "build", *args, input=dockerfile)


@kernel
def test_build_dash_reads_the_dockerfile_from_stdin(tmp_path: Path, state_root: Path, cshell: Cshell) -> None:
    ok(build_stdin(state_root, "-t", "piped", "-", dockerfile="FROM busybox\nRUN echo piped > /p\nCMD cat /p\n"))
    assert ok(cshell("run", "--rm", "piped")) == "piped\n"
    # no context: COPY has nothing to read, and says how to give one
    proc = build_stdin(state_root, "-t", "nocontext", "-", dockerfile="FROM busybox\nCOPY a.txt /\n")
    assert proc.returncode == 1 and "Dockerfile:2: COPY needs a build context" in proc.stderr
    assert "build -f - DIR" in proc.stderr and "nocontext:latest" not in tags(state_root)
    # -f - DIR: the Dockerfile from stdin, the files from DIR (its own Dockerfile is not used)
    ctx = context(tmp_path, "FROM nosuchimage\n", {"a.txt": "from the context\n"})
    ok(build_stdin(state_root, "-t", "withctx", "-f", "-", str(ctx), dockerfile="FROM busybox\nCOPY a.txt /\n"))
    assert ok(cshell("run", "--rm", "withctx", "cat", "/a.txt")) == "from the context\n"
    proc = cshell("build", "-")  # nothing piped in (stdin is /dev/null: an empty Dockerfile)
    assert proc.returncode == 1 and "no instructions" in proc.stderr
    assert not left_behind(state_root)


@kernel
def test_onbuild_triggers_run_in_the_child_build_only(cshell: Cshell, tmp_path: Path, state_root: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nONBUILD COPY f.txt /app/\nONBUILD RUN echo trig > /t\n",
                  {"f.txt": "from the child's context\n"})
    ok(cshell("build", "-t", "parent", str(ctx)))
    config = ok(cshell("inspect", "--format", "{{json .Config.OnBuild}}", "parent"))
    assert config.strip() == '["COPY f.txt /app/","RUN echo trig \\u003e /t"]'  # Go's json
    assert cshell("run", "--rm", "parent", "cat", "/t").returncode != 0  # the parent has no /t
    (ctx / "Dockerfile.child").write_text("FROM parent\nCMD cat /app/f.txt /t\n")
    out = ok(cshell("build", "-t", "child", "-f", str(ctx / "Dockerfile.child"), str(ctx)))
    assert "# Executing 2 build triggers" in out and "Step 2/2 : CMD" in out
    assert ok(cshell("run", "--rm", "child")) == "from the child's context\ntrig\n"
    # the triggers fire once: the child does not keep them, so a grandchild runs none
    assert ok(cshell("inspect", "--format", "{{json .Config.OnBuild}}", "child")).strip() in ("null", "[]")
    (ctx / "Dockerfile.grand").write_text("FROM child\n")
    assert "build trigger" not in ok(cshell("build", "-t", "grand", "-f", str(ctx / "Dockerfile.grand"), str(ctx)))
    # a trigger that copies from a stage the target skipped: one line, not a traceback
    (ctx / "Dockerfile.p2").write_text("FROM busybox\nONBUILD COPY --from=helper /etc/passwd /p\n")
    ok(cshell("build", "-t", "parent2", "-f", str(ctx / "Dockerfile.p2"), str(ctx)))
    (ctx / "Dockerfile.c2").write_text("FROM busybox AS helper\nFROM parent2\n")
    proc = cshell("build", "-t", "child2", "-f", str(ctx / "Dockerfile.c2"), str(ctx))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "Dockerfile.c2:2: COPY --from=helper: stage 0 (helper) was not built" in proc.stderr
    assert not left_behind(state_root)


def gcc_cached() -> bool:
    from cshell.engine.image import bootstrap

    return (bootstrap.CACHE / f"{bootstrap.RECIPES['gcc:12'].slug}.tar").exists()


@kernel
@pytest.mark.slow
@pytest.mark.skipif(not gcc_cached() and not os.environ.get("CSHELL_TEST_GCC"),
                    reason="gcc:12 is not in the bootstrap cache: its first mmdebstrap takes about 2 minutes "
                           "(127 s measured); run `cshell image bootstrap gcc:12` once, or set CSHELL_TEST_GCC=1")
def test_multistage_lesson_ships_a_small_image(cshell: Cshell, state_root: Path) -> None:
    from conftest import REPO

    out = ok(cshell("build", "-t", "hello-ms", str(REPO / "lessons" / "multistage"), timeout=600))
    assert "COPY --from=build /hello /usr/local/bin/hello" in out
    assert ok(cshell("run", "--rm", "hello-ms")) == "hello from a multi-stage build (pid 1)\n"
    store = store_of(state_root)
    final, gcc = store.get_local("hello-ms"), store.get_local("gcc:12")
    assert final.size < 5_000_000 < 100_000_000 < gcc.size  # busybox + one static binary, not the compiler
    assert not any("gcc" in e["created_by"] for e in final.history)  # history is the final stage's
    assert not left_behind(state_root)


@kernel
def test_build_dash_takes_a_tar_context(tmp_path: Path, state_root: Path, cshell: Cshell) -> None:
    from conftest import cshell_argv, cshell_env

    ctx = context(tmp_path, "FROM busybox\nCOPY a.txt /\nCMD cat /a.txt\n", {"a.txt": "tarred\n", "Other": "FROM busybox\n"})
    archive = tmp_path / "ctx.tar.gz"
    subprocess.run(["tar", "czf", str(archive), "-C", str(ctx), "."], check=True)
    for tag, extra in (("tarred", ()), ("other", ("-f", "Other"))):  # -f names a file inside the tar
        with archive.open("rb") as stdin:
            proc = subprocess.run([*cshell_argv(), "--root", str(state_root), "build", "-q", "-t", tag, *extra, "-"],
                                  stdin=stdin, capture_output=True, env=cshell_env(), timeout=120)
        assert proc.returncode == 0, proc.stderr
    assert ok(cshell("run", "--rm", "tarred")) == "tarred\n"
    assert cshell("run", "--rm", "other", "cat", "/a.txt").returncode == 1
    assert not left_behind(state_root)


def test_help_build_explains_stages(cshell: Cshell) -> None:
    text = " ".join(ok(cshell("help", "build")).split())
    for phrase in ("Stages (multi-stage builds)", "COPY --from=NAME", "--target", "skipped", "build -t NAME -",
                   "ONBUILD", "HEALTHCHECK"):
        assert phrase in text, phrase
    assert "--health-cmd" in ok(cshell("help", "run"))


@kernel
def test_a_stage_can_start_from_an_earlier_stage(cshell: Cshell, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox AS base\nARG WHO=base\nRUN echo $WHO > /b\n"
                            "FROM base AS child\nARG WHO\nRUN echo child-sees-${WHO:-nothing} >> /b\nCMD cat /b\n")
    out = ok(cshell("build", "-t", "fromstage", "--build-arg", "WHO=arg", str(ctx)))
    assert "not consumed" not in out
    # each stage has its own ARGs: the child declared WHO, so it sees the build arg
    assert ok(cshell("run", "--rm", "fromstage")) == "arg\nchild-sees-arg\n"


def ok_err(proc: subprocess.CompletedProcess) -> str:
    ok(proc)
    return proc.stderr


@pytest.fixture
def registry() -> Iterator[Any]:
    from registryd import serve

    yield from serve("open")


def publish(publisher: Path, base: str, tmp_path: Path, version: str) -> None:
    """Another machine (its own state root) pushes a new version of the base image."""
    from conftest import run_cshell

    (tmp_path / version).mkdir()
    ctx = context(tmp_path / version, f"FROM busybox\nRUN echo {version} > /version\n")
    ok(run_cshell(publisher, "build", "-q", "-t", base, str(ctx)))
    ok(run_cshell(publisher, "push", base))


@kernel
def test_pull_takes_the_registrys_newer_base(cshell: Cshell, tmp_path: Path, registry: Any) -> None:
    base, publisher = f"{registry.host}/base:latest", tmp_path / "publisher"
    for d in (publisher, tmp_path / "child", tmp_path / "hub"):
        d.mkdir()
    try:
        publish(publisher, base, tmp_path, "v1")
        child = context(tmp_path / "child", f"FROM {base}\nCMD cat /version\n")
        ok(cshell("build", "-q", "-t", "child", str(child)))  # pulled: not here yet
        assert ok(cshell("run", "--rm", "child")) == "v1\n"
        publish(publisher, base, tmp_path, "v2")
        ok(cshell("build", "-q", "-t", "child", str(child)))  # here: used as it is, as docker
        assert ok(cshell("run", "--rm", "child")) == "v1\n"
        ok(cshell("build", "-q", "--pull", "-t", "child", str(child)))
        assert ok(cshell("run", "--rm", "child")) == "v2\n"
    finally:
        shutil.rmtree(publisher, ignore_errors=True)
    # Docker Hub is out of reach from here: --pull builds on the local busybox and says so
    hub = context(tmp_path / "hub", "FROM busybox\n")
    assert "not here yet" in ok_err(cshell("build", "--pull", "-t", "hub", str(hub)))  # made here, first
    out = cshell("build", "--pull", "-t", "hub", str(hub))
    assert out.returncode == 0 and "--pull:" in out.stderr and "building on the local busybox" in out.stderr
