/* sys_i386: system calls through the i386 ABI (int $0x80) from a 64-bit program, between ordinary
 * ones (tests/test_systrace.py). Built -no-pie: int $0x80 passes 32-bit pointers, so the data must lie
 * below 4 GiB. Prints what each call returned; a traced run must print what an untraced one does. */
#include <stdio.h>
#include <unistd.h>

static char msg[] = "int80 write\n";
static char path[] = "/nonexistent/utrace";
static char statbuf[128];

static long int80(long nr, long a, long b, long c)
{
    long ret;
    asm volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
    return ret;
}

int main(void)
{
    long pid = int80(20, 0, 0, 0);                   /* i386 getpid */
    long wrote = int80(4, 1, (long)msg, sizeof msg - 1); /* i386 write */
    long opened = int80(5, (long)path, 0, 0);        /* i386 open: -ENOENT */
    long sought = int80(19, -1, 0, 0);               /* i386 lseek(-1, ...): -EBADF (a signed fd) */
    long stated = int80(197, 99, (long)statbuf, 0);  /* i386 fstat64: a struct, shown raw; -EBADF */
    printf("getpid %s write %ld open %ld lseek %ld fstat64 %ld\n", pid == getpid() ? "same" : "DIFFERENT",
           wrote, opened, sought, stated);
    return 0;
}
