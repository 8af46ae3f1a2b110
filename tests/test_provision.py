"""The Vagrant VM and its provisioning script.

`vagrant validate` checks the Vagrantfile with Debian's vagrant package (no
VirtualBox or libvirt here: provider blocks are left out of the check, the
rest, the provisioner's script included, is validated). scripts/provision.sh
is then run for real on a fresh Debian 12 rootfs (cshell's cached mmdebstrap
minbase), and lesson 05 replayed there: tests/provision_fresh_debian.sh.
That one is slow the first time (apt and pip download into
/var/cache/cshell/provision-test, reused after): about 30 s with the caches.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from conftest import REPO

PROVISION = REPO / "scripts" / "provision.sh"
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="provisioning installs packages: needs root")


def vagrant() -> str:
    found = shutil.which("vagrant")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("vagrant is missing: `make test` installs it (TEST_PKGS in the Makefile)")
        pytest.skip("vagrant is not installed (apt-get install vagrant, or make test)")
    return found


def validate(where: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "VAGRANT_HOME": str(where / ".vagrant.d"), "VAGRANT_CHECKPOINT_DISABLE": "1"}
    return subprocess.run([vagrant(), "validate", *args], cwd=where, env=env, capture_output=True, text=True,
                          timeout=120)


def test_vagrantfile_validates(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "Vagrantfile", tmp_path / "Vagrantfile")  # a copy: validate leaves .vagrant/ behind
    done = validate(tmp_path, "--ignore-provider")
    assert done.returncode != 0 and "provision.sh" in done.stdout + done.stderr  # the script must exist
    shutil.copy(PROVISION, tmp_path / "scripts" / "provision.sh")
    done = validate(tmp_path, "--ignore-provider")
    assert done.returncode == 0 and "validated successfully" in done.stdout, done.stdout + done.stderr


def test_vagrantfile_asks_for_the_lesson_machine() -> None:
    text = (REPO / "Vagrantfile").read_text()
    assert re.search(r'config\.vm\.box = "debian/bookworm64"', text)  # Debian 12: cgroup v2 out of the box
    for provider in ("vb", "lv"):  # VirtualBox and libvirt: 2 CPUs, 2 GB each
        assert f"{provider}.cpus = 2" in text and f"{provider}.memory = 2048" in text
    assert 'path: "scripts/provision.sh", args: ["/vagrant"]' in text
    assert re.search(r'synced_folder "\.", "/vagrant"', text)  # so /vagrant/lessons/lesson08.cs exists


@root_only
def test_provision_refuses_what_is_not_a_checkout(tmp_path: Path) -> None:
    done = subprocess.run(["sh", str(PROVISION), str(tmp_path)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and "is not a cshell checkout" in done.stderr
    assert not (tmp_path / ".venv").exists()


def _not_overlay(path: str) -> bool:
    done = subprocess.run(["stat", "-fc", "%T", path], capture_output=True, text=True)
    return done.stdout.strip() not in ("overlayfs", "")


@root_only
@pytest.mark.kernel
@pytest.mark.slow
def test_provision_on_fresh_debian_then_a_lesson(capsys: pytest.CaptureFixture[str]) -> None:
    from cshell.engine.image.bootstrap import cached_rootfs, recipe_for

    if not shutil.which("unshare") or not shutil.which("pivot_root"):
        pytest.skip("needs util-linux's unshare and pivot_root")
    recipe = recipe_for("debian:bookworm")
    assert recipe is not None
    tar, _, _ = cached_rootfs(recipe)  # mmdebstrap the first time on a machine, then the cache
    base = "/var/tmp" if _not_overlay("/var/tmp") else None
    if base is None:
        pytest.skip("/var/tmp is on overlayfs: cshell's layers cannot be mounted on top of it")
    cache = Path(os.environ.get("CSHELL_CACHE", "/var/cache/cshell")) / "provision-test"
    work = Path(tempfile.mkdtemp(prefix="cshell-provision-", dir=base))
    started = time.monotonic()
    try:
        done = subprocess.run(["bash", str(REPO / "tests" / "provision_fresh_debian.sh"), str(tar), str(work),
                               str(cache), str(REPO)], capture_output=True, text=True, timeout=1800,
                              stdin=subprocess.DEVNULL)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    took = time.monotonic() - started
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-8000:]
    assert "provision: cshell is /usr/local/bin/cshell -> /root/cshell" in out
    assert "✔ lesson finished: 10 steps" in out and "expectation failed" not in out
    phases = dict(re.findall(r"^=== (\S+).*\((\d+) s\)$", out, re.M))
    with capsys.disabled():
        print(f"\n  provisioned a fresh Debian 12 and replayed lesson05 in {took:.0f} s ({phases})")
