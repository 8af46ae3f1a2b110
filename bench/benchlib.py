"""What the bench scripts share: run the CLI on a state root, time a call N times."""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CSHELL = REPO / ".venv" / "bin" / "cshell"


def cshell(root: Path, *args: str) -> str:
    """One-shot `cshell --root ROOT ARGS`; its stdout (raises if it fails)."""
    return subprocess.run([str(CSHELL), "--root", str(root), *args], capture_output=True, text=True,
                          check=True, env={**os.environ, "NO_COLOR": "1"}).stdout


def timed(fn: Callable[[], object], runs: int) -> dict[str, float]:
    """Median and p90 in ms of ``runs`` calls."""
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    ordered = sorted(samples)
    return {"median_ms": statistics.median(ordered), "p90_ms": ordered[int(0.9 * (len(ordered) - 1))],
            "n": len(ordered)}
