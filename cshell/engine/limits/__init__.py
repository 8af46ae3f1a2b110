"""Resource limits: one cgroup per container, and docker's flags written into it.

    cgroups.py   where a container's cgroup is (v1 per controller, or v2), made and removed
    systemd.py   under systemd (v2): the delegated scope systemd makes per container (D-Bus)
    limits.py    --memory, --cpus, --pids-limit ... -> cgroup files; `cgroup show`'s reading

May import: kernel, state, trace.
"""
