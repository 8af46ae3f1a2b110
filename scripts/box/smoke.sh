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
#
# FULL=1 (`make test-vm`) adds: every lesson in both languages, an interactive session on a pty
# over ssh (session.py), two containers through a VM reboot, the VM killed in the middle of
# lesson08 then `lesson reset` and lesson08 again, and the kernel test files under pytest
# (GUEST_TESTS). The checks inside the VM are scripts/box/guest.sh. `smoke.sh STEP...` boots,
# provisions and runs only those steps (e.g. `KEEP=1 VAGRANT_DOTFILE_PATH=D smoke.sh reboot`
# again and again on one VM).
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
    "$@" 2>&1 | tr '\r' '\n' | grep -a --line-buffered -v 'Progress: ' | stamp "$t0" >> "$LOG" || rc=$?
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
# The kernel test files, each under pytest in the VM (FULL=1): the issue's list; GUEST_TESTS=...
# runs others. Every file runs even when one fails; the step fails if any did.
GUEST_TESTS=${GUEST_TESTS:-containers cgroups network volumes security adversarial faults reliability}
guest_tests()  {
    [ -n "${FULL:-}" ] || return 0
    local t rc=0
    for t in $GUEST_TESTS; do
        timed "pytest $t in VM" vagrant ssh -c "cd /vagrant && sudo .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_$t.py" || rc=1
        grep -E '^ *[0-9.]+ .*(passed|failed|error)' "$LOG" | tail -n 1 | sed 's/^ *[0-9.]* /smoke: /' >&2
    done
    return $rc
}
guest()        { vagrant ssh -c "sudo /vagrant/scripts/box/guest.sh $*"; }
reboot()       {  # FULL=1: two containers running (one with -p) through a VM reboot
    [ -n "${FULL:-}" ] || return 0
    timed "2 containers up" guest before-reboot &&
        timed "vagrant reload" vagrant reload --no-provision && guest_boot &&
        timed "after reboot: checks" guest after-reboot
}
killed_lesson() {  # FULL=1: the VM killed (virsh destroy) in the middle of lesson08, booted again
    [ -n "${FULL:-}" ] || return 0
    local domain; domain=$(cat "$VAGRANT_DOTFILE_PATH/machines/default/libvirt/id")
    timed "lesson08 until killed" guest lesson-until "\"The container's process, seen from the host\"" &&
        timed "virsh destroy" virsh destroy "$domain" &&
        timed "boot again (up)" vagrant up --provider=libvirt --no-provision && guest_boot &&
        timed "lesson reset + lesson08" guest after-kill
}
session()      {  # FULL=1: one interactive session on a pty over `vagrant ssh -- -t cshell`
    [ -n "${FULL:-}" ] || return 0
    timed "pty session over ssh" "$REPO/.venv/bin/python" "$REPO/scripts/box/session.py"
}
no_failed()    {  # no unit of ours (or anyone's) failed during the lesson
    local failed; failed=$(vagrant ssh -c 'systemctl --failed --no-legend --plain' 2>/dev/null | tr -d '\r')
    [ -z "$failed" ] || { log "systemctl --failed: $failed"; return 1; }
}
destroy()      { timed "vagrant destroy" vagrant destroy -f; }

# The steps after boot and provisioning, in order; `smoke.sh STEP...` runs only those (FULL=1 implied).
STEPS="lesson08 as_student scoped lessons no_failed session reboot killed_lesson guest_tests"

main() {
    [ "$(id -u)" = 0 ] || { log "run as root"; exit 1; }
    [[ $(vagrant box list) == *"$CSHELL_BOX (libvirt"* ]] || { log "no box $CSHELL_BOX: run make box first"; exit 1; }
    local steps=${*:-$STEPS} step before rc=0
    [ $# = 0 ] || export FULL=1
    for step in $steps; do
        [[ " $STEPS " == *" $step "* ]] || { log "no step $step (steps: $STEPS)"; exit 2; }
    done
    before=$(leftovers)
    log "log: $LOG"
    boot_to_ssh && guest_boot && provision || rc=$?
    for step in $steps; do
        [ $rc = 0 ] || break
        "$step" || rc=$?
    done
    [ $rc = 0 ] || { log "FAILED (rc=$rc); last lines of $LOG:"; tail -n 40 "$LOG" >&2; }
    [ -n "${KEEP:-}" ] && { log "KEEP=1: VAGRANT_DOTFILE_PATH=$VAGRANT_DOTFILE_PATH"; return $rc; }
    destroy || rc=1
    local left; left=$(comm -13 <(echo "$before" | sort) <(leftovers | sort))
    for _ in 1 2 3 4 5; do [ -z "$left" ] && break; sleep 1; left=$(comm -13 <(echo "$before" | sort) <(leftovers | sort)); done
    if [ -n "$left" ]; then log "left behind:"; echo "$left" >&2; rc=1; else log "nothing of the VM is left"; fi
    return $rc
}

main "$@"
