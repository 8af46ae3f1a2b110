#!/bin/bash
# scripts/box/build-box.sh: the local Vagrant box `cshell/bookworm-local` (libvirt provider),
# built here from Debian 12 packages, plus what the host needs to `vagrant up` it.
#
#   sudo scripts/box/build-box.sh build     # what `make box` runs (cached: see box_key)
#   sudo scripts/box/build-box.sh host      # only: host packages + libvirtd/virtlogd running
#   sudo scripts/box/build-box.sh clean     # what `make box-clean` runs
#
# The box: Debian 12 minbase + systemd, openssh-server, sudo, rsync, the `vagrant` user with
# Vagrant's insecure key and passwordless sudo, Debian's kernel, every package of the Makefile's
# APT_PKGS and a wheelhouse with the wheels `pip install -e '.[test]'` needs, so provisioning
# (scripts/provision.sh = `make deps venv`) needs no network. It boots by direct kernel boot:
# the kernel (the uncompressed vmlinux with its PVH entry, which skips the ~5 s xz decompressor
# under TCG) and a small initramfs travel inside the .box; the box's own Vagrantfile copies them
# to $BOOT_PARENT/cshell-bookworm-local-KEY/ (KEY: a hash of the two files), where libvirt's
# qemu can read them, and points libvirt there. So the .box file boots on any amd64 host with
# libvirt, not only on the one that built it.
#
# Env: BOXDIR (work dir, default /var/tmp/cshell-box), MIRROR, BOX_DISK_GB (virtual disk, 20).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
BOXDIR=${BOXDIR:-/var/tmp/cshell-box}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
BOX_NAME=cshell/bookworm-local
BOOT_PARENT=/var/lib/libvirt/boot                      # the box's Vagrantfile copies the kernel there
BOX_DISK_GB=${BOX_DISK_GB:-20}
WHEELHOUSE_IN_BOX=/var/cache/cshell/wheelhouse           # must match the Vagrantfile
HOST_PKGS="libvirt-daemon-system libvirt-clients vagrant vagrant-libvirt qemu-system-x86 qemu-utils
           dnsmasq-base mmdebstrap e2fsprogs xz-utils python3-venv rsync"
# What the box has on top of Debian's minbase; the Makefile's APT_PKGS are added to it.
BOX_PKGS="systemd systemd-sysv dbus libpam-systemd openssh-server sudo rsync make python3 curl
          ca-certificates less nano linux-image-amd64 initramfs-tools zstd"

log() { printf 'box: %s\n' "$*" >&2; }
now() { date +%s.%N; }
# timing lines in the style of bench/: "box-timing: NAME SECONDS"
timing() { awk -v n="$1" -v a="$(now)" -v b="$2" 'BEGIN{printf "box-timing: %-22s %6.1f s\n", n, a-b}' | tee -a "$BOXDIR/timings.log" >&2; }

apt_pkgs() {  # the Makefile's APT_PKGS, read from the one place it is written
    make -s -C "$REPO" --no-print-directory -f Makefile -f - print-apt-pkgs <<'EOF'
print-apt-pkgs:
	@echo $(APT_PKGS)
EOF
}

# --- the host ----------------------------------------------------------------------------------
host_packages() {
    local p missing=()
    for p in $HOST_PKGS; do
        [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=("$p")
    done
    [ ${#missing[@]} = 0 ] && return 0
    log "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# libvirtd and virtlogd: started by systemd where it runs; here (no systemd) we start them.
start_libvirt() {
    if [ -d /run/systemd/system ]; then
        systemctl start virtlogd.socket libvirtd.service 2>/dev/null || true
    fi
    kvm_device_permissions
    pgrep -x virtlogd >/dev/null || { log "starting virtlogd -d"; virtlogd -d; }
    pgrep -x libvirtd >/dev/null || { log "starting libvirtd -d"; libvirtd -d; }
    local i
    for i in $(seq 50); do virsh -c qemu:///system uri >/dev/null 2>&1 && break; sleep 0.2; done
    virsh -c qemu:///system uri >/dev/null
    # vagrant-libvirt keeps box images and VM disks in the storage pool `default`
    if ! virsh -q pool-info default >/dev/null 2>&1; then
        log "defining the libvirt storage pool default (/var/lib/libvirt/images)"
        virsh -q pool-define-as default dir --target /var/lib/libvirt/images >/dev/null
        virsh -q pool-autostart default >/dev/null
    fi
    case $(virsh -q pool-info default) in *running*) ;; *) virsh -q pool-start default >/dev/null ;; esac
}

# Without udev, /dev/kvm stays root-only (0600) instead of Debian's root:kvm 0660. libvirt then
# finds "KVM was enabled when probing, but it is not available now" for qemu's user, throws
# its QEMU capability cache away and probes QEMU again (~4 s) at every API call that needs
# it: vagrant up waited ~110 s on that. Debian's own udev rule fixes it; only that is done.
kvm_device_permissions() {
    [ -c /dev/kvm ] && [ "$(stat -c %G:%a /dev/kvm)" = root:600 ] && getent group kvm >/dev/null || return 0
    log "/dev/kvm: root:kvm 0660, as Debian's udev rule makes it (no udev here)"
    chgrp kvm /dev/kvm && chmod 660 /dev/kvm
}

# --- the cache ---------------------------------------------------------------------------------
# The box is rebuilt when anything that goes into it changes: this script, the package lists
# (the Makefile's APT_PKGS, BOX_PKGS), pyproject.toml (the wheels) and the provisioning script.
box_key() {
    { cat "$0" "$REPO/pyproject.toml" "$REPO/scripts/provision.sh"; apt_pkgs; echo "$BOX_PKGS"; } |
        sha256sum | cut -c1-16
}

box_is_current() {
    [ -f "$BOXDIR/box.key" ] && [ "$(cat "$BOXDIR/box.key")" = "$1" ] &&
        [ -f "$BOXDIR/cshell-bookworm-local.box" ] &&
        [[ $(vagrant box list 2>/dev/null) == *"$BOX_NAME (libvirt"* ]]
}

# --- the box's contents ------------------------------------------------------------------------
# Wheels for `pip install -e '.[test]'` (and setuptools for the editable build), made with the
# same Debian python3 the box has; cshell's own wheel is dropped (provisioning builds it).
make_wheelhouse() {
    local t0; t0=$(now)
    rm -rf "$BOXDIR/wheelhouse" "$BOXDIR/pipvenv"
    /usr/bin/python3 -m venv "$BOXDIR/pipvenv"
    "$BOXDIR/pipvenv/bin/pip" -q --disable-pip-version-check wheel -w "$BOXDIR/wheelhouse" \
        "$REPO[test]" "setuptools>=61" wheel
    rm -f "$BOXDIR"/wheelhouse/cshell-*.whl
    rm -rf "$BOXDIR/pipvenv"
    log "wheelhouse: $(ls "$BOXDIR/wheelhouse" | wc -l) wheels"
    timing wheelhouse "$t0"
}

make_rootfs() {
    local t0; t0=$(now)
    local pkgs; pkgs="$(echo $BOX_PKGS $(apt_pkgs) | tr ' ' ',')"
    rm -rf "$BOXDIR/rootfs"
    log "mmdebstrap bookworm minbase + $pkgs"
    # the initramfs only needs to find a virtio disk with ext4 on it: a small one boots faster
    mmdebstrap --quiet --variant=minbase --include="$pkgs" \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/info/*' \
        --setup-hook='mkdir -p "$1/etc/initramfs-tools/conf.d"' \
        --setup-hook='printf "MODULES=list\nCOMPRESS=zstd\n" > "$1/etc/initramfs-tools/conf.d/cshell-box"' \
        --customize-hook='printf "virtio_pci\nvirtio_blk\nvirtio_net\next4\n" >> "$1/etc/initramfs-tools/modules"' \
        --customize-hook='chroot "$1" update-initramfs -u -k all' \
        bookworm "$BOXDIR/rootfs" "$MIRROR"
    timing mmdebstrap "$t0"
}

configure_rootfs() {
    local r=$BOXDIR/rootfs
    local key=/usr/share/rubygems-integration/all/gems/vagrant-$(dpkg-query -W -f='${Version}' vagrant | cut -d+ -f1)/keys/vagrant.pub
    [ -f "$key" ] || key=$(ls /usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub /usr/share/vagrant/keys/vagrant.pub 2>/dev/null | head -1)
    [ -f "$key" ] || { log "Vagrant's insecure public key not found (is vagrant installed?)"; exit 1; }
    # the vagrant user: Vagrant's insecure key (Vagrant swaps in a fresh one at the first up),
    # password "vagrant", sudo without password
    chroot "$r" useradd -m -s /bin/bash -G sudo vagrant
    echo vagrant:vagrant | chroot "$r" chpasswd
    install -d -m 700 -o 1000 -g 1000 "$r/home/vagrant/.ssh"
    install -m 600 -o 1000 -g 1000 "$key" "$r/home/vagrant/.ssh/authorized_keys"
    echo 'vagrant ALL=(ALL) NOPASSWD: ALL' > "$r/etc/sudoers.d/vagrant"; chmod 440 "$r/etc/sudoers.d/vagrant"
    echo 'root:vagrant' | chroot "$r" chpasswd
    # the hostname the Vagrantfile asks for is already set: Vagrant then leaves networking alone
    echo cshell > "$r/etc/hostname"
    printf '127.0.0.1\tlocalhost\n127.0.1.1\tcshell\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$r/etc/hosts"
    echo '/dev/vda / ext4 errors=remount-ro 0 1' > "$r/etc/fstab"
    # DHCP on the virtio NIC (eth0: the kernel command line has net.ifnames=0)
    printf '[Match]\nName=eth* en*\n\n[Network]\nDHCP=ipv4\n' > "$r/etc/systemd/network/50-dhcp.network"
    chroot "$r" systemctl enable systemd-networkd.service >/dev/null 2>&1
    chroot "$r" systemctl mask systemd-networkd-wait-online.service >/dev/null 2>&1
    # every VM gets its own ssh host keys and machine id, made at its first boot
    rm -f "$r"/etc/ssh/ssh_host_*
    mkdir -p "$r/etc/systemd/system/ssh.service.d"
    # (before Debian's own `sshd -t` check, which fails without one). Only ed25519: under TCG
    # `ssh-keygen -A` (rsa, ecdsa, ed25519) held ssh.service back ~16 s at the first boot.
    local k=/etc/ssh/ssh_host_ed25519_key
    printf '%s\n' '[Service]' 'ExecStartPre=' \
        "ExecStartPre=/bin/sh -c 'test -s $k || ssh-keygen -q -t ed25519 -N \"\" -f $k'" \
        'ExecStartPre=/usr/sbin/sshd -t' > "$r/etc/systemd/system/ssh.service.d/host-keys.conf"
    printf 'HostKey %s\n' "$k" > "$r/etc/ssh/sshd_config.d/host-key.conf"
    # a first-boot check of ext4 snapshots that this box never has (~7 s under TCG)
    chroot "$r" systemctl mask e2scrub_reap.service >/dev/null 2>&1
    printf 'UseDNS no\n' > "$r/etc/ssh/sshd_config.d/vagrant.conf"
    : > "$r/etc/machine-id"; rm -f "$r/var/lib/dbus/machine-id"
    # the wheels, where the Vagrantfile's PIP_FIND_LINKS points (PIP_NO_INDEX=1)
    mkdir -p "$r$WHEELHOUSE_IN_BOX"; cp "$BOXDIR"/wheelhouse/*.whl "$r$WHEELHOUSE_IN_BOX/"
    # a smaller image: apt's package cache and lists (apt-get update fills them again)
    rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/lib/apt/lists/*_Packages "$r"/var/log/*.log
}

# The kernel and initramfs for direct kernel boot: they go into the .box (make_box_file).
boot_files() {
    local r=$BOXDIR/rootfs kimg off
    kimg=$(ls "$r"/boot/vmlinuz-* | sort -V | tail -1)
    off=$(python3 -c 'import sys; print(open(sys.argv[1],"rb").read().find(b"\xfd7zXZ\x00"))' "$kimg")
    tail -c +$((off + 1)) "$kimg" | xz -dc > "$BOXDIR/vmlinux" 2>/dev/null || true
    [ "$(head -c 4 "$BOXDIR/vmlinux" | od -An -c | tr -d ' ')" = '177ELF' ] || { log "vmlinux extraction failed"; exit 1; }
    install -m 644 "$(ls "$r"/boot/initrd.img-* | sort -V | tail -1)" "$BOXDIR/initrd.img"
    log "boot files: $(basename "$kimg") as vmlinux, initrd $(du -h "$BOXDIR/initrd.img" | cut -f1)"
}

# ext4 made straight from the directory (mkfs.ext4 -d: no loop device, no mount), then qcow2
make_image() {
    local t0; t0=$(now)
    rm -f "$BOXDIR/box.raw" "$BOXDIR/box.img"
    truncate -s "${BOX_DISK_GB}G" "$BOXDIR/box.raw"
    mkfs.ext4 -q -L cshell-root -d "$BOXDIR/rootfs" "$BOXDIR/box.raw"
    qemu-img convert -O qcow2 "$BOXDIR/box.raw" "$BOXDIR/box.img"
    rm -f "$BOXDIR/box.raw"
    log "box.img: $(du -h "$BOXDIR/box.img" | cut -f1) on disk, ${BOX_DISK_GB} GB virtual"
    timing disk-image "$t0"
}

make_box_file() {
    local t0 d=$BOXDIR/boxfiles key; t0=$(now)
    rm -rf "$d"; mkdir -p "$d"
    mv "$BOXDIR/box.img" "$BOXDIR/vmlinux" "$BOXDIR/initrd.img" "$d/"
    # the boot directory's name: boxes with the same kernel and initramfs share it
    key=$(cat "$d/vmlinux" "$d/initrd.img" | sha256sum | cut -c1-12)
    # "architecture": Vagrant 2.4 reads it; the repo's Vagrantfile checks it on older ones
    printf '{"provider":"libvirt","format":"qcow2","virtual_size":%s,"architecture":"%s"}\n' \
        "$BOX_DISK_GB" "$(dpkg --print-architecture)" > "$d/metadata.json"
    box_vagrantfile "$key" > "$d/Vagrantfile"
    # a plain tar (no gzip): the qcow2 is already sparse, and vagrant box add unpacks it faster
    tar -C "$d" -cf "$BOXDIR/cshell-bookworm-local.box.new" metadata.json Vagrantfile vmlinux initrd.img box.img
    mv "$BOXDIR/cshell-bookworm-local.box.new" "$BOXDIR/cshell-bookworm-local.box"
    rm -rf "$d"
    log "cshell-bookworm-local.box: $(du -h "$BOXDIR/cshell-bookworm-local.box" | cut -f1), boot key $key"
    timing box-file "$t0"
}

# The box's own Vagrantfile (Vagrant loads it under the project's). libvirt's qemu runs as
# libvirt-qemu and cannot read the box's directory (under ~/.vagrant.d, often in a 0700 home):
# the kernel and initramfs are copied once to $BOOT_PARENT/cshell-bookworm-local-KEY/.
box_vagrantfile() {
    cat <<EOF
# cshell/bookworm-local, built by cshell's scripts/box/build-box.sh. It boots by direct kernel
# boot (no bootloader) from the vmlinux and initrd.img beside this file, copied where libvirt's
# qemu may read them: $BOOT_PARENT/cshell-bookworm-local-$1/ (once per host, as root).
require "fileutils"

boot = "$BOOT_PARENT/cshell-bookworm-local-$1"
here = File.dirname(File.expand_path(__FILE__))
files = %w[vmlinux initrd.img]
begin
  # copy what is missing or differs in size (a copy cut short): a temporary name, then rename
  unless files.all? { |f| File.size?("#{boot}/#{f}") == File.size("#{here}/#{f}") }
    FileUtils.mkdir_p(boot, mode: 0o755)
    files.each do |f|
      FileUtils.cp("#{here}/#{f}", "#{boot}/.#{f}.#{Process.pid}")
      File.chmod(0o644, "#{boot}/.#{f}.#{Process.pid}")
      File.rename("#{boot}/.#{f}.#{Process.pid}", "#{boot}/#{f}")
    end
  end
rescue SystemCallError => e
  # only up and reload boot the VM; status, ssh or destroy go on without the copy
  if (ARGV & %w[up reload]).any?
    abort "cshell/bookworm-local: cannot copy its kernel to #{boot} (#{e.message}); " \\
          "run vagrant as root (sudo vagrant up): libvirt's qemu reads the kernel from there"
  end
end

Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |libvirt|
    libvirt.kernel = "#{boot}/vmlinux"
    libvirt.initrd = "#{boot}/initrd.img"
    libvirt.cmd_line = "root=/dev/vda rw console=ttyS0 net.ifnames=0"
  end
end
EOF
}

add_box() {
    local t0; t0=$(now)
    remove_box_volumes
    vagrant box add --force --name "$BOX_NAME" --provider libvirt "$BOXDIR/cshell-bookworm-local.box" >/dev/null
    timing vagrant-box-add "$t0"
}

# vagrant-libvirt uploads a box's image into the pool once, and keeps it after `vagrant destroy`
# (like a box cache); a new box of the same name needs the old volume gone.
remove_box_volumes() {
    local v
    for v in $(virsh -q vol-list default 2>/dev/null | awk '/^ *cshell-VAGRANTSLASH-bookworm-local_vagrant_box_image/{print $1}'); do
        log "virsh vol-delete --pool default $v"; virsh -q vol-delete --pool default "$v" >/dev/null
    done
}

# --- commands ----------------------------------------------------------------------------------
# The box is Debian's amd64 (its kernel, qemu-system-x86's guest): another host gets a refusal
# before anything is installed or built.
amd64_only() {
    local arch; arch=$(dpkg --print-architecture 2>/dev/null || uname -m)
    [ "$arch" = amd64 ] && return 0
    printf '%s\n' "error: make box builds an amd64 box (Debian's amd64 kernel under qemu-system-x86); this host is $arch" \
        "hint: on $arch use the students' path (plain vagrant up with a box made for $arch; see README, \"The students' VM\")" >&2
    exit 1
}

build() {
    amd64_only
    [ "$(id -u)" = 0 ] || { log "run as root (sudo make box)"; exit 1; }
    mkdir -p "$BOXDIR"; : > "$BOXDIR/timings.log"
    local t0; t0=$(now)
    host_packages; start_libvirt
    timing host-ready "$t0"
    local key; key=$(box_key)
    if box_is_current "$key"; then
        log "$BOX_NAME is up to date (key $key; make box-clean forces a rebuild)"
        timing box-total-cached "$t0"; return 0
    fi
    make_wheelhouse
    make_rootfs
    configure_rootfs
    boot_files
    make_image
    rm -rf "$BOXDIR/rootfs"
    make_box_file
    add_box
    echo "$key" > "$BOXDIR/box.key"
    timing box-total-cold "$t0"
    log "done: vagrant box $BOX_NAME; try  CSHELL_BOX=$BOX_NAME vagrant up --provider=libvirt"
}

clean() {
    vagrant box remove --force --provider libvirt "$BOX_NAME" 2>/dev/null || true
    command -v virsh >/dev/null && remove_box_volumes || true
    rm -rf "$BOXDIR" "$BOOT_PARENT"/cshell-bookworm-local-* "$BOOT_PARENT/cshell-bookworm-local"
}

case ${1:-} in
    build) build ;;
    host) host_packages; start_libvirt ;;
    clean) clean ;;
    *) sed -n '2,19p' "$0"; exit 2 ;;
esac
