/* probe: one attack per subcommand, run inside a cshell container by tests/test_security.py.
 * Prints "OK" when the kernel let the call through, else "ERR <errno name>", and exits 0/1.
 * Every call is harmless even when it succeeds (no key is kept, no module is loaded, the
 * reboot command only turns Ctrl-Alt-Del off, nothing is written to a host binary). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int report(long rc) {
    if (rc < 0) { printf("ERR %s\n", strerrorname_np(errno)); return 1; }
    printf("OK\n");
    return 0;
}

static int child_fn(void *arg) { (void)arg; return 0; }

/* chroot escape: chroot into a subdirectory, walk up with chdir(".."), chroot(".") */
static int chroot_escape(const char *marker) {
    mkdir("/tmp/jail", 0755);
    if (chroot("/tmp/jail") < 0) return report(-1);
    for (int i = 0; i < 64; i++) chdir("..");
    if (chroot(".") < 0) return report(-1);
    struct stat st;
    if (stat(marker, &st) == 0) { printf("ESCAPED: %s visible\n", marker); return 2; }
    if (stat("/bin/busybox", &st) == 0) { printf("STILL INSIDE\n"); return 0; }
    printf("ELSEWHERE\n");
    return 3;
}

/* CVE-2019-5736: watch every /proc/PID/exe for seconds; try to open for writing (never writes) */
static int exe_watch(int seconds, const char *own_bin) {
    struct stat self, busybox, st;
    stat("/proc/self/exe", &self);
    stat(own_bin, &busybox);
    int seen = 0, opened = 0;
    time_t end = time(NULL) + seconds;
    while (time(NULL) < end) {
        DIR *d = opendir("/proc");
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
            char path[64];
            snprintf(path, sizeof path, "/proc/%s/exe", e->d_name);
            if (stat(path, &st) < 0) continue;
            if (st.st_ino == self.st_ino || st.st_ino == busybox.st_ino) continue;
            seen++;
            int fd = open(path, O_WRONLY);  /* no O_TRUNC, no write: only the open is tested */
            if (fd >= 0) { opened++; printf("OPENED %s for writing\n", path); close(fd); }
        }
        if (d) closedir(d);
    }
    printf("seen %d foreign exe, opened %d\n", seen, opened);
    return opened ? 2 : 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return 64;
    const char *c = argv[1];
    if (!strcmp(c, "init_module")) return report(syscall(SYS_init_module, "", 0UL, ""));
    if (!strcmp(c, "finit_module")) return report(syscall(SYS_finit_module, 0, "", 0));
    if (!strcmp(c, "add_key")) return report(syscall(SYS_add_key, "user", "cshell-test", "x", 1, -3 /* session */));
    if (!strcmp(c, "keyctl")) return report(syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3, 0));
    if (!strcmp(c, "reboot")) return report(reboot(RB_DISABLE_CAD));
    if (!strcmp(c, "kexec_load")) return report(syscall(SYS_kexec_load, 0UL, 0UL, NULL, 0UL));
    if (!strcmp(c, "open_by_handle_at")) {
        struct { unsigned int bytes; int type; unsigned char h[8]; } fh = {8, 1, {0}};
        return report(syscall(SYS_open_by_handle_at, AT_FDCWD, &fh, O_RDONLY));
    }
    if (!strcmp(c, "ptrace")) return report(ptrace(PTRACE_ATTACH, (pid_t)atoi(argv[2]), 0, 0));
    if (!strcmp(c, "unshare_user")) return report(unshare(CLONE_NEWUSER));
    if (!strcmp(c, "unshare_mnt")) return report(unshare(CLONE_NEWNS));
    if (!strcmp(c, "clone_newuser")) {
        static char stack[65536];
        int pid = clone(child_fn, stack + sizeof stack, CLONE_NEWUSER | SIGCHLD, NULL);
        if (pid > 0) waitpid(pid, NULL, 0);
        return report(pid);
    }
    if (!strcmp(c, "fork")) { int pid = fork(); if (pid == 0) _exit(0); if (pid > 0) waitpid(pid, NULL, 0); return report(pid); }
    if (!strcmp(c, "mount")) return report(mount("none", "/tmp", "tmpfs", 0, NULL));
    if (!strcmp(c, "umount")) return report(umount2(argv[2], MNT_DETACH));
    if (!strcmp(c, "vsock")) { int fd = socket(40 /* AF_VSOCK */, SOCK_STREAM, 0); return report(fd < 0 && errno != EPERM ? 0 : fd); }
    if (!strcmp(c, "personality")) return report(personality(PER_LINUX | ADDR_NO_RANDOMIZE));
    if (!strcmp(c, "bpf")) return report(syscall(SYS_bpf, 0, NULL, 0));
    if (!strcmp(c, "settimeofday")) { struct timespec ts; clock_gettime(CLOCK_REALTIME, &ts); return report(clock_settime(CLOCK_REALTIME, &ts)); }
    if (!strcmp(c, "euid")) { printf("euid=%d\n", geteuid()); return 0; }
    if (!strcmp(c, "chroot_escape")) return chroot_escape(argv[2]);
    if (!strcmp(c, "exe_watch")) return exe_watch(atoi(argv[2]), argv[3]);
    return 64;
}
