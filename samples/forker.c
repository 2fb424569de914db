/* forker N: calls work() N times in the parent, N times in a fork child (which exits with 3), once
 * in a vfork child before it execs /bin/true, then runs /bin/echo with posix_spawn. Prints what
 * each step saw; the output does not depend on tracing. */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

__attribute__((noipa)) unsigned long work(unsigned long i)
{
    return i * 2654435761UL ^ (i >> 7);
}

static unsigned long loop(unsigned long n)
{
    unsigned long sum = 0;
    for (unsigned long i = 0; i < n; i++)
        sum += work(i);
    return sum;
}

int main(int argc, char **argv)
{
    unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 0) : 10;
    int status;
    printf("parent %lx\n", loop(n));
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        printf("child %lx\n", loop(n));
        fflush(stdout);
        _exit(3);
    }
    waitpid(pid, &status, 0);
    printf("fork child exit %d\n", WEXITSTATUS(status));
    fflush(stdout);
    pid = vfork();
    if (pid == 0) {
        work(7);
        execl("/bin/true", "true", (char *)NULL);
        _exit(127);
    }
    waitpid(pid, &status, 0);
    printf("vfork child exit %d\n", WEXITSTATUS(status));
    fflush(stdout);
    char *args[] = {"echo", "spawned", NULL};
    if (posix_spawn(&pid, "/bin/echo", NULL, NULL, args, environ) != 0)
        return 1;
    waitpid(pid, &status, 0);
    printf("spawn exit %d\nparent again %lx\n", WEXITSTATUS(status), loop(n));
    return 0;
}
