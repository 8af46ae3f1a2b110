"""Container networks: Docker's bridge, none, host and container: modes, and published ports.

    network.py   a container's network: the bridge, its veth pair and address (where a
                 container gets its veth), host and none modes, and reconcile
    netlink.py   rtnetlink through pyroute2's message classes (`ip link`, `ip addr`, `ip route`)
    ipam.py      the bridge's subnet and one lease per container address
    portmap.py   `run -p`: the reserved host port and the iptables DNAT rules
    netinfo.py   what `net ls` and `net inspect` read back from the kernel

May import: kernel, state, trace.
"""
