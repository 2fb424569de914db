/* api_events MODE [ARGS]: known calls for the Python API tests (tests/test_api.py).
 *
 *   args              add8(1..8) (seven and eight are stack arguments), show(greeting), show(quoted),
 *                     use_buf(pattern, 64), scale(20) and answer(), each result printed
 *   calls N K [US]    step(i) for i < N, and marker() once, right after step(K); sleeps US
 *                     microseconds after each step when given (so a test can attach while it runs)
 *   mallocs           grab(size) for a few sizes: each calls malloc and prints size and pointer
 *
 * Every mode prints "start" first. The output depends only on the arguments, except the pointers
 * of "mallocs" (the tests compare those with the return values the tracer saw). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NOIPA __attribute__((noipa))

volatile unsigned long sink;
char greeting[] = "hello from api_events";
char quoted[] = "say \"hi\"\tnow\n\001";
unsigned char pattern[64];

/* the weights make the order of the arguments visible in the result */
NOIPA long add8(long a, long b, long c, long d, long e, long f, long g, long h)
{
    return a + 2 * b + 3 * c + 4 * d + 5 * e + 6 * f + 7 * g + 8 * h;
}

NOIPA size_t show(const char *s) { return strlen(s); }

NOIPA unsigned use_buf(const unsigned char *buf, int n)
{
    unsigned sum = 0;
    for (int i = 0; i < n; i++)
        sum = sum * 31 + buf[i];
    return sum;
}

NOIPA int scale(int x) { return x * 2; }

NOIPA int answer(void) { return (int)(sink & 0) + 7; }

NOIPA unsigned long step(unsigned long i) { return (i * 2654435761UL) >> 7; }

NOIPA void marker(void) { sink++; }

NOIPA void *grab(size_t size)
{
    void *p = malloc(size);
    sink += (unsigned long)p & 1;
    return p;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "args";
    printf("start\n");
    fflush(stdout);
    if (strcmp(mode, "args") == 0) {
        for (int i = 0; i < 64; i++)
            pattern[i] = (unsigned char)(i * 7 + 3);
        printf("add8 %ld\n", add8(1, 2, 3, 4, 5, 6, 7, 8));
        printf("show %zu\n", show(greeting));
        printf("show %zu\n", show(quoted));
        printf("use_buf %u\n", use_buf(pattern, 64));
        printf("scale %d\n", scale(20));
        printf("answer %d\n", answer());
    } else if (strcmp(mode, "calls") == 0) {
        unsigned long n = argc > 2 ? strtoul(argv[2], NULL, 0) : 100;
        unsigned long k = argc > 3 ? strtoul(argv[3], NULL, 0) : 0;
        unsigned long us = argc > 4 ? strtoul(argv[4], NULL, 0) : 0;
        unsigned long sum = 0;
        for (unsigned long i = 0; i < n; i++) {
            sum += step(i);
            if (i == k)
                marker();
            if (us)
                usleep(us);
        }
        printf("steps %lu sum %lx\n", n, sum);
    } else if (strcmp(mode, "mallocs") == 0) {
        static const size_t sizes[] = {100, 5000, 1 << 20, 3 << 20, 64};
        for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            void *p = grab(sizes[i]);
            printf("%zu %p\n", sizes[i], p);
            free(p);
        }
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    return 0;
}
