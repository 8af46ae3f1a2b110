"""Containment, attacked from inside: each case sets up a container, attacks, and asserts the safe outcome.

Real containers, as root. Attacks busybox cannot make are made by a small static C
program (tests/security/probe.c, compiled once per session with gcc -static) that is
bind-mounted read-only into the container. Every probe is harmless even if the
containment failed: keys are not kept, modules are not loaded, the reboot call only
turns Ctrl-Alt-Del off, and the host binary is only opened, never written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Cshell, wait_for

pytestmark = pytest.mark.kernel

PROBE_SRC = Path(__file__).parent / "security" / "probe.c"
DOCKER_CAPEFF = "00000000a80425fb"  # Docker's 14 default capabilities, as /proc/self/status shows them


def ok(proc) -> str:  # noqa: ANN001 - CompletedProcess
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc.stdout


def failed(proc) -> str:  # noqa: ANN001
    assert proc.returncode != 0, f"expected a failure\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc.stdout + proc.stderr


@pytest.fixture(scope="session")
def probe_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the attack probe")
    d = tmp_path_factory.mktemp("probe")
    out = subprocess.run(["gcc", "-static", "-O1", "-o", str(d / "probe"), str(PROBE_SRC)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip(f"gcc -static failed (no static libc?): {out.stderr[-300:]}")
    return d


def probe(cshell: Cshell, probe_dir: Path, *args: str, flags: tuple[str, ...] = ()):  # noqa: ANN201
    """run --rm the probe with these arguments; the CompletedProcess."""
    return cshell("run", "--rm", "--net", "none", *flags, "-v", f"{probe_dir}:/opt/probe:ro",
                  "busybox", "/opt/probe/probe", *args)


def status_field(cshell: Cshell, field: str, *flags: str) -> str:
    out = ok(cshell("run", "--rm", "--net", "none", *flags, "busybox", "grep", f"^{field}:", "/proc/self/status"))
    return out.split(":", 1)[1].strip()


# -- capabilities ----------------------------------------------------------------------------------


def test_default_capabilities_are_dockers_fourteen(cshell: Cshell) -> None:
    out = ok(cshell("run", "--rm", "--net", "none", "busybox", "grep", "^Cap", "/proc/self/status"))
    caps = dict(line.split(":\t") for line in out.splitlines())
    assert caps["CapEff"] == caps["CapPrm"] == caps["CapBnd"] == DOCKER_CAPEFF, out
    assert caps["CapInh"] == caps["CapAmb"] == "0000000000000000", out


def test_cap_drop_all_makes_chown_fail(cshell: Cshell) -> None:
    out = failed(cshell("run", "--rm", "--net", "none", "--cap-drop", "ALL", "busybox", "chown", "1", "/tmp"))
    assert "Operation not permitted" in out
    assert status_field(cshell, "CapBnd", "--cap-drop", "ALL") == "0" * 16
    ok(cshell("run", "--rm", "--net", "none", "busybox", "chown", "1", "/tmp"))  # the control: it can by default


def test_cap_drop_one_and_names_with_or_without_cap_prefix(cshell: Cshell) -> None:
    eff = int(status_field(cshell, "CapEff", "--cap-drop", "chown", "--cap-add", "CAP_NET_ADMIN"), 16)
    assert not eff & 1 << 0 and eff & 1 << 12  # CHOWN gone, NET_ADMIN there
    eff = int(status_field(cshell, "CapEff", "--cap-drop", "ALL", "--cap-add", "NET_BIND_SERVICE"), 16)
    assert eff == 1 << 10


def test_mount_refused_by_default_allowed_with_sys_admin_and_privileged(cshell: Cshell) -> None:
    # attack: mount a tmpfs (a step towards remounting things the container must not touch)
    out = failed(cshell("run", "--rm", "--net", "none", "busybox", "mount", "-t", "tmpfs", "t", "/tmp"))
    assert "permission denied" in out.lower() or "not permitted" in out.lower()
    for flags in (("--cap-add", "SYS_ADMIN"), ("--privileged",)):
        out = ok(cshell("run", "--rm", "--net", "none", *flags, "busybox", "sh", "-c",
                        "mount -t tmpfs t /tmp && grep ' /tmp ' /proc/self/mounts"))
        assert "tmpfs" in out


def test_privileged_gets_everything(cshell: Cshell) -> None:
    out = ok(cshell("run", "--rm", "--net", "none", "--privileged", "busybox", "sh", "-c",
                    "grep -E '^(CapEff|Seccomp):' /proc/self/status; cat /proc/self/mountinfo"))
    eff = int(out.split("CapEff:")[1].split()[0], 16)
    assert eff & ~0xA80425FB and eff & 1 << 21  # more than docker's set, SYS_ADMIN among them
    assert "Seccomp:\t0" in out
    assert " /proc/keys " not in out and " /proc/sys " not in out  # nothing masked, nothing read-only
    assert " /sys rw," in out


def test_non_root_user_has_no_capabilities(cshell: Cshell) -> None:
    out = ok(cshell("run", "--rm", "--net", "none", "-u", "1000", "busybox", "sh", "-c",
                    "id; grep ^Cap /proc/self/status"))
    assert "uid=1000 gid=0" in out
    caps = dict(line.split(":\t") for line in out.splitlines() if line.startswith("Cap"))
    assert caps["CapEff"] == caps["CapPrm"] == "0" * 16
    assert caps["CapBnd"] == DOCKER_CAPEFF
    assert "Permission denied" in failed(cshell("run", "--rm", "--net", "none", "-u", "1000", "busybox",
                                                "touch", "/etc/owned"))


def test_user_names_and_groups_come_from_the_containers_files(cshell: Cshell) -> None:
    assert ok(cshell("run", "--rm", "--net", "none", "-u", "nobody", "busybox", "id")).strip() == \
        "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)"  # runc: the primary group too
    assert ok(cshell("run", "--rm", "--net", "none", "-u", "nobody:root", "busybox", "id")).strip() == \
        "uid=65534(nobody) gid=0(root) groups=0(root)"
    assert ok(cshell("run", "--rm", "--net", "none", "busybox", "sh", "-c", "echo $HOME")).strip() == "/root"
    out = failed(cshell("run", "--rm", "--net", "none", "-u", "nosuchuser", "busybox", "id"))
    assert "unable to find user nosuchuser" in out
    assert ok(cshell("ps", "-aq")).strip() == ""  # nothing left behind


def test_no_new_privileges_blocks_setuid_escalation(cshell: Cshell, probe_dir: Path, tmp_path: Path) -> None:
    # setup: an image whose /bin/suid is setuid root (made by a RUN step)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    shutil.copy(probe_dir / "probe", ctx / "suid")
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY suid /bin/suid\nRUN chmod 4755 /bin/suid\n")
    ok(cshell("build", "-t", "suid", str(ctx)))
    # control: without no-new-privileges, the setuid bit makes user 1000 root again
    assert "euid=0" in ok(cshell("run", "--rm", "--net", "none", "-u", "1000", "suid", "/bin/suid", "euid"))
    # attack with no-new-privileges: the bit is ignored
    out = ok(cshell("run", "--rm", "--net", "none", "-u", "1000", "--security-opt", "no-new-privileges",
                    "suid", "sh", "-c", "/bin/suid euid; grep NoNewPrivs /proc/self/status"))
    assert "euid=1000" in out and "NoNewPrivs:\t1" in out


# -- seccomp ------------------------------------------------------------------------------------------------


def test_seccomp_filter_is_loaded(cshell: Cshell) -> None:
    assert status_field(cshell, "Seccomp") == "2"
    assert status_field(cshell, "Seccomp", "--security-opt", "seccomp=unconfined") == "0"


@pytest.mark.parametrize("attack", ["init_module", "finit_module", "add_key", "keyctl", "kexec_load", "bpf",
                                    "open_by_handle_at", "unshare_user", "unshare_mnt", "clone_newuser",
                                    "vsock", "personality", "settimeofday", "reboot"])
def test_dangerous_syscalls_are_refused(cshell: Cshell, probe_dir: Path, attack: str) -> None:
    proc = probe(cshell, probe_dir, attack)
    assert proc.returncode == 1 and proc.stdout.strip() == "ERR EPERM", (proc.stdout, proc.stderr)


def test_ordinary_syscalls_still_work(cshell: Cshell, probe_dir: Path) -> None:
    assert ok(probe(cshell, probe_dir, "fork")).strip() == "OK"  # clone without CLONE_NEW* flags
    out = ok(cshell("run", "--rm", "--net", "none", "busybox", "sh", "-c",
                    "echo hi > /dev/null && head -c 4 /dev/zero | wc -c && head -c 4 /dev/urandom | wc -c"))
    assert out.split() == ["4", "4"]


def test_seccomp_unconfined_lets_a_blocked_call_through(cshell: Cshell, probe_dir: Path) -> None:
    assert probe(cshell, probe_dir, "personality").stdout.strip() == "ERR EPERM"
    proc = probe(cshell, probe_dir, "personality", flags=("--security-opt", "seccomp=unconfined"))
    assert proc.stdout.strip() == "OK", proc.stdout + proc.stderr


def test_seccomp_profile_file_in_dockers_format(cshell: Cshell, tmp_path: Path) -> None:
    profile = tmp_path / "no-mkdir.json"
    profile.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW", "archMap": [{"architecture": "SCMP_ARCH_X86_64",
                                                        "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]}],
        "syscalls": [{"names": ["mkdir", "mkdirat", "no_such_call_here"], "action": "SCMP_ACT_ERRNO",
                      "errnoRet": 13}]}))
    out = failed(cshell("run", "--rm", "--net", "none", "--security-opt", f"seccomp={profile}", "busybox",
                        "mkdir", "/tmp/x"))
    assert "Permission denied" in out  # errno 13, as the profile says
    ok(cshell("run", "--rm", "--net", "none", "--security-opt", f"seccomp={profile}", "busybox", "touch", "/tmp/x"))
    bad = failed(cshell("run", "--rm", "--security-opt", f"seccomp={tmp_path / 'missing.json'}", "busybox", "true"))
    assert "opening seccomp profile" in bad and bad.count("\n") <= 2
    assert ok(cshell("ps", "-aq")).strip() == ""


# -- masked and read-only paths ----------------------------------------------------------------------------


def test_masked_paths_show_nothing(cshell: Cshell) -> None:
    # attack: read host kernel memory, keys and timers, firmware tables
    out = ok(cshell("run", "--rm", "--net", "none", "busybox", "sh", "-c",
                    "for f in /proc/kcore /proc/keys /proc/timer_list /proc/interrupts /proc/sched_debug; do "
                    "echo $f $(cat $f 2>/dev/null | wc -c); done; "
                    "for d in /sys/firmware /proc/acpi; do echo $d $(ls -A $d | wc -l); done"))
    for line in out.splitlines():
        assert line.split()[1] == "0", out  # no byte, no directory entry
    if Path("/proc/keys").exists():
        assert "/proc/keys" in ok(cshell("run", "--rm", "--net", "none", "busybox", "cat", "/proc/self/mountinfo"))


def test_proc_sys_and_sysrq_trigger_are_read_only(cshell: Cshell) -> None:
    before = Path("/proc/sys/kernel/panic_on_oops").read_text()
    out = failed(cshell("run", "--rm", "--net", "none", "busybox", "sh", "-c",
                        "echo 1 > /proc/sys/kernel/panic_on_oops"))
    assert "Read-only file system" in out
    assert Path("/proc/sys/kernel/panic_on_oops").read_text() == before
    out = failed(cshell("run", "--rm", "--net", "none", "busybox", "sh", "-c", "echo h > /proc/sysrq-trigger"))
    assert "Read-only" in out or "nonexistent" in out or "No such file" in out
    assert "Read-only file system" in failed(cshell("run", "--rm", "--net", "none", "busybox", "sh", "-c",
                                                    "echo x > /sys/kernel/uevent_helper"))


def test_umount_of_a_mask_is_refused(cshell: Cshell, probe_dir: Path) -> None:
    # attack: uncover a masked file by unmounting what covers it
    proc = probe(cshell, probe_dir, "umount", "/proc/timer_list")
    assert proc.stdout.strip() == "ERR EPERM"


def test_container_cannot_raise_its_own_cgroup_limit(cshell: Cshell) -> None:
    out = failed(cshell("run", "--rm", "--net", "none", "--pids-limit", "50", "busybox", "sh", "-c",
                        "f=$(find /sys/fs/cgroup -name pids.max | head -1); cat $f; echo max > $f"))
    assert out.splitlines()[0].strip() == "50"
    assert "Read-only file system" in out


# -- devices ------------------------------------------------------------------------------------------------


def test_mknod_of_a_disk_works_but_opening_it_does_not(cshell: Cshell) -> None:
    dev = os.stat("/").st_dev
    major, minor = os.major(dev), os.minor(dev)
    for where in ("/tmp/disk", "/dev/disk"):  # the overlay root and the /dev tmpfs, both nodev
        out = failed(cshell("run", "--rm", "--net", "none", "busybox", "sh", "-c",
                            f"mknod {where} b {major} {minor} && echo MADE && head -c 512 {where} > /dev/null"))
        assert "MADE" in out  # CAP_MKNOD is granted, as in docker
        assert "Permission denied" in out


# -- file descriptors, working directory, the root --------------------------------------------------------


def test_no_host_descriptor_reaches_the_container(cshell: Cshell) -> None:
    ok(cshell("run", "-d", "--name", "fds", "--net", "none", "busybox", "sleep", "100"))
    assert ok(cshell("exec", "fds", "ls", "/proc/1/fd")).split() == ["0", "1", "2"]
    out = ok(cshell("exec", "fds", "sh", "-c", "ls /proc/$$/fd; true"))  # `true`: sh must not exec ls
    assert set(out.split()) <= {"0", "1", "2", "10"}, out  # busybox sh keeps 10 for itself
    ok(cshell("rm", "-f", "fds"))


@pytest.mark.parametrize("fd", ["3", "4", "5", "7", "9"])
def test_proc_self_fd_workdir_is_refused(cshell: Cshell, fd: str) -> None:
    # CVE-2024-21626: a working directory through a leaked descriptor would be the host's
    out = failed(cshell("run", "--rm", "--net", "none", "-w", f"/proc/self/fd/{fd}", "busybox", "pwd"))
    assert "chdir" in out or "outside" in out
    assert ok(cshell("ps", "-aq")).strip() == ""


def test_exec_workdir_through_proc_self_fd_is_refused(cshell: Cshell) -> None:
    ok(cshell("run", "-d", "--name", "w", "--net", "none", "busybox", "sleep", "100"))
    for fd in ("3", "4", "5", "6"):
        failed(cshell("exec", "-w", f"/proc/self/fd/{fd}", "w", "pwd"))
    ok(cshell("rm", "-f", "w"))


def test_chroot_escape_does_not_reach_the_host_root(cshell: Cshell, probe_dir: Path, state_root: Path) -> None:
    marker = state_root / "host-marker"
    marker.write_text("host")
    proc = probe(cshell, probe_dir, "chroot_escape", str(marker))
    assert proc.stdout.strip() == "STILL INSIDE", proc.stdout + proc.stderr


def test_ptrace_of_a_host_process_is_impossible(cshell: Cshell, probe_dir: Path) -> None:
    proc = probe(cshell, probe_dir, "ptrace", str(os.getpid()))  # pytest's pid: not in the container's namespace
    assert proc.stdout.strip().startswith("ERR"), proc.stdout


def test_symlinked_volume_target_cannot_escape(cshell: Cshell, tmp_path: Path) -> None:
    host_dir = Path("/tmp") / f"cshell-escape-{os.getpid()}"
    shutil.rmtree(host_dir, ignore_errors=True)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM busybox\nRUN ln -s ../../../../../../..{host_dir} /escape\n")
    ok(cshell("build", "-t", "escape", str(ctx)))
    try:
        ok(cshell("run", "--rm", "--net", "none", "-v", "/escape/inside", "escape", "true"))
        assert not host_dir.exists(), "a mount point was created on the host"
    finally:
        shutil.rmtree(host_dir, ignore_errors=True)


def test_host_interpreter_cannot_be_overwritten(cshell: Cshell, probe_dir: Path, tmp_path: Path) -> None:
    """CVE-2019-5736: the container watches /proc/*/exe while host code joins it; the host binary stays intact."""
    python = Path(os.path.realpath(sys.executable))
    digest = hashlib.sha256(python.read_bytes()).hexdigest()
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    shutil.copy(probe_dir / "probe", ctx / "probe")
    # /bin/hijack runs whatever the kernel calls /proc/self/exe of the process that execs it:
    # for `exec`, the host's interpreter itself, now inside the container
    (ctx / "hijack").write_text("#!/proc/self/exe\n")
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY probe /bin/probe\nCOPY hijack /bin/hijack\n"
                                    "RUN chmod 755 /bin/hijack /bin/probe\n")
    ok(cshell("build", "-t", "evil", str(ctx)))
    ok(cshell("run", "-d", "--name", "evil", "--net", "none", "evil", "/bin/probe", "exe_watch", "6",
              "/bin/busybox"))
    for _ in range(8):
        cshell("exec", "evil", "true")
        cshell("exec", "evil", "/bin/hijack")
    assert wait_for(lambda: "seen" in cshell("logs", "evil").stdout, timeout=15)
    log = ok(cshell("logs", "evil"))
    assert "OPENED" not in log, log
    assert hashlib.sha256(python.read_bytes()).hexdigest() == digest
    ok(cshell("rm", "-f", "evil"))


# -- exec and visibility ------------------------------------------------------------------------------------------


def test_exec_gets_the_containers_confinement(cshell: Cshell) -> None:
    ok(cshell("run", "-d", "--name", "c", "--net", "none", "-u", "nobody", "--cap-drop", "ALL",
              "--security-opt", "no-new-privileges", "busybox", "sleep", "100"))
    out = ok(cshell("exec", "c", "sh", "-c", "id -u; grep -E '^(CapBnd|Seccomp|NoNewPrivs):' /proc/self/status"))
    assert out.split()[0] == "65534"
    assert "CapBnd:\t0000000000000000" in out and "Seccomp:\t2" in out and "NoNewPrivs:\t1" in out
    assert ok(cshell("exec", "-u", "0", "c", "id", "-u")).strip() == "0"
    out = failed(cshell("exec", "-u", "ghost", "c", "true"))
    assert "unable to find user ghost" in out
    ok(cshell("rm", "-f", "c"))


def test_inspect_shows_the_security_settings(cshell: Cshell) -> None:
    ok(cshell("run", "-d", "--name", "i", "--net", "none", "-u", "nobody", "--cap-add", "NET_ADMIN",
              "--cap-drop", "MKNOD", "--security-opt", "no-new-privileges", "busybox", "sleep", "100"))
    data = json.loads(ok(cshell("inspect", "i")))[0]
    host = data["HostConfig"]
    assert host["CapAdd"] == ["NET_ADMIN"] and host["CapDrop"] == ["MKNOD"]
    assert host["Privileged"] is False and host["SecurityOpt"] == ["no-new-privileges"]
    assert data["Config"]["User"] == "nobody"
    ok(cshell("rm", "-f", "i"))


def test_bad_security_flags_are_one_line_errors(cshell: Cshell) -> None:
    for flags, text in ((("--cap-add", "FLY"), "unknown capability"),
                        (("--security-opt", "apparmor=x"), "not supported"),
                        (("--security-opt", "nonsense"), "invalid --security-opt"),
                        (("-u", "a:b:c"), "invalid user")):
        out = failed(cshell("run", "--rm", *flags, "busybox", "true"))
        assert text in out and out.count("\n") <= 2, out
    assert ok(cshell("ps", "-aq")).strip() == ""


def test_explain_shows_the_containment_steps(cshell: Cshell) -> None:
    out = ok(cshell("--explain", "run", "--rm", "--net", "none", "-u", "nobody", "--security-opt",
                    "no-new-privileges", "busybox", "true"))
    out += cshell("--explain", "run", "--rm", "--net", "none", "-u", "nobody", "--security-opt",
                  "no-new-privileges", "busybox", "true").stderr
    for step in ("PR_CAPBSET_DROP", "capset(", "PR_SET_NO_NEW_PRIVS", "SECCOMP_SET_MODE_FILTER", "mask ",
                 "read-only: /proc/bus"):
        assert step in out, step


def test_dockerfile_user_applies_to_run_steps(cshell: Cshell, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN mkdir -m 777 /out\nUSER nobody\nRUN id -u > /out/uid\n")
    ok(cshell("build", "-t", "who", str(ctx)))
    assert ok(cshell("run", "--rm", "--net", "none", "who", "cat", "/out/uid")).strip() == "65534"
    assert ok(cshell("run", "--rm", "--net", "none", "who", "id", "-u")).strip() == "65534"  # the image's USER


def test_help_run_teaches_the_containment(cshell: Cshell) -> None:
    out = ok(cshell("help", "run"))
    for word in ("--cap-add", "--privileged", "no-new-privileges", "seccomp", "SYS_ADMIN", "nodev"):
        assert word in out
