/* plug_latency: functions of known duration, for handlers/func_latency.py.
 * slow() sleeps 1.5 ms and is called 5 times; fast() returns at once and is called 100 times.
 * Usage: plug_latency [SLOW_CALLS [FAST_CALLS]] */
#include <stdlib.h>
#include <unistd.h>

__attribute__((noinline)) void slow(void)
{
    usleep(1500);
}

__attribute__((noinline)) int fast(int x)
{
    __asm__ volatile("" : "+r"(x));
    return x * 2 + 1;
}

int main(int argc, char **argv)
{
    int nslow = argc > 1 ? atoi(argv[1]) : 5;
    int nfast = argc > 2 ? atoi(argv[2]) : 100;
    int sum = 0;
    for (int i = 0; i < nslow; i++)
        slow();
    for (int i = 0; i < nfast; i++)
        sum += fast(i);
    return sum == nfast * nfast ? 0 : 1;
}
