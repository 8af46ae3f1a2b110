"""Resource limits in real cgroups (this host: cgroup v1; v2 runs in test_cgroup_v2_vm.py).

Each flag is read back from the host's cgroup files; `cgroup set` changes a
running container; the OOM killer, a fork loop and a CPU spinner meet their
limits; inside, the cgroup namespace shows `/` and a read-only /sys/fs/cgroup.
The leak check (conftest) fails a test that leaves any cgroup directory.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import time
from pathlib import Path

import pytest
from conftest import Cshell, wait_for

pytestmark = pytest.mark.kernel

V1 = Path("/sys/fs/cgroup")


def ok(proc) -> str:  # noqa: ANN001 - CompletedProcess
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc.stdout


def group(controller: str, cid: str) -> Path:
    return V1 / controller / "cshell" / cid


def read(controller: str, cid: str, name: str) -> str:
    return (group(controller, cid) / name).read_text().strip()


def run_detached(cshell: Cshell, *args: str) -> str:
    return ok(cshell("run", "-d", "--net", "none", *args)).strip()


@pytest.fixture(autouse=True)
def _v1_host() -> None:
    if (V1 / "cgroup.controllers").exists():
        pytest.skip("a cgroup-v2 host: test_cgroup_v2_vm.py covers v2")


def test_each_flag_lands_in_its_v1_file(cshell: Cshell) -> None:
    cid = run_detached(cshell, "--name", "lim", "--memory", "64m", "--memory-swap", "96m", "--cpus", "0.5",
                       "--cpu-shares", "512", "--cpuset-cpus", "0", "--pids-limit", "50", "busybox", "sleep", "60")
    assert read("memory", cid, "memory.limit_in_bytes") == "67108864"
    if (group("memory", cid) / "memory.memsw.limit_in_bytes").exists():
        assert read("memory", cid, "memory.memsw.limit_in_bytes") == str(96 * 1024 * 1024)
    assert read("cpu", cid, "cpu.cfs_quota_us") == "50000"
    assert read("cpu", cid, "cpu.cfs_period_us") == "100000"
    assert read("cpu", cid, "cpu.shares") == "512"
    assert read("cpuset", cid, "cpuset.cpus") == "0"
    assert read("cpuset", cid, "cpuset.mems") != ""
    assert read("pids", cid, "pids.max") == "50"
    pid = json.loads(ok(cshell("inspect", "lim")))[0]["State"]["Pid"]
    assert str(pid) in read("cpuset", cid, "cgroup.procs").split()

    proc = cshell("cgroup", "set", "lim", "memory=128m")  # above memory+swap (96m): docker refuses too
    assert proc.returncode == 1 and "memory-swap" in proc.stderr, proc
    assert read("memory", cid, "memory.limit_in_bytes") == "67108864"
    ok(cshell("cgroup", "set", "lim", "memory=128m", "memory-swap=-1", "cpus=0.25", "pids=100", "cpu-shares=256"))
    assert read("memory", cid, "memory.limit_in_bytes") == str(128 * 1024 * 1024)
    assert read("cpu", cid, "cpu.cfs_quota_us") == "25000"
    assert read("pids", cid, "pids.max") == "100"
    assert read("cpu", cid, "cpu.shares") == "256"
    out = ok(cshell("cgroup", "set", "lim", "cpu.cfs_quota_us=30000"))
    assert f"{group('cpu', cid)}/cpu.cfs_quota_us = 30000" in out
    assert read("cpu", cid, "cpu.cfs_quota_us") == "30000"

    show = ok(cshell("cgroup", "show", "lim"))
    for line in (f"{group('memory', cid)}/memory.limit_in_bytes = 134217728",
                 f"{group('cpu', cid)}/cpu.cfs_quota_us = 30000", f"{group('pids', cid)}/pids.max = 100",
                 f"{group('cpuset', cid)}/cpuset.cpus = 0"):
        assert line in show, show
    for usage in ("memory.usage_in_bytes", "memory.max_usage_in_bytes", "nr_throttled", "pids.current: 1"):
        assert usage in show, show
    ok(cshell("rm", "-f", "lim"))
    assert not glob.glob(f"/sys/fs/cgroup/*/cshell/{cid}")


def test_cgroup_set_refuses_bad_keys_and_values(cshell: Cshell) -> None:
    cid = run_detached(cshell, "--name", "s", "--pids-limit", "30", "busybox", "sleep", "60")
    for value, words in (("../../pids.max=1", "unknown key"), ("memory.max=1", "no cgroup file memory.max"),
                         ("cpus=0", "range of CPUs"), ("pids.max=abc", "pids.max: Invalid argument"),
                         ("memory", "expected KEY=VALUE"), ("cpuset-cpus=0", "has no cpuset group")):
        proc = cshell("cgroup", "set", "s", value)
        assert proc.returncode == 1, (value, proc)
        lines = proc.stderr.strip().splitlines()
        assert words in lines[0] and lines[1].startswith("hint:") and len(lines) == 2, (value, proc.stderr)
    assert read("pids", cid, "pids.max") == "30"
    assert "memory.limit_in_bytes" in cshell("cgroup", "set", "s", "memory.max=1").stderr  # v1's name, taught
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
    assert wait_for(lambda: "survived" in ok(cshell("logs", "fb")), timeout=10)
    assert 15 <= int(read("pids", cid, "pids.current")) <= 20  # PID 1 and the sleeps (the subshell is gone)
    if (group("pids", cid) / "pids.peak").exists():
        assert read("pids", cid, "pids.peak") == "20"  # never above the limit
    events = read("pids", cid, "pids.events")
    assert int(events.split()[-1]) > 0, events  # "max N": forks refused
    assert "Up" in [ln for ln in ok(cshell("ps")).splitlines() if ln.rstrip().endswith(" fb")][0]
    ok(cshell("rm", "-f", "fb"))


def test_cpu_quota_throttles_a_spinner(cshell: Cshell) -> None:
    cid = run_detached(cshell, "--name", "spin", "--cpus", "0.2", "busybox", "sh", "-c", "while :; do :; done")
    start, used0 = time.monotonic(), int(read("cpuacct", cid, "cpuacct.usage"))
    time.sleep(1.0)
    used = (int(read("cpuacct", cid, "cpuacct.usage")) - used0) / 1e9 / (time.monotonic() - start)
    stat = dict(ln.split() for ln in read("cpu", cid, "cpu.stat").splitlines())
    assert int(stat["nr_throttled"]) > 0, stat
    assert 0.1 < used < 0.3, used  # about 0.2 CPU
    assert "nr_throttled=" in ok(cshell("cgroup", "show", "spin"))
    ok(cshell("rm", "-f", "spin"))


def test_cgroup_namespace_and_read_only_view(cshell: Cshell) -> None:
    script = ("cat /proc/self/cgroup; echo ---; ls /sys/fs/cgroup; echo ---; "
              "cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/memory/memory.limit_in_bytes; "
              "ls /sys/fs/cgroup/memory | grep -c cshell; "
              "echo max > /sys/fs/cgroup/pids/pids.max; echo 0 > /sys/fs/cgroup/memory/memory.limit_in_bytes; "
              "mkdir /sys/fs/cgroup/x; cat /sys/fs/cgroup/pids/pids.max")
    proc = cshell("run", "--rm", "--net", "none", "--memory", "32m", "--pids-limit", "40", "busybox", "sh", "-c", script)
    cgroup, listing, rest = proc.stdout.split("---\n")
    assert cgroup.strip() and all(ln.endswith(":/") for ln in cgroup.splitlines()), cgroup
    assert {"memory", "pids", "cpu"} <= set(listing.split()), listing
    assert rest.split() == ["40", str(32 * 1024 * 1024), "0", "40"], proc  # own group only, nothing raised
    assert proc.stderr.count("Read-only file system") == 3, proc.stderr


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
    assert proc.returncode == 1, proc
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
    assert not glob.glob(f"/sys/fs/cgroup/*/cshell/{cid}"), glob.glob(f"/sys/fs/cgroup/*/cshell/{cid}")
    ok(cshell("rm", "crash"))


def test_kernel_refused_limit_is_one_line_and_leaves_nothing(cshell: Cshell, state_root: Path) -> None:
    proc = cshell("run", "--net", "none", "--pids-limit", "5000000", "busybox", "true")  # above PID_MAX_LIMIT
    assert proc.returncode == 1, proc
    lines = [ln for ln in proc.stderr.splitlines() if not ln.startswith("  …")]  # busybox being made here
    assert len(lines) == 2 and lines[1].startswith("hint:"), proc.stderr
    assert lines[0].startswith("error: cgroup write refused: echo 5000000 > /sys/fs/cgroup/pids/cshell/"), lines
    assert lines[0].endswith("/pids.max: Invalid argument"), lines
    cid = lines[0].split("/cshell/")[1].split("/")[0]
    assert not glob.glob(f"/sys/fs/cgroup/*/cshell/{cid}")
    assert not list((state_root / "containers").iterdir())
