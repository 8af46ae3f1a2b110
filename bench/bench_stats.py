#!/usr/bin/env python3
"""stats: what watching containers costs, cshell next to Docker.

  live view     `stats` (redrawn each second) over 20 running containers for --seconds:
                CPU seconds used per second of wall time by cshell's process; for Docker,
                by the docker client plus dockerd and containerd (the daemon samples too)
  one reading   `stats --no-stream` over the 20: wall time (both wait ~1 s for a rate)

Docker is Debian's dockerd started in isolation by tests/parity/dockerd.py (skipped
when docker.io is not installed). Needs root; removes everything it creates.

    sudo .venv/bin/python bench/bench_stats.py [--containers 20] [--seconds 10] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import CSHELL, cshell

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "parity")]
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


def live_cost(argv: list[str], env: dict[str, str], seconds: float, also: list[int]) -> float:
    """CPU seconds per wall second of a streaming stats process (and of ``also``, a daemon)."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    time.sleep(1.5)  # started, first reading taken
    before = cpu_seconds([proc.pid, *also])
    started = time.monotonic()
    time.sleep(seconds)
    used = cpu_seconds([proc.pid, *also]) - before
    wall = time.monotonic() - started
    proc.send_signal(signal.SIGINT)
    proc.wait(10)
    return used / wall


def one_reading(argv: list[str], env: dict[str, str]) -> float:
    started = time.monotonic()
    subprocess.run(argv, capture_output=True, check=True, env=env)
    return time.monotonic() - started


def bench_cshell(n: int, seconds: float) -> dict[str, float]:
    root = Path(tempfile.mkdtemp(prefix="cshell-bench-stats-", dir="/tmp"))
    try:
        for i in range(n):
            cshell(root, "run", "-d", "--net", "none", "--name", f"s{i}", "busybox", "sleep", "600")
        env = {**os.environ, "NO_COLOR": "1"}
        argv = [str(CSHELL), "--root", str(root), "stats"]
        return {"live_cpu_per_s": live_cost(argv, env, seconds, []),
                "one_reading_s": one_reading([*argv, "--no-stream"], env)}
    finally:
        subprocess.run([str(CSHELL), "--root", str(root), "rm", "-f", *[f"s{i}" for i in range(n)]],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def bench_docker(n: int, seconds: float) -> dict[str, float] | None:
    from dockerd import DOCKER, Dockerd, DockerUnavailable

    try:
        daemon = Dockerd().start()
    except DockerUnavailable as e:
        print(f"docker: skipped ({e})")
        return None
    try:
        tmp = Path(tempfile.mkdtemp(prefix="cshell-bench-stats-", dir="/tmp"))
        cshell(tmp / "root", "image", "bootstrap", "busybox")
        cshell(tmp / "root", "save", "-o", str(tmp / "busybox.tar"), "busybox")
        daemon.docker("load", "-i", str(tmp / "busybox.tar"))
        shutil.rmtree(tmp, ignore_errors=True)
        for i in range(n):
            daemon.docker("run", "-d", "--net", "none", "--name", f"s{i}", "busybox", "sleep", "600")
        helpers = [int(p) for p in subprocess.run(["pgrep", "-f", f"{daemon.dir}"], capture_output=True,
                                                  text=True).stdout.split()]
        env = daemon.env()
        return {"live_cpu_per_s": live_cost([DOCKER, "stats"], env, seconds, helpers),
                "one_reading_s": one_reading([DOCKER, "stats", "--no-stream"], env)}
    finally:
        daemon.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--containers", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    results = {"cshell": bench_cshell(args.containers, args.seconds),
               "docker": bench_docker(args.containers, args.seconds)}
    print(f"{'':14}{'cshell':>10}{'docker':>10}{'ratio':>8}   ({args.containers} containers)")
    for key, label in (("live_cpu_per_s", "live view"), ("one_reading_s", "one reading")):
        mine = results["cshell"][key]
        theirs = results["docker"][key] if results["docker"] else None
        ratio = f"{mine / theirs:.2f}x" if theirs else "-"
        print(f"{label:14}{mine:10.3f}{(theirs or 0):10.3f}{ratio:>8}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
