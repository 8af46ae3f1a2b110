#!/bin/sh
# scripts/provision.sh [REPO [USER...]]: make a Debian machine ready for cshell (run as root).
#
# The one setup every machine gets: the Vagrant VM (Vagrantfile), a student's own Debian box,
# and CI. It installs what `make` needs, then runs the Makefile's own `deps` (the Debian packages
# of APT_PKGS) and `venv` (.venv from Debian's python3, cshell installed in it), so the package
# list lives in one place: the Makefile. Then it puts `cshell` on root's PATH and says which
# cgroup version the machine runs. Safe to run again: what is there already is kept, and a run
# that finds everything in place changes nothing and says "nothing to do".
#
#   sudo scripts/provision.sh                  # this checkout
#   sudo scripts/provision.sh /vagrant         # what the Vagrantfile runs
#   sudo scripts/provision.sh . alice bob      # and let alice and bob type plain `cshell`
#
# cshell needs root (namespaces, mounts, cgroups), as Docker's daemon does. Docker lets users
# reach its daemon through the docker group; cshell's way is sudo: the cshell group may run
# this checkout's cshell (and nothing else) as root without a password, and cshell re-runs
# itself through sudo when it starts as a member. Like the docker group, it is root-equivalent.
set -eu

repo=$(cd "${1:-$(dirname "$0")/..}" && pwd)
[ $# -gt 0 ] && shift
users="$*"
if [ "$(id -u)" != 0 ]; then
    echo "provision.sh: cshell makes namespaces, mounts and cgroups: run it as root (sudo $0)" >&2
    exit 1
fi
if [ ! -f "$repo/Makefile" ] || [ ! -d "$repo/cshell" ]; then
    echo "provision.sh: $repo is not a cshell checkout (no Makefile, no cshell/)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
started=$(date +%s)
changed=""                                   # what this run changed, for the last line
did() { changed="$changed${changed:+, }$1"; }
log=$(mktemp); trap 'rm -f "$log" "$log.rc"' EXIT
# "$@" with its output shown as it comes and kept in $log; exits as "$@" failed
logged() {
    : > "$log"; rm -f "$log.rc"
    { "$@" 2>&1 || echo $? > "$log.rc"; } | tee "$log"
    [ ! -s "$log.rc" ] || exit "$(cat "$log.rc")"
}

# What the Makefile itself needs: make, and Debian's python3 for the venv.
need=""
command -v make >/dev/null 2>&1 || need="$need make"
[ -x /usr/bin/python3 ] || need="$need python3"
if [ -n "$need" ]; then
    echo "provision: apt-get install$need"
    apt-get update -qq
    # shellcheck disable=SC2086 # a list of package names
    apt-get install -y -qq --no-install-recommends $need
    did "make and python3 installed"
fi

# The same two targets `make test` and `make demo` start with. deps prints a line only when it
# installs something; venv's stamp tells beforehand whether pip will run.
logged make -s -C "$repo" --no-print-directory deps
[ -s "$log" ] && did "Debian packages installed"
make -C "$repo" -q .venv/.stamp 2>/dev/null || did "$repo/.venv made"
make -C "$repo" --no-print-directory venv   # (not -s: its pip line says what the wait is)

if [ "$(readlink /usr/local/bin/cshell)" != "$repo/.venv/bin/cshell" ]; then
    ln -sf "$repo/.venv/bin/cshell" /usr/local/bin/cshell
    did "/usr/local/bin/cshell linked"
fi

# The cshell group: its members' `cshell` re-runs itself as root through sudo (see above).
if command -v sudo >/dev/null 2>&1 && [ -d /etc/sudoers.d ]; then
    getent group cshell >/dev/null || { groupadd --system cshell; did "group cshell added"; }
    rule="%cshell ALL=(root) NOPASSWD:SETENV: $repo/.venv/bin/cshell"
    sudoers() { printf '# written by cshell'"'"'s scripts/provision.sh: members of cshell run cshell as root\n%s\n' "$rule"; }
    if sudoers | cmp -s - /etc/sudoers.d/cshell; then
        :                                      # the same rule: nothing is written
    elif sudoers >/etc/sudoers.d/cshell.tmp && chmod 0440 /etc/sudoers.d/cshell.tmp &&
         visudo -cqf /etc/sudoers.d/cshell.tmp; then
        mv /etc/sudoers.d/cshell.tmp /etc/sudoers.d/cshell
        did "/etc/sudoers.d/cshell written"
    else
        rm -f /etc/sudoers.d/cshell.tmp
        echo "provision: the sudoers rule for the cshell group did not validate; members need sudo cshell" >&2
    fi
    for u in $users; do
        id -nG "$u" 2>/dev/null | tr ' ' '\n' | grep -qx cshell && continue
        usermod -aG cshell "$u" && echo "provision: $u may now type cshell (group cshell, through sudo)"
        did "$u added to group cshell"
    done
fi
if [ "$(stat -fc %T /sys/fs/cgroup 2>/dev/null)" = cgroup2fs ]; then
    cgroups="cgroup v2 (one tree at /sys/fs/cgroup)"
else
    cgroups="cgroup v1 (a tree per controller under /sys/fs/cgroup)"
fi
if [ -z "$changed" ]; then
    echo "provision: nothing to do: cshell is $(command -v cshell) -> $repo, $cgroups (checked in $(($(date +%s) - started)) s)"
    exit 0
fi
echo "provision: $changed"
echo "provision: cshell is $(command -v cshell) -> $repo; this machine runs $cgroups"
echo "provision: try  sudo cshell --script lesson05.cs   (lesson ls lists the lessons)"
