#!/usr/bin/env python3
"""Side-by-side timings: cshell against runc and crun, on the same busybox rootfs.

Measured in one run (median and p90 of --runs N, after one warm-up each):

  run (one-shot)     cshell --root TMP run --rm --net none busybox true  a fresh process each time
  run (in-shell)     Runtime.run(RunOptions(busybox, [true], rm))    N calls in ONE python process
  runc run           runc run on an OCI bundle over the same rootfs
  crun run           crun run on that bundle (inside `unshare -m` on a hybrid-cgroup host)
  ps (one-shot)      cshell --root TMP ps
  REPL prompt        cshell --root TMP in a pty, until the prompt shows

Standard library only; any python3 can run it (the cshell parts run with the
repo's .venv). Needs root. Everything it creates (a temporary state root,
bundles, runc/crun state, containers) is removed at the end.

    sudo .venv/bin/python bench/bench_run.py [--runs 30] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import math
import os
import platform
import re
import select
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NS = 1_000_000  # ns per ms

AIMS = {
    "run_in_shell": ("in-shell run <= crun run", "crun"),
    "run_oneshot": ("one-shot run <= runc run", "runc"),
    "ps_oneshot": ("one-shot ps <= 150 ms", 150.0),
    "repl_prompt": ("REPL prompt <= 200 ms", 200.0),
}

# Runs in the venv's python: N calls of Runtime.run in one process, timings to a file.
IN_SHELL = textwrap.dedent("""
    import json, sys, time
    from cshell.engine.container.containers import Runtime, RunOptions
    from cshell.engine.state import StateRoot
    root, runs, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    rt = Runtime(StateRoot(root))
    times, codes = [], []
    for i in range(runs + 1):  # the first call is the warm-up
        t0 = time.perf_counter_ns()
        _, code = rt.run(RunOptions(image="busybox", cmd=["true"], auto_remove=True))
        t1 = time.perf_counter_ns()
        if i:
            times.append(t1 - t0)
        codes.append(code)
    json.dump({"ns": times, "codes": codes}, open(out, "w"))
""")

# Builds the busybox image if needed; prints the unpacked layer directory.
ROOTFS = textwrap.dedent("""
    import sys
    from cshell.engine.container.containers import Runtime
    from cshell.engine.state import StateRoot
    rt = Runtime(StateRoot(sys.argv[1]))
    rt.root.ensure()
    print(rt.store.get("busybox").layers[0].path)
""")

# Removes whatever containers are left in the state root (normally none: --rm).
LEFTOVERS = textwrap.dedent("""
    import contextlib, sys
    from cshell.engine.container.containers import Runtime
    from cshell.engine.state import StateRoot
    rt = Runtime(StateRoot(sys.argv[1]))
    for c in rt.list():
        with contextlib.suppress(Exception):
            rt.remove(c, force=True)
        print(c.id)
""")


class Failed(Exception):
    pass


# -- measuring ---------------------------------------------------------------------


def timed(argv: list[str], env: dict[str, str] | None = None) -> int:
    """Run argv with no stdin and discarded output; return nanoseconds, raise Failed on error."""
    t0 = time.perf_counter_ns()
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, env=env)
    t1 = time.perf_counter_ns()
    if p.returncode != 0:
        err = p.stderr.decode(errors="replace").strip().splitlines()
        raise Failed(f"`{Path(argv[0]).name} …` exited {p.returncode}: {err[-1] if err else ''}")
    return t1 - t0


def repeat(runs: int, once: Callable[[int], int]) -> list[int]:
    once(-1)  # warm-up: page cache, image bootstrap, first cgroup directories
    return [once(i) for i in range(runs)]


def summary(samples_ns: list[int]) -> dict[str, float]:
    ms = sorted(s / NS for s in samples_ns)
    return {"median_ms": statistics.median(ms),
            "p90_ms": ms[max(0, math.ceil(0.9 * len(ms)) - 1)],
            "min_ms": ms[0], "n": len(ms)}


ANSI = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[@-Z\\-_]")


def is_prompt(text: bytes) -> bool:
    """'cshell>' anywhere, or a '>' on the last line (not a traceback's '<module>')."""
    last = re.split(rb"[\r\n]", text)[-1]
    return b"cshell>" in text or (b">" in last and b"<" not in last)


def repl_prompt_ns(cshell: str, root: str, timeout: float = 10.0) -> int:
    """Start the REPL on a pty, time until a prompt ('cshell>' or any '>') appears, send Ctrl-D."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="120", LINES="40")
    t0 = time.perf_counter_ns()
    p = subprocess.Popen([cshell, "--root", root], stdin=slave, stdout=slave, stderr=slave,
                         env=env, start_new_session=True, close_fds=True)
    os.close(slave)
    seen, found, exited = b"", None, None
    try:
        deadline = time.monotonic() + timeout
        while found is None and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.05)
            if not ready:
                if p.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                data = b""
            if not data:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(timeout=1)
                break
            if b"\x1b[6n" in data:  # prompt_toolkit asks where the cursor is: answer
                os.write(master, b"\x1b[1;1R")
            seen += data
            if is_prompt(ANSI.sub(b"", seen)) and p.poll() is None:
                found = time.perf_counter_ns() - t0
        exited = p.poll()
        if found is not None:
            os.write(master, b"\x04")
            with contextlib.suppress(subprocess.TimeoutExpired):
                end = time.monotonic() + 5
                while p.poll() is None and time.monotonic() < end:  # drain so it can exit
                    if select.select([master], [], [], 0.05)[0]:
                        with contextlib.suppress(OSError):
                            os.read(master, 65536)
                p.wait(timeout=0.1)
    finally:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        os.close(master)
    if found is None:
        lines = ANSI.sub(b"", seen).decode(errors="replace").strip().splitlines()
        tail = lines[-1].strip()[:200] if lines else ""
        why = f"exited {exited} before" if exited is not None else f"{timeout:.0f} s without"
        raise Failed(f"{why} a prompt; last output: {tail!r}")
    return found


# -- OCI bundle for runc and crun -------------------------------------------------------


def make_bundle(runc: str, rootfs: str, directory: Path) -> Path:
    directory.mkdir()
    subprocess.run([runc, "spec"], cwd=directory, check=True)
    spec_path = directory / "config.json"
    spec = json.loads(spec_path.read_text())
    spec["process"]["args"] = ["true"]
    spec["process"]["terminal"] = False
    spec["root"] = {"path": rootfs, "readonly": True}
    spec_path.write_text(json.dumps(spec, indent=2))
    return directory


def oci_cleanup(tool: str, state: Path) -> None:
    if not state.is_dir():
        return
    p = subprocess.run([tool, "--root", str(state), "list", "-q"], capture_output=True, text=True)
    for cid in p.stdout.split():
        subprocess.run([tool, "--root", str(state), "delete", "-f", cid], capture_output=True)


def unmount_under(path: Path) -> None:
    """Lazily unmount anything still mounted below path, deepest first (before rmtree)."""
    prefix = str(path) + "/"
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4].encode().decode("unicode_escape") for line in f]
    for point in sorted({p for p in points if p.startswith(prefix)}, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


# -- report ----------------------------------------------------------------------------


def ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def report(rows: dict[str, dict], order: list[tuple[str, str]], runs: int) -> dict[str, dict]:
    base = {k: rows[k].get("median_ms") for k in ("runc", "crun")}
    print(f"\nmedians of {runs} runs (after one warm-up each); ratio = median / runtime median\n")
    print(f"{'':<22}{'median ms':>10}{'p90 ms':>9}{'vs runc':>9}{'vs crun':>9}")
    for key, label in order:
        r = rows[key]
        if "median_ms" not in r:
            print(f"{label:<22}{r.get('status', 'n/a'):>10}   {r.get('error', '')[:100]}")
            continue
        vs = {k: (r["median_ms"] / b if b else None) for k, b in base.items()}
        r["vs_runc"], r["vs_crun"] = vs["runc"], vs["crun"]
        print(f"{label:<22}{r['median_ms']:>10.1f}{r['p90_ms']:>9.1f}"
              f"{ratio(vs['runc']):>9}{ratio(vs['crun']):>9}")
    if "unshare" in rows and "median_ms" in rows["unshare"]:
        print(f"  (crun includes `unshare -m sh -c 'umount …; exec crun …'`;"
              f" that wrapper alone: {rows['unshare']['median_ms']:.1f} ms)")

    print("\naims")
    aims = {}
    for key, (text, target) in AIMS.items():
        mine = rows[key].get("median_ms")
        limit = rows[target].get("median_ms") if isinstance(target, str) else target
        met = None if mine is None or limit is None else mine <= limit
        aims[key] = {"aim": text, "median_ms": mine, "limit_ms": limit, "met": met}
        verdict = "n/a" if met is None else ("met" if met else "not met")
        detail = "" if met is None else f"  ({mine:.1f} ms vs {limit:.1f} ms)"
        print(f"  {text:<28}{verdict}{detail}")
    return aims


# -- main --------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=30, help="timed runs per row (default 30)")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    ap.add_argument("--venv", default=str(REPO / ".venv"), help="venv with cshell installed")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_run.py: run as root (containers need namespaces, mounts, cgroups)", file=sys.stderr)
        return 1
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    vpy, cshell = Path(args.venv) / "bin" / "python", Path(args.venv) / "bin" / "cshell"
    if not vpy.exists():
        print(f"bench_run.py: no {vpy}; run `make venv` first", file=sys.stderr)
        return 1
    runc, crun, unshare = shutil.which("runc"), shutil.which("crun"), shutil.which("unshare")

    order = [("run_oneshot", "run (one-shot)"), ("run_in_shell", "run (in-shell)"),
             ("runc", "runc run"), ("crun", "crun run"),
             ("ps_oneshot", "ps (one-shot)"), ("repl_prompt", "REPL prompt")]
    rows: dict[str, dict] = {k: {"label": label} for k, label in order}
    rows["unshare"] = {"label": "unshare -m wrapper"}
    failed = False

    work = Path(tempfile.mkdtemp(prefix="cshell-bench."))
    root = work / "root"
    seq = iter(range(10**9))

    def measure(key: str, once: Callable[[int], int]) -> None:
        nonlocal failed
        label = rows[key]["label"]
        print(f"  {label} …", end="", flush=True, file=sys.stderr)
        try:
            rows[key].update(summary(repeat(args.runs, once)), status="ok")
            print(f" {rows[key]['median_ms']:.1f} ms", file=sys.stderr)
        except (Failed, OSError, subprocess.SubprocessError) as e:
            rows[key].update(status="failed", error=str(e))
            print(f" failed: {e}", file=sys.stderr)
            failed = True

    try:
        print(f"state root {root}; {args.runs} runs per row", file=sys.stderr)
        p = subprocess.run([str(vpy), "-c", ROOTFS, str(root)], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True)
        if p.returncode != 0:
            print(f"cannot prepare the busybox image:\n{p.stderr}", file=sys.stderr)
            return 1
        rootfs = p.stdout.strip().splitlines()[-1]

        # 1. one-shot run
        cli = [str(cshell), "--root", str(root)]
        if cshell.exists():
            # --net none: runc's bundle has a network namespace with only lo too (bridge: bench_network.py)
            measure("run_oneshot", lambda i: timed([*cli, "run", "--rm", "--net", "none", "busybox", "true"]))
        else:
            rows["run_oneshot"].update(status="n/a", error=f"no {cshell}")

        # 2. in-shell run: N calls inside one long-lived process
        def in_shell() -> None:
            out = work / "in-shell.json"
            p = subprocess.run([str(vpy), "-c", IN_SHELL, str(root), str(args.runs), str(out)],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
            if p.returncode != 0:
                raise Failed(f"engine run failed: {p.stderr.strip().splitlines()[-1:]}")
            data = json.loads(out.read_text())
            if any(c != 0 for c in data["codes"]):
                raise Failed(f"container exit codes {data['codes']}")
            rows["run_in_shell"].update(summary(data["ns"]), status="ok")

        print(f"  {rows['run_in_shell']['label']} …", end="", flush=True, file=sys.stderr)
        try:
            in_shell()
            print(f" {rows['run_in_shell']['median_ms']:.1f} ms", file=sys.stderr)
        except (Failed, OSError, ValueError) as e:
            rows["run_in_shell"].update(status="failed", error=str(e))
            print(f" failed: {e}", file=sys.stderr)
            failed = True

        # 3. and 4. runc and crun on a bundle over the same rootfs
        bundle = make_bundle(runc, rootfs, work / "bundle") if runc else None
        if runc and bundle:
            state = work / "runc-state"
            measure("runc", lambda i: timed(
                [runc, "--root", str(state), "run", "--bundle", str(bundle), f"bench-runc-{next(seq)}"]))
            oci_cleanup(runc, state)
        else:
            rows["runc"].update(status="skipped", error="runc is not installed")
        if crun and bundle:
            state = work / "crun-state"
            plain = subprocess.run([crun, "--root", str(state), "run", "--bundle", str(bundle),
                                    "bench-crun-probe"], stdin=subprocess.DEVNULL, capture_output=True)
            oci_cleanup(crun, state)
            if plain.returncode == 0:  # a pure v1 or v2 host: no wrapper needed
                rows["crun"]["mode"] = "plain"
                measure("crun", lambda i: timed(
                    [crun, "--root", str(state), "run", "--bundle", str(bundle), f"bench-crun-{next(seq)}"]))
            elif unshare:  # hybrid cgroups: crun refuses unless cgroup2 is out of sight
                rows["crun"]["mode"] = "unshare -m, /sys/fs/cgroup/unified unmounted"
                wrap = "umount /sys/fs/cgroup/unified 2>/dev/null; exec \"$@\""
                measure("crun", lambda i: timed(
                    [unshare, "-m", "sh", "-c", wrap, "sh", crun, "--root", str(state), "run",
                     "--bundle", str(bundle), f"bench-crun-{next(seq)}"]))
                measure("unshare", lambda i: timed([unshare, "-m", "sh", "-c", wrap, "sh", "true"]))
            else:
                rows["crun"].update(status="failed", error=plain.stderr.decode(errors="replace").strip())
            oci_cleanup(crun, state)
        elif not crun:
            rows["crun"].update(status="skipped", error="crun is not installed")
        else:
            rows["crun"].update(status="skipped", error="runc (for `runc spec`) is not installed")

        # 5. one-shot ps, 6. REPL time to first prompt
        if cshell.exists():
            measure("ps_oneshot", lambda i: timed([*cli, "ps"]))
            measure("repl_prompt", lambda i: repl_prompt_ns(str(cshell), str(root)))
        else:
            for key in ("ps_oneshot", "repl_prompt"):
                rows[key].update(status="n/a", error=f"no {cshell}")
    finally:
        if root.is_dir():
            subprocess.run([str(vpy), "-c", LEFTOVERS, str(root)], stdin=subprocess.DEVNULL,
                           capture_output=True)
        unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)

    aims = report(rows, order, args.runs)
    if args.json:
        result = {
            "runs": args.runs, "host": platform.node(), "kernel": platform.release(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "runc": subprocess.run([runc, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
            if runc else None,
            "crun": subprocess.run([crun, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
            if crun else None,
            "rows": rows, "aims": aims,
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
