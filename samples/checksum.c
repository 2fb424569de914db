/* checksum N [DELAY_US]: calls work() N times, allocating on the way, and prints a checksum of the
 * results. With DELAY_US it sleeps between calls, so a test can attach to it while it runs.
 * The output depends only on N: a traced run must print exactly what an untraced run prints. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

__attribute__((noinline)) unsigned long work(unsigned long i, unsigned long salt)
{
    unsigned long x = i * 2654435761UL ^ salt;
    x ^= x >> 13;
    x *= 0x5bd1e995UL;
    return x ^ (x >> 15);
}

__attribute__((noinline)) int never_called(int x) { return x + 1; }

int main(int argc, char **argv)
{
    unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 0) : 1000;
    unsigned long delay = argc > 2 ? strtoul(argv[2], NULL, 0) : 0;
    unsigned long sum = 0;
    printf("start\n");
    fflush(stdout);
    for (unsigned long i = 0; i < n; i++) {
        char *p = malloc(16 + (i % 64));
        memset(p, (int)(i | 1), 16);
        p[i % 16] = 0;
        sum += strlen(p); /* an IFUNC in glibc */
        sum += work(i, (unsigned char)p[3]);
        free(p);
        if (delay)
            usleep(delay);
    }
    printf("checksum %lx\n", sum);
    return (int)(sum & 7) == 8 ? 1 : 0;
}
