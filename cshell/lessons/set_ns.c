/*
 * set_ns.c - step into one namespace of a running process, then start a program there.
 *
 *     gcc -o set_ns set_ns.c
 *     ./set_ns /proc/PID/ns/net ip addr
 *
 * This is `docker exec` reduced to one namespace (and what `cshell ns join`
 * does): every namespace of a process is a file under /proc/PID/ns. Opening
 * it gives a descriptor; setns(2) moves the calling process into that
 * namespace; execvp() then replaces us with the program, which inherits the
 * new view (here: the container's network devices instead of the host's).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char *argv[])
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s /proc/PID/ns/KIND PROGRAM [ARG...]\n", argv[0]);
        return 2;
    }
    int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        perror(argv[1]);
        return 1;
    }
    if (setns(fd, 0) == -1) {  /* 0: any kind of namespace the file is */
        perror("setns");
        return 1;
    }
    close(fd);
    execvp(argv[2], &argv[2]);
    perror(argv[2]);           /* only reached when the program cannot start */
    return 127;
}
