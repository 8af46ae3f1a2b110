#!/usr/bin/env python3
"""Cgroup timings: what limits cost a container, and what `cgroup show` costs.

  group setup      cgroups.create + limits.apply + cgroups.remove in one process, with
                   --memory/--cpus/--pids-limit/--cpu-shares against a bare group: the
                   limit writes' own cost (v1: one directory per controller)
  run start        one-shot `cshell run --rm --net none busybox true`, with and without
                   those limits (the run-start figure, for comparison)
  cgroup show      limits.show in one process, and one-shot `cshell cgroup show`

Needs root; removes everything it creates. Every loop is bounded in count.

    sudo .venv/bin/python bench/bench_cgroups.py [--runs 20] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchlib import cshell, timed

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
LIMIT_FLAGS = ("--memory", "64m", "--cpus", "0.5", "--pids-limit", "100", "--cpu-shares", "512")


def group_setup(runs: int) -> dict[str, dict[str, float]]:
    from cshell.engine.limits import cgroups, limits

    lim = limits.parse({"memory": "64m", "cpus": "0.5", "pids_limit": "100", "cpu_shares": "512"})

    def cycle(with_limits: bool) -> None:
        cid = f"bench-{os.getpid()}"
        cgroups.create(cid)
        try:
            if with_limits:
                limits.apply(cid, lim)
        finally:
            cgroups.remove(cid)

    return {"bare group": timed(lambda: cycle(False), runs), "group + limits": timed(lambda: cycle(True), runs)}


def run_start(root: Path, runs: int) -> dict[str, dict[str, float]]:
    base = ("run", "--rm", "--net", "none")
    cshell(root, *base, "busybox", "true")  # the image is made once, outside the timing
    return {"run (no limits)": timed(lambda: cshell(root, *base, "busybox", "true"), runs),
            "run (4 limits)": timed(lambda: cshell(root, *base, *LIMIT_FLAGS, "busybox", "true"), runs)}


def show_cost(root: Path, runs: int) -> dict[str, dict[str, float]]:
    from cshell.engine.limits import limits

    cid = cshell(root, "run", "-d", "--net", "none", "--name", "bench-show", *LIMIT_FLAGS,
                 "busybox", "sleep", "120").strip()
    try:
        return {"limits.show (in-process)": timed(lambda: limits.show(cid), runs),
                "cgroup show (one shot)": timed(lambda: cshell(root, "cgroup", "show", "bench-show"), runs)}
    finally:
        cshell(root, "rm", "-f", "bench-show")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_cgroups: needs root (cgroups)", file=sys.stderr)
        return 1
    root = Path(tempfile.mkdtemp(prefix="cshell-bench-cg-", dir="/tmp"))
    try:
        results = {**group_setup(args.runs), **run_start(root, max(args.runs // 2, 5)),
                   **show_cost(root, args.runs)}
    finally:
        subprocess.run(["rm", "-rf", str(root)], check=False)
    for name, r in results.items():
        print(f"{name:28} median {r['median_ms']:7.2f} ms   p90 {r['p90_ms']:7.2f} ms   (n={r['n']})")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
