#!/bin/sh
# cgroup-cpu.sh PID [SECONDS]: how much CPU PID's cgroup used over SECONDS (default 2), and how
# often the kernel throttled it, read from the cgroup files twice.
# cgroup v2 (one tree): cpu.stat has usage_usec, nr_periods, nr_throttled.
# cgroup v1 (a tree per controller): cpuacct.usage (ns) and cpu.stat nr_periods, nr_throttled.
pid=${1:?usage: cgroup-cpu.sh PID [SECONDS]}
secs=${2:-2}
stat() { sed -n "s/^$2 //p" "$1/cpu.stat"; }
if grep -q '^[0-9]*:[^:]*cpu[,:]' "/proc/$pid/cgroup"; then
    cpu=$(sed -n 's/^[0-9]*:\([^:]*,\)*cpu\(,[^:]*\)*://p' "/proc/$pid/cgroup")
    acct=$(sed -n 's/^[0-9]*:\([^:]*,\)*cpuacct\(,[^:]*\)*://p' "/proc/$pid/cgroup")
    dir=/sys/fs/cgroup/cpu$cpu
    [ -d "$dir" ] || dir=/sys/fs/cgroup/cpu,cpuacct$cpu
    acctdir=/sys/fs/cgroup/cpuacct$acct
    [ -d "$acctdir" ] || acctdir=$dir
    echo "cgroup v1: $dir"
    echo "limit: cpu.cfs_quota_us = $(cat "$dir/cpu.cfs_quota_us"), cpu.cfs_period_us = $(cat "$dir/cpu.cfs_period_us")"
    used() { echo $(( $(cat "$acctdir/cpuacct.usage") / 1000 )); }
else
    dir=/sys/fs/cgroup$(sed -n 's/^0:://p' "/proc/$pid/cgroup")
    echo "cgroup v2: $dir"
    echo "limit: cpu.max = $(cat "$dir/cpu.max")"
    used() { stat "$dir" usage_usec; }
fi
u0=$(used); p0=$(stat "$dir" nr_periods); t0=$(stat "$dir" nr_throttled)
sleep "$secs"
u1=$(used); p1=$(stat "$dir" nr_periods); t1=$(stat "$dir" nr_throttled)
echo "in $secs s: nr_periods +$((p1 - p0)), nr_throttled +$((t1 - t0))"
echo "CPU time used: $(( (u1 - u0) / 1000 )) ms of $(( secs * 1000 )) ms, ≈ $(( (u1 - u0) / (secs * 10000) ))% of one CPU"
