/* sys_proc: memory, process, signal, terminal and block-device system calls whose decoding
 * tests/test_syscall_decode.py compares with strace. Usage: sys_proc. Needs no privileges; the block
 * and loop ioctls fail with EACCES without root and are then compared as failures. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/futex.h>
#include <linux/loop.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t got;
static void on_signal(int sig) { got = sig; }

int main(void)
{
    /* memory */
    char *p = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    mprotect(p, 4096, PROT_NONE);
    mprotect(p + 4096, 4096, PROT_READ | PROT_EXEC);
    madvise(p, 3 * 4096, MADV_DONTNEED);
    p = mremap(p, 3 * 4096, 4 * 4096, MREMAP_MAYMOVE);
    msync(p, 4096, MS_ASYNC);
    munmap(p, 4 * 4096);
    mmap((void *)0x10000, 4096, PROT_READ, MAP_SHARED | MAP_FIXED_NOREPLACE | MAP_ANONYMOUS, -1, 0);
    void *brk0 = sbrk(0);
    (void)brk0;

    /* signals */
    struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGTERM);
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sa.sa_flags = 0;
    sigaction(SIGPIPE, &sa, NULL);
    struct sigaction old;
    sigaction(SIGUSR1, NULL, &old);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    sigaddset(&set, SIGRTMIN + 3);
    sigprocmask(SIG_BLOCK, &set, NULL);
    sigset_t oldset;
    sigprocmask(SIG_UNBLOCK, &set, &oldset);
    sigfillset(&set);
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &set, &oldset, 8);
    sigemptyset(&set);
    sigprocmask(SIG_SETMASK, &set, NULL);
    kill(getpid(), SIGUSR1);
    syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), SIGUSR1);
    kill(getpid(), 0);
    stack_t ss = {.ss_sp = malloc(SIGSTKSZ), .ss_size = SIGSTKSZ, .ss_flags = 0};
    stack_t oss;
    sigaltstack(&ss, &oss);
    syscall(SYS_rt_sigpending, &set, 8);

    /* processes */
    pid_t child = fork();
    if (child == 0)
        _exit(3);
    int status;
    waitpid(child, &status, 0);
    child = fork();
    if (child == 0) {
        pause();
        _exit(0);
    }
    kill(child, SIGKILL);
    wait4(child, &status, 0, NULL);
    waitpid(-1, &status, WNOHANG);
    getppid();
    getuid();
    geteuid();
    umask(022);
    prctl(PR_SET_NAME, "sys_proc-test");
    char name[16];
    prctl(PR_GET_NAME, name);
    prctl(PR_SET_DUMPABLE, 1);
    prctl(PR_GET_DUMPABLE);
    unsigned long fs;
    syscall(SYS_arch_prctl, 0x1003 /* ARCH_GET_FS */, &fs);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    syscall(SYS_getrlimit, RLIMIT_CORE, &rl);
    setrlimit(RLIMIT_CORE, &rl);
    prlimit(0, RLIMIT_DATA, NULL, &rl);
    struct utsname un;
    uname(&un);
    struct timespec ts = {0, 1000}, res;
    nanosleep(&ts, NULL);
    clock_getres(CLOCK_MONOTONIC, &res);
    syscall(SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, &ts, &res);
    int word = 0;
    syscall(SYS_futex, &word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    ts.tv_nsec = 1;
    syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 1, &ts, NULL, 0);  /* EAGAIN: word is not 1 */
    syscall(SYS_futex, &word, FUTEX_WAIT_BITSET | FUTEX_CLOCK_REALTIME, 1, NULL, NULL, FUTEX_BITSET_MATCH_ANY);
    sched_yield();

    /* a terminal */
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    unlockpt(m);
    int t = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY);
    struct termios tio;
    tcgetattr(t, &tio);
    cfmakeraw(&tio);
    tcsetattr(t, TCSADRAIN, &tio);
    tcgetattr(t, &tio);
    struct winsize ws = {24, 80, 0, 0};
    ioctl(t, TIOCSWINSZ, &ws);
    ioctl(t, TIOCGWINSZ, &ws);
    write(m, "xy", 2);
    /* the pty moves data to the other side asynchronously: wait for it, or FIONREAD may say 0 */
    struct pollfd ready = {t, POLLIN, 0};
    poll(&ready, 1, 2000);
    int n;
    ioctl(t, FIONREAD, &n);
    n = 1;
    ioctl(t, FIONBIO, &n);
    tcflush(t, TCIFLUSH);
    ioctl(t, TIOCNOTTY);
    ioctl(m, TCGETS, (void *)16);
    ioctl(0x7fff, TCGETS, &tio);
    ioctl(t, _IOR('Z', 0x42, int), &n);

    /* block and loop devices */
    int lc = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
    ioctl(lc, LOOP_CTL_GET_FREE);
    int lo = open("/dev/loop7", O_RDONLY | O_CLOEXEC);
    unsigned long long size64;
    ioctl(lo, BLKGETSIZE64, &size64);
    int ssz;
    ioctl(lo, BLKSSZGET, &ssz);
    ioctl(lo, BLKROGET, &ssz);
    struct loop_info64 li;
    ioctl(lo, LOOP_GET_STATUS64, &li);
    memset(&li, 0, sizeof li);
    strcpy((char *)li.lo_file_name, "/tmp/image");
    li.lo_flags = LO_FLAGS_AUTOCLEAR;
    ioctl(lo, LOOP_SET_STATUS64, &li);
    ioctl(lo, LOOP_CLR_FD);
    ioctl(lo, BLKRRPART);
    return 0;
}
