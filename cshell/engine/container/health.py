"""HEALTHCHECK: the shim probes its container, as dockerd does.

The image's ``Healthcheck`` (or `run --health-*`) is copied into the
container's config when it is created. While the container runs, a thread
of its shim sleeps ``Interval`` and then runs the test inside the container,
exactly as `exec` would (setns into its namespaces, its cgroup, its user and
confinement), killing it after ``Timeout``. Exit 0 is healthy; anything
else, or a timeout, adds one to the failing streak, and ``Retries`` failures
in a row make the container unhealthy. Failures during ``StartPeriod`` do not
count, until the first success. The result goes to ``health.json`` in the
container's directory (its own file: the shim's state.json writes cannot
clobber it): Status, FailingStreak and the last five probes, docker's
``State.Health``. `ps` shows it after ``Up``.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
import time
from pathlib import Path
from typing import Any

from cshell.engine.container.init import ProcessSpec
from cshell.engine.image.imageconfig import duration
from cshell.engine.kernel import namespaces
from cshell.engine.kernel.processes import StatusChannel, close_all_but
from cshell.engine.limits import cgroups
from cshell.engine.state import now, read_json, write_json
from cshell.errors import UsageError

SECOND = 1_000_000_000  # docker's durations are nanoseconds
DEFAULTS = {"Interval": 30 * SECOND, "Timeout": 30 * SECOND, "StartPeriod": 0, "Retries": 3}
LOG_KEEP = 5  # docker keeps the last five probes
OUTPUT_MAX = 4096  # and at most 4 KiB of each one's output
FILE = "health.json"


def config_for(image_settings: dict[str, Any], overrides: dict[str, Any] | None,
               disabled: bool = False) -> dict[str, Any] | None:
    """The container's healthcheck: the image's, with `run --health-*` on top; None: no checks."""
    if disabled:
        return None
    hc = {**(image_settings.get("Healthcheck") or {}), **(overrides or {})}
    test = hc.get("Test") or []
    if not test or test[0] == "NONE":
        return None
    test_argv(test)  # an image made elsewhere may carry a test docker would refuse: refused now
    return hc


def from_flags(cmd: str | None, interval: str | None, timeout: str | None, start_period: str | None,
               retries: str | None) -> dict[str, Any] | None:
    """`run --health-cmd ... --health-interval 5s`: docker's Healthcheck keys (None: no flag given)."""
    out: dict[str, Any] = {}
    if cmd is not None:
        if not cmd.strip():
            raise UsageError("--health-cmd needs a command", "e.g. --health-cmd 'wget -q -O- localhost/'")
        out["Test"] = ["CMD-SHELL", cmd]
    for flag, key, value in (("health-interval", "Interval", interval), ("health-timeout", "Timeout", timeout),
                             ("health-start-period", "StartPeriod", start_period)):
        if value is not None:
            out[key] = duration(value, flag)
    if retries is not None:
        if not retries.isdigit():
            raise UsageError(f"--health-retries must be a number, not {retries!r}", "e.g. --health-retries 3")
        out["Retries"] = int(retries)
    return out or None


def test_argv(test: list[str]) -> list[str]:
    """["CMD", argv...] runs argv; ["CMD-SHELL", text] runs it with /bin/sh -c."""
    kind, rest = test[0], list(test[1:])
    if kind == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(rest)]
    if kind == "CMD" and rest:
        return rest
    raise UsageError(f"healthcheck test {test!r} is not one docker knows", 'e.g. ["CMD-SHELL", "true"]')


def setting(hc: dict[str, Any], key: str) -> float:
    """Seconds (or a count, for Retries), docker's default where unset or 0."""
    value = hc.get(key) or DEFAULTS[key]
    return value if key == "Retries" else value / SECOND


def read(directory: Path) -> dict[str, Any] | None:
    with contextlib.suppress(OSError, ValueError):
        return read_json(directory / FILE)
    return None


# -- in the shim --------------------------------------------------------------------------------------


class Checker(threading.Thread):
    """The shim's probe loop for one running container."""

    def __init__(self, container: Any) -> None:  # a containers.Container (no import cycle)
        super().__init__(name="healthcheck", daemon=True)
        self.container, self.pid = container, 0
        self.hc: dict[str, Any] = container.config["healthcheck"]
        self.argv, self.interval = test_argv(self.hc["Test"]), setting(self.hc, "Interval")
        self.go, self.stopping = threading.Event(), threading.Event()
        self.health: dict[str, Any] = {"Status": "starting", "FailingStreak": 0, "Log": []}

    def begin(self, pid: int) -> None:
        """PID 1 runs: start probing it."""
        self.pid = pid
        self.go.set()

    def cancel(self) -> None:
        """The container never started: no probe, nothing written."""
        self.stopping.set()
        self.go.set()

    def run(self) -> None:
        self.go.wait()
        if self.stopping.is_set():
            return
        started = time.monotonic()
        self.save()
        timeout = setting(self.hc, "Timeout")
        while not self.stopping.wait(self.interval):
            if cgroups.is_frozen(self.container.id):
                continue  # paused: docker's health monitor waits too (a probe would freeze with it)
            entry = self.probe(timeout)
            if self.stopping.is_set():
                return  # the container ended during the probe: its failure says nothing
            self.record(entry, in_start_period=time.monotonic() - started < setting(self.hc, "StartPeriod"))

    def record(self, entry: dict[str, Any], in_start_period: bool) -> None:
        h = self.health
        h["Log"] = [*h["Log"], entry][-LOG_KEEP:]
        if entry["ExitCode"] == 0:
            h["Status"], h["FailingStreak"] = "healthy", 0
        elif not (h["Status"] == "starting" and in_start_period):  # docker: those failures do not count
            h["FailingStreak"] += 1
            if h["FailingStreak"] >= setting(self.hc, "Retries"):
                h["Status"] = "unhealthy"
        self.save()

    def stop(self) -> None:
        """The container ended: docker reports a stopped container's health as unhealthy."""
        self.stopping.set()
        self.join(timeout=2)
        self.health["Status"] = "unhealthy"
        self.save()

    def save(self) -> None:
        with contextlib.suppress(OSError):  # `rm -f` or --rm may have taken the directory
            write_json(self.container.dir / FILE, self.health)

    def probe(self, timeout: float) -> dict[str, Any]:
        start = now()
        try:
            code, output = run_probe(self.container, self.pid, self.argv, timeout)
        except Exception as e:  # noqa: BLE001 - a probe that cannot run is a failed probe
            code, output = -1, f"health check could not run: {e}"
        return {"Start": start, "End": now(), "ExitCode": code, "Output": output}


def run_probe(c: Any, pid: int, argv: list[str], timeout: float) -> tuple[int, str]:
    """`exec` of argv in the container (the same join), output captured, killed after ``timeout``."""
    from cshell.engine.container.security import plan as security_plan

    spec = ProcessSpec(argv=argv, env=c.config["env"], cwd=c.config["workdir"],
                       security=security_plan(c.config, c.dir.parent.parent))
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    status_r, status_w = os.pipe2(os.O_CLOEXEC)
    null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    child = os.fork()
    if child == 0:
        _probe_child(pid, spec, c.id, null, out_w, status_w)
    for fd in (out_w, status_w, null):
        os.close(fd)
    channel = StatusChannel(status_r)
    try:
        output, timed_out = _collect(channel, out_r, time.monotonic() + timeout)
    finally:
        os.close(out_r)
        channel.close()
        os.waitpid(child, 0)
    if timed_out:
        return -1, f"Health check exceeded timeout ({_seconds(timeout)})"
    if channel.error:
        return channel.error[0], channel.error[1]
    code = channel.exit_code if channel.exit_code is not None else -1
    return code, output.decode(errors="replace")


def _probe_child(pid: int, spec: ProcessSpec, cid: str, null: int, out_w: int, status_w: int) -> None:
    """Hold nothing of the shim's (its log pipes, the attached terminal, the shell's status pipe)."""
    from cshell.engine.container.joining import _joined_child

    try:
        quiet = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(quiet, fd)
        close_all_but({0, 1, 2, null, out_w, status_w})
    except BaseException:  # noqa: BLE001 - a forked child never returns into the shim
        os._exit(126)
    _joined_child(pid, [k for k in namespaces.JOINABLE if k != "user"], spec, cid, (null, out_w, out_w), status_w)


def _collect(channel: StatusChannel, out_r: int, deadline: float) -> tuple[bytes, bool]:
    """Read output and status until the probe ended or the deadline passed (then kill it)."""
    output, open_fds = b"", [out_r, channel.status_r]
    while open_fds:
        left = deadline - time.monotonic()
        if left <= 0:
            with contextlib.suppress(ProcessLookupError):
                if channel.pid:
                    os.kill(channel.pid, signal.SIGKILL)
            return output, True
        ready, _, _ = select.select(open_fds, [], [], left)
        for fd in ready:
            data = os.read(fd, 65536)
            if not data:
                open_fds.remove(fd)
            elif fd == out_r:
                output = (output + data)[:OUTPUT_MAX]
            else:
                channel.feed(data)
    return output, False


def _seconds(value: float) -> str:
    return f"{value:g}s"
