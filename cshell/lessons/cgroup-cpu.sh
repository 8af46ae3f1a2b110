#!/bin/sh
# cgroup-cpu.sh PID [SECONDS]: how much CPU PID's cgroup used over SECONDS (default 2), and how
# often the kernel throttled it, read from the cgroup files twice.
# cgroup v2 (one tree): cpu.stat has usage_usec, nr_periods, nr_throttled.
# cgroup v1 (a tree per controller): cpuacct.usage (ns) and cpu.stat nr_periods, nr_throttled.
pid=${1:?usage: cgroup-cpu.sh PID [SECONDS]}
secs=${2:-2}
if grep -q '^[0-9]*:[^:]*cpu[,:]' "/proc/$pid/cgroup"; then
    cpu=$(sed -n 's/^[0-9]*:\([^:]*,\)*cpu\(,[^:]*\)*://p' "/proc/$pid/cgroup")
    acct=$(sed -n 's/^[0-9]*:\([^:]*,\)*cpuacct\(,[^:]*\)*://p' "/proc/$pid/cgroup")
    dir=/sys/fs/cgroup/cpu$cpu
    [ -d "$dir" ] || dir=/sys/fs/cgroup/cpu,cpuacct$cpu
    acctdir=/sys/fs/cgroup/cpuacct$acct
    [ -d "$acctdir" ] || acctdir=$dir
    echo "cgroup v1: $dir"
    echo "limit: cpu.cfs_quota_us = $(cat "$dir/cpu.cfs_quota_us"), cpu.cfs_period_us = $(cat "$dir/cpu.cfs_period_us")"
else
    dir=/sys/fs/cgroup$(sed -n 's/^0:://p' "/proc/$pid/cgroup")
    echo "cgroup v2: $dir"
    echo "limit: cpu.max = $(cat "$dir/cpu.max")"
    acctdir=
fi
# One snapshot of the counters, read with shell builtins only (no process to start): on a slow
# machine a `sed` per counter would stretch the window past SECONDS and let a period pass
# between reading nr_periods and nr_throttled.
snap() {
    while read -r key value; do
        case $key in
            usage_usec) u=$value ;; nr_periods) p=$value ;; nr_throttled) t=$value ;;
        esac
    done < "$dir/cpu.stat"
    if [ -n "$acctdir" ]; then read -r ns < "$acctdir/cpuacct.usage"; u=$((ns / 1000)); fi
}
snap; u0=$u; p0=$p; t0=$t
sleep "$secs"
snap; u1=$u; p1=$p; t1=$t
echo "in $secs s: nr_periods +$((p1 - p0)), nr_throttled +$((t1 - t0))"
echo "CPU time used: $(( (u1 - u0) / 1000 )) ms of $(( secs * 1000 )) ms, ≈ $(( (u1 - u0) / (secs * 10000) ))% of one CPU"
