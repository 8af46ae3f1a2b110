"""What a container uses right now, read where `docker stats` reads it.

CPU time, memory and PIDs come from the container's cgroup files; network bytes
from /proc/PID/net/dev, which shows the counters of the container's own network
namespace; block I/O from v2's io.stat. cshell makes no blkio group on cgroup v1,
so there the bytes come from /proc/PID/io of each process in the group (what
exited processes read and wrote is no longer counted).

A percentage needs two samples: ``rates`` turns them into docker's numbers
(CPU % = container CPU time / host CPU time x CPUs, as docker computes it).
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from cshell.engine.limits import cgroups
from cshell.engine.limits.limits import group_dir
from cshell.record import record

UNLIMITED = 1 << 62  # v1 writes "no limit" as a huge number (PAGE_COUNTER_MAX pages)


@record
class Sample:
    """One reading of a container's counters (bytes and nanoseconds)."""

    cpu_ns: int  # CPU time the container's processes used since it started
    system_ns: int  # CPU time of the whole host (every CPU), from /proc/stat
    memory: int  # usage minus inactive page cache, as docker shows it
    memory_limit: int  # the limit, or the host's memory when there is none
    pids: int
    net_rx: int
    net_tx: int
    block_read: int
    block_write: int


@record
class Rates:
    """`docker stats` for one container: two samples made into its columns."""

    cpu_percent: float
    memory: int
    memory_limit: int
    memory_percent: float
    net_rx: int
    net_tx: int
    block_read: int
    block_write: int
    pids: int


def sample(cid: str, pid: int) -> Sample:
    """Read every counter once; a container that is not running reads as zeros (as in docker)."""
    if pid <= 0:
        return Sample(cpu_ns=0, system_ns=0, memory=0, memory_limit=0, pids=0, net_rx=0, net_tx=0,
                      block_read=0, block_write=0)
    v2 = cgroups.is_v2()
    memory, limit = _memory(cid, v2)
    rx, tx = _net(pid)
    read, write = _block(cid, v2)
    return Sample(cpu_ns=_cpu(cid, v2), system_ns=system_cpu_ns(), memory=memory, memory_limit=limit,
                  pids=_int(group_dir(cid, "pids") / "pids.current"), net_rx=rx, net_tx=tx,
                  block_read=read, block_write=write)


def rates(before: Sample, after: Sample) -> Rates:
    cpus = os.cpu_count() or 1
    system = after.system_ns - before.system_ns
    cpu = (after.cpu_ns - before.cpu_ns) / system * cpus * 100 if system > 0 else 0.0
    return Rates(cpu_percent=max(cpu, 0.0), memory=after.memory, memory_limit=after.memory_limit,
                 memory_percent=after.memory / after.memory_limit * 100 if after.memory_limit else 0.0,
                 net_rx=after.net_rx, net_tx=after.net_tx, block_read=after.block_read,
                 block_write=after.block_write, pids=after.pids)


def system_cpu_ns() -> int:
    """Every CPU's time since boot (the first line of /proc/stat), in nanoseconds."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:8]  # user nice system idle iowait irq softirq, as docker
    return sum(int(v) for v in fields) * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def host_memory() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def _int(path: Path) -> int:
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text().split()[0])
    return 0


def _stat(path: Path) -> dict[str, int]:
    """A 'key value' file (memory.stat, cpu.stat) as numbers."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if value.strip().isdigit():
                out[key] = int(value)
    return out


def _cpu(cid: str, v2: bool) -> int:
    if v2:
        return _stat(group_dir(cid, "cpu") / "cpu.stat").get("usage_usec", 0) * 1000
    return _int(group_dir(cid, "cpuacct") / "cpuacct.usage")


def _memory(cid: str, v2: bool) -> tuple[int, int]:
    d = group_dir(cid, "memory")
    if v2:
        used, cache = _int(d / "memory.current"), _stat(d / "memory.stat").get("inactive_file", 0)
        text = ""
        with contextlib.suppress(OSError):
            text = (d / "memory.max").read_text().strip()
        limit = int(text) if text.isdigit() else 0
    else:
        used, cache = _int(d / "memory.usage_in_bytes"), _stat(d / "memory.stat").get("total_inactive_file", 0)
        limit = _int(d / "memory.limit_in_bytes")
    host = host_memory()
    if not limit or limit >= UNLIMITED or limit > host:
        limit = host
    return max(used - cache, 0), limit


def _net(pid: int) -> tuple[int, int]:
    """Received and sent bytes of every interface but lo, in the container's network namespace."""
    rx = tx = 0
    if pid <= 0:
        return 0, 0
    with contextlib.suppress(OSError), open(f"/proc/{pid}/net/dev") as f:
        for line in f.readlines()[2:]:
            name, _, counters = line.partition(":")
            fields = counters.split()
            if name.strip() != "lo" and len(fields) >= 9:
                rx, tx = rx + int(fields[0]), tx + int(fields[8])
    return rx, tx


def _block(cid: str, v2: bool) -> tuple[int, int]:
    if v2:
        read = write = 0
        with contextlib.suppress(OSError):
            for line in (group_dir(cid, "io") / "io.stat").read_text().splitlines():
                fields = dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
                read += int(fields.get("rbytes", 0))
                write += int(fields.get("wbytes", 0))
        return read, write
    read = write = 0
    for pid in cgroups.processes(cid):
        io = _stat_colon(Path(f"/proc/{pid}/io"))
        read, write = read + io.get("read_bytes", 0), write + io.get("write_bytes", 0)
    return read, write


def _stat_colon(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            key, _, value = line.partition(":")
            if value.strip().isdigit():
                out[key] = int(value)
    return out


def measure(targets: list[tuple[str, int]], interval: float = 1.0,
            previous: dict[str, Sample] | None = None) -> tuple[dict[str, Rates], dict[str, Sample]]:
    """Rates for each (container id, pid) over ``interval`` seconds, or since ``previous``
    samples (a refreshing view passes the last ones back and waits itself)."""
    if previous is None:
        previous = {cid: sample(cid, pid) for cid, pid in targets}
        time.sleep(interval)
    now = {cid: sample(cid, pid) for cid, pid in targets}
    return {cid: rates(previous.get(cid, now[cid]), now[cid]) for cid, _ in targets}, now
