"""The students' VM for real: `make box`, `vagrant up` of the local box, lesson 08 inside, destroy.

Skipped unless CSHELL_TEST_VM=1 and run as root: it installs libvirt on the host (make box),
builds the box the first time (about 1.5 minutes; cached after) and boots a systemd guest,
under TCG where KVM does not work: scripts/box/smoke.sh does the VM part (about 6 minutes
here; `pytest -s` shows its timings). Vagrant's state for this run lives in a temporary
VAGRANT_DOTFILE_PATH, not in the checkout's .vagrant/. Afterwards nothing of the VM may be left: no domain, no volume but
the box's base image (vagrant-libvirt keeps that in the pool, like a box cache, until
`make box-clean`), no vagrant-libvirt network, no DHCP lease, no qemu or dnsmasq of ours.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import REPO

pytestmark = pytest.mark.skipif(
    os.environ.get("CSHELL_TEST_VM") != "1" or os.geteuid() != 0,
    reason="boots a VM under TCG (slow): set CSHELL_TEST_VM=1 and run as root",
)

BOX = "cshell/bookworm-local"
BOX_VOLUME = "cshell-VAGRANTSLASH-bookworm-local_vagrant_box_image"
LEASES = Path("/var/lib/libvirt/dnsmasq/vagrant-libvirt.status")


def sh(*cmd: str, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def virsh_names(*args: str) -> set[str]:
    done = sh("virsh", "-c", "qemu:///system", "-q", *args)
    return {line.split()[0] for line in done.stdout.splitlines() if line.strip()}


def leftovers() -> dict[str, set[str]]:
    procs = sh("ps", "-eo", "args").stdout.splitlines()
    return {
        "domains": virsh_names("list", "--all", "--name"),
        "volumes": {v for v in virsh_names("vol-list", "default") if not v.startswith(BOX_VOLUME)},
        "networks": virsh_names("net-list", "--all", "--name"),
        "qemu": {p for p in procs if p.startswith("/usr/bin/qemu-system") and "guest=" in p},
        "dnsmasq": {p for p in procs if "dnsmasq" in p and "vagrant-libvirt" in p},
    }


def timed(label: str, t0: float) -> None:
    print(f"vm-timing: {label:<24} {time.monotonic() - t0:7.1f} s")


def test_make_box_vagrant_up_lesson08_destroy(tmp_path: Path) -> None:
    t0 = time.monotonic()
    done = sh("make", "box", timeout=3600)
    assert done.returncode == 0, done.stdout + done.stderr
    print(done.stderr[-2000:])  # box-timing lines
    timed("make box", t0)
    before = leftovers()
    # up (boot to ssh), provision, lesson08 --fast, destroy -f: scripts/box/smoke.sh, timed
    env = {**os.environ, "VAGRANT_DOTFILE_PATH": str(tmp_path / "dot-vagrant")}
    smoke = sh(str(REPO / "scripts" / "box" / "smoke.sh"), env=env, timeout=7200)
    print(smoke.stderr)  # vm-timing lines
    log = (tmp_path / "smoke.log").read_text()
    assert smoke.returncode == 0, smoke.stderr + log[-6000:]
    assert "provision: cshell is" in log and "cgroup v2" in log, log[-3000:]
    assert "lesson finished" in log, log[-3000:]
    # and, independently of smoke.sh's own check, nothing of the VM is left
    after = leftovers()
    for kind, now in after.items():
        assert now <= before[kind], f"left behind ({kind}): {sorted(now - before[kind])}"
    assert "vagrant-libvirt" not in after["networks"]
    assert not LEASES.exists() or "ip-address" not in LEASES.read_text(), LEASES.read_text()
