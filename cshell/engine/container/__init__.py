"""Containers: a container's life, from `run` to `rm`, and what it looks like from inside.

    containers.py   the Runtime: create, start, attach, exec, stop, remove, inspect
    shim.py         the per-container monitor (containerd-shim): cgroup, PID 1, logs, exit
    init.py         PID 1 from fork to execve (runc's init): namespaces, rootfs, hostname
    initbin.py      `run --init`: cshell-init, the tiny static PID 1 (docker's tini)
    rootfs.py       the root filesystem inside the container's mount namespace: overlay,
                    /proc, /sys, /dev, pivot_root
    layers.py       which layers make up a container's / (layer stack, whereis)
    export.py       docker export and import: a container's filesystem as one flat tar
    joining.py      `exec` and `ns join`: a process that joins another's namespaces
    security.py     capabilities, seccomp, no_new_privs and the user a container runs with
    users.py        -u USER[:GROUP], looked up in the container's own /etc/passwd
    environment.py  -e, --env-file, and the merge with the image's Env
    health.py       HEALTHCHECK: the shim's probe thread, health.json, State.Health

A container is made from an image (image/), which is pulled when it is missing
(registry/, handed to the store by the Runtime), with its cgroup (limits/), network
(net/) and volumes (volumes/).
May import: kernel, limits, net, volumes, image, registry, events, state, trace.
"""
