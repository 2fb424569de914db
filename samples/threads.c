/* threads T N: T threads each call tick() N times; prints the total, which must equal T*N and a
 * checksum that does not depend on scheduling. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static unsigned long n_calls;

__attribute__((noinline)) unsigned long tick(unsigned long i)
{
    return (i * 31) ^ (i >> 3);
}

static void *worker(void *arg)
{
    unsigned long sum = 0;
    for (unsigned long i = 0; i < n_calls; i++)
        sum += tick(i);
    *(unsigned long *)arg = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    int t = argc > 1 ? atoi(argv[1]) : 4;
    n_calls = argc > 2 ? strtoul(argv[2], NULL, 0) : 1000;
    pthread_t th[64];
    unsigned long sums[64];
    if (t > 64)
        t = 64;
    for (int i = 0; i < t; i++)
        pthread_create(&th[i], NULL, worker, &sums[i]);
    unsigned long total = 0;
    for (int i = 0; i < t; i++) {
        pthread_join(th[i], NULL);
        total += sums[i];
    }
    printf("calls %lu checksum %lx\n", (unsigned long)t * n_calls, total);
    return 0;
}
