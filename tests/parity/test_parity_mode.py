"""Parity mode (`cshell --script LESSON --parity docker`) replayed against the harness's dockerd.

Every container command of a shipped lesson runs through cshell and through Docker; the
run must pass, and every compared command must be the same under both or differ in a
way docs/differences.md lists (the row is named on screen: `≠ D3`). What the run made in
Docker is removed at its end.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import cshell_argv, cshell_env, run_cshell

from cshell.engine.limits import cgroups
from cshell.shell.parity import normalise
from parity.dockerd import DOCKER, Dockerd
from parity.test_differences import rows

pytestmark = pytest.mark.kernel

V1 = not cgroups.is_v2()
# lesson -> the rows of docs/differences.md its replay shows on this host: a row appearing or
# vanishing is news (Docker 20.10 shares the host's cgroup namespace on v1 only: D10)
LESSONS = {
    "lesson05": {"D11", "D12"},
    "lesson06": {"D10"} if V1 else set(),
    "lesson07": {"D2"},
    "lesson08": {"D3", "D6"} | ({"D10"} if V1 else set()),
}


def replay(daemon: Dockerd, root: Path, lesson: str, log: Path) -> subprocess.CompletedProcess:
    env = {**cshell_env(), **{k: v for k, v in daemon.env().items() if k.startswith("DOCKER_")},
           "CSHELL_DOCKER": DOCKER, "CSHELL_PARITY_LOG": str(log)}
    return subprocess.run([*cshell_argv(), "--root", str(root), "--script", f"{lesson}.cs", "--fast", "--lang", "en",
                           "--parity", "docker"], text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          env=env, cwd="/", timeout=600, stdin=subprocess.DEVNULL)


def docker_things(daemon: Dockerd) -> tuple[list[str], list[str], list[str]]:
    return (daemon.docker("ps", "-aq").stdout.split(), daemon.docker("images", "-q").stdout.split(),
            daemon.docker("volume", "ls", "-q").stdout.split())


@pytest.mark.parametrize("lesson", LESSONS)
def test_lesson_under_parity_mode(dockerd: Dockerd, state_root: Path, tmp_path: Path, lesson: str) -> None:
    assert run_cshell(state_root, "image", "bootstrap", "busybox", timeout=120).returncode == 0
    before = docker_things(dockerd)
    log = tmp_path / "parity.jsonl"
    done = replay(dockerd, state_root, lesson, log)
    assert done.returncode == 0, done.stdout[-6000:]
    compared = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    assert compared, f"{lesson}: no command was compared\n{done.stdout[-3000:]}"
    unexplained = [f"step {r['step']} `{r['text']}`: {r['why']}\n  cshell: {normalise(r['cshell']['output'])!r}"
                   f"\n  docker: {normalise(r['docker']['output'])!r}"
                   for r in compared if not r["same"] and r["known"] not in rows()]
    assert not unexplained, "differences docs/differences.md does not list:\n" + "\n".join(unexplained)
    listed = {r["known"] for r in compared if not r["same"]}
    assert listed == LESSONS[lesson], compared
    for row in listed:
        assert f"≠ {row} docker:" in done.stdout  # the student is told which row explains it
    same = sum(r["same"] for r in compared)
    assert f"{len(compared)} commands compared: {same} the same, {len(compared) - same} different" in done.stdout
    assert docker_things(dockerd) == before, "the parity run left something in Docker"
    assert run_cshell(state_root, "ps", "-aq").stdout.split() == []
