/* A library that dl_main opens with dlopen. Its constructor calls plugin_func once, so a probe
 * armed "before the library's constructors run" sees that call too. */
#include <stdio.h>

__attribute__((noinline)) int plugin_func(int x) { return x * 3 + 1; }

__attribute__((constructor)) static void plugin_init(void)
{
    volatile int r = plugin_func(100);
    (void)r;
}
