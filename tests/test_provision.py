"""The Vagrant VM, its Vagrantfile's checks of bad input, and its provisioning script.

`vagrant validate` checks the Vagrantfile with Debian's vagrant package (no
VirtualBox or libvirt here: provider blocks are left out of the check, the
rest, the provisioner's script included, is validated). Bad input to `vagrant
up` (a box not added, a box of another architecture, no vagrant-libvirt, no
libvirt answering) is refused by the Vagrantfile itself in two lines, error and
hint, before any machine exists: checked with a VAGRANT_HOME of our own and
boxes laid out by hand, no VM booted. scripts/provision.sh
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


# -- bad input before vagrant-libvirt gets going: the Vagrantfile's preflight ----------------------
# Each case runs the real Vagrantfile with its own VAGRANT_HOME (a box directory made by hand,
# as `vagrant box add` lays it out) and must end in cshell's two lines, error and hint, before
# any machine exists.

def project(tmp_path: Path) -> Path:
    where = tmp_path / "project"
    (where / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "Vagrantfile", where / "Vagrantfile")
    shutil.copy(PROVISION, where / "scripts" / "provision.sh")
    (where / ".vagrant.d").mkdir()
    return where


def fake_box(where: Path, name: str, arch: str) -> None:
    """A box as `vagrant box add` leaves it: boxes/NAME/VERSION/PROVIDER/metadata.json."""
    d = where / ".vagrant.d" / "boxes" / name.replace("/", "-VAGRANTSLASH-") / "0" / "libvirt"
    d.mkdir(parents=True)
    (d / "metadata.json").write_text(
        f'{{"provider":"libvirt","format":"qcow2","virtual_size":20,"architecture":"{arch}"}}')


def vagrant_in(where: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "VAGRANT_HOME": str(where / ".vagrant.d"), "VAGRANT_CHECKPOINT_DISABLE": "1", **env}
    return subprocess.run([vagrant(), *args], cwd=where, env=full, capture_output=True, text=True, timeout=120)


def refused(done: subprocess.CompletedProcess, where: Path, *words: str) -> None:
    """Exit 1, exactly `error: ...` and `hint: ...` on stderr, and no machine made."""
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 2, done.stdout + done.stderr
    assert lines[0].startswith("error: ") and lines[1].startswith("hint: "), lines
    for word in words:
        assert word in done.stderr, (word, done.stderr)
    assert not list(where.glob(".vagrant/machines/*/*/id")), "a machine was made"


def test_vagrant_up_without_the_box_says_make_box(tmp_path: Path) -> None:
    where = project(tmp_path)
    done = vagrant_in(where, "up", "--provider=libvirt", CSHELL_BOX="cshell/bookworm-local")
    refused(done, where, "cshell/bookworm-local (CSHELL_BOX) is not added here", "make box", "vagrant box add")
    done = vagrant_in(where, "up", CSHELL_BOX="someone/else")  # another name: how to add it
    refused(done, where, "someone/else", "vagrant box add someone/else")


def test_vagrant_up_of_a_box_for_another_architecture(tmp_path: Path) -> None:
    where = project(tmp_path)
    fake_box(where, "cshell/arm", "arm64")
    done = vagrant_in(where, "up", CSHELL_BOX="cshell/arm")
    refused(done, where, "is for arm64, this host is amd64")


def test_vagrant_up_without_the_libvirt_plugin(tmp_path: Path) -> None:
    where = project(tmp_path)
    fake_box(where, "cshell/x", "amd64")  # a libvirt-only box: the provider it needs
    done = vagrant_in(where, "up", CSHELL_BOX="cshell/x", VAGRANT_NO_PLUGINS="1")
    refused(done, where, "needs the vagrant-libvirt plugin", "apt-get install vagrant-libvirt")


def test_vagrant_when_libvirt_does_not_answer(tmp_path: Path) -> None:
    where = project(tmp_path)
    if "vagrant-libvirt" not in vagrant_in(where, "plugin", "list").stdout:
        if os.environ.get("CI"):
            pytest.fail("vagrant-libvirt is missing: `make test` installs it (TEST_PKGS in the Makefile)")
        pytest.skip("vagrant-libvirt is not installed (apt-get install vagrant-libvirt, or make test)")
    fake_box(where, "cshell/x", "amd64")
    nowhere = f"qemu:///system?socket={tmp_path}/no-libvirt-sock"  # LIBVIRT_DEFAULT_URI is respected
    for command in (["up"], ["status"], ["up", "--provider", "libvirt"]):
        done = vagrant_in(where, *command, CSHELL_BOX="cshell/x", LIBVIRT_DEFAULT_URI=nowhere)
        refused(done, where, f"libvirt does not answer at {nowhere}", "libvirtd -d", "LIBVIRT_DEFAULT_URI")


def test_vagrant_commands_that_need_no_machine_skip_the_preflight(tmp_path: Path) -> None:
    """`vagrant box add` and friends load the Vagrantfile too: a box not added yet must not stop them."""
    where = project(tmp_path)
    done = vagrant_in(where, "box", "list", CSHELL_BOX="cshell/bookworm-local")
    assert done.returncode == 0 and "error:" not in done.stderr, done.stderr


@root_only
def test_make_box_refuses_a_host_that_is_not_amd64(tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "dpkg").write_text("#!/bin/sh\necho arm64\n")  # what dpkg --print-architecture says on arm64
    (fake / "dpkg").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "BOXDIR": str(tmp_path / "box")}
    done = subprocess.run(["bash", str(REPO / "scripts" / "box" / "build-box.sh"), "build"], env=env,
                          capture_output=True, text=True, timeout=60)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 2, done.stderr
    assert lines[0] == ("error: make box builds an amd64 box (Debian's amd64 kernel under qemu-system-x86); "
                        "this host is arm64") and lines[1].startswith("hint: "), lines
    assert not (tmp_path / "box").exists()  # nothing built, nothing installed


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
    # run twice, the second run changes nothing, says so, and is quick
    first, again = out.split("=== provision again")[0], out.split("=== provision again")[1].split("=== lesson05")[0]
    assert "provision: nothing to do: cshell is /usr/local/bin/cshell -> /root/cshell" not in first
    assert "provision: nothing to do: cshell is /usr/local/bin/cshell -> /root/cshell" in again, again
    assert "apt-get" not in again and "may now type" not in again, again
    checked = int(re.search(r"checked in (\d+) s", again).group(1))
    assert checked <= 15, again
    assert "✔ lesson finished: 10 steps" in out and "expectation failed" not in out
    phases = dict(re.findall(r"^=== (\S+).*\((\d+) s\)$", out, re.M))
    with capsys.disabled():
        print(f"\n  provisioned a fresh Debian 12 and replayed lesson05 in {took:.0f} s ({phases})")
