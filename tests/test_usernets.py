"""User-defined networks (issue #16): network create/ls/inspect/rm/prune/connect/disconnect,
names on a network through /etc/hosts, isolation between bridges, crash consistency.

Every kernel test removes what it made; the leak check (conftest) verifies that no
bridge, veth, iptables rule or lease of the test's state root is left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import Cshell, wait_for
from test_network import HTTPD, fails, http_get, inspect, ok

from cshell.engine.net import network, usernets
from cshell.engine.state import StateRoot


def net_inspect(cshell: Cshell, name: str) -> dict:
    return json.loads(ok(cshell("network", "inspect", name)))[0]


def links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def rules_of(tag: str) -> list[str]:
    out = subprocess.run(["iptables-save"], capture_output=True, text=True, check=False).stdout
    return [line for line in out.splitlines() if tag in line]


def hosts_of(cshell: Cshell, name: str) -> str:
    return ok(cshell("exec", name, "cat", "/etc/hosts"))


# -- unit ------------------------------------------------------------------------------------


def test_hosts_block_is_replaced_and_dropped() -> None:
    base = "127.0.0.1\tlocalhost\n10.222.0.2\tabc\n"
    one = usernets.replace_block(base, "demo", ["10.222.0.3\tweb www"])
    assert one == base + "# cshell network demo\n10.222.0.3\tweb www\n"
    two = usernets.replace_block(one, "other", ["10.222.1.2\tdb"])
    again = usernets.replace_block(two, "demo", ["10.222.0.4\tapi"])
    assert again == base + "# cshell network other\n10.222.1.2\tdb\n# cshell network demo\n10.222.0.4\tapi\n"
    assert usernets.replace_block(usernets.replace_block(again, "demo", []), "other", []) == base


def test_isolation_rules_accept_within_drop_between() -> None:
    rules = network.isolation_rules("csn-1234abcd", "cshell:t:n-1234abcd")
    assert rules[-1].startswith("-I FORWARD -i csn-1234abcd -o csn-1234abcd") and rules[-1].endswith("ACCEPT")
    assert all(r.endswith("-j DROP") for r in rules[:-1]) and len(rules) == 6
    assert all("--comment cshell:t:n-1234abcd" in r for r in rules)


def test_default_bridge_never_claims_a_user_networks_objects(tmp_path: Path) -> None:
    root = StateRoot(tmp_path)
    default = network.Network(root)
    user = network.Network(root, network.UserNet("ab" * 32, "demo", "10.222.0.0/24", "10.222.0.1"))
    assert user.tag.startswith(default.tag + ":") and user.bridge == "csn-abababab"
    assert default.owns_tag(f"{default.tag}:0123456789ab") and not default.owns_tag(f"{user.tag}:0123456789ab")
    assert user.owns_tag(f"{user.tag}:0123456789ab") and not user.owns_tag(f"{default.tag}:0123456789ab")
    assert len(network.extra_veth_name("f" * 64, "ab" * 32)) <= 15


def test_bad_names_and_subnets_are_refused_before_anything(cshell: Cshell, state_root: Path) -> None:
    fails(cshell("network", "create", "bridge"), "pre-defined")
    fails(cshell("network", "create", "bad name"), "invalid network name")
    fails(cshell("network", "create", "--subnet", "10.0.0.0/33", "x"), "invalid subnet")
    fails(cshell("network", "create", "--subnet", "10.230.0.0/24", "--gateway", "10.231.0.1", "x"),
          "not a host address")
    fails(cshell("network", "create", "-d", "macvlan", "x"), "not supported")
    assert ok(cshell("network", "ls", "-q")).count("\n") == 3  # bridge, host, none
    made = state_root / "networks"
    assert not made.is_dir() or [p.name for p in made.iterdir()] == [".lock"]


# -- kernel ----------------------------------------------------------------------------------


@pytest.mark.kernel
def test_create_ls_inspect_rm(cshell: Cshell, state_root: Path) -> None:
    nid = ok(cshell("network", "create", "demo")).strip()
    assert len(nid) == 64
    info = net_inspect(cshell, "demo")
    assert info["Id"] == nid and info["Driver"] == "bridge" and info["Containers"] == {}
    subnet = info["IPAM"]["Config"][0]["Subnet"]
    assert subnet.startswith("10.222.") and subnet.endswith("/24")
    bridge = usernets.get(StateRoot(state_root), "demo").bridge
    assert bridge in links(), "docker makes the bridge at create"
    tag = network.Network(StateRoot(state_root), usernets.get(StateRoot(state_root), "demo")).tag
    assert len(rules_of(tag)) == 6  # isolation
    table = ok(cshell("network", "ls"))
    assert [line.split()[1] for line in table.splitlines()[1:]] == ["bridge", "demo", "host", "none"]
    fails(cshell("network", "create", "demo"), "already exists")
    assert ok(cshell("network", "rm", "demo")) == "demo\n"
    assert bridge not in links() and not rules_of(tag)
    fails(cshell("network", "rm", "demo"), "no such network")


@pytest.mark.kernel
def test_names_resolve_on_a_user_network_not_on_the_default_bridge(cshell: Cshell) -> None:
    ok(cshell("network", "create", "demo"))
    ok(cshell("run", "-d", "--name", "web", "--network", "demo", "--network-alias", "www", "busybox",
              "sh", "-c", HTTPD))
    web_ip = inspect(cshell, "web")["NetworkSettings"]["IPAddress"]
    assert web_ip.startswith("10.222.")
    http_get(web_ip, 80)
    ok(cshell("run", "-d", "--name", "client", "--net", "demo", "busybox", "sleep", "100"))
    for name in ("web", "www", inspect(cshell, "web")["Id"][:12]):
        assert ok(cshell("exec", "client", "wget", "-qO-", f"http://{name}/")).startswith("hello from")
    assert f"PING web ({web_ip})" in ok(cshell("exec", "client", "ping", "-c", "1", "-W", "2", "web"))
    client_ip = inspect(cshell, "client")["NetworkSettings"]["IPAddress"]
    assert f"{client_ip}\tclient" in hosts_of(cshell, "web")  # the earlier one learnt of the later one
    # the default bridge keeps docker's behaviour: no names
    ok(cshell("run", "-d", "--name", "plain", "busybox", "sleep", "100"))
    proc = cshell("exec", "plain", "ping", "-c", "1", "-W", "1", "web")
    assert proc.returncode == 1 and "bad address" in proc.stderr
    # leaving: the others forget the name
    ok(cshell("rm", "-f", "client"))
    assert "client" not in hosts_of(cshell, "web")
    fails(cshell("network", "rm", "demo"), "in use")
    ok(cshell("rm", "-f", "web", "plain"))
    ok(cshell("network", "rm", "demo"))


@pytest.mark.kernel
def test_hosts_file_is_rewritten_in_place(cshell: Cshell, state_root: Path) -> None:
    """The file is bind-mounted: a rename would leave the container looking at the old inode."""
    ok(cshell("network", "create", "demo"))
    ok(cshell("run", "-d", "--name", "a", "--network", "demo", "busybox", "sleep", "100"))
    path = state_root / "containers" / inspect(cshell, "a")["Id"] / "hosts"
    inode = path.stat().st_ino
    ok(cshell("run", "-d", "--name", "b", "--network", "demo", "busybox", "sleep", "100"))
    assert path.stat().st_ino == inode and "\tb " in path.read_text()
    assert "\tb " in hosts_of(cshell, "a")  # seen through the bind mount
    ok(cshell("rm", "-f", "a", "b"))
    ok(cshell("network", "rm", "demo"))


@pytest.mark.kernel
def test_networks_are_isolated(cshell: Cshell, state_root: Path) -> None:
    ok(cshell("network", "create", "one"))
    ok(cshell("network", "create", "two"))
    ok(cshell("run", "-d", "--name", "web", "--network", "one", "busybox", "sh", "-c", HTTPD))
    ok(cshell("run", "-d", "--name", "other", "--network", "two", "busybox", "sleep", "100"))
    web_ip = inspect(cshell, "web")["NetworkSettings"]["IPAddress"]
    http_get(web_ip, 80)
    one, two = (net_inspect(cshell, n)["IPAM"]["Config"][0]["Subnet"] for n in ("one", "two"))
    assert one != two
    proc = cshell("exec", "other", "ping", "-c", "1", "-W", "1", "web")
    assert proc.returncode == 1 and "bad address" in proc.stderr  # no name across networks
    proc = cshell("exec", "other", "ping", "-c", "1", "-W", "1", web_ip)
    assert proc.returncode == 1, "no packet is forwarded from one bridge to another"
    ok(cshell("rm", "-f", "web", "other"))
    ok(cshell("network", "rm", "one", "two"))


@pytest.mark.kernel
def test_connect_and_disconnect(cshell: Cshell) -> None:
    ok(cshell("network", "create", "front"))
    ok(cshell("network", "create", "back"))
    ok(cshell("run", "-d", "--name", "db", "--network", "back", "busybox", "sh", "-c", HTTPD))
    ok(cshell("run", "-d", "--name", "app", "--network", "front", "busybox", "sleep", "100"))
    http_get(inspect(cshell, "db")["NetworkSettings"]["IPAddress"], 80)
    proc = cshell("exec", "app", "wget", "-qO-", "http://db/")
    assert proc.returncode == 1
    ok(cshell("network", "connect", "--alias", "api", "back", "app"))
    assert "eth1" in ok(cshell("exec", "app", "ip", "-o", "link"))
    networks = inspect(cshell, "app")["NetworkSettings"]["Networks"]
    assert sorted(networks) == ["back", "front"] and networks["back"]["IPAddress"].startswith("10.222.")
    assert ok(cshell("exec", "app", "wget", "-qO-", "http://db/")).startswith("hello from")
    assert "api" in hosts_of(cshell, "db")
    fails(cshell("network", "connect", "back", "app"), "already connected")
    fails(cshell("network", "disconnect", "front", "app"), "was started with")
    ok(cshell("network", "disconnect", "back", "app"))
    assert "eth1" not in ok(cshell("exec", "app", "ip", "-o", "link"))
    assert "app" not in hosts_of(cshell, "db")
    fails(cshell("network", "disconnect", "back", "app"), "not connected")
    # connected while stopped: plugged in at the next start
    ok(cshell("stop", "-t", "1", "app"))
    ok(cshell("network", "connect", "back", "app"))
    ok(cshell("start", "app"))
    assert ok(cshell("exec", "app", "wget", "-qO-", "http://db/")).startswith("hello from")
    ok(cshell("rm", "-f", "db", "app"))
    ok(cshell("network", "rm", "front", "back"))


@pytest.mark.kernel
def test_ip_subnet_gateway_and_bad_input(cshell: Cshell, state_root: Path) -> None:
    ok(cshell("network", "create", "--subnet", "10.229.7.0/24", "--gateway", "10.229.7.254", "fixed"))
    info = net_inspect(cshell, "fixed")
    assert info["IPAM"]["Config"] == [{"Subnet": "10.229.7.0/24", "Gateway": "10.229.7.254"}]
    ok(cshell("run", "-d", "--name", "a", "--network", "fixed", "--ip", "10.229.7.50", "busybox", "sleep", "100"))
    assert inspect(cshell, "a")["NetworkSettings"]["IPAddress"] == "10.229.7.50"
    assert "10.229.7.254" in ok(cshell("exec", "a", "ip", "route"))
    fails(cshell("run", "--rm", "--network", "fixed", "--ip", "10.229.7.50", "busybox", "true"), "already in use")
    fails(cshell("run", "--rm", "--network", "fixed", "--ip", "10.1.1.1", "busybox", "true"), "not a host address")
    fails(cshell("run", "--rm", "--network", "fixed", "--ip", "10.229.7.254", "busybox", "true"), "gateway")
    for flag, value in (("--ip", "10.229.7.9"), ("--network-alias", "x")):  # docker 20.10 ignores them there
        proc = cshell("run", "--rm", flag, value, "busybox", "true")
        assert proc.returncode == 0 and proc.stderr == ""
    proc = cshell("run", "--rm", "--network", "nosuch", "busybox", "true")
    assert proc.returncode == 125 and "network nosuch not found" in proc.stderr
    fails(cshell("network", "create", "--subnet", "10.229.7.128/25", "clash"), "overlaps")
    assert ok(cshell("ps", "-aq")).count("\n") == 1  # only a: nothing else was made
    ok(cshell("rm", "-f", "a"))
    ok(cshell("network", "rm", "fixed"))


@pytest.mark.kernel
def test_prune_keeps_networks_in_use(cshell: Cshell) -> None:
    ok(cshell("network", "create", "used"))
    ok(cshell("network", "create", "idle"))
    ok(cshell("run", "-d", "--name", "a", "--network", "used", "busybox", "sleep", "100"))
    assert ok(cshell("network", "prune", "-f")) == "Deleted Networks:\nidle\n\n"
    proc = cshell("network", "prune")
    assert proc.returncode == 1 and "network prune -f" in proc.stderr  # asks; stdin is no terminal
    ok(cshell("rm", "-f", "a"))
    assert "Deleted Networks:\n  used" in ok(cshell("system", "prune", "-f"))  # docker's system prune too
    assert ok(cshell("network", "ls", "-q")).count("\n") == 3


@pytest.mark.kernel
def test_killed_mid_way_the_next_start_cleans_up(cshell: Cshell, state_root: Path) -> None:
    """A shim killed with its container, and a network whose definition vanished under its bridge."""
    ok(cshell("network", "create", "demo"))
    ok(cshell("run", "-d", "--name", "a", "--network", "demo", "busybox", "sleep", "100"))
    ok(cshell("run", "-d", "--name", "b", "--network", "demo", "busybox", "sleep", "100"))
    state = json.loads((state_root / "containers" / inspect(cshell, "a")["Id"] / "state.json").read_text())
    os.kill(state["shim_pid"], signal.SIGKILL)
    os.kill(state["pid"], signal.SIGKILL)
    assert wait_for(lambda: not os.path.exists(f"/proc/{state['pid']}/ns"))
    ok(cshell("ps", "-a"))  # start-up reconcile: a's lease released, b told
    assert "\ta " not in hosts_of(cshell, "b") and len(net_inspect(cshell, "demo")["Containers"]) == 1
    ok(cshell("rm", "-f", "a", "b"))
    net = usernets.get(StateRoot(state_root), "demo")
    (state_root / "networks" / net.id / "network.json").unlink()  # as if killed inside `network rm`
    assert net.bridge in links()
    ok(cshell("ps"))
    assert net.bridge not in links() and not rules_of(network.Network(StateRoot(state_root), net).tag)


@pytest.mark.kernel
def test_net_ls_draws_every_network(cshell: Cshell) -> None:
    ok(cshell("network", "create", "demo"))
    ok(cshell("run", "-d", "--name", "web", "--network", "demo", "busybox", "sleep", "100"))
    ok(cshell("run", "-d", "--name", "plain", "busybox", "sleep", "100"))
    ok(cshell("run", "-d", "--name", "pub", "--network", "demo", "-p", "80", "busybox", "sleep", "100"))
    assert "DNAT" in ok(cshell("net", "inspect", "pub"))  # its rules are found under the network's tag
    ok(cshell("rm", "-f", "pub"))
    out = ok(cshell("net", "ls"))
    assert "network bridge" in out and "network demo" in out
    demo = out[out.index("network demo"):]
    assert "web" in demo and "eth0" in demo and "plain" not in demo
    ok(cshell("rm", "-f", "web", "plain"))
    ok(cshell("network", "rm", "demo"))


def test_help_network_teaches_by_name(cshell: Cshell) -> None:
    out = ok(cshell("help", "network"))
    assert "wget -qO- http://web/" in out and "127.0.0.11" in out and "network rm" in out


@pytest.mark.kernel
def test_system_check_knows_user_networks(cshell: Cshell, state_root: Path) -> None:
    ok(cshell("network", "create", "demo"))
    ok(cshell("run", "-d", "--name", "a", "--network", "demo", "busybox", "sleep", "100"))
    out = ok(cshell("system", "check"))  # its lease is with the network: no problem to report
    assert "lease" not in out and "veth" not in out
    ok(cshell("rm", "-f", "a"))
    ok(cshell("network", "rm", "demo"))


@pytest.mark.kernel
def test_containers_started_at_once_all_know_each_other(state_root: Path) -> None:
    from conftest import cshell_argv, cshell_env, run_cshell

    assert run_cshell(state_root, "network", "create", "demo").returncode == 0
    names = [f"n{i}" for i in range(4)]
    procs = [subprocess.Popen([*cshell_argv(), "--root", str(state_root), "run", "-d", "--name", n, "--network",
                               "demo", "busybox", "sleep", "100"], env=cshell_env(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for n in names]
    for p in procs:
        assert p.wait(timeout=60) == 0, p.stderr.read() if p.stderr else ""
    for n in names:
        hosts = run_cshell(state_root, "exec", n, "cat", "/etc/hosts").stdout
        assert all(f"\t{other} " in hosts for other in names if other != n), f"{n}:\n{hosts}"
    assert run_cshell(state_root, "rm", "-f", *names).returncode == 0
    assert run_cshell(state_root, "network", "rm", "demo").returncode == 0
