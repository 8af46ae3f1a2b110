"""docker run --restart: no, on-failure[:N], always, unless-stopped, carried out by the shim.

When PID 1 exits, its shim releases what the container held and records the
exit as usual; then, if the policy asks for it and nobody stopped the container
(stop, kill, rm), it waits (docker's backoff: 100 ms, doubled at each restart in
a row, at most a minute), counts the restart in state.json (.RestartCount) and
starts the container again: a new shim, a new PID 1 in new namespaces, the same
writable layer. `always` and `unless-stopped` differ only when the daemon
restarts, which cshell has not: here they behave the same.
"""

from __future__ import annotations

from typing import Any

from cshell.errors import UsageError

POLICIES = ("no", "on-failure", "always", "unless-stopped")
MAX_DELAY = 60.0


def parse(spec: str | None) -> dict[str, Any]:
    """docker's HostConfig.RestartPolicy from the flag: {"Name": ..., "MaximumRetryCount": N}."""
    name, colon, count = (spec or "no").partition(":")
    if name not in POLICIES:
        raise UsageError(f"invalid restart policy {spec!r}", "one of: no, on-failure[:N], always, unless-stopped")
    if colon and name != "on-failure":
        raise UsageError(f"invalid restart policy {spec!r}: only on-failure takes a maximum retry count",
                         "e.g. --restart on-failure:3")
    if colon and not count.isdigit():
        raise UsageError(f"invalid restart policy {spec!r}: the retry count is not a number", "e.g. --restart on-failure:3")
    return {"Name": name, "MaximumRetryCount": int(count or 0)}


def wanted(policy: dict[str, Any], exit_code: int, restarts: int, stopped_by_user: bool) -> bool:
    """Does the policy restart a container that exited with EXIT_CODE after RESTARTS restarts?"""
    name = policy.get("Name") or "no"
    if stopped_by_user or name == "no":
        return False
    if name == "on-failure":
        most = int(policy.get("MaximumRetryCount") or 0)
        return exit_code != 0 and (most == 0 or restarts < most)
    return True


def delay(restarts_in_a_row: int) -> float:
    """docker's backoff: 100 ms, doubled after each restart, at most a minute."""
    return min(0.1 * 2 ** restarts_in_a_row, MAX_DELAY)
