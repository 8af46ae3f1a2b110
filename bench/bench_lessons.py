#!/usr/bin/env python3
"""Lesson timings: the wall time of `cshell --script lesson08.cs --fast`, and of each step.

One warm-up replay fills the caches (busybox is built, the build's step images
are cached); then N replays, each in the same state root as a student's
second run would be. The runner writes each step's time to the file named by
$CSHELL_LESSON_TIMES. Prints the median wall time (aim: < 20 s with images
cached), a table of the median time per step, and the slowest steps.

    sudo .venv/bin/python bench/bench_lessons.py [--runs 3] [--lesson lesson08] [--json FILE]
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
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CSHELL = REPO / ".venv" / "bin" / "cshell"
AIM_SECONDS = 20.0


def replay(root: Path, lesson: str, times: Path) -> tuple[float, list[dict[str, object]]]:
    env = {**os.environ, "NO_COLOR": "1", "CSHELL_LESSON_TIMES": str(times)}
    started = time.perf_counter()
    done = subprocess.run([str(CSHELL), "--root", str(root), "--script", lesson, "--fast", "--lang", "en"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd="/")
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{lesson} failed:\n{done.stdout[-4000:]}")
    return wall, json.loads(times.read_text())


def table(walls: list[float], runs: list[list[dict[str, object]]]) -> dict[str, object]:
    steps = {}
    for run in runs:
        for row in run:
            steps.setdefault((row["step"], row["title"]), []).append(float(row["seconds"]))  # type: ignore[arg-type]
    per_step = [{"step": step, "title": title, "median_s": statistics.median(samples)}
                for (step, title), samples in sorted(steps.items())]
    return {"wall_median_s": statistics.median(walls), "walls_s": walls, "steps": per_step}


def show(result: dict[str, object], lesson: str) -> None:
    steps: list[dict[str, object]] = result["steps"]  # type: ignore[assignment]
    print(f"{'step':>4}  {'median':>8}  title")
    for row in steps:
        print(f"{row['step']:>4}  {row['median_s']:>7.3f}s  {row['title'] or '(before the first step)'}")
    wall = float(result["wall_median_s"])  # type: ignore[arg-type]
    accounted = sum(float(r["median_s"]) for r in steps)  # type: ignore[arg-type]
    print(f"\n{lesson} --fast: {wall:.2f} s wall (median of {len(result['walls_s'])}), "  # type: ignore[arg-type]
          f"{accounted:.2f} s in the steps, {wall - accounted:.2f} s start-up, checks and cleanup; "
          f"aim < {AIM_SECONDS:.0f} s: {'met' if wall < AIM_SECONDS else 'NOT met'}")
    slowest = sorted(steps, key=lambda r: -float(r["median_s"]))[:3]  # type: ignore[arg-type]
    print("slowest: " + "; ".join(f"{r['step']}. {r['title']} ({float(r['median_s']):.2f} s)"  # type: ignore[arg-type]
                                  for r in slowest))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--lesson", default="lesson08")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_lessons: needs root (namespaces, mounts, cgroups): sudo")
    root = Path(tempfile.mkdtemp(prefix="cshell-bench-lessons-", dir="/tmp"))
    times = root.parent / f"{root.name}.times.json"
    try:
        replay(root, args.lesson, times)  # warm-up: busybox built, build steps cached
        walls, runs = [], []
        for _ in range(args.runs):
            wall, steps = replay(root, args.lesson, times)
            walls.append(wall)
            runs.append(steps)
        result = table(walls, runs)
        show(result, args.lesson)
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=1))
    finally:
        subprocess.run([str(CSHELL), "--root", str(root), "lesson", "reset", args.lesson], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
        times.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
