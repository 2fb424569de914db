/* plug_files: known opens through glibc's open, openat and fopen, for handlers/file_opens.py.
 * Usage: plug_files DIR. DIR must be an empty directory; the program creates files in it and
 * removes them again. Every path opened is printed on stdout, in order, one per line (through
 * write(2), so stdio's own buffer allocation does not open anything). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char buf[4096];

static void say(const char *path)
{
    size_t n = strlen(path);
    if (write(1, path, n) != (ssize_t)n || write(1, "\n", 1) != 1)
        _exit(1);
}

static const char *in(const char *dir, const char *name)
{
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    return buf;
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    const char *dir = argv[1];
    static const char odd[] = "we\"ird\tna\001" "7m\xc3\xa9";   /* escapes as strace prints them */

    say("/dev/null");
    int a = open("/dev/null", O_RDONLY | O_CLOEXEC);
    say(in(dir, "new"));
    int b = openat(AT_FDCWD, buf, O_WRONLY | O_CREAT | O_TRUNC, 0640);
    say("/nonexistent-utrace/missing");
    int c = open("/nonexistent-utrace/missing", O_RDONLY);
    say(dir);
    int d = open(dir, O_RDONLY | O_DIRECTORY);
    say("new");
    int e = openat(d, "new", O_RDWR | O_APPEND | O_NOFOLLOW);
    int f = openat(d, "new", O_WRONLY | O_CREAT | O_EXCL, 0600);   /* EEXIST */
    say(odd);
    int g = openat(d, odd, O_RDONLY | O_CREAT | O_NONBLOCK, 0);
    say("/etc/passwd");
    FILE *p = fopen("/etc/passwd", "re");
    say(in(dir, "missing"));
    FILE *q = fopen(buf, "r");                                      /* ENOENT */
    say(in(dir, "log"));
    FILE *r = fopen(buf, "w");
    if (a < 0 || b < 0 || c != -1 || d < 0 || e < 0 || f != -1 || g < 0 || !p || q || !r)
        return 1;
    fclose(p);
    fclose(r);
    unlink(buf);
    unlinkat(d, "new", 0);
    unlinkat(d, odd, 0);
    for (int fd = a; fd <= g; fd++)
        if (fd != c && fd != f)
            close(fd);
    return 0;
}
