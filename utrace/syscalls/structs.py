"""Parsing of the kernel's x86-64 structures from captured bytes: no formatting here (see render.py).

Every ``parse_*`` takes the bytes copied from or to user memory and returns plain data (NamedTuples,
lists), or None when the buffer is too short for the structure. Layouts are the kernel's, not glibc's
(``struct stat`` is ``<asm/stat.h>``'s, ``struct sigaction`` is the kernel's with the 8-byte mask
last, ``struct termios`` is the 36-byte kernel one, ``struct epoll_event`` is packed).
"""

from __future__ import annotations

import struct
from typing import Dict, List, NamedTuple, Optional, Tuple

# Sizes of what the kernel copies (used by capture.py to know how much to read).
SIZEOF_STAT = 144
SIZEOF_STATX = 256
SIZEOF_TIMESPEC = 16
SIZEOF_TIMEVAL = 16
SIZEOF_ITIMERSPEC = 32
SIZEOF_IOVEC = 16
SIZEOF_POLLFD = 8
SIZEOF_EPOLL_EVENT = 12
SIZEOF_SIGACTION = 24  # + sigsetsize bytes of mask
SIZEOF_MSGHDR = 56
SIZEOF_MMSGHDR = 64
SIZEOF_RLIMIT = 16
SIZEOF_TERMIOS = 36
SIZEOF_TERMIO = 18
SIZEOF_WINSIZE = 8
SIZEOF_UTSNAME = 390
SIZEOF_RUSAGE = 144
SIZEOF_LOOP_INFO64 = 232
SIZEOF_OPEN_HOW = 24
SIZEOF_CLONE_ARGS = 88
SIZEOF_SOCKADDR_STORAGE = 128
SIZEOF_SIGINFO = 128
SIZEOF_STACK_T = 24
SIZEOF_SYSINFO = 112
SIZEOF_TMS = 32
SIZEOF_SCHED_PARAM = 4
SIZEOF_FLOCK = 32
SIZEOF_STATFS = 120


def _unpack(fmt: str, data: bytes, offset: int = 0) -> Optional[Tuple[int, ...]]:
    layout = _LAYOUTS.get(fmt)
    if layout is None:
        layout = _LAYOUTS[fmt] = struct.Struct(fmt)  # a handful of formats, all literals here
    if len(data) < offset + layout.size:
        return None
    return layout.unpack_from(data, offset)


_LAYOUTS: Dict[str, struct.Struct] = {}


def u32(data: bytes) -> Optional[int]:
    v = _unpack("<I", data)
    return None if v is None else v[0]


def s32(data: bytes) -> Optional[int]:
    v = _unpack("<i", data)
    return None if v is None else v[0]


def u64(data: bytes) -> Optional[int]:
    v = _unpack("<Q", data)
    return None if v is None else v[0]


def u16(data: bytes) -> Optional[int]:
    v = _unpack("<H", data)
    return None if v is None else v[0]


def int_array(data: bytes, count: int) -> Optional[List[int]]:
    if len(data) < 4 * count:
        return None
    return list(struct.unpack_from(f"<{count}i", data))


def ptr_array(data: bytes) -> List[int]:
    """Pointers of a NULL-terminated array (argv, envp), without the terminator."""
    out = []
    for (p,) in struct.iter_unpack("<Q", data[: len(data) // 8 * 8]):
        if p == 0:
            break
        out.append(p)
    return out


class Stat(NamedTuple):
    dev: int
    ino: int
    nlink: int
    mode: int
    uid: int
    gid: int
    rdev: int
    size: int
    blksize: int
    blocks: int
    atime: Tuple[int, int]
    mtime: Tuple[int, int]
    ctime: Tuple[int, int]


def parse_stat(data: bytes) -> Optional[Stat]:
    v = _unpack("<QQQIII4xQqqqqQqQqQ", data)
    if v is None:
        return None
    return Stat._make([*v[:10], (v[10], v[11]), (v[12], v[13]), (v[14], v[15])])


class Statx(NamedTuple):
    mask: int
    blksize: int
    attributes: int
    nlink: int
    uid: int
    gid: int
    mode: int
    ino: int
    size: int
    blocks: int
    attributes_mask: int
    atime: Tuple[int, int]
    btime: Tuple[int, int]
    ctime: Tuple[int, int]
    mtime: Tuple[int, int]
    rdev: Tuple[int, int]
    dev: Tuple[int, int]


def parse_statx(data: bytes) -> Optional[Statx]:
    head = _unpack("<IIQIIIH2xQQQQ", data)
    if head is None or len(data) < 144:
        return None
    times = [struct.unpack_from("<qI", data, off) for off in (64, 80, 96, 112)]
    rdev_major, rdev_minor, dev_major, dev_minor = struct.unpack_from("<IIII", data, 128)
    return Statx._make([*head, *times, (rdev_major, rdev_minor), (dev_major, dev_minor)])


class Statfs(NamedTuple):
    type: int
    bsize: int
    blocks: int
    bfree: int
    bavail: int
    files: int
    ffree: int
    fsid: Tuple[int, int]
    namelen: int
    frsize: int
    flags: int


def parse_statfs(data: bytes) -> Optional[Statfs]:
    v = _unpack("<qqQQQQQiiqqq", data)
    if v is None:
        return None
    return Statfs(v[0], v[1], v[2], v[3], v[4], v[5], v[6], (v[7], v[8]), v[9], v[10], v[11])


def parse_timespec(data: bytes) -> Optional[Tuple[int, int]]:
    v = _unpack("<qq", data)
    return None if v is None else (v[0], v[1])


def parse_timespecs(data: bytes, count: int) -> Optional[List[Tuple[int, int]]]:
    if len(data) < 16 * count:
        return None
    return [struct.unpack_from("<qq", data, 16 * i) for i in range(count)]


class Sockaddr(NamedTuple):
    family: int
    data: bytes  # everything after sa_family


def parse_sockaddr(data: bytes) -> Optional[Sockaddr]:
    if len(data) < 2:
        return None
    return Sockaddr(struct.unpack_from("<H", data)[0], data[2:])


def parse_iovecs(data: bytes) -> List[Tuple[int, int]]:
    return [(base, length) for base, length in struct.iter_unpack("<QQ", data[: len(data) // 16 * 16])]


def parse_pollfds(data: bytes) -> List[Tuple[int, int, int]]:
    return [(fd, ev, rev) for fd, ev, rev in struct.iter_unpack("<ihh", data[: len(data) // 8 * 8])]


def parse_epoll_events(data: bytes) -> List[Tuple[int, int]]:
    return [(ev, d) for ev, d in struct.iter_unpack("<IQ", data[: len(data) // 12 * 12])]


class Sigaction(NamedTuple):
    handler: int
    flags: int
    restorer: int
    mask: bytes


def parse_sigaction(data: bytes) -> Optional[Sigaction]:
    v = _unpack("<QQQ", data)
    if v is None:
        return None
    return Sigaction(v[0], v[1], v[2], data[24:])


class Msghdr(NamedTuple):
    name: int
    namelen: int
    iov: int
    iovlen: int
    control: int
    controllen: int
    flags: int


def parse_msghdr(data: bytes) -> Optional[Msghdr]:
    v = _unpack("<QI4xQQQQI", data)
    return None if v is None else Msghdr(*v)


class Cmsg(NamedTuple):
    len: int
    level: int
    type: int
    data: bytes


def parse_cmsgs(data: bytes) -> Tuple[List[Cmsg], bool]:
    """The control messages of a msg_control buffer, and whether the last one is cut short."""
    out: List[Cmsg] = []
    off = 0
    while off + 16 <= len(data):
        length, level, type_ = struct.unpack_from("<Qii", data, off)
        if length < 16:
            return out, True
        out.append(Cmsg(length, level, type_, data[off + 16 : off + length]))
        off += (length + 7) & ~7
    return out, False


def parse_rlimit(data: bytes) -> Optional[Tuple[int, int]]:
    v = _unpack("<QQ", data)
    return None if v is None else (v[0], v[1])


class Termios(NamedTuple):
    iflag: int
    oflag: int
    cflag: int
    lflag: int
    line: int
    cc: bytes


def parse_termios(data: bytes) -> Optional[Termios]:
    v = _unpack("<IIIIB", data)
    if v is None or len(data) < SIZEOF_TERMIOS:
        return None
    return Termios._make([*v, data[17:36]])


def parse_termio(data: bytes) -> Optional[Termios]:
    v = _unpack("<HHHHB", data)
    if v is None or len(data) < SIZEOF_TERMIO:
        return None
    return Termios._make([*v, data[10:18]])


def parse_winsize(data: bytes) -> Optional[Tuple[int, int, int, int]]:
    v = _unpack("<HHHH", data)
    return None if v is None else (v[0], v[1], v[2], v[3])


def parse_utsname(data: bytes) -> Optional[List[bytes]]:
    if len(data) < SIZEOF_UTSNAME:
        return None
    return [data[65 * i : 65 * (i + 1)].split(b"\0", 1)[0] for i in range(6)]


class Rusage(NamedTuple):
    utime: Tuple[int, int]
    stime: Tuple[int, int]
    rest: Tuple[int, ...]  # ru_maxrss ... ru_nivcsw


def parse_rusage(data: bytes) -> Optional[Rusage]:
    v = _unpack("<qqqq14q", data)
    return None if v is None else Rusage((v[0], v[1]), (v[2], v[3]), tuple(v[4:]))


class Dirent(NamedTuple):
    ino: int
    off: int
    reclen: int
    type: int
    name: bytes


def parse_dirents64(data: bytes) -> List[Dirent]:
    out = []
    off = 0
    while off + 19 <= len(data):
        ino, doff, reclen, dtype = struct.unpack_from("<QqHB", data, off)
        if reclen == 0:
            break
        name = data[off + 19 : off + reclen].split(b"\0", 1)[0]
        out.append(Dirent(ino, doff, reclen, dtype, name))
        off += reclen
    return out


def parse_dirents(data: bytes) -> List[Dirent]:
    """The old getdents(2) records: d_ino, d_off, d_reclen, name, ..., d_type in the last byte."""
    out = []
    off = 0
    while off + 18 <= len(data):
        ino, doff, reclen = struct.unpack_from("<QqH", data, off)
        if reclen == 0 or off + reclen > len(data):
            break
        name = data[off + 18 : off + reclen].split(b"\0", 1)[0]
        out.append(Dirent(ino, doff, reclen, data[off + reclen - 1], name))
        off += reclen
    return out


class LoopInfo64(NamedTuple):
    device: int
    inode: int
    rdevice: int
    offset: int
    sizelimit: int
    number: int
    encrypt_type: int
    encrypt_key_size: int
    flags: int
    file_name: bytes
    crypt_name: bytes


def parse_loop_info64(data: bytes) -> Optional[LoopInfo64]:
    v = _unpack("<QQQQQIIII", data)
    if v is None or len(data) < SIZEOF_LOOP_INFO64:
        return None
    return LoopInfo64._make([*v, data[56:120], data[120:184]])


class OpenHow(NamedTuple):
    flags: int
    mode: int
    resolve: int


def parse_open_how(data: bytes) -> Optional[OpenHow]:
    v = _unpack("<QQQ", data)
    return None if v is None else OpenHow(*v)


class CloneArgs(NamedTuple):
    flags: int
    pidfd: int
    child_tid: int
    parent_tid: int
    exit_signal: int
    stack: int
    stack_size: int
    tls: int
    set_tid: int
    set_tid_size: int
    cgroup: int


def parse_clone_args(data: bytes) -> Optional[CloneArgs]:
    if len(data) < 64:
        return None
    fields = list(struct.unpack_from(f"<{min(len(data), SIZEOF_CLONE_ARGS) // 8}Q", data))
    fields += [0] * (11 - len(fields))
    return CloneArgs(*fields[:11])


class Siginfo(NamedTuple):
    signo: int
    errno: int
    code: int
    pid: int
    uid: int
    status: int
    addr: int
    utime: int = 0  # SIGCHLD: clock ticks
    stime: int = 0


def parse_siginfo(data: bytes) -> Optional[Siginfo]:
    v = _unpack("<iii4xiIi", data)
    if v is None:
        return None
    addr = struct.unpack_from("<Q", data, 16)[0]
    utime, stime = struct.unpack_from("<qq", data, 32) if len(data) >= 48 else (0, 0)
    return Siginfo(v[0], v[1], v[2], v[3], v[4], v[5], addr, utime, stime)


class StackT(NamedTuple):
    sp: int
    flags: int
    size: int


def parse_stack_t(data: bytes) -> Optional[StackT]:
    v = _unpack("<Qi4xQ", data)
    return None if v is None else StackT(*v)


class Flock(NamedTuple):
    type: int
    whence: int
    start: int
    len: int
    pid: int


def parse_flock(data: bytes) -> Optional[Flock]:
    v = _unpack("<hh4xqqi", data)
    return None if v is None else Flock(*v)


class Sysinfo(NamedTuple):
    uptime: int
    loads: Tuple[int, int, int]
    totalram: int
    freeram: int
    sharedram: int
    bufferram: int
    totalswap: int
    freeswap: int
    procs: int
    totalhigh: int
    freehigh: int
    mem_unit: int


def parse_sysinfo(data: bytes) -> Optional[Sysinfo]:
    v = _unpack("<q3Q6QH6xQQI", data)
    if v is None:
        return None
    return Sysinfo._make([v[0], (v[1], v[2], v[3]), *v[4:]])
