"""IP address management: the bridge's subnet, and one lease file per container address.

The subnet is chosen when the bridge is made, the way Docker picks docker0's:
the first of 172.17.0.0/16 … 172.31.0.0/16, then 192.168.0.0/20 … 192.168.240.0/20
that overlaps no route the host has (a clash would make part of the host's
own network unreachable). A subnet written in the state root's network config
is used as given, and refused if it clashes.

A lease is a file named by the address under ROOT/network/leases/. It is made
by link(2) from a complete temporary file: link fails when the name exists,
so two shells can never hand out the same address, and a reader never sees a
half-written lease. Leases live on disk, so a restarted shell knows them; the
owner releases its lease when the container stops (as Docker does, an address
is held only while the container runs) and `rm`/start-up reconcile release
what a crash left.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cshell.errors import Conflict, RuntimeFailure
from cshell.record import record

Net = ipaddress.IPv4Network

# Docker's default address pools, in Docker's order.
POOLS = ([Net(f"172.{n}.0.0/16") for n in range(17, 32)]
         + [Net(f"192.168.{n}.0/20") for n in range(0, 256, 16)])


@record
class Lease:
    ip: str
    container: str
    path: Path
    data: dict[str, Any]

    @property
    def age(self) -> float:
        try:
            return time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return 0.0


def clashes(subnet: Net, routes: Iterable[Net]) -> Net | None:
    """The first route (not the default one) that overlaps the subnet."""
    return next((r for r in routes if r.prefixlen > 0 and r.overlaps(subnet)), None)


def choose_subnet(routes: list[Net], configured: str | None = None) -> Net:
    if configured:
        try:
            subnet = Net(configured, strict=False)
        except ValueError:
            raise RuntimeFailure(f"the configured subnet {configured!r} is not an IPv4 network",
                                 "set one like 172.20.0.0/16: net config subnet=172.20.0.0/16") from None
        if subnet.prefixlen > 30:
            raise RuntimeFailure(f"the configured subnet {subnet} is too small",
                                 "give a /30 or larger, e.g. net config subnet=172.20.0.0/16")
        clash = clashes(subnet, routes)
        if clash is not None:
            raise Conflict(f"subnet {subnet} clashes with the host's route to {clash}",
                           "choose another: net config subnet=CIDR (or subnet=auto)")
        return subnet
    for subnet in POOLS:
        if clashes(subnet, routes) is None:
            return subnet
    raise Conflict("no free private subnet for the bridge: every default pool clashes with a host route",
                   "choose one that does not: net config subnet=CIDR")


class Leases:
    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def all(self) -> list[Lease]:
        out = []
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.dir):
                if entry.name.startswith("."):
                    continue
                with contextlib.suppress(OSError, ValueError):
                    data = json.loads(Path(entry.path).read_bytes())
                    out.append(Lease(entry.name, data["container"], Path(entry.path), data))
        return out

    def of(self, cid: str) -> list[Lease]:
        return [lease for lease in self.all() if lease.container == cid]

    def allocate(self, cid: str, subnet: Net, gateway: str, data: dict[str, Any], want: str = "") -> Lease:
        """The lowest free address of the subnet (after the gateway), or WANT, taken atomically."""
        self.dir.mkdir(parents=True, exist_ok=True)
        taken = {lease.ip for lease in self.all()} | {gateway}
        if want and want in taken:
            raise Conflict(f"address {want} is already in use on this network",
                           "choose another --ip, or leave it out to get a free one")
        body = json.dumps({"container": cid, **data}, sort_keys=True).encode()
        tmp = self.dir / f".{cid}.{os.getpid()}.tmp"
        tmp.write_bytes(body)
        try:
            for host in [ipaddress.IPv4Address(want)] if want else subnet.hosts():
                ip = str(host)
                if ip in taken:
                    continue
                try:
                    os.link(tmp, self.dir / ip)
                except FileExistsError:
                    if want:
                        raise Conflict(f"address {want} is already in use on this network",
                                       "choose another --ip, or leave it out to get a free one") from None
                    continue  # another shell took it between our look and our link
                return Lease(ip, cid, self.dir / ip, {"container": cid, **data})
        finally:
            tmp.unlink()
        raise Conflict(f"no free address left in {subnet}", "remove stopped containers (rm) or choose a larger subnet")

    def update(self, lease: Lease, **changes: Any) -> None:
        lease.data.update(changes)
        tmp = self.dir / f".{lease.ip}.{os.getpid()}.tmp"
        tmp.write_bytes(json.dumps(lease.data, sort_keys=True).encode())
        os.rename(tmp, lease.path)

    @staticmethod
    def release(lease: Lease) -> None:
        with contextlib.suppress(FileNotFoundError):
            lease.path.unlink()
