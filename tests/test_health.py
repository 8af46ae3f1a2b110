"""HEALTHCHECK: stored by build as docker's Healthcheck, run by the shim, shown by ps and inspect.

Real containers with short intervals (a few hundred ms), each on its own state root.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import Cshell, wait_for
from test_build import context, ok

kernel = pytest.mark.kernel
FAILING_UNTIL_OK = "test -f /tmp/ok && echo fine || { echo missing; exit 1; }"


def health(cshell: Cshell, name: str) -> dict[str, Any]:
    return json.loads(ok(cshell("inspect", "--format", "{{json .State.Health}}", name)))


def ps_status(cshell: Cshell, name: str) -> str:
    line = next(ln for ln in ok(cshell("ps", "-a")).splitlines() if ln.rstrip().endswith(name))
    return line


def build_checked(cshell: Cshell, tmp_path: Path, instruction: str, tag: str = "hc") -> None:
    ctx = context(tmp_path, f'FROM busybox\n{instruction}\nCMD ["sleep", "30"]\n')
    ok(cshell("build", "-q", "-t", tag, str(ctx)))


@kernel
def test_healthcheck_goes_starting_unhealthy_healthy(cshell: Cshell, tmp_path: Path) -> None:
    build_checked(cshell, tmp_path, f"HEALTHCHECK --interval=300ms --timeout=2s --retries=2 CMD {FAILING_UNTIL_OK}")
    config = json.loads(ok(cshell("inspect", "--format", "{{json .Config.Healthcheck}}", "hc")))
    assert config == {"Test": ["CMD-SHELL", FAILING_UNTIL_OK], "Interval": 300_000_000, "Timeout": 2_000_000_000,
                      "Retries": 2}
    ok(cshell("run", "-d", "--name", "web", "hc"))
    assert "(health: starting)" in ps_status(cshell, "web")
    assert wait_for(lambda: health(cshell, "web")["Status"] == "unhealthy", timeout=10)
    h = health(cshell, "web")
    assert h["FailingStreak"] >= 2 and h["Log"][-1]["ExitCode"] == 1 and h["Log"][-1]["Output"] == "missing\n"
    assert {"Start", "End", "ExitCode", "Output"} <= set(h["Log"][-1])
    assert "Up " in ps_status(cshell, "web") and "(unhealthy)" in ps_status(cshell, "web")
    ok(cshell("exec", "web", "touch", "/tmp/ok"))
    assert wait_for(lambda: health(cshell, "web")["Status"] == "healthy", timeout=10)
    assert health(cshell, "web")["FailingStreak"] == 0 and "(healthy)" in ps_status(cshell, "web")
    assert wait_for(lambda: len(health(cshell, "web")["Log"]) == 5, timeout=10)  # docker keeps the last five
    ok(cshell("rm", "-f", "web"))


@kernel
def test_timeout_start_period_and_run_flags(cshell: Cshell, tmp_path: Path) -> None:
    build_checked(cshell, tmp_path, "HEALTHCHECK --interval=300ms CMD true")
    # --health-* override the image's; a probe past its timeout is killed and counts as a failure
    ok(cshell("run", "-d", "--name", "slow", "--health-cmd", "sleep 5", "--health-timeout", "200ms",
              "--health-retries", "1", "hc"))
    assert wait_for(lambda: health(cshell, "slow")["Status"] == "unhealthy", timeout=10)
    last = health(cshell, "slow")["Log"][-1]
    assert last["ExitCode"] == -1 and last["Output"] == "Health check exceeded timeout (0.2s)"
    # failures in the start period do not count
    ok(cshell("run", "-d", "--name", "early", "--health-cmd", "exit 1", "--health-start-period", "30s", "hc"))
    assert wait_for(lambda: len(health(cshell, "early")["Log"]) >= 3, timeout=10)
    assert health(cshell, "early")["Status"] == "starting" and health(cshell, "early")["FailingStreak"] == 0
    # --no-healthcheck: no probes, no Health, no suffix
    ok(cshell("run", "-d", "--name", "plain", "--no-healthcheck", "hc"))
    assert "Health" not in json.loads(ok(cshell("inspect", "--format", "{{json .State}}", "plain")))
    assert "(health" not in ps_status(cshell, "plain") and "Up " in ps_status(cshell, "plain")
    # a stopped container's health is reported unhealthy, as docker does; ps says Exited
    ok(cshell("stop", "-t", "1", "early"))
    assert health(cshell, "early")["Status"] == "unhealthy" and "Exited" in ps_status(cshell, "early")
    ok(cshell("rm", "-f", "slow", "early", "plain"))


@kernel
def test_healthcheck_none_and_bad_flags(cshell: Cshell, tmp_path: Path, state_root: Path) -> None:
    build_checked(cshell, tmp_path, "HEALTHCHECK --interval=300ms CMD true")
    (tmp_path / "none").mkdir()
    (tmp_path / "none" / "Dockerfile").write_text("FROM hc\nHEALTHCHECK NONE\n")
    ok(cshell("build", "-q", "-t", "nocheck", str(tmp_path / "none")))
    ok(cshell("run", "-d", "--name", "n", "nocheck"))
    assert "(health" not in ps_status(cshell, "n")
    ok(cshell("rm", "-f", "n"))
    proc = cshell("run", "-d", "--name", "bad", "--health-interval", "soon", "hc")
    assert proc.returncode == 125 and "Traceback" not in proc.stderr
    assert "invalid value 'soon' for --health-interval" in proc.stderr and "hint:" in proc.stderr
    assert "bad" not in ok(cshell("ps", "-a"))
    assert not list((state_root / "containers").glob("*"))
