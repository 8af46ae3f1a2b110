#!/bin/bash
# scripts/box/guest.sh CHECK: the checks scripts/box/smoke.sh runs inside the students' VM, as
# root, from the rsynced checkout (/vagrant). Each prints what it sees and exits non-zero when
# what a student would observe is wrong.
#
#   leftovers        what of cshell is on the machine: host mounts under the state root, its
#                    bridge and veths, iptables rules, cgroups and systemd scopes, shims, leases
#   before-reboot    two containers running: `web` (-p 8080:80, busybox httpd) and `sleeper`
#   after-reboot     after a reboot: ps -a shows both Exited, ps none, nothing left, no failed
#                    unit; `start web` serves again, `run` works; rm -f leaves nothing behind
#   lesson-until T   lesson08 --fast started in the background (it outlives this ssh session);
#                    returns once its output shows T (a step's title): the VM is then killed
#   after-kill       after that VM was killed and booted again: `lesson reset lesson08`, then
#                    lesson08 --fast passes and leaves nothing behind
set -euo pipefail

ROOT=/var/lib/cshell
KILLED_LOG=/var/tmp/cshell-lesson08-killed.log
export COLUMNS=200  # ps prints whole lines

say() { printf 'guest: %s\n' "$*"; }
fail() { say "FAILED: $*"; exit 1; }

leftovers() {  # one line per thing of cshell's that exists now
    awk -v r="$ROOT/" 'index($5, r) == 1 {print "mount", $5}' /proc/self/mountinfo
    local link alias
    for link in /sys/class/net/*; do
        alias=$(cat "$link/ifalias" 2>/dev/null || true)
        if [ "${link##*/}" = cshell0 ] || [[ $alias == cshell:* ]]; then echo "link ${link##*/} ($alias)"; fi
    done
    iptables-save 2>/dev/null | grep -- '--comment "\?cshell:' | sed 's/^/iptables /' || true
    ls -d /sys/fs/cgroup/cshell.slice/cshell-*.scope /sys/fs/cgroup/cshell/*/ 2>/dev/null | sed 's/^/cgroup /' || true
    systemctl list-units --all --plain --no-legend 'cshell-*.scope' | sed 's/^/unit /'
    pgrep -a -x cshell-shim | sed 's/^/process /' || true
    ls "$ROOT/network/leases" 2>/dev/null | sed 's/^/lease /' || true
    true
}

nothing_left() {  # $1: when
    local left; left=$(leftovers)
    [ -z "$left" ] || { echo "$left"; fail "$1: cshell left the above"; }
    say "$1: no mount, link, iptables rule, cgroup, scope, shim or lease of cshell"
}

no_failed_unit() {
    local failed; failed=$(systemctl --failed --no-legend --plain)
    [ -z "$failed" ] || { echo "$failed"; fail "$1: systemctl --failed is not empty"; }
    say "$1: systemctl --failed is empty"
}

page() {  # the page web serves on the VM's port 8080 (busybox httpd, files of the container's /etc)
    local i
    for i in $(seq 50); do
        curl -fsS --max-time 2 http://127.0.0.1:8080/hostname 2>/dev/null && return 0
        sleep 0.2
    done
    fail "nothing answers on 127.0.0.1:8080"
}

before_reboot() {
    cshell rm -f web sleeper >/dev/null 2>&1 || true
    cshell run -d --name web -p 8080:80 busybox httpd -f -p 80 -h /etc
    cshell run -d --name sleeper busybox sleep 100000
    say "web answers: $(page)"
    cshell ps
}

after_reboot() {
    say "up since $(uptime -s)"
    local all; all=$(cshell ps -a)
    echo "$all"
    local n
    for n in web sleeper; do
        echo "$all" | grep -E " $n *\$" | grep -q ' Exited (' || fail "ps -a: $n is not shown as Exited"
    done
    [ "$(cshell ps -q | wc -l)" = 0 ] || fail "ps: containers still shown as running after the reboot"
    nothing_left "after the reboot and ps"
    no_failed_unit "after the reboot"
    cshell start web
    say "web answers again: $(page)"
    [ "$(cshell run --rm busybox echo run-works)" = run-works ] || fail "run after the reboot"
    cshell rm -f web sleeper
    nothing_left "after start, run, rm -f"
    no_failed_unit "at the end"
}

lesson_until() {  # $1: the text (a step's title) to wait for in the lesson's output
    cshell lesson reset lesson08 >/dev/null
    PYTHONUNBUFFERED=1 setsid nohup cshell --script lesson08.cs --fast --lang en </dev/null >"$KILLED_LOG" 2>&1 &
    local i
    for i in $(seq 600); do
        grep -qF "$1" "$KILLED_LOG" && { say "lesson08 reached: $1 (after ${i}x0.5 s)"; cshell ps; return 0; }
        kill -0 $! 2>/dev/null || { tail -n 20 "$KILLED_LOG"; fail "lesson08 ended before: $1"; }
        sleep 0.5
    done
    fail "lesson08 never reached: $1"
}

after_kill() {
    say "up since $(uptime -s); the killed lesson's last lines:"
    tail -n 3 "$KILLED_LOG" || true
    cshell ps -a
    [ "$(cshell ps -q | wc -l)" = 0 ] || fail "ps: containers still shown as running after the kill"
    cshell lesson reset lesson08
    [ -z "$(cshell ps -aq)" ] || { cshell ps -a; fail "lesson reset left containers"; }
    nothing_left "after lesson reset"
    cshell --script lesson08.cs --fast --lang en >/var/tmp/cshell-lesson08-again.log 2>&1 ||
        { tail -n 30 /var/tmp/cshell-lesson08-again.log; fail "lesson08 after the kill"; }
    tail -n 2 /var/tmp/cshell-lesson08-again.log
    nothing_left "after lesson08 passed again"
    no_failed_unit "after lesson08"
}

[ "$(id -u)" = 0 ] || { echo "guest.sh: run as root (sudo)" >&2; exit 1; }
case ${1:-} in
    leftovers) leftovers ;;
    before-reboot) before_reboot ;;
    after-reboot) after_reboot ;;
    lesson-until) lesson_until "${2:?a step title}" ;;
    after-kill) after_kill ;;
    *) echo "usage: guest.sh leftovers|before-reboot|after-reboot|lesson-until TITLE|after-kill" >&2; exit 2 ;;
esac
