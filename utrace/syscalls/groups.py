"""strace's syscall classes (``-e trace=%file``) and the parser of syscall sets.

The classes are strace's (``src/linux/x86_64/syscallent.h`` and ``syscallent-common.h``: TD is
%desc, TF %file, TN %network, TP %process, TS %signal, TM %memory, TI %ipc, TC %creds, TCL %clock,
TST/TLST/TFST/TSTA the %stat family, TSF/TFSF/TSFA the %statfs family, PU %pure), transcribed by
name; calls newer than strace's table (setxattrat..file_setattr, listns) are classed like their
siblings.
"""

from __future__ import annotations

import difflib
import re
from typing import Dict, FrozenSet, Iterable, Set

from ..errors import UsageError
from ._table import SYSCALL_NAMES

SYSCALL_NUMBERS: Dict[str, int] = {name: nr for nr, name in SYSCALL_NAMES.items()}


def _names(text: str) -> FrozenSet[str]:
    names = frozenset(text.split())
    unknown = names - SYSCALL_NUMBERS.keys()
    if unknown:
        raise AssertionError(f"not x86-64 system calls: {sorted(unknown)}")
    return names


_FILE = _names("""
    open stat lstat access truncate getcwd chdir rename mkdir rmdir creat link unlink symlink readlink
    chmod chown lchown uselib statfs pivot_root chroot acct mount umount2 swapon swapoff quotactl
    setxattr lsetxattr getxattr lgetxattr listxattr llistxattr removexattr lremovexattr utime mknod
    utimes execve inotify_add_watch openat mkdirat mknodat fchownat futimesat newfstatat unlinkat
    renameat linkat symlinkat readlinkat fchmodat faccessat utimensat fanotify_mark name_to_handle_at
    renameat2 execveat statx open_tree move_mount fsconfig fspick openat2 faccessat2 mount_setattr
    fchmodat2 setxattrat getxattrat listxattrat removexattrat open_tree_attr file_getattr file_setattr
""")
_DESC = _names("""
    read write open close fstat poll lseek mmap ioctl pread64 pwrite64 readv writev pipe select dup dup2
    sendfile fcntl flock fsync fdatasync ftruncate getdents fchdir creat fchmod fchown fstatfs readahead
    fsetxattr fgetxattr flistxattr fremovexattr epoll_create getdents64 fadvise64 epoll_wait epoll_ctl
    mq_open mq_timedsend mq_timedreceive mq_notify mq_getsetattr inotify_init inotify_add_watch
    inotify_rm_watch openat mkdirat mknodat fchownat futimesat newfstatat unlinkat renameat linkat
    symlinkat readlinkat fchmodat faccessat pselect6 ppoll splice tee sync_file_range vmsplice utimensat
    epoll_pwait signalfd timerfd_create eventfd fallocate timerfd_settime timerfd_gettime signalfd4
    eventfd2 epoll_create1 dup3 pipe2 inotify_init1 preadv pwritev perf_event_open fanotify_init
    fanotify_mark name_to_handle_at open_by_handle_at syncfs setns finit_module renameat2 memfd_create
    kexec_file_load bpf execveat userfaultfd copy_file_range preadv2 pwritev2 statx pidfd_send_signal
    io_uring_setup io_uring_enter io_uring_register open_tree move_mount fsopen fsconfig fsmount fspick
    pidfd_open openat2 pidfd_getfd faccessat2 process_madvise epoll_pwait2 mount_setattr quotactl_fd
    landlock_create_ruleset landlock_add_rule landlock_restrict_self memfd_secret process_mrelease
    cachestat fchmodat2 setxattrat getxattrat listxattrat removexattrat open_tree_attr file_getattr
    file_setattr
""")
_NETWORK = _names("""
    sendfile socket connect accept sendto recvfrom sendmsg recvmsg shutdown bind listen getsockname
    getpeername socketpair setsockopt getsockopt getpmsg putpmsg accept4 recvmmsg sendmmsg
""")
_PROCESS = _names("""
    clone fork vfork execve exit wait4 kill rt_sigqueueinfo tkill exit_group tgkill waitid
    rt_tgsigqueueinfo execveat pidfd_send_signal clone3
""")
_SIGNAL = _names("""
    rt_sigaction rt_sigprocmask rt_sigreturn pause kill rt_sigpending rt_sigtimedwait rt_sigqueueinfo
    rt_sigsuspend sigaltstack tkill tgkill signalfd signalfd4 rt_tgsigqueueinfo pidfd_send_signal
    io_uring_enter
""")
_MEMORY = _names("""
    mmap mprotect munmap brk mremap msync mincore madvise shmat shmdt mlock munlock mlockall munlockall
    io_setup io_destroy remap_file_pages mbind set_mempolicy get_mempolicy migrate_pages move_pages
    mlock2 pkey_mprotect io_uring_register set_mempolicy_home_node map_shadow_stack mseal
""")

GROUPS: Dict[str, FrozenSet[str]] = {
    "%file": _FILE,
    "%desc": _DESC,
    "%network": _NETWORK,
    "%net": _NETWORK,
    "%process": _PROCESS,
    "%signal": _SIGNAL,
    "%memory": _MEMORY,
    "%ipc": _names("shmget shmat shmctl semget semop semctl shmdt msgget msgsnd msgrcv msgctl semtimedop"),
    "%creds": _names("""
        getuid getgid setuid setgid geteuid getegid setreuid setregid getgroups setgroups setresuid
        getresuid setresgid getresgid setfsuid setfsgid capget capset prctl
    """),
    "%clock": _names(
        "gettimeofday adjtimex settimeofday time clock_settime clock_gettime clock_getres clock_adjtime"
    ),
    "%stat": _names("stat"),
    "%lstat": _names("lstat"),
    "%fstat": _names("fstat newfstatat statx"),
    "%%stat": _names("stat fstat lstat newfstatat statx"),
    "%statfs": _names("statfs"),
    "%fstatfs": _names("fstatfs"),
    "%%statfs": _names("ustat statfs fstatfs"),
    "%pure": _names("getpid getuid getgid geteuid getegid getppid getpgrp gettid"),
}

ALL = frozenset(SYSCALL_NAMES)


def _element(token: str) -> FrozenSet[int]:
    """The syscall numbers one element of a set names: a name, %class, /regex, number, all or none."""
    if token == "all":
        return ALL
    if token == "none":
        return frozenset()
    if token.startswith("%"):
        if token not in GROUPS:
            raise UsageError(f"unknown system call class {token!r}; valid classes: {', '.join(GROUPS)}")
        return frozenset(SYSCALL_NUMBERS[name] for name in GROUPS[token])
    if token.startswith("/"):
        try:
            pattern = re.compile(token[1:])
        except re.error as err:
            raise UsageError(f"invalid system call regular expression {token!r}: {err}") from err
        return frozenset(nr for nr, name in SYSCALL_NAMES.items() if pattern.search(name))
    if token.isdigit():
        return frozenset((int(token),))
    if token in SYSCALL_NUMBERS:
        return frozenset((SYSCALL_NUMBERS[token],))
    raise UsageError(_unknown_name(token))


def _unknown_name(token: str) -> str:
    close = difflib.get_close_matches(token, SYSCALL_NUMBERS, n=4, cutoff=0.6)
    hint = f"; did you mean: {', '.join(close)}?" if close else ""
    classes = ", ".join(GROUPS)
    return (
        f"unknown system call {token!r}{hint} (valid: x86-64 system call names, {classes},"
        " /REGEX, numbers, all, none)"
    )


def parse_syscall_set(spec: str) -> FrozenSet[int]:
    """strace's ``-e trace=`` syntax: ``open,read,%file,!write``.

    A leading ``!`` negates the whole set (``!open,close``: everything but open and close), as strace
    does; ``!name`` after the first element removes that element. ``?name`` ignores an unknown name.
    Elements are system call names, classes (``%file``), ``/regex``, numbers, ``all`` and ``none``.
    """
    text = spec.strip()
    invert = text.startswith("!")
    if invert:
        text = text[1:]
    tokens = [t.strip() for t in text.split(",")]
    if not any(tokens):
        raise UsageError(f"empty system call set {spec!r}")
    chosen: Set[int] = set()
    removed: Set[int] = set()
    for token in tokens:
        if not token:
            raise UsageError(f"empty element in system call set {spec!r}")
        target = removed if token.startswith("!") else chosen
        _add(target, token.lstrip("!"))
    result = frozenset(chosen - removed)
    return ALL - result if invert else result


def _add(target: Set[int], token: str) -> None:
    optional = token.startswith("?")
    try:
        target.update(_element(token.lstrip("?")))
    except UsageError:
        if not optional:
            raise


def names_of(numbers: Iterable[int]) -> list[str]:
    return sorted(SYSCALL_NAMES.get(nr, f"syscall_{nr:#x}") for nr in numbers)
