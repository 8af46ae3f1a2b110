"""Debian's Docker (docker.io 20.10) as a reference engine, started in isolation.

``Dockerd`` runs ``dockerd`` with everything of its own under one temporary
directory: data-root, exec-root (its containerd too), pidfile, socket. Its
bridge is ``cshdock0`` on 10.213.0.0/24, a subnet cshell never picks (its pools
are 172.17-31/16 and 192.168/20), and it is started with ``--iptables=false``:
the other engineers' and tests' cshell bridges beside it keep a FORWARD policy
of ACCEPT and see no DOCKER chains. Whatever it still changes is undone on
``stop()``: Docker's own chains and the FORWARD policy as saved before the start
(surgically: a blind iptables-restore would also undo the rules concurrent cshell
runs added meanwhile), the bridge, every mount under its directory.

One daemon at a time on the machine: ``flock /run/lock/cshell-parity-dockerd.lock``
is held for its whole life (two daemons would fight over the bridge and containerd).

Importable by any test package: ``from parity.dockerd import Dockerd, docker_or_skip`` (pytest puts tests/ on sys.path).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

DOCKER = "/usr/bin/docker"  # Debian's 20.10 client; /usr/local/bin/docker may be another version
DOCKERD = "/usr/sbin/dockerd"
LOCK = "/run/lock/cshell-parity-dockerd.lock"
BRIDGE = "cshdock0"
BIP = "10.213.0.1/24"
# What dockerd may switch on the host (--ip-forward, br_netfilter): saved before, put back after.
SYSCTLS = ("/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv4/conf/all/forwarding",
           "/proc/sys/net/bridge/bridge-nf-call-iptables", "/proc/sys/net/bridge/bridge-nf-call-ip6tables")
START_TIMEOUT = 40.0
LOCK_TIMEOUT = 600.0


def _iptables_policies() -> dict[str, str]:
    """{chain: policy} of the filter table's built-in chains."""
    out = subprocess.run(["iptables", "-S"], capture_output=True, text=True, check=False).stdout
    return {w[1]: w[2] for w in (line.split() for line in out.splitlines()) if w[:1] == ["-P"] and len(w) == 3}


def _docker_chains(table: str) -> list[str]:
    out = subprocess.run(["iptables", "-t", table, "-S"], capture_output=True, text=True, check=False).stdout
    return [w[1] for w in (line.split() for line in out.splitlines())
            if w[:1] == ["-N"] and len(w) > 1 and w[1].startswith("DOCKER")]


def _undo_docker_iptables(policies: dict[str, str]) -> None:
    """Remove the rules that jump to Docker's chains, then the chains; restore the policies."""
    for table in ("filter", "nat"):
        chains = _docker_chains(table)
        if not chains:
            continue
        rules = subprocess.run(["iptables", "-t", table, "-S"], capture_output=True, text=True,
                               check=False).stdout.splitlines()
        for rule in rules:
            words = rule.split()
            if words[:1] == ["-A"] and ("DOCKER" in rule or BRIDGE in rule) and not words[1].startswith("DOCKER"):
                subprocess.run(["iptables", "-t", table, "-D", *words[1:]], capture_output=True, check=False)
        for chain in chains:
            subprocess.run(["iptables", "-t", table, "-F", chain], capture_output=True, check=False)
        for chain in chains:
            subprocess.run(["iptables", "-t", table, "-X", chain], capture_output=True, check=False)
    now = _iptables_policies()
    for chain, policy in policies.items():
        if now.get(chain) != policy:
            subprocess.run(["iptables", "-P", chain, policy], capture_output=True, check=False)


def _sysctls() -> dict[str, str]:
    values = {}
    for path in SYSCTLS:
        with contextlib.suppress(OSError):
            values[path] = Path(path).read_text().strip()
    return values


def _restore_sysctls(saved: dict[str, str]) -> None:
    for path, value in saved.items():
        with contextlib.suppress(OSError):
            if Path(path).read_text().strip() != value:
                Path(path).write_text(value)


def reap_stale() -> None:
    """A daemon whose test run was killed (SIGKILL, a timeout) outlives it: with the lock held,
    any dockerd of ours still running is such an orphan. Stop it and undo what it left."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if argv[0] != DOCKERD or "--data-root" not in argv:
            continue
        data_root = Path(argv[argv.index("--data-root") + 1])
        if data_root.name == "data" and data_root.parent.name.startswith("cshell-dockerd-"):
            stale = Dockerd()
            stale.dir = data_root.parent
            stale.load_host_state()  # the policies and sysctls its run saved: put back, not forgotten
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry), 15)
            wait_gone(int(entry), 30)
            stale.stop()  # no proc of its own: kills what names its directory, unmounts, removes


def wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.1)


class DockerUnavailable(Exception):
    """docker.io is not installed or its daemon did not start; the message says why."""


class Dockerd:
    """An isolated dockerd: ``start()``, ``docker(*args)``, ``stop()`` (idempotent)."""

    def __init__(self) -> None:
        self.dir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.lock_fd: int | None = None
        self.policies: dict[str, str] = {}
        self.sysctls: dict[str, str] = {}

    @property
    def host(self) -> str:
        assert self.dir is not None
        return f"unix://{self.dir}/sock"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env.update(DOCKER_HOST=self.host, DOCKER_BUILDKIT="0", DOCKER_CONFIG=str(self.dir / "client"),
                   NO_COLOR="1", COLUMNS="250")
        return env

    def docker(self, *args: str, input: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([DOCKER, *args], input=input, capture_output=True, text=True, timeout=timeout,
                              env=self.env(), stdin=None if input is not None else subprocess.DEVNULL)

    def start(self) -> Dockerd:
        for binary in (DOCKER, DOCKERD):
            if not os.access(binary, os.X_OK):
                raise DockerUnavailable(f"{binary} is missing: apt-get install docker.io (make deps does)")
        self._take_lock()
        try:
            reap_stale()
            self._launch()
        except BaseException:
            self.stop()
            raise
        return self

    def _take_lock(self) -> None:
        self.lock_fd = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(self.lock_fd)
                    self.lock_fd = None
                    raise DockerUnavailable(f"another test run holds {LOCK} (its dockerd) for too long") from None
                time.sleep(0.5)

    def _launch(self) -> None:
        self.policies, self.sysctls = _iptables_policies(), _sysctls()
        self.dir = Path(tempfile.mkdtemp(prefix="cshell-dockerd-", dir="/tmp"))
        # on disk too: a run killed before stop() leaves them for the next run's reap_stale
        (self.dir / "host.json").write_text(json.dumps({"policies": self.policies, "sysctls": self.sysctls}))
        self.prepare_host()
        (self.dir / "client").mkdir()
        self._make_bridge()
        log = open(self.dir / "log", "wb")  # noqa: SIM115 - the daemon keeps it
        self.proc = subprocess.Popen(
            [DOCKERD, "--data-root", str(self.dir / "data"), "--exec-root", str(self.dir / "exec"),
             "--pidfile", str(self.dir / "pid"), "-H", self.host, "--storage-driver", "overlay2",
             "--bridge", BRIDGE, *self.network_flags(), "--config-file", str(self._config())],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DockerUnavailable(f"dockerd exited {self.proc.returncode}: {self._log_tail()}")
            if self.docker("version", timeout=10).returncode == 0:
                return
            time.sleep(0.3)
        raise DockerUnavailable(f"dockerd did not answer within {START_TIMEOUT:.0f} s: {self._log_tail()}")

    def prepare_host(self) -> None:
        """Called once the host's state is saved, before the daemon starts (a subclass's hook)."""

    def network_flags(self) -> list[str]:
        """Hands off the host's firewall and forwarding (a subclass may keep Docker's defaults)."""
        return ["--iptables=false", "--ip-masq=false", "--ip-forward=false"]

    def _config(self) -> Path:
        """No daemon.json of the host's (/etc/docker) is read: an empty one of our own."""
        path = self.dir / "daemon.json"
        path.write_text("{}\n")
        return path

    def _make_bridge(self) -> None:
        """Docker's docker0 would sit on 172.17/16, cshell's first pool: give it a bridge of our
        own name and subnet instead (`--bridge NAME` takes the subnet from its address)."""
        subprocess.run(["ip", "link", "add", BRIDGE, "type", "bridge"], capture_output=True, check=False)
        subprocess.run(["ip", "addr", "add", BIP, "dev", BRIDGE], capture_output=True, check=False)
        subprocess.run(["ip", "link", "set", BRIDGE, "up"], capture_output=True, check=False)

    def _log_tail(self) -> str:
        try:
            return " | ".join((self.dir / "log").read_text(errors="replace").splitlines()[-3:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Containers, daemon, its containerd, mounts, bridge, iptables: all of it gone."""
        self.stop_daemon()
        if self.dir is not None:
            self._kill_leftovers()
            self._unmount_all()
            subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True, check=False)
            subprocess.run(["ip", "link", "del", "docker0"], capture_output=True, check=False)
            _undo_docker_iptables(self.policies)
            _restore_sysctls(self.sysctls)
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
        if self.lock_fd is not None:
            os.close(self.lock_fd)  # releases the flock
            self.lock_fd = None

    def load_host_state(self) -> None:
        assert self.dir is not None
        with contextlib.suppress(OSError, ValueError):
            saved = json.loads((self.dir / "host.json").read_text())
            self.policies, self.sysctls = saved["policies"], saved["sysctls"]

    def stop_daemon(self) -> None:
        """Only the daemon and its containers: what it did to the host stays, as after `systemctl stop docker`."""
        if self.proc is not None and self.proc.poll() is None:
            ids = self.docker("ps", "-aq", timeout=30).stdout.split()
            if ids:
                self.docker("rm", "-f", *ids, timeout=60)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(timeout=10)

    def _kill_leftovers(self) -> None:
        """containerd and its shims name our directory on their command lines."""
        mark = str(self.dir)
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if mark in cmdline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(entry), 9)

    def _unmount_all(self) -> None:
        mark = str(self.dir)
        for _ in range(5):
            points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
                      if line.split()[4].startswith(mark)]
            if not points:
                return
            for point in sorted(points, key=len, reverse=True):
                subprocess.run(["umount", "-l", point], capture_output=True, check=False)

    def owns_mount(self, mountinfo_line: str) -> bool:
        """A mount of this daemon's (overlays, netns, shm): the leak check leaves them to stop()."""
        return self.dir is not None and str(self.dir) in mountinfo_line


def docker_or_skip() -> Dockerd:
    """A started daemon, or pytest.skip with the reason."""
    import pytest

    try:
        return Dockerd().start()
    except DockerUnavailable as e:
        pytest.skip(f"parity: Docker is not available: {e}")
