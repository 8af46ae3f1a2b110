#!/usr/bin/env python3
"""The cost of the containment: start latency with and without seccomp and the capability drop.

  one-shot      `cshell run --rm --net none busybox true`, a new process each time:
                default (14 caps, seccomp filter, masked paths, nodev), --security-opt
                seccomp=unconfined (no filter), --privileged (no filter, every cap,
                nothing masked), and --cap-drop ALL -u 1000 (the user switch too)
  in-shell      the same three in one long-lived process (Runtime.run), as at the REPL
  filter        compiling the default profile with libseccomp, and loading it from the
                cache (STATE_ROOT/seccomp/KEY.bpf), which is what a start pays
  runc run      runc on an OCI bundle over the same busybox rootfs (`runc spec`: its own
                default caps and no seccomp filter), the yardstick for the ratios

Medians and p90 of --runs N after a warm-up. Needs root; removes all it creates.

    sudo .venv/bin/python bench/bench_containment.py [--runs 20] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from benchlib import CSHELL, REPO, cshell, timed

VPY = REPO / ".venv" / "bin" / "python"
CASES = {
    "default": (),
    "seccomp=unconfined": ("--security-opt", "seccomp=unconfined"),
    "--privileged": ("--privileged",),
    "--cap-drop ALL -u 1000": ("--cap-drop", "ALL", "-u", "1000"),
}

# N calls of Runtime.run per case in one process; prints JSON {case: [ms, …]}.
IN_SHELL = textwrap.dedent("""
    import json, sys, time
    from cshell.engine.container.containers import Runtime, RunOptions
    from cshell.engine.state import StateRoot
    root, runs = sys.argv[1], int(sys.argv[2])
    cases = {"default": {}, "seccomp=unconfined": {"security_opt": ["seccomp=unconfined"]},
             "--privileged": {"privileged": True}}
    rt = Runtime(StateRoot(root))
    out = {}
    for name, extra in cases.items():
        times = []
        for i in range(runs + 1):
            t0 = time.perf_counter()
            _, code = rt.run(RunOptions(image="busybox", cmd=["true"], auto_remove=True, **extra))
            assert code == 0, code
            if i:
                times.append((time.perf_counter() - t0) * 1000)
        out[name] = times
    print(json.dumps(out))
""")

FILTER = textwrap.dedent("""
    import json, sys, time, tempfile, pathlib
    from cshell.engine.kernel import caps
    from cshell.engine.kernel import seccomp
    runs = int(sys.argv[1])
    prof = seccomp.default_profile()
    t = []
    for _ in range(runs):
        t0 = time.perf_counter(); bpf, n = seccomp.compile_bpf(prof, list(caps.DEFAULT)); t.append((time.perf_counter() - t0) * 1000)
    d = pathlib.Path(tempfile.mkdtemp())
    seccomp.filter_for(prof, list(caps.DEFAULT), d)
    c = []
    for _ in range(runs):
        seccomp._memory.clear()
        t0 = time.perf_counter(); seccomp.filter_for(prof, list(caps.DEFAULT), d); c.append((time.perf_counter() - t0) * 1000)
    print(json.dumps({"compile": t, "cached": c, "rules": n, "instructions": len(bpf) // 8}))
""")


def summary(ms: list[float]) -> dict[str, float]:
    import statistics

    ordered = sorted(ms)
    return {"median_ms": statistics.median(ordered), "p90_ms": ordered[int(0.9 * (len(ordered) - 1))],
            "n": len(ordered)}


def runc_row(runs: int, rootfs: str, work: Path) -> dict[str, float] | None:
    runc = shutil.which("runc")
    if runc is None:
        return None
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_run import make_bundle, oci_cleanup

    bundle = make_bundle(runc, rootfs, work / "bundle")
    state = work / "runc-state"
    seq = iter(range(10**9))

    def once() -> None:
        subprocess.run([runc, "--root", str(state), "run", "--bundle", str(bundle), f"bench-{next(seq)}"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)

    once()
    try:
        return timed(once, runs)
    finally:
        oci_cleanup(runc, state)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    if not CSHELL.exists():
        print(f"no {CSHELL}: run `make venv` first", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="cshell-bench-sec-", dir="/tmp"))
    root = work / "root"
    results: dict[str, dict] = {}
    try:
        cshell(root, "image", "bootstrap", "busybox")
        rootfs = subprocess.run([str(VPY), "-c", "import sys\nfrom cshell.engine.container.containers import Runtime\n"
                                 "from cshell.engine.state import StateRoot\n"
                                 "print(Runtime(StateRoot(sys.argv[1])).store.get('busybox').layers[0].path)",
                                 str(root)], capture_output=True, text=True, check=True).stdout.strip()
        base = ("run", "--rm", "--net", "none")
        for name, flags in CASES.items():
            cshell(root, *base, *flags, "busybox", "true")  # warm-up (and the filter's cache)
            results[f"one-shot {name}"] = timed(lambda f=flags: cshell(root, *base, *f, "busybox", "true"), args.runs)
        out = subprocess.run([str(VPY), "-c", IN_SHELL, str(root), str(args.runs)], capture_output=True, text=True,
                             check=True).stdout
        for name, ms in json.loads(out).items():
            results[f"in-shell {name}"] = summary(ms)
        f = json.loads(subprocess.run([str(VPY), "-c", FILTER, str(args.runs)], capture_output=True, text=True,
                                      check=True).stdout)
        results["filter compile (libseccomp)"] = summary(f["compile"])
        results["filter from cache"] = summary(f["cached"])
        runc = runc_row(args.runs, rootfs, work)
        if runc:
            results["runc run"] = runc
    finally:
        subprocess.run([str(VPY), "-c", "import sys\nfrom cshell.engine.container.containers import Runtime\n"
                        "from cshell.engine.state import StateRoot\nrt = Runtime(StateRoot(sys.argv[1]))\n"
                        "[rt.remove(c, force=True) for c in rt.list()]", str(root)], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)

    base_ms = results["one-shot default"]["median_ms"]
    runc_ms = results.get("runc run", {}).get("median_ms")
    print(f"containment cost ({args.runs} runs each; median / p90; vs default; vs runc)")
    if "filter compile (libseccomp)" in results:
        print(f"  default filter: {f['rules']} rules, {f['instructions']} BPF instructions (x86_64, i386, x32)")
    for name, r in results.items():
        vs_default = r["median_ms"] / base_ms if name.startswith("one-shot") else None
        vs_runc = r["median_ms"] / runc_ms if runc_ms and ("run" in name or "shot" in name or "shell" in name) \
            else None
        r["vs_default"], r["vs_runc"] = vs_default, vs_runc
        print(f"  {name:<34} {r['median_ms']:8.2f} ms {r['p90_ms']:8.2f} ms"
              f"  {'' if vs_default is None else f'{vs_default:5.2f}x':>7}"
              f"  {'' if vs_runc is None else f'{vs_runc:5.2f}x runc':>11}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
