/* The benchmark's target: main() calls hot(i) for i = 0 .. N-1 and prints a checksum.
 *
 * hot() stays a real call (noinline, noclone; the empty volatile asm keeps gcc from treating it as
 * pure), so a probe on it is hit exactly N times. The checksum lets bench/per_hit.py check that a
 * traced run computed the same result as an untraced one.
 *
 * Built by bench/per_hit.py: gcc -O2 -g -o loop loop.c
 */
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline, noclone)) unsigned long hot(unsigned long i)
{
    __asm__ volatile("");
    return i * 2654435761UL;
}

int main(int argc, char **argv)
{
    unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000;
    unsigned long sum = 0;

    for (unsigned long i = 0; i < n; i++)
        sum += hot(i);
    printf("%lu\n", sum);
    return 0;
}
