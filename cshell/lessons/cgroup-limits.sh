#!/bin/sh
# cgroup-limits.sh PID: the CPU and memory limits the kernel applies to PID's cgroup.
# cgroup v2 (one tree): cpu.max and memory.max. cgroup v1 (a tree per controller):
# cpu.cfs_quota_us / cpu.cfs_period_us and memory.limit_in_bytes.
pid=${1:?usage: cgroup-limits.sh PID}
mem=$(sed -n 's/^[0-9]*:[^:]*memory[^:]*://p' "/proc/$pid/cgroup")
if [ -n "$mem" ]; then
    cpu=$(sed -n 's/^[0-9]*:\([^:]*,\)*cpu\(,[^:]*\)*://p' "/proc/$pid/cgroup")
    cpudir=/sys/fs/cgroup/cpu$cpu
    [ -d "$cpudir" ] || cpudir=/sys/fs/cgroup/cpu,cpuacct$cpu
    echo "cgroup v1"
    echo "$cpudir/cpu.cfs_quota_us = $(cat "$cpudir/cpu.cfs_quota_us")"
    echo "$cpudir/cpu.cfs_period_us = $(cat "$cpudir/cpu.cfs_period_us")"
    echo "/sys/fs/cgroup/memory$mem/memory.limit_in_bytes = $(cat "/sys/fs/cgroup/memory$mem/memory.limit_in_bytes")"
else
    dir=/sys/fs/cgroup$(sed -n 's/^0:://p' "/proc/$pid/cgroup")
    echo "cgroup v2"
    echo "$dir/cpu.max = $(cat "$dir/cpu.max")"
    echo "$dir/memory.max = $(cat "$dir/memory.max")"
fi
