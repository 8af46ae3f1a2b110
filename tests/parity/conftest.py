"""The parity harness's fixtures: Debian's dockerd (one per session) and a pair of engines per test.

``engines.both("run --rm busybox true")`` runs the same line through ``docker`` and
through ``cshell`` (each with its own state: the test's state root, the session's
daemon) and returns both results normalised (``parity.compare``); the test asserts
they are equal. After each test every Docker container, volume and image but
busybox is removed, as the kernel guard removes cshell's.
"""

from __future__ import annotations

import shlex
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_cshell

from parity.compare import Seen, seen
from parity.dockerd import Dockerd, docker_or_skip


@pytest.fixture(scope="session")
def dockerd() -> Iterator[Dockerd]:
    """Docker's daemon with busybox loaded from what cshell builds (`cshell save` + `docker load`)."""
    daemon = docker_or_skip()
    try:
        with tempfile.TemporaryDirectory(prefix="cshell-parity-", dir="/tmp") as tmp:
            tar = Path(tmp) / "busybox.tar"
            made = run_cshell(Path(tmp) / "root", "image", "bootstrap", "busybox", timeout=120)
            assert made.returncode == 0, made.stderr
            saved = run_cshell(Path(tmp) / "root", "save", "-o", str(tar), "busybox", timeout=120)
            assert saved.returncode == 0, saved.stderr
            loaded = daemon.docker("load", "-i", str(tar))
            assert loaded.returncode == 0, loaded.stderr
        yield daemon
    finally:
        daemon.stop()


class Engines:
    """The same command lines through docker and cshell."""

    def __init__(self, daemon: Dockerd, root: Path) -> None:
        self.daemon, self.root = daemon, root

    def docker(self, line: str, input: str | None = None) -> subprocess.CompletedProcess:
        return self.daemon.docker(*shlex.split(line), input=input)

    def cshell(self, line: str, input: str | None = None) -> subprocess.CompletedProcess:
        return run_cshell(self.root, *shlex.split(line), input=input)

    def setup(self, *lines: str) -> None:
        """Lines run before the comparison: their output is not compared, their exit status is
        (a container that exits 3 on purpose is fine, one engine refusing the line is not)."""
        for line in lines:
            docker, cshell = self.docker(line), self.cshell(line)
            assert docker.returncode == cshell.returncode, (
                f"setup `{line}`: docker exit {docker.returncode} {docker.stderr.strip()[:200]!r}, "
                f"cshell exit {cshell.returncode} {cshell.stderr.strip()[:200]!r}")

    def both(self, line: str, input: str | None = None, view: str = "text") -> tuple[Seen, Seen]:
        return (seen(self.docker(line, input), view, "docker"), seen(self.cshell(line, input), view, "cshell"))

    def clean(self) -> None:
        """What a case leaves (containers running `sleep 300`, volumes, images) goes in both
        engines; cshell's before the kernel guard, which fails a test that leaves one running."""
        mine = self.cshell("ps -aq").stdout.split()
        if mine:
            self.cshell("rm -f -v " + " ".join(mine))
        ids = self.docker("ps -aq").stdout.split()
        if ids:
            self.docker("rm -f " + " ".join(ids))
        self.cshell("network prune -f")  # user networks: their bridges and rules go with them
        self.docker("network prune -f")
        volumes = self.docker("volume ls -q").stdout.split()
        if volumes:
            self.docker("volume rm -f " + " ".join(volumes))
        images = [ref for ref in self.docker("images --format {{.Repository}}:{{.Tag}}").stdout.split()
                  if ref != "busybox:latest"]
        if images:
            self.docker("rmi -f " + " ".join(images))
        dangling = self.docker("images -q -f dangling=true").stdout.split()
        if dangling:
            self.docker("rmi -f " + " ".join(dangling))


@pytest.fixture
def engines(dockerd: Dockerd, state_root: Path) -> Iterator[Engines]:
    pair = Engines(dockerd, state_root)
    made = run_cshell(state_root, "image", "bootstrap", "busybox", timeout=120)  # docker has it loaded
    assert made.returncode == 0, made.stderr
    yield pair
    pair.clean()
