/* execer [stage2|thread]: calls work() 5 times, then re-executes itself as "stage2", which calls
 * work() 7 times. With "thread" the exec is done by a second thread (the thread id changes). */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char *self;

__attribute__((noipa)) unsigned long work(unsigned long i) { return i * 3 + 1; }

static unsigned long loop(unsigned long n)
{
    unsigned long sum = 0;
    for (unsigned long i = 0; i < n; i++)
        sum += work(i);
    return sum;
}

static void *exec_from_thread(void *arg)
{
    (void)arg;
    execl(self, "execer", "stage2", (char *)NULL);
    return NULL;
}

int main(int argc, char **argv)
{
    self = argv[0];
    if (argc > 1 && strcmp(argv[1], "stage2") == 0) {
        printf("stage2 %lu\n", loop(7));
        return 0;
    }
    printf("stage1 %lu\n", loop(5));
    fflush(stdout);
    if (argc > 1 && strcmp(argv[1], "thread") == 0) {
        pthread_t th;
        pthread_create(&th, NULL, exec_from_thread, NULL);
        pthread_join(th, NULL);
        return 1; /* not reached */
    }
    execl(self, "execer", "stage2", (char *)NULL);
    return 1;
}
