/* The benchmark's target: main() calls hot(i) for i = 0 .. N-1 and prints a checksum.
 *
 *     ./loop N          hot(i) N times: sum of hot(i)
 *     ./loop N buf      hot_buf(buf) N times on a 64-byte buffer: before call i, buf[i % 64] = i % 256;
 *                       prints the sum of what hot_buf returned (the sum of the buffer's 64 bytes)
 *
 * hot() and hot_buf() stay real calls (noinline, noclone; the empty volatile asm keeps gcc from
 * treating them as pure), so a probe on one is hit exactly N times. The checksum lets
 * bench/per_hit.py check that a traced run computed the same result as an untraced one. hot_buf's
 * first argument points to the 64 bytes that GETDATA:arg1:64 (and gdb's x/64xb $rdi) dump.
 *
 * Built by bench/per_hit.py: gcc -O2 -g -o loop loop.c
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUF_LEN 64

__attribute__((noinline, noclone)) unsigned long hot(unsigned long i)
{
    __asm__ volatile("");
    return i * 2654435761UL;
}

__attribute__((noinline, noclone)) unsigned long hot_buf(const unsigned char *p)
{
    unsigned long sum = 0;

    __asm__ volatile("" ::: "memory");
    for (int k = 0; k < BUF_LEN; k++)
        sum += p[k];
    return sum;
}

int main(int argc, char **argv)
{
    unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000;
    unsigned long sum = 0;

    if (argc > 2 && strcmp(argv[2], "buf") == 0) {
        unsigned char buf[BUF_LEN];

        for (int k = 0; k < BUF_LEN; k++)
            buf[k] = (unsigned char)k;
        for (unsigned long i = 0; i < n; i++) {
            buf[i % BUF_LEN] = (unsigned char)i;
            sum += hot_buf(buf);
        }
    } else {
        for (unsigned long i = 0; i < n; i++)
            sum += hot(i);
    }
    printf("%lu\n", sum);
    return 0;
}
