#!/usr/bin/env python3
"""cshell ÷ docker, per common command, measured in one run on the same machine.

Starts the parity harness's isolated dockerd (tests/parity/dockerd.py: Debian's docker.io
20.10, its own data-root and bridge, --iptables=false), hands it cshell's busybox
(`cshell save` | `docker load`), then times each row through both CLIs, alternating
engines run by run so that load on the machine falls on both alike:

    run --rm             run --rm busybox true (default bridge)
    run -d + rm -f       run -d busybox sleep 300, then rm -f it (the pair is timed)
    exec                 exec CTR true, into a running container
    build (cached)       build -t app -f lessons/app/Dockerfile.busybox lessons/app, all steps cached
    build (uncached)     the same with --no-cache
    commit               commit CTR (a running container)
    ps                   ps -a
    images               images

Each row: one warm-up, then N runs (default 5); medians in ms and the ratio (< 1: cshell
is faster). Everything made is removed; the daemon is stopped and the host put back.

    sudo .venv/bin/python bench/bench_parity.py [--runs N] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import CSHELL  # noqa: E402
from parity.dockerd import DOCKER, Dockerd, DockerUnavailable  # noqa: E402

APP = REPO / "lessons" / "app"


class Engine:
    """One CLI: `cshell --root ROOT` or `docker` with the isolated daemon's environment."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name, self.argv, self.env = name, argv, env

    def __call__(self, *args: str) -> str:
        done = subprocess.run([*self.argv, *args], capture_output=True, text=True, env=self.env,
                              stdin=subprocess.DEVNULL, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"{self.name} {' '.join(args)}: exit {done.returncode}: {done.stderr.strip()[-300:]}")
        return done.stdout


def rows(e: Engine, ctr: str) -> dict[str, Callable[[], object]]:
    build = ["build", "-q", "-t", "bench-app", "-f", str(APP / "Dockerfile.busybox"), str(APP)]

    def run_d_rm() -> None:
        cid = e("run", "-d", "busybox", "sleep", "300").strip()
        e("rm", "-f", cid)

    def commit() -> None:
        image = e("commit", ctr).strip()
        e("rmi", image)

    return {
        "run --rm": lambda: e("run", "--rm", "busybox", "true"),
        "run -d + rm -f": run_d_rm,
        "exec": lambda: e("exec", ctr, "true"),
        "build (cached)": lambda: e(*build),
        "build (uncached)": lambda: e(build[0], "--no-cache", *build[1:]),
        "commit": commit,
        "ps": lambda: e("ps", "-a"),
        "images": lambda: e("images"),
    }


def measure(engines: list[Engine], runs: int) -> dict[str, dict[str, float]]:
    ctrs = {e.name: e("run", "-d", "--name", "bench-ctr", "busybox", "sleep", "3000").strip() for e in engines}
    table = {e.name: rows(e, ctrs[e.name]) for e in engines}
    samples: dict[str, dict[str, list[float]]] = {row: {e.name: [] for e in engines} for row in table[engines[0].name]}
    try:
        for row in samples:
            for e in engines:
                table[e.name][row]()  # warm-up: caches, the first build's layers
            for _ in range(runs):
                for e in engines:  # alternate, so a busy moment costs both
                    t = time.perf_counter()
                    table[e.name][row]()
                    samples[row][e.name].append((time.perf_counter() - t) * 1000)
    finally:
        for e in engines:
            subprocess.run([*e.argv, "rm", "-f", "bench-ctr"], capture_output=True, env=e.env)
    return {row: {name: sorted(v)[len(v) // 2] for name, v in by.items()} for row, by in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (containers and dockerd)", file=sys.stderr)
        return 1
    daemon = Dockerd()
    tmp = Path(tempfile.mkdtemp(prefix="cshell-bench-parity-", dir="/tmp"))
    try:
        daemon.start()
        env = {**os.environ, "NO_COLOR": "1"}
        mine = Engine("cshell", [str(CSHELL), "--root", str(tmp / "root")], env)
        theirs = Engine("docker", [DOCKER], daemon.env())
        mine("image", "bootstrap", "busybox")
        mine("save", "-o", str(tmp / "bb.tar"), "busybox")
        theirs("load", "-i", str(tmp / "bb.tar"))
        medians = measure([mine, theirs], args.runs)
    except DockerUnavailable as e:
        print(f"skipped: Docker is not available: {e}", file=sys.stderr)
        return 1
    finally:
        leftovers = subprocess.run([str(CSHELL), "--root", str(tmp / "root"), "ps", "-aq"], capture_output=True,
                                   text=True).stdout.split()
        if leftovers:
            subprocess.run([str(CSHELL), "--root", str(tmp / "root"), "rm", "-f", *leftovers], capture_output=True)
        daemon.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{'command':<18} {'cshell ms':>10} {'docker ms':>10} {'cshell/docker':>14}   (medians of {args.runs})")
    for row, m in medians.items():
        print(f"{row:<18} {m['cshell']:>10.0f} {m['docker']:>10.0f} {m['cshell'] / m['docker']:>14.2f}")
    if args.json:
        args.json.write_text(json.dumps({"runs": args.runs, "medians_ms": medians}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
