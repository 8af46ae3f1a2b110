"""Resource limits in real cgroups, v1 or v2, whichever the host has.

This host has cgroup v1; test_cgroup_v2_vm.py runs this same file in a pure
cgroup-v2 guest, where each check reads v2's file for the same limit
(memory.max for memory.limit_in_bytes, cpu.max for cpu.cfs_quota_us…).
Each flag is read back from the host's cgroup files; `cgroup set` changes a
running container and is recorded (inspect, the next start); the OOM killer,
a fork loop and a CPU spinner meet their limits; inside, the cgroup namespace
shows `/` and a read-only /sys/fs/cgroup. The leak check (conftest) fails a
test that leaves any cgroup directory.
"""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
from conftest import Cshell, wait_for

from cshell.engine.limits import cgroups
from cshell.engine.limits.limits import weight

pytestmark = pytest.mark.kernel

ROOT = cgroups.CGROUP_ROOT
V2 = cgroups.is_v2()  # what cgroups.py itself detects: cgroup.controllers at the root
MiB = 1024 * 1024


def ok(proc) -> str:  # noqa: ANN001 - CompletedProcess
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc.stdout


def group(controller: str, cid: str) -> Path:
    """The directory with the controller's files: v1 one per controller, v2 one for all
    (under systemd, in the container's scope)."""
    return cgroups.container_dirs(cid)[0] if V2 else ROOT / controller / "cshell" / cid


def read(controller: str, cid: str, name: str) -> str:
    return (group(controller, cid) / name).read_text().strip()


def groups_left(cid: str) -> list[str]:
    """CID may be a 12-character prefix (a systemd scope's name has no more)."""
    return (glob.glob(f"{ROOT}/*/cshell/{cid}*") + glob.glob(f"{ROOT}/cshell/{cid}*")
            + glob.glob(f"{ROOT}/cshell.slice/cshell-{cid[:12]}.scope"))


def run_detached(cshell: Cshell, *args: str) -> str:
    return ok(cshell("run", "-d", "--net", "none", *args)).strip()


def host_config(cshell: Cshell, name: str) -> dict:
    return json.loads(ok(cshell("inspect", name)))[0]["HostConfig"]


def test_each_flag_lands_in_its_file(cshell: Cshell) -> None:
    cid = run_detached(cshell, "--name", "lim", "--memory", "64m", "--memory-swap", "96m", "--cpus", "0.5",
                       "--cpu-shares", "512", "--cpuset-cpus", "0", "--pids-limit", "50", "busybox", "sleep", "60")
    if V2:
        assert read("memory", cid, "memory.max") == str(64 * MiB)
        assert read("memory", cid, "memory.swap.max") == str(32 * MiB)  # swap only: 96m - 64m
        assert read("cpu", cid, "cpu.max") == "50000 100000"
        assert read("cpu", cid, "cpu.weight") == str(weight(512)) == "20"  # runc's shares -> weight
        assert read("cpuset", cid, "cpuset.cpus") == "0"
        assert read("cpuset", cid, "cpuset.cpus.effective") == "0"
    else:
        assert read("memory", cid, "memory.limit_in_bytes") == str(64 * MiB)
        if (group("memory", cid) / "memory.memsw.limit_in_bytes").exists():
            assert read("memory", cid, "memory.memsw.limit_in_bytes") == str(96 * MiB)
        assert read("cpu", cid, "cpu.cfs_quota_us") == "50000"
        assert read("cpu", cid, "cpu.cfs_period_us") == "100000"
        assert read("cpu", cid, "cpu.shares") == "512"
        assert read("cpuset", cid, "cpuset.cpus") == "0"
        assert read("cpuset", cid, "cpuset.mems") != ""
    assert read("pids", cid, "pids.max") == "50"
    pid = json.loads(ok(cshell("inspect", "lim")))[0]["State"]["Pid"]
    assert str(pid) in read("cpuset", cid, "cgroup.procs").split()

    memory_file = "memory.max" if V2 else "memory.limit_in_bytes"
    proc = cshell("cgroup", "set", "lim", "memory=128m")  # above memory+swap (96m): docker refuses too
    assert proc.returncode == 1 and "memory-swap" in proc.stderr, proc
    assert read("memory", cid, memory_file) == str(64 * MiB)
    ok(cshell("cgroup", "set", "lim", "memory=128m", "memory-swap=-1", "cpus=0.25", "pids=100", "cpu-shares=256"))
    assert read("memory", cid, memory_file) == str(128 * MiB)
    assert read("pids", cid, "pids.max") == "100"
    if V2:
        assert read("memory", cid, "memory.swap.max") == "max"
        assert read("cpu", cid, "cpu.max") == "25000 100000"
        assert read("cpu", cid, "cpu.weight") == str(weight(256)) == "10"
        raw, quota_file, quota = "cpu.max=30000 100000", "cpu.max", "30000 100000"
    else:
        assert read("cpu", cid, "cpu.cfs_quota_us") == "25000"
        assert read("cpu", cid, "cpu.shares") == "256"
        raw, quota_file, quota = "cpu.cfs_quota_us=30000", "cpu.cfs_quota_us", "30000"
    out = ok(cshell("cgroup", "set", "lim", raw))
    assert f"{group('cpu', cid)}/{quota_file} = {quota}" in out
    assert read("cpu", cid, quota_file) == quota

    show = ok(cshell("cgroup", "show", "lim"))
    for line in (f"{group('memory', cid)}/{memory_file} = 134217728", f"{group('cpu', cid)}/{quota_file} = {quota}",
                 f"{group('pids', cid)}/pids.max = 100", f"{group('cpuset', cid)}/cpuset.cpus = 0"):
        assert line in show, show
    usage = ("memory.current", "memory.peak") if V2 else ("memory.usage_in_bytes", "memory.max_usage_in_bytes")
    for word in (*usage, "nr_throttled", "pids.current: 1"):
        assert word in show, show
    ok(cshell("rm", "-f", "lim"))
    assert not groups_left(cid)


def test_cgroup_set_refuses_bad_keys_and_values(cshell: Cshell) -> None:
    cid = run_detached(cshell, "--name", "s", "--pids-limit", "30", "busybox", "sleep", "60")
    other_name = "memory.limit_in_bytes" if V2 else "memory.max"  # the other version's file
    cases = [("../../pids.max=1", "unknown key"), (f"{other_name}=1", f"no cgroup file {other_name}"),
             ("cpus=0", "range of CPUs"), ("pids.max=abc", "pids.max: Invalid argument"),
             ("memory", "expected KEY=VALUE")]
    if not V2:  # v2 has one group with every controller: cpuset-cpus works on any container
        cases.append(("cpuset-cpus=0", "has no cpuset group"))
    for value, words in cases:
        proc = cshell("cgroup", "set", "s", value)
        assert proc.returncode == 1, (value, proc)
        lines = proc.stderr.strip().splitlines()
        assert words in lines[0] and lines[1].startswith("hint:") and len(lines) == 2, (value, proc.stderr)
    assert read("pids", cid, "pids.max") == "30"
    taught = "memory.max" if V2 else "memory.limit_in_bytes"  # the name this host's version uses
    assert f"this host has cgroup {'v2' if V2 else 'v1'}: the file is {taught}" in \
        cshell("cgroup", "set", "s", f"{other_name}=1").stderr
    ok(cshell("rm", "-f", "s"))


def test_oom_kill_is_reported(cshell: Cshell) -> None:
    proc = cshell("run", "--name", "hog", "--net", "none", "--memory", "16m", "busybox", "tail", "/dev/zero")
    assert proc.returncode == 137, proc
    status = [ln for ln in ok(cshell("ps", "-a")).splitlines() if ln.rstrip().endswith(" hog")][0]
    assert "Exited (137)" in status
    state = json.loads(ok(cshell("inspect", "hog")))[0]["State"]
    assert state["OOMKilled"] is True and state["ExitCode"] == 137
    ok(cshell("rm", "hog"))
    proc = cshell("run", "--rm", "--net", "none", "--memory", "16m", "busybox", "true")
    assert proc.returncode == 0, proc


def test_pids_limit_stops_a_fork_loop(cshell: Cshell) -> None:
    loop = 'i=0; while [ $i -lt 200 ]; do sleep 60 & i=$((i+1)); done'
    cid = run_detached(cshell, "--name", "fb", "--pids-limit", "20", "busybox", "sh", "-c",
                       f"({loop}) 2>/dev/null; echo survived; exec sleep 60")  # the subshell dies, PID 1 lives
    assert wait_for(lambda: "survived" in ok(cshell("logs", "fb")), timeout=30)
    assert 15 <= int(read("pids", cid, "pids.current")) <= 20  # PID 1 and the sleeps (the subshell is gone)
    if (group("pids", cid) / "pids.peak").exists():
        assert read("pids", cid, "pids.peak") == "20"  # never above the limit
    events = dict(ln.split() for ln in read("pids", cid, "pids.events").splitlines())
    assert int(events["max"]) > 0, events  # "max N": forks refused
    assert "Up" in [ln for ln in ok(cshell("ps")).splitlines() if ln.rstrip().endswith(" fb")][0]
    ok(cshell("rm", "-f", "fb"))


def test_cpu_quota_throttles_a_spinner(cshell: Cshell) -> None:
    def cpu_seconds() -> float:  # v1 cpuacct.usage (ns), v2 cpu.stat usage_usec
        if V2:
            return int(dict(ln.split() for ln in read("cpu", cid, "cpu.stat").splitlines())["usage_usec"]) / 1e6
        return int(read("cpuacct", cid, "cpuacct.usage")) / 1e9

    cid = run_detached(cshell, "--name", "spin", "--cpus", "0.2", "busybox", "sh", "-c", "while :; do :; done")
    start, used0 = time.monotonic(), cpu_seconds()
    time.sleep(1.0)
    used = (cpu_seconds() - used0) / (time.monotonic() - start)
    stat = dict(ln.split() for ln in read("cpu", cid, "cpu.stat").splitlines())
    assert int(stat["nr_throttled"]) > 0, stat
    assert 0.1 < used < 0.3, used  # about 0.2 CPU
    assert "nr_throttled=" in ok(cshell("cgroup", "show", "spin"))
    ok(cshell("rm", "-f", "spin"))


def test_cgroup_namespace_and_read_only_view(cshell: Cshell) -> None:
    # v1: a tmpfs with one directory per hierarchy; v2: the group's own files at the top
    pids, memory = ("pids.max", "memory.max") if V2 else ("pids/pids.max", "memory/memory.limit_in_bytes")
    parent_listing = "/sys/fs/cgroup" if V2 else "/sys/fs/cgroup/memory"
    script = ("cat /proc/self/cgroup; echo ---; ls /sys/fs/cgroup; echo ---; "
              f"cat /sys/fs/cgroup/{pids} /sys/fs/cgroup/{memory}; "
              f"ls {parent_listing} | grep -c cshell; "
              f"echo max > /sys/fs/cgroup/{pids}; echo 0 > /sys/fs/cgroup/{memory}; "
              f"mkdir /sys/fs/cgroup/x; cat /sys/fs/cgroup/{pids}")
    proc = cshell("run", "--rm", "--net", "none", "--memory", "32m", "--pids-limit", "40", "busybox", "sh", "-c", script)
    cgroup, listing, rest = proc.stdout.split("---\n")
    assert cgroup.strip() and all(ln.endswith(":/") for ln in cgroup.splitlines()), cgroup
    if V2:
        assert cgroup.strip() == "0::/", cgroup
        assert {"memory.max", "pids.max", "cpu.max", "cgroup.procs"} <= set(listing.split()), listing
    else:
        assert {"memory", "pids", "cpu"} <= set(listing.split()), listing
    assert rest.split() == ["40", str(32 * MiB), "0", "40"], proc  # own group only, nothing raised
    assert proc.stderr.count("Read-only file system") == 3, proc.stderr


def test_cgroup_set_is_recorded_shown_by_inspect_and_applied_again_at_start(cshell: Cshell) -> None:
    """docker update: the new limits are the container's (HostConfig), through stop and start."""
    cid = run_detached(cshell, "--name", "up", "--memory", "64m", "--cpus", "0.5", "busybox", "sleep", "60")
    hc = host_config(cshell, "up")
    assert (hc["Memory"], hc["MemorySwap"], hc["NanoCpus"], hc["PidsLimit"]) == (64 * MiB, 128 * MiB, 500000000, None)
    refused = cshell("cgroup", "set", "up", "memory=256m")  # above the recorded memory+swap (128m)
    assert refused.returncode == 1 and "memory-swap" in refused.stderr, refused
    ok(cshell("cgroup", "set", "up", "memory=96m", "cpus=0.25", "cpu-shares=256", "pids=60"))
    ok(cshell("cgroup", "set", "up", "pids.max=70"))  # a raw file, recorded too
    hc = host_config(cshell, "up")
    assert hc["Memory"] == 96 * MiB and hc["MemorySwap"] == 128 * MiB  # swap stays where it was
    assert (hc["NanoCpus"], hc["CpuShares"], hc["PidsLimit"]) == (250000000, 256, 70), hc
    memory_file = "memory.max" if V2 else "memory.limit_in_bytes"

    def limits_now() -> tuple[str, str, str]:
        quota = read("cpu", cid, "cpu.max") if V2 else read("cpu", cid, "cpu.cfs_quota_us")
        return read("memory", cid, memory_file), quota, read("pids", cid, "pids.max")

    expected = (str(96 * MiB), "25000 100000" if V2 else "25000", "70")
    assert limits_now() == expected
    ok(cshell("stop", "-t", "0", "up"))
    assert not groups_left(cid)
    assert host_config(cshell, "up")["PidsLimit"] == 70  # recorded, not read from a group
    ok(cshell("start", "up"))
    assert limits_now() == expected  # applied again to the new group
    assert read("cpu", cid, "cpu.weight" if V2 else "cpu.shares") == (str(weight(256)) if V2 else "256")
    ok(cshell("cgroup", "set", "up", "pids=80"))  # a docker key later replaces the raw write
    ok(cshell("stop", "-t", "0", "up"))
    ok(cshell("start", "up"))
    assert read("pids", cid, "pids.max") == "80" and host_config(cshell, "up")["PidsLimit"] == 80
    ok(cshell("stop", "-t", "0", "up"))
    out = ok(cshell("cgroup", "set", "up", "memory=80m", "pids=90"))  # stopped: recorded for the next start
    assert "next start" in out and not groups_left(cid)
    raw = cshell("cgroup", "set", "up", "pids.max=5")  # no file to check while stopped
    assert raw.returncode == 1 and "while the container runs" in raw.stderr, raw
    assert host_config(cshell, "up")["PidsLimit"] == 90
    ok(cshell("start", "up"))
    assert (read("memory", cid, memory_file), read("pids", cid, "pids.max")) == (str(80 * MiB), "90")
    ok(cshell("rm", "-f", "up"))


@pytest.mark.parametrize(("flags", "words"), [
    (("--memory", "1k"), "below the minimum"),
    (("--memory", "-5m"), "invalid size"),
    (("--memory", "12x"), "invalid size"),
    (("--cpus", "0"), "range of CPUs"),
    (("--cpus", "999"), "range of CPUs"),
    (("--pids-limit", "-5"), "negative"),
    (("--cpuset-cpus", "99"), "requested CPUs are not available"),
    (("--cpu-shares", "1"), "out of range"),
    (("--memory-swap", "64m"), "needs --memory"),
    (("--memory", "64m", "--memory-swap", "32m"), "smaller than --memory"),
])
def test_impossible_limits_make_nothing(cshell: Cshell, state_root: Path, flags: tuple[str, ...],
                                        words: str) -> None:
    proc = cshell("run", "--net", "none", *flags, "busybox", "true")
    assert proc.returncode == 125, proc  # docker run: 125 when the daemon refuses
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 2 and words in lines[0] and lines[1].startswith("hint:"), proc.stderr
    assert ok(cshell("ps", "-a", "-q")).strip() == ""
    assert not list((state_root / "containers").glob("*")) if (state_root / "containers").exists() else True


def test_crash_leaves_no_cgroup_dirs(cshell: Cshell, state_root: Path) -> None:
    """Shim and PID 1 killed (a crash): the next cshell start-up removes every group, cpuset's too."""
    cid = run_detached(cshell, "--name", "crash", "--cpuset-cpus", "0", "--memory", "32m", "busybox", "sleep", "60")
    state = json.loads((state_root / "containers" / cid / "state.json").read_text())
    assert group("cpuset", cid).is_dir()
    os.kill(state["shim_pid"], signal.SIGKILL)
    os.kill(state["pid"], signal.SIGKILL)
    assert wait_for(lambda: not os.path.exists(f"/proc/{state['pid']}"), timeout=5)
    assert "Exited" in ok(cshell("ps", "-a"))  # start-up reconcile records the exit, removes the groups
    assert not groups_left(cid), groups_left(cid)
    ok(cshell("rm", "crash"))


def test_kernel_refused_limit_is_one_line_and_leaves_nothing(cshell: Cshell, state_root: Path) -> None:
    proc = cshell("run", "--net", "none", "--pids-limit", "5000000", "busybox", "true")  # above PID_MAX_LIMIT
    assert proc.returncode == 125, proc
    lines = [ln for ln in proc.stderr.splitlines() if not ln.startswith("  …")]  # busybox being made here
    assert len(lines) == 2 and lines[1].startswith("hint:"), proc.stderr
    parent = (ROOT / "cshell.slice" if cgroups.systemd_driver() else ROOT / "cshell") if V2 else ROOT / "pids" / "cshell"
    assert lines[0].startswith(f"error: cgroup write refused: echo 5000000 > {parent}/"), lines
    assert lines[0].endswith("/pids.max: Invalid argument"), lines
    found = re.search(r"/cshell/([0-9a-f]{64})/|/cshell-([0-9a-f]{12})\.scope/", lines[0])
    assert found, lines
    cid = found.group(1) or found.group(2)
    assert not groups_left(cid)
    assert not list((state_root / "containers").iterdir())
