#!/bin/bash
# tests/provision_fresh_debian.sh ROOTFS_TAR WORK CACHE REPO: scripts/provision.sh on a fresh Debian,
# then a lesson there. Run by tests/test_provision.py (as root).
#
#   1. unpack a fresh Debian rootfs (mmdebstrap minbase) into WORK/root, copy the checkout to
#      /root/cshell in it (no .venv, no .git: what a student's clone would have)
#   2. provision: `scripts/provision.sh` run in it (pivot_root, as a container would), in a private mount and pid namespace,
#      on the host's network (the Debian mirror and PyPI). /var/cache/apt/archives and pip's
#      cache are bind-mounted from CACHE, so a second run downloads nothing. Then provision.sh
#      once more: it must say "nothing to do" (test_provision.py checks it and its time).
#   3. the lesson: `cshell --script lesson05.cs --fast` there again, now also in a new network
#      namespace (its bridge, veths and iptables rules vanish with it) with a veth eth0 standing
#      for the machine's network card. /proc and /sys are mounted fresh for those namespaces; the
#      host's cgroup tree is bound in. The state root /var/lib/cshell is on WORK's filesystem,
#      not an overlay (overlayfs cannot use an overlay as its upper layer).
# Everything is mounted inside the private mount namespaces: nothing is left on the host.
set -euo pipefail
tar=$1 work=$2 cache=$3 repo=$4
root=$work/root
phase() { printf '\n=== %s  (%s s)\n' "$1" "$SECONDS"; }

phase "unpack $tar"
mkdir -p "$root" "$cache/apt" "$cache/pip"
tar -xf "$tar" -C "$root" --numeric-owner
mkdir -p "$root/root/cshell" "$root/root/.cache/pip" "$root/var/cache/apt/archives"
tar -C "$repo" -cf - --exclude=./.venv --exclude=./.git --exclude=__pycache__ --exclude=./.pytest_cache \
    --exclude=./.ruff_cache --exclude='*.egg-info' --exclude=./.vagrant --exclude=./bench/results . \
    | tar -C "$root/root/cshell" -xf -
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
# A machine behind a TLS-inspecting proxy trusts its CA locally: the fresh system must too (apt's
# ca-certificates picks these up when it installs; pip is pointed at the system bundle).
pip_cert=""
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    mkdir -p "$root/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
    pip_cert=/etc/ssl/certs/ca-certificates.crt
fi
echo "Debian $(cat "$root/etc/debian_version"), $(wc -l < "$root/VERSIONS" 2>/dev/null || echo '?') packages"

provision() {
unshare --mount --pid --fork --propagation private /bin/bash -euc '
    root=$1 cache=$2 pip_cert=$3
    mount --bind "$root" "$root"
    mount --rbind /dev "$root/dev"
    mount -t proc proc "$root/proc"
    mount --rbind /sys "$root/sys"
    mount --bind "$cache/apt" "$root/var/cache/apt/archives"
    mount --bind "$cache/pip" "$root/root/.cache/pip"
    # keep the .debs for the next run (Debian images may carry an apt hook that deletes them)
    rm -f "$root/etc/apt/apt.conf.d/docker-clean"
    echo "Binary::apt::APT::Keep-Downloaded-Packages \"true\";" > "$root/etc/apt/apt.conf.d/90keep"
    cd "$root" && mkdir -p .host && pivot_root . .host
    exec /usr/sbin/chroot . /bin/sh -c '"'"'umount -l /.host && rmdir /.host && exec "$@"'"'"' sh \
        /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 ${pip_cert:+PIP_CERT=$pip_cert} ${http_proxy:+http_proxy=$http_proxy} \
        ${https_proxy:+https_proxy=$https_proxy} /root/cshell/scripts/provision.sh
' provision "$root" "$cache" "$pip_cert"
}
phase "provision (scripts/provision.sh)"
provision
phase "provision again (must find nothing to do)"
provision

phase "lesson05 --fast in the provisioned root"
${LESSON_LOCK:+flock "$LESSON_LOCK"} unshare --mount --pid --net --ipc --uts --fork --propagation private /bin/bash -euc '
    root=$1
    ip link set lo up
    mount --bind "$root" "$root"                         # pivot_root needs a mount point
    ip link add eth0 type veth peer name eth1            # a network card for the lesson to compare with
    ip link set eth0 up
    mount --rbind /dev "$root/dev"
    mount -t proc proc "$root/proc"
    mount -t sysfs sysfs "$root/sys"                     # this network namespace'"'"'s /sys/class/net
    mount --rbind /sys/fs/cgroup "$root/sys/fs/cgroup"
    cd "$root" && mkdir -p .host && pivot_root . .host
    exec /usr/sbin/chroot . /bin/sh -c '"'"'umount -l /.host && rmdir /.host && exec "$@"'"'"' sh \
        /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 TERM=dumb COLUMNS=120 cshell --script lesson05.cs --fast --lang en
' lesson "$root"
phase "done"
