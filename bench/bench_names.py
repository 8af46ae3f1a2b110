#!/usr/bin/env python3
"""Name resolution on a user-defined network: what a lookup costs, and what keeping names costs.

  lookup           inside a busybox container on a user network, LOOPS x `ping -c1 -W1 NAME`
                   against the same loop with the address: the difference per iteration is
                   what resolving `web` through /etc/hosts (glibc NSS, files) costs; with 1
                   peer and with --peers more containers on the network (a longer hosts file)
  start            one-shot `cshell run -d` on the default bridge, on a user network with
                   no peer, and with --peers peers (each start rewrites every peer's
                   /etc/hosts in place)

Needs root; removes every container, network and state root it made. Loops are bounded.

    sudo .venv/bin/python bench/bench_names.py [--runs 5] [--loops 200] [--peers 20] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import cshell, timed

HTTPD = "mkdir -p /w && echo hi > /w/index.html && exec httpd -f -h /w"


def loop_ms(root: Path, target: str, loops: int) -> float:
    """Wall time of LOOPS pings inside the client, per iteration (one exec for the whole loop)."""
    script = f"i=0; while [ $i -lt {loops} ]; do ping -c1 -W1 {target} >/dev/null || exit 1; i=$((i+1)); done"
    t = time.perf_counter()
    cshell(root, "exec", "client", "sh", "-c", script)
    return (time.perf_counter() - t) * 1000 / loops


def lookup(root: Path, runs: int, loops: int, label: str) -> dict[str, dict[str, float]]:
    ip = json.loads(cshell(root, "inspect", "web"))[0]["NetworkSettings"]["IPAddress"]
    by_name = [loop_ms(root, "web", loops) for _ in range(runs)]
    by_ip = [loop_ms(root, ip, loops) for _ in range(runs)]
    name, addr = statistics.median(by_name), statistics.median(by_ip)
    return {f"ping by name ({label})": {"median_ms": name, "n": runs * loops},
            f"ping by address ({label})": {"median_ms": addr, "n": runs * loops},
            f"resolution ({label})": {"median_ms": name - addr, "n": runs * loops}}


def start_cost(root: Path, runs: int, label: str, *net: str) -> dict[str, dict[str, float]]:
    names: list[str] = []

    def one() -> None:
        name = f"s{len(names)}"
        names.append(name)
        cshell(root, "run", "-d", "--name", name, *net, "busybox", "sleep", "300")

    result = {f"run -d ({label})": timed(one, runs)}
    cshell(root, "rm", "-f", *names)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--loops", type=int, default=200)
    ap.add_argument("--peers", type=int, default=20)
    ap.add_argument("--json")
    args = ap.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="cshell-bench-names-") as tmp:
        root = Path(tmp) / "root"
        try:
            cshell(root, "image", "bootstrap", "busybox")
            cshell(root, "network", "create", "bench")
            results |= start_cost(root, args.runs, "default bridge")
            results |= start_cost(root, args.runs, "user network, no peer", "--network", "bench")
            cshell(root, "run", "-d", "--name", "web", "--network", "bench", "busybox", "sh", "-c", HTTPD)
            cshell(root, "run", "-d", "--name", "client", "--network", "bench", "busybox", "sleep", "3000")
            results |= lookup(root, args.runs, args.loops, "1 peer")
            for i in range(args.peers):
                cshell(root, "run", "-d", "--name", f"peer{i}", "--network", "bench", "busybox", "sleep", "3000")
            results |= lookup(root, args.runs, args.loops, f"{args.peers + 1} peers")
            results |= start_cost(root, args.runs, f"user network, {args.peers + 2} peers", "--network", "bench")
        finally:
            ids = subprocess.run([sys.executable, "-m", "cshell", "--root", str(root), "ps", "-aq"],
                                 capture_output=True, text=True, check=False).stdout.split()
            if ids:
                subprocess.run([sys.executable, "-m", "cshell", "--root", str(root), "rm", "-f", *ids],
                               capture_output=True, check=False)
            subprocess.run([sys.executable, "-m", "cshell", "--root", str(root), "network", "prune", "-f"],
                           capture_output=True, check=False)
    width = max(map(len, results))
    for row, r in results.items():
        print(f"{row:<{width}}  {r['median_ms']:8.3f} ms  (n={r['n']})")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
