/* The program of lessons/multistage: compiled in the gcc stage, shipped alone on busybox. */
#include <stdio.h>
#include <unistd.h>

int main(void)
{
    printf("hello from a multi-stage build (pid %d)\n", (int)getpid());
    return 0;
}
