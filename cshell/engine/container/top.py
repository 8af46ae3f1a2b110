"""docker top: the host's `ps`, kept to the container's processes, with their PIDs inside it.

Docker runs the host's ``ps`` (``-ef`` unless told otherwise) and keeps the rows
whose PID is in the container's cgroup. cshell does the same and adds one
column after PID: the same process's number in the container's own pid
namespace, the last field of ``NSpid:`` in /proc/PID/status. The two numbers
side by side are the pid namespace: one process, two names.
"""

from __future__ import annotations

import subprocess

from cshell.engine import trace
from cshell.engine.limits import cgroups
from cshell.errors import RuntimeFailure
from cshell.record import record

CTR_PID = "CTR PID"


@record
class Top:
    titles: list[str]
    rows: list[list[str]]


def top(cid: str, ps_args: list[str]) -> Top:
    """The container's processes as ``ps PS_ARGS`` shows them, plus the CTR PID column."""
    pids = cgroups.processes(cid)
    args = ps_args or ["-ef"]
    output = _ps([*args, "-q", ",".join(map(str, pids))]) if pids else None
    if output is None:  # some options (f, ...) refuse -q: docker retries without it
        output = _ps(args, fail=True)
    return _with_ctr_pids(parse(output or "", set(pids)))


def _ps(args: list[str], fail: bool = False) -> str | None:
    trace.step(f"ps {' '.join(args)}  # the host's ps; rows of the container's cgroup kept")
    try:
        done = subprocess.run(["ps", *args], capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RuntimeFailure(f"ps: {e}", "install procps (the `ps` command) on the host") from None
    if done.returncode == 0:
        return done.stdout
    if not fail:
        return None
    first = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[0]
    raise RuntimeFailure(f"ps: {first}", "`man ps` lists the options; the default is -ef")


def parse(output: str, pids: set[int]) -> Top:
    """docker's parsePSOutput: the title line, then the rows whose PID is the container's (a
    thread row, PID "-", goes with the process above it); extra fields join the last column."""
    lines = output.split("\n")
    titles = lines[0].split()
    if "PID" not in titles:
        raise RuntimeFailure("couldn't find PID field in ps output", "keep pid among the -o columns: top CTR -o pid,comm")
    at = titles.index("PID")
    rows: list[list[str]] = []
    keep_threads = False
    for line in lines[1:]:
        fields = line.split()
        if not fields:
            continue
        if len(fields) > len(titles):
            fields = [*fields[:len(titles) - 1], " ".join(fields[len(titles) - 1:])]
        if fields[at] == "-":
            if keep_threads:
                rows.append(fields)
            continue
        if not fields[at].isdigit():
            raise RuntimeFailure(f"unexpected pid {fields[at]!r} in ps output", "keep pid among the -o columns")
        keep_threads = int(fields[at]) in pids
        if keep_threads:
            rows.append(fields)
    return Top(titles, rows)


def _with_ctr_pids(table: Top) -> Top:
    at = table.titles.index("PID")
    titles = [*table.titles[:at + 1], CTR_PID, *table.titles[at + 1:]]
    rows = [[*row[:at + 1], _ns_pid(row[at]), *row[at + 1:]] for row in table.rows]
    return Top(titles, rows)


def _ns_pid(pid: str) -> str:
    """The innermost number of NSpid: the process's PID in the container's pid namespace."""
    if not pid.isdigit():
        return "-"
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return line.split()[-1]
    except OSError:  # it ended between ps and now
        pass
    return "-"
