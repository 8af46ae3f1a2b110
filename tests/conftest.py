"""Fixtures shared by every test.

Kernel tests (``@pytest.mark.kernel``) make real containers as root, each on
its own state root, and are checked for leaks afterwards: no new host mount,
no shim or container process left, no cgroup directory left, and nothing of
the state root's network: no veth or bridge (our links carry an alias tag,
``cshell:BRIDGE[:ID]``), no iptables rule with that tag, no lease. A test that
leaves a running container fails too (after its containers are removed, so
one failure does not cascade into the next test).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LEAK_GRACE = 3.0  # seconds: a shim finishes (reaps, removes its cgroup) asynchronously

Cshell = Callable[..., subprocess.CompletedProcess]


def cshell_argv() -> list[str]:
    """The venv's entry point: the venv pytest runs in, else the repo's .venv."""
    for candidate in (Path(sys.executable).parent / "cshell", REPO / ".venv" / "bin" / "cshell"):
        if candidate.exists():
            return [str(candidate)]
    return [sys.executable, "-m", "cshell"]


def cshell_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CSHELL_ROOT"}
    env.update(NO_COLOR="1", COLUMNS="250", LINES="50")  # tables untruncated, no ANSI codes
    return env


def run_cshell(root: str | Path, *args: str, input: str | None = None, timeout: float = 60,
               prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, *cshell_argv(), "--root", str(root), *args], input=input,
                          capture_output=True, text=True, timeout=timeout, env=cshell_env(),
                          cwd=REPO, stdin=None if input is not None else subprocess.DEVNULL)


def wait_for(predicate: Callable[[], object], timeout: float = 5.0, interval: float = 0.01) -> object:
    """Poll until predicate() is truthy; return its last value (falsy on timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


# -- state ----------------------------------------------------------------------------


def shims_of(root: Path) -> list[int]:
    """Shim processes started for this state root (a fork keeps its parent's --root argv)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            comm = Path(f"/proc/{entry}/comm").read_text().strip()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if comm == "cshell-shim" and str(root).encode() in cmdline:
            out.append(int(entry))
    return out


@pytest.fixture
def state_root() -> Iterator[Path]:
    """A fresh state root on the host's own filesystem (overlayfs cannot be an upper dir)."""
    path = Path(tempfile.mkdtemp(prefix="cshell-test-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def cshell(state_root: Path) -> Cshell:
    """cshell("run", "--rm", "busybox", "true") -> CompletedProcess (text, timeout 60)."""
    def call(*args: str, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        return run_cshell(state_root, *args, input=input, timeout=timeout)
    return call


@pytest.fixture(scope="session", autouse=True)
def _ctrl_c_delivered() -> None:
    """Ctrl-C tests need SIGINT to work: a run started in the background (`cmd &`, nohup)
    inherits it ignored, and Python and every cshell child would keep ignoring it."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session", autouse=True)
def _private_client_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No test reads or writes the real ~/.cshell/config.json (logins, registry mirrors), nor reads
    Docker's: ~/.docker/config.json (logins) and /etc/docker (daemon.json, certs.d)."""
    names = ("CSHELL_CONFIG", "DOCKER_CONFIG", "CSHELL_DOCKER_ETC")
    saved = {name: os.environ.get(name) for name in names}
    os.environ["CSHELL_CONFIG"] = str(tmp_path_factory.mktemp("cshell-config") / "config.json")
    os.environ["DOCKER_CONFIG"] = str(tmp_path_factory.mktemp("docker-config"))
    os.environ["CSHELL_DOCKER_ETC"] = str(tmp_path_factory.mktemp("docker-etc"))
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def client_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test's own client config (logins, mirrors), and none of the tuning variables a
    developer may have exported (offline mode, push chunk size, layer bounds)."""
    path = tmp_path / "cshell-config" / "config.json"
    monkeypatch.setenv("CSHELL_CONFIG", str(path))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))  # Docker's: absent unless a test writes it
    monkeypatch.setenv("CSHELL_DOCKER_ETC", str(tmp_path / "docker-etc"))
    for name in ("CSHELL_OFFLINE", "CSHELL_PUSH_CHUNK", "CSHELL_MAX_LAYER_BYTES", "CSHELL_MAX_LAYER_RATIO"):
        monkeypatch.delenv(name, raising=False)
    return path


@pytest.fixture
def runtime(state_root: Path):  # noqa: ANN201 - cshell.engine.container.containers.Runtime
    from cshell.engine.container.containers import Runtime
    from cshell.engine.state import StateRoot

    return Runtime(StateRoot(state_root))


# -- the leak check ---------------------------------------------------------------------


def _read(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def _ppid(pid: int) -> int:
    stat = _read(f"/proc/{pid}/stat")
    return int(stat.rsplit(")", 1)[1].split()[1]) if stat else 0


def _root_arg(cmdline: list[str]) -> str | None:
    for i, word in enumerate(cmdline):
        if word == "--root" and i + 1 < len(cmdline):
            return cmdline[i + 1]
        if word.startswith("--root="):
            return word.partition("=")[2]
    return None


def _foreign(pid: int, ours: Path) -> bool:
    """True when the process belongs to another cshell session, e.g. one running
    concurrently: it or an ancestor was started with --root OTHER, or it is (a fork
    of) another pytest run. Unknown processes count as ours: the check stays strict."""
    own_cmdline = _read("/proc/self/cmdline")
    for _ in range(64):
        if pid <= 1:
            return False
        cmdline = _read(f"/proc/{pid}/cmdline")  # a fork keeps its parent's: shims do
        root = _root_arg(cmdline.split("\0"))
        if root is not None:
            return Path(root).absolute() != ours
        if "pytest" in cmdline:
            return cmdline != own_cmdline
        pid = _ppid(pid)
    return False


def _cshell_processes() -> dict[tuple[int, str], str]:
    """{(pid, start time): description} of shims and processes in a cshell cgroup."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        cmdline = _read(f"/proc/{entry}/cmdline").replace("\0", " ").strip()
        comm = _read(f"/proc/{entry}/comm").strip()
        cgroup = _read(f"/proc/{entry}/cgroup")
        stat = _read(f"/proc/{entry}/stat")
        if not stat or stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            continue  # gone, or a zombie an init has not reaped yet: holds nothing
        if "cshell-shim" in cmdline or "cshell-shim" in comm or "/cshell/" in cgroup or "/cshell.slice/" in cgroup:
            start = stat.rsplit(")", 1)[1].split()[19]
            found[(int(entry), start)] = f"pid {entry} ({comm}): {cmdline[:120]}"
    return found


def _cgroup_dirs() -> set[str]:
    # v1/hybrid: one per controller; v2: one directory; v2 under systemd: a scope per container.
    paths = (glob.glob("/sys/fs/cgroup/*/cshell/*/") + glob.glob("/sys/fs/cgroup/cshell/*/")
             + glob.glob("/sys/fs/cgroup/cshell.slice/cshell-*.scope/"))
    return {p.rstrip("/") for p in paths}


FOREIGN_MOUNTS = ("/cshell-dockerd-",)  # the parity harness's dockerd (tests/parity/dockerd.py): its own stop() cleans


def _mount_lines() -> set[str]:
    """The host's mounts, but a reference engine's own (Docker's overlays, netns, shm under its
    temporary directory): they are Docker's while its daemon runs, never cshell's."""
    return {line for line in _read("/proc/self/mountinfo").splitlines()
            if not any(mark in line for mark in FOREIGN_MOUNTS)}


def _open_fds() -> dict[int, str]:
    """This process's descriptors: engine calls made in-process (the runtime fixture) must
    close what they open, as a long-lived REPL would otherwise run out of them."""
    fds = {}
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the descriptor listdir itself used, closed by now
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
    return fds


def _snapshot() -> tuple[set[str], dict[tuple[int, str], str], set[str]]:
    return _mount_lines(), _cshell_processes(), _cgroup_dirs()


def _network_leaks(root: Path) -> list[str]:
    """The state root's network objects still there: links, iptables rules, leases.

    Only this root's: its bridge has a name of its own and every object is tagged
    with it, so tests running concurrently (other state roots) are never blamed.
    """
    from cshell.engine.net.network import bridge_name
    from cshell.engine.state import StateRoot

    bridge = bridge_name(StateRoot(root))
    tag = f"cshell:{bridge}"
    leaked = []
    for name in sorted(os.listdir("/sys/class/net")):
        alias = _read(f"/sys/class/net/{name}/ifalias").strip()
        if name == bridge or alias.split(" ")[0] == tag or alias.startswith(tag + ":"):
            leaked.append(f"link: {name} (alias {alias!r})")
    save = shutil.which("iptables-save", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if save is not None:
        rules = subprocess.run([save], capture_output=True, text=True, check=False).stdout
        leaked += [f"iptables rule: {line}" for line in rules.splitlines() if tag in line]
    leases = root / "network" / "leases"
    if leases.is_dir():
        leaked += [f"lease: {p}" for p in sorted(leases.iterdir()) if not p.name.startswith(".")]
    return leaked


def _leaks(before, ours: Path) -> list[str]:  # noqa: ANN001 - a _snapshot()
    mounts0, procs0, cgroups0 = before
    mounts, procs, cgroups = _snapshot()
    leaked = [f"mount: {line}" for line in sorted(mounts - mounts0)]
    leaked += _network_leaks(ours)
    leaked += [f"process: {desc}" for key, desc in procs.items()
               if key not in procs0 and not _foreign(key[0], ours)]
    for d in sorted(cgroups - cgroups0):
        members = [int(p) for p in _read(f"{d}/cgroup.procs").split()]
        if not any(_foreign(p, ours) for p in members):
            leaked.append(f"cgroup: {d} (processes: {members or 'none'})")
    return leaked


def _remove_leftovers(root: Path) -> list[str]:
    """Force-remove every container and user network in the state root; return what was left."""
    from cshell.engine.container.containers import Runtime
    from cshell.engine.state import StateRoot

    rt = Runtime(StateRoot(root))
    running = []
    try:
        rt.reconcile()
        for c in rt.list(all=True):
            if c.running:
                running.append(c.name)
            try:
                rt.remove(c, force=True)
            except Exception as e:  # noqa: BLE001 - report below, keep cleaning
                running.append(f"{c.name} (rm -f failed: {e})")
        from cshell.engine.net import usernets

        for net in usernets.all_networks(StateRoot(root)):  # `network create` left: its bridge, rules
            running.append(f"network {net.name}")
            usernets.remove(StateRoot(root), net.id)
    except Exception as e:  # noqa: BLE001
        running.append(f"(cleanup failed: {e})")
    return running


@pytest.fixture(autouse=True)
def _kernel_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.get_closest_marker("kernel") is None:
        yield
        return
    if os.geteuid() != 0:
        pytest.skip("kernel test: needs root to create namespaces, mounts and cgroups (sudo make test)")
    root: Path = request.getfixturevalue("state_root")
    before, fds_before = _snapshot(), _open_fds()
    yield
    left_running = _remove_leftovers(root)
    leaked = wait_for(lambda: not _leaks(before, root), timeout=LEAK_GRACE, interval=0.02)
    problems = [] if leaked else _leaks(before, root)
    problems += [f"fd {fd} of the test process: {target}" for fd, target in sorted(_open_fds().items())
                 if fds_before.get(fd) != target]
    if left_running:
        problems.insert(0, f"the test left running containers or networks: {', '.join(left_running)} (removed now)")
    if problems:
        pytest.fail("kernel objects leaked:\n  " + "\n  ".join(problems), pytrace=False)
