"""Linux capabilities: root's power cut into ~40 pieces, and the set a container keeps.

Root inside a container is still uid 0 to the kernel. What stops it from
loading modules, remounting things or rebooting the host is that it lacks the
*capabilities* for those acts. Each process has five sets (see capabilities(7)):

- bounding: the most it can ever get, even by exec'ing a setuid-root binary;
- permitted / effective: what it may use / is using now;
- inheritable / ambient: what survives execve for a non-root program.

cshell gives a container Docker's default set (daemon/pkg/oci/caps/defaults.go),
in bounding, permitted and effective; inheritable and ambient stay empty (Docker
stopped filling inheritable after CVE-2022-24769). A non-root user (`-u 1000`)
keeps the bounding set but starts with empty permitted and effective sets, so it
has no capability unless it execs a setuid-root program (which
`--security-opt no-new-privileges` forbids). `--cap-add`/`--cap-drop` follow
Docker's TweakCapabilities, `--privileged` gives them all.
"""

from __future__ import annotations

from cshell.errors import UsageError

# Numbers from linux/capability.h.
CAPS: dict[str, int] = {
    "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3,
    "CAP_FSETID": 4, "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18, "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25, "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27,
    "CAP_LEASE": 28, "CAP_AUDIT_WRITE": 29, "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32, "CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36, "CAP_AUDIT_READ": 37, "CAP_PERFMON": 38, "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}
NAMES = {v: k for k, v in CAPS.items()}

# Docker's 14, in Docker's order.
DEFAULT = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
           "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
           "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE")
ALL = "ALL"


def last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except (OSError, ValueError):
        return max(CAPS.values())


def all_caps() -> list[str]:
    """Every capability this kernel knows (Docker's GetAllCapabilities)."""
    top = last_cap()
    return [name for name, bit in CAPS.items() if bit <= top]


def normalize(name: str) -> str:
    """'net_admin', 'NET_ADMIN' and 'CAP_NET_ADMIN' are the same; 'all' is ALL."""
    upper = name.strip().upper()
    if upper == ALL:
        return ALL
    full = upper if upper.startswith("CAP_") else "CAP_" + upper
    if full not in CAPS:
        raise UsageError(f"unknown capability: {name!r}",
                         "names as in capabilities(7), with or without CAP_: e.g. --cap-add NET_ADMIN; "
                         "or ALL")
    return full


def _normalize_all(names: list[str]) -> list[str]:
    out: list[str] = []
    for item in names:
        for part in item.split(","):  # docker takes repeated flags; a comma list is a convenience
            if part.strip():
                n = normalize(part)
                if n not in out:
                    out.append(n)
    return out


def effective_set(add: list[str], drop: list[str], privileged: bool) -> list[str]:
    """Docker's TweakCapabilities: the capability names the container gets."""
    cap_add, cap_drop = _normalize_all(add), _normalize_all(drop)  # checked even when privileged
    if privileged:
        return all_caps()
    if not cap_add and not cap_drop:
        return list(DEFAULT)
    if ALL in cap_add:  # everything, minus what is dropped
        return [c for c in all_caps() if c not in cap_drop]
    if ALL in cap_drop:  # nothing, plus what is added
        return [c for c in cap_add if c != ALL]
    return [c for c in DEFAULT if c not in cap_drop] + [c for c in cap_add if c not in DEFAULT]


def mask(names: list[str]) -> int:
    bits = 0
    for name in names:
        bits |= 1 << CAPS[name]
    return bits


def names_of(bits: int) -> list[str]:
    return [NAMES[b] for b in sorted(NAMES) if bits >> b & 1]


def short(names: list[str]) -> str:
    """CHOWN,DAC_OVERRIDE,… for an explain line."""
    return ",".join(n.removeprefix("CAP_") for n in names) or "none"
