/* api_stack: a known call chain for STACKTRACE (tests/test_handlers_builtin.py), built with
 * -O2 -fomit-frame-pointer -g: main -> outer -> middle -> leaf; leaf sorts with qsort (libc calls
 * the comparator cmp) and frees a buffer (libc:free called from leaf). Every call is followed by
 * more work, so none is a tail call and every frame stays on the stack. Prints one line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOIPA __attribute__((noipa))

volatile unsigned long sink;
char *volatile kept; /* the buffer escapes: malloc and free stay calls */

static NOIPA int cmp(const void *x, const void *y)
{
    int l = *(const int *)x, r = *(const int *)y;
    sink++;
    return (l > r) - (l < r);
}

NOIPA int leaf(int n)
{
    int values[6];
    for (int i = 0; i < 6; i++)
        values[i] = (n * 37 + i * 11) % 19;
    qsort(values, 6, sizeof values[0], cmp);
    kept = malloc(32 + (size_t)n);
    memset(kept, n, 32);
    sink += (unsigned long)kept[3];
    free(kept);
    return values[0] + values[5];
}

NOIPA int middle(int n)
{
    unsigned long x = (unsigned long)n * 3, y = sink + 5;
    int r = leaf(n + 1);
    return r + (int)(x ^ y);
}

NOIPA int outer(int n)
{
    int r = middle(n * 2);
    return r * 3 + 1;
}

int main(void)
{
    int r = outer(4);
    printf("stack done %d\n", r != 0);
    return 0;
}
