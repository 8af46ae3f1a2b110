#!/bin/sh
# scripts/provision.sh [REPO]: make a Debian machine ready for cshell (run as root).
#
# The one setup every machine gets: the Vagrant VM (Vagrantfile), a student's own Debian box,
# and CI. It installs what `make` needs, then runs the Makefile's own `deps` (the Debian packages
# of APT_PKGS) and `venv` (.venv from Debian's python3, cshell installed in it), so the package
# list lives in one place: the Makefile. Then it puts `cshell` on root's PATH and says which
# cgroup version the machine runs. Safe to run again: what is there already is kept.
#
#   sudo scripts/provision.sh                  # this checkout
#   sudo scripts/provision.sh /vagrant         # what the Vagrantfile runs
set -eu

repo=$(cd "${1:-$(dirname "$0")/..}" && pwd)
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
if [ "$(stat -fc %T /sys/fs/cgroup 2>/dev/null)" = cgroup2fs ]; then
    cgroups="cgroup v2 (one tree at /sys/fs/cgroup)"
else
    cgroups="cgroup v1 (a tree per controller under /sys/fs/cgroup)"
fi
echo "provision: cshell is $(command -v cshell) -> $repo; this machine runs $cgroups"
echo "provision: try  sudo cshell --script lesson05.cs   (lesson ls lists the lessons)"
