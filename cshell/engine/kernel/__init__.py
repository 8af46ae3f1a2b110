"""The kernel's interfaces, as thin as they can be: what every other package builds on.

    syscalls.py    ctypes wrappers for the calls Python does not expose (unshare, setns,
                   mount, pivot_root, openat2, ...)
    namespaces.py  /proc/PID/ns links, and setns(2) into them (the article's set_ns.c)
    mounts.py      mounting volumes, binds and tmpfs at paths resolved inside a container root
    caps.py        capabilities: the sets a container keeps
    seccomp.py     the system-call filter a container runs under
    terminal.py    raw mode, window size, copying bytes between a terminal and a container
    processes.py   forked helpers: the status pipe protocol, liveness checks

The kernel package knows nothing of containers, images or networks.
May import: state, trace.
"""
