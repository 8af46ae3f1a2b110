"""Container lifecycle: create, start, attach, exec, stop, remove, inspect.

A container is a directory under ROOT/containers/<id> (config.json written
once, state.json updated by whoever changes the state) plus, while it runs,
a shim process and the container's own processes. The shell process that
calls these functions can exit at any time: the shim owns the container.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cshell.engine import events, trace
from cshell.engine.container import health, restart
from cshell.engine.container.environment import check_variable, merge_env, user_env
from cshell.engine.container.init import ProcessSpec
from cshell.engine.container.joining import spawn_joined
from cshell.engine.container.rootfs import RootfsPlan, make_init_layer
from cshell.engine.container.security import inspect_host_config as inspect_security
from cshell.engine.container.security import plan as security_plan
from cshell.engine.container.security import settings as security_settings
from cshell.engine.container.shim import ShimIO, run_shim
from cshell.engine.kernel import namespaces, terminal
from cshell.engine.kernel.processes import (
    StatusChannel,
    close_all_but,
    open_channel,
    process_start_time,
    wait_pid_exit,
)
from cshell.engine.limits import cgroups
from cshell.engine.limits.limits import host_config as limits_host_config
from cshell.engine.limits.limits import parse as parse_limits
from cshell.engine.net.network import NetPlan, Network, parse_mode
from cshell.engine.state import (
    Cleanup,
    StateRoot,
    atomic_write,
    detach_mount,
    file_lock,
    mounts_below,
    new_id,
    now,
    parse_time,
    read_json,
    write_json,
)
from cshell.engine.volumes.volumes import inspect_mounts, materialize, parse_all
from cshell.errors import (
    Conflict,
    ContainerCommandError,
    NotFound,
    PrivilegeError,
    RuntimeFailure,
    UsageError,
    printable,
)
from cshell.record import factory, record

if TYPE_CHECKING:
    from cshell.engine.container.logs import LogOptions
    from cshell.engine.container.top import Top
    from cshell.engine.image.store import Image, Store

LIMIT_FIELDS = ("memory", "memory_swap", "cpus", "cpu_shares", "cpuset_cpus", "pids_limit")
PARTIAL_DOWNLOAD_AGE = 24 * 3600  # a pull's .part files wait this long for a pull to resume them
PARTIAL_BLOB_AGE = 30  # seconds: an abandoned .ingest blob waits this long for `system check` to show it
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
LABEL_RE = re.compile(r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?")  # RFC 1123: 1-63, no hyphen at an end
HOST_NAME_MAX = 64  # Linux's limit for sethostname(2) and setdomainname(2)
ADJECTIVES = ("brave", "calm", "clever", "eager", "gentle", "happy", "keen", "lucid", "merry",
              "quiet", "sharp", "swift", "tender", "vivid", "wise", "zen")
SCIENTISTS = ("curie", "dijkstra", "hopper", "knuth", "lamport", "liskov", "lovelace", "noether",
              "ritchie", "shannon", "thompson", "torvalds", "turing", "wozniak", "yonath", "zhang")


@record
class RunOptions:
    image: str
    cmd: list[str] = factory(list)
    name: str | None = None
    detach: bool = False
    interactive: bool = False
    tty: bool = False
    auto_remove: bool = False
    env: list[str] = factory(list)  # -e K=V or K
    env_file: list[str] = factory(list)  # --env-file PATH: docker's format, read before -e
    workdir: str | None = None
    hostname: str | None = None
    domainname: str | None = None  # --domainname: the NIS domain name, setdomainname(2)
    entrypoint: list[str] | None = None  # None: the image's; []: none (a build's RUN ignores it)
    # bridge | none | host | container:NAME. The `run` command defaults to bridge, as docker
    # does; the library default stays none (build's RUN steps, the in-process benchmark).
    network: str = "none"
    network_aliases: list[str] = factory(list)  # --network-alias: more names on a user network
    ip: str | None = None  # --ip: this address on a user network
    publish: list[str] = factory(list)  # -p specs, docker's syntax
    publish_all: bool = False  # -P: every EXPOSEd port of the image, on free host ports
    builder: bool = False  # a build step's container: reconcile removes it once its builder is gone
    volumes: list[str] = factory(list)  # -v [SOURCE:]TARGET[:ro]
    mounts: list[str] = factory(list)  # --mount type=…,source=…,target=…
    tmpfs: list[str] = factory(list)  # --tmpfs /path[:size=…]
    # docker's resource flags, as typed (checked by limits.parse before anything is made)
    memory: str | None = None
    memory_swap: str | None = None
    cpus: str | None = None
    cpu_shares: str | None = None
    cpuset_cpus: str | None = None
    pids_limit: str | None = None
    init: bool = False  # --init: cshell-init as PID 1 forwards signals and reaps zombies (docker's tini)
    read_only: bool = False  # --read-only: the root mount read-only (docker's ReadonlyRootfs)
    # containment (security.py): -u, --cap-add/--cap-drop, --privileged, --security-opt
    user: str | None = None  # None: the image's USER
    cap_add: list[str] = factory(list)
    cap_drop: list[str] = factory(list)
    privileged: bool = False
    security_opt: list[str] = factory(list)
    restart: str | None = None  # --restart no|on-failure[:N]|always|unless-stopped (restart.py)
    healthcheck: dict[str, Any] | None = None  # --health-*: docker's Healthcheck keys over the image's
    no_healthcheck: bool = False  # --no-healthcheck


@record
class ExecOptions:
    cmd: list[str]
    interactive: bool = False
    tty: bool = False
    env: list[str] = factory(list)
    env_file: list[str] = factory(list)
    workdir: str | None = None
    user: str | None = None  # -u: None is the container's user
    privileged: bool = False  # --privileged: every capability and no seccomp filter, for this process only


class Container:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.id = directory.name
        self.config: dict[str, Any] = read_json(directory / "config.json")
        try:
            self.state: dict[str, Any] = read_json(directory / "state.json")
        except FileNotFoundError:
            self.state = {"status": "created"}

    @property
    def name(self) -> str:
        return self.config["name"]

    @property
    def short_id(self) -> str:
        return self.id[:12]

    def emit(self, action: str, **more: object) -> None:
        """One line in the event journal, with docker's attributes: image (as typed), name, more."""
        events.emit(self.dir.parent.parent, "container", action, self.id,
                    image=self.config.get("image_typed") or self.config.get("image"), name=self.name, **more)

    @property
    def pid(self) -> int:
        return int(self.state.get("pid") or 0)

    @property
    def log_path(self) -> Path:
        return self.dir / "log"

    def alive(self) -> bool:
        """The recorded PID 1 still exists and is the same process (not a reused PID)."""
        if self.pid <= 0:
            return False
        started = process_start_time(self.pid)
        return started != 0 and started == self.state.get("pid_start")  # 0: gone (or never read)

    def shim_alive(self) -> bool:
        """Its shim still runs (the same process: start time checked when recorded)."""
        pid = int(self.state.get("shim_pid") or 0)
        started = process_start_time(pid) if pid > 0 else 0
        return started != 0 and self.state.get("shim_start", started) == started

    @property
    def status(self) -> str:
        """created, running, paused or exited: docker's words, checked against the kernel."""
        status = self.state.get("status", "created")
        if status == "running":
            if not self.alive():
                return "exited"  # the truth, even before anyone recorded it
            if cgroups.is_frozen(self.id):
                return "paused"  # whoever froze it: `pause`, or a `commit --pause` right now
        if status == "restarting" and not self.shim_alive():
            return "exited"  # its shim died waiting to restart it
        return status

    @property
    def running(self) -> bool:
        """Its PID 1 is alive, paused or not (docker: a paused container is still Running)."""
        return self.status in ("running", "paused")

    @property
    def paused(self) -> bool:
        return self.status == "paused"

    def reload_state(self) -> dict[str, Any]:
        """state.json as it is now (a shim writes it while we look); the last known if it is gone."""
        with contextlib.suppress(OSError, ValueError):
            return read_json(self.dir / "state.json")
        return self.state

    def save_state(self, **changes: Any) -> None:
        self.state.update(changes)
        write_json(self.dir / "state.json", self.state)

    def rootfs_plan(self) -> RootfsPlan:
        mounts = self.config.get("mounts", [])
        if self.config.get("init"):  # the host's static cshell-init, read-only, on the init layer's placeholder
            from cshell.engine.container import initbin

            mounts = [initbin.mount_entry(), *mounts]
        return RootfsPlan(
            lowerdirs=[str(self.dir / "init"), *reversed(self.config["layers"])],
            upperdir=str(self.dir / "rw"), workdir=str(self.dir / "work"),
            merged=str(self.dir / "merged"), state_dir=str(self.dir), mounts=mounts,
            privileged=bool((self.config.get("security") or {}).get("privileged")),
            read_only=bool(self.config.get("read_only")),
        )

    def log_note(self) -> str:
        """Why the log lacks some of the output (cshell's own inspect key; docker has none)."""
        dropped = int(self.state.get("log_dropped") or 0)
        if not dropped:
            return ""
        cause = (self.state.get("log_error") or "a write failed").lower()
        if "no space" in cause or "quota" in cause:
            cause = f"the disk was full ({cause})"
        return f"log cut short: {dropped} bytes of output were not written to {self.log_path.name}: {cause}"

    def delete_files(self, volumes: bool = False) -> None:
        """The container's directory; with volumes=True (rm -v, --rm) its anonymous volumes too."""
        shutil.rmtree(self.dir, ignore_errors=True)
        if volumes and self.config.get("mounts"):
            from cshell.engine.state import StateRoot
            from cshell.engine.volumes.volumes import remove_anonymous

            remove_anonymous(StateRoot(self.dir.parent.parent), self.config["mounts"])

    def health(self) -> dict[str, Any] | None:
        """State.Health, as the shim's probes left it (None: the image has no HEALTHCHECK)."""
        if not self.config.get("healthcheck"):
            return None
        return health.read(self.dir) or {"Status": "starting", "FailingStreak": 0, "Log": []}

    def inspect(self) -> dict[str, Any]:
        """Docker's `inspect` shape, for the fields cshell has."""
        cfg, st, plan = self.config, self.state, self.rootfs_plan()
        status = self.status
        running = status in ("running", "paused")
        return docker_order({
            "Id": self.id,
            "Created": cfg["created"],
            "Path": cfg["argv"][0],
            "Args": cfg["argv"][1:],
            "State": {
                "Status": status, "Running": running, "Paused": status == "paused",
                "Restarting": status == "restarting", "OOMKilled": bool(st.get("oom_killed")), "Dead": False,
                "Pid": self.pid if running else 0,
                "ExitCode": st.get("exit_code", 0), "Error": st.get("error", ""),
                "StartedAt": st.get("started_at", "0001-01-01T00:00:00Z"),
                "FinishedAt": st.get("finished_at", "0001-01-01T00:00:00Z"),
                **({"LogError": self.log_note()} if st.get("log_dropped") else {}),
                **({"Health": self.health()} if cfg.get("healthcheck") else {}),
            },
            "Image": cfg["image_id"],
            "ResolvConfPath": str(self.dir / "resolv.conf"),
            "HostnamePath": str(self.dir / "hostname"),
            "HostsPath": str(self.dir / "hosts"),
            "LogPath": str(self.log_path),
            "Name": "/" + self.name,
            "RestartCount": int(st.get("restart_count") or 0),
            "HostConfig": {"AutoRemove": cfg["auto_remove"], "NetworkMode": cfg.get("network", "none"),
                           "PortBindings": _port_bindings(cfg.get("ports", [])),
                           "RestartPolicy": cfg.get("restart") or {"Name": "no", "MaximumRetryCount": 0},
                           "PublishAllPorts": bool(cfg.get("publish_all")),
                           "ReadonlyRootfs": bool(cfg.get("read_only")),
                           **limits_host_config(cfg.get("limits") or {}),
                           **inspect_security(cfg.get("security") or {}),
                           "Init": bool(cfg.get("init"))},
            "GraphDriver": {"Data": {
                "LowerDir": ":".join(plan.lowerdirs), "MergedDir": plan.merged, "UpperDir": plan.upperdir,
                "WorkDir": plan.workdir,
            }, "Name": "overlay"},
            "Mounts": inspect_mounts(cfg.get("mounts", [])),
            "Config": {
                "Hostname": cfg["hostname"], "Domainname": cfg.get("domainname", ""),
                "User": cfg.get("user") or "", "Tty": cfg["tty"], "OpenStdin": cfg["interactive"],
                "Env": cfg["env"], "Cmd": cfg["cmd"], "Image": cfg.get("image_typed") or cfg["image"],
                "WorkingDir": cfg["workdir"], "Entrypoint": cfg.get("entrypoint"),
                **({"Healthcheck": cfg["healthcheck"]} if cfg.get("healthcheck") else {}),
            },
            "NetworkSettings": network_settings(st.get("network") if running else None,
                                                self._connected() if running else {}),
        })

    def _connected(self) -> dict[str, dict[str, Any]]:
        """The networks `network connect` added: {name: its lease's address}, read from the leases."""
        extra = [n for n in self.config.get("networks") or {} if n != self.config.get("network")]
        if not extra:
            return {}
        from cshell.engine.net import usernets

        return usernets.addresses(StateRoot(self.dir.parent.parent), self.id, extra)


# docker inspect's key order (Go struct order) where cshell's dicts are built elsewhere (limits,
# security): each object's keys are sorted by it, keys docker lacks keep their place at the end.
DOCKER_KEY_ORDER = {
    "HostConfig": ("Binds", "ContainerIDFile", "LogConfig", "NetworkMode", "PortBindings", "RestartPolicy",
                   "AutoRemove", "VolumeDriver", "VolumesFrom", "CapAdd", "CapDrop", "CgroupnsMode", "Dns",
                   "DnsOptions", "DnsSearch", "ExtraHosts", "GroupAdd", "IpcMode", "Cgroup", "Links",
                   "OomScoreAdj", "PidMode", "Privileged", "PublishAllPorts", "ReadonlyRootfs", "SecurityOpt",
                   "UTSMode", "UsernsMode", "ShmSize", "Runtime", "ConsoleSize", "Isolation", "CpuShares",
                   "Memory", "NanoCpus", "CgroupParent", "BlkioWeight", "CpuPeriod", "CpuQuota",
                   "CpuRealtimePeriod", "CpuRealtimeRuntime", "CpusetCpus", "CpusetMems", "Devices",
                   "MemoryReservation", "MemorySwap", "MemorySwappiness", "OomKillDisable", "PidsLimit",
                   "Ulimits", "MaskedPaths", "ReadonlyPaths", "Init"),
}


def docker_order(data: dict[str, Any]) -> dict[str, Any]:
    for key, order in DOCKER_KEY_ORDER.items():
        if isinstance(data.get(key), dict):
            rank = {k: i for i, k in enumerate(order)}
            data[key] = dict(sorted(data[key].items(), key=lambda kv: rank.get(kv[0], len(order))))
    return data


def _port_bindings(ports: list[dict[str, Any]]) -> dict[str, list[dict[str, str]]]:
    """HostConfig.PortBindings: what was asked for ("" for a port chosen at start)."""
    out: dict[str, list[dict[str, str]]] = {}
    for p in ports:
        out.setdefault(f"{p['ctr_port']}/{p['proto']}", []).append(
            {"HostIp": p.get("host_ip", ""), "HostPort": str(p["host_port"] or "")})
    return out


def network_settings(net: dict[str, Any] | None, connected: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """docker inspect's .NetworkSettings: filled while the container runs, empty after;
    CONNECTED: the other networks' entries (network connect)."""
    net = net or {}
    ports: dict[str, list[dict[str, str]]] = {}
    for p in net.get("ports", []):
        ports.setdefault(f"{p['ctr_port']}/{p['proto']}", []).append(
            {"HostIp": p.get("host_ip") or "0.0.0.0", "HostPort": str(p["host_port"])})
    ip, prefix, gateway, mac = (net.get(k, "") for k in ("ip", "prefixlen", "gateway", "mac"))
    settings = {"Bridge": net.get("bridge", ""), "Ports": ports, "Gateway": gateway, "IPAddress": ip,
                "IPPrefixLen": prefix or 0, "MacAddress": mac, "Networks": {}}  # docker's key order
    if ip:
        settings["Networks"][net.get("network") or "bridge"] = {"Gateway": gateway, "IPAddress": ip, "IPPrefixLen": prefix,
                                          "MacAddress": mac}
    settings["Networks"].update(connected or {})
    return settings


@record
class Launch:
    """What the shell holds of a starting container: the shim's pipes."""

    container: Container
    channel: StatusChannel
    stdin_w: int | None = None
    pty_master: int | None = None


def require_root() -> None:
    if os.geteuid() != 0:
        raise PrivilegeError("this needs root: namespaces, mounts and cgroups are root's tools",
                             "run it as root: sudo cshell …")


def _default_resolv_conf() -> bytes:
    try:
        text = Path("/etc/resolv.conf").read_text()
    except OSError:
        return b""
    # A loopback resolver on the host (systemd-resolved) is unreachable from a new netns:
    # like docker, take systemd-resolved's upstream servers instead, else drop it.
    loopback = re.compile(r"\s*nameserver\s+(127\.|::1)")
    if any(loopback.match(ln) for ln in text.splitlines()):
        with contextlib.suppress(OSError):
            text = Path("/run/systemd/resolve/resolv.conf").read_text()
    keep = [ln for ln in text.splitlines() if not loopback.match(ln)]
    return ("\n".join(keep) + "\n").encode()


def pull_missing(store: Store, ref: str) -> Image:
    """What `run` and `build` do with an image that is not here: pull it (or bootstrap a base)."""
    from cshell.engine.registry.fetch import fetch_missing  # only then: the registry code

    return fetch_missing(store, ref)


class Runtime:
    """The containers of one state root, and its image store.

    ``fetch`` is where an image that is not here comes from (``fetch(store, ref)``); by
    default ``pull_missing``, as docker run pulls; None: only images that are here.
    """

    def __init__(self, root: StateRoot, fetch: Callable[[Store, str], Image] | None = pull_missing) -> None:
        self.root = root
        self.fetch = fetch
        self._store = None

    @property
    def store(self) -> Store:  # lazy: most commands never need the image store
        if self._store is None:
            from cshell.engine.image.store import Store

            self._store = Store(self.root, fetch=self.fetch)
        return self._store

    # -- finding ------------------------------------------------------------------

    def list(self, all: bool = True) -> list[Container]:  # noqa: A002 - docker's flag name
        out = []
        if not self.root.containers.is_dir():
            return out
        for d in self.root.containers.iterdir():
            with contextlib.suppress(FileNotFoundError, ValueError):  # half-made or just removed
                c = Container(d)
                if all or c.running:
                    out.append(c)
        return sorted(out, key=lambda c: c.config["created"], reverse=True)

    def get(self, ref: str) -> Container:
        containers = self.list()
        for c in containers:
            if ref in (c.name, c.id):
                return c
        matches = [c for c in containers if len(ref) >= 1 and c.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise Conflict(f"{ref!r} matches {len(matches)} containers", "give more characters of the id")
        raise NotFound(f"no such container: {ref}", "`ps -a` lists the containers")

    # -- create and start ----------------------------------------------------------

    def create(self, opts: RunOptions) -> Container:
        require_root()
        limits = parse_limits({k: getattr(opts, k) for k in LIMIT_FIELDS})
        self.root.ensure()
        check_overlay_supported()
        if opts.name is not None and not NAME_RE.match(opts.name):
            raise UsageError(f"invalid container name {opts.name!r}",
                             "names use letters, digits and _ . - and start with a letter or digit")
        for what, value in (("hostname", opts.hostname), ("domainname", opts.domainname)):
            if value:
                check_uts_name(value, what)
        restart_policy = restart.parse(opts.restart)
        if restart_policy["Name"] != "no" and opts.auto_remove:
            raise UsageError("conflicting options: --restart and --rm", "a container that restarts cannot remove itself: drop one")
        requested_env = user_env(opts.env_file, opts.env)
        mount_specs = parse_all(opts.volumes, opts.mounts, opts.tmpfs)  # all checked before anything is made
        security = security_settings(opts.cap_add, opts.cap_drop, opts.privileged, opts.security_opt, opts.user)
        mode, endpoints = self._network_mode(opts)
        joined = self._join_target(mode, opts) if mode.startswith("container:") else None
        if joined is not None:
            mode = f"container:{joined.id}"  # docker keeps the id: a rename cannot redirect it
        image = self.store.get(opts.image)
        img_cfg = image.config.get("config", {})
        _check_image_env(image.ref, img_cfg)
        self.store.ensure_unpacked(image)
        ports = _published_ports(opts, mode, img_cfg)
        entrypoint = (img_cfg.get("Entrypoint") or []) if opts.entrypoint is None else opts.entrypoint
        cmd = opts.cmd or img_cfg.get("Cmd") or []
        argv = [*entrypoint, *cmd]
        if not argv:
            raise UsageError(f"no command given and image {image.ref} has none", "add one: run IMAGE CMD …")
        cid = new_id()
        # docker: --net host takes the host's name, container:X takes X's, else the short id
        hostname = opts.hostname or (joined.config["hostname"] if joined
                                     else os.uname().nodename if mode == "host" else cid[:12])
        env = merge_env(img_cfg.get("Env", []), [f"HOSTNAME={hostname}"],
                        ["TERM=xterm"] if opts.tty else [], requested_env)
        if opts.init:
            from cshell.engine.container import initbin

            initbin.ensure()  # built now if `make venv` did not: refused before anything is made
        with self.root.locked():  # config.json comes later: the name is reserved in .name meanwhile
            taken = self._taken_names()
            name = opts.name or self._free_name(taken)
            if name in taken:
                raise Conflict(f'the container name "{name}" is already in use',
                               f"remove it first (rm -f {name}) or choose another --name")
            d = self.root.container_dir(cid)
            d.mkdir()
            atomic_write(d / ".name", name.encode())
        try:
            for sub in ("rw", "work", "merged"):
                (d / sub).mkdir()
            make_init_layer(d / "init")
            if opts.init:
                from cshell.engine.container import initbin

                initbin.make_placeholder(d / "init")
            domainname = opts.domainname or ""
            (d / "hostname").write_text(".".join(filter(None, (hostname, domainname))) + "\n")  # docker's
            own = "" if opts.network == "none" else f"127.0.1.1\t{own_names(hostname, domainname)}"
            (d / "hosts").write_text(hosts_text(own))  # docker: --net none has no line of its own
            (d / "resolv.conf").write_bytes(_default_resolv_conf())
            if opts.network == "host":  # docker copies the host's files for --network host
                for etc in ("hosts", "resolv.conf"):  # not `name`: that is the container's
                    with contextlib.suppress(OSError):
                        shutil.copyfile(f"/etc/{etc}", d / etc)
            write_json(d / "config.json", {
                "id": cid, "name": name, "created": now(), "image": image.ref, "image_id": image.id,
                "image_typed": opts.image,  # .Config.Image: as the user wrote it, as docker keeps it
                "layers": [str(layer.path) for layer in image.layers],
                "argv": argv, "cmd": cmd, "entrypoint": entrypoint or None, "env": env,
                "workdir": opts.workdir or img_cfg.get("WorkingDir") or "/", "hostname": hostname,
                "domainname": domainname,
                "tty": opts.tty, "interactive": opts.interactive, "auto_remove": opts.auto_remove,
                "network": mode, "ports": [b.to_json() for b in ports], "publish_all": opts.publish_all,
                **({"networks": endpoints} if endpoints else {}),
                "exposed": sorted(img_cfg.get("ExposedPorts") or {}),  # ps shows them unpublished: 80/tcp
                "mounts": materialize(self.root, mount_specs),
                "limits": limits, "init": opts.init, "read_only": opts.read_only, "restart": restart_policy,
                "security": security, "user": opts.user if opts.user is not None else img_cfg.get("User") or "",
                "healthcheck": health.config_for(img_cfg, opts.healthcheck, opts.no_healthcheck or opts.builder),
                **({"builder": {"pid": os.getpid(), "start": process_start_time(os.getpid())}}
                   if opts.builder else {}),
            })
            write_json(d / "state.json", {"status": "created", "exit_code": 0, "pid": 0})
        except BaseException:
            shutil.rmtree(d, ignore_errors=True)
            raise
        c = Container(d)
        c.emit("create")
        return c

    def _network_mode(self, opts: RunOptions) -> tuple[str, dict[str, Any]]:
        """--network: a mode (bridge, none, host, container:X) or a user network's name, with
        --network-alias and --ip, which docker allows on user networks only."""
        from cshell.engine.net import usernets

        if not usernets.is_user_mode(opts.network or "bridge"):  # docker 20.10 ignores both there
            if opts.ip or opts.network_aliases:
                trace.step("--ip and --network-alias apply to user-defined networks only: ignored, as docker does")
            return parse_mode(opts.network), {}
        net = usernets.find(self.root, opts.network)
        if net is None:
            raise NotFound(f"network {opts.network} not found", "use bridge, none, host, container:NAME or a network of `network ls` (network create NAME makes one)")
        if opts.ip:
            usernets.check_ip(net, opts.ip)
        return net.name, {net.name: {"aliases": list(opts.network_aliases), "ip": opts.ip or ""}}

    def _taken_names(self) -> set[str]:
        """Every container's name, and the names of those being created right now (.name)."""
        names: set[str] = set()
        if not self.root.containers.is_dir():
            return names
        for d in self.root.containers.iterdir():
            with contextlib.suppress(OSError, ValueError, KeyError):
                names.add(read_json(d / "config.json")["name"])
                continue
            with contextlib.suppress(OSError):
                names.add((d / ".name").read_text())
        return names

    @staticmethod
    def _free_name(taken: set[str]) -> str:
        if len(taken) >= len(ADJECTIVES) * len(SCIENTISTS):
            raise Conflict("every generated name is taken", "give the container a --name")
        while True:
            name = f"{random.choice(ADJECTIVES)}_{random.choice(SCIENTISTS)}"
            if name not in taken:
                return name

    def launch(self, c: Container, attached: bool, stdin: bool | None = None) -> Launch:
        """Fork the shim (twice, so no shell is its parent) and wait until PID 1 runs.
        ``stdin``: pass ours to a -i container (default: when attached; start -a: only with -i)."""
        channel, status_w, trace_w = open_channel()
        io = ShimIO(status_w=status_w, trace_w=trace_w, attached=attached)
        launch = Launch(c, channel)
        tty, interactive = c.config["tty"], c.config["interactive"] and (attached if stdin is None else stdin)
        if tty:
            io.pty_master, io.pty_slave, io.pty_path = terminal.open_pty()
            launch.pty_master = io.pty_master
        elif interactive:
            io.stdin_r, launch.stdin_w = os.pipe()
            os.set_inheritable(launch.stdin_w, False)
        try:
            net = self._prepare_network(c)
        except BaseException:
            for fd in (status_w, trace_w, io.stdin_r, io.pty_slave, io.pty_master, launch.stdin_w):
                if fd is not None:
                    os.close(fd)
            channel.close()
            raise
        argv = c.config["argv"]
        if c.config.get("init"):
            from cshell.engine.container import initbin

            initbin.ensure()
            argv = [initbin.TARGET, "--", *argv]
        spec = ProcessSpec(argv=argv, env=c.config["env"], cwd=c.config["workdir"],
                           tty=tty, hostname=c.config["hostname"], domainname=c.config.get("domainname", ""),
                           net=net.init_net,
                           security=security_plan(c.config, self.root.path))
        plan = c.rootfs_plan()
        middle = os.fork()
        if middle == 0:
            if os.fork() == 0:
                keep = {0, 1, 2, status_w, trace_w, io.stdin_r, io.pty_master, io.pty_slave, *net.fds()}
                close_all_but({fd for fd in keep if fd is not None})
                run_shim(c, spec, plan, io, net, start_again=lambda: self._restart_by_policy(Container(c.dir)))
            os._exit(0)
        os.waitpid(middle, 0)
        net.close_fds()  # the shim holds them now (the reserved ports, the joined namespace)
        for fd in (status_w, trace_w, io.stdin_r, io.pty_slave):
            if fd is not None:
                os.close(fd)
        channel.await_start()
        if channel.error:
            code, message = channel.error
            self._release_failed_start(c, code, message)
            raise ContainerCommandError(message, _start_hint(c, code, message), exit_code=code)
        with contextlib.suppress(FileNotFoundError):  # --rm: a fast container may be gone already
            c.state = read_json(c.dir / "state.json")
        return launch

    def _prepare_network(self, c: Container) -> NetPlan:
        """Bridge, lease and reserved ports (or the namespace to join), and /etc/hosts to match."""
        from cshell.engine.net import usernets
        from cshell.engine.net.portmap import PortBinding

        mode = c.config.get("network", "none")
        join_pid = self._running_join_target(mode) if mode.startswith("container:") else 0
        ports = [PortBinding.from_json(p) for p in c.config.get("ports", [])]
        network = usernets.network_for(self.root, mode)
        if network.user is not None:
            net = network.prepare(c.id, "bridge", ports, **usernets.endpoint(c.config, network.name))
        else:
            net = network.prepare(c.id, mode, ports, join_pid)
        try:
            if net.mode == "bridge":  # docker's line: the address, then the hostname (and the name)
                names = own_names(c.config["hostname"], c.config.get("domainname", ""), c.name)
                atomic_write(c.dir / "hosts", hosts_text(f"{net.ip}\t{names}").encode())
                if network.user is not None:  # the peers' names, and ours in theirs
                    usernets.refresh_hosts(self.root, network)
            elif net.mode == "container":  # docker shares the joined container's files too
                joined = self.get(mode.partition(":")[2])
                for etc in ("hosts", "resolv.conf"):
                    shutil.copyfile(joined.dir / etc, c.dir / etc)
        except BaseException:
            net.close_fds()
            usernets.release_all(self.root, c.id)
            raise
        return net

    def _join_target(self, mode: str, opts: RunOptions) -> Container:
        """--net container:REF at create: it must exist, and docker's conflicting options are refused."""
        if opts.hostname:
            raise UsageError("conflicting options: hostname and the network mode",
                             "a container that joins another's network takes its hostname; drop -h")
        ref = mode.partition(":")[2]
        target = self.get(ref)
        if target.config.get("network", "").startswith("container:"):
            target = self.get(target.config["network"].partition(":")[2])  # join the owner itself
        return target

    def _running_join_target(self, mode: str) -> int:
        ref = mode.partition(":")[2]
        try:
            target = self.get(ref)
        except NotFound:
            raise NotFound(f"cannot join the network of container {ref[:12]}: it no longer exists",
                           "remove this container and run it again with another --net") from None
        if not target.alive():
            raise Conflict(f"cannot join the network of {target.name}: it is not running",
                           f"start it first: start {target.name}")
        return target.pid

    def _release_failed_start(self, c: Container, code: int, message: str) -> None:
        """A start failed: give back what the attempt took, keep everything the container owns.

        The network, the cgroup and any mount the attempt left are released; the
        writable layer, the volumes, config.json and the name stay, and state.json
        keeps its status and records the error, as docker's State.Error does. Each
        step runs even when an earlier one failed: this must never lose the container.
        """
        work = Cleanup()
        work.attempt(f"{c.name}: network", release_network, self.root, c.id)
        work.attempt(f"{c.name}: cgroup", cgroups.remove, c.id)
        work.attempt(f"{c.name}: mounts", self._unmount_leftovers, c)
        c.state = c.reload_state()  # the shim may have written meanwhile
        if c.state.get("status") != "running":
            work.attempt(f"{c.name}: state.json", c.save_state, error=message, exit_code=code, pid=0)

    def _discard(self, c: Container) -> None:
        """Remove a container that never ran (its first start failed): only `run` may do this."""
        Network(self.root).release(c.id)
        cgroups.remove(c.id)
        c.delete_files(volumes=True)

    def start(self, c: Container) -> Container:
        """docker start. Under the container's own lock: of two starts at once one starts it
        and the other finds it running. A failed start leaves the container as it was."""
        require_root()
        with file_lock(c.dir / ".start.lock"):
            c.state = c.reload_state()  # another start may have run it meanwhile
            with contextlib.suppress(FileNotFoundError):
                (c.dir / STOPPED_MARK).unlink()  # started by the user: the policy applies again
            if c.paused:
                raise Conflict(f"cannot start a paused container {c.name}", f"unpause it instead: unpause {c.name}")
            if c.running:
                return c  # docker start on a running container does nothing
            self.launch(c, attached=False).channel.close()
        return c

    def _restart_by_policy(self, c: Container) -> None:
        """The shim's restart (--restart): like start, unless the user stopped it meanwhile."""
        with file_lock(c.dir / ".start.lock"):
            c.state = c.reload_state()
            if c.running:
                return
            if (c.dir / STOPPED_MARK).exists():  # stopped while the shim waited: it stays down
                c.save_state(status="exited")
                return
            self.launch(c, attached=False).channel.close()

    def start_attached(self, c: Container, stdin: bool = False) -> int | None:
        """docker start -a [-i]: start it in the foreground and wait; its exit code. None: it
        was running already (docker attaches then: follow attach_output, then wait)."""
        require_root()
        with file_lock(c.dir / ".start.lock"):
            c.state = c.reload_state()
            with contextlib.suppress(FileNotFoundError):
                (c.dir / STOPPED_MARK).unlink()
            if c.paused:
                raise Conflict(f"cannot start a paused container {c.name}", f"unpause it instead: unpause {c.name}")
            if c.running:
                return None
            launch = self.launch(c, attached=True, stdin=stdin)
        return self.wait_attached(launch)

    def attach_output(self, c: Container) -> Iterator[bytes]:
        """What a running container writes from now until it exits. cshell's shim keeps no
        attach socket: this follows its log from the current end."""
        try:
            offset = c.log_path.stat().st_size
        except FileNotFoundError:
            offset = 0
        yield from self.logs(c, follow=True, start=offset)

    def run(self, opts: RunOptions) -> tuple[Container, int | None]:
        """docker run: create, start, and (unless detached) wait and return the exit code."""
        c = self.create(opts)
        try:
            launch = self.launch(c, attached=not opts.detach)
        except BaseException:
            self._discard(c)  # it never ran: nothing of the user's is in it yet
            raise
        if opts.detach:
            launch.channel.close()
            return c, None
        return c, self.wait_attached(launch)

    def wait_attached(self, launch: Launch) -> int:
        """Forward stdin until the shim reports the exit code; Ctrl-C is passed on."""
        stdin_to = launch.pty_master if launch.pty_master is not None else launch.stdin_w

        def told(presses: int) -> None:
            trace.info("sent SIGINT to the container's PID 1 (press Ctrl-C again to kill it)"
                       if presses == 1 else "sent SIGKILL to the container")

        with terminal.raw_terminal(launch.pty_master is not None), \
                terminal.follow_window_size(launch.pty_master), \
                terminal.forward_interrupts(launch.channel.pid, told):
            terminal.pump({}, stdin_to, launch.channel.status_r, launch.channel.feed)
        launch.channel.close()
        for fd in (launch.stdin_w, launch.pty_master):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        code = launch.channel.exit_code
        return code if code is not None else 255

    # -- stop and remove -------------------------------------------------------------

    def kill(self, c: Container, sig: int = signal.SIGKILL) -> None:
        """The signal to PID 1; a paused container is thawed after it, as docker does, so the
        signal is acted on (a frozen process acts on none, not even SIGKILL on cgroup v1)."""
        if c.alive():
            paused = cgroups.is_frozen(c.id)
            trace.step(f"kill({c.pid}, {signal.Signals(sig).name})")
            c.emit("kill", signal=int(sig))
            with contextlib.suppress(ProcessLookupError):
                os.kill(c.pid, sig)
            if paused:
                with contextlib.suppress(OSError):  # the group may be gone with the container
                    cgroups.thaw(c.id)

    def top(self, c: Container, ps_args: list[str]) -> Top:
        """docker top: the host's ps of the container's processes, with their PIDs inside it."""
        from cshell.engine.container.top import top

        if not c.alive():
            raise Conflict(f"container {c.name} is not running", f"`ps -a` shows its state; start it first: start {c.name}")
        return top(c.id, ps_args)

    def rename(self, c: Container, new: str) -> None:
        """docker rename: config.json's name, under the state root's lock (names are unique)."""
        require_root()
        if not NAME_RE.match(new):
            raise UsageError(f"invalid container name {new!r}",
                             "names use letters, digits and _ . - and start with a letter or digit")
        if new == c.name:
            raise UsageError("renaming a container with the same name as its current name",
                             "give it a different name")
        with self.root.locked():
            if new in self._taken_names():
                raise Conflict(f'the container name "{new}" is already in use', f"choose another, or remove it (rm -f {new})")
            c.config = read_json(c.dir / "config.json")  # as it is now
            trace.step(f"# config.json: name {c.config['name']} -> {new}")
            old, c.config["name"] = c.config["name"], new
            write_json(c.dir / "config.json", c.config)
        c.emit("rename", oldName=f"/{old}")

    @staticmethod
    def published_ports(c: Container) -> list[tuple[str, str]]:
        """docker port: ("80/tcp", "0.0.0.0:8080") for each published port while it runs, by port."""
        if not c.running:
            return []
        ports = (c.state.get("network") or {}).get("ports", [])
        return [(f"{p['ctr_port']}/{p['proto']}", f"{p.get('host_ip') or '0.0.0.0'}:{p['host_port']}")
                for p in sorted(ports, key=lambda p: (p["ctr_port"], p["proto"]))]

    def restart(self, c: Container, timeout: float = 10) -> None:
        """docker restart: stop (SIGTERM, SIGKILL after the grace time), then start."""
        self.stop(c, timeout)
        c.state = c.reload_state()
        self.start(c)

    # -- pause ------------------------------------------------------------------------

    def pause(self, c: Container) -> None:
        """docker pause: freeze the container's cgroup; its processes stop where they are."""
        require_root()
        if not c.alive():
            raise Conflict(f"container {c.name} is not running", f"`ps -a` shows its state; start it first: start {c.name}")
        if c.paused:
            raise Conflict(f"container {c.name} is already paused", f"unpause {c.name} lets it run again")
        cgroups.freeze(c.id)
        c.emit("pause")

    def unpause(self, c: Container) -> None:
        """docker unpause: thaw the container's cgroup."""
        require_root()
        if not c.paused:
            raise Conflict(f"container {c.name} is not paused", "`ps` shows (Paused) after a paused container's status")
        cgroups.thaw(c.id)
        c.emit("unpause")

    def wait(self, c: Container) -> int:
        """docker wait: block until the container is not running; its exit code."""
        while c.alive():
            wait_pid_exit(c.pid, 1.0)
        self._wait_recorded(c)
        c.state = c.reload_state()
        return int(c.state.get("exit_code") or 0)

    def kill_running(self, c: Container, sig: int = signal.SIGKILL) -> None:
        """docker kill: refused for a container that is not running; else the signal, and for
        SIGKILL wait until the shim recorded the exit, so `ps` right after shows it exited."""
        require_root()
        if not c.alive():
            raise Conflict(f"cannot kill container {c.name}: it is not running",
                           f"`ps -a` shows its state; start it first: start {c.name}")
        _stopped_by_user(c)
        self.kill(c, sig)
        if sig == signal.SIGKILL:
            wait_pid_exit(c.pid, 5)
            self._wait_recorded(c)

    def stop(self, c: Container, timeout: float = 10) -> None:
        """docker stop: SIGTERM, then SIGKILL after ``timeout`` seconds (PID 1 may ignore TERM)."""
        require_root()
        _stopped_by_user(c)  # no restart policy brings it back (nor one waiting to)
        if c.alive():
            self.kill(c, signal.SIGTERM)
            if not wait_pid_exit(c.pid, timeout if 0 <= timeout < 1e9 else None):  # -1: forever, as docker
                trace.info(f"{c.name} did not stop within {timeout:g}s of SIGTERM: SIGKILL")
                self.kill(c, signal.SIGKILL)
                wait_pid_exit(c.pid, 5)
        self._wait_recorded(c)
        c.emit("stop")

    def _wait_recorded(self, c: Container, timeout: float = 3) -> None:
        """Give the shim time to write the exit; if it is gone, settle the container ourselves."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                c.state = read_json(c.dir / "state.json")
            except FileNotFoundError:
                return  # --rm: the shim removed it
            if c.state.get("status") != "running" or not c.shim_alive():
                break
            time.sleep(0.005)
        if c.state.get("status") == "running" and not c.shim_alive():
            work = Cleanup()
            self._settle_lost(c, work)
            if work.errors:
                raise RuntimeFailure(f"cleaning up after {c.name}'s shim: {work.errors[0]}",
                                     "run `system check --repair` (a later command retries too)")

    def _settle_lost(self, c: Container, work: Cleanup) -> None:
        """Its shim is gone: nobody reaps PID 1, logs its output or releases what it holds.

        containerd's cleanupAfterDeadShim: kill what is left of the container,
        release its veth, rules, lease, cgroup and any host mount below its
        directory, and record exit status 255 (unknown). Each step is tried even
        when an earlier one failed; running it twice does nothing more.
        """
        what = f"container {c.name}"
        if c.alive():  # the same process (start time checked): never a PID reused by someone else
            work.attempt(f"{what}: kill PID 1 ({c.pid})", self._kill_orphan, c)
        work.attempt(f"{what}: network", release_network, self.root, c.id)
        left = work.attempt(f"{what}: cgroup", cgroups.remove, c.id)
        if left:
            work.errors.append(f"{what}: cgroup {left[0]} still has processes")
        work.attempt(f"{what}: mounts", self._unmount_leftovers, c)
        if c.alive():
            work.errors.append(f"{what}: PID 1 ({c.pid}) survived SIGKILL; state left as running")
            return
        if c.dir.is_dir():  # `rm` may have removed it meanwhile
            work.attempt(f"{what}: state.json", c.save_state, status="exited", pid=0, finished_at=now(),
                         exit_code=255, network={},
                         error="the shim ended before the container; exit status unknown")
        if c.config.get("auto_remove"):  # --rm: the shim would have removed it
            work.attempt(f"{what}: remove (--rm)", c.delete_files, volumes=True)
        work.note(f"{what}: its shim was gone: exited (255)")

    def _kill_orphan(self, c: Container) -> None:
        """SIGKILL PID 1 (the kernel then kills its whole pid namespace) and what is in its cgroup."""
        trace.step(f"kill({c.pid}, SIGKILL)  # its shim is gone: nobody would reap it")
        with contextlib.suppress(ProcessLookupError):
            os.kill(c.pid, signal.SIGKILL)
        for pid in cgroups.processes(c.id):  # e.g. an `exec` helper still joining
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            cgroups.thaw(c.id)  # a paused container acts on no signal until thawed
        wait_pid_exit(c.pid, 5)

    @staticmethod
    def _unmount_leftovers(c: Container) -> None:
        """Host mounts below the container's directory (its own live only in its namespace)."""
        for point in mounts_below(c.dir):
            detach_mount(point)

    def remove(self, c: Container, force: bool = False, volumes: bool = False) -> None:
        require_root()
        if force:
            _stopped_by_user(c)
        if c.alive():
            if not force and c.paused:
                raise Conflict(f"cannot remove a paused container {c.name}",
                               f"unpause and stop it first, or force it: rm -f {c.name}")
            if not force:
                raise Conflict(f"container {c.name} is running",
                               f"stop it first (stop {c.name}) or force it: rm -f {c.name}")
            self.kill(c, signal.SIGKILL)
            wait_pid_exit(c.pid, 5)
            self._wait_recorded(c)
        work = Cleanup()
        # Normally the shim's job; not if it was killed. Every step runs, whatever failed before.
        work.attempt(f"{c.name}: network", release_network, self.root, c.id)
        left = work.attempt(f"{c.name}: cgroup", cgroups.remove, c.id)
        work.attempt(f"{c.name}: mounts", self._unmount_leftovers, c)
        if left:
            raise RuntimeFailure(f"cgroup {left[0]} is still busy", "a process escaped the container; kill it and retry")
        if mounts_below(c.dir):  # rm -rf must never descend into a mounted host directory
            raise RuntimeFailure(f"{c.name}: a mount below {c.dir} could not be detached",
                                 f"{work.errors[0] if work.errors else 'umount it'}, then retry")
        trace.step(f"rm -rf {c.dir}")
        c.delete_files(volumes)
        c.emit("destroy")

    def reconcile(self) -> Cleanup:
        """On start-up: make state.json tell the truth and remove what a crash left.

        - a container recorded as running whose shim is gone: its PID 1 (if it is
          still the same process) killed, its network, cgroup and mounts
          released, exit status 255;
        - half-made things: a layer half unpacked or a blob half written whose
          maker is gone (nobody holds its lock), a container directory without
          state.json, an empty cgroup of ours, a lease, veth or rule of no
          running container. A directory without state.json is left alone while
          young, since another shell may be making it right now.

        Every step is idempotent and runs even when an earlier one failed; the
        result lists what was fixed (``done``) and what failed (``errors``, one
        line each). Costs a few directory looks when there is nothing to do.
        """
        work = Cleanup()
        if any(self.root.layers.glob("*.unpacking")) or any(self.root.images.glob("blobs/sha256/.ingest-*")):
            work.done += work.attempt("leftovers", self._remove_partials) or []
        work.done += work.attempt("leftovers", _remove_stale, self.root.path.glob("distribution/*/*"),
                                  min_age=PARTIAL_DOWNLOAD_AGE) or []
        work.done += work.attempt("leftovers", _remove_dead_temps, self.root.path) or []
        work.done += work.attempt("cgroups", cgroups.remove_orphans) or []
        if not self.root.containers.is_dir():
            return work
        host_mounts = work.attempt("mountinfo", mounts_below, self.root.containers) or []
        for d in self.root.containers.iterdir():
            work.attempt(f"container {d.name[:12]}", self._reconcile_one, d, work,
                         any(p.startswith(f"{d}/") for p in host_mounts))
        network = Network(self.root)
        work.done += work.attempt("network", network.reconcile, self._holds_network, rules=bool(work.done)) or []
        if (self.root.path / "networks").is_dir():
            from cshell.engine.net import usernets

            work.done += work.attempt("networks", usernets.reconcile, self.root, self._holds_network,
                                      rules=bool(work.done)) or []
        return work

    def _remove_partials(self) -> list[str]:
        """Layers a killed unpack was making (nobody holds them), at once: an unpack is redone
        anyway. Blobs a killed commit, pull or load was writing, once a while old: until then
        `system check` reports them, and its --repair or `system prune` removes them."""
        removed = []
        for partial in self.store.partials(blob_age=PARTIAL_BLOB_AGE):
            self.store.remove_partial(partial)
            removed.append(f"{partial.path} (left by an interrupted {partial.purpose})")
        return removed

    def _reconcile_one(self, d: Path, work: Cleanup, has_mounts: bool) -> None:
        if not (d / "state.json").exists():
            work.done += _remove_stale([d])
            return
        try:
            c = Container(d)
        except (FileNotFoundError, ValueError):
            return  # removed meanwhile
        if _orphaned_build_step(c):  # its build was killed: nobody will remove it
            self.remove(c, force=True)
            work.note(f"build step {c.short_id}: removed (its build is gone)")
        elif c.state.get("status") == "running" and not c.shim_alive():
            self._settle_lost(c, work)
        elif has_mounts and not c.shim_alive() and not c.alive():
            work.attempt(f"container {c.name}: mounts", self._unmount_leftovers, c)
            work.note(f"container {c.name}: leftover mounts detached")

    def _holds_network(self, cid: str) -> bool:
        """Its PID 1 runs, or its shim does (and will release the network itself)."""
        try:
            c = Container(self.root.container_dir(cid))
        except (FileNotFoundError, ValueError):
            return False
        return c.alive() or c.shim_alive()

    # -- logs -----------------------------------------------------------------------------

    def logs(self, c: Container, follow: bool = False, opts: LogOptions | None = None,
             start: int = 0) -> Iterator[bytes]:
        """docker logs: the raw log as it grows, or lines (--tail, -t, --since: see logs.py)."""
        if opts is not None and opts.by_lines:
            from cshell.engine.container.logs import lines

            started = int(parse_time(c.state.get("started_at", "")) * 1e9)
            yield from lines(c.log_path, opts, started, c.alive)
            return
        follow = follow or bool(opts and opts.follow)
        try:
            f = open(c.log_path, "rb")  # noqa: SIM115 - closed in finally below
        except FileNotFoundError:
            return
        try:
            f.seek(start)
            while True:
                data = f.read(65536)
                if data:
                    yield data
                    continue
                if not follow or not c.alive():
                    if follow:  # drain what the last moments wrote
                        yield f.read()
                    return
                time.sleep(0.05)
        finally:
            f.close()

    # -- exec and join ----------------------------------------------------------------------

    def exec(self, c: Container, opts: ExecOptions) -> int:
        """docker exec: setns into all the container's namespaces and its cgroup, then exec."""
        require_root()
        if not c.alive():
            raise Conflict(f"container {c.name} is not running", f"start it first: start {c.name}")
        if c.paused:
            raise Conflict(f"container {c.name} is paused, unpause the container before exec",
                           f"unpause {c.name}")
        env = merge_env(c.config["env"], ["TERM=xterm"] if opts.tty else [], user_env(opts.env_file, opts.env))
        config = c.config if opts.user is None else {**c.config, "user": opts.user}
        if opts.user:
            from cshell.engine.container.users import check_spec

            check_spec(opts.user)
        security = security_plan(config, self.root.path)  # the container's confinement
        if opts.privileged:  # docker exec --privileged: every capability; the seccomp filter and mounts stay
            from cshell.engine.kernel import caps as capmod

            every = capmod.effective_set([], [], True)
            security.caps, security.caps_text = capmod.mask(every), capmod.short(every)
        spec = ProcessSpec(argv=opts.cmd, env=env, cwd=opts.workdir or c.config["workdir"], tty=opts.tty,
                           security=security)
        kinds = [k for k in namespaces.JOINABLE if k != "user"]
        command = " ".join(opts.cmd)  # docker names the command in the action: "exec_start: sh -c ..."
        c.emit(f"exec_start: {command}")
        code = spawn_joined(c.pid, kinds, spec, cgroup_of=c.id, interactive=opts.interactive)
        c.emit("exec_die", exitCode=code)
        return code

    def join(self, pid: int, kinds: list[str], argv: list[str]) -> int:
        """The article's set_ns.c: a host program in some of a process's namespaces."""
        require_root()
        spec = ProcessSpec(argv=argv, env=[f"{k}={v}" for k, v in os.environ.items()], cwd="")
        owner = next((c for c in self.list() if c.pid == pid and c.alive()), None)
        if owner is not None:  # a container's PID 1: the program is confined as the container is
            spec.security = security_plan(owner.config, self.root.path)
        return spawn_joined(pid, kinds, spec, cgroup_of=None, interactive=True, inherit_stdio=True)


STOPPED_MARK = "stopped-by-user"  # its own file: the shim rewrites state.json and would lose a flag there


def _stopped_by_user(c: Container) -> None:
    """Mark that the user stopped it, so its shim does not restart it (--restart). Under the
    start lock: a restart the shim is launching right now is either done (the caller sees the
    container running and signals it) or will find the mark and give up."""
    if (c.config.get("restart") or {}).get("Name", "no") == "no":
        return
    with contextlib.suppress(OSError, ValueError), file_lock(c.dir / ".start.lock"):
        (c.dir / STOPPED_MARK).touch()
        c.state = c.reload_state()


def release_network(root: StateRoot, cid: str) -> None:
    """The container's addresses on every network, its veths and rules (peers' /etc/hosts told)."""
    from cshell.engine.net import usernets

    usernets.release_all(root, cid)


def _check_image_env(ref: str, img_cfg: dict[str, Any]) -> None:
    """An image made elsewhere may carry a variable execve refuses (no name, a NUL)."""
    for item in img_cfg.get("Env") or []:
        try:
            check_variable(item)
        except UsageError as e:
            raise UsageError(f"image {ref}: {e.message}",
                             "rebuild the image without it (its ENV lines); nothing was created") from None


def _start_hint(c: Container, code: int, message: str) -> str:
    """What to do about a start that failed, from the cause the shim or init reported."""
    if message.startswith("cgroup write refused"):
        return "the kernel refused that limit: `help run` lists the ranges; nothing was created"
    if message.startswith(("unable to find user", "unable to find group")):
        return "use a user the image's /etc/passwd defines, or numeric ids: -u 1000:1000"
    if message.startswith("volume ") and "source" in message:
        return f"put the source back as it was, or remove the container (rm {c.name}) and run it again"
    if message.startswith("overlay mount failed: the directory"):
        return "something removed it from the state root; `system check` lists what else is missing"
    if message.startswith("overlay mount failed"):
        return ("the state root must be on a filesystem that can hold an overlay upper dir "
                "(ext4, xfs, tmpfs; not overlayfs): choose another with --root DIR")
    if "environment variable" in message:
        return "a variable has no name or holds a NUL: fix the image's ENV, or remove the container and run it again"
    if code in (126, 127):
        return "check the command's name and that it exists in the image (run IMAGE ls /bin)"
    return "the kernel refused a setup step; `explain on` shows which"


def _remove_stale(paths: Iterable[Path], min_age: float = 30) -> list[str]:
    removed = []
    for path in paths:
        with contextlib.suppress(OSError):
            if time.time() - path.stat().st_mtime > min_age:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink()  # a blob a crash left half-written
                removed.append(str(path))
    return removed


def _remove_dead_temps(root: Path) -> list[str]:
    """atomic_write's temp files (.NAME.PID.tmp) whose writer is gone: killed between its
    write and its rename. Looked for where state files live: the root and two levels down."""
    removed = []
    for pattern in (".*.tmp", "*/.*.tmp", "*/*/.*.tmp"):
        for path in root.glob(pattern):
            pid = path.name.rsplit(".", 2)[-2]
            if pid.isdigit() and not process_start_time(int(pid)):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed.append(str(path))
    return removed


def _orphaned_build_step(c: Container) -> bool:
    """A build's RUN container whose builder process is gone (killed mid-build)."""
    builder = c.config.get("builder")
    return bool(builder) and process_start_time(builder["pid"]) != builder["start"]


def check_uts_name(value: str, what: str) -> None:
    """-h and --domainname: docker's grammar (RFC 1123 labels joined by dots), so what reaches
    sethostname(2), /etc/hostname and /etc/hosts is one name: never a second line or a space."""
    labels = value.split(".")
    bad = next((ch for ch in value if ch != "." and not (ch.isascii() and (ch.isalnum() or ch == "-"))), None)
    if bad is not None:
        cause = f"'{printable(bad)}' is not allowed" if bad != " " else "a space is not allowed"
    elif "" in labels:
        cause = "an empty label: two dots, or a dot at one end"
    elif any(len(label) > 63 for label in labels):
        cause = "a label is longer than 63 characters"
    elif any(not LABEL_RE.fullmatch(label) for label in labels):
        cause = "a label starts or ends with '-'"
    elif len(value) > HOST_NAME_MAX:
        cause = f"longer than {HOST_NAME_MAX} characters"
    else:
        return
    raise UsageError(f"invalid {what} format: '{printable(value)}' ({cause})",
                     "letters, digits and '-' in labels of 1-63 joined by dots, at most 64 in all, "
                     "e.g. -h web-1 --domainname example.com")


def own_names(hostname: str, domainname: str, *more: str) -> str:
    """The container's names on its /etc/hosts line, docker's order: host.domain, host, then more."""
    fqdn = f"{hostname}.{domainname}" if domainname else hostname
    return " ".join(dict.fromkeys([fqdn, hostname, *more]))


def hosts_text(own_line: str) -> str:
    """/etc/hosts as docker writes it: localhost, the IPv6 names, then the container's own line."""
    return ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
            "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n"
            "ff02::2\tip6-allrouters\n" + (f"{own_line}\n" if own_line else ""))


def _published_ports(opts: RunOptions, mode: str, img_cfg: dict[str, Any]) -> list:
    """-p and -P as bindings (host port 0: chosen at each start); docker's conflicts refused."""
    if not (opts.publish or opts.publish_all):
        return []
    from cshell.engine.net import portmap

    if mode.startswith("container:"):
        raise UsageError("conflicting options: port publishing and the container type network mode",
                         "publish the ports on the container whose network is joined")
    if mode == "host":
        trace.info("WARNING: published ports are discarded when using host network mode (as in docker)")
        return []
    if mode == "none":
        raise UsageError("--net none has no network to publish ports on", "drop -p/-P, or use --net bridge")
    ports = [b for spec in opts.publish for b in portmap.parse_publish(spec)]
    if opts.publish_all:
        given = {b.key for b in ports}
        ports += [b for b in portmap.parse_exposed(img_cfg.get("ExposedPorts")) if b.key not in given]
    portmap.check_unique(ports)
    return ports


def check_overlay_supported() -> None:
    """overlayfs is there, or loaded now: a fresh Debian VM has it as a module nobody has
    asked for yet (mount(2) would load it, but we look before we mount)."""
    for attempt in (1, 2):
        with open("/proc/filesystems") as f:
            if "\toverlay\n" in f.read():
                return
        if attempt == 1:
            import subprocess

            trace.step("modprobe overlay  # not loaded yet")
            subprocess.run(["modprobe", "overlay"], capture_output=True, check=False)
    raise RuntimeFailure("this kernel has no overlayfs", "load it: modprobe overlay")
