#!/bin/sh
# Runs inside the cgroup-v2 guest (tests/test_cgroup_v2_vm.py), chrooted into a bind
# mount of / (the guest's / is an initramfs, which pivot_root refuses): a few facts
# about the guest as CHECK lines, then pytest on the tests given, from the repo and
# its venv shared in read-only over 9p (writes land in a tmpfs overlay).
#   guest_pytest.sh REPO PYTEST-ARGS...
repo=$1
shift
cd "$repo" || { echo "CHECK repo missing"; exit 3; }
echo "CHECK hierarchy $(stat -f -c %T /sys/fs/cgroup)"
echo "CHECK controllers $(cat /sys/fs/cgroup/cgroup.subtree_control)"
echo "CHECK kernel $(uname -r)"
echo "CHECK cshell $(.venv/bin/python -c 'import sys; from cshell.engine import cgroups
print(f"python={sys.version.split()[0]} v2={cgroups.is_v2()}")' 2>&1 | tail -1)"
echo "=== guest pytest begin ==="
.venv/bin/python -m pytest -p no:cacheprovider -q -rfEs --tb=short --durations=5 "$@"
rc=$?
echo "=== guest pytest end rc=$rc ==="
exit $rc
