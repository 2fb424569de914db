/* threads T N [SLEEP_US [wait|until]]: T threads each call tick() N times (sleeping SLEEP_US after
 * each call when given); prints the total number of calls and a checksum that does not depend on
 * scheduling. With "wait" the threads are created first and start calling only after a line is
 * read from stdin, so a tracer can attach to all of them before the first call. With "until" they
 * call tick() until a line is read from stdin, and check every result against the same computation
 * done inline: the program prints "consistent" when every traced call returned the right value. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static unsigned long n_calls, sleep_us;
static volatile int until_stdin, stop;
static volatile unsigned long mismatches;
static pthread_barrier_t start;

__attribute__((noinline)) unsigned long tick(unsigned long i)
{
    return (i * 31) ^ (i >> 3);
}

static void *worker(void *arg)
{
    unsigned long sum = 0;
    pthread_barrier_wait(&start);
    for (unsigned long i = 0; until_stdin ? !stop : i < n_calls; i++) {
        unsigned long r = tick(i);
        if (r != ((i * 31) ^ (i >> 3)))
            mismatches++;
        sum += r;
        if (sleep_us)
            usleep(sleep_us);
    }
    *(unsigned long *)arg = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    int t = argc > 1 ? atoi(argv[1]) : 4;
    n_calls = argc > 2 ? strtoul(argv[2], NULL, 0) : 1000;
    sleep_us = argc > 3 ? strtoul(argv[3], NULL, 0) : 0;
    int wait = argc > 4 && strcmp(argv[4], "wait") == 0;
    until_stdin = argc > 4 && strcmp(argv[4], "until") == 0;
    pthread_t th[64];
    unsigned long sums[64];
    if (t > 64)
        t = 64;
    pthread_barrier_init(&start, NULL, t + 1);
    for (int i = 0; i < t; i++)
        pthread_create(&th[i], NULL, worker, &sums[i]);
    if (wait) {
        char line[16];
        printf("ready\n");
        fflush(stdout);
        if (!fgets(line, sizeof line, stdin))
            return 2;
    }
    pthread_barrier_wait(&start);
    if (until_stdin) {
        char line[16];
        printf("running\n");
        fflush(stdout);
        if (!fgets(line, sizeof line, stdin))
            return 2;
        stop = 1;
    }
    unsigned long total = 0;
    for (int i = 0; i < t; i++) {
        pthread_join(th[i], NULL);
        total += sums[i];
    }
    if (until_stdin) {
        printf(mismatches ? "MISMATCH %lu\n" : "consistent\n", mismatches);
        return mismatches != 0;
    }
    printf("calls %lu checksum %lx\n", (unsigned long)t * n_calls, total);
    return 0;
}
