"""Published ports (`run -p`): Docker's way without its userland proxy.

Two halves, both kernel work:

* The port is *reserved*: the shell binds a socket to HOST_IP:HOST_PORT and the
  shim holds it while the container runs (never listening). Nobody else can
  bind the port meanwhile, a port already taken is refused up front, and `-p 80`
  lets the kernel pick a free port (bind to port 0), as Docker's allocator does.
* The traffic is *redirected* by iptables NAT rules in one atomic
  iptables-restore transaction, each tagged ``-m comment --comment cshell:BRIDGE:ID``
  so cleanup finds exactly the container's rules:
    - nat PREROUTING DNAT: packets from other machines to a host address;
    - nat OUTPUT DNAT: connections made on this host, 127.0.0.1 included
      (locally generated packets never pass PREROUTING);
    - nat POSTROUTING MASQUERADE: a connection from 127.0.0.1 leaves through the
      bridge with a loopback source (allowed by route_localnet=1 on the bridge);
      the container could not answer 127.0.0.1, so the source becomes the
      bridge's address and the reply comes back through conntrack;
    - filter FORWARD ACCEPT: lets forwarded packets in where the host's FORWARD
      policy is DROP (e.g. on a machine that also runs Docker).
  Docker's userland proxy (docker-proxy) would instead accept each connection
  and copy bytes: measured here ≈1 ms per request against ≈0.1 ms for DNAT.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import re
import shutil
import socket

from cshell.engine import trace
from cshell.errors import Conflict, RuntimeFailure, UsageError
from cshell.record import record

SPEC_HINT = "write -p [IP:][HOSTPORT:]CTRPORT[/tcp|/udp], e.g. -p 8080:80, -p 127.0.0.1:8080:80/tcp, -p 80"
RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


@record
class PortBinding:
    ctr_port: int
    host_port: int = 0  # 0: any free port, chosen when the container starts
    host_ip: str = ""  # "": every address of the host (0.0.0.0)
    proto: str = "tcp"

    @property
    def key(self) -> str:
        """Docker's name for the container side: 80/tcp."""
        return f"{self.ctr_port}/{self.proto}"

    @property
    def shown(self) -> str:
        """docker ps's PORTS text: 0.0.0.0:8080->80/tcp."""
        return f"{self.host_ip or '0.0.0.0'}:{self.host_port}->{self.key}"

    def to_json(self) -> dict:
        return {"ctr_port": self.ctr_port, "host_port": self.host_port, "host_ip": self.host_ip,
                "proto": self.proto}

    @classmethod
    def from_json(cls, data: dict) -> PortBinding:
        return cls(int(data["ctr_port"]), int(data["host_port"]), data.get("host_ip", ""),
                   data.get("proto", "tcp"))


# -- parsing ---------------------------------------------------------------------------


def _bad(spec: str, why: str) -> UsageError:
    return UsageError(f"invalid port spec {spec!r}: {why}", SPEC_HINT)


def _port_range(spec: str, text: str, what: str) -> list[int]:
    m = RANGE.match(text)
    if not m:
        raise _bad(spec, f"{what} {text!r} is not a port number or range")
    first, last = int(m.group(1)), int(m.group(2) or m.group(1))
    if not (1 <= first <= 65535 and 1 <= last <= 65535):
        raise _bad(spec, f"{what} must be between 1 and 65535")
    if last < first:
        raise _bad(spec, f"{what} range {text} runs backwards")
    return list(range(first, last + 1))


def parse_publish(spec: str) -> list[PortBinding]:
    """Docker's -p syntax: [IP:][HOSTPORT[-END]:]CTRPORT[-END][/PROTO]."""
    body, _, proto = spec.partition("/")
    proto = proto.lower() or "tcp"
    if proto not in ("tcp", "udp"):
        raise _bad(spec, f"protocol {proto!r} is not supported (tcp or udp)")
    if body.startswith("["):
        raise _bad(spec, "IPv6 host addresses are not supported")
    parts = body.split(":")
    if len(parts) > 3 or not parts[-1]:
        raise _bad(spec, "expected [IP:][HOSTPORT:]CTRPORT")
    host_ip = parts[0] if len(parts) == 3 else ""
    host_text = parts[-2] if len(parts) >= 2 else ""
    if host_ip:
        try:
            ipaddress.IPv4Address(host_ip)
        except ValueError:
            raise _bad(spec, f"{host_ip!r} is not an IPv4 address") from None
    ctr_ports = _port_range(spec, parts[-1], "container port")
    if not host_text:
        return [PortBinding(p, 0, host_ip, proto) for p in ctr_ports]
    host_ports = _port_range(spec, host_text, "host port")
    if len(host_ports) != len(ctr_ports):
        raise _bad(spec, "the host and container port ranges must have the same length")
    return [PortBinding(c, h, host_ip, proto) for h, c in zip(host_ports, ctr_ports, strict=True)]


def parse_exposed(exposed: dict | None) -> list[PortBinding]:
    """-P: every port the image EXPOSEs ("80/tcp": {}), each on a free host port."""
    out = []
    for key in sorted(exposed or {}):
        port, _, proto = key.partition("/")
        with contextlib.suppress(ValueError):
            out.append(PortBinding(int(port), 0, "", proto or "tcp"))
    return out


def check_unique(bindings: list[PortBinding]) -> None:
    seen: set[tuple[str, int, str]] = set()
    for b in bindings:
        if b.host_port and (b.host_ip, b.host_port, b.proto) in seen:
            raise UsageError(f"host port {b.host_port}/{b.proto} is published twice",
                             "give each -p its own host port")
        seen.add((b.host_ip, b.host_port, b.proto))


# -- reservation ---------------------------------------------------------------------------


def reserve(bindings: list[PortBinding]) -> list[int]:
    """Bind each host port (0: the kernel picks one and we record it); return the fds.

    On any failure the sockets bound so far are closed: nothing is left held.
    """
    held: list[socket.socket] = []
    try:
        for b in bindings:
            kind = socket.SOCK_STREAM if b.proto == "tcp" else socket.SOCK_DGRAM
            s = socket.socket(socket.AF_INET, kind | socket.SOCK_CLOEXEC)
            held.append(s)
            trace.step(f"bind({b.host_ip or '0.0.0.0'}:{b.host_port}/{b.proto})  # reserve the host port, "
                       "like docker; never listens")
            try:
                s.bind((b.host_ip or "0.0.0.0", b.host_port))
            except OSError as e:
                raise _bind_error(b, e) from None
            b.host_port = s.getsockname()[1]
    except BaseException:
        for s in held:
            s.close()
        raise
    return [s.detach() for s in held]


def _bind_error(b: PortBinding, e: OSError) -> Exception:
    where = f"{b.host_ip or '0.0.0.0'}:{b.host_port}"
    if e.errno == errno.EADDRINUSE:
        return Conflict(f"host port {b.host_port}/{b.proto} is already in use ({where})",
                        f"publish another host port (e.g. -p {b.host_port + 1}:{b.ctr_port}); "
                        f"see who holds it: !ss -lntup 'sport = :{b.host_port}'")
    if e.errno == errno.EADDRNOTAVAIL:
        return UsageError(f"{b.host_ip} is not an address of this host",
                          "publish on one of the host's addresses (ip -4 addr), or leave the IP out")
    return RuntimeFailure(f"cannot reserve host port {where}: {e.strerror}", "try another host port")


# -- iptables ----------------------------------------------------------------------------------


def rules(bindings: list[PortBinding], ip: str, bridge: str, tag: str) -> dict[str, list[str]]:
    """{table: [rule, ...]} for iptables-restore, every rule tagged."""
    nat, flt = [], []
    comment = f"-m comment --comment {tag}"
    for b in bindings:
        dst = f"-d {b.host_ip}/32 " if b.host_ip else ""
        match = f"-p {b.proto} -m {b.proto} --dport {b.host_port}"
        to = f"-j DNAT --to-destination {ip}:{b.ctr_port}"
        ctr = f"-d {ip}/32 -p {b.proto} -m {b.proto} --dport {b.ctr_port}"
        nat.append(f"-A PREROUTING -m addrtype --dst-type LOCAL {dst}! -i {bridge} {match} {comment} {to}")
        nat.append(f"-A OUTPUT -m addrtype --dst-type LOCAL {dst}{match} {comment} {to}")
        nat.append(f"-A POSTROUTING -s 127.0.0.0/8 -o {bridge} {ctr} {comment} -j MASQUERADE")
        flt.append(f"-I FORWARD ! -i {bridge} -o {bridge} {ctr} {comment} -j ACCEPT")
    return {"nat": nat, "filter": flt}


EXPLAIN = {
    "PREROUTING": "from other machines: rewrite the destination to the container",
    "OUTPUT": "from this host, 127.0.0.1 included: locally made packets skip PREROUTING",
    "POSTROUTING": "127.0.0.1 cannot be answered from the container: use the bridge's address",
    "FORWARD": "let the forwarded packets through, even under a DROP policy",
}


def iptables_binary() -> str:
    path = shutil.which("iptables-restore", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if path is None:
        raise RuntimeFailure("iptables is not installed: published ports need its NAT rules",
                             "install it (apt-get install iptables), or run without -p")
    return path


def apply(table_rules: dict[str, list[str]]) -> None:
    """All rules in one iptables-restore transaction: every rule is added, or none."""
    batch = []
    for table, lines in table_rules.items():
        if lines:
            batch += [f"*{table}", *lines, "COMMIT"]
            for line in lines:
                chain = line.split()[1]
                trace.step(f"iptables -t {table} {line}  # {EXPLAIN.get(chain, '')}".rstrip(" #"))
    if batch:
        _restore(batch)


def _restore(batch: list[str]) -> None:
    import subprocess

    proc = subprocess.run([iptables_binary(), "-w", "--noflush"], input="\n".join(batch) + "\n",
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        detail = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        raise RuntimeFailure(f"iptables-restore refused the rules: {detail}",
                             "is the kernel's netfilter NAT available? (iptables -t nat -S)")


def saved_rules(prefix: str, exact: bool = False) -> dict[str, list[str]]:
    """{table: ["-A CHAIN …", …]} of iptables-save lines whose comment is PREFIX or (unless exact) PREFIX:…"""
    import subprocess

    try:
        save = iptables_binary().replace("iptables-restore", "iptables-save")
    except RuntimeFailure:
        return {}  # no iptables: there cannot be rules of ours
    out = subprocess.run([save], capture_output=True, text=True, check=False).stdout
    found: dict[str, list[str]] = {}
    table = ""
    below = "" if exact else ":"
    pattern = re.compile(rf'--comment "?{re.escape(prefix)}["{below}\s]|--comment "?{re.escape(prefix)}"?$')
    for line in out.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith("-A ") and pattern.search(line):
            found.setdefault(table, []).append(line)
    return found


def remove(prefix: str, exact: bool = False) -> int:
    """Delete every rule tagged PREFIX (and, unless exact, PREFIX:…); return how many."""
    found = saved_rules(prefix, exact)
    batch = []
    for table, lines in found.items():
        batch += [f"*{table}", *("-D" + line[2:] for line in lines), "COMMIT"]
        for line in lines:
            trace.step(f"iptables -t {table} -D{line[2:]}")
    if batch:
        _restore(batch)
    return sum(len(lines) for lines in found.values())
