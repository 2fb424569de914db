/* The probe definition language's fetch types, read from known values (tests/test_probe_lang.py).
 *
 * Globals of every shape a FETCHARG can reach (an int, bytes for the u/s/x widths, a struct with a nested
 * pointer and char* strings, a double, an int array, a bitfield struct, a char* array, function pointers),
 * and functions called with known arguments: ints, doubles and a float (xmm registers), eight integer
 * arguments (the 7th and 8th on the stack), a buffer filled in place (read at return), and a loop of
 * calls with known values for the filters.
 */
#include <stddef.h>
#include <string.h>

struct inner {
    int id;
    const char *label;
};

struct outer {
    long tag;               /* +0  */
    struct inner *child;    /* +8  */
    const char *name;       /* +16 */
    double ratio;           /* +24 */
};

struct flags {
    unsigned int a : 3;     /* bits 0-2   */
    unsigned int b : 5;     /* bits 3-7   */
    unsigned int c : 12;    /* bits 8-19  */
    unsigned int d : 1;     /* bit 20     */
};

int take_ints(int a, unsigned int b, long c);

int g_int = -42;
unsigned char g_bytes[8] = {0xff, 0xff, 0x00, 0x80, 0x78, 0x56, 0x34, 0x12};
struct inner g_inner = {7, "inner-label"};
struct outer g_outer = {0x1122334455667788L, &g_inner, "outer-name", 2.5};
double g_double = 3.140625;
float g_float = -0.75f;
int g_array[5] = {10, 20, -30, 40, 50};
int *g_array_mid = &g_array[2];
struct flags g_flags = {5, 19, 1234, 1};
const char *g_strings[3] = {"alpha", "beta", "gamma"};
const char *g_null = NULL;
int (*g_fnptr)(int, unsigned int, long) = take_ints;
void *g_fnptr_mid = (char *)take_ints + 4;
char g_buf[16] = "empty";

__attribute__((noinline)) int take_ints(int a, unsigned int b, long c)
{
    __asm__ volatile("" ::: "memory");
    return a * 2 + (int)(b & 1) + (int)(c & 0);
}

__attribute__((noinline)) double take_doubles(double x, float y, double z)
{
    __asm__ volatile("" ::: "memory");
    return x + y + z;
}

__attribute__((noinline)) long take_eight(long a1, long a2, long a3, long a4, long a5, long a6, long a7,
                                          long a8)
{
    __asm__ volatile("" ::: "memory");
    return a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8;
}

__attribute__((noinline)) int use_outer(struct outer *o)
{
    __asm__ volatile("" ::: "memory");
    return o == NULL ? -1 : o->child->id;
}

__attribute__((noinline)) int fill(char *buf, int n)
{
    __asm__ volatile("" ::: "memory");
    strncpy(buf, "filled", (size_t)n);
    return (int)strlen(buf);
}

__attribute__((noinline)) int classify(int v, unsigned int flags, const char *tag)
{
    __asm__ volatile("" ::: "memory");
    return v + (int)flags + (tag[0] == 's');
}

int main(void)
{
    long sum = 0;
    sum += take_ints(-5, 4000000000u, 0x123456789L);
    sum += (long)take_doubles(2.5, 1.5f, -0.125);
    sum += take_eight(11, 22, 33, 44, 55, 66, 77, 88);
    sum += use_outer(&g_outer);
    sum += use_outer(NULL);
    sum += fill(g_buf, (int)sizeof g_buf);
    for (int i = 0; i < 10; i++)
        sum += classify(i, (i % 2) ? 0x41u : 0x1u, i < 5 ? "small" : "big");
    return sum == 0;  /* 0: the usual outcome; the value only keeps the calls */
}
