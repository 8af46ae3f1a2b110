#!/bin/sh
# scripts/provision.sh [REPO [USER...]]: make a Debian machine ready for cshell (run as root).
#
# The one setup every machine gets: the Vagrant VM (Vagrantfile), a student's own Debian box,
# and CI. It installs what `make` needs, then runs the Makefile's own `deps` (the Debian packages
# of APT_PKGS) and `venv` (.venv from Debian's python3, cshell installed in it), so the package
# list lives in one place: the Makefile. Then it puts `cshell` on root's PATH and says which
# cgroup version the machine runs. Safe to run again: what is there already is kept.
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

# What the Makefile itself needs: make, and Debian's python3 for the venv.
need=""
command -v make >/dev/null 2>&1 || need="$need make"
[ -x /usr/bin/python3 ] || need="$need python3"
if [ -n "$need" ]; then
    echo "provision: apt-get install$need"
    apt-get update -qq
    # shellcheck disable=SC2086 # a list of package names
    apt-get install -y -qq --no-install-recommends $need
fi

# The same two targets `make test` and `make demo` start with.
make -C "$repo" deps venv

ln -sf "$repo/.venv/bin/cshell" /usr/local/bin/cshell

# The cshell group: its members' `cshell` re-runs itself as root through sudo (see above).
if command -v sudo >/dev/null 2>&1 && [ -d /etc/sudoers.d ]; then
    getent group cshell >/dev/null || groupadd --system cshell
    rule="%cshell ALL=(root) NOPASSWD:SETENV: $repo/.venv/bin/cshell"
    printf '# written by %s: members of cshell run cshell as root\n%s\n' "$0" "$rule" >/etc/sudoers.d/cshell.tmp
    chmod 0440 /etc/sudoers.d/cshell.tmp
    if visudo -cqf /etc/sudoers.d/cshell.tmp; then
        mv /etc/sudoers.d/cshell.tmp /etc/sudoers.d/cshell
    else
        rm -f /etc/sudoers.d/cshell.tmp
        echo "provision: the sudoers rule for the cshell group did not validate; members need sudo cshell" >&2
    fi
    for u in $users; do
        usermod -aG cshell "$u" && echo "provision: $u may now type cshell (group cshell, through sudo)"
    done
fi
if [ "$(stat -fc %T /sys/fs/cgroup 2>/dev/null)" = cgroup2fs ]; then
    cgroups="cgroup v2 (one tree at /sys/fs/cgroup)"
else
    cgroups="cgroup v1 (a tree per controller under /sys/fs/cgroup)"
fi
echo "provision: cshell is $(command -v cshell) -> $repo; this machine runs $cgroups"
echo "provision: try  sudo cshell --script lesson05.cs   (lesson ls lists the lessons)"
