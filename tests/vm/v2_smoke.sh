#!/bin/sh
# Runs inside the cgroup-v2 guest (see test_cgroup_v2_vm.py): cshell on a pure
# cgroup-v2 hierarchy, as on the students' VMs. Prints one CHECK line per fact.
set -u
repo=$1
export PYTHONPATH="$repo:$repo/.venv/lib/python3.11/site-packages"
root=$(mktemp -d /tmp/v2root.XXXXXX)
cs() { python3 -m cshell --root "$root" "$@"; }
# --net none: this guest is about cgroup v2 and has no bridge/veth modules

echo "CHECK hierarchy $(stat -f -c %T /sys/fs/cgroup)"
echo "CHECK run-cgroupns $(cs run --rm --net none busybox cat /proc/self/cgroup)"
id=$(cs run -d --net none --name a busybox sleep 300)
group=/sys/fs/cgroup/cshell/$id
pid=$(cs inspect --format '{{.State.Pid}}' a)
echo "CHECK group-exists $([ -d "$group" ] && echo yes || echo no)"
echo "CHECK pid-in-group $(grep -qx "$pid" "$group/cgroup.procs" && echo yes || echo no)"
echo "CHECK controllers $(cat /sys/fs/cgroup/cshell/cgroup.subtree_control)"
echo "CHECK exec-cgroupns $(cs exec a cat /proc/self/cgroup)"
echo "CHECK exec-in-group $(cs exec a sh -c 'cat /proc/self/cgroup >/dev/null; echo $$' >/dev/null; echo done)"
echo "CHECK ns-differ $([ "$(readlink /proc/$pid/ns/cgroup)" != "$(readlink /proc/self/ns/cgroup)" ] && echo yes || echo no)"
cs rm -f a >/dev/null
echo "CHECK group-removed $([ -d "$group" ] && echo no || echo yes)"
echo "CHECK containers-left $(ls "$root/containers" | wc -l)"
rm -rf "$root"
