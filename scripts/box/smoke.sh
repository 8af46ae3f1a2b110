#!/bin/bash
# scripts/box/smoke.sh: the students' VM from the local box, end to end, with timings:
# boot to ssh, provisioning, lesson 08 (--fast) inside, destroy; then what is left of it.
#
#   sudo make box && sudo scripts/box/smoke.sh        # what `make box-smoke` runs
#
# Vagrant's state goes to a temporary VAGRANT_DOTFILE_PATH (not the checkout's .vagrant/), and
# the VM is destroyed at the end whatever happened. Exit status 0 = everything passed and nothing
# of the VM is left (domain, disk volume, vagrant-libvirt network, DHCP leases, qemu, dnsmasq).
# KEEP=1 leaves the VM running (then: VAGRANT_DOTFILE_PATH=... vagrant ssh / destroy -f).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
export CSHELL_BOX=cshell/bookworm-local VAGRANT_CHECKPOINT_DISABLE=1
export VAGRANT_DOTFILE_PATH=${VAGRANT_DOTFILE_PATH:-$(mktemp -d /var/tmp/cshell-smoke.XXXXXX)/dot}
mkdir -p "$(dirname "$VAGRANT_DOTFILE_PATH")"
LOG=$(dirname "$VAGRANT_DOTFILE_PATH")/smoke.log
cd "$REPO"

log() { printf 'smoke: %s\n' "$*" >&2; }
# run "$@", its output in $LOG (without vagrant-libvirt's upload progress), and print its time
timed() {
    local name=$1 t0=$EPOCHREALTIME rc=0; shift
    echo "== $name: $*" >> "$LOG"
    "$@" 2>&1 | tr '\r' '\n' | grep --line-buffered -v 'Progress: ' | stamp "$t0" >> "$LOG" || rc=$?
    [ "${PIPESTATUS[0]}" = 0 ] || rc=1
    awk -v n="$name" -v a="$EPOCHREALTIME" -v b="$t0" 'BEGIN{printf "vm-timing: %-24s %7.1f s\n", n, a-b}' >&2
    return $rc
}

stamp() {  # prefix each line with the seconds since $1
    local l; while IFS= read -r l; do
        awk -v a="$EPOCHREALTIME" -v b="$1" -v l="$l" 'BEGIN{printf "%6.1f %s\n", a-b, l}'; done
}

leftovers() {  # one line per thing of ours that exists now
    virsh -q list --all --name | sed '/^$/d; s/^/domain /'
    virsh -q vol-list default | awk '$1 !~ /^cshell-VAGRANTSLASH-bookworm-local_vagrant_box_image/ {print "volume", $1}'
    virsh -q net-list --all --name | grep -x vagrant-libvirt | sed 's/^/network /' || true
    [ -s /var/lib/libvirt/dnsmasq/vagrant-libvirt.status ] &&
        grep -q ip-address /var/lib/libvirt/dnsmasq/vagrant-libvirt.status && echo "lease vagrant-libvirt.status"
    pgrep -a -f 'qemu-system.*guest=' | sed 's/^/process /' || true
    pgrep -a -f 'dnsmasq.*vagrant-libvirt' | sed 's/^/process /' || true
}

boot_to_ssh()  { timed "boot to ssh (up)" vagrant up --provider=libvirt --no-provision; }
guest_boot()   {  # the guest's own view: kernel + systemd until multi-user
    local t; t=$(vagrant ssh -c 'systemd-analyze time' 2>/dev/null | tr -d '\r' | grep -m1 'Startup finished') || return 0
    log "in the guest: $t"
}
provision()    { timed provisioning vagrant provision; }
lesson08()     { timed "lesson08 --fast in VM" vagrant ssh -c 'sudo cshell --script lesson08.cs --fast'; }
as_student()   {  # plain `cshell` as the vagrant user: it re-runs itself through sudo, so the container's root is 0
    timed "cshell as vagrant" vagrant ssh -c 'out=$(cshell run --rm busybox id -u); rc=$?; echo "cshell as vagrant: rc=$rc out=$out"; [ "$rc/$out" = 0/0 ]'
}
scoped()       {  # a container started from this ssh session: shim and PID 1 leave the session's scope,
                  # and daemon-reload keeps its limits (systemd never writes inside a delegated subtree)
    timed "systemd scope" vagrant ssh -c 'set -ex
        cshell run -d --name scoped --memory 48m busybox sleep 300
        pid=$(cshell inspect --format "{{.State.Pid}}" scoped)
        shim=$(pgrep -x cshell-shim)
        cat /proc/$pid/cgroup /proc/$shim/cgroup
        grep -q "^0::/cshell.slice/cshell-.*\.scope/container$" /proc/$pid/cgroup
        grep -q "^0::/cshell.slice/cshell-.*\.scope/shim$" /proc/$shim/cgroup
        sudo systemctl daemon-reload
        cat /sys/fs/cgroup/cshell.slice/cshell-*.scope/container/memory.max
        grep -qx 50331648 /sys/fs/cgroup/cshell.slice/cshell-*.scope/container/memory.max
        cshell rm -f scoped'
}
lessons()      {  # FULL=1: every lesson in both languages (lesson08 en ran above)
    [ -n "${FULL:-}" ] || return 0
    local l lang
    for l in lesson05 lesson06 lesson07 lesson08; do for lang in en zh; do
        [ "$l/$lang" = lesson08/en ] && continue
        timed "$l $lang --fast in VM" vagrant ssh -c "sudo cshell --script $l --fast --lang $lang" || return 1
    done; done
}
guest_tests()  {  # FULL=1: the cgroup and container tests under pytest, on systemd and cgroup v2
    [ -n "${FULL:-}" ] || return 0
    timed "pytest in VM" vagrant ssh -c 'cd /vagrant && sudo .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_cgroups.py tests/test_containers.py'
}
no_failed()    {  # no unit of ours (or anyone's) failed during the lesson
    local failed; failed=$(vagrant ssh -c 'systemctl --failed --no-legend --plain' 2>/dev/null | tr -d '\r')
    [ -z "$failed" ] || { log "systemctl --failed: $failed"; return 1; }
}
destroy()      { timed "vagrant destroy" vagrant destroy -f; }

main() {
    [ "$(id -u)" = 0 ] || { log "run as root"; exit 1; }
    [[ $(vagrant box list) == *"$CSHELL_BOX (libvirt"* ]] || { log "no box $CSHELL_BOX: run make box first"; exit 1; }
    local before rc=0
    before=$(leftovers)
    log "log: $LOG"
    boot_to_ssh && guest_boot && provision && lesson08 && as_student && scoped && lessons && guest_tests && no_failed || rc=$?
    [ $rc = 0 ] || { log "FAILED (rc=$rc); last lines of $LOG:"; tail -n 40 "$LOG" >&2; }
    [ -n "${KEEP:-}" ] && { log "KEEP=1: VAGRANT_DOTFILE_PATH=$VAGRANT_DOTFILE_PATH"; return $rc; }
    destroy || rc=1
    local left; left=$(comm -13 <(echo "$before" | sort) <(leftovers | sort))
    for _ in 1 2 3 4 5; do [ -z "$left" ] && break; sleep 1; left=$(comm -13 <(echo "$before" | sort) <(leftovers | sort)); done
    if [ -n "$left" ]; then log "left behind:"; echo "$left" >&2; rc=1; else log "nothing of the VM is left"; fi
    return $rc
}

main "$@"
