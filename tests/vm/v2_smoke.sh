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

# Limits on v2: docker's flags -> memory.max, memory.swap.max, cpu.max, cpu.weight, pids.max
id=$(cs run -d --net none --name lim --memory 64m --memory-swap 96m --cpus 0.5 --cpu-shares 512 --pids-limit 50 busybox sleep 300)
g=/sys/fs/cgroup/cshell/$id
echo "CHECK v2-memory-max $(cat $g/memory.max)"
echo "CHECK v2-swap-max $(cat $g/memory.swap.max 2>/dev/null || echo none)"
echo "CHECK v2-cpu-max $(cat $g/cpu.max)"
echo "CHECK v2-cpu-weight $(cat $g/cpu.weight)"
echo "CHECK v2-pids-max $(cat $g/pids.max)"
cs cgroup set lim memory=128m pids=100 cpu.max="30000 100000" >/dev/null
echo "CHECK v2-set $(cat $g/memory.max) $(cat $g/pids.max) $(cat $g/cpu.max | tr ' ' _)"
echo "CHECK v2-show $(cs cgroup show lim | grep -c -e "$g/memory.max = 134217728" -e "$g/cpu.max = 30000 100000" -e 'pids.current')"
echo "CHECK v2-set-v1-name $(cs cgroup set lim memory.limit_in_bytes=1 2>&1 | head -1 | grep -c 'no cgroup file')"
cs rm -f lim >/dev/null
echo "CHECK v2-lim-removed $([ -d "$g" ] && echo no || echo yes)"
# Inside: the own group at /sys/fs/cgroup, read-only
echo "CHECK v2-inside $(cs run --rm --net none --pids-limit 40 busybox sh -c 'cat /sys/fs/cgroup/pids.max; (echo max > /sys/fs/cgroup/pids.max) 2>&1 | grep -c Read-only; cat /sys/fs/cgroup/pids.max; grep " /sys/fs/cgroup " /proc/self/mountinfo | cut -d" " -f4' | tr '\n' ' ')"
echo "CHECK v2-cpuset $(cs run --rm --net none --cpuset-cpus 0 busybox cat /sys/fs/cgroup/cpuset.cpus 2>&1 | head -1)"
echo "CHECK v2-bad-limit $(cs run --net none --memory 1k busybox true 2>&1 | head -1 | grep -c minimum) $(ls "$root/containers" | wc -l)"
# Enforced: the OOM killer, a fork loop, a CPU quota
cs run --name hog --net none --memory 16m busybox tail /dev/zero >/dev/null 2>&1
echo "CHECK v2-oom-exit $?"
echo "CHECK v2-oom-killed $(cs inspect --format '{{.State.OOMKilled}}' hog)"
cs rm hog >/dev/null
id=$(cs run -d --net none --name fb --pids-limit 10 busybox sh -c '(i=0; while [ $i -lt 50 ]; do sleep 300 & i=$((i+1)); done) 2>/dev/null; echo survived; exec sleep 300')
g=/sys/fs/cgroup/cshell/$id
for i in $(seq 100); do cs logs fb | grep -q survived && break; sleep 0.1; done
echo "CHECK v2-pids-current $(cat $g/pids.current) $(grep '^max ' $g/pids.events | cut -d' ' -f2)"
cs rm -f fb >/dev/null
id=$(cs run -d --net none --name spin --cpus 0.2 busybox sh -c 'while :; do :; done')
sleep 1.5
echo "CHECK v2-throttled $(grep '^nr_throttled ' /sys/fs/cgroup/cshell/$id/cpu.stat | cut -d' ' -f2)"
cs rm -f spin >/dev/null
echo "CHECK v2-groups-left $(ls /sys/fs/cgroup/cshell | grep -c '^[0-9a-f]\{64\}$')"
rm -rf "$root"
