/* api_returns MODE [ARGS]: calls with known returns for the return-probe tests (tests/test_retprobes.py).
 *
 *   rec D          rec(D): rec(n) = n + rec(n - 1), rec(0) = 0, so D + 1 nested calls, and
 *                  rec(n) returns n * (n + 1) / 2
 *   jmp R          R rounds of round(k): it calls dive(5, 1), whose innermost call longjmps back
 *                  into round (six dive frames never return), then dive(2, 0), which returns
 *                  normally (three returns), then round returns
 *   threads T N    T threads, each calling rec(i % 8) for i < N
 *   nap T M US     T threads, each calling napper(i) M times; napper sleeps US microseconds and
 *                  returns 3 * i + 1. Prints "ready" once every thread runs
 *   quit T         T threads, each calling quitter(i), which calls leave(i), which ends
 *                  the thread with pthread_exit (glibc unwinds the thread's stack with libgcc_s's
 *                  forced unwind, running the cleanup handler quitter pushed)
 *
 * Every mode prints its results at the end; nothing depends on timing or on tracing. */
#include <pthread.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NOIPA __attribute__((noipa))

volatile unsigned long sink;

/* not a tail call: the addition after the call keeps every frame on the stack */
NOIPA long rec(long n)
{
    if (n <= 0)
        return 0;
    long r = rec(n - 1);
    sink += (unsigned long)r;
    return r + n;
}

static jmp_buf env;

NOIPA long dive(long n, int jump)
{
    if (n == 0) {
        if (jump)
            longjmp(env, 1);
        return 100;
    }
    long r = dive(n - 1, jump);
    sink += (unsigned long)r;
    return r + n;
}

NOIPA long round_(long k)
{
    volatile long result = k;
    if (setjmp(env) == 0)
        result += dive(5, 1); /* never returns: longjmp */
    else
        result += dive(2, 0); /* 100 + 1 + 2 */
    return result;
}

static unsigned long per_thread, nap_us;

static void *rec_worker(void *arg)
{
    long sum = 0;
    for (unsigned long i = 0; i < per_thread; i++)
        sum += rec((long)(i % 8));
    *(long *)arg = sum;
    return NULL;
}

NOIPA unsigned long napper(unsigned long i)
{
    usleep((useconds_t)nap_us);
    return 3 * i + 1;
}

static pthread_barrier_t started;
static int cleanups;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void count_cleanup(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lock);
    cleanups++;
    pthread_mutex_unlock(&lock);
}

NOIPA long leave(long i)
{
    sink += (unsigned long)i;
    pthread_exit((void *)(i * 7));
}

NOIPA long quitter(long i)
{
    long r;
    pthread_cleanup_push(count_cleanup, NULL);
    r = leave(i);
    sink += (unsigned long)r;
    pthread_cleanup_pop(0);
    return r;
}

static void *quit_worker(void *arg)
{
    return (void *)quitter((long)(intptr_t)arg);
}

static void *nap_worker(void *arg)
{
    unsigned long sum = 0;
    pthread_barrier_wait(&started);
    for (unsigned long i = 0; i < per_thread; i++)
        sum += napper(i);
    *(unsigned long *)arg = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "rec";
    if (strcmp(mode, "rec") == 0) {
        long d = argc > 2 ? atol(argv[2]) : 50;
        printf("rec %ld = %ld\n", d, rec(d));
    } else if (strcmp(mode, "jmp") == 0) {
        long rounds = argc > 2 ? atol(argv[2]) : 3, sum = 0;
        for (long k = 0; k < rounds; k++)
            sum += round_(k);
        printf("rounds %ld sum %ld\n", rounds, sum);
    } else if (strcmp(mode, "threads") == 0 || strcmp(mode, "nap") == 0) {
        int nap = strcmp(mode, "nap") == 0;
        int t = argc > 2 ? atoi(argv[2]) : 4;
        per_thread = argc > 3 ? strtoul(argv[3], NULL, 0) : 100;
        nap_us = argc > 4 ? strtoul(argv[4], NULL, 0) : 1000;
        pthread_t th[16];
        long sums[16];
        long total = 0;
        if (t > 16)
            t = 16;
        pthread_barrier_init(&started, NULL, (unsigned)t + 1);
        for (int i = 0; i < t; i++)
            pthread_create(&th[i], NULL, nap ? nap_worker : rec_worker, &sums[i]);
        if (nap) {
            pthread_barrier_wait(&started);
            printf("ready\n");
            fflush(stdout);
        }
        for (int i = 0; i < t; i++) {
            pthread_join(th[i], NULL);
            total += sums[i];
        }
        printf("%s threads %d calls %lu total %ld\n", mode, t, per_thread, total);
    } else if (strcmp(mode, "quit") == 0) {
        int t = argc > 2 ? atoi(argv[2]) : 4;
        pthread_t th[16];
        long total = 0;
        if (t > 16)
            t = 16;
        for (int i = 0; i < t; i++)
            pthread_create(&th[i], NULL, quit_worker, (void *)(intptr_t)(i + 1));
        for (int i = 0; i < t; i++) {
            void *ret;
            pthread_join(th[i], &ret);
            total += (long)ret;
        }
        printf("quit threads %d total %ld cleanups %d\n", t, total, cleanups);
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    return 0;
}
