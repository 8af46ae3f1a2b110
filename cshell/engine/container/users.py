"""`-u USER[:GROUP]`: which uid, gid and supplementary groups the command runs with.

Names are looked up in the CONTAINER's /etc/passwd and /etc/group, never the
host's. The lookup runs in the container's own process after pivot_root (or,
for exec, after setns into its mount namespace), so '/etc/passwd' can only mean
the container's file: a symlink in the image pointing at '../../etc/shadow'
stays inside the container root. Docker's rules (moby/sys/user GetExecUser):

- a name must exist in /etc/passwd; a number need not (then the group is 0);
- without `:GROUP` the group is the passwd entry's, and every group of
  /etc/group that lists the user becomes a supplementary group;
- with `:GROUP` (name or number) that is the only group;
- HOME comes from the passwd entry when the environment has none (runc does this).
"""

from __future__ import annotations

from cshell.errors import UsageError
from cshell.record import factory, record

MAX_ID = 2**31 - 1


@record
class ExecUser:
    uid: int = 0
    gid: int = 0
    groups: list[int] = factory(list)
    home: str = "/"


def check_spec(spec: str) -> None:
    """Syntax only (names are resolved inside the container when it starts)."""
    user, sep, group = spec.partition(":")
    if not user or (sep and not group) or ":" in group:
        raise UsageError(f"invalid user {spec!r}", "use -u NAME, -u UID, -u NAME:GROUP or -u UID:GID")
    for part in (user, group):
        if part.isdigit() and int(part) > MAX_ID:
            raise UsageError(f"invalid user {spec!r}: {part} is too large", f"ids go up to {MAX_ID}")


def _entries(path: str) -> list[list[str]]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return [line.rstrip("\n").split(":") for line in f if line.strip() and not line.startswith("#")]
    except (FileNotFoundError, NotADirectoryError):
        return []


def resolve(spec: str) -> ExecUser:
    """Resolve against /etc/passwd and /etc/group as this process sees them (the container's)."""
    user_arg, _, group_arg = spec.partition(":")
    out = ExecUser()
    matched_name = ""
    passwd = [e for e in _entries("/etc/passwd") if len(e) >= 4]
    if not user_arg:  # no -u and no USER: root, looked up by uid for its home and groups
        user_arg = "0"
        found = next((e for e in passwd if e[2] == "0"), None)
    else:
        found = next((e for e in passwd if e[0] == user_arg), None)
    if found is None and user_arg.isdigit():
        found = next((e for e in passwd if e[2] == user_arg), None)
    if found is not None and found[2].isdigit() and found[3].isdigit():
        out.uid, out.gid, matched_name = int(found[2]), int(found[3]), found[0]
        out.home = found[5] if len(found) > 5 and found[5] else "/"
    elif user_arg.isdigit():
        out.uid = int(user_arg)
    else:
        raise LookupError(f"unable to find user {user_arg}: no matching entries in passwd file")

    if group_arg or matched_name:
        groups = [e for e in _entries("/etc/group") if len(e) >= 3 and e[2].isdigit()]
        if group_arg:
            entry = next((g for g in groups if g[0] == group_arg), None)
            if entry is None and group_arg.isdigit():
                out.gid = int(group_arg)
            elif entry is None:
                raise LookupError(f"unable to find group {group_arg}: no matching entries in group file")
            else:
                out.gid = int(entry[2])
        else:  # supplementary groups only in the implicit form
            for g in groups:
                members = g[3].split(",") if len(g) > 3 else []
                if matched_name in members and int(g[2]) not in out.groups:
                    out.groups.append(int(g[2]))
    if out.gid not in out.groups:  # runc's setgroups list holds the primary group too: `id` shows it
        out.groups.insert(0, out.gid)
    return out
