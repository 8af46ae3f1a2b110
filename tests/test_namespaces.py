"""Namespaces as the kernel shows them: /proc/PID/ns links, `ns ls` and `ns join`."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from conftest import Cshell

pytestmark = pytest.mark.kernel

OWN_KINDS = ("mnt", "pid", "net", "uts", "ipc", "cgroup")


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    return proc.stdout


def start(cshell: Cshell, name: str) -> int:
    ok(cshell("run", "-d", "--name", name, "busybox", "sleep", "100"))
    return json.loads(ok(cshell("inspect", name)))[0]["State"]["Pid"]


def inode(link: str) -> str:
    return link.rsplit("[", 1)[1].rstrip("]")


def test_container_has_its_own_namespaces(cshell: Cshell) -> None:
    pid = start(cshell, "n")
    for kind in OWN_KINDS:
        theirs, ours = os.readlink(f"/proc/{pid}/ns/{kind}"), os.readlink(f"/proc/self/ns/{kind}")
        assert theirs != ours, f"{kind} is shared with the host: {theirs}"
    # Docker shares these with the host (no user namespace remapping).
    for kind in ("user", "time"):
        assert os.readlink(f"/proc/{pid}/ns/{kind}") == os.readlink(f"/proc/self/ns/{kind}")

    table = ok(cshell("ns", "ls", "n", "host"))
    for kind in OWN_KINDS:
        assert inode(os.readlink(f"/proc/{pid}/ns/{kind}")) in table, kind
        assert inode(os.readlink(f"/proc/self/ns/{kind}")) in table, kind
    assert f"pid {pid}" in table
    by_pid = ok(cshell("ns", "ls", str(pid)))
    assert inode(os.readlink(f"/proc/{pid}/ns/net")) in by_pid
    ok(cshell("rm", "-f", "n"))


def test_ns_ls_default_lists_host_and_running_containers(cshell: Cshell) -> None:
    pid = start(cshell, "web")
    table = ok(cshell("ns", "ls"))
    assert "host" in table and "web" in table
    assert inode(os.readlink(f"/proc/{pid}/ns/uts")) in table
    ok(cshell("rm", "-f", "web"))


def test_ns_join_net_sees_only_the_containers_interfaces(cshell: Cshell) -> None:
    start(cshell, "net")
    host = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert len(host.splitlines()) > 1, "this host has only lo: the test cannot tell the difference"

    inside = ok(cshell("ns", "join", "net", "--ns", "net", "--", "ip", "-o", "link"))
    names = [line.split(":")[1].strip() for line in inside.splitlines()]
    # lo, and the container's end of its veth pair (bridge mode, the default): none of the host's
    assert len(names) == 2 and names[0] == "lo" and names[1].startswith("eth0@if"), inside
    assert "UP" in inside.split(">")[0]  # the runtime brought lo up

    # Only uts: the host's `hostname` program reports the container's name.
    cid = json.loads(ok(cshell("inspect", "net")))[0]["Id"]
    assert ok(cshell("ns", "join", "net", "--ns", "uts", "--", "hostname")).strip() == cid[:12]
    # mnt too: the command is looked up in the container (busybox), and sees its files.
    assert "busybox" in ok(cshell("ns", "join", "net", "--ns", "mnt,pid", "--", "readlink", "/bin/sh"))
    ok(cshell("rm", "-f", "net"))


def test_ns_join_host_pid(cshell: Cshell) -> None:
    pid = start(cshell, "p")
    out = ok(cshell("ns", "join", str(pid), "--ns", "uts", "--", "cat", "/proc/sys/kernel/hostname"))
    assert out.strip() == json.loads(ok(cshell("inspect", "p")))[0]["Config"]["Hostname"]
    ok(cshell("rm", "-f", "p"))
