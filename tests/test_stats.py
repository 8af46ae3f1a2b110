"""stats: what real containers use, read from their cgroups, /proc/PID/net/dev and io counters.

Each test starts containers that use something known (a busy loop, 20 MiB of shared memory,
three processes, pings, 4 MB written) and reads it back through `stats --no-stream`.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import REPO, Cshell, cshell_argv, cshell_env
from test_transfer import fails, ok

pytestmark = pytest.mark.kernel
UNITS = {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}


def reading(cshell: Cshell, *names: str) -> dict[str, dict[str, str]]:
    out = ok(cshell("stats", "--no-stream", "--format", "{{json .}}", *names))
    rows = [json.loads(line) for line in out.splitlines()]
    return {row["Name"]: row for row in rows}


def size(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)([A-Za-z]+)", text.strip()).groups()
    return float(number) * UNITS[unit]


def pair(text: str) -> tuple[float, float]:
    left, right = text.split(" / ")
    return size(left), size(right)


def test_cpu_memory_and_pids(cshell: Cshell) -> None:
    ok(cshell("run", "-d", "--net", "none", "--name", "busy", "busybox", "sh", "-c", "while :; do :; done"))
    ok(cshell("run", "-d", "--net", "none", "--name", "shm", "--memory", "64m", "busybox", "sh", "-c",
              "dd if=/dev/zero of=/dev/shm/fill bs=1M count=20 2>/dev/null; sleep 100 & sleep 100 & wait"))
    time.sleep(1)  # dd has filled /dev/shm
    rows = reading(cshell, "busy", "shm")
    assert float(rows["busy"]["CPUPerc"].rstrip("%")) > 20, rows["busy"]  # one CPU kept busy: ~100 %
    assert float(rows["shm"]["CPUPerc"].rstrip("%")) < 10, rows["shm"]
    used, limit = pair(rows["shm"]["MemUsage"])
    assert limit == 64 * 1024**2 and 19 * 1024**2 < used < 40 * 1024**2, rows["shm"]
    assert abs(float(rows["shm"]["MemPerc"].rstrip("%")) - used / limit * 100) < 1
    assert rows["shm"]["PIDs"] == "3"  # sh and its two sleeps
    assert rows["busy"]["ID"] == ok(cshell("inspect", "-f", "{{.Id}}", "busy")).strip()[:12]
    ok(cshell("rm", "-f", "busy", "shm"))


def test_network_and_block_io(cshell: Cshell) -> None:
    ok(cshell("run", "-d", "--name", "net", "busybox", "sleep", "100"))
    gateway = ok(cshell("inspect", "-f", "{{.NetworkSettings.Gateway}}", "net")).strip()
    before = pair(reading(cshell, "net")["net"]["NetIO"])
    ok(cshell("exec", "net", "ping", "-c", "3", "-W", "1", gateway))
    rx, tx = pair(reading(cshell, "net")["net"]["NetIO"])
    assert tx - before[1] >= 3 * 98 * 0.9 and rx - before[0] >= 3 * 98 * 0.9, (before, rx, tx)  # 3 echo requests
    line = "x" * 999
    ok(cshell("run", "-d", "--net", "none", "--name", "disk", "busybox", "sh", "-c",
              f"i=0; while [ $i -lt 4000 ]; do echo {line} >> /data; i=$((i+1)); done; sync; sleep 100"))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        _, written = pair(reading(cshell, "disk")["disk"]["BlockIO"])
        if written >= 3.9e6:
            break
        time.sleep(0.5)
    assert written >= 3.9e6, written  # 4000 lines of 1000 bytes, written by the shell itself
    ok(cshell("rm", "-f", "net", "disk"))


def test_which_containers_and_stopped_ones(cshell: Cshell) -> None:
    ok(cshell("run", "-d", "--net", "none", "--name", "up", "busybox", "sleep", "100"))
    ok(cshell("run", "--net", "none", "--name", "done", "busybox", "true"))
    assert set(reading(cshell)) == {"up"}
    rows = reading(cshell, "-a")
    assert set(rows) == {"up", "done"}
    assert (rows["done"]["CPUPerc"], rows["done"]["MemUsage"], rows["done"]["PIDs"]) == ("0.00%", "0B / 0B", "0")
    table = ok(cshell("stats", "--no-stream", "up")).splitlines()
    assert re.split(r"\s{2,}", table[0].strip()) == ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %",
                                                     "NET I/O", "BLOCK I/O", "PIDS"]
    custom = ok(cshell("stats", "--no-stream", "--format", r"table {{.Name}}\t{{.PIDs}}", "up")).splitlines()
    assert [re.split(r"\s{2,}", ln.strip()) for ln in custom] == [["NAME", "PIDS"], ["up", "1"]]
    ok(cshell("rm", "-f", "up", "done"))


def test_the_live_view_redraws_until_ctrl_c(cshell: Cshell, state_root: Path) -> None:
    ok(cshell("run", "-d", "--net", "none", "--name", "live", "busybox", "sleep", "100"))
    view = subprocess.Popen([*cshell_argv(), "--root", str(state_root), "stats", "--format", "{{.Name}} {{.PIDs}}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cshell_env(), cwd=REPO,
                            stdin=subprocess.DEVNULL)
    time.sleep(4)
    view.send_signal(signal.SIGINT)
    out, err = view.communicate(timeout=10)
    assert view.returncode == 0 and "Traceback" not in err, err
    assert out.splitlines().count("live 1") >= 2, out  # a reading each second
    ok(cshell("rm", "-f", "live"))


@pytest.mark.parametrize("args, words", [
    (("nosuch",), "no such container: nosuch"),
    (("--format", "{{.Name"), "unclosed action"),
    (("--format", "{{.Nope}}", "keep"), "no field 'Nope'"),
])
def test_bad_input_is_one_line(cshell: Cshell, args: tuple[str, ...], words: str) -> None:
    ok(cshell("run", "-d", "--net", "none", "--name", "keep", "busybox", "sleep", "100"))
    assert words in fails(cshell("stats", "--no-stream", *args))
    assert "keep" in ok(cshell("ps"))
    ok(cshell("rm", "-f", "keep"))
