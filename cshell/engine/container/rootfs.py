"""The container's root filesystem, set up inside its own mount namespace.

Read top to bottom, ``prepare_rootfs`` is the order the kernel sees (after
runc's libcontainer/rootfs_linux.go): make propagation private, mount the
overlay, mount /proc, /dev and /sys, the volumes, bind the real /etc files over
the init layer's placeholders, then pivot_root into it and detach the old root.

Every mount lives only in the container's mount namespace, so the host's
mount table never shows it and the kernel removes it when the container ends.

Containment (skipped with --privileged, as Docker does): the root and /dev are
``nodev``, so a device node the container makes (it holds CAP_MKNOD) or finds in
an image layer cannot be opened; only the few nodes made here, each bind-mounted
on itself, work. After pivot_root, Docker's masked paths are covered (a file by
/dev/null, a directory by an empty read-only tmpfs) and its read-only paths
(/proc/sys, /proc/sysrq-trigger, …) are bind-remounted read-only.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from cshell.engine import trace
from cshell.engine.kernel import syscalls as sc
from cshell.record import factory, record

# Files the runtime owns: placeholders in the init layer, real files bind-mounted
# from the container's state directory (so `commit` never carries them).
ETC_FILES = ("resolv.conf", "hostname", "hosts")  # the order runc bind-mounts them in
INIT_DIRS = ("dev", "proc", "sys", "etc")
# (name, major, minor) — Docker's default device allowlist.
DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
           ("urandom", 1, 9), ("tty", 5, 0))
DEV_LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
             ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx"))  # no /dev/core -> /proc/kcore: docker 20.10 has none
# Docker's lists (daemon/pkg/oci/defaults.go): what the kernel would tell or let a
# container do about the host through /proc and /sys.
MASKED_PATHS = ("/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/sched_debug", "/proc/scsi", "/proc/timer_list",
                "/proc/timer_stats", "/sys/devices/virtual/powercap", "/sys/firmware")
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")


@record
class RootfsPlan:
    lowerdirs: list[str]  # top first, as overlayfs wants them: init layer, then image layers
    upperdir: str
    workdir: str
    merged: str
    state_dir: str
    # config.json's "mounts" (volumes, binds, tmpfs), parents first; see kernel/mounts.py
    mounts: list[dict] = factory(list)
    privileged: bool = False  # --privileged: no nodev, no masked or read-only paths, /sys writable
    read_only: bool = False  # --read-only: the root mount itself read-only (binds, /dev, volumes keep theirs)

    @property
    def overlay_options(self) -> str:
        return f"lowerdir={':'.join(self.lowerdirs)},upperdir={self.upperdir},workdir={self.workdir}"


def make_init_layer(init_dir: Path) -> None:
    """Placeholders for what the runtime mounts; Docker's <id>-init layer."""
    for d in INIT_DIRS:
        (init_dir / d).mkdir(parents=True, exist_ok=True)
    for name in ETC_FILES:
        (init_dir / "etc" / name).touch()
    (init_dir / "etc" / "mtab").symlink_to("/proc/mounts")  # docker's init layer has it too (mount, df read it)


def _mount(source: str, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    opts = sc.mount_flag_names(flags) + (f", {data}" if data else "")
    trace.step(f"mount({source!r}, {target!r}, {fstype or 'none'!r}, {opts})")
    sc.mount(source, target, fstype, flags, data)


def make_mounts_private() -> None:
    # Without this, mounts made in the container propagate to the host (and back).
    _mount("none", "/", None, sc.MS_REC | sc.MS_PRIVATE)


def mount_overlay(plan: RootfsPlan) -> None:
    # nodev: a device node in an image layer (or one made with CAP_MKNOD) is never usable
    _mount("overlay", plan.merged, "overlay", 0 if plan.privileged else sc.MS_NODEV, plan.overlay_options)


def bind_etc_files(plan: RootfsPlan) -> None:
    for name in ETC_FILES:
        _mount(f"{plan.state_dir}/{name}", f"{plan.merged}/etc/{name}", None, sc.MS_BIND)


def mount_proc(root: str) -> None:
    _mount("proc", f"{root}/proc", "proc", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)


def mount_sys(root: str, writable: bool = False) -> None:
    ro = 0 if writable else sc.MS_RDONLY
    _mount("sysfs", f"{root}/sys", "sysfs", ro | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)


def mount_dev(root: str, nodev: bool = True) -> None:
    dev = f"{root}/dev"
    _mount("tmpfs", dev, "tmpfs", sc.MS_NOSUID | sc.MS_STRICTATIME, "mode=755,size=65536k")
    for name, major, minor in DEVICES:
        os.mknod(f"{dev}/{name}", 0o666 | 0o020000, os.makedev(major, minor))
        os.chmod(f"{dev}/{name}", 0o666)  # mknod honours the umask
    trace.step(f"mknod {dev}/{{{','.join(d[0] for d in DEVICES)}}}")
    if nodev:  # each node on a bind mount of its own; the tmpfs under them becomes nodev
        for name, _, _ in DEVICES:
            sc.mount(f"{dev}/{name}", f"{dev}/{name}", None, sc.MS_BIND)
        trace.step(f"mount each of those on itself (MS_BIND); then {dev}: MS_REMOUNT|MS_BIND|MS_NODEV"
                   "  # a node made later (mknod with CAP_MKNOD) cannot be opened")
        sc.mount("none", dev, None, sc.MS_REMOUNT | sc.MS_BIND | sc.MS_NOSUID | sc.MS_NODEV)
    for name, target in DEV_LINKS:
        os.symlink(target, f"{dev}/{name}")
    os.mkdir(f"{dev}/pts")
    _mount("devpts", f"{dev}/pts", "devpts", sc.MS_NOSUID | sc.MS_NOEXEC,
           "newinstance,ptmxmode=0666,mode=0620,gid=5")


def mount_ipc(root: str) -> None:
    """/dev/mqueue (POSIX message queues of our IPC namespace) and /dev/shm, after /sys as runc."""
    dev = f"{root}/dev"
    os.mkdir(f"{dev}/mqueue")
    try:
        _mount("mqueue", f"{dev}/mqueue", "mqueue", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)
    except OSError as e:
        if e.errno != errno.ENODEV:  # a kernel without CONFIG_POSIX_MQUEUE: only the directory
            raise
    os.mkdir(f"{dev}/shm")
    _mount("shm", f"{dev}/shm", "tmpfs", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC, "mode=1777,size=65536k")


def remount_root_readonly(nodev: bool = True) -> None:
    """--read-only: runc's last rootfs step, MS_REMOUNT|MS_BIND|MS_RDONLY on / itself."""
    _mount("none", "/", None, sc.MS_REMOUNT | sc.MS_BIND | sc.MS_RDONLY | (sc.MS_NODEV if nodev else 0))


def bind_console(root: str, pty_path: str) -> None:
    open(f"{root}/dev/console", "a").close()
    _mount(pty_path, f"{root}/dev/console", None, sc.MS_BIND)


def pivot_into(root: str) -> None:
    """pivot_root, never chroot: the old root is detached and unreachable."""
    os.chdir(root)
    trace.step(f"pivot_root({root!r} as '.', '.')")
    sc.pivot_root(".", ".")
    trace.step("umount2('.', MNT_DETACH)  # the host's root, now stacked under ours")
    sc.umount2(".", sc.MNT_DETACH)
    os.chdir("/")


def mask_paths() -> None:
    """runc's maskPaths, after pivot_root: the paths that exist are covered."""
    import stat

    null = os.stat("/dev/null")  # ours: made on our own fresh tmpfs a moment ago
    if not stat.S_ISCHR(null.st_mode) or null.st_rdev != os.makedev(1, 3):
        raise OSError(errno.EINVAL, "mask paths: /dev/null is not the null device")
    masked: list[str] = []
    for path in (*MASKED_PATHS, *_thermal_throttle_dirs()):
        try:
            st = os.lstat(path)
        except OSError:
            continue  # this kernel has no such file: nothing to hide
        if stat.S_ISDIR(st.st_mode):
            sc.mount("tmpfs", path, "tmpfs", sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC,
                     "size=0,nr_inodes=1")
        else:
            sc.mount("/dev/null", path, None, sc.MS_BIND)
        masked.append(path)
    trace.step(f"mask {len(masked)} paths: {', '.join(masked)}  # files: bind of /dev/null; "
               "directories: an empty read-only tmpfs")


def _thermal_throttle_dirs() -> list[str]:
    """Docker masks /sys/devices/system/cpu/cpuN/thermal_throttle too (a host-wide interface)."""
    base = "/sys/devices/system/cpu"
    try:
        names = os.listdir(base)
    except OSError:
        return []
    return [f"{base}/{n}/thermal_throttle" for n in sorted(names)
            if n.startswith("cpu") and n[3:].isdigit()]


def readonly_paths() -> None:
    """runc's readonlyPath: bind each onto itself, then remount that bind read-only."""
    done = []
    for path in READONLY_PATHS:
        try:
            sc.mount(path, path, None, sc.MS_BIND | sc.MS_REC)
        except FileNotFoundError:
            continue
        sc.mount("none", path, None,
                 sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)
        done.append(path)
    trace.step(f"read-only: {', '.join(done)}  # mount(P, P, MS_BIND); mount(P, MS_REMOUNT|MS_BIND|MS_RDONLY)")


def prepare_rootfs(plan: RootfsPlan, pty_path: str | None = None) -> None:
    # runc's order, so /proc/self/mountinfo reads as under docker: the root, /proc, /dev,
    # /sys, mqueue and shm, the volumes, then resolv.conf, hostname and hosts, read-only
    # paths, masked paths. A mount of the user's on /etc or below goes over the files
    # instead (they are bound first): its files win, and no target is made inside it.
    etc_first = any(m["destination"].rstrip("/") == "/etc" or m["destination"].startswith("/etc/")
                    for m in plan.mounts)
    make_mounts_private()
    mount_overlay(plan)
    if etc_first:
        bind_etc_files(plan)
    mount_proc(plan.merged)
    mount_dev(plan.merged, nodev=not plan.privileged)
    mount_sys(plan.merged, writable=plan.privileged)
    mount_ipc(plan.merged)
    if pty_path:
        bind_console(plan.merged, pty_path)
    if plan.mounts:  # volumes: resolved inside the root, mounted before pivot_root
        from cshell.engine.kernel.mounts import mount_all

        mounts = plan.mounts if plan.privileged else [{**m, "nodev": True} for m in plan.mounts]
        mount_all(plan.merged, mounts, plan.state_dir)
    if not etc_first:
        bind_etc_files(plan)
    pivot_into(plan.merged)
    if not plan.privileged:
        readonly_paths()
        mask_paths()
