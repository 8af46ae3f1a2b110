"""cshell on a host where Docker runs with its defaults, as on many students' machines.

The daemon here keeps Docker's networking defaults (--iptables, --ip-forward, --ip-masq):
its DOCKER chains, its jumps in FORWARD and nat, and a FORWARD policy of DROP. Only its
bridge is its own (cshdock0 on 10.213.0.0/24, not docker0 on cshell's 172.17/16 pool).
With it running, cshell's containers get an address, reach a listener on the host, reach
each other (also on a bridge made before Docker started) and answer through `-p`;
`cshell rm` never touches Docker's rules; and once Docker is stopped (its chains and its
DROP policy stay behind, as `systemctl stop docker` leaves them) they still answer.
The fixture puts back every chain, policy and sysctl the daemon changed.
"""

from __future__ import annotations

import http.server
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Cshell, run_cshell
from registryd import free_port
from test_network import http_get

from parity.dockerd import Dockerd, DockerUnavailable, _iptables_policies, _sysctls

pytestmark = pytest.mark.kernel

BB = "busybox"
PAGE = "served by the host\n"


class DockerDefaults(Dockerd):
    """dockerd with Docker's own firewall and forwarding defaults."""

    def network_flags(self) -> list[str]:
        return []

    def prepare_host(self) -> None:
        """A student's fresh host forwards nothing: Docker then turns forwarding on and, having
        done so, sets FORWARD's policy to DROP (it leaves the policy alone where forwarding was
        on already). Saved first by start(), put back by stop()."""
        Path("/proc/sys/net/ipv4/ip_forward").write_text("0")


def docker_rules() -> str:
    """iptables-save's lines that are Docker's (its chains and every rule that names them or its bridge)."""
    out = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    return "\n".join(line for line in out.splitlines()
                     if ("DOCKER" in line or "cshdock0" in line) and not line.startswith("#"))


def host_state() -> tuple[dict[str, str], dict[str, str], str]:
    return _iptables_policies(), _sysctls(), docker_rules()


@pytest.fixture
def docker_defaults(tmp_path: Path) -> Iterator[DockerDefaults]:
    """An un-started daemon (the test starts it when it wants); afterwards the host is as before."""
    before = host_state()
    daemon = DockerDefaults()
    try:
        yield daemon
    finally:
        daemon.stop()
        assert host_state() == before, "the Docker fixture left the host changed"
        assert "DOCKER" not in subprocess.run(["iptables", "-S"], capture_output=True, text=True).stdout
        assert not Path("/sys/class/net/cshdock0").exists()


def start(daemon: Dockerd, cshell_root: Path, tmp_path: Path) -> None:
    try:
        daemon.start()
    except DockerUnavailable as e:
        pytest.skip(f"coexistence: Docker is not available: {e}")
    tar = tmp_path / "bb.tar"
    assert run_cshell(cshell_root, "save", "-o", str(tar), BB, timeout=120).returncode == 0
    assert daemon.docker("load", "-i", str(tar)).returncode == 0


class HostListener:
    """An HTTP server on every address of the host: what a container's outbound request reaches."""

    def __init__(self) -> None:
        self.port = free_port("0.0.0.0")

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                body = PAGE.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("0.0.0.0", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener() -> Iterator[HostListener]:
    server = HostListener()
    yield server
    server.stop()


def ip_of(cshell: Cshell, name: str) -> str:
    done = cshell("inspect", "--format", "{{.NetworkSettings.IPAddress}}", name)
    assert done.returncode == 0 and done.stdout.strip(), done.stderr
    return done.stdout.strip()


def web(cshell: Cshell, name: str, port: int) -> str:
    """A container serving its own hostname on :80, published on 127.0.0.1:PORT; its address."""
    ran = cshell("run", "-d", "--name", name, "-p", f"{port}:80", BB, "sh", "-c",
                 "mkdir /w && hostname > /w/index.html && exec httpd -f -p 80 -h /w")
    assert ran.returncode == 0, ran.stderr
    return ip_of(cshell, name)


def fetch_inside(cshell: Cshell, url: str) -> str:
    done = cshell("run", "--rm", BB, "wget", "-q", "-O", "-", url)  # no -T: Debian's busybox-static segfaults with it
    assert done.returncode == 0, f"wget {url} from a container: {done.stderr.strip()}"
    return done.stdout


def test_cshell_beside_docker_with_its_defaults(docker_defaults: DockerDefaults, cshell: Cshell,
                                                state_root: Path, tmp_path: Path,
                                                listener: HostListener) -> None:
    assert cshell("image", "bootstrap", BB, timeout=120).returncode == 0
    early_port, late_port = free_port(), free_port()
    early_ip = web(cshell, "early", early_port)  # its bridge and rules made before Docker's

    start(docker_defaults, state_root, tmp_path)
    assert _iptables_policies()["FORWARD"] == "DROP"  # the host a student with Docker has
    docker_port = free_port()
    theirs = docker_defaults.docker("run", "-d", "-p", f"{docker_port}:80", BB, "httpd", "-f", "-p", "80")
    assert theirs.returncode == 0, theirs.stderr  # Docker's DOCKER chain holds a rule of its own

    late_ip = web(cshell, "late", late_port)
    gateway = cshell("inspect", "--format", "{{.NetworkSettings.Gateway}}", "late").stdout.strip()
    assert late_ip and gateway
    # outbound: a listener on the host, through the bridge's address and through Docker's bridge's
    assert fetch_inside(cshell, f"http://{gateway}:{listener.port}/") == PAGE
    assert fetch_inside(cshell, f"http://10.213.0.1:{listener.port}/") == PAGE
    # container to container on cshell's bridge, the early one's included
    for name, ip in (("early", early_ip), ("late", late_ip)):
        hostname = cshell("exec", name, "hostname").stdout.strip()
        assert fetch_inside(cshell, f"http://{ip}/").strip() == hostname
    # -p: from the host, on loopback and on another of its addresses
    for port, name in ((early_port, "early"), (late_port, "late")):
        hostname = cshell("exec", name, "hostname").stdout.strip()
        assert http_get("127.0.0.1", port, timeout=8.0).strip() == hostname
        assert http_get("10.213.0.1", port, timeout=8.0).strip() == hostname

    rules = docker_rules()
    assert cshell("rm", "-f", "early").returncode == 0
    assert docker_rules() == rules, "cshell rm changed Docker's rules"

    docker_defaults.stop_daemon()  # its chains and the DROP policy stay, as after `systemctl stop docker`
    assert _iptables_policies()["FORWARD"] == "DROP" and "DOCKER" in docker_rules()
    hostname = cshell("exec", "late", "hostname").stdout.strip()
    assert http_get("127.0.0.1", late_port, timeout=8.0).strip() == hostname
    assert fetch_inside(cshell, f"http://{late_ip}/").strip() == hostname
    assert fetch_inside(cshell, f"http://{gateway}:{listener.port}/") == PAGE
    rules = docker_rules()
    assert cshell("rm", "-f", "late").returncode == 0
    assert docker_rules() == rules
