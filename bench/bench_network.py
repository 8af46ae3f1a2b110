#!/usr/bin/env python3
"""Network timings: a published port against a direct connection, and network setup per container.

  echo RTT         one TCP connection, 64-byte round trips to a busybox `nc -ll -e cat` echo
                   server, through 127.0.0.1:HOSTPORT (iptables DNAT + MASQUERADE), through
                   the host's own address (DNAT only) and directly to the container's address
  request          connect, 64-byte round trip, close: what an HTTP/1.0 request pays
                   (the NAT rules are looked at for the first packet of each connection)
  throughput       8 MB echoed through one connection (bounded by count and 5 s)
  setup            Runtime.run(-d) in one process, --net bridge against --net none: the
                   difference is the network's cost per container (veth pair, eth0, lease),
                   with the bridge already there; also the first container (bridge made) and
                   a one-shot `cshell run -d` (which also pays the netlink import)

Traffic goes only to 127.0.0.1, this machine's own address and the container's address;
every loop is bounded in count and time. Aims: published-port overhead < 20% of the
direct request latency; setup < 30 ms. Needs root; removes everything it creates.

    sudo .venv/bin/python bench/bench_network.py [--runs 20] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
CSHELL = REPO / ".venv" / "bin" / "cshell"
PAYLOAD = b"x" * 64
TIME_LIMIT = 5.0  # seconds per measured loop, whatever the count
SETTLE = 0.1  # after each rm: the kernel tears namespaces down in the background; let it finish


def cshell(root: Path, *args: str) -> str:
    return subprocess.run([str(CSHELL), "--root", str(root), *args], capture_output=True, text=True,
                          check=True, env={**os.environ, "NO_COLOR": "1"}).stdout


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median": statistics.median(ordered), "p90": ordered[int(0.9 * (len(ordered) - 1))],
            "n": len(ordered)}


def host_address() -> str | None:
    out = subprocess.run(["ip", "-o", "-4", "addr", "show", "scope", "global"], capture_output=True,
                         text=True, check=False).stdout
    for line in out.splitlines():
        if not line.split()[1].startswith(("csh-", "cshell", "veth", "docker")):
            return line.split()[3].split("/")[0]
    return None


# -- traffic ------------------------------------------------------------------------------


def connect(addr: tuple[str, int], timeout: float = 5.0) -> socket.socket:
    deadline = time.monotonic() + timeout
    while True:
        try:
            s = socket.create_connection(addr, timeout=2)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(PAYLOAD)  # the server is up when the echo comes back
            recv_exactly(s, len(PAYLOAD))
            return s
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def recv_exactly(s: socket.socket, n: int) -> None:
    got = 0
    while got < n:
        chunk = s.recv(n - got)
        if not chunk:
            raise ConnectionError("the echo server closed the connection")
        got += len(chunk)


def rtt_samples(addr: tuple[str, int], count: int) -> list[float]:
    with connect(addr) as s:
        out, deadline = [], time.monotonic() + TIME_LIMIT
        for _ in range(count):
            t = time.perf_counter_ns()
            s.sendall(PAYLOAD)
            recv_exactly(s, len(PAYLOAD))
            out.append((time.perf_counter_ns() - t) / 1e6)
            if time.monotonic() > deadline:
                break
    return out


def request_samples(addr: tuple[str, int], count: int) -> list[float]:
    connect(addr).close()
    out, deadline = [], time.monotonic() + TIME_LIMIT
    for _ in range(count):
        t = time.perf_counter_ns()
        with socket.create_connection(addr, timeout=2) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(PAYLOAD)
            recv_exactly(s, len(PAYLOAD))
        out.append((time.perf_counter_ns() - t) / 1e6)
        if time.monotonic() > deadline:
            break
    return out


def throughput(addr: tuple[str, int], total: int = 8 << 20) -> float:
    """MB/s of echoed data: one thread sends, this one reads it back."""
    block = b"y" * 65536
    with connect(addr) as s:
        def send() -> None:
            sent, deadline = 0, time.monotonic() + TIME_LIMIT
            while sent < total and time.monotonic() < deadline:
                s.sendall(block)
                sent += len(block)
            s.shutdown(socket.SHUT_WR)

        sender = threading.Thread(target=send, daemon=True)
        start = time.perf_counter()
        sender.start()
        got = 0
        s.settimeout(TIME_LIMIT + 2)
        while got < total:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            got += len(chunk)
        elapsed = time.perf_counter() - start
        sender.join(1)
    return got / elapsed / 1e6


# -- setup time ------------------------------------------------------------------------------


def setup_samples(root: Path, runs: int) -> dict[str, list[float]]:
    """Runtime.run(-d) of `sleep`, bridge and none interleaved, timed until PID 1 runs."""
    from cshell.engine.container.containers import RunOptions, Runtime
    from cshell.engine.state import StateRoot

    rt = Runtime(StateRoot(root))
    samples: dict[str, list[float]] = {"none": [], "bridge": [], "first": []}

    def once(mode: str) -> float:
        t = time.perf_counter()
        c, _ = rt.run(RunOptions(image="busybox", cmd=["sleep", "30"], detach=True, network=mode))
        elapsed = (time.perf_counter() - t) * 1000
        rt.remove(c, force=True)
        time.sleep(SETTLE)
        return elapsed

    once("bridge")  # warm-up: imports, page cache
    for _ in range(runs):  # the first container on the root: the bridge is made, and removed after
        samples["first"].append(once("bridge"))
        _wait_bridge_gone(root)
    anchor, _ = rt.run(RunOptions(image="busybox", cmd=["sleep", "300"], detach=True, network="bridge"))
    try:
        for _ in range(runs):
            for mode in ("none", "bridge"):
                samples[mode].append(once(mode))
    finally:
        rt.remove(anchor, force=True)
    return samples


def _wait_bridge_gone(root: Path) -> None:
    from cshell.engine.net.network import bridge_name
    from cshell.engine.state import StateRoot

    name, deadline = bridge_name(StateRoot(root)), time.monotonic() + 3
    while os.path.exists(f"/sys/class/net/{name}") and time.monotonic() < deadline:
        time.sleep(0.005)


def oneshot_samples(root: Path, runs: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"none": [], "bridge": []}
    anchor = cshell(root, "run", "-d", "busybox", "sleep", "300").strip()
    try:
        for _ in range(runs):
            for mode in ("none", "bridge"):
                t = time.perf_counter()
                cid = cshell(root, "run", "-d", "--net", mode, "busybox", "sleep", "30").strip()
                out[mode].append((time.perf_counter() - t) * 1000)
                cshell(root, "rm", "-f", cid)
                time.sleep(SETTLE)
    finally:
        cshell(root, "rm", "-f", anchor)
    return out


# -- main -------------------------------------------------------------------------------------


def measure_traffic(root: Path, count: int) -> dict[str, dict]:
    with socket.socket() as probe:
        probe.bind(("0.0.0.0", 0))
        port = probe.getsockname()[1]
    cid = cshell(root, "run", "-d", "-p", f"{port}:7", "busybox", "nc", "-ll", "-p", "7", "-e", "cat").strip()
    try:
        ip = cshell(root, "inspect", "-f", "{{.NetworkSettings.IPAddress}}", cid).strip()
        paths = {"direct": (ip, 7), "published 127.0.0.1": ("127.0.0.1", port)}
        own = host_address()
        if own:
            paths["published host address"] = (own, port)
        results: dict[str, dict] = {name: {"rtt": [], "request": []} for name in paths}
        for _ in range(3):  # interleaved rounds, so drift hits every path alike
            for name, addr in paths.items():
                results[name]["rtt"] += rtt_samples(addr, count)
                results[name]["request"] += request_samples(addr, max(count // 4, 50))
        for name, addr in paths.items():
            results[name] = {"rtt": summary(results[name]["rtt"]), "request": summary(results[name]["request"]),
                             "MB/s": throughput(addr)}
        return results
    finally:
        cshell(root, "rm", "-f", cid)


def report(traffic: dict[str, dict], setup: dict[str, list[float]], oneshot: dict[str, list[float]]) -> dict:
    print(f"{'path':28} {'echo RTT ms':>12} {'p90':>7} {'request ms':>11} {'p90':>7} {'MB/s':>8}")
    for name, r in traffic.items():
        print(f"{name:28} {r['rtt']['median']:12.3f} {r['rtt']['p90']:7.3f} {r['request']['median']:11.3f} "
              f"{r['request']['p90']:7.3f} {r['MB/s']:8.0f}")
    direct, published = traffic["direct"], traffic["published 127.0.0.1"]
    overhead = {k: (published[k]["median"] - direct[k]["median"]) / direct[k]["median"] * 100
                for k in ("rtt", "request")}
    print(f"published-port overhead on loopback: request {overhead['request']:+.1f}%, "
          f"RTT {overhead['rtt']:+.1f}%  (aim < 20%)")
    med = {k: statistics.median(v) for k, v in setup.items()}
    setup_ms = med["bridge"] - med["none"]
    print(f"\nrun -d in one process: --net none {med['none']:.1f} ms, bridge {med['bridge']:.1f} ms "
          f"-> network setup {setup_ms:.1f} ms per container (aim < 30 ms)")
    print(f"  first container of a state root (makes the bridge): {med['first']:.1f} ms "
          f"(+{med['first'] - med['none']:.1f} ms)")
    one = {k: statistics.median(v) for k, v in oneshot.items()}
    print(f"one-shot `cshell run -d`: none {one['none']:.1f} ms, bridge {one['bridge']:.1f} ms "
          f"(+{one['bridge'] - one['none']:.1f} ms, netlink import included)")
    return {"traffic": traffic, "overhead_pct": overhead, "setup_ms": setup_ms, "setup_medians": med,
            "oneshot_medians": one, "aims": {"overhead_under_20pct": overhead["request"] < 20,
                                             "setup_under_30ms": setup_ms < 30}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=20, help="containers per setup row (default 20)")
    ap.add_argument("--count", type=int, default=2000, help="round trips per RTT round (default 2000)")
    ap.add_argument("--json", help="write the results here too")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_network: needs root (namespaces, veths, iptables)", file=sys.stderr)
        return 1
    root = Path(tempfile.mkdtemp(prefix="cshell-benchnet-", dir="/tmp"))
    try:
        cshell(root, "image", "bootstrap", "busybox")
        traffic = measure_traffic(root, args.count)
        setup = setup_samples(root, args.runs)
        oneshot = oneshot_samples(root, max(args.runs // 2, 5))
        result = report(traffic, setup, oneshot)
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=1))
        return 0 if all(result["aims"].values()) else 1
    finally:
        subprocess.run([str(CSHELL), "--root", str(root), "rm", "-f",
                        *cshell(root, "ps", "-aq").split()], capture_output=True, check=False)
        subprocess.run(["rm", "-rf", str(root)], check=False)


if __name__ == "__main__":
    sys.exit(main())
