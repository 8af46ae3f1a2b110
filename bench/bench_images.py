#!/usr/bin/env python3
"""Image timings: commit against its floor, build (full and cached), `layer stack` rendering.

  commit           `cshell commit` of a container whose rw layer holds 50 MB in 2,000 files
  tar+sha256       the floor: `tar -c -C UPPER . | sha256sum` of the same directory
  build (full)     `cshell build` of lessons/app with Dockerfile.busybox, empty cache
  build (cached)   the same build again: every step a cache hit
  layer stack      `cshell layer stack CTR` (one-shot, rendering included)

Prints medians, p90 and the ratio commit / floor (aim: <= 1.3) and the cached
build time (aim: < 0.5 s). Needs root; removes everything it creates.

    sudo .venv/bin/python bench/bench_images.py [--runs 5] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CSHELL = REPO / ".venv" / "bin" / "cshell"
FILES, TOTAL_BYTES = 2000, 50 * 1000 * 1000


def cshell(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CSHELL), "--root", str(root), *args], capture_output=True, text=True,
                          check=check, env={**os.environ, "NO_COLOR": "1"})


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median_ms": statistics.median(ordered), "p90_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]}


def fill_upper(upper: Path) -> None:
    """50 MB in 2,000 files, as if the container had written them."""
    size = TOTAL_BYTES // FILES
    block = os.urandom(size)
    for i in range(FILES):
        d = upper / "data" / f"d{i // 100:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:04d}.bin").write_bytes(block[i % 97:] + block[: i % 97])


def bench_commit(root: Path, runs: int) -> dict[str, dict[str, float]]:
    cid = cshell(root, "run", "-d", "--name", "big", "busybox", "sleep", "600").stdout.strip()
    upper = root / "containers" / cid / "rw"
    fill_upper(upper)
    n = iter(range(10_000))
    commit = timed(lambda: cshell(root, "commit", "big", f"big:{next(n)}"), runs)
    floor = timed(lambda: subprocess.run(f"tar -c -C {upper} . | sha256sum", shell=True, check=True,
                                         capture_output=True), runs)
    stack = timed(lambda: cshell(root, "layer", "stack", "big", check=False), runs)
    cshell(root, "rm", "-f", "big")
    return {"commit": summary(commit), "tar+sha256": summary(floor), "layer stack": summary(stack)}


def bench_build(root: Path, runs: int) -> dict[str, dict[str, float]]:
    app = REPO / "lessons" / "app"
    dockerfile = app / "Dockerfile.busybox"
    if not dockerfile.exists():
        return {}
    full, cached = [], []
    build = ("build", "-t", "app", "-f", str(dockerfile), str(app))
    for _ in range(runs):
        fresh = Path(tempfile.mkdtemp(prefix="cshell-bench-build-"))
        try:
            cshell(fresh, "run", "--rm", "busybox", "true")  # the busybox base is not part of the build's time
            full += timed(lambda f=fresh: cshell(f, *build), 1)
            cached += timed(lambda f=fresh: cshell(f, *build), 1)
        finally:
            shutil.rmtree(fresh, ignore_errors=True)
    return {"build (full)": summary(full), "build (cached)": summary(cached)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_images: run as root (sudo)", file=sys.stderr)
        return 1
    root = Path(tempfile.mkdtemp(prefix="cshell-bench-images-"))
    try:
        results = bench_commit(root, args.runs)
        results.update(bench_build(root, args.runs))
    finally:
        subprocess.run([str(CSHELL), "--root", str(root), "rm", "-f", "big"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
    print(f"{'':16} {'median ms':>10} {'p90 ms':>10}")
    for name, r in results.items():
        print(f"{name:16} {r['median_ms']:10.1f} {r['p90_ms']:10.1f}")
    ratio = results["commit"]["median_ms"] / results["tar+sha256"]["median_ms"]
    print(f"\ncommit / (tar+sha256) = {ratio:.2f}x   aim <= 1.3x: {'met' if ratio <= 1.3 else 'not met'}")
    if "build (cached)" in results:
        cached = results["build (cached)"]["median_ms"]
        print(f"cached rebuild = {cached:.0f} ms   aim < 500 ms: {'met' if cached < 500 else 'not met'}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
