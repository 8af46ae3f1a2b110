"""cshell on a pure cgroup-v2 machine (the students' VMs), in a real guest kernel.

This host has hybrid cgroup v1, so the v2 code path is exercised in a Debian 12
guest booted under QEMU (TCG) with `cgroup_no_v1=all`: tests/vm/cgroup-v2-vm.sh,
built once by `make vm-image`. The guest's / is an initramfs, which pivot_root
refuses, so the smoke script runs chrooted into a bind mount of /, as a disk
root would be.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VM = REPO / "tests" / "vm" / "cgroup-v2-vm.sh"
VMDIR = Path(os.environ.get("VMDIR", "/var/tmp/cshell-vm"))

pytestmark = pytest.mark.skipif(
    not (VMDIR / "base.cpio").exists() or shutil.which("qemu-system-x86_64") is None,
    reason="no cgroup-v2 guest image: `make vm-image` builds it (make test does)",
)


def run_in_guest(script: str) -> dict[str, str]:
    inner = f"mount --rbind / /mnt && cd /mnt && exec chroot . sh {script} {REPO}"
    result = subprocess.run(
        [str(VM), "run", "-s", str(REPO), "-t", "600", "--", "unshare", "-m", "sh", "-c", inner],
        capture_output=True, text=True, timeout=700, env={**os.environ, "VMDIR": str(VMDIR)},
    )
    checks = {}
    for line in result.stdout.splitlines():
        if line.startswith("CHECK "):
            _, name, *value = line.split(" ", 2)
            checks[name] = value[0] if value else ""
    assert result.returncode == 0, f"guest failed ({result.returncode}):\n{result.stdout}\n{result.stderr[-3000:]}"
    return checks


def test_containers_on_cgroup_v2() -> None:
    checks = run_in_guest(str(REPO / "tests" / "vm" / "v2_smoke.sh"))
    assert checks.get("hierarchy") == "cgroup2fs", checks
    assert checks.get("run-cgroupns") == "0::/", checks  # the cgroup namespace hides the path
    assert checks.get("group-exists") == "yes", checks
    assert checks.get("pid-in-group") == "yes", checks
    assert set(checks.get("controllers", "").split()) >= {"memory", "pids", "cpu"}, checks
    assert checks.get("exec-cgroupns") == "0::/", checks
    assert checks.get("ns-differ") == "yes", checks
    assert checks.get("group-removed") == "yes", checks
    assert checks.get("containers-left") == "0", checks
    _assert_v2_limits(checks)


def _assert_v2_limits(checks: dict[str, str]) -> None:
    """docker's flags in v2's files, `cgroup set/show`, and the kernel enforcing them."""
    assert checks.get("v2-memory-max") == str(64 << 20), checks
    assert checks.get("v2-swap-max") == str(32 << 20), checks  # --memory-swap 96m: swap = 96m - 64m
    assert checks.get("v2-cpu-max") == "50000 100000", checks
    assert checks.get("v2-cpu-weight") == "20", checks  # 1 + (512 - 2) * 9999 // 262142
    assert checks.get("v2-pids-max") == "50", checks
    assert checks.get("v2-set") == f"{128 << 20} 100 30000_100000", checks
    assert checks.get("v2-show") == "3", checks
    assert checks.get("v2-set-v1-name") == "1", checks  # a v1 file name is not in a v2 group
    assert checks.get("v2-lim-removed") == "yes", checks
    assert checks.get("v2-inside", "").split() == ["40", "1", "40", "/"], checks  # read-only, own group
    assert checks.get("v2-cpuset") == "0", checks
    assert checks.get("v2-bad-limit") == "1 0", checks
    assert checks.get("v2-oom-exit") == "137", checks
    assert checks.get("v2-oom-killed") == "true", checks
    current, refused = checks.get("v2-pids-current", "99 0").split()
    assert int(current) <= 10 and int(refused) > 0, checks
    assert int(checks.get("v2-throttled") or 0) > 0, checks
    assert checks.get("v2-groups-left") == "0", checks
