"""Volumes: docker's local driver (ROOT/volumes/<name>/_data) and the -v/--mount/--tmpfs specs.

A spec is parsed and checked completely before anything is created, so a bad
one changes nothing. The mounts themselves are made by ``kernel/mounts.py`` inside
the container's mount namespace, before pivot_root.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path
from typing import Any

from cshell.engine import events
from cshell.engine.state import StateRoot, new_id, read_json, write_json
from cshell.errors import Conflict, NotFound, UsageError
from cshell.record import record

VOLUME_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
ANON_LABEL = "com.docker.volume.anonymous"
FORBIDDEN = ("/proc", "/sys")  # the runtime's own mounts; runc refuses these too
MODES = {"ro", "rw", "nocopy", "z", "Z"}
# --mount fields that belong to one type of mount only (docker's volume-*, tmpfs-* groups)
TYPE_FIELDS = {"volume-nocopy": "volume", "tmpfs-size": "tmpfs"}
SIZE_RE = re.compile(r"^(\d+)([kmg]?)$", re.IGNORECASE)


@record
class MountSpec:
    type: str  # volume | bind | tmpfs
    target: str  # absolute, inside the container
    source: str = ""  # volume name (empty: anonymous), or host path
    readonly: bool = False
    copy: bool = True  # copyData for a new volume (volume-nocopy turns it off)
    tmpfs_size: str = ""
    create_host_dir: bool = False  # -v creates a missing host dir; --mount refuses


def _usage(msg: str, hint: str) -> UsageError:
    return UsageError(msg, hint)


def check_target(target: str, spec: str) -> str:
    if not target:
        raise _usage(f"invalid spec {spec!r}: no target path", "give the path inside: -v /data or -v NAME:/data")
    if not target.startswith("/"):
        raise _usage(f"invalid mount path {target!r} in {spec!r}: it must be absolute",
                     "the target is a path inside the container, e.g. /data")
    clean = os.path.normpath(target)
    clean = "/" + clean.lstrip("/")
    if clean == "/":
        raise _usage(f"invalid spec {spec!r}: the target cannot be '/'", "mount on a directory, e.g. /data")
    if any(clean == f or clean.startswith(f + "/") for f in FORBIDDEN):
        raise _usage(f"invalid spec {spec!r}: {clean} belongs to the runtime's own mounts",
                     "choose a target outside /proc and /sys")
    return clean


def _check_source_name(name: str, spec: str) -> None:
    if not VOLUME_NAME_RE.match(name):
        raise _usage(f'invalid volume name {name!r} in {spec!r}: only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed',
                     "a host directory must be an absolute path (/home, or ./dir), a volume a plain name")


def parse_volume(spec: str) -> MountSpec:
    """docker's -v [SOURCE:]TARGET[:MODE]: SOURCE absolute = bind, a name = named volume."""
    parts = spec.split(":")
    if len(parts) > 3 or any(p == "" for p in parts):
        raise _usage(f"invalid spec {spec!r}: empty section between colons" if "" in parts
                     else f"invalid spec {spec!r}: too many colons",
                     "the form is -v [SOURCE:]TARGET[:ro], e.g. -v /home:/test:ro")
    if len(parts) == 2 and not parts[1].startswith("/") and set(parts[1].split(",")) <= MODES:
        # docker: TARGET:MODE is no volume; an anonymous volume takes no mode (read-only would stay empty)
        raise _usage(f"invalid volume specification: {spec!r}: an anonymous volume takes no mode",
                     f"name the volume to give it a mode (-v NAME:{parts[0]}:{parts[1]}), "
                     "or use --mount type=volume,target=…,volume-nocopy")
    modes: set[str] = set()
    if len(parts) == 3:
        modes = set(parts.pop().split(","))
        if not modes <= MODES or {"ro", "rw"} <= modes:
            raise _usage(f"invalid mode {','.join(sorted(modes))!r} in {spec!r}", "modes: ro, rw, nocopy")
    if len(parts) == 1:
        return MountSpec("volume", check_target(parts[0], spec))
    source, target = parts
    target = check_target(target, spec)
    if source.startswith(("/", "./", "../")) or source in (".", ".."):
        if "nocopy" in modes:  # docker refuses it too: copyData is a volume's, a bind copies nothing
            raise _usage(f"invalid volume specification: {spec!r}: nocopy is a volume option and {source} "
                         "is a bind mount (a host path)",
                         "drop :nocopy; a bind mount never copies the image's files, it hides them")
        return MountSpec("bind", target, os.path.abspath(source), "ro" in modes, create_host_dir=True)
    _check_source_name(source, spec)
    return MountSpec("volume", target, source, "ro" in modes, "nocopy" not in modes)


def _flag(value: str, key: str, spec: str) -> bool:
    if value in ("", "1", "true"):
        return True
    if value in ("0", "false"):
        return False
    raise _usage(f"invalid value {value!r} for {key} in {spec!r}", f"{key}=true or {key}=false, or just {key}")


def parse_mount(spec: str) -> MountSpec:
    """docker's --mount type=bind|volume|tmpfs,source=…,target=…[,readonly]."""
    fields: dict[str, str] = {}
    for item in spec.split(","):
        key, _, value = item.partition("=")
        key = {"src": "source", "dst": "target", "destination": "target", "ro": "readonly"}.get(key, key)
        if key not in ("type", "source", "target", "readonly", "volume-nocopy", "tmpfs-size"):
            raise _usage(f"unknown --mount field {key!r} in {spec!r}",
                         "fields: type, source, target, readonly, volume-nocopy, tmpfs-size")
        fields[key] = value
    kind = fields.get("type", "volume")
    if kind not in ("bind", "volume", "tmpfs"):
        raise _usage(f"invalid mount type {kind!r}", "type=bind, type=volume or type=tmpfs")
    _check_fields_fit(fields, kind, spec)
    target = check_target(fields.get("target", ""), spec)
    ro = _flag(fields["readonly"], "readonly", spec) if "readonly" in fields else False
    source = fields.get("source", "")
    if kind == "bind":
        if not source.startswith("/"):
            raise _usage(f"invalid bind source {source!r} in {spec!r}", "a bind source is an absolute host path")
        if not os.path.exists(source):
            raise NotFound(f"bind source path does not exist: {source}",
                           "--mount never creates it (-v does): mkdir it first")
        return MountSpec("bind", target, os.path.normpath(source), ro)
    if kind == "tmpfs":
        if "source" in fields:
            raise _usage(f'invalid mount config for type "tmpfs": field Source must not be specified ({spec!r})',
                         "a tmpfs is new and empty, made in memory: drop source=…")
        return MountSpec("tmpfs", target, "", ro, tmpfs_size=_size(fields.get("tmpfs-size", ""), spec))
    if source:
        _check_source_name(source, spec)
    elif ro:  # docker's rule: a new, empty, read-only volume could never hold anything
        raise _usage(f'invalid mount config for type "volume": must not set ReadOnly mode when using '
                     f"anonymous volumes ({spec!r})", "name the volume (source=NAME) to mount it read-only")
    nocopy = _flag(fields["volume-nocopy"], "volume-nocopy", spec) if "volume-nocopy" in fields else False
    return MountSpec("volume", target, source, ro, not nocopy)


def _check_fields_fit(fields: dict[str, str], kind: str, spec: str) -> None:
    """docker's rule: volume-* fields only on type=volume, tmpfs-* only on type=tmpfs."""
    for key, owner in TYPE_FIELDS.items():
        if key in fields and kind != owner:
            group = key.split("-")[0]
            raise _usage(f"cannot mix '{group}-*' options with mount type '{kind}' ({key} in {spec!r})",
                         f"{key} applies to type={owner} only: drop it, or change the type")


def _size(value: str, spec: str) -> str:
    if value and not SIZE_RE.match(value):
        raise _usage(f"invalid tmpfs size {value!r} in {spec!r}", "a size like 64m, 1g or 65536k")
    return value


def parse_tmpfs(spec: str) -> MountSpec:
    """docker's --tmpfs /path[:size=64m]."""
    target, _, opts = spec.partition(":")
    size = ""
    for opt in filter(None, opts.split(",")):
        key, _, value = opt.partition("=")
        if key != "size":
            raise _usage(f"unsupported tmpfs option {key!r} in {spec!r}", "only size= is supported: --tmpfs /run:size=64m")
        size = _size(value, spec)
    return MountSpec("tmpfs", check_target(target, spec), "", False, tmpfs_size=size)


def parse_all(volumes: list[str], mounts: list[str], tmpfs: list[str]) -> list[MountSpec]:
    specs = [*map(parse_volume, volumes), *map(parse_mount, mounts), *map(parse_tmpfs, tmpfs)]
    seen: set[str] = set()
    for s in specs:
        if s.target in seen:
            raise _usage(f"duplicate mount point: {s.target}", "mount each container path once")
        seen.add(s.target)
    return sorted(specs, key=lambda s: s.target.count("/"))  # parents before children


# -- the volume store ---------------------------------------------------------------------------


class Volumes:
    def __init__(self, root: StateRoot) -> None:
        self.root = root
        self.dir = root.path / "volumes"

    def path(self, name: str) -> Path:
        return self.dir / name

    def exists(self, name: str) -> bool:
        return (self.dir / name / "_data").is_dir()

    def create(self, name: str | None = None, anonymous: bool = False,
               options: dict[str, str] | None = None) -> dict[str, Any]:
        """``options``: docker's .Options, {} from `volume create`, null for one `run -v` made."""
        name = name or new_id()
        _check_source_name(name, name)
        d = self.dir / name
        if self.exists(name):
            return self.inspect(name)
        self.dir.mkdir(mode=0o701, exist_ok=True)
        (d / "_data").mkdir(parents=True, mode=0o755, exist_ok=True)
        from cshell.engine.state import now

        labels = {ANON_LABEL: ""} if anonymous else {}
        write_json(d / "volume.json", {"Name": name, "CreatedAt": now(), "Labels": labels, "Options": options})
        events.emit(self.root.path, "volume", "create", name, driver="local")
        return self.inspect(name)

    def inspect(self, name: str) -> dict[str, Any]:
        if not self.exists(name):
            raise NotFound(f"no such volume: {name}", "`volume ls` lists the volumes")
        meta: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            meta = read_json(self.dir / name / "volume.json")
        return {"CreatedAt": meta.get("CreatedAt", ""), "Driver": "local", "Labels": meta.get("Labels", {}),
                "Mountpoint": str(self.dir / name / "_data"), "Name": name, "Options": meta.get("Options"), "Scope": "local"}

    def list(self) -> list[dict[str, Any]]:
        if not self.dir.is_dir():
            return []
        return [self.inspect(d.name) for d in sorted(self.dir.iterdir()) if self.exists(d.name)]

    def users(self, name: str) -> list[str]:
        """Containers (any state, as docker) whose config mounts this volume."""
        out = []
        if self.root.containers.is_dir():
            for d in self.root.containers.iterdir():
                with contextlib.suppress(OSError, ValueError):
                    mounts = read_json(d / "config.json").get("mounts", [])
                    if any(m.get("type") == "volume" and m.get("name") == name for m in mounts):
                        out.append(d.name)
        return out

    def remove(self, name: str, force: bool = False) -> None:
        self.inspect(name)
        users = self.users(name)
        if users and not force:
            raise Conflict(f"volume {name} is in use by container {users[0][:12]}",
                           f"remove the container first (rm {users[0][:12]}), then the volume")
        shutil.rmtree(self.dir / name)
        events.emit(self.root.path, "volume", "destroy", name, driver="local")

    def prune(self, everything: bool = False) -> list[str]:
        """Unused volumes: anonymous ones only, as docker 23+; all unused with -a."""
        removed = []
        for v in self.list():
            if (everything or ANON_LABEL in v["Labels"]) and not self.users(v["Name"]):
                shutil.rmtree(self.dir / v["Name"], ignore_errors=True)
                events.emit(self.root.path, "volume", "destroy", v["Name"], driver="local")
                removed.append(v["Name"])
        return removed


def materialize(root: StateRoot, specs: list[MountSpec]) -> list[dict[str, Any]]:
    """Create what the specs need (volumes, -v host dirs) and return config.json's "mounts"."""
    vols = Volumes(root)
    out: list[dict[str, Any]] = []
    try:
        for s in specs:
            out.append(_materialize_one(vols, s))
    except BaseException:
        remove_anonymous(root, out)  # nothing half-made stays behind
        raise
    return out


def _materialize_one(vols: Volumes, s: MountSpec) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": s.type, "destination": s.target, "rw": not s.readonly}
    if s.type == "volume":
        anonymous = not s.source
        name = vols.create(s.source or None, anonymous=anonymous)["Name"]
        entry |= {"name": name, "source": str(vols.path(name) / "_data"), "anonymous": anonymous,
                  "copy": s.copy}
    elif s.type == "bind":
        if s.create_host_dir and not os.path.exists(s.source):
            os.makedirs(s.source, mode=0o755)  # docker's -v does this; --mount refuses
        entry |= {"source": s.source, "is_dir": os.path.isdir(s.source)}
    else:
        entry |= {"source": "tmpfs", "size": s.tmpfs_size}
    return entry


def remove_anonymous(root: StateRoot, mounts: list[dict[str, Any]]) -> list[str]:
    """rm -v / --rm: the container's anonymous volumes go (named ones stay)."""
    vols, removed = Volumes(root), []
    for m in mounts:
        # called once the container's config is gone: another user keeps it
        if m.get("type") == "volume" and m.get("anonymous") and vols.exists(m["name"]) \
                and not vols.users(m["name"]):
            shutil.rmtree(vols.path(m["name"]), ignore_errors=True)
            events.emit(root.path, "volume", "destroy", m["name"], driver="local")
            removed.append(m["name"])
    return removed


def inspect_mounts(mounts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """docker inspect's .Mounts."""
    out = []
    for m in mounts:
        item: dict[str, Any] = {"Type": m["type"]}
        if m["type"] == "volume":
            item["Name"] = m["name"]
        item |= {"Source": m["source"] if m["type"] != "tmpfs" else "", "Destination": m["destination"]}
        if m["type"] == "volume":  # docker's key order: Driver between Destination and Mode
            item["Driver"] = "local"
        item |= {"Mode": "" if m["type"] != "bind" else ("ro" if not m["rw"] else ""), "RW": m["rw"],
                 "Propagation": "rprivate" if m["type"] == "bind" else ""}
        out.append(item)
    return out
