"""docker's names for two cshell commands: `update` (cgroup set) and `diff` (layer diff)."""

from __future__ import annotations

import json

import pytest
from conftest import Cshell
from test_transfer import fails, ok

from cshell.engine.limits import cgroups
from cshell.engine.limits.limits import group_dir

pytestmark = pytest.mark.kernel


def memory_file(cshell: Cshell, name: str) -> str:
    cid = ok(cshell("inspect", "-f", "{{.Id}}", name)).strip()
    file = "memory.max" if cgroups.is_v2() else "memory.limit_in_bytes"
    return (group_dir(cid, "memory") / file).read_text().strip()


def host_config(cshell: Cshell, name: str) -> dict:
    return json.loads(ok(cshell("inspect", "-f", "{{json .HostConfig}}", name)))


def test_update_running_and_stopped_containers(cshell: Cshell) -> None:
    ok(cshell("run", "-d", "--net", "none", "--name", "up", "busybox", "sleep", "100"))
    ok(cshell("run", "--net", "none", "--name", "later", "busybox", "true"))
    proc = cshell("update", "--memory", "64m", "--cpus", "0.5", "--pids-limit", "50", "up", "nosuch", "later")
    assert proc.returncode == 1 and proc.stdout.split() == ["up", "later"], proc  # the others are still done
    assert "no such container: nosuch" in proc.stderr
    assert memory_file(cshell, "up") == str(64 * 1024**2)
    assert {k: host_config(cshell, "up")[k] for k in ("Memory", "NanoCpus", "PidsLimit")} == \
        {"Memory": 64 * 1024**2, "NanoCpus": 500_000_000, "PidsLimit": 50}
    ok(cshell("start", "later"))  # recorded while stopped: written at the start
    assert host_config(cshell, "later")["Memory"] == 64 * 1024**2
    ok(cshell("rm", "-f", "up", "later"))


@pytest.mark.parametrize("args, words", [
    ((), "needs at least one limit"),
    (("--memory", "1k"), "below the minimum"),
    (("--cpus", "lots"), "cpus"),
])
def test_update_refuses_and_changes_nothing(cshell: Cshell, args: tuple[str, ...], words: str) -> None:
    ok(cshell("run", "-d", "--net", "none", "--name", "keep", "--memory", "32m", "busybox", "sleep", "100"))
    assert words in fails(cshell("update", *args, "keep"))
    assert memory_file(cshell, "keep") == str(32 * 1024**2) and host_config(cshell, "keep")["Memory"] == 32 * 1024**2
    ok(cshell("rm", "-f", "keep"))


def test_diff_is_layer_diff(cshell: Cshell) -> None:
    ok(cshell("run", "--net", "none", "--name", "ch", "busybox", "sh", "-c", "echo x > /new; rm /etc/group"))
    out = ok(cshell("diff", "ch"))
    assert out == ok(cshell("layer", "diff", "ch"))
    assert out.splitlines() == ["C /etc", "D /etc/group", "A /new"]
    ok(cshell("rm", "ch"))
