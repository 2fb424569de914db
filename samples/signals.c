/* signals: the program's own signals must reach it unchanged under a tracer.
 * - SIGSEGV raised by load_word's first instruction (a probe target): the handler checks that the
 *   context's rip is load_word itself (not a tracer's out-of-line copy), then siglongjmps out;
 * - SIGALRM from a 1 ms interval timer while the program works;
 * - SIGCHLD from a child that exits;
 * - a real-time signal queued with a value (sigqueue);
 * - SIGUSR1 sent by another process (the child);
 * - SIGTRAP raised by the program itself (it has its own handler).
 * Prints one line per check; the output does not depend on tracing. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

int load_word(const int *p); /* asm below: the first instruction dereferences p */
__asm__(".text\n.globl load_word\n.type load_word,@function\nload_word:\n"
        "  movl (%rdi), %eax\n  ret\n.size load_word, .-load_word\n");

__attribute__((noipa)) unsigned long work(unsigned long i) { return i * 7 + 3; }

static sigjmp_buf env;
static volatile sig_atomic_t segv_rip_ok, segv_addr_ok, alarms, chld, rt_value, usr1_from_child, traps;

static void on_segv(int sig, siginfo_t *si, void *ctx)
{
    ucontext_t *uc = ctx;
    (void)sig;
    segv_rip_ok = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP] == (uintptr_t)load_word;
    segv_addr_ok = si->si_addr == (void *)16;
    siglongjmp(env, 1);
}

static void on_alarm(int sig) { (void)sig; alarms++; }
static void on_chld(int sig) { (void)sig; chld++; }
static void on_rt(int sig, siginfo_t *si, void *ctx) { (void)sig; (void)ctx; rt_value = si->si_value.sival_int; }
static void on_usr1(int sig, siginfo_t *si, void *ctx) { (void)sig; (void)ctx; usr1_from_child = si->si_pid != getpid(); }
static void on_trap(int sig) { (void)sig; traps++; }

static void handle(int sig, void (*fn)(int, siginfo_t *, void *))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = fn;
    sa.sa_flags = SA_SIGINFO;
    sigaction(sig, &sa, NULL);
}

int main(void)
{
    handle(SIGSEGV, on_segv);
    handle(SIGRTMIN + 1, on_rt);
    handle(SIGUSR1, on_usr1);
    signal(SIGALRM, on_alarm);
    signal(SIGCHLD, on_chld);
    signal(SIGTRAP, on_trap);

    int ok = 0, value = 42;
    ok = load_word(&value) == 42;
    if (sigsetjmp(env, 1) == 0)
        load_word((const int *)16);
    printf("segv recovered rip=%d addr=%d normal=%d\n", segv_rip_ok, segv_addr_ok, ok);

    struct itimerval it = {{0, 1000}, {0, 1000}};
    setitimer(ITIMER_REAL, &it, NULL);
    unsigned long sum = 0;
    for (unsigned long i = 0; i < 20000 || alarms < 5; i++)
        sum += work(i);
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    printf("alarms seen %d\n", alarms >= 5);

    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        kill(parent, SIGUSR1);
        _exit(0);
    }
    while (!chld || !usr1_from_child)
        usleep(1000);
    waitpid(pid, NULL, 0);
    printf("sigchld %d usr1 from child %d\n", chld > 0, usr1_from_child);

    union sigval sv = {.sival_int = 1234};
    sigqueue(getpid(), SIGRTMIN + 1, sv);
    printf("rt value %d\n", rt_value);

    raise(SIGTRAP);
    printf("own sigtrap %d\n", traps);
    return 0;
}
