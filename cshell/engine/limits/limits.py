"""Resource limits: docker's flags -> cgroup files (v1 and v2), and what the files say.

``parse`` checks every value before anything is made (docker's units and ranges);
``files`` turns the limits into (controller, file, value) writes in a safe order;
``write`` does them with one explain line each; ``show`` reads the files back,
with usage, for `cgroup show`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from pathlib import Path
from typing import Any

from cshell.engine import trace
from cshell.engine.limits import cgroups
from cshell.errors import RuntimeFailure, UsageError
from cshell.record import record

PERIOD = 100000  # docker's CFS period, microseconds
MIN_MEMORY = 6 * 1024 * 1024  # docker refuses less ("Minimum memory limit allowed is 6MB")
UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
RAW_NAME = r"[a-z][a-z0-9_]*\.[a-z0-9_.]+"  # a cgroup file name (re caches it when used)
# friendly key (run flag without --) -> RunOptions field
KEYS = {"memory": "memory", "memory-swap": "memory_swap", "cpus": "cpus", "cpu": "cpus",
        "cpu-shares": "cpu_shares", "cpuset-cpus": "cpuset_cpus", "cpuset": "cpuset_cpus",
        "pids": "pids_limit", "pids-limit": "pids_limit"}
V1_FILES = {"memory": ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "memory.soft_limit_in_bytes"),
            "cpu": ("cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.shares"),
            "cpuset": ("cpuset.cpus", "cpuset.mems"), "pids": ("pids.max",)}
V2_FILES = ("memory.max", "memory.swap.max", "cpu.max", "cpu.weight", "cpuset.cpus", "pids.max")
V1_USAGE = ("memory.usage_in_bytes", "memory.max_usage_in_bytes", "memory.failcnt", "cpu.stat",
            "cpuacct.usage", "pids.current", "pids.peak", "pids.events", "memory.oom_control")
V2_USAGE = ("memory.current", "memory.peak", "memory.events", "cpu.stat", "pids.current", "pids.peak",
            "pids.events")


@record
class Write:
    controller: str  # v1 hierarchy name ("" on v2)
    file: str
    value: str


def parse_size(text: str, what: str) -> int:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([bkmgt]?)b?", text.strip().lower())
    if not m:
        raise UsageError(f"invalid size {text!r} for {what}",
                         "a number with an optional unit b, k, m or g, e.g. 64m (docker's units)")
    return int(float(m.group(1)) * UNITS[m.group(2)])


def _int(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"invalid {what} {text!r}", f"{what} is a whole number") from None


def parse_cpuset(text: str) -> set[int]:
    cpus: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            raise UsageError(f"invalid --cpuset-cpus {text!r}", "a list like 0, 0-1 or 0,2")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus


def available_cpus() -> str:
    """What a new group may use: the root cpuset's CPUs (v1 cpuset.cpus, v2 cpuset.cpus.effective)."""
    for path in (cgroups.CGROUP_ROOT / "cpuset.cpus.effective", cgroups.CGROUP_ROOT / "cpuset" / "cpuset.cpus"):
        with contextlib.suppress(OSError):
            return path.read_text().strip()
    return f"0-{(os.cpu_count() or 1) - 1}"


def parse(given: dict[str, str | None]) -> dict[str, Any]:
    """Docker's flag values -> checked limits {field: value}; nothing is touched."""
    out: dict[str, Any] = {}
    if given.get("memory"):
        out["memory"] = parse_size(given["memory"], "--memory")
        if out["memory"] < MIN_MEMORY:
            raise UsageError(f"--memory {given['memory']} is below the minimum memory limit of 6m",
                             "give at least 6m (docker's minimum; a smaller group could not even start)")
    if given.get("memory_swap"):
        _parse_swap(given["memory_swap"], out)
    if given.get("cpus"):
        out["cpus"] = _parse_cpus(given["cpus"])
    if given.get("cpu_shares"):
        out["cpu_shares"] = _int(given["cpu_shares"], "--cpu-shares")
        if not 2 <= out["cpu_shares"] <= 262144:
            raise UsageError(f"--cpu-shares {out['cpu_shares']} is out of range",
                             "from 2 to 262144 (1024 is the default weight)")
    if given.get("cpuset_cpus"):
        _check_cpuset(given["cpuset_cpus"])
        out["cpuset_cpus"] = given["cpuset_cpus"].strip()
    if given.get("pids_limit"):
        n = _int(given["pids_limit"], "--pids-limit")
        if n < -1:
            raise UsageError(f"--pids-limit {n} is negative", "a positive number of processes, or -1 for no limit")
        out["pids_limit"] = n
    return out


def _parse_swap(text: str, out: dict[str, Any]) -> None:
    if "memory" not in out:
        raise UsageError("--memory-swap needs --memory", "it is memory plus swap: give --memory too, e.g. --memory 64m")
    swap = -1 if text.strip() == "-1" else parse_size(text, "--memory-swap")
    if swap != -1 and swap < out["memory"]:
        raise UsageError("--memory-swap is smaller than --memory",
                         "--memory-swap is memory plus swap: at least --memory, or -1 for unlimited swap")
    out["memory_swap"] = swap


def _parse_cpus(text: str) -> float:
    try:
        cpus = float(text)
    except ValueError:
        raise UsageError(f"invalid --cpus {text!r}", "a number of CPUs, e.g. 0.5 or 1.5") from None
    ncpu = os.cpu_count() or 1
    if not 0.01 <= cpus <= ncpu:
        raise UsageError(f"--cpus {text}: the range of CPUs is from 0.01 to {ncpu}",
                         f"this machine has {ncpu} CPUs; 0.5 means half of one")
    return cpus


def _check_cpuset(text: str) -> None:
    have = available_cpus()
    missing = parse_cpuset(text) - parse_cpuset(have)
    if missing:
        raise UsageError(f"requested CPUs are not available - requested {text}, available: {have}",
                         f"choose among {have} (nproc says how many CPUs there are)")


def weight(shares: int) -> int:
    """docker/runc's cpu.shares -> cpu.weight conversion (v2)."""
    return 1 + ((shares - 2) * 9999) // 262142


def files(limits: dict[str, Any], v2: bool) -> list[Write]:
    """The writes, in an order the kernel accepts (memory before memory+swap).

    Without --memory-swap, docker allows as much swap as memory (memory+swap = 2 x memory).
    """
    if "memory" in limits and "memory_swap" not in limits:
        limits = {**limits, "memory_swap": 2 * limits["memory"]}
    return _files_v2(limits) if v2 else _files_v1(limits)


def _files_v1(lim: dict[str, Any]) -> list[Write]:
    out = []
    if "memory" in lim:
        out.append(Write("memory", "memory.limit_in_bytes", str(lim["memory"])))
        swap = lim.get("memory_swap")
        if swap is not None and (cgroups.CGROUP_ROOT / "memory" / "memory.memsw.limit_in_bytes").exists():
            out.append(Write("memory", "memory.memsw.limit_in_bytes", str(swap)))
    if "cpus" in lim:
        out += [Write("cpu", "cpu.cfs_period_us", str(PERIOD)),
                Write("cpu", "cpu.cfs_quota_us", str(round(lim["cpus"] * PERIOD)))]
    if "cpu_shares" in lim:
        out.append(Write("cpu", "cpu.shares", str(lim["cpu_shares"])))
    if "cpuset_cpus" in lim:
        out.append(Write("cpuset", "cpuset.cpus", lim["cpuset_cpus"]))
    if "pids_limit" in lim:
        out.append(Write("pids", "pids.max", str(lim["pids_limit"]) if lim["pids_limit"] > 0 else "max"))
    return out


def _files_v2(lim: dict[str, Any]) -> list[Write]:
    out = []
    if "memory" in lim:
        out.append(Write("", "memory.max", str(lim["memory"])))
        swap = lim.get("memory_swap")
        if swap is not None:
            out.append(Write("", "memory.swap.max", "max" if swap == -1 else str(swap - lim["memory"])))
    if "cpus" in lim:
        out.append(Write("", "cpu.max", f"{round(lim['cpus'] * PERIOD)} {PERIOD}"))
    if "cpu_shares" in lim:
        out.append(Write("", "cpu.weight", str(weight(lim["cpu_shares"]))))
    if "cpuset_cpus" in lim:
        out.append(Write("", "cpuset.cpus", lim["cpuset_cpus"]))
    if "pids_limit" in lim:
        out.append(Write("", "pids.max", str(lim["pids_limit"]) if lim["pids_limit"] > 0 else "max"))
    return out


def group_dir(cid: str, controller: str) -> Path:
    if cgroups.is_v2():
        return cgroups.container_dirs(cid)[0]
    return cgroups.CGROUP_ROOT / controller / cgroups.GROUP / cid


def write_file(path: Path, value: str) -> None:
    """One write, explained; the kernel's refusal becomes a one-line error naming the file."""
    trace.step(f"echo {value} > {path}")
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as e:
        hint = {errno.EINVAL: "the kernel refused the value: check its range and unit (help cgroup set)",
                errno.EBUSY: "the group's current usage is above that limit: free memory first, or choose more",
                errno.ENOENT: "this kernel has no such cgroup file"}.get(e.errno or 0, "see `cgroup show`")
        raise RuntimeFailure(f"cgroup write refused: echo {value} > {path}: {os.strerror(e.errno or 0)}",
                             hint) from None


def apply(cid: str, limits: dict[str, Any]) -> None:
    """Write the limits into the container's (just created) groups: run's flags, and
    what `cgroup set` recorded since (raw file writes last, in their order)."""
    if "cpuset_cpus" in limits and not cgroups.is_v2():
        cgroups.prepare_cpuset(group_dir(cid, "cpuset"))
    for w in files(limits, cgroups.is_v2()):
        write_file(group_dir(cid, w.controller) / w.file, w.value)
    for name, value in limits.get("raw", []):
        write_file(raw_file(cid, name), value)


def set_values(cid: str, assignments: list[str],
               recorded: dict[str, Any] | None = None) -> tuple[list[tuple[Path, str]], dict[str, Any]]:
    """`cgroup set`: KEY=VALUE with docker's keys or raw file names; checked first, then written.

    Returns the writes done and the container's limits as they now stand (``recorded``
    updated), for config.json: inspect shows them and the next start applies them again.
    """
    recorded = dict(recorded or {})
    friendly: dict[str, str | None] = {}
    raw: list[tuple[Path, str]] = []
    for item in assignments:
        key, eq, value = item.partition("=")
        if not eq or not value:
            raise UsageError(f"expected KEY=VALUE, not {item!r}", "e.g. cgroup set web memory=64m cpus=0.5 pids=100")
        if key in KEYS:
            friendly[KEYS[key]] = value
        else:
            raw.append((raw_file(cid, key), value))
    if "memory_swap" in friendly and "memory" not in friendly:
        friendly["memory"] = _current_memory(cid)
    limits = parse(friendly)
    writes = files(limits, cgroups.is_v2())
    if "memory_swap" not in friendly:  # docker update leaves the swap limit alone
        writes = [w for w in writes if w.file not in ("memory.memsw.limit_in_bytes", "memory.swap.max")]
        _check_below_memsw(cid, limits.get("memory"), recorded)
    if "cpuset_cpus" in limits and cgroups.is_v2():
        cgroups.enable_v2_cpuset(cid)  # docker update --cpuset-cpus works on any container
    targets = [(group_dir(cid, w.controller) / w.file, w.value) for w in _ordered(cid, writes)]
    for path, _ in targets:
        if not path.parent.is_dir():
            raise UsageError(f"this container has no {path.parent.parent.parent.name} group ({path.parent})",
                             "v1 makes the cpuset group only for run --cpuset-cpus: run it again with that flag")
    done = []
    for path, value in targets:
        write_file(path, value)
        done.append((path, value))
    for path, value in raw:
        write_file(path, value)
        done.append((path, value))
    return done, _merged(recorded, limits, [w.file for w in writes], [(p.name, v) for p, v in raw])


def record_values(assignments: list[str], recorded: dict[str, Any] | None = None) -> dict[str, Any]:
    """`cgroup set` on a stopped container (docker update does this too): docker's keys are
    checked and recorded only; the next start writes them. A stopped container has no
    cgroup files, so a raw file name cannot be checked and is refused."""
    friendly: dict[str, str | None] = {}
    for item in assignments:
        key, eq, value = item.partition("=")
        if not eq or not value:
            raise UsageError(f"expected KEY=VALUE, not {item!r}", "e.g. cgroup set web memory=64m cpus=0.5 pids=100")
        if key not in KEYS:
            raise UsageError(f"{key}: a raw cgroup file can only be written while the container runs",
                             f"start it first, or use docker's keys: {', '.join(sorted(KEYS))}")
        friendly[KEYS[key]] = value
    recorded = dict(recorded or {})
    if "memory_swap" in friendly and "memory" not in friendly and "memory" in recorded:
        friendly["memory"] = str(recorded["memory"])
    limits = parse(friendly)
    if "memory_swap" not in limits:
        swap = recorded.get("memory_swap") or (2 * recorded["memory"] if "memory" in recorded else None)
        if swap and swap > 0 and limits.get("memory", 0) > swap:
            raise UsageError(f"memory {limits['memory']} is above the memory+swap limit {swap}",
                             "give memory-swap too, e.g. memory=128m memory-swap=256m")
    files_changed = [w.file for w in files(limits, cgroups.is_v2())]
    return _merged(recorded, limits, files_changed, [])


def _merged(recorded: dict[str, Any], limits: dict[str, Any], friendly_files: list[str],
            raw: list[tuple[str, str]]) -> dict[str, Any]:
    """The recorded limits after a `cgroup set` (docker update's HostConfig).

    docker stores the memory+swap default (2 x memory) at create; it is frozen here
    the same way, so a later memory change leaves swap where it is, as in the kernel.
    A raw file write is kept after the docker keys (it wins at the next start), and a
    docker key written later drops the raw writes to the same files.
    """
    out = dict(recorded)
    if "memory" in out and "memory_swap" not in out:
        out["memory_swap"] = 2 * out["memory"]
    out.update(limits)
    raws = [(n, v) for n, v in out.get("raw", []) if n not in friendly_files and n not in dict(raw)]
    raws += raw
    if raws:
        out["raw"] = [list(pair) for pair in raws]
    else:
        out.pop("raw", None)
    return out


def persist(container_dir: Path, limits: dict[str, Any]) -> None:
    """Record the limits in config.json (read afresh: only "limits" changes)."""
    from cshell.engine.state import read_json, write_json

    path = container_dir / "config.json"
    try:
        config = read_json(path)
    except FileNotFoundError:
        return  # removed meanwhile (rm -f from another shell): nothing to record
    config["limits"] = limits
    write_json(path, config)


def host_config(limits: dict[str, Any]) -> dict[str, Any]:
    """docker inspect's HostConfig resource fields, from the recorded limits."""
    memory = limits.get("memory", 0)
    swap = limits.get("memory_swap", 2 * memory if memory else 0)
    out: dict[str, Any] = {
        "Memory": memory, "MemorySwap": swap, "NanoCpus": round(limits.get("cpus", 0) * 1e9),
        "CpuShares": limits.get("cpu_shares", 0), "CpuQuota": 0, "CpuPeriod": 0,
        "CpusetCpus": limits.get("cpuset_cpus", ""), "PidsLimit": limits.get("pids_limit"),
    }
    for name, value in limits.get("raw", []):  # raw files with a docker field of their own
        with contextlib.suppress(ValueError):
            if name in ("memory.max", "memory.limit_in_bytes"):
                out["Memory"] = 0 if value.strip() in ("max", "-1") else int(value)
            elif name == "pids.max":
                out["PidsLimit"] = -1 if value.strip() == "max" else int(value)
            elif name == "cpu.shares":
                out["CpuShares"] = int(value)
            elif name == "cpuset.cpus":
                out["CpusetCpus"] = value.strip()
            elif name == "cpu.cfs_quota_us":
                out["CpuQuota"] = int(value)
            elif name == "cpu.cfs_period_us":
                out["CpuPeriod"] = int(value)
            elif name == "cpu.max":
                quota, *period = value.split()
                out["CpuQuota"] = -1 if quota == "max" else int(quota)
                out["CpuPeriod"] = int(period[0]) if period else PERIOD
    return out


def _check_below_memsw(cid: str, memory: int | None, recorded: dict[str, Any]) -> None:
    """memory may not exceed memory+swap (docker update's own check, on v1 and v2 alike).

    v1 has the memory+swap limit in a file; v2 keeps swap apart (memory.swap.max), so
    the recorded limit is compared, as docker compares its HostConfig.MemorySwap.
    """
    if memory is None:
        return
    path = group_dir(cid, "memory") / "memory.memsw.limit_in_bytes"
    if not cgroups.is_v2() and path.exists():
        memsw, name = int(path.read_text()), path.name
    else:
        memsw = recorded.get("memory_swap", 2 * recorded["memory"] if "memory" in recorded else -1)
        name = "recorded --memory-swap"
    if memsw != -1 and memory > memsw:
        raise UsageError(f"memory {memory} is above the memory+swap limit {memsw} ({name})",
                         "update memory-swap at the same time, e.g. memory=128m memory-swap=256m (or -1)")


def _current_memory(cid: str) -> str:
    name = "memory.max" if cgroups.is_v2() else "memory.limit_in_bytes"
    value = (group_dir(cid, "memory") / name).read_text().strip()
    return "9223372036854771712" if value == "max" else value


def _ordered(cid: str, writes: list[Write]) -> list[Write]:
    """v1: memory+swap must stay >= memory, so raise memsw first when memory grows."""
    if cgroups.is_v2():
        return writes
    with contextlib.suppress(OSError, ValueError):
        now = int((group_dir(cid, "memory") / "memory.limit_in_bytes").read_text())
        mem = next((w for w in writes if w.file == "memory.limit_in_bytes"), None)
        if mem is not None and int(mem.value) > now:
            return sorted(writes, key=lambda w: w.file != "memory.memsw.limit_in_bytes")
    return writes


def raw_file(cid: str, name: str) -> Path:
    """A file by its kernel name, only inside the container's own group directories."""
    if not re.fullmatch(RAW_NAME, name) or "/" in name or ".." in name:
        raise UsageError(f"unknown key {name!r}",
                         f"use {', '.join(sorted(set(KEYS)))} or a cgroup file name such as pids.max")
    for d in cgroups.container_dirs(cid):
        if (d / name).is_file():
            return d / name
    other = {"memory.max": "memory.limit_in_bytes", "cpu.max": "cpu.cfs_quota_us", "cpu.weight": "cpu.shares",
             "memory.swap.max": "memory.memsw.limit_in_bytes", "memory.current": "memory.usage_in_bytes"}
    if cgroups.is_v2():  # the v1 name given: say v2's
        other = {v1: v2 for v2, v1 in other.items()} | {"cpu.cfs_period_us": "cpu.max"}
    hint = (f"this host has cgroup {'v2' if cgroups.is_v2() else 'v1'}: the file is {other[name]}"
            if name in other else "`cgroup show CTR` lists the container's cgroup files")
    raise UsageError(f"no cgroup file {name} in this container's groups", hint)


@record
class GroupView:
    path: str
    controllers: str
    limits: list[tuple[str, str]]
    usage: list[tuple[str, str]]


def show(cid: str) -> list[GroupView]:
    """Each of the container's cgroup directories, with its limit files and usage."""
    v2 = cgroups.is_v2()
    out = []
    for d in cgroups.container_dirs(cid):
        if not d.is_dir():
            continue
        controller = "" if v2 else d.parent.parent.name
        names = V2_FILES if v2 else V1_FILES.get(controller, ())
        usage_names = V2_USAGE if v2 else V1_USAGE
        limits = [(n, _read(d / n)) for n in names if (d / n).exists()]
        # v2 cpuset.cpus exists once any --cpuset-cpus delegated cpuset to cshell/; empty, it is
        # no limit (the parent's CPUs), so it is left out, as v1 has no cpuset group then
        limits = [(n, v) for n, v in limits if v or n != "cpuset.cpus"]
        out.append(GroupView(str(d), "cgroup2" if v2 else controller, limits,
                             [(n, _summary(n, _read(d / n))) for n in usage_names if (d / n).exists()]))
    return out


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError as e:
        return f"({os.strerror(e.errno or 0)})"


def _summary(name: str, text: str) -> str:
    """The interesting lines of the multi-line stat files."""
    if name == "cpu.stat":
        keep = ("nr_periods", "nr_throttled", "throttled_time", "throttled_usec", "usage_usec")
    elif name in ("memory.oom_control", "memory.events"):
        keep = ("oom", "oom_kill", "max")
    else:
        return text
    pairs = [ln.split() for ln in text.splitlines()]
    return " ".join(f"{p[0]}={p[1]}" for p in pairs if len(p) == 2 and p[0] in keep)


def oom_killed(cid: str) -> bool:
    """Did the kernel's OOM killer kill a process of the group? (v1 oom_control, v2 memory.events)."""
    name = "memory.events" if cgroups.is_v2() else "memory.oom_control"
    with contextlib.suppress(OSError):
        for line in (group_dir(cid, "memory") / name).read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value) > 0
    return False
