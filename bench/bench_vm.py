#!/usr/bin/env python3
"""The students' VM, timed: box build, boot, provisioning, and each lesson in the VM vs on the host.

    sudo .venv/bin/python bench/bench_vm.py [--cold] [--json FILE]

Rows: `make box` cold (with --cold: `make box-clean` first, so mmdebstrap and all run again;
without it the first `make box` is whatever the cache says) and cached (the second call);
`vagrant up --no-provision` of the local box (boot to ssh); provisioning, then provisioning
again ("nothing to do"); each lesson `--fast` (en) in the VM, and the same lesson on this host
in a fresh state root, with their ratio: the cost of the VM (under TCG here, the emulation
factor). Both sides start from nothing (the first lesson pays busybox's bootstrap on both),
as a student's first run would. `vagrant destroy -f` at the end, whatever happened; Vagrant's
state lives in a temporary VAGRANT_DOTFILE_PATH.
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
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CSHELL = REPO / ".venv" / "bin" / "cshell"
BOX = "cshell/bookworm-local"
LESSONS = ("lesson05", "lesson06", "lesson07", "lesson08")


def timed(label: str, cmd: list[str], env: dict[str, str] | None = None, cwd: Path = REPO) -> float:
    """Run CMD to the end; its time, or exit with its output's tail when it fails."""
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    took = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"bench_vm: {label} failed ({' '.join(cmd)}):\n{done.stdout[-3000:]}")
    print(f"{label:<32} {took:8.1f} s", flush=True)
    return took


def box_rows(cold: bool) -> dict[str, float]:
    if cold:
        subprocess.run(["make", "-s", "box-clean"], cwd=REPO, capture_output=True)
    first = timed("make box" + (" (cold)" if cold else ""), ["make", "box"])
    return {"make_box_first_s": first, "make_box_cached_s": timed("make box (cached)", ["make", "box"])}


def vm_rows(env: dict[str, str]) -> dict[str, float]:
    def vagrant(label: str, *args: str) -> float:
        return timed(label, ["vagrant", *args], env=env)

    rows = {"up_to_ssh_s": vagrant("vagrant up (boot to ssh)", "up", "--provider=libvirt", "--no-provision"),
            "provision_s": vagrant("provisioning", "provision"),
            "provision_again_s": vagrant("provisioning again", "provision")}
    for lesson in LESSONS:
        rows[f"{lesson}_vm_s"] = vagrant(f"{lesson} --fast in the VM", "ssh", "-c",
                                         f"sudo cshell --script {lesson} --fast --lang en")
    return rows


def host_rows() -> dict[str, float]:
    root = Path(tempfile.mkdtemp(prefix="cshell-bench-vm-", dir="/tmp"))
    env = {**os.environ, "NO_COLOR": "1"}
    try:
        return {f"{lesson}_host_s": timed(f"{lesson} --fast on the host",
                                          [str(CSHELL), "--root", str(root), "--script", lesson, "--fast",
                                           "--lang", "en"], env=env, cwd=Path("/"))
                for lesson in LESSONS}
    finally:
        for lesson in LESSONS:
            subprocess.run([str(CSHELL), "--root", str(root), "lesson", "reset", lesson], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="make box-clean first: time a cold box build")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_vm: needs root (make box, libvirt's qemu:///system): sudo")
    result = box_rows(args.cold)
    dot = Path(tempfile.mkdtemp(prefix="cshell-bench-vm-", dir="/var/tmp"))
    env = {**os.environ, "CSHELL_BOX": BOX, "VAGRANT_CHECKPOINT_DISABLE": "1", "VAGRANT_DOTFILE_PATH": str(dot / "dot")}
    try:
        result |= vm_rows(env)
    finally:
        started = time.perf_counter()
        subprocess.run(["vagrant", "destroy", "-f"], cwd=REPO, env=env, capture_output=True)
        result["destroy_s"] = time.perf_counter() - started
        shutil.rmtree(dot, ignore_errors=True)
    result |= host_rows()
    print(f"\n{'lesson --fast':<10} {'VM':>8} {'host':>8} {'VM/host':>8}")
    for lesson in LESSONS:
        vm, host = result[f"{lesson}_vm_s"], result[f"{lesson}_host_s"]
        print(f"{lesson:<10} {vm:7.1f}s {host:7.1f}s {vm / host:7.1f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
