/* unwind_deep [MODE]: known call stacks for the unwinder tests (built with -O2 -fomit-frame-pointer).
 *
 *   qsort  (default)  main -> a -> b -> c -> leaf -> qsort (glibc: no frame pointers)
 *                       -> compare -> target -> consume
 *   signal            main -> a -> b -> c -> leaf -> raise(SIGUSR1) -> [signal frame]
 *                       -> on_usr1 -> target -> consume
 *   nocfi             main -> a -> b -> c -> leaf -> nocfi_frame (assembly: a frame pointer, no CFI)
 *                       -> target -> consume
 *   vdso              main -> a -> b -> c -> leaf -> clock_gettime (the vDSO's own .eh_frame)
 *   noreturn          main -> a -> b -> c -> leaf -> fatal_path -> fatal (noreturn) -> target -> consume
 *                       (exits from fatal)
 *
 * The tests stop the program at consume (or target, or the PLT) and compare the unwinder's frames with
 * gdb's. b keeps values in callee-saved registers across its call (so the unwinder must restore them),
 * c has a variable-length array (so its CFA is rbp-based: it needs the rbp that b saved). Every call
 * is followed by more work, so no call becomes a tail call and every frame stays on the stack.
 * Prints one line; the output does not depend on tracing. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NOIPA __attribute__((noipa))

volatile unsigned long sink;

NOIPA void consume(volatile int *buf, int n)
{
    for (int i = 0; i < n; i++)
        sink += (unsigned long)buf[i];
}

NOIPA int target(int v)
{
    volatile int buf[16];
    for (int i = 0; i < 16; i++)
        buf[i] = v + i;
    consume(buf, 16);
    return buf[v & 15];
}

static NOIPA int compare(const void *x, const void *y)
{
    int l = *(const int *)x, r = *(const int *)y;
    sink += (unsigned long)target(l);
    return (l > r) - (l < r);
}

static NOIPA void on_usr1(int sig)
{
    sink += (unsigned long)target(sig);
}

/* fatal_path ends with its call to the noreturn fatal: the return address is the first byte after
 * fatal_path (padding, or the next function), so the caller's CFI must be looked up at pc-1. */
NOIPA __attribute__((noreturn)) void fatal(int v)
{
    sink += (unsigned long)target(v);
    exit(0);
}

NOIPA void fatal_path(int n)
{
    sink += (unsigned long)n;
    fatal(n);
}

/* A function without CFI that keeps a frame pointer: nocfi_frame(fn, arg) calls fn(arg). */
int nocfi_frame(int (*fn)(int), int arg);
__asm__(".text\n.globl nocfi_frame\n.type nocfi_frame,@function\nnocfi_frame:\n"
        "  push %rbp\n  mov %rsp, %rbp\n  mov %rdi, %rax\n  mov %esi, %edi\n  call *%rax\n"
        "  add $1, %eax\n  pop %rbp\n  ret\n.size nocfi_frame, .-nocfi_frame\n");

NOIPA int leaf(const char *mode, int n)
{
    int values[8];
    for (int i = 0; i < 8; i++)
        values[i] = (n * 37 + i * 11) % 19;
    if (strcmp(mode, "signal") == 0) {
        signal(SIGUSR1, on_usr1);
        raise(SIGUSR1);
    } else if (strcmp(mode, "nocfi") == 0) {
        values[0] += nocfi_frame(target, n);
    } else if (strcmp(mode, "noreturn") == 0) {
        fatal_path(n);
    } else if (strcmp(mode, "vdso") == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        values[0] += (int)(ts.tv_nsec & 1);
    } else {
        qsort(values, 8, sizeof values[0], compare);
    }
    return values[0] + values[7];
}

NOIPA int c(const char *mode, int n)
{
    volatile char scratch[n + 16]; /* a VLA: c's CFA is defined by rbp */
    memset((char *)scratch, n, sizeof scratch);
    int r = leaf(mode, n + scratch[3]);
    return r + scratch[n];
}

NOIPA int b(const char *mode, int n)
{
    unsigned long x = (unsigned long)n * 3, y = (unsigned long)n ^ 5, z = sink + 7, w = x * y;
    int r = c(mode, n + 1); /* x, y, z, w live across the call: callee-saved registers */
    return r + (int)(x * y + z - w + (x ^ z));
}

NOIPA int a(const char *mode, int n)
{
    int r = b(mode, n * 2);
    return r * 3 + 1;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "qsort";
    int r = a(mode, 5);
    printf("%s done %d\n", mode, r != 0);
    return 0;
}
