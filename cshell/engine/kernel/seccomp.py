"""Seccomp: a filter in the kernel that answers every system call before it runs.

Capabilities decide what root may do; seccomp decides which kernel entry points
a process may call at all. The container's filter is an allowlist: some 360
calls a normal program uses are allowed, a few more depend on an argument or on
a capability the container holds, and everything else fails with EPERM, the
way Docker's default profile (moby/profiles, seccomp/default_linux.go) behaves.
The profile below is cshell's own, grouped by purpose; it has the same effect
as Docker's on x86_64 (x86_64, i386 and x32 system calls), with one deliberate
choice: unshare(2) needs CAP_SYS_ADMIN, as in Docker up to 28 (newer moby/profiles
allow it for everyone and leave the refusal to the kernel).

How it is loaded: libseccomp (libseccomp.so.2, through ctypes) turns the rules
into a classic BPF program, which cshell keeps in STATE_ROOT/seccomp/ under a
hash of the profile, the capabilities and the kernel, so a container start only
reads a file and hands the program to prctl(PR_SET_SECCOMP). As runc does, a
short prologue makes system calls newer than this libseccomp knows return
ENOSYS instead of EPERM, so a C library falls back to an older call.

`--security-opt seccomp=FILE` takes a profile in Docker's JSON format
(defaultAction, defaultErrnoRet, architectures or archMap, syscalls with names,
action, errnoRet, args, includes/excludes on caps, arches and minKernel);
`seccomp=unconfined` loads no filter; `--privileged` implies unconfined.
"""

from __future__ import annotations

import ctypes
import json
import os
import struct
from pathlib import Path
from typing import Any

from cshell.errors import UsageError

# -- the profile -----------------------------------------------------------------------------------
# Written in Docker's JSON vocabulary so a user's profile and ours go through the same code.

EPERM, ENOSYS = 1, 38
AF_VSOCK = 40
NS_CLONE_FLAGS = 0x7E020000  # CLONE_NEWNS|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET|NEWCGROUP

ALLOWED_GROUPS: dict[str, str] = {
    # purpose: names (allowed for everyone)
    "run, wait for and end processes and threads": """
        fork vfork execve execveat exit exit_group wait4 waitid waitpid set_tid_address
        set_robust_list get_robust_list futex futex_time64 futex_waitv futex_wait futex_wake
        futex_requeue rseq restart_syscall pidfd_open pidfd_send_signal membarrier
        get_thread_area set_thread_area uretprobe""",
    "who am I, and change to a less privileged user (capabilities still apply)": """
        getpid getppid gettid getpgid setpgid getpgrp getsid setsid getuid getuid32 geteuid
        geteuid32 getgid getgid32 getegid getegid32 getresuid getresuid32 getresgid getresgid32
        getgroups getgroups32 setuid setuid32 setgid setgid32 setreuid setreuid32 setregid
        setregid32 setresuid setresuid32 setresgid setresgid32 setfsuid setfsuid32 setfsgid
        setfsgid32 setgroups setgroups32 capget capset prctl seccomp
        landlock_create_ruleset landlock_add_rule landlock_restrict_self""",
    "limits, priorities and CPU placement of one's own processes": """
        getrlimit setrlimit ugetrlimit prlimit64 getrusage getpriority setpriority ioprio_get
        ioprio_set sched_getaffinity sched_setaffinity sched_getattr sched_setattr
        sched_getparam sched_setparam sched_getscheduler sched_setscheduler
        sched_get_priority_max sched_get_priority_min sched_rr_get_interval
        sched_rr_get_interval_time64 sched_yield getcpu""",
    "signals": """
        rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend
        rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sigaltstack sigprocmask
        sigreturn kill tkill tgkill pause alarm""",
    "memory": """
        brk mmap mmap2 munmap mremap mprotect madvise mincore msync mlock mlock2 mlockall
        munlock munlockall remap_file_pages memfd_create memfd_secret pkey_alloc pkey_free
        pkey_mprotect map_shadow_stack mseal process_mrelease""",
    "files and directories (permissions are checked by the kernel as usual)": """
        open openat openat2 creat close close_range dup dup2 dup3 fcntl fcntl64 flock access
        faccessat faccessat2 chdir fchdir getcwd chmod fchmod fchmodat fchmodat2 chown chown32
        fchown fchown32 fchownat lchown lchown32 link linkat symlink symlinkat readlink
        readlinkat mkdir mkdirat mknod mknodat rename renameat renameat2 rmdir unlink unlinkat
        truncate truncate64 ftruncate ftruncate64 umask utime utimes utimensat
        utimensat_time64 futimesat getdents getdents64 stat stat64 lstat lstat64 fstat fstat64
        fstatat64 newfstatat statx statfs statfs64 fstatfs fstatfs64 name_to_handle_at""",
    "extended attributes": """
        getxattr lgetxattr fgetxattr getxattrat setxattr lsetxattr fsetxattr setxattrat
        listxattr llistxattr flistxattr listxattrat removexattr lremovexattr fremovexattr
        removexattrat""",
    "reading and writing data": """
        read readv pread64 preadv preadv2 write writev pwrite64 pwritev pwritev2 lseek _llseek
        sendfile sendfile64 splice tee vmsplice copy_file_range fallocate fadvise64
        fadvise64_64 readahead sync syncfs fsync fdatasync sync_file_range cachestat""",
    "waiting for many things at once, and event descriptors": """
        select _newselect pselect6 pselect6_time64 poll ppoll ppoll_time64 epoll_create
        epoll_create1 epoll_ctl epoll_ctl_old epoll_wait epoll_wait_old epoll_pwait
        epoll_pwait2 eventfd eventfd2 inotify_init inotify_init1 inotify_add_watch
        inotify_rm_watch fanotify_mark signalfd signalfd4 timerfd_create timerfd_settime
        timerfd_settime64 timerfd_gettime timerfd_gettime64 pipe pipe2""",
    "asynchronous I/O (not io_uring: Docker blocks it since 25.0)": """
        io_setup io_destroy io_submit io_cancel io_getevents io_pgetevents io_pgetevents_time64""",
    "clocks and timers (reading; setting the clock needs CAP_SYS_TIME, below)": """
        time gettimeofday clock_gettime clock_gettime64 clock_getres clock_getres_time64
        clock_nanosleep clock_nanosleep_time64 nanosleep clock_adjtime clock_adjtime64 adjtimex
        getitimer setitimer timer_create timer_delete timer_getoverrun timer_gettime
        timer_gettime64 timer_settime timer_settime64 times""",
    "sockets (socket() itself is below: one family is refused)": """
        socketpair bind connect listen accept accept4 getsockname getpeername getsockopt
        setsockopt send sendto sendmsg sendmmsg recv recvfrom recvmsg recvmmsg recvmmsg_time64
        shutdown socketcall""",
    "System V IPC and POSIX message queues (the container has its own ipc namespace)": """
        ipc msgget msgsnd msgrcv msgctl semget semop semtimedop semtimedop_time64 semctl
        shmget shmat shmdt shmctl mq_open mq_unlink mq_timedsend mq_timedsend_time64
        mq_timedreceive mq_timedreceive_time64 mq_notify mq_getsetattr""",
    "about the system": """
        uname sysinfo getrandom ioctl listmount statmount riscv_hwprobe""",
}

# Calls that are allowed only when the container holds a capability (in its bounding
# set): the capability alone would let the kernel say yes, seccomp keeps the door shut
# for containers that do not have it.
CAP_GATED: list[tuple[str, str, str]] = [
    ("CAP_SYS_ADMIN", "mount and namespace tools, and the new mount API",
     "mount umount umount2 mount_setattr move_mount open_tree fsopen fsconfig fsmount fspick "
     "unshare setns clone clone3 sethostname setdomainname"),
    ("CAP_SYS_ADMIN", "kernel tracing and accounting interfaces",
     "bpf perf_event_open fanotify_init lookup_dcookie quotactl quotactl_fd syslog "
     "lsm_get_self_attr lsm_set_self_attr lsm_list_modules"),
    ("CAP_DAC_READ_SEARCH", "open a file by handle: the 'shocker' escape of 2014",
     "open_by_handle_at"),
    ("CAP_SYS_BOOT", "reboot (in a pid namespace it only signals PID 1)", "reboot"),
    ("CAP_SYS_CHROOT", "chroot", "chroot"),
    ("CAP_SYS_MODULE", "load and unload kernel modules", "init_module finit_module delete_module"),
    ("CAP_SYS_PACCT", "process accounting", "acct"),
    ("CAP_SYS_PTRACE", "look into other processes",
     "kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace"),
    ("CAP_SYS_RAWIO", "x86 I/O ports", "iopl ioperm"),
    ("CAP_SYS_TIME", "set the clock (one clock for the whole host)",
     "settimeofday stime clock_settime clock_settime64"),
    ("CAP_SYS_TTY_CONFIG", "hang up the terminal", "vhangup"),
    ("CAP_SYS_NICE", "NUMA memory policy", "get_mempolicy mbind set_mempolicy set_mempolicy_home_node"),
    ("CAP_SYSLOG", "the kernel log", "syslog"),
    ("CAP_BPF", "BPF programs", "bpf"),
    ("CAP_PERFMON", "performance counters", "perf_event_open"),
]

# Architecture-specific calls, by the native architecture (Docker's includes.arches).
ARCH_ONLY: list[tuple[tuple[str, ...], str]] = [
    (("amd64", "x32"), "arch_prctl"),
    (("amd64", "x32", "x86"), "modify_ldt"),
    (("arm", "arm64"), "arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls"),
    (("ppc64le",), "sync_file_range2 swapcontext"),
    (("s390", "s390x"), "s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr"),
    (("riscv64",), "riscv_flush_icache"),
]

# Docker's archMap: the native architecture and the ones the same kernel also runs.
ARCH_MAP = {
    "SCMP_ARCH_X86_64": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "SCMP_ARCH_AARCH64": ["SCMP_ARCH_ARM"],
}


def _names(text: str) -> list[str]:
    return text.split()


def default_profile() -> dict[str, Any]:
    """cshell's default profile, as a Docker-format dict."""
    allow = "SCMP_ACT_ALLOW"
    calls: list[dict[str, Any]] = [{"names": _names(t), "action": allow, "comment": why}
                                   for why, t in ALLOWED_GROUPS.items()]
    calls += [
        # Since 4.8 a seccomp filter cannot be bypassed with ptrace, so tracing one's own
        # children is allowed (gdb, strace); other processes still need CAP_SYS_PTRACE.
        {"names": ["ptrace", "process_vm_readv", "process_vm_writev"], "action": allow,
         "includes": {"minKernel": "4.8"}, "comment": "debug one's own children"},
        # AF_VSOCK talks to the hypervisor, outside the network namespace.
        {"names": ["socket"], "action": allow, "args": [{"index": 0, "value": AF_VSOCK, "op": "SCMP_CMP_NE"}],
         "comment": "any socket family but AF_VSOCK"},
        # personality(): Linux, 32-bit Linux, the 2.6 uname quirk, and the query value only.
        *({"names": ["personality"], "action": allow, "args": [{"index": 0, "value": v, "op": "SCMP_CMP_EQ"}],
           "comment": "personality: harmless values only"} for v in (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)),
        # Threads and fork, but no new namespaces without CAP_SYS_ADMIN.
        {"names": ["clone"], "action": allow, "excludes": {"caps": ["CAP_SYS_ADMIN"], "arches": ["s390", "s390x"]},
         "args": [{"index": 0, "value": NS_CLONE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
         "comment": "clone without CLONE_NEW* flags"},
        {"names": ["clone"], "action": allow, "includes": {"arches": ["s390", "s390x"]},
         "excludes": {"caps": ["CAP_SYS_ADMIN"]},
         "args": [{"index": 1, "value": NS_CLONE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
         "comment": "s390 swaps clone's first two arguments"},
        # clone3 passes its flags in memory, where a filter cannot look: ENOSYS makes the
        # C library fall back to clone, whose flags it can check.
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS,
         "excludes": {"caps": ["CAP_SYS_ADMIN"]}, "comment": "clone3: use clone instead"},
    ]
    calls += [{"names": _names(t), "action": allow, "includes": {"caps": [cap]}, "comment": why}
              for cap, why, t in CAP_GATED]
    calls += [{"names": _names(t), "action": allow, "includes": {"arches": list(arches)}}
              for arches, t in ARCH_ONLY]
    return {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": EPERM,
            "archMap": [{"architecture": a, "subArchitectures": s} for a, s in ARCH_MAP.items()],
            "syscalls": calls}


# -- Docker's JSON format ---------------------------------------------------------------------------

ACTIONS = {"SCMP_ACT_KILL": 0x00000000, "SCMP_ACT_KILL_THREAD": 0x00000000,
           "SCMP_ACT_KILL_PROCESS": 0x80000000, "SCMP_ACT_TRAP": 0x00030000,
           "SCMP_ACT_ERRNO": 0x00050000, "SCMP_ACT_TRACE": 0x7FF00000, "SCMP_ACT_LOG": 0x7FFC0000,
           "SCMP_ACT_ALLOW": 0x7FFF0000}
OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
       "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
ARCH_TOKENS = {"SCMP_ARCH_X86_64": 0xC000003E, "SCMP_ARCH_X86": 0x40000003, "SCMP_ARCH_X32": 0x4000003E,
               "SCMP_ARCH_AARCH64": 0xC00000B7, "SCMP_ARCH_ARM": 0x40000028}
# uname -m -> (Docker's name for includes.arches, the SCMP_ARCH of the native ABI)
NATIVE = {"x86_64": ("amd64", "SCMP_ARCH_X86_64"), "aarch64": ("arm64", "SCMP_ARCH_AARCH64")}


def native_arch() -> tuple[str, str]:
    machine = os.uname().machine
    return NATIVE.get(machine, (machine, ""))


class ProfileError(UsageError):
    pass


def load_file(path: str) -> dict[str, Any]:
    """A profile file as Docker's CLI reads it (the daemon sees only its content)."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ProfileError(f"opening seccomp profile ({path}) failed: {e.strerror}",
                           "give the path of a JSON profile in Docker's format, or seccomp=unconfined") from None
    try:
        profile = json.loads(text)
    except ValueError as e:
        raise ProfileError(f"decoding seccomp profile ({path}) failed: {e}",
                           "the file must be JSON, e.g. Docker's profiles/seccomp/default.json") from None
    check(profile, path)
    return profile


def _fail(where: str, what: str) -> ProfileError:
    return ProfileError(f"seccomp profile {where}: {what}",
                        "see Docker's seccomp documentation for the format (defaultAction, syscalls[…])")


def _action_ok(action: object) -> bool:
    return isinstance(action, str) and action in ACTIONS


def check(profile: object, where: str = "") -> None:
    """Refuse, before anything is made, what the loader would trip over."""
    if not isinstance(profile, dict):
        raise _fail(where, "the top level must be an object")
    if profile.get("architectures") and profile.get("archMap"):
        raise _fail(where, "both 'architectures' and 'archMap' are given; use one")
    default = profile.get("defaultAction", "")
    if default and not _action_ok(default):
        raise _fail(where, f"unknown defaultAction {default!r}")
    for arch in profile.get("architectures") or []:
        if arch not in ARCH_TOKENS:
            raise _fail(where, f"unsupported architecture {arch!r}")
    for i, call in enumerate(profile.get("syscalls") or []):
        if not isinstance(call, dict):
            raise _fail(where, f"syscalls[{i}] is not an object")
        if call.get("name") and call.get("names"):
            raise _fail(where, f"syscalls[{i}]: both 'name' and 'names' are given")
        if not _action_ok(call.get("action")):
            raise _fail(where, f"syscalls[{i}]: unknown action {call.get('action')!r}"
                        + (" (SCMP_ACT_NOTIFY needs a listener; cshell has none)"
                           if call.get("action") == "SCMP_ACT_NOTIFY" else ""))
        for arg in call.get("args") or []:
            if not isinstance(arg, dict) or arg.get("op") not in OPS or not 0 <= int(arg.get("index", -1)) <= 5:
                raise _fail(where, f"syscalls[{i}]: bad argument rule {arg!r}")


def _kernel_at_least(version: str) -> bool:
    def parts(v: str) -> tuple[int, ...]:
        out = []
        for p in v.split(".")[:2]:
            digits = "".join(ch for ch in p if ch.isdigit()) or "0"
            out.append(int(digits))
        return tuple(out)

    return parts(os.uname().release) >= parts(str(version))


def resolve(profile: dict[str, Any], caps: list[str]) -> tuple[list[str], list[dict[str, Any]]]:
    """Docker's setupSeccomp: the architectures, and the rules that apply to this container."""
    arch, scmp_native = native_arch()
    arches: list[str] = list(profile.get("architectures") or [])
    for entry in profile.get("archMap") or []:
        if entry.get("architecture") == scmp_native:
            arches = [scmp_native, *(entry.get("subArchitectures") or [])]
    rules = []
    for call in profile.get("syscalls") or []:
        exc, inc = call.get("excludes") or {}, call.get("includes") or {}
        if arch in (exc.get("arches") or []) or any(c in caps for c in exc.get("caps") or []):
            continue
        if exc.get("minKernel") and _kernel_at_least(exc["minKernel"]):
            continue
        if inc.get("arches") and arch not in inc["arches"]:
            continue
        if any(c not in caps for c in inc.get("caps") or []):
            continue
        if inc.get("minKernel") and not _kernel_at_least(inc["minKernel"]):
            continue
        rules.append(call)
    return [a for a in arches if a in ARCH_TOKENS], rules


# -- compiling with libseccomp ----------------------------------------------------------------------


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


_lib_handle: ctypes.CDLL | None = None


def _lib() -> ctypes.CDLL:
    global _lib_handle
    if _lib_handle is None:
        try:
            lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
        except OSError:
            raise UsageError("libseccomp is not installed, so no seccomp filter can be built",
                             "install it (apt-get install libseccomp2), or run with "
                             "--security-opt seccomp=unconfined") from None
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        lib.seccomp_release.argtypes = [ctypes.c_void_p]
        lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_syscall_resolve_num_arch.argtypes = [ctypes.c_uint32, ctypes.c_int]
        lib.seccomp_syscall_resolve_num_arch.restype = ctypes.c_void_p  # a malloc'd string, or NULL
        lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                               ctypes.c_uint, ctypes.POINTER(_ArgCmp)]
        lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
        _lib_handle = lib
    return _lib_handle


def _action_value(name: str, errno_ret: object, default_errno: int = EPERM) -> int:
    value = ACTIONS[name]
    if name in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"):
        value |= (int(errno_ret) if errno_ret is not None else default_errno) & 0xFFFF
    return value


def _conditions(args: list[dict[str, Any]]) -> list[list[_ArgCmp]]:
    """runc's rule: conditions on different arguments are ANDed in one rule; several
    conditions on the same argument become one rule each (any of them may match)."""
    cmps = [_ArgCmp(int(a["index"]), OPS[a["op"]], int(a.get("value", 0)) & (2**64 - 1),
                    int(a.get("valueTwo", 0)) & (2**64 - 1)) for a in args]
    indexes = [c.arg for c in cmps]
    if len(set(indexes)) == len(indexes):
        return [cmps]
    return [[c] for c in cmps]


def _max_known_syscall(lib: ctypes.CDLL, token: int) -> int:
    top = 0
    for nr in range(0, 1024):
        ptr = lib.seccomp_syscall_resolve_num_arch(token, nr)
        if ptr:
            top = nr
            ctypes.CDLL(None).free(ctypes.c_void_p(ptr))
    return top


def _enosys_prologue(token: int, top: int) -> bytes:
    """runc's idea in six BPF instructions: on the native ABI, a call numbered above
    everything libseccomp knows returns ENOSYS (so the C library tries an older call)."""
    ld_w_abs, jeq, jset, jgt, ret = 0x20, 0x15, 0x45, 0x25, 0x06
    ins = [(ld_w_abs, 0, 0, 4),                # A = seccomp_data.arch
           (jeq, 0, 4, token),                 # not the native ABI: on to the filter
           (ld_w_abs, 0, 0, 0),                # A = seccomp_data.nr
           (jset, 2, 0, 0x40000000),           # an x32 call: on to the filter
           (jgt, 0, 1, top),                   # known number: on to the filter
           (ret, 0, 0, 0x00050000 | ENOSYS)]   # newer than us: ENOSYS
    return b"".join(struct.pack("<HBBI", *i) for i in ins)


def compile_bpf(profile: dict[str, Any], caps: list[str]) -> tuple[bytes, int]:
    """The BPF program for this profile and capability set, and how many rules it has."""
    lib = _lib()
    default_name = profile.get("defaultAction") or "SCMP_ACT_ALLOW"
    default = _action_value(default_name, profile.get("defaultErrnoRet"))
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise UsageError("libseccomp refused the default action", "check defaultAction in the profile")
    try:
        arches, rules = resolve(profile, caps)
        _, scmp_native = native_arch()
        for arch in arches:
            if arch != scmp_native:
                rc = lib.seccomp_arch_add(ctx, ARCH_TOKENS[arch])
                if rc < 0 and rc != -17:  # EEXIST
                    raise UsageError(f"libseccomp cannot add architecture {arch}: {os.strerror(-rc)}",
                                     "remove it from the profile")
        count = 0
        for call in rules:
            action = _action_value(call["action"], call.get("errnoRet"))
            if action == default:
                continue  # libseccomp refuses a rule that repeats the default (runc skips it too)
            names = call.get("names") or ([call["name"]] if call.get("name") else [])
            for name in names:
                nr = lib.seccomp_syscall_resolve_name(str(name).encode())
                if nr == -1:  # __NR_SCMP_ERROR: unknown to this libseccomp, skipped as Docker does
                    continue
                for cond in _conditions(call.get("args") or []):
                    array = (_ArgCmp * len(cond))(*cond) if cond else None
                    rc = lib.seccomp_rule_add_array(ctx, action, nr, len(cond), array)
                    if rc < 0:
                        raise UsageError(f"seccomp rule for {name} refused by libseccomp: {os.strerror(-rc)}",
                                         "check its action and args in the profile")
                    count += 1
        r, w = os.pipe()
        try:
            rc = lib.seccomp_export_bpf(ctx, w)
            os.close(w)
            w = -1
            chunks = []
            while chunk := os.read(r, 65536):
                chunks.append(chunk)
        finally:
            os.close(r)
            if w >= 0:
                os.close(w)
        if rc < 0:
            raise UsageError(f"libseccomp could not build the filter: {os.strerror(-rc)}", "")
        bpf = b"".join(chunks)
        if scmp_native and default_name not in ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG"):
            token = ARCH_TOKENS[scmp_native]
            bpf = _enosys_prologue(token, _max_known_syscall(lib, token)) + bpf
        return bpf, count
    finally:
        lib.seccomp_release(ctx)


# -- the cache ---------------------------------------------------------------------------------------

_MAGIC = b"CSHBPF1\n"
_memory: dict[str, tuple[bytes, int]] = {}


def cache_key(profile: dict[str, Any], caps: list[str]) -> str:
    from cshell.engine.state import sha256  # the builtin sha256: hashlib would load OpenSSL

    text = json.dumps([profile, sorted(caps), os.uname().machine, os.uname().release], sort_keys=True)
    return sha256(text.encode())[7:]


def filter_for(profile: dict[str, Any], caps: list[str], cache_dir: Path | None) -> tuple[bytes, int]:
    """The compiled filter, from memory, from STATE_ROOT/seccomp/KEY.bpf, or made now (and kept)."""
    key = cache_key(profile, caps)
    if key in _memory:
        return _memory[key]
    path = cache_dir / f"{key}.bpf" if cache_dir is not None else None
    if path is not None:
        try:
            raw = path.read_bytes()
            if raw.startswith(_MAGIC) and (len(raw) - len(_MAGIC) - 4) % 8 == 0:
                count = struct.unpack_from("<I", raw, len(_MAGIC))[0]
                _memory[key] = (raw[len(_MAGIC) + 4:], count)
                return _memory[key]
        except OSError:
            pass
    bpf, count = compile_bpf(profile, caps)
    _memory[key] = (bpf, count)
    if path is not None:
        try:
            from cshell.engine.state import atomic_write

            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, _MAGIC + struct.pack("<I", count) + bpf)
        except OSError:
            pass  # a read-only state root: compile each time
    return bpf, count
