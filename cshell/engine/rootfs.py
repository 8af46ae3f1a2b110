"""The container's root filesystem, set up inside its own mount namespace.

Read top to bottom, ``prepare_rootfs`` is the order the kernel sees (after
runc's libcontainer/rootfs_linux.go): make propagation private, mount the
overlay, bind the real /etc files over the init layer's placeholders, mount
/proc, /sys and /dev, then pivot_root into it and detach the old root.

Every mount lives only in the container's mount namespace, so the host's
mount table never shows it and the kernel removes it when the container ends.
"""

from __future__ import annotations

import os
from pathlib import Path

from cshell.engine import syscalls as sc
from cshell.engine import trace
from cshell.record import factory, record

# Files the runtime owns: placeholders in the init layer, real files bind-mounted
# from the container's state directory (so `commit` never carries them).
ETC_FILES = ("hosts", "hostname", "resolv.conf")
INIT_DIRS = ("dev", "proc", "sys", "etc")
# (name, major, minor) — Docker's default device allowlist.
DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
           ("urandom", 1, 9), ("tty", 5, 0))
DEV_LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
             ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx"), ("core", "/proc/kcore"))


@record
class RootfsPlan:
    lowerdirs: list[str]  # top first, as overlayfs wants them: init layer, then image layers
    upperdir: str
    workdir: str
    merged: str
    state_dir: str
    # config.json's "mounts" (volumes, binds, tmpfs), parents first; see mounts.py
    mounts: list[dict] = factory(list)

    @property
    def overlay_options(self) -> str:
        return f"lowerdir={':'.join(self.lowerdirs)},upperdir={self.upperdir},workdir={self.workdir}"


def make_init_layer(init_dir: Path) -> None:
    """Placeholders for what the runtime mounts; Docker's <id>-init layer."""
    for d in INIT_DIRS:
        (init_dir / d).mkdir(parents=True, exist_ok=True)
    for name in ETC_FILES:
        (init_dir / "etc" / name).touch()


def _mount(source: str, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    opts = sc.mount_flag_names(flags) + (f", {data}" if data else "")
    trace.step(f"mount({source!r}, {target!r}, {fstype or 'none'!r}, {opts})")
    sc.mount(source, target, fstype, flags, data)


def make_mounts_private() -> None:
    # Without this, mounts made in the container propagate to the host (and back).
    _mount("none", "/", None, sc.MS_REC | sc.MS_PRIVATE)


def mount_overlay(plan: RootfsPlan) -> None:
    _mount("overlay", plan.merged, "overlay", 0, plan.overlay_options)


def bind_etc_files(plan: RootfsPlan) -> None:
    for name in ETC_FILES:
        _mount(f"{plan.state_dir}/{name}", f"{plan.merged}/etc/{name}", None, sc.MS_BIND)


def mount_proc(root: str) -> None:
    _mount("proc", f"{root}/proc", "proc", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)


def mount_sys(root: str) -> None:
    _mount("sysfs", f"{root}/sys", "sysfs", sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)


def mount_dev(root: str) -> None:
    dev = f"{root}/dev"
    _mount("tmpfs", dev, "tmpfs", sc.MS_NOSUID | sc.MS_STRICTATIME, "mode=755,size=65536k")
    for name, major, minor in DEVICES:
        os.mknod(f"{dev}/{name}", 0o666 | 0o020000, os.makedev(major, minor))
        os.chmod(f"{dev}/{name}", 0o666)  # mknod honours the umask
    trace.step(f"mknod {dev}/{{{','.join(d[0] for d in DEVICES)}}}")
    for name, target in DEV_LINKS:
        os.symlink(target, f"{dev}/{name}")
    os.mkdir(f"{dev}/pts")
    os.mkdir(f"{dev}/shm")
    _mount("devpts", f"{dev}/pts", "devpts", sc.MS_NOSUID | sc.MS_NOEXEC,
           "newinstance,ptmxmode=0666,mode=0620,gid=5")
    _mount("shm", f"{dev}/shm", "tmpfs", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC, "mode=1777,size=65536k")


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


def prepare_rootfs(plan: RootfsPlan, pty_path: str | None = None) -> None:
    make_mounts_private()
    mount_overlay(plan)
    bind_etc_files(plan)
    mount_proc(plan.merged)
    mount_sys(plan.merged)
    mount_dev(plan.merged)
    if pty_path:
        bind_console(plan.merged, pty_path)
    if plan.mounts:  # volumes: resolved inside the root, mounted before pivot_root
        from cshell.engine.mounts import mount_all

        mount_all(plan.merged, plan.mounts)
    pivot_into(plan.merged)
