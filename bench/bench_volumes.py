#!/usr/bin/env python3
"""Volume timings: what -v adds to a container's start.

  run start     one-shot `cshell run --rm --net none busybox true`: bare, with an anonymous
                volume on an empty path (-v /data), with copyData (-v /etc: the image's /etc
                copied into the new volume), with a host bind (-v DIR:/data) and a --tmpfs.
  prune         `volume prune` after the runs (removes nothing: --rm took the anonymous ones)

Needs root; removes everything it creates. Every loop is bounded in count.

    sudo .venv/bin/python bench/bench_volumes.py [--runs 20] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from benchlib import cshell, timed

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="cshell-bench-vol-", dir="/tmp"))
    host = root.parent / f"{root.name}-host"
    host.mkdir()
    try:
        cshell(root, "image", "bootstrap", "busybox")
        base = ("run", "--rm", "--net", "none")
        cases = {"bare": (), "-v /data": ("-v", "/data"), "-v /etc (copyData)": ("-v", "/etc"),
                 "-v DIR:/data": ("-v", f"{host}:/data"), "--tmpfs /data": ("--tmpfs", "/data")}
        results = {name: timed(lambda f=flags: cshell(root, *base, *f, "busybox", "true"), args.runs)
                   for name, flags in cases.items()}
        bare = results["bare"]["median_ms"]
        print(f"run start with volumes ({args.runs} runs each, median / p90, extra over bare):")
        for name, r in results.items():
            extra = r["median_ms"] - bare
            print(f"  {name:<22} {r['median_ms']:7.1f} ms  {r['p90_ms']:7.1f} ms  {extra:+6.1f} ms")
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1))
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(host, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
