"""The engine: the runtime core, one package per concept, usable as a library without the shell.

Where a concept lives (each package's docstring says more):

    kernel/      the kernel's interfaces: syscalls (ctypes), namespaces, mounts, capabilities,
                 seccomp, the terminal, forked processes and their status pipe
    limits/      cgroups v1 and v2, and docker's limit flags (--memory, --cpus, --pids-limit)
    net/         bridge, veth pairs and routes (netlink), IP leases, published ports
    volumes/     volumes (anonymous, named, bind, tmpfs) and the bind-mount demonstration
    image/       the image store (blobs, layers, tags, GC), layer tars, save/load, base images
    registry/    the distribution API: references to endpoints, HTTP and auth, login, pull, push
    container/   a container's life: the Runtime, the shim, PID 1, its root filesystem and layers
    build/       images made from containers: build (Dockerfile), commit, rmi and prune
    state.py     the state root on disk, atomic writes, locks, timestamps, digests
    trace.py     explain events: the syscall or command each step is equivalent to
    system.py    the state root as a whole: system df, prune, check (spans every package)

Imports flow one way, from the bottom of this list up: kernel, then limits, net, volumes
and image, then registry, container, build, and system on top; state and trace are the
floor everything stands on. No engine module imports cshell.commands, views or shell,
nor rich or prompt_toolkit. tests/test_imports.py checks all of it.

No ``__init__.py`` here imports anything: a one-shot ``cshell ps`` must not pay for the
image store or pyroute2, so modules are imported where they are needed, often lazily.
"""
