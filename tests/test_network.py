"""Networking: the bridge, veth pairs, published ports and the --net modes, for real.

Traffic goes only to loopback, to this machine's own address and to the
addresses of our own containers. The leak check (conftest) verifies after each
kernel test that no veth, bridge, iptables rule or lease of the test's state
root is left.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from conftest import Cshell, wait_for

from cshell.engine.net import ipam, network, portmap
from cshell.engine.state import StateRoot
from cshell.errors import Conflict, RuntimeFailure, UsageError

HTTPD = "mkdir -p /www && echo hello from $(hostname) > /www/index.html && exec httpd -f -p 80 -h /www"


def ok(proc) -> str:  # noqa: ANN001 - CompletedProcess
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc.stdout


def fails(proc, *words: str) -> str:  # noqa: ANN001
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    for word in words:
        assert word in proc.stderr, proc.stderr
    assert "hint:" in proc.stderr
    return proc.stderr


def inspect(cshell: Cshell, name: str) -> dict:
    return json.loads(ok(cshell("inspect", name)))[0]


def http_get(host: str, port: int, timeout: float = 5.0) -> str:
    """GET / over a plain socket (no proxy settings apply), retrying until the server is up."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=2) as s:
                s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
            if data:
                return data.decode(errors="replace").split("\r\n\r\n", 1)[-1]
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"no HTTP answer from {host}:{port}")
        time.sleep(0.02)


def host_address() -> str | None:
    """This machine's own non-loopback IPv4 address (traffic to it stays on this machine)."""
    out = subprocess.run(["ip", "-o", "-4", "addr", "show", "scope", "global"], capture_output=True,
                         text=True, check=False).stdout
    for line in out.splitlines():
        dev, addr = line.split()[1], line.split()[3].split("/")[0]
        if not dev.startswith(("csh-", "cshell", "veth", "docker")):
            return addr
    return None


def bridge_of(state_root: Path) -> str:
    return network.bridge_name(StateRoot(state_root))


def leases(state_root: Path) -> list[str]:
    d = state_root / "network" / "leases"
    return sorted(p.name for p in d.iterdir() if not p.name.startswith(".")) if d.is_dir() else []


def our_rules(state_root: Path) -> list[str]:
    out = subprocess.run(["iptables-save"], capture_output=True, text=True, check=False).stdout
    return [line for line in out.splitlines() if f"cshell:{bridge_of(state_root)}" in line]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


# -- unit: parsing, subnets, leases, rules (no root needed) ---------------------------------------


def test_parse_publish() -> None:
    assert portmap.parse_publish("8080:80") == [portmap.PortBinding(80, 8080, "", "tcp")]
    assert portmap.parse_publish("127.0.0.1:8080:80/udp") == [portmap.PortBinding(80, 8080, "127.0.0.1", "udp")]
    assert portmap.parse_publish("80") == [portmap.PortBinding(80, 0, "", "tcp")]
    assert portmap.parse_publish("127.0.0.1::80") == [portmap.PortBinding(80, 0, "127.0.0.1", "tcp")]
    assert [b.host_port for b in portmap.parse_publish("8000-8002:80-82")] == [8000, 8001, 8002]
    for bad, why in (("80x", "not a port"), ("0:80", "between 1 and 65535"), ("8080:70000", "between"),
                     ("1:2:3:4", "expected"), ("8080:80/sctp", "sctp"), ("nope:8080:80", "IPv4"),
                     ("8000-8001:80", "same length"), ("90-80:80-90", "backwards"), ("8080:", "expected"),
                     ("[::1]:80:80", "IPv6")):
        with pytest.raises(UsageError) as e:
            portmap.parse_publish(bad)
        assert why in e.value.message, (bad, e.value.message)
        assert "-p 8080:80" in e.value.hint


def test_duplicate_host_port_is_refused() -> None:
    with pytest.raises(UsageError, match="published twice"):
        portmap.check_unique(portmap.parse_publish("8080:80") + portmap.parse_publish("8080:81"))
    portmap.check_unique(portmap.parse_publish("80") + portmap.parse_publish("81"))  # two free ports: fine


def test_exposed_ports() -> None:
    assert portmap.parse_exposed({"80/tcp": {}, "53/udp": {}}) == [
        portmap.PortBinding(53, 0, "", "udp"), portmap.PortBinding(80, 0, "", "tcp")]


def test_parse_mode() -> None:
    assert network.parse_mode(None) == "bridge"
    assert network.parse_mode("default") == "bridge"
    assert network.parse_mode("container:web") == "container:web"
    for bad in ("bogus", "container:", "bridged"):
        with pytest.raises(UsageError, match="network mode"):
            network.parse_mode(bad)


def test_bridge_names_fit_ifnamsiz() -> None:
    assert network.bridge_name(StateRoot("/var/lib/cshell")) == "cshell0"
    a, b = network.bridge_name(StateRoot("/tmp/a")), network.bridge_name(StateRoot("/tmp/b"))
    assert a != b and a.startswith("csh-") and len(a) <= 15
    assert len(network.veth_name("f" * 64)) <= 15
    assert network.mac_for("172.17.0.2") == "02:42:ac:11:00:02"


def test_subnet_choice_avoids_routes() -> None:
    net = ipam.ipaddress.IPv4Network
    default = net("0.0.0.0/0")
    assert ipam.choose_subnet([default]) == net("172.17.0.0/16")  # the default route clashes with nothing
    assert ipam.choose_subnet([default, net("172.17.0.0/16"), net("172.18.5.0/24")]) == net("172.19.0.0/16")
    assert ipam.choose_subnet([net("172.16.0.0/12")]) == net("192.168.0.0/20")
    with pytest.raises(Conflict, match="clashes with the host's route to 10.0.0.0/8"):
        ipam.choose_subnet([net("10.0.0.0/8")], "10.5.0.0/16")
    assert ipam.choose_subnet([net("10.0.0.0/8")], "172.20.0.0/16") == net("172.20.0.0/16")
    with pytest.raises(RuntimeFailure):
        ipam.choose_subnet([], "banana")
    with pytest.raises(Conflict, match="no free private subnet"):
        ipam.choose_subnet([net("172.16.0.0/12"), net("192.168.0.0/16")])


def test_leases_are_exclusive(tmp_path: Path) -> None:
    leases = ipam.Leases(tmp_path / "leases")
    subnet = ipam.ipaddress.IPv4Network("172.30.0.0/29")
    (tmp_path / "leases").mkdir()
    (tmp_path / "leases" / "172.30.0.3").write_text('{"container": "someone-else"}')  # another shell's
    got = [leases.allocate(f"c{i}", subnet, "172.30.0.1", {}).ip for i in range(4)]
    assert got == ["172.30.0.2", "172.30.0.4", "172.30.0.5", "172.30.0.6"]
    with pytest.raises(Conflict, match="no free address"):
        leases.allocate("c9", subnet, "172.30.0.1", {})
    assert [lease.ip for lease in leases.of("c1")] == ["172.30.0.4"]
    leases.release(leases.of("c1")[0])
    assert leases.allocate("c10", subnet, "172.30.0.1", {}).ip == "172.30.0.4"  # the lowest free again
    assert not [p for p in (tmp_path / "leases").iterdir() if p.name.startswith(".")]  # no temp file left


def test_port_rules_are_tagged_and_explained() -> None:
    bindings = portmap.parse_publish("127.0.0.1:8080:80") + portmap.parse_publish("5353:53/udp")
    rules = portmap.rules(bindings, "172.17.0.2", "cshell0", "cshell:cshell0:abc")
    assert all("--comment cshell:cshell0:abc" in r for table in rules.values() for r in table)
    nat = rules["nat"]
    assert any(r.startswith("-A PREROUTING") and "-d 127.0.0.1/32" in r and "! -i cshell0" in r
               and "--dport 8080" in r and "--to-destination 172.17.0.2:80" in r for r in nat)
    assert any(r.startswith("-A OUTPUT") and "--dst-type LOCAL" in r and "-p udp" in r for r in nat)
    assert any(r.startswith("-A POSTROUTING -s 127.0.0.0/8 -o cshell0") and "MASQUERADE" in r for r in nat)
    assert all(r.startswith("-I FORWARD") for r in rules["filter"])


def test_masquerade_rules_only_when_asked() -> None:
    off = network.bridge_rules("cshell0", "cshell:cshell0", "172.17.0.0/16", False, False)
    assert off == {"nat": [], "filter": []}
    on = network.bridge_rules("cshell0", "cshell:cshell0", "172.17.0.0/16", True, True)
    assert on["nat"] == ["-A POSTROUTING -s 172.17.0.0/16 ! -o cshell0 -m comment --comment cshell:cshell0 "
                         "-j MASQUERADE"]
    assert len(on["filter"]) == 3
    assert network.NetConfig().masquerade is False  # off by default


def test_missing_iptables_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(portmap.shutil, "which", lambda *a, **k: None)
    with pytest.raises(RuntimeFailure, match="iptables is not installed") as e:
        portmap.iptables_binary()
    assert "apt-get install iptables" in e.value.hint


# -- published ports ---------------------------------------------------------------------


@pytest.mark.kernel
def test_published_port_answers_on_loopback_and_host_address(cshell: Cshell, state_root: Path) -> None:
    port = free_port()
    ok(cshell("run", "-d", "--name", "web", "-p", f"{port}:80", "busybox", "sh", "-c", HTTPD))
    info = inspect(cshell, "web")
    ip = info["NetworkSettings"]["IPAddress"]
    hostname = info["Config"]["Hostname"]
    assert info["NetworkSettings"]["Ports"] == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(port)}]}
    assert info["NetworkSettings"]["Gateway"].startswith(ip.rsplit(".", 2)[0])
    assert info["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": str(port)}]}

    assert http_get("127.0.0.1", port) == f"hello from {hostname}\n"
    assert http_get(ip, 80) == f"hello from {hostname}\n"  # direct, on the bridge
    own = host_address()
    if own is not None:
        assert http_get(own, port) == f"hello from {hostname}\n"

    # the port is held while the container runs: nobody else can bind it
    with socket.socket() as s, pytest.raises(OSError):
        s.bind(("0.0.0.0", port))
    # the port's PREROUTING, OUTPUT, POSTROUTING, FORWARD, and the bridge's own FORWARD ACCEPT
    # (container to container, even under a DROP policy Docker may set later)
    assert len(our_rules(state_root)) == 5
    ok(cshell("rm", "-f", "web"))
    assert wait_for(lambda: not our_rules(state_root) and not leases(state_root))
    with socket.socket() as s:
        s.bind(("0.0.0.0", port))  # free again


@pytest.mark.kernel
def test_random_host_port_and_publish_all(cshell: Cshell) -> None:
    ok(cshell("run", "-d", "--name", "web", "-p", "127.0.0.1::80", "busybox", "sh", "-c", HTTPD))
    binding = inspect(cshell, "web")["NetworkSettings"]["Ports"]["80/tcp"][0]
    assert binding["HostIp"] == "127.0.0.1" and int(binding["HostPort"]) > 1024
    assert http_get("127.0.0.1", int(binding["HostPort"])).startswith("hello from")
    ok(cshell("rm", "-f", "web"))


@pytest.mark.kernel
def test_explain_shows_both_halves(cshell: Cshell) -> None:
    proc = cshell("--explain", "run", "--rm", "-p", f"127.0.0.1:{free_port()}:80", "busybox", "true")
    ok(proc)
    err = proc.stderr
    for step in ("type bridge", "route_localnet=1", "type veth peer name eth0", "netns",
                 "ip addr add", "route add default via", "bind(127.0.0.1:",
                 "iptables -t nat -A PREROUTING", "iptables -t nat -A OUTPUT", "MASQUERADE"):
        assert step in err, (step, err)


@pytest.mark.kernel
def test_port_in_use_is_refused_and_nothing_is_left(cshell: Cshell, state_root: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        fails(cshell("run", "-d", "--name", "x", "-p", f"{port}:80", "busybox", "sleep", "10"),
              f"port {port}/tcp is already in use")
    assert ok(cshell("ps", "-aq")) == ""
    assert not leases(state_root) and not our_rules(state_root)
    assert not os.path.exists(f"/sys/class/net/{bridge_of(state_root)}")

    # another container's mapping holds the port too
    port = free_port()
    ok(cshell("run", "-d", "--name", "a", "-p", f"{port}:80", "busybox", "sleep", "100"))
    fails(cshell("run", "-d", "--name", "b", "-p", f"{port}:80", "busybox", "sleep", "10"), "already in use")
    assert ok(cshell("ps", "-aq")).split() == [inspect(cshell, "a")["Id"][:12]]
    assert len(leases(state_root)) == 1
    ok(cshell("rm", "-f", "a"))


@pytest.mark.kernel
def test_invalid_specs_and_conflicting_options(cshell: Cshell) -> None:
    fails(cshell("run", "--rm", "-p", "80:http", "busybox", "true"), "invalid port spec")
    fails(cshell("run", "--rm", "-p", "1.2.3.4:8080:80", "busybox", "true"), "not an address of this host")
    fails(cshell("run", "--rm", "--net", "bogus", "busybox", "true"), "network bogus not found")  # docker's words
    fails(cshell("run", "--rm", "--net", "none", "-p", "80", "busybox", "true"), "no network to publish")
    ok(cshell("run", "-d", "--name", "a", "busybox", "sleep", "100"))
    fails(cshell("run", "--rm", "--net", "container:a", "-p", "80", "busybox", "true"), "conflicting options")
    fails(cshell("run", "--rm", "--net", "container:a", "-h", "x", "busybox", "true"), "conflicting options")
    fails(cshell("run", "--rm", "--net", "container:nope", "busybox", "true"), "no such container")
    ok(cshell("rm", "-f", "a"))


# -- the bridge: container to container, addresses, leases -----------------------------------


@pytest.mark.kernel
def test_two_containers_reach_each_other(cshell: Cshell, state_root: Path) -> None:
    ok(cshell("run", "-d", "--name", "server", "busybox", "sh", "-c", HTTPD))
    ok(cshell("run", "-d", "--name", "client", "busybox", "sleep", "100"))
    server_ip = inspect(cshell, "server")["NetworkSettings"]["IPAddress"]
    client_ip = inspect(cshell, "client")["NetworkSettings"]["IPAddress"]
    assert server_ip != client_ip and leases(state_root) == sorted([server_ip, client_ip])
    http_get(server_ip, 80)  # it is up
    out = ok(cshell("exec", "client", "wget", "-q", "-O", "-", f"http://{server_ip}/"))
    assert out.startswith("hello from")
    ok(cshell("exec", "client", "ping", "-c", "1", "-W", "2", server_ip))
    hosts = ok(cshell("exec", "client", "cat", "/etc/hosts"))
    assert f"{client_ip}\t{inspect(cshell, 'client')['Config']['Hostname']}" in hosts
    resolv = ok(cshell("exec", "client", "cat", "/etc/resolv.conf"))
    assert "nameserver 127." not in resolv
    ok(cshell("rm", "-f", "server", "client"))
    assert wait_for(lambda: not os.path.exists(f"/sys/class/net/{bridge_of(state_root)}")), \
        "the bridge must go with its last container"


@pytest.mark.kernel
def test_busybox_resolves_names_from_etc_hosts(cshell: Cshell) -> None:
    """busybox-static is glibc: without the NSS modules in the image, wget http://web/ segfaulted."""
    ok(cshell("run", "-d", "--name", "web", "busybox", "sh", "-c", HTTPD))
    ok(cshell("run", "-d", "--name", "client", "busybox", "sleep", "100"))
    web_ip = inspect(cshell, "web")["NetworkSettings"]["IPAddress"]
    http_get(web_ip, 80)
    ok(cshell("exec", "client", "sh", "-c", f"echo '{web_ip} web' >> /etc/hosts"))
    assert ok(cshell("exec", "client", "wget", "-qO-", "http://web/")).startswith("hello from")
    assert f"PING web ({web_ip})" in ok(cshell("exec", "client", "ping", "-c", "1", "-W", "2", "web"))
    proc = cshell("exec", "client", "wget", "-qO-", "http://nosuchname/")
    assert proc.returncode == 1 and "bad address 'nosuchname'" in proc.stderr  # an error, not SIGSEGV (139)
    proc = cshell("exec", "client", "wget", "-qO-", f"http://{web_ip}:1/")
    assert proc.returncode == 1 and "Connection refused" in proc.stderr
    ok(cshell("rm", "-f", "web", "client"))


@pytest.mark.kernel
def test_veth_pair_ends_and_net_ls(cshell: Cshell, state_root: Path) -> None:
    ok(cshell("run", "-d", "--name", "web", "-p", f"{free_port()}:80", "busybox", "sleep", "100"))
    cid = inspect(cshell, "web")["Id"]
    veth = network.veth_name(cid)
    bridge = bridge_of(state_root)
    assert os.path.realpath(f"/sys/class/net/{veth}/master").endswith(f"/{bridge}")
    assert Path(f"/sys/class/net/{veth}/ifalias").read_text().strip() == f"cshell:{bridge}:{cid[:12]}"
    inside = ok(cshell("exec", "web", "cat", "/sys/class/net/eth0/iflink")).strip()
    assert inside == Path(f"/sys/class/net/{veth}/ifindex").read_text().strip()  # eth0's peer is our veth
    picture = ok(cshell("net", "ls"))
    for word in (bridge, veth, "eth0", "web", "->80/tcp", "veth pair"):
        assert word in picture, (word, picture)
    detail = ok(cshell("net", "inspect", "web"))
    for word in ("eth0", "default via", "DNAT", "MASQUERADE", f"cshell:{bridge}:{cid[:12]}"):
        assert word in detail, (word, detail)
    assert bridge in ok(cshell("net", "inspect"))
    ok(cshell("rm", "-f", "web"))


@pytest.mark.kernel
def test_address_on_restart_follows_docker(cshell: Cshell, state_root: Path) -> None:
    """Held while running, released on stop, the lowest free one at start (as Docker)."""
    ok(cshell("run", "-d", "--name", "a", "busybox", "sleep", "100"))
    ok(cshell("run", "-d", "--name", "keep", "busybox", "sleep", "100"))
    first = inspect(cshell, "a")["NetworkSettings"]["IPAddress"]
    ok(cshell("stop", "-t", "0", "a"))
    stopped = inspect(cshell, "a")["NetworkSettings"]
    assert stopped["IPAddress"] == "" and stopped["Ports"] == {}
    assert first not in leases(state_root)
    ok(cshell("start", "a"))
    assert inspect(cshell, "a")["NetworkSettings"]["IPAddress"] == first  # nobody took it meanwhile
    ok(cshell("stop", "-t", "0", "a"))
    ok(cshell("run", "-d", "--name", "b", "busybox", "sleep", "100"))
    assert inspect(cshell, "b")["NetworkSettings"]["IPAddress"] == first  # the lowest free address
    ok(cshell("start", "a"))
    second = inspect(cshell, "a")["NetworkSettings"]["IPAddress"]
    assert second not in (first, "") and ok(cshell("exec", "a", "ip", "-o", "-4", "addr")).count(second) == 1
    ok(cshell("rm", "-f", "a", "b", "keep"))


@pytest.mark.kernel
def test_killed_shim_is_cleaned_up_by_the_next_shell(cshell: Cshell, state_root: Path) -> None:
    ok(cshell("run", "-d", "--name", "web", "-p", f"{free_port()}:80", "busybox", "sleep", "100"))
    state = json.loads((state_root / "containers" / inspect(cshell, "web")["Id"] / "state.json").read_text())
    os.kill(state["shim_pid"], signal.SIGKILL)
    os.kill(state["pid"], signal.SIGKILL)
    assert wait_for(lambda: not os.path.exists(f"/proc/{state['pid']}/ns"))
    assert leases(state_root) and our_rules(state_root)  # nobody released them
    ok(cshell("ps", "-a"))  # start-up reconcile
    assert not leases(state_root) and not our_rules(state_root)
    ok(cshell("rm", "web"))


@pytest.mark.kernel
def test_subnet_clash_is_refused(cshell: Cshell, state_root: Path) -> None:
    routes = subprocess.run(["ip", "-o", "-4", "route"], capture_output=True, text=True, check=True).stdout
    taken = next((r.split()[0] for r in routes.splitlines() if "/" in r.split()[0]), None)
    if taken is None:
        pytest.skip("this host has no route besides the default one")
    ok(cshell("net", "config", f"subnet={taken}"))
    fails(cshell("run", "--rm", "busybox", "true"), "clashes with the host's route")
    assert ok(cshell("ps", "-aq")) == "" and not leases(state_root)
    ok(cshell("net", "config", "subnet=auto"))
    ok(cshell("run", "--rm", "busybox", "true"))


# -- the other modes ------------------------------------------------------------------------


@pytest.mark.kernel
def test_net_container_shares_the_namespace(cshell: Cshell, state_root: Path) -> None:
    ok(cshell("run", "-d", "--name", "web", "busybox", "sleep", "100"))
    ok(cshell("run", "-d", "--name", "side", "--net", "container:web", "busybox", "sleep", "100"))
    assert ok(cshell("exec", "side", "ip", "-o", "addr")) == ok(cshell("exec", "web", "ip", "-o", "addr"))
    assert len(leases(state_root)) == 1  # no address, no veth of its own
    pids = [inspect(cshell, n)["State"]["Pid"] for n in ("web", "side")]
    inode = os.readlink(f"/proc/{pids[0]}/ns/net")
    assert os.readlink(f"/proc/{pids[1]}/ns/net") == inode
    assert f"= {inode}" in ok(cshell("ns", "ls", "web", "side"))  # shown as shared
    assert inspect(cshell, "side")["HostConfig"]["NetworkMode"] == f"container:{inspect(cshell, 'web')['Id']}"
    assert ok(cshell("exec", "side", "hostname")) == ok(cshell("exec", "web", "hostname"))
    assert "shares this namespace" in ok(cshell("net", "ls"))
    ok(cshell("rm", "-f", "side", "web"))


@pytest.mark.kernel
def test_net_container_needs_a_running_container(cshell: Cshell) -> None:
    ok(cshell("run", "--name", "done", "busybox", "true"))
    fails(cshell("run", "--rm", "--net", "container:done", "busybox", "true"), "not running", "start done")
    assert ok(cshell("ps", "-aq")).split() == [inspect(cshell, "done")["Id"][:12]]
    ok(cshell("rm", "done"))


@pytest.mark.kernel
def test_net_host_sees_the_hosts_interfaces(cshell: Cshell, state_root: Path) -> None:
    out = ok(cshell("run", "--rm", "--net", "host", "busybox", "cat", "/proc/net/dev"))
    inside = {line.split(":")[0].strip() for line in out.splitlines()[2:]}
    # the host's own devices (veths and bridges of concurrent tests come and go)
    own = {n for n in os.listdir("/sys/class/net") if not n.startswith(("veth", "csh-", "cshell"))}
    assert own <= inside and len(own) > 1, (own, inside)
    assert ok(cshell("run", "--rm", "--net", "host", "busybox", "hostname")).strip() == os.uname().nodename
    assert not leases(state_root)


@pytest.mark.kernel
def test_net_none_has_only_lo(cshell: Cshell, state_root: Path) -> None:
    out = ok(cshell("run", "--rm", "--net", "none", "busybox", "ip", "-o", "link"))
    assert [line.split(":")[1].strip() for line in out.splitlines()] == ["lo"]
    assert "UP" in out
    assert not os.path.exists(f"/sys/class/net/{bridge_of(state_root)}") and not leases(state_root)


# -- pyroute2's internals: netlink.py loads its message classes without the package body --------------------


PYROUTE2_PROBE = r"""
import json, socket, sys
from cshell.engine.net import netlink

m = netlink._load()
heavy = sorted(n for n in sys.modules if n.startswith(("pyroute2.ndb", "pyroute2.iproute", "pyroute2.nslink")))
rt = netlink.Rtnl.__new__(netlink.Rtnl)  # the message builders, no socket
rt.m = m
peer = {"attrs": [("IFLA_IFNAME", "vethB"), ("IFLA_ADDRESS", "02:42:ac:11:00:02"), ("IFLA_NET_NS_FD", 7)]}
info = {"attrs": [("IFLA_INFO_KIND", "veth"), ("IFLA_INFO_DATA", {"attrs": [("VETH_INFO_PEER", peer)]})]}
msg = rt._ifinfmsg(up=True, IFLA_IFNAME="vethA", IFLA_MASTER=3, IFLA_MTU=1500, IFLA_LINKINFO=info)
msg["header"]["type"] = netlink.RTM_NEWLINK
msg.encode()
back = m.ifinfmsg(msg.data)
back.decode()
link = netlink._link(back)
data = back.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_DATA")
addr = m.ifaddrmsg()
addr["family"], addr["prefixlen"], addr["index"] = socket.AF_INET, 16, 5
addr["attrs"] = [("IFA_LOCAL", "172.17.0.2"), ("IFA_ADDRESS", "172.17.0.2")]
addr.encode()
addr_back = m.ifaddrmsg(addr.data)
addr_back.decode()
route = m.rtmsg()
route["family"], route["table"], route["type"] = socket.AF_INET, netlink.RT_TABLE_MAIN, netlink.RTN_UNICAST
route["attrs"] = [("RTA_GATEWAY", "172.17.0.1"), ("RTA_OIF", 5)]
route.encode()
route_back = m.rtmsg(route.data)
route_back.decode()
import pyroute2  # afterwards, a plain import still gets the real package
print(json.dumps({"heavy": heavy, "name": link.name, "kind": link.kind, "up": link.up, "master": link.master,
                  "mtu": link.mtu, "peer_attrs": data is not None,
                  "address": addr_back.get_attr("IFA_LOCAL"), "prefixlen": addr_back["prefixlen"],
                  "gateway": route_back.get_attr("RTA_GATEWAY"), "oif": route_back.get_attr("RTA_OIF"),
                  "real_package": hasattr(pyroute2, "IPRoute")}))
"""


def test_pyroute2_internals_netlink_relies_on() -> None:
    """netlink.py imports pyroute2.netlink.rtnl.{ifinfmsg,ifaddrmsg,rtmsg} with a bare stand-in
    for the package (its __init__ costs 120-170 ms) and builds messages with the NLA names below.
    A pyroute2 that moves those classes or renames those NLAs must fail here, loudly, before a
    `run` fails on a student's machine; pyproject.toml pins pyroute2 to the versions this passes on.
    """
    import sys
    from importlib.metadata import version

    done = subprocess.run([sys.executable, "-c", PYROUTE2_PROBE], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"pyroute2 {version('pyroute2')}: netlink.py's use of its internals broke:\n" + \
        done.stderr
    got = json.loads(done.stdout)
    assert got == {"heavy": [], "name": "vethA", "kind": "veth", "up": True, "master": 3, "mtu": 1500,
                   "peer_attrs": True, "address": "172.17.0.2", "prefixlen": 16, "gateway": "172.17.0.1",
                   "oif": 5, "real_package": True}, f"pyroute2 {version('pyroute2')}"


def test_pyroute2_pin_covers_the_installed_version() -> None:
    """The range in pyproject.toml is the one the test above proves; a venv outside it is not tested."""
    import re
    from importlib.metadata import version

    text = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    pin = re.search(r'"pyroute2>=([\d.]+),<([\d.]+)"', text)
    assert pin, "pyproject.toml pins pyroute2 as >=LOW,<HIGH"

    def parts(v: str) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", v)[:3])

    installed = version("pyroute2")
    assert parts(pin[1]) <= parts(installed) < parts(pin[2]), f"pyroute2 {installed} is outside {pin[0]}"
