#!/usr/bin/env python3
"""Reliability figures (issue #8): start-up reconcile cost, and a run/rm soak that must not leak.

  reconcile     Runtime.reconcile() on a state root with 0 and with N stopped containers
                (default 50; in-process, median of --runs), and a one-shot `cshell ps -a`
                (whose start-up reconciles) on that root
  soak          --cycles run/rm cycles (default 500) of `busybox true` through the engine's
                Runtime in this process: the process's RSS and open fds and the host's mount
                count before (after 10 warm-up cycles) and after. fds and mounts must not grow;
                RSS may move by allocator noise only (the check allows 2 MB)

Needs root; removes everything it creates. Every loop is bounded in count.

    sudo .venv/bin/python bench/bench_reliability.py [--stopped 50] [--cycles 500] [--net none|bridge] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchlib import cshell, timed

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

RSS_SLACK_KB = 2048


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def mount_count() -> int:
    return len(Path("/proc/self/mountinfo").read_text().splitlines())


def snapshot() -> dict[str, int]:
    return {"rss_kb": rss_kb(), "fds": fd_count(), "mounts": mount_count()}


def bench_reconcile(rt, root: Path, stopped: int, runs: int) -> dict:  # noqa: ANN001 - Runtime
    from cshell.engine.container.containers import RunOptions

    empty = timed(rt.reconcile, runs)
    for i in range(stopped):
        rt.run(RunOptions(image="busybox", cmd=["true"], name=f"stopped{i}"))
    assert len(rt.list()) == stopped
    full = timed(rt.reconcile, runs)
    ps = timed(lambda: cshell(root, "ps", "-a"), max(3, runs // 4))
    for c in rt.list():
        rt.remove(c)
    return {"empty": empty, "stopped": stopped, "with_stopped": full, "ps_one_shot": ps}


def soak(rt, cycles: int, network: str) -> dict:  # noqa: ANN001 - Runtime
    from cshell.engine.container.containers import RunOptions

    def cycle(i: int) -> None:
        c, code = rt.run(RunOptions(image="busybox", cmd=["true"], name=f"soak{i}", network=network))
        assert code == 0, code
        rt.remove(c)

    for i in range(10):  # warm-up: first imports, caches, the bridge
        cycle(i)
    before = snapshot()
    t = time.perf_counter()
    for i in range(cycles):
        cycle(i)
    elapsed = time.perf_counter() - t
    time.sleep(0.2)  # shims finish (their cgroups, the bridge) asynchronously
    after = snapshot()
    grew = {k: after[k] - before[k] for k in before}
    ok = grew["fds"] <= 0 and grew["mounts"] <= 0 and grew["rss_kb"] <= RSS_SLACK_KB
    return {"cycles": cycles, "network": network, "before": before, "after": after, "grew": grew,
            "per_cycle_ms": elapsed * 1000 / cycles, "ok": ok, "containers_left": len(rt.list())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stopped", type=int, default=50, help="stopped containers for the reconcile row")
    parser.add_argument("--cycles", type=int, default=500, help="run/rm cycles of the soak")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--net", default="none", choices=("none", "bridge"), help="the soak's network mode")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root: sudo .venv/bin/python bench/bench_reliability.py", file=sys.stderr)
        return 2
    from cshell.engine.container.containers import Runtime
    from cshell.engine.state import StateRoot

    root = Path(tempfile.mkdtemp(prefix="cshell-bench-rel-", dir="/tmp"))
    try:
        cshell(root, "image", "bootstrap", "busybox")
        rt = Runtime(StateRoot(root))
        rec = bench_reconcile(rt, root, args.stopped, args.runs)
        print(f"reconcile at start-up (median / p90 of {args.runs}):")
        print(f"  no containers          {rec['empty']['median_ms']:7.2f} ms  {rec['empty']['p90_ms']:7.2f} ms")
        print(f"  {args.stopped} stopped containers  {rec['with_stopped']['median_ms']:7.2f} ms  "
              f"{rec['with_stopped']['p90_ms']:7.2f} ms")
        print(f"  one-shot `ps -a` on them {rec['ps_one_shot']['median_ms']:6.1f} ms")
        s = soak(rt, args.cycles, args.net)
        b, a, g = s["before"], s["after"], s["grew"]
        print(f"soak: {s['cycles']} run/rm cycles (--net {s['network']}), {s['per_cycle_ms']:.1f} ms each:")
        print(f"  RSS      {b['rss_kb']:8d} kB -> {a['rss_kb']:8d} kB  ({g['rss_kb']:+d} kB)")
        print(f"  open fds {b['fds']:8d}    -> {a['fds']:8d}     ({g['fds']:+d})")
        print(f"  mounts   {b['mounts']:8d}    -> {a['mounts']:8d}     ({g['mounts']:+d})")
        print(f"  containers left: {s['containers_left']}; {'OK: nothing grew' if s['ok'] else 'FAIL: something grew'}")
        if args.json:
            Path(args.json).write_text(json.dumps({"reconcile": rec, "soak": s}, indent=1))
        return 0 if s["ok"] and s["containers_left"] == 0 else 1
    finally:
        rt = Runtime(StateRoot(root))
        for c in rt.list():
            rt.remove(c, force=True)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
