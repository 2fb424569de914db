/* plug_leaky: a known set of heap blocks left live at exit, for handlers/malloc_leaks.py.
 *
 * Live at exit, from three distinct allocation stacks:
 *   1 block of 4000 bytes   malloc(10) grown by realloc() in grow()
 *   3 blocks of 100 bytes   malloc() in leak_a()
 *   2 blocks of 7 bytes     calloc(1, 7) in leak_b()
 * Everything else is freed: temp() blocks, a realloc(NULL, n) block, a block shrunk to nothing by
 * realloc(p, 0), leak_a() blocks freed again; free(NULL) is called too. The program writes one line
 * with write(2) (stdio would allocate a buffer it never frees) and exits with status 3.
 *
 * "plug_leaky serve" is for tracers that attach: it writes "ready", then runs the sequence once per
 * line read from stdin, calling checkpoint() and writing "done" after each; it exits at EOF. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *volatile keep[16];
static void *volatile nothing;  /* NULL that gcc cannot see: realloc(nothing, n) stays a realloc */

__attribute__((noinline)) void *leak_a(void)
{
    char *p = malloc(100);
    memset(p, 'a', 100);
    return p;
}

__attribute__((noinline)) void *leak_b(void)
{
    return calloc(1, 7);
}

__attribute__((noinline)) void *temp(size_t n)
{
    return malloc(n);
}

__attribute__((noinline)) void *grow(void)
{
    char *p = malloc(10);
    strcpy(p, "grow");
    return realloc(p, 4000);
}

__attribute__((noinline)) void checkpoint(void)
{
    __asm__ volatile("");
}

static void say(const char *msg)
{
    size_t len = strlen(msg);
    if (write(1, msg, len) != (ssize_t)len)
        _exit(1);
}

static void sequence(void)
{
    int n = 0;
    for (int i = 0; i < 3; i++)
        keep[n++] = leak_a();
    for (int i = 0; i < 2; i++)
        keep[n++] = leak_b();
    keep[n++] = grow();
    for (int i = 0; i < 50; i++)
        free(temp(i + 1));
    free(leak_a());                 /* same stack as the leaks, but freed */
    void *r = realloc(nothing, 64); /* realloc as malloc (glibc tail-calls malloc) */
    free(r);
    r = malloc(33);
    r = realloc(r, 0);              /* realloc as free: glibc returns NULL */
    free(r);
    free(NULL);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "serve") == 0) {
        char c;
        say("ready\n");
        while (read(0, &c, 1) == 1) {
            if (c != '\n')
                continue;
            sequence();
            checkpoint();
            say("done\n");
        }
        return 3;
    }
    sequence();
    say("plug_leaky: done\n");
    return 3;
}
