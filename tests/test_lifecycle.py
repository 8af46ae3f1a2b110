"""pause/unpause, top, rename, port, restart, create + start -a: real containers, as a user sees them."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from conftest import Cshell, wait_for

from cshell.engine.limits import cgroups

pytestmark = pytest.mark.kernel

COUNTER = "i=0; while :; do i=$((i+1)); echo $i > /count; sleep 0.02; done"


def ok(proc) -> str:  # noqa: ANN001 - CompletedProcess
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc.stdout


def refused(proc, *words: str, status: int = 1) -> str:  # noqa: ANN001
    """A one-line error and a hint, the exit status docker gives, no traceback."""
    assert proc.returncode == status, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    assert "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and any(ln.startswith("hint:") for ln in proc.stderr.splitlines()), proc.stderr
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


def inspect(cshell: Cshell, name: str) -> dict:
    return json.loads(ok(cshell("inspect", name)))[0]


def ps_line(cshell: Cshell, name: str) -> str:
    lines = [ln for ln in ok(cshell("ps", "-a")).splitlines() if ln.rstrip().endswith(" " + name)]
    assert len(lines) == 1, lines
    return lines[0]


def counter(state_root: Path, cid: str) -> int:
    """The container's counter, read from the host through its writable layer (exec is refused
    while it is paused, and must not be needed to look)."""
    try:
        return int((state_root / "containers" / cid / "rw" / "count").read_text() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def proc_states(cid: str) -> dict[int, str]:
    """{host pid: state letter} of every process in the container's cgroup (/proc/PID/stat)."""
    states = {}
    for pid in cgroups.processes(cid):
        try:
            states[pid] = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            continue
    return states


# -- pause / unpause ------------------------------------------------------------------------


def test_pause_freezes_the_processes_and_unpause_lets_them_go_on(cshell: Cshell, state_root: Path) -> None:
    cid = ok(cshell("run", "-d", "--name", "web", "busybox", "sh", "-c", COUNTER)).strip()
    assert wait_for(lambda: counter(state_root, cid) > 3)
    shown = cshell("-c", "explain on; pause web")
    out = ok(shown)
    on = "1" if cgroups.is_v2() else "FROZEN"
    assert f"echo {on} > " in out + shown.stderr, out + shown.stderr  # the write, shown
    assert out.splitlines()[-1] == "web"

    # seen from the host: every process stopped in the freezer
    states = proc_states(cid)
    assert states, "no process in the container's cgroup"
    if not cgroups.is_v2():
        assert set(states.values()) <= {"D"}, states  # v1: in the refrigerator, uninterruptible
    else:
        group = cgroups.container_dirs(cid)[0]
        assert "frozen 1" in (group / "cgroup.events").read_text()
        assert set(states.values()) <= {"D", "S", "T"}, states
    before = counter(state_root, cid)
    time.sleep(0.5)
    assert counter(state_root, cid) == before, "the counter advanced in a paused container"

    assert "(Paused)" in ps_line(cshell, "web") and " web" in ok(cshell("ps"))  # plain ps lists it
    state = inspect(cshell, "web")["State"]
    assert (state["Status"], state["Paused"], state["Running"]) == ("paused", True, True), state
    assert state["Pid"] > 0

    ok(cshell("unpause", "web"))
    assert wait_for(lambda: counter(state_root, cid) > before + 3), "the counter did not go on"
    state = inspect(cshell, "web")["State"]
    assert (state["Status"], state["Paused"]) == ("running", False)
    assert "(Paused)" not in ps_line(cshell, "web")
    ok(cshell("rm", "-f", "web"))


def test_pause_bad_cases_are_refused_and_change_nothing(cshell: Cshell, state_root: Path) -> None:
    ok(cshell("run", "--name", "done", "busybox", "true"))
    refused(cshell("pause", "done"), "is not running")
    refused(cshell("unpause", "done"), "is not paused")
    refused(cshell("pause", "nosuch"), "no such container")
    assert inspect(cshell, "done")["State"]["Status"] == "exited"

    cid = ok(cshell("run", "-d", "--name", "web", "busybox", "sh", "-c", COUNTER)).strip()
    refused(cshell("unpause", "web"), "is not paused")
    assert inspect(cshell, "web")["State"]["Status"] == "running"
    ok(cshell("pause", "web"))
    refused(cshell("pause", "web"), "already paused")
    refused(cshell("exec", "web", "true"), "is paused")
    refused(cshell("start", "web"), "paused")
    assert inspect(cshell, "web")["State"]["Status"] == "paused"
    # several targets: each acted on, one error per failure, exit 1
    proc = cshell("unpause", "web", "nosuch")
    assert proc.returncode == 1 and proc.stdout.split() == ["web"], proc
    assert inspect(cshell, "web")["State"]["Status"] == "running"
    before = counter(state_root, cid)
    assert wait_for(lambda: counter(state_root, cid) > before)
    ok(cshell("rm", "-f", "web"))


@pytest.mark.parametrize("how", ["stop", "kill", "rm -f"])
def test_a_paused_container_can_be_stopped_killed_removed(cshell: Cshell, how: str) -> None:
    # sh as PID 1 with a TERM trap: stop's SIGTERM ends it once the container is thawed
    ok(cshell("run", "-d", "--name", "web", "busybox", "sh", "-c", "trap 'exit 7' TERM; " + COUNTER))
    ok(cshell("pause", "web"))
    start = time.monotonic()
    ok(cshell(*how.split(), "web"))
    if how == "rm -f":
        assert "web" not in ok(cshell("ps", "-a"))
        return
    state = inspect(cshell, "web")["State"]
    assert (state["Status"], state["Paused"]) == ("exited", False), state
    assert state["ExitCode"] == (7 if how == "stop" else 137)
    assert time.monotonic() - start < 8  # stop did not wait its 10 s grace: SIGTERM was acted on
    ok(cshell("rm", "web"))


def test_commit_pause_leaves_a_paused_container_paused(cshell: Cshell, state_root: Path) -> None:
    cid = ok(cshell("run", "-d", "--name", "web", "busybox", "sh", "-c", COUNTER)).strip()
    assert wait_for(lambda: counter(state_root, cid) > 1)
    ok(cshell("pause", "web"))
    ok(cshell("commit", "web", "snap"))
    assert inspect(cshell, "web")["State"]["Status"] == "paused"
    ok(cshell("rm", "-f", "web"))


# -- top ------------------------------------------------------------------------------------


def table_rows(out: str) -> list[list[str]]:
    return [re.split(r"\s{2,}", line.strip()) for line in out.splitlines() if line.strip()]


def test_top_shows_host_and_container_pids_side_by_side(cshell: Cshell) -> None:
    ok(cshell("run", "-d", "--name", "web", "busybox", "sh", "-c", "sleep 1000 & exec sleep 1001"))
    pid1 = inspect(cshell, "web")["State"]["Pid"]
    assert wait_for(lambda: len(table_rows(ok(cshell("top", "web")))) == 3)
    header, *rows = table_rows(ok(cshell("top", "web")))
    assert header == ["UID", "PID", "CTR PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"], header
    by_cmd = {row[-1]: row for row in rows}
    assert by_cmd["sleep 1001"][1:3] == [str(pid1), "1"], rows  # PID 1 inside, a big number outside
    child = by_cmd["sleep 1000"]
    assert child[2] == "2" and child[3] == str(pid1) and int(child[1]) != 2, rows  # its parent: PID 1
    # ps options pass through; the PID column is kept and CTR PID follows it
    header, *rows = table_rows(ok(cshell("top", "web", "-o", "pid,comm")))
    assert header == ["PID", "CTR PID", "COMMAND"] and sorted(r[1] for r in rows) == ["1", "2"], rows
    ok(cshell("pause", "web"))
    assert len(table_rows(ok(cshell("top", "web")))) == 3  # docker top works on a paused container
    ok(cshell("rm", "-f", "web"))


def test_top_bad_cases(cshell: Cshell) -> None:
    ok(cshell("run", "--name", "done", "busybox", "true"))
    refused(cshell("top", "done"), "is not running")
    refused(cshell("top", "nosuch"), "no such container")
    refused(cshell("top"), status=1)
    ok(cshell("run", "-d", "--name", "web", "busybox", "sleep", "1000"))
    refused(cshell("top", "web", "-o", "comm"), "PID")
    refused(cshell("top", "web", "--no-such-ps-option"), "ps:")
    ok(cshell("rm", "-f", "web", "done"))


# -- rename, port, restart, create + start -a ----------------------------------------------------


def test_rename(cshell: Cshell) -> None:
    cid = ok(cshell("run", "-d", "--name", "web", "busybox", "sleep", "1000")).strip()
    ok(cshell("run", "--name", "other", "busybox", "true"))
    ok(cshell("rename", "web", "web2"))
    assert inspect(cshell, "web2")["Id"] == cid and inspect(cshell, "web2")["Name"] == "/web2"
    refused(cshell("inspect", "web"), "no such")
    assert ok(cshell("exec", "web2", "echo", "same")) == "same\n"  # still running, under its new name
    refused(cshell("rename", "web2", "other"), "already in use")
    refused(cshell("rename", "web2", "web2"), "same name")
    refused(cshell("rename", "web2", "bad name!"), "invalid container name")
    refused(cshell("rename", "nosuch", "x"), "no such container")
    assert inspect(cshell, "web2")["Name"] == "/web2"
    ok(cshell("rm", "-f", "web2", "other"))


def test_port(cshell: Cshell) -> None:
    ok(cshell("run", "-d", "--name", "web", "-p", "127.0.0.1::80", "-p", "53/udp", "busybox", "sleep", "1000"))
    lines = ok(cshell("port", "web")).splitlines()
    assert [ln.split(" -> ")[0] for ln in lines] == ["53/udp", "80/tcp"], lines
    host80 = ok(cshell("port", "web", "80")).strip()
    assert host80.startswith("127.0.0.1:") and f"80/tcp -> {host80}" in lines
    assert ok(cshell("port", "web", "53/udp")).strip().startswith("0.0.0.0:")
    refused(cshell("port", "web", "81"), "no public port '81/tcp'")
    refused(cshell("port", "web", "http"), "invalid port")
    ok(cshell("stop", "-t", "0", "web"))
    assert ok(cshell("port", "web")) == ""  # stopped: nothing published
    ok(cshell("rm", "web"))


def test_restart(cshell: Cshell) -> None:
    ok(cshell("run", "-d", "--name", "web", "busybox", "sh", "-c", "echo start >> /starts; sleep 1000"))
    pid = inspect(cshell, "web")["State"]["Pid"]
    started = time.monotonic()
    assert ok(cshell("restart", "-t", "1", "web")) == "web\n"
    assert time.monotonic() - started < 8
    state = inspect(cshell, "web")["State"]
    assert state["Running"] and state["Pid"] != pid
    assert wait_for(lambda: ok(cshell("exec", "web", "cat", "/starts")) == "start\nstart\n")  # the same rw layer
    refused(cshell("restart", "-t", "x", "web"), "invalid time")
    assert inspect(cshell, "web")["State"]["Pid"] == state["Pid"]
    proc = cshell("restart", "nosuch")
    assert proc.returncode == 1 and "no such container" in proc.stderr
    ok(cshell("rm", "-f", "web"))


def test_create_then_start_attached(cshell: Cshell, state_root: Path) -> None:
    cid = ok(cshell("create", "--name", "c", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")).strip()
    assert len(cid) == 64
    assert "Created" in ps_line(cshell, "c")
    assert inspect(cshell, "c")["State"]["Status"] == "created"
    assert not cgroups.container_dirs(cid)[0].exists()  # nothing made in the kernel yet
    proc = cshell("start", "-a", "c")
    assert proc.returncode == 3 and proc.stdout == "out\n" and proc.stderr == "err\n", proc
    assert inspect(cshell, "c")["State"]["ExitCode"] == 3
    ok(cshell("create", "-i", "--name", "cat", "busybox", "cat"))
    proc = cshell("start", "-i", "cat", input="piped\n")
    assert proc.returncode == 0 and proc.stdout == "piped\n", proc
    refused(cshell("start", "-a", "c", "cat"), "multiple containers")
    ok(cshell("run", "-d", "--name", "r", "busybox", "sh", "-c", "echo early; sleep 1; echo late; exit 4"))
    proc = cshell("start", "-a", "r")  # running already: what it writes from now on, then its status
    assert proc.returncode == 4 and proc.stdout == "late\n", proc
    refused(cshell("create", "--name", "c", "busybox", "true"), "already in use")
    refused(cshell("create", "nosuchimage"), status=1)
    ok(cshell("rm", "c", "cat", "r"))


def test_logs_tail_timestamps_since(cshell: Cshell) -> None:
    ok(cshell("run", "--name", "l", "busybox", "sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done"))
    assert ok(cshell("logs", "--tail", "2", "l")) == "line4\nline5\n"
    assert ok(cshell("logs", "-n", "0", "l")) == ""
    assert ok(cshell("logs", "--tail", "all", "l")).count("line") == 5
    stamped = ok(cshell("logs", "-t", "--tail", "1", "l")).strip()
    day, _, text = stamped.partition(" ")
    assert text == "line5" and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", day), stamped
    assert ok(cshell("logs", "--since", "1h", "l")).count("line") == 5
    assert ok(cshell("logs", "--since", str(time.time() + 60), "l")) == ""
    refused(cshell("logs", "--tail", "x", "l"), "--tail")
    refused(cshell("logs", "--since", "yesterday", "l"), "--since")
    # -f follows until the container exits
    ok(cshell("run", "-d", "--name", "f", "busybox", "sh", "-c", "echo a; sleep 1; echo b"))
    assert ok(cshell("logs", "-f", "-t", "f")).count("Z ") == 2
    ok(cshell("rm", "l", "f"))


def test_exec_privileged(cshell: Cshell) -> None:
    ok(cshell("run", "-d", "--name", "web", "busybox", "sleep", "1000"))
    plain = ok(cshell("exec", "web", "grep", "CapEff", "/proc/self/status")).split()[1]
    full = ok(cshell("exec", "--privileged", "web", "grep", "-E", "CapEff|Seccomp:", "/proc/self/status")).split()
    assert plain == "00000000a80425fb" and full[1] != plain and int(full[1], 16) > int(plain, 16)
    assert full[3] == "2"  # the container's seccomp filter stays (docker's exec --privileged too)
    assert ok(cshell("exec", "-w", "/tmp", "-e", "X=1", "-u", "1000", "web", "sh", "-c", "echo $PWD $X $(id -u)")) \
        == "/tmp 1 1000\n"
    ok(cshell("rm", "-f", "web"))


# -- run --restart ----------------------------------------------------------------------------


def test_restart_policies_kept_by_the_shim(cshell: Cshell, state_root: Path) -> None:
    cid = ok(cshell("run", "-d", "--name", "of", "--restart", "on-failure:2", "busybox", "sh", "-c",
                    "echo run >> /runs; exit 3")).strip()
    data = inspect(cshell, "of")
    assert data["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert wait_for(lambda: (lambda d: d["State"]["Status"] == "exited" and d["RestartCount"] == 2)(
        inspect(cshell, "of")), timeout=15), inspect(cshell, "of")
    time.sleep(0.5)
    assert (state_root / "containers" / cid / "rw" / "runs").read_text() == "run\n" * 3  # the first run + 2
    assert inspect(cshell, "of")["State"]["ExitCode"] == 3

    ok(cshell("run", "-d", "--name", "ok", "--restart", "on-failure", "busybox", "true"))
    time.sleep(1)
    assert inspect(cshell, "ok")["RestartCount"] == 0  # on-failure: exit 0 is no failure

    ok(cshell("run", "-d", "--name", "al", "--restart", "always", "busybox", "sh", "-c", "sleep 0.2"))
    assert wait_for(lambda: inspect(cshell, "al")["RestartCount"] >= 2, timeout=15)
    ok(cshell("stop", "-t", "1", "al"))  # stopped by the user: the policy does not bring it back
    count = inspect(cshell, "al")["RestartCount"]
    time.sleep(2)
    data = inspect(cshell, "al")
    assert (data["State"]["Status"], data["RestartCount"]) == ("exited", count), data["State"]
    ok(cshell("rm", "of", "ok", "al"))


def test_restart_policy_bad_input(cshell: Cshell) -> None:
    refused(cshell("run", "--restart", "sometimes", "busybox", "true"), "invalid restart policy", status=125)
    refused(cshell("run", "--restart", "always:3", "busybox", "true"), "retry count", status=125)
    refused(cshell("run", "--restart", "on-failure:x", "busybox", "true"), "not a number", status=125)
    refused(cshell("run", "--rm", "--restart", "always", "busybox", "true"), "conflicting options", status=125)
    assert ok(cshell("ps", "-aq")) == ""


def test_no_health_probe_while_paused(cshell: Cshell) -> None:
    ok(cshell("run", "-d", "--name", "hc", "--health-cmd", "true", "--health-interval", "1s", "busybox", "sleep", "1000"))
    assert wait_for(lambda: len(inspect(cshell, "hc")["State"]["Health"]["Log"]) >= 1, timeout=10)
    ok(cshell("pause", "hc"))
    probes = len(inspect(cshell, "hc")["State"]["Health"]["Log"])
    time.sleep(2.5)
    assert len(inspect(cshell, "hc")["State"]["Health"]["Log"]) == probes  # docker's monitor waits too
    ok(cshell("unpause", "hc"))
    assert wait_for(lambda: len(inspect(cshell, "hc")["State"]["Health"]["Log"]) > probes, timeout=10)
    ok(cshell("rm", "-f", "hc"))
