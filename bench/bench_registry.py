#!/usr/bin/env python3
"""Registry timings: cshell push and pull of a 50 MB image, side by side with skopeo copy.

The image: one 50 MB layer (`cshell import` of 50 files of 1 MB, each half
random bytes, half zeros: it gzips about 2:1, like real layers). Each run
starts fresh registries (Debian's docker-registry on 127.0.0.1, a temporary
store each) and fresh state roots, so nothing is ever "already there".

  push              cshell push (layers as the store keeps them: uncompressed)
                    vs skopeo copy oci:STORE docker://REG (skopeo gzips them)
  push --compress   cshell push --compress vs the same skopeo copy
  pull              of the image cshell pushed (uncompressed layer): cshell pull into
                    a fresh root vs skopeo copy docker://REG oci:DIR (layer kept as is)
  pull gzip         of the image skopeo pushed (gzip layer): cshell pull (decompresses
                    into the store, checks both digests) vs skopeo copy --dest-decompress
                    to dir: (the same work) and vs skopeo copy to oci: (keeps it gzipped)

Prints medians and the ratio cshell / skopeo (aim: <= 1.0). Needs root, the
docker-registry and skopeo packages; removes everything it creates.

    sudo .venv/bin/python bench/bench_registry.py [--runs 5] [--json FILE]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from registryd import REGISTRY_BIN, Registry  # noqa: E402 - the tests' real-registry helper

CSHELL = REPO / ".venv" / "bin" / "cshell"
FILES, FILE_SIZE = 50, 1_000_000
IMAGE = "bench/big:v1"


def run(*argv: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, env=ENV)
    if proc.returncode:
        raise SystemExit(f"failed: {' '.join(argv)}\n{proc.stderr[-2000:]}")


def timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@contextmanager
def scratch() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="cshell-bench-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def registry() -> Iterator[Registry]:
    reg = Registry().start()
    try:
        yield reg
    finally:
        reg.stop()


def make_image(root: Path, work: Path) -> None:
    tar = work / "big.tar"
    with tarfile.open(tar, "w") as out:
        for i in range(FILES):
            data = os.urandom(FILE_SIZE // 2) + bytes(FILE_SIZE // 2)
            info = tarfile.TarInfo(f"data/f{i:02d}.bin")
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    run(str(CSHELL), "--root", str(root), "import", str(tar), IMAGE)


def skopeo_push(root: Path, host: str, name: str) -> None:
    run("skopeo", "copy", "--dest-tls-verify=false", f"oci:{root}/images:{IMAGE}", f"docker://{host}/{name}")


def bench_push(root: Path, runs: int) -> dict[str, list[float]]:
    rows: dict[str, list[float]] = {"cshell push": [], "cshell push --compress": [], "skopeo push": []}
    for _ in range(runs):
        for row, flags in (("cshell push", ()), ("cshell push --compress", ("--compress",))):
            with registry() as reg:
                ref = f"{reg.host}/cshell/big:v1"
                run(str(CSHELL), "--root", str(root), "tag", IMAGE, ref)
                rows[row].append(timed(lambda ref=ref, flags=flags: run(str(CSHELL), "--root", str(root), "push",
                                                                          *flags, ref)))
                run(str(CSHELL), "--root", str(root), "rmi", ref)
        with registry() as reg:
            rows["skopeo push"].append(timed(lambda reg=reg: skopeo_push(root, reg.host, "skopeo/big:v1")))
    return rows


def bench_pull(root: Path, runs: int) -> dict[str, list[float]]:
    rows: dict[str, list[float]] = {k: [] for k in ("cshell pull", "skopeo pull", "cshell pull gzip",
                                                    "skopeo pull gzip --dest-decompress", "skopeo pull gzip")}
    with registry() as reg:
        plain = f"{reg.host}/cshell/big:v1"
        run(str(CSHELL), "--root", str(root), "tag", IMAGE, plain)
        run(str(CSHELL), "--root", str(root), "push", plain)
        skopeo_push(root, reg.host, "skopeo/big:v1")
        gz = f"{reg.host}/skopeo/big:v1"
        for _ in range(runs):
            with scratch() as fresh, scratch() as other:  # two roots: the layer is new to each pull
                # (the skopeo copies go to directories of their own, never shared)
                rows["cshell pull"].append(timed(lambda: run(str(CSHELL), "--root", str(fresh), "pull", plain)))
                rows["skopeo pull"].append(timed(lambda: run(
                    "skopeo", "copy", "--src-tls-verify=false", "--dest-oci-accept-uncompressed-layers",
                    f"docker://{plain}", f"oci:{fresh}/oci-plain:v1")))
                rows["cshell pull gzip"].append(timed(lambda: run(str(CSHELL), "--root", str(other), "pull", gz)))
                rows["skopeo pull gzip --dest-decompress"].append(timed(lambda: run(
                    "skopeo", "copy", "--src-tls-verify=false", "--dest-decompress", f"docker://{gz}",
                    f"dir:{fresh}/dir-gz")))
                rows["skopeo pull gzip"].append(timed(lambda: run(
                    "skopeo", "copy", "--src-tls-verify=false", f"docker://{gz}", f"oci:{fresh}/oci-gz:v1")))
    return rows


PAIRS = (("cshell push", "skopeo push"), ("cshell push --compress", "skopeo push"),
         ("cshell pull", "skopeo pull"), ("cshell pull gzip", "skopeo pull gzip --dest-decompress"),
         ("cshell pull gzip", "skopeo pull gzip"))


def report(rows: dict[str, list[float]]) -> dict[str, object]:
    medians = {name: statistics.median(samples) * 1000 for name, samples in rows.items()}
    print(f"{'':40} {'median':>9} {'min':>9}")
    for name, samples in rows.items():
        print(f"{name:40} {medians[name]:7.0f}ms {min(samples) * 1000:7.0f}ms")
    print()
    ratios = {}
    for ours, theirs in PAIRS:
        ratios[f"{ours} / {theirs}"] = medians[ours] / medians[theirs]
        print(f"{ours + ' / ' + theirs:60} {medians[ours] / medians[theirs]:5.2f}x")
    return {"median_ms": medians, "ratios": ratios}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: cshell's store is root's (sudo .venv/bin/python bench/bench_registry.py)")
    for tool in (REGISTRY_BIN, shutil.which("skopeo")):
        if not tool or not Path(tool).exists():
            raise SystemExit("needs docker-registry and skopeo: apt-get install docker-registry skopeo")
    with scratch() as work:
        root = work / "root"
        make_image(root, work)
        print(f"image: {FILES * FILE_SIZE // 1_000_000} MB in one layer; {args.runs} runs each\n")
        rows = {**bench_push(root, args.runs), **bench_pull(root, args.runs)}
    result = report(rows)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


CONFIG_DIR = tempfile.mkdtemp(prefix="cshell-bench-config-")
ENV = {**os.environ, "NO_COLOR": "1", "CSHELL_CONFIG": f"{CONFIG_DIR}/config.json"}

if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        shutil.rmtree(CONFIG_DIR, ignore_errors=True)
