/* dl_main PLUGIN [wait]: dlopen PLUGIN, call plugin_func 3 times, dlclose, dlopen again, call it
 * 2 times. With "wait" it first reads a line from stdin, so a tracer can attach before dlopen. */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

static int use(const char *path, int calls)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return -1;
    }
    int (*fn)(int) = (int (*)(int))dlsym(h, "plugin_func");
    int sum = 0;
    for (int i = 0; i < calls; i++)
        sum += fn(i);
    dlclose(h);
    return sum;
}

int main(int argc, char **argv)
{
    if (argc > 2 && strcmp(argv[2], "wait") == 0) {
        char line[16];
        printf("ready\n");
        fflush(stdout);
        if (!fgets(line, sizeof line, stdin))
            return 2;
    }
    int a = use(argv[1], 3);
    int b = use(argv[1], 2);
    printf("sums %d %d\n", a, b);
    return a < 0 || b < 0;
}
