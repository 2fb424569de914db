/* sys_files: file system calls whose decoding tests/test_syscall_decode.py compares with strace.
 * Usage: sys_files DIR. DIR holds "data" (bytes chosen by the test: escapes, NULs, high bytes) and
 * nothing else; everything the program creates there it removes again. Calls go through glibc where
 * glibc makes the call itself, through syscall(2) for the ones glibc reroutes (fstat -> newfstatat). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

static char path[4096];

static const char *in_dir(const char *dir, const char *name)
{
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return path;
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    const char *dir = argv[1];
    char buf[4096], small[8];
    struct stat st;
    struct statx stx;

    int fd = openat(AT_FDCWD, in_dir(dir, "data"), O_RDONLY | O_CLOEXEC);
    read(fd, buf, sizeof buf);                 /* the whole file: escapes, truncation at -s */
    read(fd, buf, sizeof buf);                 /* at EOF: "" */
    pread64(fd, small, sizeof small, 3);
    lseek(fd, 1, SEEK_SET);
    struct iovec rv[3] = {{small, 4}, {buf, 2}, {buf + 100, 50}};
    readv(fd, rv, 3);
    syscall(SYS_fstat, fd, &st);
    fstat(fd, &st);                            /* glibc: newfstatat(fd, "", ..., AT_EMPTY_PATH) */
    stat(dir, &st);
    lstat(in_dir(dir, "missing"), &st);
    syscall(SYS_stat, "/dev/null", &st);       /* a character device: st_rdev instead of st_size */
    syscall(SYS_lstat, in_dir(dir, "data"), &st);
    statx(AT_FDCWD, in_dir(dir, "data"), AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &stx);
    statx(fd, "", AT_EMPTY_PATH, STATX_ALL, &stx);
    syscall(SYS_read, fd, (void *)8, 16);      /* a bad pointer: EFAULT, printed as an address */
    fcntl(fd, F_GETFL);
    fcntl(fd, F_GETFD);
    fcntl(fd, F_SETFD, 0);
    fcntl(fd, F_GETFD);
    int fd2 = fcntl(fd, F_DUPFD_CLOEXEC, 20);
    close(fd2);
    close(fd);
    access(in_dir(dir, "data"), R_OK | W_OK);
    access(in_dir(dir, "missing"), F_OK);
    faccessat(AT_FDCWD, in_dir(dir, "data"), X_OK, AT_EACCESS);

    int out = openat(AT_FDCWD, in_dir(dir, "out"), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0640);
    write(out, "The quick brown fox jumps over the lazy dog\n", 44);
    struct iovec wv[2] = {{"line one\n", 9}, {"\0\1\2\3\377\t\"\\", 8}};
    writev(out, wv, 2);
    pwrite64(out, "x", 1, 0);
    fcntl(out, F_SETFL, O_APPEND | O_NONBLOCK);
    fcntl(out, F_GETFL);
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10};
    fcntl(out, F_SETLK, &fl);
    fl.l_type = F_UNLCK;
    fcntl(out, F_SETLK, &fl);
    flock(out, LOCK_EX | LOCK_NB);
    ftruncate(out, 5);
    fsync(out);
    fchmod(out, 0600);
    close(out);
    umask(027);
    umask(022);

    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    mkdirat(dfd, "sub", 0755);
    symlinkat("data", dfd, "link");
    readlinkat(dfd, "link", buf, sizeof buf);
    readlink(in_dir(dir, "link"), small, sizeof small);  /* truncated to the buffer */
    renameat(dfd, "link", dfd, "link2");
    unlinkat(dfd, "link2", 0);
    linkat(dfd, "data", dfd, "hard", 0);
    unlinkat(dfd, "hard", 0);
    fchdir(dfd);
    getcwd(buf, sizeof buf);
    chdir("sub");
    chdir("..");
    unlinkat(dfd, "sub", AT_REMOVEDIR);
    unlinkat(dfd, "out", 0);
    syscall(SYS_getdents64, dfd, buf, sizeof buf);
    syscall(SYS_getdents64, dfd, buf, sizeof buf);
    struct timespec times[2] = {{1, 2}, {3, UTIME_OMIT}};
    utimensat(dfd, "data", times, AT_SYMLINK_NOFOLLOW);
    close(dfd);

    int p[2];
    pipe2(p, O_CLOEXEC | O_NONBLOCK);
    syscall(SYS_pipe, p + 0);
    dup3(p[0], 30, O_CLOEXEC);
    dup2(p[1], 31);
    dup(31);
    write(31, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ", 46);
    read(30, buf, 100);
    close(30);
    close(-1);
    syscall(SYS_open, in_dir(dir, "this/path/is/rather/long/to/see/that/paths/are/not/cut/at/the/string/size"),
            O_RDONLY);
    syscall(SYS_creat, in_dir(dir, "missing/x"), 0644);
    return 0;
}
