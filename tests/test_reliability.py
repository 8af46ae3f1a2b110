"""Reliability (issue #8): crashes of the shim, two shells at once, system df/prune/check, PID 1.

Real containers, as root; every test gets the conftest leak check (mounts,
processes, cgroups, veths, iptables rules, leases).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import Cshell, cshell_argv, cshell_env, shims_of, wait_for

pytestmark = pytest.mark.kernel


def ok(proc) -> str:  # noqa: ANN001 - CompletedProcess
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc.stdout


def state_of(root: Path, cid: str) -> dict:
    return json.loads((root / "containers" / cid / "state.json").read_text())


def start_time(pid: int) -> int:
    from cshell.engine.kernel.processes import process_start_time

    return process_start_time(pid)


def network_of(root: Path) -> tuple[list[str], list[str]]:
    """(leases, our links) of the state root."""
    from cshell.engine.net.network import bridge_name
    from cshell.engine.state import StateRoot

    leases_dir = root / "network" / "leases"
    leases = sorted(p.name for p in leases_dir.iterdir() if not p.name.startswith(".")) if leases_dir.is_dir() else []
    tag = f"cshell:{bridge_name(StateRoot(root))}"
    links = []
    for name in os.listdir("/sys/class/net"):
        try:
            alias = Path(f"/sys/class/net/{name}/ifalias").read_text().strip()
        except OSError:
            continue
        if alias.startswith(tag + ":"):
            links.append(name)
    return leases, links


# -- 1. reconcile after a killed shim ------------------------------------------------------------


def test_killed_shim_of_running_container_is_reconciled(cshell: Cshell, state_root: Path) -> None:
    """kill -9 of the shim alone: PID 1 runs on, unsupervised; the next command settles it (255)."""
    cid = ok(cshell("run", "-d", "--name", "k", "busybox", "sleep", "1000")).strip()
    st = state_of(state_root, cid)
    shim, pid = st["shim_pid"], st["pid"]
    assert st["shim_start"] == start_time(shim)
    assert network_of(state_root)[0], "a bridge container holds a lease"
    os.kill(shim, signal.SIGKILL)
    time.sleep(0.1)
    assert start_time(pid) == st["pid_start"], "PID 1 survives its shim"

    out = ok(cshell("ps", "-a"))  # any command reconciles first
    line = next(ln for ln in out.splitlines() if ln.rstrip().endswith(" k"))
    assert "Exited (255)" in line, line
    assert start_time(pid) != st["pid_start"], "PID 1 was killed"
    info = json.loads(ok(cshell("inspect", "k")))[0]["State"]
    assert (info["Status"], info["ExitCode"], info["Pid"]) == ("exited", 255, 0)
    assert "shim" in info["Error"]
    from cshell.engine.limits import cgroups

    assert not any(d.exists() for d in cgroups.container_dirs(cid))
    assert network_of(state_root) == ([], [])
    again = cshell("ps", "-a")  # idempotent: nothing more to do, nothing reported
    assert "reconcile" not in again.stderr
    ok(cshell("rm", "k"))


@pytest.mark.parametrize("delay", [0.0, 0.02, 0.05, 0.1, 0.2])
def test_shim_killed_at_various_moments(cshell: Cshell, state_root: Path, delay: float) -> None:
    """kill -9 of every shim of the root DELAY seconds into `run -d`: never a lie, never a leak."""
    ok(cshell("image", "bootstrap", "busybox"))
    run = subprocess.Popen([*cshell_argv(), "--root", str(state_root), "run", "-d", "--name", "v",
                            "busybox", "sleep", "1000"], env=cshell_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    while run.poll() is None and not shims_of(state_root):  # from DELAY on, the first shim seen dies
        time.sleep(0.001)
    for pid in shims_of(state_root):
        os.kill(pid, signal.SIGKILL)
    run.communicate(timeout=30)
    for pid in shims_of(state_root):  # the shim may have come up just after our look
        os.kill(pid, signal.SIGKILL)
    out = ok(cshell("ps", "-a"))
    assert " Up " not in out, out  # no shim: never shown as running
    proc = cshell("rm", "-f", "v")
    assert "Traceback" not in proc.stderr
    assert network_of(state_root) == ([], []), "lease or veth left"


def test_pid_reuse_is_detected(cshell: Cshell, state_root: Path) -> None:
    """A recorded PID now used by another process: marked exited, and that process is left alone."""
    ok(cshell("run", "--name", "r", "--net", "none", "busybox", "true"))
    cid = json.loads(ok(cshell("inspect", "r")))[0]["Id"]
    stranger = subprocess.Popen(["sleep", "100"])
    try:
        dead = subprocess.Popen(["true"])
        dead.wait()
        path = state_root / "containers" / cid / "state.json"
        st = json.loads(path.read_text())
        st.update(status="running", pid=stranger.pid, pid_start=start_time(stranger.pid) - 1,
                  shim_pid=dead.pid, shim_start=1)
        path.write_text(json.dumps(st))
        info = json.loads(ok(cshell("inspect", "r")))[0]["State"]
        assert (info["Status"], info["ExitCode"]) == ("exited", 255)
        assert stranger.poll() is None, "the stranger that reused the PID was not touched"
    finally:
        stranger.kill()
        stranger.wait()
    ok(cshell("rm", "r"))


def test_reconcile_keeps_going_after_an_error_and_is_idempotent(runtime, state_root: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    """One failing step (the cgroup) is reported in one line; the others (kill, lease, state) still run."""
    from cshell.engine.container.containers import RunOptions
    from cshell.engine.limits import cgroups

    c, _ = runtime.run(RunOptions(image="busybox", cmd=["sleep", "1000"], name="e", detach=True, network="bridge"))
    c = runtime.get("e")
    os.kill(c.state["shim_pid"], signal.SIGKILL)
    wait_for(lambda: not c.shim_alive(), timeout=2)
    real_remove = cgroups.remove

    def broken(cid: str, wait: float = 1.0) -> list:
        raise OSError(16, "Device or resource busy")

    monkeypatch.setattr(cgroups, "remove", broken)
    work = runtime.reconcile()
    assert len(work.errors) == 1 and "cgroup" in work.errors[0] and "\n" not in work.errors[0], work.errors
    c = runtime.get("e")
    assert (c.state["status"], c.state["exit_code"]) == ("exited", 255)
    assert network_of(state_root)[0] == [], "the lease went although the cgroup step failed"
    monkeypatch.setattr(cgroups, "remove", real_remove)
    runtime.remove(c)  # retries the cgroup: idempotent clean-up finishes the job
    assert runtime.reconcile().errors == []


def test_reconcile_removes_leftover_mounts_veths_and_leases(cshell: Cshell, state_root: Path) -> None:
    from cshell.engine.net.network import Network, bridge_name
    from cshell.engine.state import StateRoot, mounts_below

    ok(cshell("run", "--name", "m", "--net", "none", "busybox", "true"))
    cid = json.loads(ok(cshell("inspect", "m")))[0]["Id"]
    merged = state_root / "containers" / cid / "merged"
    subprocess.run(["mount", "-t", "tmpfs", "leftover", str(merged)], check=True)  # a crash left it
    # a veth and a lease of a container that is gone (a shell killed between steps)
    ghost = "f" * 64
    tag = f"cshell:{bridge_name(StateRoot(state_root))}:{ghost[:12]}"
    subprocess.run(["ip", "link", "add", "vethffffffff", "type", "veth", "peer", "name", "vethfffffffe"], check=True)
    subprocess.run(["ip", "link", "set", "vethffffffff", "alias", tag], check=True)
    leases = Network(StateRoot(state_root)).dir / "leases"
    leases.mkdir(parents=True, exist_ok=True)
    (leases / "172.31.250.9").write_text(json.dumps({"container": ghost, "veth": "vethghost"}))
    try:
        proc = cshell("ps", "-a")
        ok(proc)
        assert mounts_below(state_root) == []
        assert network_of(state_root) == ([], [])
        assert not os.path.exists("/sys/class/net/vethfffffffe")  # the peer went with it
    finally:
        subprocess.run(["umount", str(merged)], capture_output=True)
        subprocess.run(["ip", "link", "del", "vethffffffff"], capture_output=True)
    ok(cshell("rm", "m"))


# -- 2. two shells at once ----------------------------------------------------------------------


def test_two_shells_start_twenty_containers(cshell: Cshell, state_root: Path) -> None:
    """10 `run -d` in each of two concurrent cshell processes (default bridge network), from a cold root."""
    line = "; ".join(["run -d busybox sleep 1000"] * 10)
    shells = [subprocess.Popen([*cshell_argv(), "--root", str(state_root), "-c", line], env=cshell_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [s.communicate(timeout=120) for s in shells]
    for s, (_out, err) in zip(shells, outs, strict=True):
        assert s.returncode == 0, err
        assert "Traceback" not in err and "error" not in err, err
    ids = [ln for out, _ in outs for ln in out.split()]
    assert len(set(ids)) == 20
    data = json.loads(ok(cshell("inspect", *ids)))
    names = {d["Name"] for d in data}
    ips = {d["NetworkSettings"]["IPAddress"] for d in data}
    assert len(names) == 20 and len(ips) == 20 and "" not in ips, (names, ips)
    assert all(d["State"]["Running"] for d in data)
    assert len(network_of(state_root)[0]) == 20

    halves = [ids[:10], ids[10:]]
    rms = [subprocess.Popen([*cshell_argv(), "--root", str(state_root), "rm", "-f", *half], env=cshell_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for half in halves]
    for r in rms:
        _, err = r.communicate(timeout=120)
        assert r.returncode == 0 and "Traceback" not in err, err
    assert ok(cshell("ps", "-aq")) == ""
    assert network_of(state_root) == ([], [])


# -- 3. system df / prune / check ------------------------------------------------------------------


def test_system_df_prune(cshell: Cshell, state_root: Path) -> None:
    ok(cshell("run", "--name", "old", "-v", "/data", "busybox", "sh", "-c", "head -c 300000 /dev/zero > /big"))
    ok(cshell("run", "-d", "--name", "live", "busybox", "sleep", "1000"))
    ok(cshell("commit", "old", "mine:1"))
    df = ok(cshell("system", "df"))
    rows = {ln.split()[0]: ln.split() for ln in df.splitlines()[1:5]}
    assert rows["Images"][1:3] == ["2", "1"], df  # busybox (used by both) and mine:1 (unused)
    assert rows["Containers"][1:3] == ["2", "1"], df
    assert rows["Local"][2:4] == ["1", "1"], df  # one anonymous volume, used by `old`
    assert "Build" in rows
    verbose = ok(cshell("system", "df", "-v"))
    assert "mine:1" in verbose and "Containers space usage" in verbose

    refused = cshell("system", "prune")  # stdin is not a terminal: nothing is removed without -f
    assert refused.returncode == 1 and "-f" in refused.stderr and "Traceback" not in refused.stderr
    assert "old" in ok(cshell("ps", "-a"))

    out = ok(cshell("system", "prune", "-f", "--volumes", "-a"))
    assert "Deleted Containers:" in out and "old" in out and "live" not in out.split("Deleted Images")[0]
    assert "mine:1" in out and "Total reclaimed space:" in out
    assert "Deleted Volumes:" in out
    ps = ok(cshell("ps", "-a"))
    assert "live" in ps and "old" not in ps
    assert "busybox" in ok(cshell("images"))  # used by `live`: kept even with -a
    df = ok(cshell("system", "df"))
    assert df.splitlines()[1].split()[1:3] == ["1", "1"], df
    ok(cshell("rm", "-f", "live"))
    bad = cshell("system", "prune", "--bogus")
    assert bad.returncode != 0 and bad.stderr.startswith("error:") and "Traceback" not in bad.stderr


def test_system_check_and_repair(cshell: Cshell, state_root: Path) -> None:
    ok(cshell("run", "--name", "c", "busybox", "true"))
    ok(cshell("commit", "c", "victim:1"))
    ok(cshell("rm", "c"))
    assert "no problems" in ok(cshell("system", "check"))
    from cshell.engine.image.store import Store
    from cshell.engine.state import StateRoot

    store = Store(StateRoot(state_root))
    victim = store.get_local("victim:1")
    top = store.blob_path(victim.layers[-1].diff_id)
    top.chmod(0o644)
    with open(top, "ab") as f:
        f.write(b"bit rot")
    broken_layer = state_root / "layers" / ("ab" * 32)  # no layer.json: never finished
    (broken_layer / "diff").mkdir(parents=True)
    os.utime(broken_layer, (time.time() - 600, time.time() - 600))

    found = cshell("system", "check")
    assert found.returncode == 1, found.stdout
    lines = found.stdout.splitlines()
    assert any(f"blob sha256:{victim.layers[-1].diff_id[7:19]}" in ln and "damaged" in ln for ln in lines), lines
    assert any("incomplete" in ln and "abababababab" in ln for ln in lines), lines
    assert any("victim:1" in ln and "layer blob" in ln for ln in lines), lines
    assert top.exists(), "check alone changes nothing"

    fixed = cshell("system", "check", "--repair")
    assert "Traceback" not in fixed.stderr
    assert not top.exists() and not broken_layer.exists()
    assert "victim " in ok(cshell("images")), "an image missing a layer blob is reported, not removed"
    again = cshell("system", "check")
    assert "content hashes" not in again.stdout and "incomplete" not in again.stdout
    assert "victim:1" in again.stdout and again.returncode == 1  # still reported: it needs a pull or build
    ok(cshell("rmi", "-f", "victim:1"))


def test_system_check_sees_a_dead_shim_and_a_stray_lease(runtime, state_root: Path) -> None:  # noqa: ANN001
    """Through the engine (a CLI start would reconcile first): check reports, --repair settles."""
    from cshell.engine.container.containers import RunOptions
    from cshell.engine.system import check

    runtime.run(RunOptions(image="busybox", cmd=["sleep", "1000"], name="s", detach=True, network="bridge"))
    c = runtime.get("s")
    os.kill(c.state["shim_pid"], signal.SIGKILL)
    wait_for(lambda: not c.shim_alive(), timeout=2)
    report = check(runtime)
    texts = [f"{p.subject}: {p.text}" for p in report.problems]
    assert any("container s" in t and "shim is gone" in t and "PID 1 still runs" in t for t in texts), texts
    report = check(runtime, repair=True)
    assert all(p.fixed for p in report.problems if p.repair), report.problems
    c = runtime.get("s")
    assert (c.status, c.state["exit_code"]) == ("exited", 255)
    assert check(runtime).problems == []
    runtime.remove(c)


# -- 4. PID 1 and signals ---------------------------------------------------------------------------


def test_stop_escalates_to_sigkill_after_the_timeout(cshell: Cshell) -> None:
    script = "trap '' TERM; while true; do sleep 1; done"
    ok(cshell("run", "-d", "--name", "t", "busybox", "sh", "-c", script))
    t0 = time.monotonic()
    ok(cshell("stop", "-t", "1.5", "t"))
    took = time.monotonic() - t0
    assert 1.5 <= took < 4.0, took
    info = json.loads(ok(cshell("inspect", "t")))[0]["State"]
    assert (info["Status"], info["ExitCode"]) == ("exited", 137)
    ok(cshell("rm", "t"))


def test_init_forwards_sigterm(cshell: Cshell) -> None:
    """--init: stop's SIGTERM reaches the command (here `sleep`, which dies of it) at once."""
    ok(cshell("run", "-d", "--init", "--name", "i", "busybox", "sleep", "1000"))
    top = ok(cshell("exec", "i", "ps", "-o", "pid,comm"))
    assert any(ln.split() == ["1", ".cshell-init"] for ln in top.splitlines()), top
    t0 = time.monotonic()
    ok(cshell("stop", "-t", "5", "i"))
    assert time.monotonic() - t0 < 2.0
    info = json.loads(ok(cshell("inspect", "i")))[0]
    assert info["State"]["ExitCode"] == 143 and info["HostConfig"]["Init"] is True
    assert info["Path"] == "sleep"  # the user's command, as docker shows it
    ok(cshell("rm", "i"))


ORPHANS = "(sleep 0.1 &); (sleep 0.1 &); (sleep 0.1 &); exec sleep 1000"


def zombies(cshell: Cshell, name: str) -> int:
    out = ok(cshell("exec", name, "ps", "-o", "stat,comm"))
    return sum(1 for ln in out.splitlines()[1:] if ln.split()[0].startswith("Z"))


def test_init_reaps_orphaned_zombies(cshell: Cshell, state_root: Path) -> None:
    """Orphans are reparented to PID 1: a `sleep` PID 1 never reaps them, cshell-init does."""
    ok(cshell("run", "-d", "--name", "plain", "busybox", "sh", "-c", ORPHANS))
    assert wait_for(lambda: zombies(cshell, "plain") == 3, timeout=5), "the demonstration: zombies pile up"
    ok(cshell("run", "-d", "--init", "--name", "reaped", "busybox", "sh", "-c", ORPHANS))
    time.sleep(0.5)
    assert zombies(cshell, "reaped") == 0
    # the shim has one child, PID 1, and no zombie of its own
    for name in ("plain", "reaped"):
        st = json.loads(ok(cshell("inspect", name)))[0]
        cid = st["Id"]
        shim = state_of(state_root, cid)["shim_pid"]
        children = Path(f"/proc/{shim}/task/{shim}/children").read_text().split()
        assert children == [str(st["State"]["Pid"])], children
    ok(cshell("rm", "-f", "plain", "reaped"))


def test_init_keeps_exit_codes_and_commit_clean(cshell: Cshell) -> None:
    assert cshell("run", "--rm", "--init", "--net", "none", "busybox", "sh", "-c", "exit 7").returncode == 7
    missing = cshell("run", "--rm", "--init", "--net", "none", "busybox", "nosuchcommand")
    assert missing.returncode == 127 and "nosuchcommand" in missing.stderr
    ok(cshell("run", "--init", "--name", "ci", "--net", "none", "busybox", "touch", "/made"))
    ok(cshell("commit", "ci", "withinit:1"))
    listing = ok(cshell("run", "--rm", "--net", "none", "withinit:1", "ls", "-a", "/"))
    assert "made" in listing and ".cshell-init" not in listing  # the init layer is never committed
    ok(cshell("rm", "ci"))


# == a start that fails keeps the container (issue #12) ===========================================
#
# Each case breaks one step of `start` for real (the kernel refuses it), then checks that the
# container, its writable layer, its anonymous volume, its name and its config survive, that
# the attempt left nothing behind (the leak check), and that it starts once the cause is gone.


def _cid(root: Path) -> str:
    (d,) = (root / "containers").iterdir()
    return d.name


def _break_bind_source(root: Path, cid: str, src: Path) -> None:
    src.rmdir()
    src.write_text("a file where the bind source directory was\n")  # a file cannot cover a directory


def _mend_bind_source(root: Path, cid: str, src: Path) -> None:
    src.unlink()
    src.mkdir()


def _break_overlay(root: Path, cid: str, src: Path) -> None:
    shutil.rmtree(root / "containers" / cid / "work")  # overlayfs needs its workdir


def _mend_overlay(root: Path, cid: str, src: Path) -> None:
    (root / "containers" / cid / "work").mkdir()


def _break_veth(root: Path, cid: str, src: Path) -> None:
    from cshell.engine.net.network import veth_name

    subprocess.run(["ip", "link", "add", veth_name(cid), "type", "bridge"], check=True)  # the name is taken


def _mend_veth(root: Path, cid: str, src: Path) -> None:
    from cshell.engine.net.network import veth_name

    subprocess.run(["ip", "link", "del", veth_name(cid)], check=True)


def _edit_limits(root: Path, cid: str, **limits: str) -> None:
    path = root / "containers" / cid / "config.json"
    config = json.loads(path.read_text())
    config["limits"] = limits
    path.write_text(json.dumps(config, indent=1, sort_keys=True))


def _break_cgroup(root: Path, cid: str, src: Path) -> None:
    _edit_limits(root, cid, cpuset_cpus=str(os.cpu_count() + 7))  # a CPU this machine lacks


def _mend_cgroup(root: Path, cid: str, src: Path) -> None:
    _edit_limits(root, cid)


def _break_exec(root: Path, cid: str, src: Path) -> None:
    bin_dir = root / "containers" / cid / "rw" / "bin"
    bin_dir.mkdir(exist_ok=True)
    os.mknod(bin_dir / "sh", 0o600 | 0o020000, os.makedev(0, 0))  # an overlay whiteout hides /bin/sh


def _mend_exec(root: Path, cid: str, src: Path) -> None:
    (root / "containers" / cid / "rw" / "bin" / "sh").unlink()


START_FAULTS = {
    "bind-source": (_break_bind_source, _mend_bind_source),
    "overlay-mount": (_break_overlay, _mend_overlay),
    "veth": (_break_veth, _mend_veth),
    "cgroup": (_break_cgroup, _mend_cgroup),
    "exec-pid1": (_break_exec, _mend_exec),
}


@pytest.mark.parametrize("fault", list(START_FAULTS))
def test_failed_start_keeps_the_container(cshell: Cshell, state_root: Path, tmp_path: Path, fault: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    script = "cat /mine 2>/dev/null; echo precious > /mine; echo kept > /data/v; echo ran"
    ok(cshell("run", "--name", "keep", "-v", "/data", "-v", f"{src}:/src", "busybox", "sh", "-c", script))
    cid = _cid(state_root)
    d = state_root / "containers" / cid
    config_before = json.loads((d / "config.json").read_text())
    volumes_before = ok(cshell("volume", "ls", "-q"))
    breaking, mending = START_FAULTS[fault]
    breaking(state_root, cid, src)
    try:
        failed = cshell("start", "keep")
    finally:
        mending(state_root, cid, src)
    assert failed.returncode == 1, failed
    assert "Traceback" not in failed.stderr and "error:" in failed.stderr
    # What the container owns is all there.
    assert (d / "rw" / "mine").read_text() == "precious\n"
    assert ok(cshell("volume", "ls", "-q")) == volumes_before
    assert json.loads((d / "config.json").read_text()) == config_before
    assert "keep" in ok(cshell("ps", "-a"))
    state = state_of(state_root, cid)
    assert state["status"] == "exited" and state["error"], state
    assert ok(cshell("inspect", "--format", "{{.State.Error}}", "keep")).strip()
    # The cause gone, it starts cleanly, on its own layer and volume.
    ok(cshell("start", "keep"))
    assert wait_for(lambda: state_of(state_root, cid)["status"] == "exited", timeout=10)
    assert state_of(state_root, cid)["exit_code"] == 0 and not state_of(state_root, cid)["error"]
    assert ok(cshell("logs", "keep")) == "ran\nprecious\nran\n"
    ok(cshell("rm", "-v", "keep"))


def test_failed_run_discards_only_what_it_made(cshell: Cshell, state_root: Path, tmp_path: Path) -> None:
    """A container that never ran may go, but a named volume it was given stays."""
    ok(cshell("volume", "create", "named"))
    (state_root / "volumes" / "named" / "_data" / "f").write_text("mine\n")
    a_file = tmp_path / "file"
    a_file.write_text("x\n")
    for args in (("busybox", "nosuchcmd"), ("-v", f"{a_file}:/bin", "busybox", "true")):
        proc = cshell("run", "--name", "never", "-v", "named:/data", *args)
        assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc
        assert "never" not in ok(cshell("ps", "-a"))
        assert ok(cshell("volume", "ls", "-q")).split() == ["named"]
    assert (state_root / "volumes" / "named" / "_data" / "f").read_text() == "mine\n"
    assert a_file.read_text() == "x\n"


def test_two_starts_at_once_run_it_once(cshell: Cshell, state_root: Path) -> None:
    ok(cshell("run", "-d", "--name", "twice", "busybox", "sleep", "1000"))
    ok(cshell("stop", "-t", "0", "twice"))
    cid = _cid(state_root)
    for _ in range(3):
        procs = [subprocess.Popen([*cshell_argv(), "--root", str(state_root), "start", "twice"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cshell_env())
                 for _ in range(2)]
        results = [(p.wait(timeout=60), p.stdout.read(), p.stderr.read()) for p in procs]
        for p in procs:
            p.stdout.close()
            p.stderr.close()
        assert [r[0] for r in results] == [0, 0], results
        assert all("Traceback" not in r[2] for r in results)
        assert len(shims_of(state_root)) == 1
        assert state_of(state_root, cid)["status"] == "running"
        ok(cshell("stop", "-t", "0", "twice"))
    ok(cshell("rm", "twice"))


def test_start_right_after_the_previous_run_ended(cshell: Cshell, state_root: Path) -> None:
    """The previous run's shim drops the bridge after it reports the exit; a start racing
    that teardown still gets its veth on a bridge, or a clear error, never a lost container."""
    ok(cshell("run", "--name", "quick", "busybox", "true"))
    for _ in range(5):
        ok(cshell("start", "quick"))
        assert wait_for(lambda: "Exited" in ok(cshell("ps", "-a")), timeout=10)
    assert "quick" in ok(cshell("ps", "-a"))
    ok(cshell("rm", "quick"))


def test_rm_right_after_an_attached_run(runtime, state_root: Path) -> None:  # noqa: ANN001
    """Once an attached `run` has returned, nobody sees the container running, on a machine
    busy forking too. (A quick PID 1 could exit before the shim read its start time; a start
    time of 0 then matched the 0 that /proc gives for a gone process: "is running".)"""
    from cshell.engine.container.containers import RunOptions

    load = [subprocess.Popen(["sh", "-c", "while :; do /bin/true; done"]) for _ in range(2)]
    try:
        for i in range(120):
            c, code = runtime.run(RunOptions(image="busybox", cmd=["true"], name=f"r{i}"))
            assert code == 0 and not c.alive()
            runtime.remove(c)
    finally:
        for proc in load:
            proc.kill()
            proc.wait()


def test_a_variable_execve_refuses_fails_the_start_in_words(cshell: Cshell, state_root: Path) -> None:
    """config.json edited to hold an empty variable name: the start fails with a message, not a
    silent exit 1, and the container stays."""
    ok(cshell("run", "--name", "envy", "busybox", "true"))
    cid = _cid(state_root)
    path = state_root / "containers" / cid / "config.json"
    config = json.loads(path.read_text())
    path.write_text(json.dumps({**config, "env": [*config["env"], "=x"]}))
    proc = cshell("start", "envy")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc
    assert 'exec: "true"' in proc.stderr and "environment" in proc.stderr, proc.stderr
    assert "envy" in ok(cshell("ps", "-a"))
    path.write_text(json.dumps(config))
    ok(cshell("start", "envy"))
    assert wait_for(lambda: state_of(state_root, cid)["status"] == "exited", timeout=10)
    ok(cshell("rm", "envy"))
