#!/bin/sh
# Runs inside the cgroup-v2 guest (tests/test_cgroup_v2_vm.py), chrooted into a bind
# mount of / moved on top of / (the guest's / is an initramfs, which pivot_root refuses;
# moved there, like switch_root does, it sits where a disk root would): a few facts
# about the guest as CHECK lines, then pytest on the tests given, from the repo and
# its venv shared in read-only over 9p (writes land in a tmpfs overlay).
#   guest_pytest.sh REPO PYTEST-ARGS...
repo=$1
shift
cd "$repo" || { echo "CHECK repo missing"; exit 3; }
echo "CHECK hierarchy $(stat -f -c %T /sys/fs/cgroup)"
echo "CHECK controllers $(cat /sys/fs/cgroup/cgroup.subtree_control)"
echo "CHECK kernel $(uname -r)"
# cshell's default bridge network (lesson06's containers): a bridge and a veth pair per container
modprobe -a bridge veth 2>/dev/null
echo "CHECK netmods bridge=$([ -d /sys/module/bridge ] && echo yes || echo no) veth=$([ -d /sys/module/veth ] && echo yes || echo no)"
echo "CHECK cshell $(.venv/bin/python -c 'import sys; from cshell.engine.limits import cgroups
print(f"python={sys.version.split()[0]} v2={cgroups.is_v2()}")' 2>&1 | tail -1)"
# software emulation (TCG) runs a lesson ~10x slower than the host: the lesson time bound follows
export CSHELL_LESSON_SECONDS=${CSHELL_LESSON_SECONDS:-180}
echo "=== guest pytest begin ==="
.venv/bin/python -m pytest -p no:cacheprovider -q -rfEs --tb=short --durations=5 "$@"
rc=$?
echo "=== guest pytest end rc=$rc ==="
exit $rc
