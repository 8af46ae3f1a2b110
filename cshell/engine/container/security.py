"""What a container may do once it runs: capabilities, seccomp, no_new_privs, user.

``settings()`` checks the run flags and gives what config.json keeps (so `start`,
`exec` and `ns join` apply the same); ``plan()`` turns that into what the child
needs (capability masks, the compiled seccomp program), made in the shell before
the fork so the container's init only makes syscalls; ``apply()`` runs in the
child, last thing before execve, in runc's order (libcontainer/init_linux.go):

1. no no_new_privs: load seccomp now, while we still hold CAP_SYS_ADMIN;
2. drop every capability not kept from the bounding set (PR_CAPBSET_DROP);
3. setgroups, setgid, setuid (the user, resolved in the container's /etc/passwd);
4. chdir into the working directory and check it is inside the container;
5. capset: root keeps the set in permitted and effective; another user gets none;
6. with no_new_privs: prctl(PR_SET_NO_NEW_PRIVS), then load seccomp;
7. execve.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cshell.engine import trace
from cshell.engine.container import users
from cshell.engine.kernel import caps as capmod
from cshell.engine.kernel import syscalls as sc
from cshell.errors import UsageError
from cshell.record import record

SECURITY_OPT_HINT = ("supported: --security-opt seccomp=unconfined, seccomp=PROFILE.json, "
                     "no-new-privileges[=true|false]")


def _parse_security_opts(opts: list[str]) -> tuple[Any, bool, list[str]]:
    """(seccomp: "default" | "unconfined" | profile dict, no_new_privs, what inspect shows)."""
    from cshell.engine.kernel import seccomp

    profile: Any = "default"
    nnp = False
    shown: list[str] = []
    for raw in opts:
        key, sep, value = raw.partition("=")
        if not sep:  # docker still accepts the old colon form: seccomp:unconfined
            key, sep, value = raw.partition(":")
        key = key.strip()
        if key == "no-new-privileges":
            if not sep:
                nnp = True
            elif value in ("true", "false"):
                nnp = value == "true"
            else:
                raise UsageError(f"invalid --security-opt {raw!r}: no-new-privileges takes true or false",
                                 SECURITY_OPT_HINT)
            shown.append(raw)
        elif key == "seccomp" and sep and value:
            if value == "unconfined":
                profile = "unconfined"
                shown.append(raw)
            elif value == "builtin":
                profile = "default"
                shown.append(raw)
            else:
                profile = seccomp.load_file(value)
                shown.append("seccomp=" + _compact(profile))  # docker's CLI sends the file's content
        elif key in ("apparmor", "label", "systempaths", "mask", "unmask"):
            raise UsageError(f"--security-opt {key}=… is not supported by cshell",
                             "cshell has no AppArmor or SELinux; " + SECURITY_OPT_HINT)
        else:
            raise UsageError(f"invalid --security-opt {raw!r}", SECURITY_OPT_HINT)
    return profile, nnp, shown


def _compact(obj: Any) -> str:
    import json

    return json.dumps(obj, separators=(",", ":"))


def settings(cap_add: list[str], cap_drop: list[str], privileged: bool, security_opt: list[str],
             user: str | None) -> dict[str, Any]:
    """The run flags, checked, as config.json keeps them."""
    caps = capmod.effective_set(cap_add, cap_drop, privileged)
    profile, nnp, shown = _parse_security_opts(security_opt)
    if privileged:
        profile = "unconfined"  # docker: --privileged runs without a seccomp filter
    if user:
        users.check_spec(user)
    if isinstance(profile, dict):
        from cshell.engine.kernel import seccomp

        seccomp.compile_bpf(profile, caps)  # a profile libseccomp refuses is refused now, not at start
    return {"caps": caps, "cap_add": list(cap_add), "cap_drop": list(cap_drop), "privileged": privileged,
            "seccomp": profile, "no_new_privs": nnp, "security_opt": shown}


def inspect_host_config(sec: dict[str, Any]) -> dict[str, Any]:
    return {"CapAdd": sec.get("cap_add") or None, "CapDrop": sec.get("cap_drop") or None,
            "Privileged": bool(sec.get("privileged")), "SecurityOpt": sec.get("security_opt") or None}


@record
class SecurityPlan:
    """What the container's process applies before execve (made in the shell, used in the child)."""

    caps: int = 0  # bounding set; permitted and effective too, for uid 0
    caps_text: str = ""
    user: str = ""  # -u, else the image's USER; "" is root
    no_new_privs: bool = False
    bpf: bytes | None = None
    rules: int = 0
    unconfined: bool = True  # no bounding drop either: a plan for a host process (`ns join host`)


def plan(config: dict[str, Any], state_root: Path | None) -> SecurityPlan:
    """From a container's config.json (containers made before this existed get the defaults)."""
    from cshell.engine.kernel import seccomp

    sec = config.get("security") or {}
    names = [c for c in sec.get("caps", capmod.DEFAULT) if c in capmod.CAPS]
    profile = sec.get("seccomp", "default")
    bpf, rules = None, 0
    if profile != "unconfined":
        profile = seccomp.default_profile() if profile == "default" else profile
        bpf, rules = seccomp.filter_for(profile, names, state_root / "seccomp" if state_root else None)
    return SecurityPlan(caps=capmod.mask(names), caps_text=capmod.short(names), user=config.get("user") or "",
                        no_new_privs=bool(sec.get("no_new_privs")), bpf=bpf, rules=rules, unconfined=False)


# -- in the child ------------------------------------------------------------------------------------


def _bounding() -> int:
    have = 0
    for bit in range(capmod.last_cap() + 1):
        try:
            if sc.prctl_get(sc.PR_CAPBSET_READ, bit):
                have |= 1 << bit
        except OSError:
            break
    return have


def apply(p: SecurityPlan, env: dict[str, str], enter_cwd: Callable[[], None]) -> None:
    """Steps 1-6 of the module's list; raises OSError (setup) or LookupError (unknown user).

    Runs after pivot_root or setns: the host's files (cshell's own modules too) are out
    of reach, so everything used here is imported at the top of the module.
    """
    if p.unconfined:
        enter_cwd()
        return
    who = users.resolve(p.user)
    if "HOME" not in env:
        env["HOME"] = who.home
    if p.bpf is not None and not p.no_new_privs:
        trace.step(f"seccomp(SECCOMP_SET_MODE_FILTER, {p.rules} rules, {len(p.bpf) // 8} BPF instructions)"
                   "  # before the capabilities go: loading needs CAP_SYS_ADMIN without no_new_privs")
        sc.seccomp_set_filter(p.bpf)
    bounding = _bounding()
    keep = p.caps & bounding  # a capability this process lacks cannot be handed on
    trace.step(f"prctl(PR_CAPBSET_DROP) x{bin(bounding & ~keep).count('1')}  # bounding set: {p.caps_text}")
    for bit in range(capmod.last_cap() + 1):
        if bounding >> bit & 1 and not keep >> bit & 1:
            sc.prctl_args(sc.PR_CAPBSET_DROP, bit)
    trace.step(f"setgroups({who.groups}); setresgid({who.gid}); setresuid({who.uid})")
    os.setgroups(who.groups)
    os.setresgid(who.gid, who.gid, who.gid)
    os.setresuid(who.uid, who.uid, who.uid)  # a non-root uid loses permitted and effective here
    enter_cwd()
    mine = keep if who.uid == 0 else 0
    trace.step(f"capset(effective=permitted={capmod.short(capmod.names_of(mine))}, inheritable=none); "
               "ambient cleared")
    sc.capset(mine, mine, 0)
    sc.prctl_args(sc.PR_CAP_AMBIENT, sc.PR_CAP_AMBIENT_CLEAR_ALL)
    if p.no_new_privs:
        trace.step("prctl(PR_SET_NO_NEW_PRIVS, 1)  # execve can no longer raise privileges (setuid bits, file caps)")
        sc.prctl_args(sc.PR_SET_NO_NEW_PRIVS, 1)
        if p.bpf is not None:
            trace.step(f"seccomp(SECCOMP_SET_MODE_FILTER, {p.rules} rules, {len(p.bpf) // 8} BPF instructions)")
            sc.seccomp_set_filter(p.bpf)
    elif p.bpf is None:
        trace.step("no seccomp filter (unconfined)")
