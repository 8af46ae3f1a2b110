"""cshell on a pure cgroup-v2 machine (the students' VMs), in a real guest kernel.

This host has hybrid cgroup v1, so the v2 code path runs in a Debian 12 guest booted
under QEMU (TCG) with `cgroup_no_v1=all`: tests/vm/cgroup-v2-vm.sh, its image built once
by `make vm-image`. The guest boots once per test run (a module fixture) and runs pytest
on GUEST_TESTS from this same tree, shared in read-only over 9p with its venv:
test_cgroups.py reads v2's files there (memory.max, cpu.max, cpu.weight, pids.max…), and
lesson06 (the cgroups lesson) replays against its v2 goldens, tests/golden/lesson06.LANG.cgroup2.txt.
Any guest test that fails, errors or is skipped fails test_cgroup_tests_pass_in_the_v2_guest,
whose message carries the guest's pytest counts and output. The guest's / is an initramfs,
which pivot_root refuses, so tests/vm/guest_pytest.sh runs in a bind mount of / moved on top
of it, as a disk root would be. The guest has no network device, but it loads bridge and veth:
lesson06's containers use cshell's default bridge network (no iptables: no published ports).

CSHELL_V2_TESTS="tests/test_cgroups.py::test_x …" runs other tests in the guest instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VM = REPO / "tests" / "vm" / "cgroup-v2-vm.sh"
GUEST_SCRIPT = REPO / "tests" / "vm" / "guest_pytest.sh"
VMDIR = Path(os.environ.get("VMDIR", "/var/tmp/cshell-vm"))
VM_TIMEOUT = 300  # seconds for the whole VM; a run takes about 2.5 minutes under TCG
# The cgroup tests: all of test_cgroups.py, and the cgroup checks of the lifecycle tests.
GUEST_TESTS = (
    "tests/test_cgroups.py",
    "tests/test_containers.py::test_cgroup_namespace_shows_root",
    "tests/test_containers.py::test_old_root_is_gone",
    "tests/test_containers.py::test_exec_joins_pid_namespace_and_cgroup",
    "tests/test_containers.py::test_empty_cgroups_of_ours_are_orphans",
    # the cgroups lesson, diffed against its cgroup-v2 goldens (~20 s each under TCG)
    "tests/test_lessons.py::test_lesson_replays_like_its_golden[lesson06-en]",
    "tests/test_lessons.py::test_lesson_replays_like_its_golden[lesson06-zh]",
)
BEGIN, END = "=== guest pytest begin ===", re.compile(r"^=== guest pytest end rc=(\d+) ===$", re.M)

pytestmark = pytest.mark.skipif(
    not (VMDIR / "base.cpio").exists() or shutil.which("qemu-system-x86_64") is None,
    reason="no cgroup-v2 guest image: `make vm-image` builds it (make test does)",
)


class Guest:
    """One VM run: the wrapper's exit status and output, parsed."""

    def __init__(self, tests: list[str], proc: subprocess.CompletedProcess, seconds: float) -> None:
        self.tests, self.rc, self.seconds = tests, proc.returncode, seconds
        self.stdout, self.stderr = proc.stdout, proc.stderr
        self.checks: dict[str, str] = {}
        for line in self.stdout.splitlines():
            if line.startswith("CHECK "):
                _, name, *value = line.split(" ", 2)
                self.checks[name] = value[0] if value else ""
        _, begun, rest = self.stdout.partition(BEGIN)
        end = END.search(rest)
        self.pytest_output = rest[:end.start()] if end else rest
        self.pytest_rc = int(end.group(1)) if begun and end else None
        summary = [ln for ln in self.pytest_output.splitlines() if re.search(r"\bin [\d.]+s\b", ln)]
        self.summary = summary[-1].strip("= ") if summary else ""
        self.counts = {kind.rstrip("s") if kind != "passed" else kind: int(n)
                       for n, kind in re.findall(r"(\d+) (passed|failed|errors?|skipped|deselected|xfailed|xpassed)",
                                                 self.summary)}

    def report(self) -> str:
        """What a failing host test shows: counts, time, the guest's pytest output, the VM's stderr."""
        head = (f"guest: VM exit {self.rc}, pytest exit {self.pytest_rc}, {self.summary or 'no pytest summary'}; "
                f"VM wall time {self.seconds:.0f} s\nguest facts: {self.checks}\n")
        output = self.pytest_output if self.pytest_rc is not None else self.stdout
        if len(output) > 20000:
            output = "…(cut)…\n" + output[-20000:]
        return head + "--- guest output ---\n" + output + "\n--- VM stderr (tail) ---\n" + self.stderr[-3000:]


def expected_tests(tests: list[str]) -> int:
    """How many tests the node ids name, collected here on the host (so none can go missing)."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *tests],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, f"collecting the guest's tests failed:\n{proc.stdout}\n{proc.stderr}"
    return sum(1 for line in proc.stdout.splitlines() if "::" in line)


@pytest.fixture(scope="module")
def guest() -> Guest:
    """Boot the guest once and run the tests in it."""
    tests = os.environ.get("CSHELL_V2_TESTS", "").split() or list(GUEST_TESTS)
    # switch_root's way: the bind of / moved on top of the initramfs, as a disk root sits on it.
    # A mere chroot into /mnt would leave the mount namespace's root (what setns(CLONE_NEWNS)
    # starts from, so `exec`) on the initramfs under every container's pivot_root.
    inner = (f"mount --rbind / /mnt && cd /mnt && mount --move . / && exec chroot . sh {GUEST_SCRIPT} {REPO} "
             + " ".join(tests))
    start = time.monotonic()
    proc = subprocess.run(
        [str(VM), "run", "-s", str(REPO), "-t", str(VM_TIMEOUT), "--", "unshare", "-m", "sh", "-c", inner],
        capture_output=True, text=True, timeout=VM_TIMEOUT + 60, env={**os.environ, "VMDIR": str(VMDIR)},
    )
    return Guest(tests, proc, time.monotonic() - start)


def test_the_guest_is_pure_cgroup_v2(guest: Guest) -> None:
    assert guest.checks.get("hierarchy") == "cgroup2fs", guest.report()
    assert {"cpu", "memory", "pids"} <= set(guest.checks.get("controllers", "").split()), guest.report()
    assert guest.checks.get("cshell", "").endswith("v2=True"), guest.report()  # cgroups.is_v2() agrees
    assert guest.checks.get("netmods") == "bridge=yes veth=yes", (  # lesson06's bridge network
        "the guest cannot load bridge/veth: an image older than tests/vm/cgroup-v2-vm.sh? "
        f"rebuild it with `make vm-image`\n{guest.report()}")


def test_cgroup_tests_pass_in_the_v2_guest(guest: Guest, request: pytest.FixtureRequest) -> None:
    request.node.user_properties += [("guest_summary", guest.summary), ("vm_seconds", round(guest.seconds, 1))]
    print(f"guest: {guest.summary}; VM wall time {guest.seconds:.0f} s")  # shown by -rA
    assert guest.pytest_rc is not None, "pytest never finished in the guest\n" + guest.report()
    assert guest.pytest_rc == 0 and guest.rc == 0, guest.report()
    assert not guest.counts.get("failed") and not guest.counts.get("error"), guest.report()
    assert not guest.counts.get("skipped"), "a cgroup test skipped itself on v2\n" + guest.report()
    expected = expected_tests(guest.tests)
    assert guest.counts.get("passed") == expected, f"expected {expected} tests to pass\n" + guest.report()
