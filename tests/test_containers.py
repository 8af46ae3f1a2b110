"""Container lifecycle, as a user sees it through the CLI: real containers, as root."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from conftest import Cshell, wait_for

pytestmark = pytest.mark.kernel


def ok(proc) -> str:  # noqa: ANN001 - CompletedProcess
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc.stdout


def run_detached(cshell: Cshell, *args: str) -> str:
    cid = ok(cshell("run", "-d", *args)).strip()
    assert len(cid) == 64 and all(c in "0123456789abcdef" for c in cid), cid
    return cid


def inspect(cshell: Cshell, name: str) -> dict:
    data = json.loads(ok(cshell("inspect", name)))
    assert isinstance(data, list) and len(data) == 1
    return data[0]


def ps_line(cshell: Cshell, name: str) -> str:
    lines = [ln for ln in ok(cshell("ps", "-a")).splitlines() if ln.rstrip().endswith(" " + name)]
    assert len(lines) == 1, lines
    return lines[0]


def exec_out(cshell: Cshell, name: str, *cmd: str) -> str:
    return ok(cshell("exec", name, *cmd))


def wait_file(cshell: Cshell, name: str, path: str) -> None:
    assert wait_for(lambda: cshell("exec", name, "test", "-e", path).returncode == 0, timeout=5), \
        f"{path} never appeared in {name}"


# -- identity: hostname, PID 1, its own processes --------------------------------------------


def test_hostname_is_the_short_id(cshell: Cshell) -> None:
    cid = run_detached(cshell, "busybox", "sleep", "100")
    assert exec_out(cshell, cid[:12], "hostname").strip() == cid[:12]
    ok(cshell("rm", "-f", cid[:12]))

    out = ok(cshell("run", "--name", "h", "busybox", "hostname")).strip()
    assert out == ok(cshell("inspect", "-f", "{{.Id}}", "h")).strip()[:12]
    ok(cshell("rm", "h"))


def test_command_is_pid_1_and_sees_only_its_processes(cshell: Cshell) -> None:
    # The trailing `true` keeps sh from exec'ing ps in its place.
    out = ok(cshell("run", "--rm", "busybox", "sh", "-c", "echo $$; ps -o pid,comm; true"))
    first, header, *rows = out.splitlines()
    assert first == "1"
    assert header.split() == ["PID", "COMMAND"]
    procs = [row.split() for row in rows]
    assert procs == [["1", "sh"], [procs[1][0], "ps"]], out
    assert int(procs[1][0]) < 10  # a fresh pid namespace numbers from 1


def test_cgroup_namespace_shows_root(cshell: Cshell) -> None:
    out = ok(cshell("run", "--rm", "--net", "none", "busybox", "cat", "/proc/self/cgroup"))
    lines = out.splitlines()
    assert lines, out
    assert all(line.split(":", 2)[2] == "/" for line in lines), out


def test_rootfs_mounts_stay_inside(cshell: Cshell, state_root: Path) -> None:
    cid = run_detached(cshell, "--name", "m", "busybox", "sleep", "100")
    merged = inspect(cshell, "m")["GraphDriver"]["Data"]["MergedDir"]
    host = Path("/proc/self/mountinfo").read_text()
    assert cid not in host and merged not in host and str(state_root) not in host

    touched = cshell("exec", "m", "touch", "/sys/x")
    assert touched.returncode != 0 and "Read-only" in touched.stderr
    dev = set(exec_out(cshell, "m", "ls", "/dev").split())
    assert {"null", "zero", "full", "random", "urandom", "tty", "pts", "shm"} <= dev
    assert exec_out(cshell, "m", "sh", "-c", "echo hi > /dev/null && head -c 4 /dev/zero | wc -c").strip() == "4"
    ok(cshell("rm", "-f", "m"))


def test_old_root_is_gone(cshell: Cshell, state_root: Path) -> None:
    out = ok(cshell("run", "--rm", "--net", "none", "busybox", "cat", "/proc/1/mountinfo"))
    mount_points = [line.split()[4] for line in out.splitlines()]
    # The container's own cgroup view (v1: tmpfs + one read-only cgroup mount per hierarchy;
    # v2: one cgroup2 mount; test_cgroups.py).
    cgroup_points = [p for p in mount_points if p.startswith("/sys/fs/cgroup")]
    v2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()
    assert (cgroup_points == ["/sys/fs/cgroup"]) if v2 else ("/sys/fs/cgroup/memory" in cgroup_points), out
    mount_points = [p for p in mount_points if p not in cgroup_points]
    # The containment's own mounts (test_security.py): masked and read-only /proc and /sys paths,
    # and each device node bound on itself over the nodev /dev.
    from cshell.engine.container.rootfs import DEVICES, MASKED_PATHS, READONLY_PATHS

    contained = {f"/dev/{d[0]}" for d in DEVICES} | set(MASKED_PATHS) | set(READONLY_PATHS)
    mount_points = [p for p in mount_points if p not in contained and not p.endswith("/thermal_throttle")]
    # Only the container's own mounts; the host's root (pivot_root's old root) is detached.
    # (Field 4 of a bind mount and the overlay options do name host paths: the kernel shows them.)
    assert sorted(mount_points) == sorted(["/", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf",
                                           "/proc", "/sys", "/dev", "/dev/pts", "/dev/mqueue", "/dev/shm"]), out
    assert not any(str(state_root) in point for point in mount_points)
    assert not any(line.split()[3] == "/" and " - ext4 " in line for line in out.splitlines()), out


# -- run: options, exit status, --rm --------------------------------------------------------------


def test_run_rm_leaves_nothing(cshell: Cshell, state_root: Path) -> None:
    assert ok(cshell("run", "--rm", "busybox", "echo", "hello")) == "hello\n"
    assert list((state_root / "containers").iterdir()) == []
    assert ok(cshell("ps", "-a", "-q")) == ""


def test_exit_status_is_the_containers(cshell: Cshell, state_root: Path) -> None:
    proc = cshell("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 7")
    assert proc.returncode == 7
    assert proc.stdout == "out\n" and "err\n" in proc.stderr
    assert list((state_root / "containers").iterdir()) == []


def test_env_workdir_hostname(cshell: Cshell) -> None:
    out = ok(cshell("run", "--rm", "-e", "GREETING=hi there", "--env=X=1", "-w", "/tmp/work",
                    "--hostname", "box", "busybox", "sh", "-c",
                    'echo "$GREETING|$X|$(pwd)|$(hostname)|$HOSTNAME|$(cat /etc/hostname)"'))
    assert out.strip() == "hi there|1|/tmp/work|box|box|box"


def test_domainname_as_docker_sets_it(cshell: Cshell) -> None:
    """--domainname: setdomainname(2) in the container's UTS namespace; /etc/hostname and
    /etc/hosts get host.domain as docker writes them; $HOSTNAME stays the short name."""
    out = ok(cshell("run", "--name", "d", "-h", "web", "--domainname", "example.com", "busybox", "sh", "-c",
                    'echo "$(hostname)|$HOSTNAME|$(cat /proc/sys/kernel/domainname)|$(cat /etc/hostname)"; '
                    "tail -n 1 /etc/hosts"))
    names, hosts_line = out.splitlines()
    assert names == "web|web|example.com|web.example.com"
    assert hosts_line.split()[1:] == ["web.example.com", "web", "d"]
    assert inspect(cshell, "d")["Config"]["Domainname"] == "example.com"
    ok(cshell("rm", "d"))
    assert ok(cshell("run", "--rm", "busybox", "cat", "/proc/sys/kernel/domainname")).strip() == "(none)"


def test_env_file_as_docker_reads_it(cshell: Cshell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docker's format: # comments and blank lines skipped, leading blanks trimmed, the value kept
    as is, KEY alone copied from here (dropped when unset); files first, then -e, later wins."""
    env_file = tmp_path / "app.env"
    env_file.write_text("# a comment\n\n  GREETING=hi there  \nFROM_HERE\nUNSET_HERE\nQUOTED=\"q\"\n"
                        "OVERRIDDEN=file\nEMPTY=\n")
    monkeypatch.setenv("FROM_HERE", "copied")
    monkeypatch.delenv("UNSET_HERE", raising=False)
    script = 'echo "[$GREETING]|$FROM_HERE|${UNSET_HERE-unset}|$QUOTED|$OVERRIDDEN|[${EMPTY-unset}]"'
    out = ok(cshell("run", "--rm", "--env-file", str(env_file), "-e", "OVERRIDDEN=flag", "busybox", "sh", "-c",
                    script))
    assert out == '[hi there  ]|copied|unset|"q"|flag|[]\n'
    ok(cshell("run", "-d", "--name", "e", "busybox", "sleep", "100"))
    assert ok(cshell("exec", "--env-file", str(env_file), "e", "sh", "-c", "echo $GREETING")) == "hi there\n"
    ok(cshell("rm", "-f", "e"))


def test_inspect_fields(cshell: Cshell) -> None:
    cid = run_detached(cshell, "--name", "web", "busybox", "sleep", "100")
    data = inspect(cshell, "web")
    assert data["Id"] == cid
    assert data["Name"] == "/web"
    assert data["State"]["Status"] == "running" and data["State"]["Running"] is True
    assert data["State"]["ExitCode"] == 0
    pid = data["State"]["Pid"]
    assert pid > 1 and Path(f"/proc/{pid}").exists()
    assert Path(f"/proc/{pid}/comm").read_text().strip() == "sleep"
    assert data["Config"]["Cmd"] == ["sleep", "100"]
    env = data["Config"]["Env"]
    assert any(e.startswith("PATH=") for e in env) and f"HOSTNAME={cid[:12]}" in env
    assert Path(data["GraphDriver"]["Data"]["UpperDir"]).is_dir()

    fmt = ok(cshell("inspect", "--format", "{{.State.Pid}} {{.Name}} {{json .Config.Cmd}}", "web"))
    assert fmt == f'{pid} /web ["sleep","100"]\n'  # Go's json.Marshal: compact
    assert json.loads(ok(cshell("inspect", "-f", "{{json .Config.Cmd}}", cid[:8]))) == ["sleep", "100"]

    ok(cshell("rm", "-f", "web"))
    assert not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/comm").read_text().strip() != "sleep"


# -- exec ----------------------------------------------------------------------------------------------


def test_exec_sees_what_run_wrote(cshell: Cshell) -> None:
    run_detached(cshell, "--name", "a", "busybox", "sh", "-c", "echo data > /f; sleep 100")
    wait_file(cshell, "a", "/f")
    assert exec_out(cshell, "a", "cat", "/f") == "data\n"
    ok(cshell("rm", "-f", "a"))


def test_exec_joins_pid_namespace_and_cgroup(cshell: Cshell) -> None:
    run_detached(cshell, "--name", "a", "--net", "none", "busybox", "sleep", "100")
    pid = int(exec_out(cshell, "a", "sh", "-c", "echo $$").strip())
    assert 1 < pid < 100
    cgroup = exec_out(cshell, "a", "cat", "/proc/self/cgroup").splitlines()
    assert cgroup and all(line.split(":", 2)[2] == "/" for line in cgroup), cgroup
    assert exec_out(cshell, "a", "hostname").strip() == inspect(cshell, "a")["Id"][:12]
    assert exec_out(cshell, "a", "-e", "K=V", "-w", "/tmp", "sh", "-c", 'echo "$K $(pwd)"').strip() == "V /tmp"
    status = cshell("exec", "a", "sh", "-c", "exit 3")
    assert status.returncode == 3
    ok(cshell("rm", "-f", "a"))


# -- lifecycle across cshell processes -------------------------------------------------------------------


def test_detached_container_outlives_its_shell(cshell: Cshell, state_root: Path) -> None:
    # PID 1 traps TERM, so `stop` needs no grace period.
    script = "trap 'exit 143' TERM; echo hello from $(hostname); sleep 100 & wait"
    cid = run_detached(cshell, "--name", "d", "busybox", "sh", "-c", script)
    assert ps_line(cshell, "d").startswith(cid[:12]) and " Up " in ps_line(cshell, "d")
    assert wait_for(lambda: ok(cshell("logs", "d")) == f"hello from {cid[:12]}\n", timeout=5)
    ok(cshell("exec", "d", "sh", "-c", "echo kept > /kept"))

    assert ok(cshell("stop", "-t", "1", "d")) == "d\n"
    line = ps_line(cshell, "d")
    assert "Exited (143)" in line or "Exited (137)" in line, line
    assert cid[:12] not in ok(cshell("ps"))
    assert inspect(cshell, "d")["State"]["Status"] == "exited"

    assert ok(cshell("start", "d")) == "d\n"
    assert " Up " in ps_line(cshell, "d")
    assert exec_out(cshell, "d", "cat", "/kept") == "kept\n"  # the rw layer survived
    assert wait_for(lambda: ok(cshell("logs", "d")).count("hello from") == 2, timeout=5)

    conflict = cshell("rm", "d")
    assert conflict.returncode == 1 and "running" in conflict.stderr
    ok(cshell("stop", "-t", "1", "d"))
    assert ok(cshell("rm", "d")) == "d\n"
    assert list((state_root / "containers").iterdir()) == []
    assert "d" not in ok(cshell("ps", "-a", "-q"))


def test_stop_kills_after_the_grace_period(cshell: Cshell) -> None:
    run_detached(cshell, "--name", "s", "busybox", "sleep", "100")  # PID 1 ignores SIGTERM
    ok(cshell("stop", "-t", "0.2", "s"))
    assert "Exited (137)" in ps_line(cshell, "s")
    assert inspect(cshell, "s")["State"]["ExitCode"] == 137
    ok(cshell("rm", "s"))


def test_killed_shim_is_cleaned_up(cshell: Cshell, state_root: Path) -> None:
    cid = run_detached(cshell, "--name", "k", "busybox", "sleep", "100")
    state = json.loads((state_root / "containers" / cid / "state.json").read_text())
    shim, pid = state["shim_pid"], state["pid"]
    assert Path(f"/proc/{shim}/comm").read_text().strip() == "cshell-shim"

    os.kill(shim, signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: "Exited" in ps_line(cshell, "k"), timeout=5), ps_line(cshell, "k")
    assert inspect(cshell, "k")["State"]["Pid"] == 0
    ok(cshell("rm", "k"))
    assert list((state_root / "containers").iterdir()) == []


def test_start_up_cleans_what_a_crash_left(cshell: Cshell, state_root: Path) -> None:
    """A shell killed mid-create or mid-unpack leaves directories; the next start removes them."""
    ok(cshell("images"))  # makes the state root
    half_made = state_root / "containers" / ("ab" * 32)
    half_made.mkdir()
    (half_made / "config.json").write_text("{}")  # no state.json: creation never finished
    unpacking = state_root / "layers" / ("cd" * 32 + ".unpacking")
    (unpacking / "diff").mkdir(parents=True)
    fresh = state_root / "containers" / ("ef" * 32)  # young: another shell may be making it
    fresh.mkdir()
    for path in (half_made, unpacking):
        os.utime(path, (time.time() - 120, time.time() - 120))

    ok(cshell("ps", "-a"))
    assert not half_made.exists() and not unpacking.exists()
    assert fresh.exists()
    fresh.rmdir()


def test_empty_cgroups_of_ours_are_orphans(cshell: Cshell) -> None:
    from cshell.engine.limits import cgroups

    run_detached(cshell, "--name", "live", "--net", "none", "busybox", "sleep", "100")
    orphan = cgroups.container_dirs("0" * 64)
    for d in orphan:
        d.mkdir(parents=True)
    removed = cgroups.remove_orphans(min_age=0)
    assert all(not d.exists() for d in orphan), removed
    assert "Up" in ps_line(cshell, "live")  # a running container's groups are never touched
    ok(cshell("rm", "-f", "live"))


def test_runtime_library_run(runtime, capfd: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    from cshell.engine.container.containers import RunOptions

    c, code = runtime.run(RunOptions(image="busybox", cmd=["sh", "-c", "echo lib; exit 5"], name="lib"))
    assert code == 5 and c.name == "lib"
    assert "lib\n" in capfd.readouterr().out
    assert runtime.get("lib").status == "exited"
    runtime.remove(runtime.get("lib"))
    assert runtime.list() == []


# -- several commands in one invocation -------------------------------------------------------------


def test_dash_c_runs_several_commands(cshell: Cshell) -> None:
    out = ok(cshell("-c", "run -d --name a busybox sleep 100; ps"))
    cid, *table = out.splitlines()
    assert len(cid) == 64
    assert any(line.startswith(cid[:12]) and " Up " in line and line.rstrip().endswith(" a") for line in table)
    ok(cshell("rm", "-f", "a"))


def test_brackets_in_commands_and_dockerfiles_are_text(cshell: Cshell, tmp_path: Path) -> None:
    """rich would read "[/x]" as a closing tag: ps and history crashed on such a command or SHELL line."""
    ok(cshell("run", "--net", "none", "--name", "brk", "busybox", "echo", "[/x] [bold]y"))
    assert "\"echo '[/x] [bold]y'\"" in ok(cshell("ps", "-a"))
    (tmp_path / "Dockerfile").write_text('FROM busybox\nSHELL ["/bin/sh", "-ec"]\nRUN echo hi\n')
    ok(cshell("build", "-q", "-t", "shelled", str(tmp_path)))
    assert "SHELL [/bin/sh -ec]" in ok(cshell("history", "shelled"))
    ok(cshell("rm", "brk"))
