/* cshell-init: the tiny PID 1 of `run --init` (what tini is to docker run --init).
 *
 *   cshell-init [--] COMMAND [ARG]...
 *
 * As PID 1 of the container's pid namespace it
 *   - runs COMMAND as its only child, in a process group of its own (the
 *     terminal's foreground group when stdin is a terminal);
 *   - forwards every signal it gets (TERM from `stop`, INT from Ctrl-C, HUP,
 *     WINCH, ...) to that child: a PID 1 gets no default signal actions, so
 *     without it a shell as PID 1 would ignore `stop`'s SIGTERM;
 *   - reaps every process that ends under it: orphans are reparented to PID 1,
 *     and one that never waits leaves them as zombies;
 *   - exits with the child's status (128+N when a signal N killed it); the
 *     kernel then kills whatever else is left in the namespace.
 *
 * Built static (gcc -static -Os) so it runs in any image, and bind-mounted
 * read-only into the container. All signals stay blocked in PID 1 and are
 * taken with sigtimedwait(2): no handler runs, nothing races.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int first = 1;
    if (argc > 1 && strcmp(argv[1], "--") == 0)
        first = 2;
    if (first >= argc) {
        fprintf(stderr, "usage: cshell-init [--] COMMAND [ARG]...\n");
        return 2;
    }
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);

    pid_t child = fork();
    if (child < 0) {
        perror("cshell-init: fork");
        return 1;
    }
    if (child == 0) {
        setpgid(0, 0);
        if (isatty(0))
            tcsetpgrp(0, getpgrp()); /* SIGTTOU is still blocked here */
        sigprocmask(SIG_SETMASK, &old, NULL);
        execvp(argv[first], &argv[first]);
        int err = errno;
        fprintf(stderr, "cshell-init: exec %s failed: %s\n", argv[first], strerror(err));
        _exit(err == ENOENT ? 127 : 126);
    }

    int code = -1;
    for (;;) {
        struct timespec tick = {1, 0}; /* a lost SIGCHLD cannot keep zombies for long */
        siginfo_t info;
        int sig = sigtimedwait(&all, &info, &tick);
        if (sig > 0 && sig != SIGCHLD && code < 0)
            kill(child, sig);
        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            if (pid == child)
                code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        if (code >= 0)
            return code;
    }
}
