"""Value <-> name tables for system call arguments (x86-64 Linux), in the order strace prints them.

Each table is an :class:`Xlat`: an ordered tuple of ``(value, name)`` pairs plus a dict for lookups,
built once at import. Flag tables are matched in order, so a multi-bit name (``O_SYNC``) comes before
the single bits it contains (``O_DSYNC``), as in strace's ``src/xlat/*.in``. Values are the kernel's
x86-64 ones (``<asm-generic/fcntl.h>``, ``<asm/mman.h>``, ``<linux/sched.h>``, ...).

python-ptrace's tables (``ptrace.syscall.posix_arg``, ``socketcall_constants``) come from i386 headers
and stop around Linux 2.6; only its rlimit names are reused, the rest is completed here.
"""

from __future__ import annotations

import errno as _errno
import os
from typing import Dict, Iterable, Optional, Tuple

from ptrace.syscall.linux_constants import RLIMIT_RESOURCE as _PTRACE_RLIMITS


class Xlat:
    """An ordered value->name table."""

    __slots__ = ("pairs", "by_value", "by_name")

    def __init__(self, pairs: Iterable[Tuple[int, str]]) -> None:
        self.pairs: Tuple[Tuple[int, str], ...] = tuple(pairs)
        self.by_value: Dict[int, str] = {}
        for value, name in self.pairs:
            self.by_value.setdefault(value, name)
        self.by_name: Dict[str, int] = {name: value for value, name in self.pairs}

    def get(self, value: int) -> Optional[str]:
        return self.by_value.get(value)

    def __contains__(self, value: int) -> bool:
        return value in self.by_value


def _seq(names: str, start: int = 0) -> Xlat:
    """A table of consecutive values: ``_seq("A B C")`` is A=0, B=1, C=2."""
    return Xlat((start + i, name) for i, name in enumerate(names.split()) if name != "-")


def _bits(*pairs: Tuple[int, str]) -> Xlat:
    return Xlat(pairs)


# --- errno -----------------------------------------------------------------------------------------
# Kernel-internal codes that reach a tracer at syscall exit (include/linux/errno.h); strace prints the
# restart ones with "= ?" because the call is restarted, not failed.
KERNEL_ERRNOS: Dict[int, Tuple[str, Optional[str]]] = {
    512: ("ERESTARTSYS", "To be restarted if SA_RESTART is set"),
    513: ("ERESTARTNOINTR", "To be restarted"),
    514: ("ERESTARTNOHAND", "To be restarted if no handler"),
    515: ("ENOIOCTLCMD", None),
    516: ("ERESTART_RESTARTBLOCK", "Interrupted by signal"),
    517: ("EPROBE_DEFER", None),
    518: ("EOPENSTALE", None),
    519: ("ENOPARAM", None),
    521: ("EBADHANDLE", None),
    522: ("ENOTSYNC", None),
    523: ("EBADCOOKIE", None),
    524: ("ENOTSUPP", None),
    525: ("ETOOSMALL", None),
    526: ("ESERVERFAULT", None),
    527: ("EBADTYPE", None),
    528: ("EJUKEBOX", None),
    529: ("EIOCBQUEUED", None),
    530: ("ERECALLCONFLICT", None),
}
RESTART_ERRNOS = frozenset((512, 513, 514, 516))
# errno.errorcode keeps the last alias; strace prints the first one of <asm-generic/errno.h>.
_ERRNO_PREFERRED = {_errno.EAGAIN: "EAGAIN", _errno.EDEADLK: "EDEADLK", _errno.EOPNOTSUPP: "EOPNOTSUPP"}


def errno_name(code: int) -> Optional[str]:
    if code in _ERRNO_PREFERRED:
        return _ERRNO_PREFERRED[code]
    if code in KERNEL_ERRNOS:
        return KERNEL_ERRNOS[code][0]
    return _errno.errorcode.get(code)


def errno_text(code: int) -> str:
    if code in KERNEL_ERRNOS:
        return KERNEL_ERRNOS[code][1] or f"Unknown error {code}"
    return os.strerror(code)


# --- signals (x86-64 numbering, <asm/signal.h>) ----------------------------------------------------
SIGNALS = _seq(
    "- SIGHUP SIGINT SIGQUIT SIGILL SIGTRAP SIGABRT SIGBUS SIGFPE SIGKILL SIGUSR1 SIGSEGV SIGUSR2 SIGPIPE"
    " SIGALRM SIGTERM SIGSTKFLT SIGCHLD SIGCONT SIGSTOP SIGTSTP SIGTTIN SIGTTOU SIGURG SIGXCPU SIGXFSZ"
    " SIGVTALRM SIGPROF SIGWINCH SIGIO SIGPWR SIGSYS SIGRTMIN"
)
NSIG = 64


def signal_name(sig: int) -> Optional[str]:
    """SIGUSR1, SIGRTMIN (32), SIGRT_n (32 + n) as strace names them; None when out of range."""
    name = SIGNALS.get(sig)
    if name is not None:
        return name
    if 32 < sig <= NSIG:
        return f"SIGRT_{sig - 32}"
    return None


# --- files -----------------------------------------------------------------------------------------
AT_FDCWD = -100
OPEN_ACCMODE = _seq("O_RDONLY O_WRONLY O_RDWR")
OPEN_FLAGS = _bits(
    (0o100, "O_CREAT"),
    (0o200, "O_EXCL"),
    (0o400, "O_NOCTTY"),
    (0o1000, "O_TRUNC"),
    (0o2000, "O_APPEND"),
    (0o4000, "O_NONBLOCK"),
    (0o4010000, "O_SYNC"),
    (0o10000, "O_DSYNC"),
    (0o40000, "O_DIRECT"),
    (0o100000, "O_LARGEFILE"),
    (0o400000, "O_NOFOLLOW"),
    (0o1000000, "O_NOATIME"),
    (0o2000000, "O_CLOEXEC"),
    (0o10000000, "O_PATH"),
    (0o20200000, "O_TMPFILE"),
    (0o200000, "O_DIRECTORY"),
    (0o20000, "FASYNC"),
)
AT_FLAGS = _bits(
    (0x100, "AT_SYMLINK_NOFOLLOW"),
    (0x200, "AT_REMOVEDIR"),
    (0x400, "AT_SYMLINK_FOLLOW"),
    (0x800, "AT_NO_AUTOMOUNT"),
    (0x1000, "AT_EMPTY_PATH"),
    (0x8000, "AT_RECURSIVE"),
)
AT_EACCESS = 0x200
FACCESSAT_FLAGS = _bits((0x100, "AT_SYMLINK_NOFOLLOW"), (0x200, "AT_EACCESS"), (0x1000, "AT_EMPTY_PATH"))
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
ACCESS_MODES = _bits((4, "R_OK"), (2, "W_OK"), (1, "X_OK"))
STATX_SYNC = _bits((0x2000, "AT_STATX_FORCE_SYNC"), (0x4000, "AT_STATX_DONT_SYNC"))
STATX_MASKS = _bits(
    (0xFFF, "STATX_ALL"),
    (0x7FF, "STATX_BASIC_STATS"),
    (0x1, "STATX_TYPE"),
    (0x2, "STATX_MODE"),
    (0x4, "STATX_NLINK"),
    (0x8, "STATX_UID"),
    (0x10, "STATX_GID"),
    (0x20, "STATX_ATIME"),
    (0x40, "STATX_MTIME"),
    (0x80, "STATX_CTIME"),
    (0x100, "STATX_INO"),
    (0x200, "STATX_SIZE"),
    (0x400, "STATX_BLOCKS"),
    (0x800, "STATX_BTIME"),
    (0x1000, "STATX_MNT_ID"),
    (0x2000, "STATX_DIOALIGN"),
    (0x4000, "STATX_MNT_ID_UNIQUE"),
    (0x8000, "STATX_SUBVOL"),
    (0x10000, "STATX_WRITE_ATOMIC"),
    (0x20000, "STATX_DIO_READ_ALIGN"),
)
STATX_ATTRS = _bits(
    (0x4, "STATX_ATTR_COMPRESSED"),
    (0x10, "STATX_ATTR_IMMUTABLE"),
    (0x20, "STATX_ATTR_APPEND"),
    (0x40, "STATX_ATTR_NODUMP"),
    (0x800, "STATX_ATTR_ENCRYPTED"),
    (0x1000, "STATX_ATTR_AUTOMOUNT"),
    (0x2000, "STATX_ATTR_MOUNT_ROOT"),
    (0x100000, "STATX_ATTR_VERITY"),
    (0x200000, "STATX_ATTR_DAX"),
    (0x400000, "STATX_ATTR_WRITE_ATOMIC"),
)
FILE_TYPES = _bits(
    (0o140000, "S_IFSOCK"),
    (0o120000, "S_IFLNK"),
    (0o100000, "S_IFREG"),
    (0o060000, "S_IFBLK"),
    (0o040000, "S_IFDIR"),
    (0o020000, "S_IFCHR"),
    (0o010000, "S_IFIFO"),
)
MODE_SPECIAL = _bits((0o4000, "S_ISUID"), (0o2000, "S_ISGID"), (0o1000, "S_ISVTX"))
SEEK_WHENCE = _seq("SEEK_SET SEEK_CUR SEEK_END SEEK_DATA SEEK_HOLE")
FCNTL_CMDS = Xlat(
    [
        *_seq(
            "F_DUPFD F_GETFD F_SETFD F_GETFL F_SETFL F_GETLK F_SETLK F_SETLKW F_SETOWN F_GETOWN F_SETSIG"
            " F_GETSIG - - - F_SETOWN_EX F_GETOWN_EX F_GETOWNER_UIDS"
        ).pairs,
        (36, "F_OFD_GETLK"),
        (37, "F_OFD_SETLK"),
        (38, "F_OFD_SETLKW"),
        (1024, "F_SETLEASE"),
        (1025, "F_GETLEASE"),
        (1026, "F_NOTIFY"),
        (1027, "F_DUPFD_QUERY"),
        (1028, "F_CREATED_QUERY"),
        (1030, "F_DUPFD_CLOEXEC"),
        (1031, "F_SETPIPE_SZ"),
        (1032, "F_GETPIPE_SZ"),
        (1033, "F_ADD_SEALS"),
        (1034, "F_GET_SEALS"),
        (1035, "F_GET_RW_HINT"),
        (1036, "F_SET_RW_HINT"),
        (1037, "F_GET_FILE_RW_HINT"),
        (1038, "F_SET_FILE_RW_HINT"),
    ]
)
FD_FLAGS = _bits((1, "FD_CLOEXEC"))
LOCK_TYPES = _seq("F_RDLCK F_WRLCK F_UNLCK")
FLOCK_OPS = _bits((1, "LOCK_SH"), (2, "LOCK_EX"), (4, "LOCK_NB"), (8, "LOCK_UN"))
SEALS = _bits((1, "F_SEAL_SEAL"), (2, "F_SEAL_SHRINK"), (4, "F_SEAL_GROW"), (8, "F_SEAL_WRITE"))
NOTIFY_FLAGS = _bits(
    (1, "DN_ACCESS"),
    (2, "DN_MODIFY"),
    (4, "DN_CREATE"),
    (8, "DN_DELETE"),
    (16, "DN_RENAME"),
    (32, "DN_ATTRIB"),
    (0x80000000, "DN_MULTISHOT"),
)
RENAME_FLAGS = _bits((1, "RENAME_NOREPLACE"), (2, "RENAME_EXCHANGE"), (4, "RENAME_WHITEOUT"))
FALLOC_FLAGS = _bits(
    (1, "FALLOC_FL_KEEP_SIZE"),
    (2, "FALLOC_FL_PUNCH_HOLE"),
    (4, "FALLOC_FL_NO_HIDE_STALE"),
    (8, "FALLOC_FL_COLLAPSE_RANGE"),
    (16, "FALLOC_FL_ZERO_RANGE"),
    (32, "FALLOC_FL_INSERT_RANGE"),
    (64, "FALLOC_FL_UNSHARE_RANGE"),
)
FADVISE = _seq(
    "POSIX_FADV_NORMAL POSIX_FADV_RANDOM POSIX_FADV_SEQUENTIAL POSIX_FADV_WILLNEED"
    " POSIX_FADV_DONTNEED POSIX_FADV_NOREUSE"
)
DIRENT_TYPES = Xlat(
    (v, n)
    for v, n in enumerate("DT_UNKNOWN DT_FIFO DT_CHR - DT_DIR - DT_BLK - DT_REG - DT_LNK - DT_SOCK".split())
    if n != "-"
)
CLOSE_RANGE_FLAGS = _bits((2, "CLOSE_RANGE_UNSHARE"), (4, "CLOSE_RANGE_CLOEXEC"))
RESOLVE_FLAGS = _bits(
    (1, "RESOLVE_NO_XDEV"),
    (2, "RESOLVE_NO_MAGICLINKS"),
    (4, "RESOLVE_NO_SYMLINKS"),
    (8, "RESOLVE_BENEATH"),
    (16, "RESOLVE_IN_ROOT"),
    (32, "RESOLVE_CACHED"),
)
MEMFD_FLAGS = _bits(
    (1, "MFD_CLOEXEC"), (2, "MFD_ALLOW_SEALING"), (4, "MFD_HUGETLB"), (8, "MFD_NOEXEC_SEAL"), (16, "MFD_EXEC")
)
EFD_FLAGS = _bits((1, "EFD_SEMAPHORE"), (0o4000, "EFD_NONBLOCK"), (0o2000000, "EFD_CLOEXEC"))
TFD_CREATE_FLAGS = _bits((0o4000, "TFD_NONBLOCK"), (0o2000000, "TFD_CLOEXEC"))
TFD_SETTIME_FLAGS = _bits((1, "TFD_TIMER_ABSTIME"), (2, "TFD_TIMER_CANCEL_ON_SET"))
SFD_FLAGS = _bits((0o4000, "SFD_NONBLOCK"), (0o2000000, "SFD_CLOEXEC"))
IN_INIT_FLAGS = _bits((0o4000, "IN_NONBLOCK"), (0o2000000, "IN_CLOEXEC"))
INOTIFY_MASK = _bits(
    (0x1, "IN_ACCESS"),
    (0x2, "IN_MODIFY"),
    (0x4, "IN_ATTRIB"),
    (0x8, "IN_CLOSE_WRITE"),
    (0x10, "IN_CLOSE_NOWRITE"),
    (0x20, "IN_OPEN"),
    (0x40, "IN_MOVED_FROM"),
    (0x80, "IN_MOVED_TO"),
    (0x100, "IN_CREATE"),
    (0x200, "IN_DELETE"),
    (0x400, "IN_DELETE_SELF"),
    (0x800, "IN_MOVE_SELF"),
    (0x2000, "IN_UNMOUNT"),
    (0x4000, "IN_Q_OVERFLOW"),
    (0x8000, "IN_IGNORED"),
    (0x1000000, "IN_ONLYDIR"),
    (0x2000000, "IN_DONT_FOLLOW"),
    (0x4000000, "IN_EXCL_UNLINK"),
    (0x10000000, "IN_MASK_CREATE"),
    (0x20000000, "IN_MASK_ADD"),
    (0x40000000, "IN_ISDIR"),
    (0x80000000, "IN_ONESHOT"),
)
SPLICE_FLAGS = _bits(
    (1, "SPLICE_F_MOVE"), (2, "SPLICE_F_NONBLOCK"), (4, "SPLICE_F_MORE"), (8, "SPLICE_F_GIFT")
)
RWF_FLAGS = _bits(
    (1, "RWF_HIPRI"),
    (2, "RWF_DSYNC"),
    (4, "RWF_SYNC"),
    (8, "RWF_NOWAIT"),
    (16, "RWF_APPEND"),
    (32, "RWF_NOAPPEND"),
    (64, "RWF_ATOMIC"),
    (128, "RWF_DONTCACHE"),
)
XATTR_FLAGS = _bits((1, "XATTR_CREATE"), (2, "XATTR_REPLACE"))
UMOUNT_FLAGS = _bits((1, "MNT_FORCE"), (2, "MNT_DETACH"), (4, "MNT_EXPIRE"), (8, "UMOUNT_NOFOLLOW"))
MOUNT_FLAGS = _bits(
    (1, "MS_RDONLY"),
    (2, "MS_NOSUID"),
    (4, "MS_NODEV"),
    (8, "MS_NOEXEC"),
    (16, "MS_SYNCHRONOUS"),
    (32, "MS_REMOUNT"),
    (64, "MS_MANDLOCK"),
    (128, "MS_DIRSYNC"),
    (256, "MS_NOSYMFOLLOW"),
    (1024, "MS_NOATIME"),
    (2048, "MS_NODIRATIME"),
    (4096, "MS_BIND"),
    (8192, "MS_MOVE"),
    (16384, "MS_REC"),
    (32768, "MS_SILENT"),
    (1 << 16, "MS_POSIXACL"),
    (1 << 17, "MS_UNBINDABLE"),
    (1 << 18, "MS_PRIVATE"),
    (1 << 19, "MS_SLAVE"),
    (1 << 20, "MS_SHARED"),
    (1 << 21, "MS_RELATIME"),
    (1 << 22, "MS_KERNMOUNT"),
    (1 << 23, "MS_I_VERSION"),
    (1 << 24, "MS_STRICTATIME"),
    (1 << 25, "MS_LAZYTIME"),
)

# --- memory ----------------------------------------------------------------------------------------
PROT_FLAGS = _bits(
    (0, "PROT_NONE"),
    (1, "PROT_READ"),
    (2, "PROT_WRITE"),
    (4, "PROT_EXEC"),
    (8, "PROT_SEM"),
    (0x10, "PROT_BTI"),
    (0x20, "PROT_MTE"),
    (0x01000000, "PROT_GROWSDOWN"),
    (0x02000000, "PROT_GROWSUP"),
)
MAP_TYPES = _bits((1, "MAP_SHARED"), (2, "MAP_PRIVATE"), (3, "MAP_SHARED_VALIDATE"), (8, "MAP_DROPPABLE"))
MAP_FLAGS = _bits(
    (0x10, "MAP_FIXED"),
    (0x20, "MAP_ANONYMOUS"),
    (0x40, "MAP_32BIT"),
    (0x80, "MAP_ABOVE4G"),
    (0x4000, "MAP_NORESERVE"),
    (0x8000, "MAP_POPULATE"),
    (0x10000, "MAP_NONBLOCK"),
    (0x100, "MAP_GROWSDOWN"),
    (0x800, "MAP_DENYWRITE"),
    (0x1000, "MAP_EXECUTABLE"),
    (0x2000, "MAP_LOCKED"),
    (0x20000, "MAP_STACK"),
    (0x40000, "MAP_HUGETLB"),
    (0x80000, "MAP_SYNC"),
    (0x4000000, "MAP_UNINITIALIZED"),
    (0x100000, "MAP_FIXED_NOREPLACE"),
)
MREMAP_FLAGS = _bits((1, "MREMAP_MAYMOVE"), (2, "MREMAP_FIXED"), (4, "MREMAP_DONTUNMAP"))
MSYNC_FLAGS = _bits((1, "MS_ASYNC"), (2, "MS_INVALIDATE"), (4, "MS_SYNC"))
MLOCKALL_FLAGS = _bits((1, "MCL_CURRENT"), (2, "MCL_FUTURE"), (4, "MCL_ONFAULT"))
MLOCK2_FLAGS = _bits((1, "MLOCK_ONFAULT"))
MADVISE = Xlat(
    [
        *_seq("MADV_NORMAL MADV_RANDOM MADV_SEQUENTIAL MADV_WILLNEED MADV_DONTNEED").pairs,
        (8, "MADV_FREE"),
        (9, "MADV_REMOVE"),
        (10, "MADV_DONTFORK"),
        (11, "MADV_DOFORK"),
        (12, "MADV_MERGEABLE"),
        (13, "MADV_UNMERGEABLE"),
        (14, "MADV_HUGEPAGE"),
        (15, "MADV_NOHUGEPAGE"),
        (16, "MADV_DONTDUMP"),
        (17, "MADV_DODUMP"),
        (18, "MADV_WIPEONFORK"),
        (19, "MADV_KEEPONFORK"),
        (20, "MADV_COLD"),
        (21, "MADV_PAGEOUT"),
        (22, "MADV_POPULATE_READ"),
        (23, "MADV_POPULATE_WRITE"),
        (24, "MADV_DONTNEED_LOCKED"),
        (25, "MADV_COLLAPSE"),
        (100, "MADV_HWPOISON"),
        (101, "MADV_SOFT_OFFLINE"),
        (102, "MADV_GUARD_INSTALL"),
        (103, "MADV_GUARD_REMOVE"),
    ]
)
MEMBARRIER_CMDS = _bits(
    (0, "MEMBARRIER_CMD_QUERY"),
    (1, "MEMBARRIER_CMD_GLOBAL"),
    (2, "MEMBARRIER_CMD_GLOBAL_EXPEDITED"),
    (4, "MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED"),
    (8, "MEMBARRIER_CMD_PRIVATE_EXPEDITED"),
    (16, "MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED"),
)

# --- processes ---------------------------------------------------------------------------------------
CLONE_FLAGS = _bits(
    (0x100, "CLONE_VM"),
    (0x200, "CLONE_FS"),
    (0x400, "CLONE_FILES"),
    (0x800, "CLONE_SIGHAND"),
    (0x1000, "CLONE_PIDFD"),
    (0x2000, "CLONE_PTRACE"),
    (0x4000, "CLONE_VFORK"),
    (0x8000, "CLONE_PARENT"),
    (0x10000, "CLONE_THREAD"),
    (0x20000, "CLONE_NEWNS"),
    (0x40000, "CLONE_SYSVSEM"),
    (0x80000, "CLONE_SETTLS"),
    (0x100000, "CLONE_PARENT_SETTID"),
    (0x200000, "CLONE_CHILD_CLEARTID"),
    (0x800000, "CLONE_UNTRACED"),
    (0x1000000, "CLONE_CHILD_SETTID"),
    (0x2000000, "CLONE_NEWCGROUP"),
    (0x4000000, "CLONE_NEWUTS"),
    (0x8000000, "CLONE_NEWIPC"),
    (0x10000000, "CLONE_NEWUSER"),
    (0x20000000, "CLONE_NEWPID"),
    (0x40000000, "CLONE_NEWNET"),
    (0x80000000, "CLONE_IO"),
    (0x100000000, "CLONE_CLEAR_SIGHAND"),
    (0x200000000, "CLONE_INTO_CGROUP"),
    (0x400000000, "CLONE_NEWTIME"),
)
CLONE_PIDFD = 0x1000
CLONE_SETTLS = 0x80000
CLONE_PARENT_SETTID = 0x100000
CLONE_CHILD_CLEARTID = 0x200000
CLONE_CHILD_SETTID = 0x1000000
WAIT_OPTIONS = _bits(
    (1, "WNOHANG"),
    (2, "WUNTRACED"),
    (4, "WEXITED"),
    (8, "WCONTINUED"),
    (0x01000000, "WNOWAIT"),
    (0x20000000, "__WNOTHREAD"),
    (0x40000000, "__WALL"),
    (0x80000000, "__WCLONE"),
)
WAITID_TYPES = _seq("P_ALL P_PID P_PGID P_PIDFD")
ARCH_PRCTL = _bits(
    (0x1001, "ARCH_SET_GS"),
    (0x1002, "ARCH_SET_FS"),
    (0x1003, "ARCH_GET_FS"),
    (0x1004, "ARCH_GET_GS"),
    (0x1011, "ARCH_GET_CPUID"),
    (0x1012, "ARCH_SET_CPUID"),
    (0x1021, "ARCH_GET_XCOMP_SUPP"),
    (0x1022, "ARCH_GET_XCOMP_PERM"),
    (0x1023, "ARCH_REQ_XCOMP_PERM"),
    (0x1024, "ARCH_GET_XCOMP_GUEST_PERM"),
    (0x1025, "ARCH_REQ_XCOMP_GUEST_PERM"),
    (0x2001, "ARCH_MAP_VDSO_X32"),
    (0x2002, "ARCH_MAP_VDSO_32"),
    (0x2003, "ARCH_MAP_VDSO_64"),
    (0x4001, "ARCH_GET_UNTAG_MASK"),
    (0x4002, "ARCH_ENABLE_TAGGED_ADDR"),
    (0x4003, "ARCH_GET_MAX_TAG_BITS"),
    (0x4004, "ARCH_FORCE_TAGGED_SVA"),
    (0x5001, "ARCH_SHSTK_ENABLE"),
    (0x5002, "ARCH_SHSTK_DISABLE"),
    (0x5003, "ARCH_SHSTK_LOCK"),
    (0x5004, "ARCH_SHSTK_UNLOCK"),
    (0x5005, "ARCH_SHSTK_STATUS"),
)
PRCTL_OPTIONS = _seq(
    "- PR_SET_PDEATHSIG PR_GET_PDEATHSIG PR_GET_DUMPABLE PR_SET_DUMPABLE PR_GET_UNALIGN PR_SET_UNALIGN"
    " PR_GET_KEEPCAPS PR_SET_KEEPCAPS PR_GET_FPEMU PR_SET_FPEMU PR_GET_FPEXC PR_SET_FPEXC PR_GET_TIMING"
    " PR_SET_TIMING PR_SET_NAME PR_GET_NAME - - PR_GET_ENDIAN PR_SET_ENDIAN PR_GET_SECCOMP PR_SET_SECCOMP"
    " PR_CAPBSET_READ PR_CAPBSET_DROP PR_GET_TSC PR_SET_TSC PR_GET_SECUREBITS PR_SET_SECUREBITS"
    " PR_SET_TIMERSLACK PR_GET_TIMERSLACK PR_TASK_PERF_EVENTS_DISABLE PR_TASK_PERF_EVENTS_ENABLE"
    " PR_MCE_KILL PR_MCE_KILL_GET PR_SET_MM PR_SET_CHILD_SUBREAPER PR_GET_CHILD_SUBREAPER"
    " PR_SET_NO_NEW_PRIVS PR_GET_NO_NEW_PRIVS PR_GET_TID_ADDRESS PR_SET_THP_DISABLE PR_GET_THP_DISABLE"
    " PR_MPX_ENABLE_MANAGEMENT PR_MPX_DISABLE_MANAGEMENT PR_SET_FP_MODE PR_GET_FP_MODE PR_CAP_AMBIENT"
    " - - PR_SVE_SET_VL PR_SVE_GET_VL PR_GET_SPECULATION_CTRL PR_SET_SPECULATION_CTRL PR_PAC_RESET_KEYS"
    " PR_SET_TAGGED_ADDR_CTRL PR_GET_TAGGED_ADDR_CTRL PR_SET_IO_FLUSHER PR_GET_IO_FLUSHER"
    " PR_SET_SYSCALL_USER_DISPATCH PR_PAC_SET_ENABLED_KEYS PR_PAC_GET_ENABLED_KEYS PR_SCHED_CORE"
    " PR_SME_SET_VL PR_SME_GET_VL PR_SET_MDWE PR_GET_MDWE PR_SET_MEMORY_MERGE PR_GET_MEMORY_MERGE"
    " PR_RISCV_V_SET_CONTROL PR_RISCV_V_GET_CONTROL PR_RISCV_SET_ICACHE_FLUSH_CTX PR_PPC_GET_DEXCR"
    " PR_PPC_SET_DEXCR PR_GET_SHADOW_STACK_STATUS PR_SET_SHADOW_STACK_STATUS PR_LOCK_SHADOW_STACK_STATUS"
    " PR_TIMER_CREATE_RESTORE_IDS PR_FUTEX_HASH"
)
PRCTL_OPTIONS.by_value[0x59616D61] = "PR_SET_PTRACER"
PRCTL_OPTIONS.by_value[0x53564D41] = "PR_SET_VMA"
RLIMITS = Xlat((value, name) for value, name in sorted(_PTRACE_RLIMITS.items()) if name != "RLIMIT_NLIMITS")
RLIMIT_RESOURCES = Xlat([*RLIMITS.pairs, (15, "RLIMIT_RTTIME")])
RUSAGE_WHO = Xlat([(0, "RUSAGE_SELF"), (-1, "RUSAGE_CHILDREN"), (1, "RUSAGE_THREAD")])
PRIO_WHICH = _seq("PRIO_PROCESS PRIO_PGRP PRIO_USER")
SCHED_POLICIES = _seq(
    "SCHED_OTHER SCHED_FIFO SCHED_RR SCHED_BATCH SCHED_ISO SCHED_IDLE SCHED_DEADLINE SCHED_EXT"
)
CLOCKS = _seq(
    "CLOCK_REALTIME CLOCK_MONOTONIC CLOCK_PROCESS_CPUTIME_ID CLOCK_THREAD_CPUTIME_ID CLOCK_MONOTONIC_RAW"
    " CLOCK_REALTIME_COARSE CLOCK_MONOTONIC_COARSE CLOCK_BOOTTIME CLOCK_REALTIME_ALARM CLOCK_BOOTTIME_ALARM"
    " CLOCK_SGI_CYCLE CLOCK_TAI"
)
TIMER_FLAGS = _bits((1, "TIMER_ABSTIME"))
ITIMERS = _seq("ITIMER_REAL ITIMER_VIRTUAL ITIMER_PROF")
FUTEX_OPS = _seq(
    "FUTEX_WAIT FUTEX_WAKE FUTEX_FD FUTEX_REQUEUE FUTEX_CMP_REQUEUE FUTEX_WAKE_OP FUTEX_LOCK_PI"
    " FUTEX_UNLOCK_PI FUTEX_TRYLOCK_PI FUTEX_WAIT_BITSET FUTEX_WAKE_BITSET FUTEX_WAIT_REQUEUE_PI"
    " FUTEX_CMP_REQUEUE_PI FUTEX_LOCK_PI2"
)
FUTEX_PRIVATE_FLAG = 128
FUTEX_CLOCK_REALTIME = 256
GRND_FLAGS = _bits((1, "GRND_NONBLOCK"), (2, "GRND_RANDOM"), (4, "GRND_INSECURE"))
RSEQ_FLAGS = _bits((1, "RSEQ_FLAG_UNREGISTER"))
SECCOMP_OPS = _seq(
    "SECCOMP_SET_MODE_STRICT SECCOMP_SET_MODE_FILTER SECCOMP_GET_ACTION_AVAIL SECCOMP_GET_NOTIF_SIZES"
)
PERSONALITY = _bits((0x0040000, "ADDR_NO_RANDOMIZE"))
IOPRIO_WHO = _seq("- IOPRIO_WHO_PROCESS IOPRIO_WHO_PGRP IOPRIO_WHO_USER")
UNSHARE_FLAGS = CLONE_FLAGS
PIDFD_FLAGS = _bits((0o4000, "PIDFD_NONBLOCK"), (1, "PIDFD_THREAD"))
KCMP_TYPES = _seq("KCMP_FILE KCMP_VM KCMP_FILES KCMP_FS KCMP_SIGHAND KCMP_IO KCMP_SYSVSEM KCMP_EPOLL_TFD")

# --- signals -----------------------------------------------------------------------------------------
SIGPROCMASK_HOW = _seq("SIG_BLOCK SIG_UNBLOCK SIG_SETMASK")
SA_FLAGS = _bits(
    (0x04000000, "SA_RESTORER"),
    (0x08000000, "SA_ONSTACK"),
    (0x10000000, "SA_RESTART"),
    (0x20000000, "SA_INTERRUPT"),
    (0x40000000, "SA_NODEFER"),
    (0x80000000, "SA_RESETHAND"),
    (0x00000004, "SA_SIGINFO"),
    (0x00000001, "SA_NOCLDSTOP"),
    (0x00000002, "SA_NOCLDWAIT"),
)
SA_RESTORER = 0x04000000
SIG_HANDLERS = Xlat([(0, "SIG_DFL"), (1, "SIG_IGN"), (0xFFFFFFFFFFFFFFFF, "SIG_ERR")])
SS_FLAGS = _bits((1, "SS_ONSTACK"), (2, "SS_DISABLE"), (0x80000000, "SS_AUTODISARM"))
SI_CODES = Xlat(
    [
        (0, "SI_USER"),
        (0x80, "SI_KERNEL"),
        (-1, "SI_QUEUE"),
        (-2, "SI_TIMER"),
        (-3, "SI_MESGQ"),
        (-4, "SI_ASYNCIO"),
        (-5, "SI_SIGIO"),
        (-6, "SI_TKILL"),
        (-7, "SI_DETHREAD"),
        (-60, "SI_ASYNCNL"),
    ]
)

# --- sockets -------------------------------------------------------------------------------------------
ADDRESS_FAMILIES = _seq(
    "AF_UNSPEC AF_UNIX AF_INET AF_AX25 AF_IPX AF_APPLETALK AF_NETROM AF_BRIDGE AF_ATMPVC AF_X25 AF_INET6"
    " AF_ROSE AF_DECnet AF_NETBEUI AF_SECURITY AF_KEY AF_NETLINK AF_PACKET AF_ASH AF_ECONET AF_ATMSVC AF_RDS"
    " AF_SNA AF_IRDA AF_PPPOX AF_WANPIPE AF_LLC AF_IB AF_MPLS AF_CAN AF_TIPC AF_BLUETOOTH AF_IUCV AF_RXRPC"
    " AF_ISDN AF_PHONET AF_IEEE802154 AF_CAIF AF_ALG AF_NFC AF_VSOCK AF_KCM AF_QIPCRTR AF_SMC AF_XDP AF_MCTP"
)
AF_UNIX, AF_INET, AF_INET6, AF_NETLINK = 1, 2, 10, 16
SOCK_TYPES = Xlat(
    [
        (1, "SOCK_STREAM"),
        (2, "SOCK_DGRAM"),
        (3, "SOCK_RAW"),
        (4, "SOCK_RDM"),
        (5, "SOCK_SEQPACKET"),
        (6, "SOCK_DCCP"),
        (10, "SOCK_PACKET"),
    ]
)
SOCK_TYPE_FLAGS = _bits((0o2000000, "SOCK_CLOEXEC"), (0o4000, "SOCK_NONBLOCK"))
IP_PROTOCOLS = Xlat(
    [
        (0, "IPPROTO_IP"),
        (1, "IPPROTO_ICMP"),
        (2, "IPPROTO_IGMP"),
        (4, "IPPROTO_IPIP"),
        (6, "IPPROTO_TCP"),
        (8, "IPPROTO_EGP"),
        (12, "IPPROTO_PUP"),
        (17, "IPPROTO_UDP"),
        (22, "IPPROTO_IDP"),
        (29, "IPPROTO_TP"),
        (33, "IPPROTO_DCCP"),
        (41, "IPPROTO_IPV6"),
        (46, "IPPROTO_RSVP"),
        (47, "IPPROTO_GRE"),
        (50, "IPPROTO_ESP"),
        (51, "IPPROTO_AH"),
        (58, "IPPROTO_ICMPV6"),
        (92, "IPPROTO_MTP"),
        (94, "IPPROTO_BEETPH"),
        (98, "IPPROTO_ENCAP"),
        (103, "IPPROTO_PIM"),
        (108, "IPPROTO_COMP"),
        (115, "IPPROTO_L2TP"),
        (132, "IPPROTO_SCTP"),
        (136, "IPPROTO_UDPLITE"),
        (137, "IPPROTO_MPLS"),
        (143, "IPPROTO_ETHERNET"),
        (255, "IPPROTO_RAW"),
        (262, "IPPROTO_MPTCP"),
    ]
)
NETLINK_PROTOCOLS = _seq(
    "NETLINK_ROUTE NETLINK_UNUSED NETLINK_USERSOCK NETLINK_FIREWALL NETLINK_SOCK_DIAG NETLINK_NFLOG"
    " NETLINK_XFRM NETLINK_SELINUX NETLINK_ISCSI NETLINK_AUDIT NETLINK_FIB_LOOKUP NETLINK_CONNECTOR"
    " NETLINK_NETFILTER NETLINK_IP6_FW NETLINK_DNRTMSG NETLINK_KOBJECT_UEVENT NETLINK_GENERIC -"
    " NETLINK_SCSITRANSPORT NETLINK_ECRYPTFS NETLINK_RDMA NETLINK_CRYPTO NETLINK_SMC"
)
SOCKET_LEVELS = Xlat(
    [
        (0, "SOL_IP"),
        (1, "SOL_SOCKET"),
        (6, "SOL_TCP"),
        (17, "SOL_UDP"),
        (41, "SOL_IPV6"),
        (58, "SOL_ICMPV6"),
        (132, "SOL_SCTP"),
        (136, "SOL_UDPLITE"),
        (255, "SOL_RAW"),
        (263, "SOL_PACKET"),
        (270, "SOL_NETLINK"),
        (274, "SOL_BLUETOOTH"),
        (279, "SOL_ALG"),
        (280, "SOL_NFC"),
        (281, "SOL_KCM"),
        (282, "SOL_TLS"),
        (283, "SOL_XDP"),
        (284, "SOL_MPTCP"),
        (285, "SOL_MCTP"),
        (286, "SOL_SMC"),
        (287, "SOL_VSOCK"),
    ]
)
SOL_SOCKET, SOL_IP, SOL_TCP, SOL_IPV6 = 1, 0, 6, 41
SOCKET_OPTIONS = Xlat(
    [
        (1, "SO_DEBUG"),
        (2, "SO_REUSEADDR"),
        (3, "SO_TYPE"),
        (4, "SO_ERROR"),
        (5, "SO_DONTROUTE"),
        (6, "SO_BROADCAST"),
        (7, "SO_SNDBUF"),
        (8, "SO_RCVBUF"),
        (9, "SO_KEEPALIVE"),
        (10, "SO_OOBINLINE"),
        (11, "SO_NO_CHECK"),
        (12, "SO_PRIORITY"),
        (13, "SO_LINGER"),
        (14, "SO_BSDCOMPAT"),
        (15, "SO_REUSEPORT"),
        (16, "SO_PASSCRED"),
        (17, "SO_PEERCRED"),
        (18, "SO_RCVLOWAT"),
        (19, "SO_SNDLOWAT"),
        (20, "SO_RCVTIMEO_OLD"),
        (21, "SO_SNDTIMEO_OLD"),
        (22, "SO_SECURITY_AUTHENTICATION"),
        (23, "SO_SECURITY_ENCRYPTION_TRANSPORT"),
        (24, "SO_SECURITY_ENCRYPTION_NETWORK"),
        (25, "SO_BINDTODEVICE"),
        (26, "SO_ATTACH_FILTER"),
        (27, "SO_DETACH_FILTER"),
        (28, "SO_PEERNAME"),
        (29, "SO_TIMESTAMP_OLD"),
        (30, "SO_ACCEPTCONN"),
        (31, "SO_PEERSEC"),
        (32, "SO_SNDBUFFORCE"),
        (33, "SO_RCVBUFFORCE"),
        (34, "SO_PASSSEC"),
        (35, "SO_TIMESTAMPNS_OLD"),
        (36, "SO_MARK"),
        (37, "SO_TIMESTAMPING_OLD"),
        (38, "SO_PROTOCOL"),
        (39, "SO_DOMAIN"),
        (40, "SO_RXQ_OVFL"),
        (41, "SO_WIFI_STATUS"),
        (42, "SO_PEEK_OFF"),
        (43, "SO_NOFCS"),
        (44, "SO_LOCK_FILTER"),
        (45, "SO_SELECT_ERR_QUEUE"),
        (46, "SO_BUSY_POLL"),
        (47, "SO_MAX_PACING_RATE"),
        (48, "SO_BPF_EXTENSIONS"),
        (49, "SO_INCOMING_CPU"),
        (50, "SO_ATTACH_BPF"),
        (51, "SO_ATTACH_REUSEPORT_CBPF"),
        (52, "SO_ATTACH_REUSEPORT_EBPF"),
        (53, "SO_CNX_ADVICE"),
        (55, "SO_MEMINFO"),
        (56, "SO_INCOMING_NAPI_ID"),
        (57, "SO_COOKIE"),
        (59, "SO_PEERGROUPS"),
        (60, "SO_ZEROCOPY"),
        (61, "SO_TXTIME"),
        (62, "SO_BINDTOIFINDEX"),
        (63, "SO_TIMESTAMP_NEW"),
        (64, "SO_TIMESTAMPNS_NEW"),
        (65, "SO_TIMESTAMPING_NEW"),
        (66, "SO_RCVTIMEO_NEW"),
        (67, "SO_SNDTIMEO_NEW"),
        (68, "SO_DETACH_REUSEPORT_BPF"),
        (69, "SO_PREFER_BUSY_POLL"),
        (70, "SO_BUSY_POLL_BUDGET"),
        (71, "SO_NETNS_COOKIE"),
        (72, "SO_BUF_LOCK"),
        (73, "SO_RESERVE_MEM"),
        (74, "SO_TXREHASH"),
        (75, "SO_RCVMARK"),
        (76, "SO_PASSPIDFD"),
        (77, "SO_PEERPIDFD"),
    ]
)
TCP_OPTIONS = _seq(
    "- TCP_NODELAY TCP_MAXSEG TCP_CORK TCP_KEEPIDLE TCP_KEEPINTVL TCP_KEEPCNT TCP_SYNCNT TCP_LINGER2"
    " TCP_DEFER_ACCEPT TCP_WINDOW_CLAMP TCP_INFO TCP_QUICKACK TCP_CONGESTION TCP_MD5SIG -"
    " TCP_THIN_LINEAR_TIMEOUTS"
    " TCP_THIN_DUPACK TCP_USER_TIMEOUT TCP_REPAIR TCP_REPAIR_QUEUE TCP_QUEUE_SEQ TCP_REPAIR_OPTIONS"
    " TCP_FASTOPEN TCP_TIMESTAMP TCP_NOTSENT_LOWAT TCP_CC_INFO TCP_SAVE_SYN TCP_SAVED_SYN TCP_REPAIR_WINDOW"
    " TCP_FASTOPEN_CONNECT TCP_ULP TCP_MD5SIG_EXT TCP_FASTOPEN_KEY TCP_FASTOPEN_NO_COOKIE"
    " TCP_ZEROCOPY_RECEIVE"
    " TCP_INQ TCP_TX_DELAY"
)
IP_OPTIONS = _seq(
    "- IP_TOS IP_TTL IP_HDRINCL IP_OPTIONS IP_ROUTER_ALERT IP_RECVOPTS IP_RETOPTS IP_PKTINFO IP_PKTOPTIONS"
    " IP_MTU_DISCOVER IP_RECVERR IP_RECVTTL IP_RECVTOS IP_MTU IP_FREEBIND IP_IPSEC_POLICY IP_XFRM_POLICY"
    " IP_PASSSEC IP_TRANSPARENT IP_ORIGDSTADDR IP_MINTTL IP_NODEFRAG IP_CHECKSUM IP_BIND_ADDRESS_NO_PORT"
    " IP_RECVFRAGSIZE IP_RECVERR_RFC4884"
)
IPV6_OPTIONS = Xlat(
    [
        (26, "IPV6_V6ONLY"),
        (16, "IPV6_UNICAST_HOPS"),
        (49, "IPV6_RECVPKTINFO"),
        (50, "IPV6_PKTINFO"),
        (67, "IPV6_TCLASS"),
        (23, "IPV6_MTU_DISCOVER"),
        (24, "IPV6_MTU"),
    ]
)
MSG_FLAGS = _bits(
    (0x1, "MSG_OOB"),
    (0x2, "MSG_PEEK"),
    (0x4, "MSG_DONTROUTE"),
    (0x8, "MSG_CTRUNC"),
    (0x10, "MSG_PROBE"),
    (0x20, "MSG_TRUNC"),
    (0x40, "MSG_DONTWAIT"),
    (0x80, "MSG_EOR"),
    (0x100, "MSG_WAITALL"),
    (0x200, "MSG_FIN"),
    (0x400, "MSG_SYN"),
    (0x800, "MSG_CONFIRM"),
    (0x1000, "MSG_RST"),
    (0x2000, "MSG_ERRQUEUE"),
    (0x4000, "MSG_NOSIGNAL"),
    (0x8000, "MSG_MORE"),
    (0x10000, "MSG_WAITFORONE"),
    (0x20000, "MSG_SENDPAGE_NOTLAST"),
    (0x40000, "MSG_BATCH"),
    (0x80000, "MSG_NO_SHARED_FRAGS"),
    (0x2000000, "MSG_SOCK_DEVMEM"),
    (0x4000000, "MSG_ZEROCOPY"),
    (0x20000000, "MSG_FASTOPEN"),
    (0x40000000, "MSG_CMSG_CLOEXEC"),
    (0x80000000, "MSG_CMSG_COMPAT"),
)
SHUTDOWN_HOW = _seq("SHUT_RD SHUT_WR SHUT_RDWR")
SCM_TYPES = Xlat([(1, "SCM_RIGHTS"), (2, "SCM_CREDENTIALS"), (3, "SCM_SECURITY"), (4, "SCM_PIDFD")])
SCM_RIGHTS, SCM_CREDENTIALS = 1, 2

# --- poll / epoll ------------------------------------------------------------------------------------
POLL_EVENTS = _bits(
    (0x1, "POLLIN"),
    (0x2, "POLLPRI"),
    (0x4, "POLLOUT"),
    (0x8, "POLLERR"),
    (0x10, "POLLHUP"),
    (0x20, "POLLNVAL"),
    (0x40, "POLLRDNORM"),
    (0x80, "POLLRDBAND"),
    (0x100, "POLLWRNORM"),
    (0x200, "POLLWRBAND"),
    (0x400, "POLLMSG"),
    (0x1000, "POLLREMOVE"),
    (0x2000, "POLLRDHUP"),
)
EPOLL_EVENTS = _bits(
    (0x1, "EPOLLIN"),
    (0x2, "EPOLLPRI"),
    (0x4, "EPOLLOUT"),
    (0x8, "EPOLLERR"),
    (0x10, "EPOLLHUP"),
    (0x20, "EPOLLNVAL"),
    (0x40, "EPOLLRDNORM"),
    (0x80, "EPOLLRDBAND"),
    (0x100, "EPOLLWRNORM"),
    (0x200, "EPOLLWRBAND"),
    (0x400, "EPOLLMSG"),
    (0x2000, "EPOLLRDHUP"),
    (0x10000000, "EPOLLEXCLUSIVE"),
    (0x20000000, "EPOLLWAKEUP"),
    (0x40000000, "EPOLLONESHOT"),
    (0x80000000, "EPOLLET"),
)
EPOLL_CTL_OPS = Xlat([(1, "EPOLL_CTL_ADD"), (2, "EPOLL_CTL_DEL"), (3, "EPOLL_CTL_MOD")])
EPOLL_CREATE_FLAGS = _bits((0o2000000, "EPOLL_CLOEXEC"))

# --- ioctl -----------------------------------------------------------------------------------------------
# Requests strace decodes by name on x86-64. Where two subsystems share a number strace prints both
# names joined with " or " (sorted), e.g. "SNDCTL_TMR_START or TCSETS".
IOCTLS = Xlat(
    [
        (0x5401, "TCGETS"),
        (0x5402, "SNDCTL_TMR_START or TCSETS"),
        (0x5403, "SNDCTL_TMR_STOP or TCSETSW"),
        (0x5404, "SNDCTL_TMR_CONTINUE or TCSETSF"),
        (0x5405, "TCGETA"),
        (0x5406, "TCSETA"),
        (0x5407, "TCSETAW"),
        (0x5408, "TCSETAF"),
        (0x5409, "TCSBRK"),
        (0x540A, "TCXONC"),
        (0x540B, "TCFLSH"),
        (0x540C, "TIOCEXCL"),
        (0x540D, "TIOCNXCL"),
        (0x540E, "TIOCSCTTY"),
        (0x540F, "TIOCGPGRP"),
        (0x5410, "TIOCSPGRP"),
        (0x5411, "TIOCOUTQ"),
        (0x5412, "TIOCSTI"),
        (0x5413, "TIOCGWINSZ"),
        (0x5414, "TIOCSWINSZ"),
        (0x5415, "TIOCMGET"),
        (0x5416, "TIOCMBIS"),
        (0x5417, "TIOCMBIC"),
        (0x5418, "TIOCMSET"),
        (0x5419, "TIOCGSOFTCAR"),
        (0x541A, "TIOCSSOFTCAR"),
        (0x541B, "FIONREAD"),
        (0x541C, "TIOCLINUX"),
        (0x541D, "TIOCCONS"),
        (0x541E, "TIOCGSERIAL"),
        (0x541F, "TIOCSSERIAL"),
        (0x5420, "TIOCPKT"),
        (0x5421, "FIONBIO"),
        (0x5422, "TIOCNOTTY"),
        (0x5423, "TIOCSETD"),
        (0x5424, "TIOCGETD"),
        (0x5425, "TCSBRKP"),
        (0x5427, "TIOCSBRK"),
        (0x5428, "TIOCCBRK"),
        (0x5429, "TIOCGSID"),
        (0x802C542A, "TCGETS2"),
        (0x402C542B, "TCSETS2"),
        (0x402C542C, "TCSETSW2"),
        (0x402C542D, "TCSETSF2"),
        (0x542E, "TIOCGRS485"),
        (0x542F, "TIOCSRS485"),
        (0x80045430, "TIOCGPTN"),
        (0x40045431, "TIOCSPTLCK"),
        (0x80045432, "TIOCGDEV"),
        (0x5432, "TCGETX"),
        (0x5433, "TCSETX"),
        (0x5434, "TCSETXF"),
        (0x5435, "TCSETXW"),
        (0x40045436, "TIOCSIG"),
        (0x5437, "TIOCVHANGUP"),
        (0x80045438, "TIOCGPKT"),
        (0x80045439, "TIOCGPTLCK"),
        (0x80045440, "TIOCGEXCL"),
        (0x5441, "TIOCGPTPEER"),
        (0x5450, "FIONCLEX"),
        (0x5451, "FIOCLEX"),
        (0x5452, "FIOASYNC"),
        (0x5453, "TIOCSERCONFIG"),
        (0x5454, "TIOCSERGWILD"),
        (0x5455, "TIOCSERSWILD"),
        (0x5456, "TIOCGLCKTRMIOS"),
        (0x5457, "TIOCSLCKTRMIOS"),
        (0x5458, "TIOCSERGSTRUCT"),
        (0x5459, "TIOCSERGETLSR"),
        (0x545A, "TIOCSERGETMULTI"),
        (0x545B, "TIOCSERSETMULTI"),
        (0x545C, "TIOCMIWAIT"),
        (0x545D, "TIOCGICOUNT"),
        (0x5460, "FIOQSIZE"),
        (0x8901, "FIOSETOWN"),
        (0x8902, "SIOCSPGRP"),
        (0x8903, "FIOGETOWN"),
        (0x8904, "SIOCGPGRP"),
        (0x8905, "SIOCATMARK"),
        (0x8912, "SIOCGIFCONF"),
        (0x8913, "SIOCGIFFLAGS"),
        (0x8914, "SIOCSIFFLAGS"),
        (0x8915, "SIOCGIFADDR"),
        (0x8921, "SIOCGIFMTU"),
        (0x8927, "SIOCGIFHWADDR"),
        (0x8933, "SIOCGIFINDEX"),
        (0x8910, "SIOCGIFNAME"),
        (0x125D, "BLKROSET"),
        (0x125E, "BLKROGET"),
        (0x125F, "BLKRRPART"),
        (0x1260, "BLKGETSIZE"),
        (0x1261, "BLKFLSBUF"),
        (0x1262, "BLKRASET"),
        (0x1263, "BLKRAGET"),
        (0x1264, "BLKFRASET"),
        (0x1265, "BLKFRAGET"),
        (0x1266, "BLKSECTSET"),
        (0x1267, "BLKSECTGET"),
        (0x1268, "BLKSSZGET"),
        (0x80081270, "BLKBSZGET"),
        (0x40081271, "BLKBSZSET"),
        (0x80081272, "BLKGETSIZE64"),
        (0xC0481273, "BLKTRACESETUP"),
        (0x1274, "BLKTRACESTART"),
        (0x1275, "BLKTRACESTOP"),
        (0x1276, "BLKTRACETEARDOWN"),
        (0x1277, "BLKDISCARD"),
        (0x1278, "BLKIOMIN"),
        (0x1279, "BLKIOOPT"),
        (0x127A, "BLKALIGNOFF"),
        (0x127B, "BLKPBSZGET"),
        (0x127C, "BLKDISCARDZEROES"),
        (0x127D, "BLKSECDISCARD"),
        (0x127E, "BLKROTATIONAL"),
        (0x127F, "BLKZEROOUT"),
        (0x80081280, "BLKGETDISKSEQ"),
        (0x4C00, "LOOP_SET_FD"),
        (0x4C01, "LOOP_CLR_FD"),
        (0x4C02, "LOOP_SET_STATUS"),
        (0x4C03, "LOOP_GET_STATUS"),
        (0x4C04, "LOOP_SET_STATUS64"),
        (0x4C05, "LOOP_GET_STATUS64"),
        (0x4C06, "LOOP_CHANGE_FD"),
        (0x4C07, "LOOP_SET_CAPACITY"),
        (0x4C08, "LOOP_SET_DIRECT_IO"),
        (0x4C09, "LOOP_SET_BLOCK_SIZE"),
        (0x4C0A, "LOOP_CONFIGURE"),
        (0x4C80, "LOOP_CTL_ADD"),
        (0x4C81, "LOOP_CTL_REMOVE"),
        (0x4C82, "LOOP_CTL_GET_FREE"),
        (0x80086601, "FS_IOC_GETFLAGS"),
        (0x40086602, "FS_IOC_SETFLAGS"),
        (0x80087601, "FS_IOC_GETVERSION"),
        (0x40049409, "FICLONE"),
        (0x4020940D, "FICLONERANGE"),
        (0xC020660B, "FS_IOC_FIEMAP"),
        (0x1, "FIBMAP"),
        (0x2, "FIGETBSZ"),
        (0xC0189436, "FIDEDUPERANGE"),
    ]
)
IOC_DIRS = Xlat([(0, "_IOC_NONE"), (1, "_IOC_WRITE"), (2, "_IOC_READ"), (3, "_IOC_READ|_IOC_WRITE")])
LOOP_FLAGS = _bits(
    (1, "LO_FLAGS_READ_ONLY"), (4, "LO_FLAGS_AUTOCLEAR"), (8, "LO_FLAGS_PARTSCAN"), (16, "LO_FLAGS_DIRECT_IO")
)
LOOP_CRYPT = _seq(
    "LO_CRYPT_NONE LO_CRYPT_XOR LO_CRYPT_DES LO_CRYPT_FISH2 LO_CRYPT_BLOW LO_CRYPT_CAST128 LO_CRYPT_IDEA"
)

# --- termios (<asm-generic/termbits.h>; strace's term_*flags order) -------------------------------------
TERM_IFLAGS = _bits(
    (0o1, "IGNBRK"),
    (0o2, "BRKINT"),
    (0o4, "IGNPAR"),
    (0o10, "PARMRK"),
    (0o20, "INPCK"),
    (0o40, "ISTRIP"),
    (0o100, "INLCR"),
    (0o200, "IGNCR"),
    (0o400, "ICRNL"),
    (0o1000, "IUCLC"),
    (0o2000, "IXON"),
    (0o4000, "IXANY"),
    (0o10000, "IXOFF"),
    (0o20000, "IMAXBEL"),
    (0o40000, "IUTF8"),
)
TERM_OFLAGS = _bits(
    (0o1, "OPOST"),
    (0o2, "OLCUC"),
    (0o4, "ONLCR"),
    (0o10, "OCRNL"),
    (0o20, "ONOCR"),
    (0o40, "ONLRET"),
    (0o100, "OFILL"),
    (0o200, "OFDEL"),
)
# The delay fields of c_oflag: (mask, names by value); strace prints them first.
TERM_ODELAYS: Tuple[Tuple[int, Xlat], ...] = (
    (0o400, _bits((0, "NL0"), (0o400, "NL1"))),
    (0o3000, _bits((0, "CR0"), (0o1000, "CR1"), (0o2000, "CR2"), (0o3000, "CR3"))),
    (0o14000, _bits((0, "TAB0"), (0o4000, "TAB1"), (0o10000, "TAB2"), (0o14000, "TAB3"))),
    (0o20000, _bits((0, "BS0"), (0o20000, "BS1"))),
    (0o40000, _bits((0, "VT0"), (0o40000, "VT1"))),
    (0o100000, _bits((0, "FF0"), (0o100000, "FF1"))),
)
TERM_CFLAGS = _bits(
    (0o100, "CSTOPB"),
    (0o200, "CREAD"),
    (0o400, "PARENB"),
    (0o1000, "PARODD"),
    (0o2000, "HUPCL"),
    (0o4000, "CLOCAL"),
    (0o10000000000, "CMSPAR"),
    (0o20000000000, "CRTSCTS"),
)
TERM_CSIZE = _bits((0, "CS5"), (0o20, "CS6"), (0o40, "CS7"), (0o60, "CS8"))
TERM_BAUDS = Xlat(
    [
        (0, "B0"),
        (1, "B50"),
        (2, "B75"),
        (3, "B110"),
        (4, "B134"),
        (5, "B150"),
        (6, "B200"),
        (7, "B300"),
        (8, "B600"),
        (9, "B1200"),
        (10, "B1800"),
        (11, "B2400"),
        (12, "B4800"),
        (13, "B9600"),
        (14, "B19200"),
        (15, "B38400"),
        (0o10000, "BOTHER"),
        (0o10001, "B57600"),
        (0o10002, "B115200"),
        (0o10003, "B230400"),
        (0o10004, "B460800"),
        (0o10005, "B500000"),
        (0o10006, "B576000"),
        (0o10007, "B921600"),
        (0o10010, "B1000000"),
        (0o10011, "B1152000"),
        (0o10012, "B1500000"),
        (0o10013, "B2000000"),
        (0o10014, "B2500000"),
        (0o10015, "B3000000"),
        (0o10016, "B3500000"),
        (0o10017, "B4000000"),
    ]
)
TERM_CBAUD = 0o10017
TERM_CIBAUD = 0o2003600000
TERM_LFLAGS = _bits(
    (0o1, "ISIG"),
    (0o2, "ICANON"),
    (0o4, "XCASE"),
    (0o10, "ECHO"),
    (0o20, "ECHOE"),
    (0o40, "ECHOK"),
    (0o100, "ECHONL"),
    (0o200, "NOFLSH"),
    (0o100000, "IEXTEN"),
    (0o1000, "ECHOCTL"),
    (0o2000, "ECHOPRT"),
    (0o4000, "ECHOKE"),
    (0o10000, "FLUSHO"),
    (0o40000, "PENDIN"),
    (0o400, "TOSTOP"),
    (0o200000, "EXTPROC"),
)
TCFLSH_QUEUES = _seq("TCIFLUSH TCOFLUSH TCIOFLUSH")
TCXONC_ACTIONS = _seq("TCOOFF TCOON TCIOFF TCION")

# --- misc ------------------------------------------------------------------------------------------------
IPC_FLAGS = _bits((0o1000, "IPC_CREAT"), (0o2000, "IPC_EXCL"), (0o4000, "IPC_NOWAIT"))
IPC_CMDS = Xlat(
    [
        (0, "IPC_RMID"),
        (1, "IPC_SET"),
        (2, "IPC_STAT"),
        (3, "IPC_INFO"),
        (11, "SHM_LOCK"),
        (12, "SHM_UNLOCK"),
        (13, "SHM_STAT"),
        (14, "SHM_INFO"),
        (15, "SHM_STAT_ANY"),
    ]
)
SHMAT_FLAGS = _bits(
    (0o10000, "SHM_RDONLY"), (0o20000, "SHM_RND"), (0o40000, "SHM_REMAP"), (0o100000, "SHM_EXEC")
)
KEYCTL_CMDS = _seq(
    "KEYCTL_GET_KEYRING_ID KEYCTL_JOIN_SESSION_KEYRING KEYCTL_UPDATE KEYCTL_REVOKE KEYCTL_CHOWN"
    " KEYCTL_SETPERM"
    " KEYCTL_DESCRIBE KEYCTL_CLEAR KEYCTL_LINK KEYCTL_UNLINK KEYCTL_SEARCH KEYCTL_READ KEYCTL_INSTANTIATE"
    " KEYCTL_NEGATE KEYCTL_SET_REQKEY_KEYRING KEYCTL_SET_TIMEOUT KEYCTL_ASSUME_AUTHORITY KEYCTL_GET_SECURITY"
    " KEYCTL_SESSION_TO_PARENT KEYCTL_REJECT KEYCTL_INSTANTIATE_IOV KEYCTL_INVALIDATE KEYCTL_GET_PERSISTENT"
    " KEYCTL_DH_COMPUTE KEYCTL_PKEY_QUERY KEYCTL_PKEY_ENCRYPT KEYCTL_PKEY_DECRYPT KEYCTL_PKEY_SIGN"
    " KEYCTL_PKEY_VERIFY KEYCTL_RESTRICT_KEYRING KEYCTL_MOVE KEYCTL_CAPABILITIES KEYCTL_WATCH_KEY"
)
BPF_CMDS = _seq(
    "BPF_MAP_CREATE BPF_MAP_LOOKUP_ELEM BPF_MAP_UPDATE_ELEM BPF_MAP_DELETE_ELEM BPF_MAP_GET_NEXT_KEY"
    " BPF_PROG_LOAD BPF_OBJ_PIN BPF_OBJ_GET BPF_PROG_ATTACH BPF_PROG_DETACH BPF_PROG_TEST_RUN"
    " BPF_PROG_GET_NEXT_ID BPF_MAP_GET_NEXT_ID BPF_PROG_GET_FD_BY_ID BPF_MAP_GET_FD_BY_ID"
    " BPF_OBJ_GET_INFO_BY_FD"
    " BPF_PROG_QUERY BPF_RAW_TRACEPOINT_OPEN BPF_BTF_LOAD BPF_BTF_GET_FD_BY_ID BPF_TASK_FD_QUERY"
    " BPF_MAP_LOOKUP_AND_DELETE_ELEM BPF_MAP_FREEZE BPF_BTF_GET_NEXT_ID BPF_MAP_LOOKUP_BATCH"
    " BPF_MAP_LOOKUP_AND_DELETE_BATCH BPF_MAP_UPDATE_BATCH BPF_MAP_DELETE_BATCH BPF_LINK_CREATE"
    " BPF_LINK_UPDATE"
    " BPF_LINK_GET_FD_BY_ID BPF_LINK_GET_NEXT_ID BPF_ENABLE_STATS BPF_ITER_CREATE BPF_LINK_DETACH"
    " BPF_PROG_BIND_MAP"
    " BPF_TOKEN_CREATE"
)
SYSLOG_ACTIONS = _seq(
    "SYSLOG_ACTION_CLOSE SYSLOG_ACTION_OPEN SYSLOG_ACTION_READ SYSLOG_ACTION_READ_ALL"
    " SYSLOG_ACTION_READ_CLEAR"
    " SYSLOG_ACTION_CLEAR SYSLOG_ACTION_CONSOLE_OFF SYSLOG_ACTION_CONSOLE_ON SYSLOG_ACTION_CONSOLE_LEVEL"
    " SYSLOG_ACTION_SIZE_UNREAD SYSLOG_ACTION_SIZE_BUFFER"
)
