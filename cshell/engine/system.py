"""The state root as a whole: `system df`, `system prune`, `system check [--repair]`.

Sizes are bytes on disk (allocated blocks), each inode counted once: an
image is its blobs (manifest, config, layer tars) plus its unpacked layer
directories; a layer shared by several images counts once. *Reclaimable* is
what no container needs: for images and the build cache, the blobs and layers
only unused images hold; for containers, the stopped ones; for volumes, the
unused ones (as docker counts them; `system prune --volumes` takes only the
anonymous ones, as docker 23+ does).

The build cache is what `build` keeps: the untagged step images that
ROOT/build-cache.json points at. Other untagged images are *dangling*.

`check` reads everything again and compares it with the kernel: every blob is
re-hashed, every container's record is held against its processes, cgroup,
veth, lease and mounts. `--repair` fixes what can be fixed without losing
anything that might still be wanted (see ``check``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cshell.engine import trace
from cshell.engine.limits import cgroups
from cshell.engine.state import Cleanup, human_size, mounts_below
from cshell.errors import reason
from cshell.record import factory, record

if TYPE_CHECKING:
    from cshell.engine.container.containers import Container, Runtime
    from cshell.engine.image.store import Image, Store
    from cshell.engine.net.network import Network

YOUNG = 30.0  # seconds: something this young may be another shell's work in progress


# -- sizes ------------------------------------------------------------------------------------


def tree_size(path: Path | str, seen: set[tuple[int, int]] | None = None) -> int:
    """Bytes allocated to a file or directory tree; inodes in ``seen`` (hardlinks) counted once."""
    seen = set() if seen is None else seen
    total = 0
    try:
        st = os.lstat(path)
    except OSError:
        return 0
    stack = [str(path)] if os.path.isdir(path) and not os.path.islink(path) else []
    if (st.st_dev, st.st_ino) not in seen:
        seen.add((st.st_dev, st.st_ino))
        total += st.st_blocks * 512
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except OSError:
            continue  # removed meanwhile, or unreadable
        with entries:
            for e in entries:
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
    return total


@record
class UsageRow:
    kind: str  # Images | Containers | Local Volumes | Build Cache
    total: int
    active: int
    size: int
    reclaimable: int


@record
class Item:
    """One line of `system df -v`."""

    name: str
    size: int
    detail: dict[str, Any] = factory(dict)


@record
class DiskUsage:
    rows: list[UsageRow]
    images: list[Item] = factory(list)
    containers: list[Item] = factory(list)
    volumes: list[Item] = factory(list)
    cache: list[Item] = factory(list)


def _units(store: Store, image: Image) -> set[str]:
    """What an image holds on disk: its blob files and unpacked layer directories."""
    blobs = {image.manifest_digest, image.id, *(layer.diff_id for layer in image.layers)}
    return {str(store.blob_path(d)) for d in blobs} | {str(layer.path.parent) for layer in image.layers}


def build_cache_ids(rt: Runtime) -> set[str]:
    from cshell.engine.build.cache import BuildCache

    return set(BuildCache(rt.root).entries.values())


def disk_usage(rt: Runtime) -> DiskUsage:
    from cshell.engine.volumes.volumes import Volumes

    store = rt.store
    containers = rt.list()
    used_images = {c.config.get("image_id") for c in containers}
    pinned = {str(Path(p).parent) for c in containers for p in c.config.get("layers", [])}
    cache_ids = build_cache_ids(rt)
    images = _loadable_images(store)
    unit_size: dict[str, int] = {}
    seen: set[tuple[int, int]] = set()

    def size_of(units: set[str]) -> int:
        for u in sorted(units - unit_size.keys()):
            unit_size[u] = tree_size(u, seen)
        return sum(unit_size[u] for u in units)

    def units_of(group: list[Image]) -> set[str]:
        return set().union(*(_units(store, i) for i in group)) if group else set()

    cached = [i for i in images if not i.refs and i.id in cache_ids]
    regular = [i for i in images if i not in cached]
    active_units = units_of([i for i in images if i.id in used_images]) | pinned
    regular_units, cache_units = units_of(regular), units_of(cached)
    cache_only = cache_units - regular_units
    ctr_items = [Item(c.name, tree_size(c.dir), {"id": c.short_id, "image": c.config.get("image", ""),
                                                 "status": c.status}) for c in containers]
    vols = Volumes(rt.root)
    vol_items = []
    for v in vols.list():
        users = vols.users(v["Name"])
        vol_items.append(Item(v["Name"], tree_size(Path(v["Mountpoint"])),
                              {"links": len(users), "anonymous": "com.docker.volume.anonymous" in v["Labels"]}))
    rows = [
        UsageRow("Images", len(regular), sum(i.id in used_images for i in regular), size_of(regular_units),
                 size_of(regular_units - active_units)),
        UsageRow("Containers", len(containers), sum(c.running for c in containers),
                 sum(i.size for i in ctr_items), sum(i.size for i in ctr_items if i.detail["status"] != "running")),
        UsageRow("Local Volumes", len(vol_items), sum(bool(i.detail["links"]) for i in vol_items),
                 sum(i.size for i in vol_items), sum(i.size for i in vol_items if not i.detail["links"])),
        UsageRow("Build Cache", len(cached), sum(i.id in used_images for i in cached), size_of(cache_only),
                 size_of(cache_only - active_units)),
    ]
    holders: dict[str, int] = {}
    for i in images:
        for u in _units(store, i):
            holders[u] = holders.get(u, 0) + 1
    image_items = [Item(i.ref, size_of(_units(store, i)),
                        {"id": i.short_id, "created": i.created,
                         "shared": size_of({u for u in _units(store, i) if holders[u] > 1}),
                         "containers": sum(c.config.get("image_id") == i.id for c in containers)})
                   for i in regular]
    cache_items = [Item(i.short_id, size_of(_units(store, i) - regular_units),
                        {"created": i.created, "step": (i.history[-1].get("created_by", "") if i.history else "")})
                   for i in cached]
    return DiskUsage(rows, image_items, ctr_items, vol_items, cache_items)


def _loadable_images(store: Store) -> list[Image]:
    """Every image in the index that can be read (a damaged one is `system check`'s business)."""
    from cshell.errors import CShellError

    out = []
    for digest, names in _index_entries(store).items():
        with contextlib.suppress(CShellError, OSError, ValueError, KeyError):
            out.append(store._load(digest, names))  # noqa: SLF001 - the store's own reader
    return out


def _index_entries(store: Store) -> dict[str, list[str]]:
    """{manifest digest: names} straight from index.json."""
    by_digest: dict[str, list[str]] = {}
    with contextlib.suppress(FileNotFoundError, ValueError):
        for m in json.loads(store.index_path.read_bytes()).get("manifests", []):
            names = by_digest.setdefault(m["digest"], [])
            name = (m.get("annotations") or {}).get("io.containerd.image.name")
            if name:
                names.append(name)
    return by_digest


# -- prune ------------------------------------------------------------------------------------


@record
class PruneReport:
    containers: list[str] = factory(list)
    images: list[str] = factory(list)
    cache_entries: int = 0
    volumes: list[str] = factory(list)
    network: list[str] = factory(list)
    networks: list[str] = factory(list)  # user-defined networks no container uses (docker's Deleted Networks)
    partials: list[str] = factory(list)  # half-written blobs and layers a killed process left
    blobs: int = 0
    layers: int = 0
    reclaimed: int = 0
    errors: list[str] = factory(list)


def prune(rt: Runtime, all_images: bool = False, volumes: bool = False) -> PruneReport:
    """docker system prune: stopped containers, dangling images (-a: every unused one), the build
    cache, stale network state, user-defined networks no container uses, and with ``volumes`` unused anonymous volumes. Every step runs,
    whatever failed before; errors come back one line each."""
    from cshell.engine.build import commit as images
    from cshell.engine.net import usernets
    from cshell.engine.net.network import Network
    from cshell.engine.volumes.volumes import Volumes

    report, work = PruneReport(), Cleanup()
    before = tree_size(rt.root.path)
    for c in rt.list():
        if c.running or c.shim_alive() or (c.status == "created" and _young(c.dir / "state.json")):
            continue  # running, or being started by another shell right now
        if work.attempt(f"container {c.name}", rt.remove, c) is None and not c.dir.exists():
            report.containers.append(c.name)
    for partial in work.attempt("leftovers", rt.store.partials) or []:
        work.attempt(f"{partial.path.name}", rt.store.remove_partial, partial)
        report.partials.append(f"{partial.path.name} ({partial.purpose}, {human_size(partial.size)})")
    pruned = work.attempt("images", images.prune, rt, everything=all_images)
    if pruned:
        report.images, report.blobs, report.layers = pruned
    report.cache_entries = work.attempt("build cache", _drop_build_cache, rt) or 0
    if volumes:
        report.volumes = work.attempt("volumes", Volumes(rt.root).prune) or []
    report.network = work.attempt("network", Network(rt.root).reconcile, rt._holds_network, rules=True) or []  # noqa: SLF001
    report.networks = work.attempt("networks", usernets.prune, rt.root) or []
    report.reclaimed = max(0, before - tree_size(rt.root.path))
    report.errors = work.errors
    return report


def _drop_build_cache(rt: Runtime) -> int:
    """Forget every build-cache entry; the step images themselves went with the dangling images."""
    from cshell.engine.build.cache import VERSION, BuildCache
    from cshell.engine.state import write_json

    cache = BuildCache(rt.root)
    with rt.root.locked():
        count = len(cache.entries)
        if count:
            trace.step(f"rewrite {cache.path}  # {count} build-cache entries forgotten")
            write_json(cache.path, {"version": VERSION, "entries": {}})
    return count


def _young(path: Path) -> bool:
    try:
        return time.time() - path.stat().st_mtime < YOUNG
    except OSError:
        return False


# -- check ------------------------------------------------------------------------------------


@record
class Problem:
    subject: str  # "blob sha256:1234…", "container web", "lease 172.17.0.3"
    text: str
    repair: str = ""  # what --repair does about it ("": nothing it can do safely; the hint says why)
    fixed: bool = False
    error: str = ""  # the repair was tried and failed


@record
class CheckReport:
    problems: list[Problem] = factory(list)
    blobs: int = 0
    images: int = 0
    containers: int = 0
    repaired: bool = False


class Checker:
    """Collects problems; with repair=True runs each one's fix right away (each fix idempotent)."""

    def __init__(self, rt: Runtime, repair: bool) -> None:
        self.rt, self.repair = rt, repair
        self.report = CheckReport(repaired=repair)
        self.damaged: set[str] = set()  # hex digests of blobs whose bytes do not match

    def problem(self, subject: str, text: str, fix: Any = None, repair: str = "") -> None:
        p = Problem(subject, text, repair if fix is not None else "")
        self.report.problems.append(p)
        if self.repair and fix is not None:
            work = Cleanup()
            work.attempt(repair or "repair", fix)
            p.fixed, p.error = not work.errors, "; ".join(work.errors)


def check(rt: Runtime, repair: bool = False) -> CheckReport:
    """Verify the store and every container against the kernel; ``repair`` fixes what it safely can.

    Repairs, deliberately conservative:
      - a blob whose bytes do not match its digest is deleted (a content address must never
        hold other bytes); images whose manifest or config blob is damaged or missing cannot
        be read at all, so their names are removed from the index, unless a container was
        made from them; an image that only lacks a layer blob keeps running from the
        unpacked layer and is reported, not removed (`rmi -f`, then pull or build it again);
      - leftovers of a crash (half-written blobs, half-unpacked layers) are removed once old;
      - a container whose shim is gone is settled as reconcile does (exit 255); a stopped one
        loses the cgroup, lease, veth and host mounts it should no longer have;
      - leases, veths and iptables rules no container accounts for are removed.
    A container's own files (rw layer, logs) and any image a container uses are never removed.
    """
    ck = Checker(rt, repair)
    _check_blobs(ck)
    _check_images(ck)
    _check_layers(ck)
    _check_containers(ck)
    _check_network(ck)
    return ck.report


def _hash_file(path: Path) -> str:
    from cshell.engine.image.store import bulk_hasher

    h = bulk_hasher()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _check_blobs(ck: Checker) -> None:
    blobs = ck.rt.store.blobs
    if not blobs.is_dir():
        return
    for partial in ck.rt.store.partials():
        what = "blob" if partial.path.parent == blobs else "layer"
        ck.problem(f"{what} {partial.path.name}",
                   f"left by an interrupted {partial.purpose} ({human_size(partial.size)}); its maker is gone",
                   functools.partial(ck.rt.store.remove_partial, partial), "removed it")
    for path in sorted(blobs.iterdir()):
        if path.name.startswith(".ingest-"):
            continue  # being written now (partials above are the abandoned ones)
        ck.report.blobs += 1
        try:
            actual = _hash_file(path)
        except OSError as e:
            ck.problem(f"blob {path.name[:12]}", f"unreadable: {e.strerror}")
            continue
        if actual != "sha256:" + path.name:
            ck.damaged.add(path.name)
            ck.problem(f"blob sha256:{path.name[:12]}", f"its content hashes to {actual[:19]}…: damaged",
                       path.unlink, "deleted it (its images are listed below)")


def _check_images(ck: Checker) -> None:
    from cshell.errors import CShellError

    store, rt = ck.rt.store, ck.rt
    containers = rt.list()
    used = {c.config.get("image_id") for c in containers} | {c.config.get("image") for c in containers}
    damaged_blobs = {hexdigest[:12] for hexdigest in ck.damaged}
    for digest, names in _index_entries(store).items():
        ck.report.images += 1
        label = names[0] if names else f"<none> ({digest[7:19]})"
        try:
            if digest[7:19] in damaged_blobs:
                raise ValueError("its manifest blob is damaged")
            image = store._load(digest, names)  # noqa: SLF001
            if image.id[7:19] in damaged_blobs:
                raise ValueError("its config blob is damaged")
        except (CShellError, OSError, ValueError, KeyError, TypeError) as e:
            if _config_digest(store, digest) in used or any(n in used for n in names):
                ck.problem(f"image {label}", f"cannot be read ({reason(e)}); a container was made from it, so it stays",
                           repair="")
            else:
                ck.problem(f"image {label}", f"cannot be read ({reason(e)})",
                           lambda d=digest: _drop_manifest(store, d), "removed its name(s) from the index")
            continue
        for layer in image.layers:
            blob = store.blob_path(layer.diff_id)
            if layer.diff_id[7:19] in damaged_blobs or not blob.exists():
                runs = layer.path.is_dir()
                ck.problem(f"image {label}", f"layer blob {layer.diff_id[7:19]} is missing or damaged"
                           + ("; it still runs from the unpacked layer, but save/push/commit of it fail"
                              if runs else "; it cannot run: `rmi -f` it, then pull or build it again"))


def _config_digest(store: Store, manifest_digest: str) -> str:
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        return json.loads(store.blob_path(manifest_digest).read_bytes())["config"]["digest"]
    return ""


def _drop_manifest(store: Store, digest: str) -> None:
    with store.root.locked():
        index = json.loads(store.index_path.read_bytes())
        index["manifests"] = [m for m in index["manifests"] if m["digest"] != digest]
        store._write_index(index)  # noqa: SLF001


def _check_layers(ck: Checker) -> None:
    layers = ck.rt.root.layers
    if not layers.is_dir():
        return
    for d in sorted(layers.iterdir()):
        if d.name.endswith(".unpacking"):
            if not _young(d):
                ck.problem(f"layer {d.name[:12]}", "a half-unpacked layer (a crash while unpacking)",
                           lambda d=d: shutil.rmtree(d), "removed it")
        elif not ((d / "diff").is_dir() and (d / "layer.json").is_file()) and not _young(d):
            ck.problem(f"layer {d.name[:12]}", "incomplete: no diff/ or no layer.json",
                       lambda d=d: shutil.rmtree(d), "removed it (unpacked again when needed)")


def _check_containers(ck: Checker) -> None:
    from cshell.engine.container.containers import Container

    rt = ck.rt
    if not rt.root.containers.is_dir():
        return
    host_mounts = mounts_below(rt.root.containers)
    for d in sorted(rt.root.containers.iterdir()):
        try:
            c = Container(d)
        except (FileNotFoundError, ValueError, KeyError):
            if not _young(d):
                ck.problem(f"container dir {d.name[:12]}", "config.json is missing or unreadable: a create that never finished",
                           lambda d=d: _remove_dead_dir(d), "removed it (it held no process and no mount)")
            continue
        ck.report.containers += 1
        _check_container(ck, c, [p for p in host_mounts if p.startswith(f"{d}/")])


def _remove_dead_dir(d: Path) -> None:
    from cshell.errors import RuntimeFailure

    if mounts_below(d) or cgroups.processes(d.name):
        raise RuntimeFailure(f"{d} still has mounts or processes", "stop them first")
    shutil.rmtree(d)


def _check_container(ck: Checker, c: Container, mounts: list[str]) -> None:
    from cshell.engine.net import usernets
    from cshell.engine.net.network import Network

    rt, subject = ck.rt, f"container {c.name}"
    recorded = c.state.get("status", "created")
    mode = c.config.get("network", "none")
    # the network it was started on: a user network's leases are kept with that network
    network = (usernets.network_for(rt.root, mode) if usernets.is_user_mode(mode) and usernets.find(rt.root, mode)
               else Network(rt.root))
    leases = network.leases.of(c.id)
    groups = [g for g in cgroups.container_dirs(c.id) if g.is_dir()]
    if recorded == "running":
        if not c.shim_alive():
            why = ("PID 1 still runs, unsupervised" if c.alive() else
                   f"PID {c.pid} now belongs to another process (reused)" if c.pid and os.path.exists(f"/proc/{c.pid}")
                   else "PID 1 has ended")
            work = Cleanup()
            ck.problem(subject, f"recorded as running but its shim is gone; {why}",
                       lambda: _settle(rt, c, work), "killed what was left, released it all, exit status 255")
            return
        if not c.alive():
            return  # PID 1 just ended; its shim is recording that right now
        missing = [str(g) for g in cgroups.container_dirs(c.id) if not g.is_dir()]
        if missing:
            ck.problem(subject, f"its cgroup {missing[0]} is missing: its limits no longer apply")
        elif not _in_cgroup(c.pid, c.id):
            ck.problem(subject, f"PID 1 ({c.pid}) is not in its cgroup: its limits do not apply to it")
        net = c.state.get("network") or {}
        if net.get("mode") == "bridge":
            if not os.path.exists(f"/sys/class/net/{net.get('veth')}"):
                ck.problem(subject, f"its veth {net.get('veth')} is gone: it has no network")
            if not any(lease.ip == net.get("ip") for lease in leases):
                ck.problem(subject, f"no lease holds its address {net.get('ip')}: another container may get it")
        if mounts:
            ck.problem(subject, f"{len(mounts)} host mount(s) below its directory, e.g. {mounts[0]}")
        return
    if c.alive():
        ck.problem(subject, f"recorded as {recorded} but PID 1 ({c.pid}) still runs")
        return
    if c.shim_alive():
        return  # being started or stopped right now
    if groups and not cgroups.processes(c.id):
        ck.problem(subject, f"stopped, but its cgroup {groups[0]} is still there",
                   lambda: cgroups.remove(c.id), "removed the cgroup")
    if leases and not _young(leases[0].path):
        ck.problem(subject, f"stopped, but it still holds the address {leases[0].ip}",
                   lambda: usernets.release_all(rt.root, c.id), "released the lease, veth and rules")
    if mounts:
        ck.problem(subject, f"stopped, but {len(mounts)} host mount(s) remain below it, e.g. {mounts[0]}",
                   lambda: [_detach(p) for p in mounts], "detached them")
    for layer in c.config.get("layers", []):
        if not os.path.isdir(layer):
            ck.problem(subject, f"its image layer {Path(layer).parent.name[:12]} is missing: it cannot start again")
            break


def _settle(rt: Runtime, c: Container, work: Cleanup) -> None:
    from cshell.errors import RuntimeFailure

    rt._settle_lost(c, work)  # noqa: SLF001 - reconcile's own step
    if work.errors:
        raise RuntimeFailure("; ".join(work.errors))


def _detach(point: str) -> None:
    from cshell.engine.state import detach_mount

    detach_mount(point)


def _in_cgroup(pid: int, cid: str) -> bool:
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return False
    return cgroups.relative(cid) in text


def _check_network(ck: Checker) -> None:
    from cshell.engine.net import usernets
    from cshell.engine.net.network import Network

    for network in [Network(ck.rt.root), *(Network(ck.rt.root, n) for n in usernets.all_networks(ck.rt.root))]:
        if network.dir.is_dir():
            _check_one_network(ck, network)


def _check_one_network(ck: Checker, network: Network) -> None:
    """Leases of containers that are gone, veths and rules no lease accounts for, an unused default bridge."""
    for lease in network.leases.all():
        if not (ck.rt.root.containers / lease.container).is_dir() and not _young(lease.path):
            ck.problem(f"lease {lease.ip}", f"held for container {lease.container[:12]}, which no longer exists",
                       lambda cid=lease.container: network.release(cid), "released it (veth and rules too)")
    with network.locked():
        links, rules = network.stray_links(), network.stray_rules()
    for name in links:
        ck.problem(f"veth {name}", "tagged as this state root's, but no lease accounts for it",
                   network.sweep, "deleted it")
    for tag, lines in rules.items():
        ck.problem(f"iptables {tag}", f"{len(lines)} rule(s) of a container that holds no lease",
                   lambda: network.sweep(rules=True), "deleted them")
    if network.bridge_left() and not network.leases.all() and network.user is None:
        ck.problem(f"bridge {network.bridge}", "no container uses it", network.drop_bridge, "deleted it")
