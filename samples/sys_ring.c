/* The one-stop syscall path's corner cases (tests/test_sysring.py), single-threaded like the path.
 *
 *   sys_ring regs      raw `syscall` instructions: after each, rcx must be the return address and r11
 *                      the flags at the instruction, as the ABI's SYSRET leaves them; rax the result
 *   sys_ring restart   a write blocked on a full pipe, interrupted by a SIGALRM whose handler has
 *                      SA_RESTART: the kernel restarts it, and it completes once a child drains the pipe
 *   sys_ring pause     pause() ended by a SIGALRM handler: -1 EINTR
 *   sys_ring loop N    N getppid()+write() pairs to /dev/null, then prints the sums (for detach)
 *
 * Every mode prints what it saw; a traced run must print exactly what an untraced one does.
 * Built with -mno-red-zone: the regs check pushes the flags inside its asm.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static int regs_check(long nr)
{
    unsigned long rcx, r11, label, flags;
    register long rax asm("rax") = nr;

    asm volatile("pushfq\n\t"
                 "pop %[flags]\n\t"
                 "lea 1f(%%rip), %[label]\n\t"
                 "syscall\n"
                 "1:\n\t"
                 "mov %%r11, %[r11]\n\t"
                 : "+a"(rax), "=c"(rcx), [label] "=&r"(label), [flags] "=&r"(flags), [r11] "=&r"(r11)
                 :
                 : "r11", "memory");
    /* the kernel clears RF (bit 16) in the saved flags */
    int ok = rcx == label && (r11 & ~0x10000UL) == (flags & ~0x10000UL);
    printf("nr %ld: rcx %s, r11 %s, rax %s\n", nr, rcx == label ? "ok" : "WRONG",
           (r11 & ~0x10000UL) == (flags & ~0x10000UL) ? "ok" : "WRONG",
           rax == syscall(nr) ? "ok" : "WRONG");
    return ok;
}

static void on_alarm(int sig)
{
    (void)sig;
}

static void alarm_in(long usec, int restart)
{
    struct sigaction sa;
    struct itimerval it = {{0, 0}, {0, usec}};

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = restart ? SA_RESTART : 0;
    sigaction(SIGALRM, &sa, NULL);
    setitimer(ITIMER_REAL, &it, NULL);
}

static int restart(void)
{
    int fds[2], status;
    char buf[4096];
    ssize_t n, total = 0;
    pid_t child;

    if (pipe(fds) < 0)
        return 1;
    fcntl(fds[1], F_SETFL, O_NONBLOCK);
    memset(buf, 'x', sizeof buf);
    while (write(fds[1], buf, sizeof buf) > 0)
        ; /* fill it */
    fcntl(fds[1], F_SETFL, 0);
    child = fork();
    if (child == 0) { /* drain it, well after the alarm */
        close(fds[1]);
        usleep(400000);
        while ((n = read(fds[0], buf, sizeof buf)) > 0)
            total += n;
        _exit(0);
    }
    close(fds[0]);
    alarm_in(100000, 1);
    n = write(fds[1], "y", 1); /* blocks; SIGALRM; restarted; done once the child reads */
    close(fds[1]);
    waitpid(child, &status, 0);
    printf("restarted write returned %zd, child status %d\n", n, status);
    return n != 1;
}

static int pause_eintr(void)
{
    alarm_in(50000, 0);
    int r = pause();
    printf("pause returned %d (%s)\n", r, r < 0 ? "interrupted" : "?");
    return 0;
}

static int loop(unsigned long n)
{
    static const char buf[8] = "utrace\n";
    unsigned long bytes = 0, same = 0;
    pid_t parent = getppid();
    int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);

    for (unsigned long i = 0; i < n; i++) {
        same += getppid() == parent;
        ssize_t done = write(fd, buf, 1 + i % 8);
        if (done > 0)
            bytes += (unsigned long)done;
    }
    printf("%lu %lu\n", bytes, same);
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "regs";

    setvbuf(stdout, NULL, _IONBF, 0);
    if (strcmp(mode, "regs") == 0) {
        int ok = regs_check(SYS_getppid) & regs_check(SYS_getpid) & regs_check(SYS_getuid);
        return ok ? 0 : 1;
    }
    if (strcmp(mode, "restart") == 0)
        return restart();
    if (strcmp(mode, "pause") == 0)
        return pause_eintr();
    if (strcmp(mode, "loop") == 0)
        return loop(argc > 2 ? strtoul(argv[2], NULL, 10) : 1000);
    fprintf(stderr, "usage: sys_ring regs|restart|pause|loop N\n");
    return 2;
}
