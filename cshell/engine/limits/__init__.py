"""Resource limits: one cgroup per container, and docker's flags written into it.

    cgroups.py   where a container's cgroup is (v1 per controller, or v2), made and removed
    limits.py    --memory, --cpus, --pids-limit ... -> cgroup files; `cgroup show`'s reading

May import: kernel, state, trace.
"""
