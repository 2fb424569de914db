/* The syscall benchmark's target: N iterations of getppid() and one write() to /dev/null.
 *
 * Iteration i calls getppid() (the cheapest real system call: glibc does not cache it) and writes
 * 1 + i % 8 bytes to /dev/null (opened once, before the loop). It then prints two numbers: the bytes
 * the writes reported, and how many getppid() calls returned the parent's pid; bench/per_syscall.py
 * checks both (sum of 1 + i % 8, and N), so a traced run did the same work as an untraced one.
 *
 * Built by bench/per_syscall.py: gcc -O2 -g -o syscall_loop syscall_loop.c
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    static const char buf[8] = "utrace\n";
    unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000;
    unsigned long bytes = 0, same = 0;
    pid_t parent = getppid();
    int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);

    if (fd < 0) {
        perror("/dev/null");
        return 1;
    }
    for (unsigned long i = 0; i < n; i++) {
        ssize_t done;

        same += getppid() == parent;
        done = write(fd, buf, 1 + i % 8);
        if (done > 0)
            bytes += (unsigned long)done;
    }
    close(fd);
    printf("%lu %lu\n", bytes, same);
    return 0;
}
