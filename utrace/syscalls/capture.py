"""Which user memory a system call reads (captured at entry) and writes (captured at exit).

For every argument kind of :mod:`signatures` there may be an entry rule (the kernel copies from user:
strings, input buffers, input structs) and an exit rule (it copies to user: output buffers sized by
the result, output structs). Rules read through the caller's ``read(addr, n)`` and
``read_string(addr, maxlen)``; a pointer that cannot be read (OSError) is skipped, never fatal.

The reader functions come from whoever has the memory: the ptrace engine (``/proc/PID/mem``), the
in-process SIGSYS handler (ctypes), or a test. :func:`readers_for` builds them for a ProcMem-like
object.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Protocol, Sequence, Tuple

from . import structs as S
from . import xlat
from ._table import SYSCALL_NAMES
from .signatures import OPAQUE_KINDS, ArgSpec, prototype

Capture = List[Tuple[int, bytes]]
ReadFn = Callable[[int, int], bytes]

PATH_MAX = 4096
MAX_IOV = 1024  # UIO_MAXIOV
MAX_ARRAY = 4096  # poll/epoll/argv entries read at most
MAX_SIGSETSIZE = 128
MAX_SOCKADDR = S.SIZEOF_SOCKADDR_STORAGE
MAX_STRUCT = 4096  # generic _IOC payloads, socket options, xattr values ...
MAX_BUFFER = 1 << 24  # a data buffer is read whole up to this (16 MiB), whatever ``limit`` says


class Reader:
    """Safe reads: None instead of OSError, buffers capped at ``limit`` bytes (None: no cap)."""

    __slots__ = ("_read", "_read_string", "limit")

    def __init__(self, read: ReadFn, read_string: ReadFn, limit: Optional[int]) -> None:
        self._read = read
        self._read_string = read_string
        self.limit = limit

    def mem(self, addr: int, size: int) -> Optional[bytes]:
        if addr == 0 or size <= 0:
            return None
        try:
            data = self._read(addr, size)
            return data if type(data) is bytes else bytes(data)
        except (OSError, ValueError, OverflowError, MemoryError):
            return None

    def buf(self, addr: int, size: int) -> Optional[bytes]:
        """A data buffer (read/write payloads): capped at the limit."""
        cap = MAX_BUFFER if self.limit is None else self.limit
        return self.mem(addr, size if size < cap else cap)

    def cstr(self, addr: int, maxlen: int = PATH_MAX) -> Optional[bytes]:
        """A C string with its NUL, or maxlen bytes without one when it is longer."""
        if addr == 0:
            return None
        try:
            data = bytes(self._read_string(addr, maxlen))
        except (OSError, ValueError, OverflowError):
            return None
        nul = data.find(b"\0")
        if nul >= 0:
            return data[: nul + 1]
        return data + b"\0" if len(data) < maxlen else data


class CaptureCtx(Reader):
    """What a rule sees: safe reads (a :class:`Reader` itself), the raw arguments and, at exit, the result."""

    __slots__ = ("args", "ret", "ok")

    def __init__(
        self, read: ReadFn, read_string: ReadFn, limit: Optional[int], args: Sequence[int], ret: Optional[int]
    ) -> None:
        self._read = read
        self._read_string = read_string
        self.limit = limit
        self.args = args if len(args) == 6 and type(args) is tuple else tuple(args) + (0,) * (6 - len(args))
        self.ret = ret
        self.ok = ret is not None and not -4096 < ret < 0  # the call succeeded (at exit)

    @property
    def errno(self) -> Optional[int]:
        return -self.ret if self.ret is not None and -4096 < self.ret < 0 else None


Rule = Callable[[CaptureCtx, int, ArgSpec], Capture]


def _one(addr: int, data: Optional[bytes]) -> Capture:
    return [] if data is None else [(addr, data)]


def _fixed(size: int) -> Rule:
    def rule(c: CaptureCtx, i: int, spec: ArgSpec) -> Capture:
        return _one(c.args[i], c.mem(c.args[i], size))

    return rule


def _fixed_ok(size: int) -> Rule:
    def rule(c: CaptureCtx, i: int, spec: ArgSpec) -> Capture:
        return _one(c.args[i], c.mem(c.args[i], size)) if c.ok else []

    return rule


def _param(c: CaptureCtx, spec: ArgSpec) -> int:
    assert isinstance(spec.param, int)
    return c.args[spec.param]


# --- entry rules -------------------------------------------------------------------------------------
def _cstr(c: CaptureCtx, i: int, spec: ArgSpec) -> Capture:
    return _one(c.args[i], c.cstr(c.args[i]))


def _ibuf(c: CaptureCtx, i: int, spec: ArgSpec) -> Capture:
    addr = c.args[i]
    return _one(addr, c.buf(addr, _param(c, spec)))


def _sized_in(cap: int) -> Rule:
    def rule(c: CaptureCtx, i: int, spec: ArgSpec) -> Capture:
        return _one(c.args[i], c.mem(c.args[i], min(_param(c, spec) & 0xFFFFFFFF, cap)))

    return rule


def _sigact_in(c: CaptureCtx, i: int, spec: ArgSpec) -> Capture:
    size = S.SIZEOF_SIGACTION + min(_param(c, spec), MAX_SIGSETSIZE)
    return _one(c.args[i], c.mem(c.args[i], size))


def iovec_array(r: Reader, addr: int, count: int) -> Tuple[Capture, List[Tuple[int, int]]]:
    if count <= 0 or count > MAX_IOV:
        return [], []
    data = r.mem(addr, count * S.SIZEOF_IOVEC)
    if data is None:
        return [], []
    return [(addr, data)], S.parse_iovecs(data)


def _iov_buffers(r: Reader, iovs: List[Tuple[int, int]], total: Optional[int]) -> Capture:
    """The iovec buffers, filled up to ``total`` bytes in order (None: each whole)."""
    out: Capture = []
    left = total
    for base, length in iovs:
        size = length if left is None else min(length, left)
        if size > 0:
            out += _one(base, r.buf(base, size))
        if left is not None:
            left -= size
            if left <= 0:
                break
    return out


def _iov_in(c: CaptureCtx, i: int, spec: ArgSpec) -> Capture:
    array, iovs = iovec_array(c, c.args[i], _param(c, spec))
    return array + _iov_buffers(c, iovs, None)


def _iov_array_only(c: CaptureCtx, i: int, spec: ArgSpec) -> Capture:
    return iovec_array(c, c.args[i], _param(c, spec))[0]


def _msg_in(c: CaptureCtx, i: int, spec: ArgSpec) -> Capture:
    addr = c.args[i]
    head = c.mem(addr, S.SIZEOF_MSGHDR)
    msg = S.parse_msghdr(head) if head else None
    if head is None or msg is None:
        return []
    out: Capture = [(addr, head)]
    out += _one(msg.name, c.mem(msg.name, min(msg.namelen, MAX_SOCKADDR)))
    array, iovs = iovec_array(c, msg.iov, msg.iovlen)
    out += array + _iov_buffers(c, iovs, None)
    out += _one(msg.control, c.mem(msg.control, min(msg.controllen, MAX_STRUCT)))
    return out


def _msg_out_entry(c: CaptureCtx, i: int, spec: ArgSpec) -> Capture:
    addr = c.args[i]
    head = c.mem(addr, S.SIZEOF_MSGHDR)
    msg = S.parse_msghdr(head) if head else None
    if head is None or msg is None:
        return []
    return [(addr, head)] + iovec_array(c, msg.iov, msg.iovlen)[0]


def _pollfds(c: CaptureCtx, i: int, spec: ArgSpec) -> Capture:
    count = _param(c, spec) & 0xFFFFFFFF
    if count > MAX_ARRAY:
        return []
    return _one(c.args[i], c.mem(c.args[i], count * S.SIZEOF_POLLFD))


def _fdset(c: CaptureCtx, i: int, spec: ArgSpec) -> Capture:
    nfds = _param(c, spec) & 0xFFFFFFFF
    if nfds == 0 or nfds > 1 << 20:
        return []
    return _one(c.args[i], c.mem(c.args[i], (nfds + 63) // 64 * 8))


def _argv(c: CaptureCtx, i: int, spec: ArgSpec) -> Capture:
    addr = c.args[i]
    data = c.mem(addr, 8 * (MAX_ARRAY + 1)) or _read_ptr_array_slow(c, addr)
    if data is None:
        return []
    ptrs = S.ptr_array(data)
    out: Capture = [(addr, data[: 8 * (len(ptrs) + 1)])]
    for p in ptrs:
        out += _one(p, c.cstr(p, 32 * PATH_MAX))
    return out


def _read_ptr_array_slow(r: Reader, addr: int) -> Optional[bytes]:
    """Pointer by pointer, for arrays near the end of a mapping (argv on the top of the stack)."""
    out = b""
    for k in range(MAX_ARRAY + 1):
        word = r.mem(addr + 8 * k, 8)
        if word is None:
            return out or None
        out += word
        if word == b"\0" * 8:
            break
    return out


def _gids_in(c: CaptureCtx, i: int, spec: ArgSpec) -> Capture:
    count = _param(c, spec) & 0xFFFFFFFF
    return _one(c.args[i], c.mem(c.args[i], 4 * min(count, 65536)))


def _sockopt_in(c: CaptureCtx, i: int, spec: ArgSpec) -> Capture:
    return _one(c.args[i], c.mem(c.args[i], min(_param(c, spec) & 0xFFFFFFFF, MAX_STRUCT)))


def _xattr_in(c: CaptureCtx, i: int, spec: ArgSpec) -> Capture:
    return _one(c.args[i], c.buf(c.args[i], _param(c, spec)))


def _sigreturn(c: CaptureCtx, i: int, spec: ArgSpec) -> Capture:
    return []  # needs the stack pointer: see capture_entry(sp=...)


# --- exit rules ----------------------------------------------------------------------------------------
def _obuf(c: CaptureCtx, i: int, spec: ArgSpec) -> Capture:
    if not c.ok or c.ret is None or c.ret <= 0:
        return []
    size = min(c.ret, _param(c, spec))
    return _one(c.args[i], c.buf(c.args[i], size))


def _ret_sized(c: CaptureCtx, i: int, spec: ArgSpec) -> Capture:
    if not c.ok or c.ret is None or c.ret <= 0:
        return []
    return _one(c.args[i], c.mem(c.args[i], min(c.ret, 1 << 20)))


def _sockaddr_out(c: CaptureCtx, i: int, spec: ArgSpec) -> Capture:
    if not c.ok:
        return []
    lenp = _param(c, spec)
    length = S.u32(c.mem(lenp, 4) or b"")
    if length is None:
        return []
    return _one(c.args[i], c.mem(c.args[i], min(length, MAX_SOCKADDR)))


def _socklen(c: CaptureCtx, i: int, spec: ArgSpec) -> Capture:
    return _one(c.args[i], c.mem(c.args[i], 4))


def _socklen_exit(c: CaptureCtx, i: int, spec: ArgSpec) -> Capture:
    return _socklen(c, i, spec) if c.ok else []


def _sigact_out(c: CaptureCtx, i: int, spec: ArgSpec) -> Capture:
    return _sigact_in(c, i, spec) if c.ok else []


def _sigset_out(c: CaptureCtx, i: int, spec: ArgSpec) -> Capture:
    if not c.ok:
        return []
    return _one(c.args[i], c.mem(c.args[i], min(_param(c, spec), MAX_SIGSETSIZE)))


def _iov_out(c: CaptureCtx, i: int, spec: ArgSpec) -> Capture:
    if not c.ok or c.ret is None:
        return []
    _, iovs = iovec_array(c, c.args[i], _param(c, spec))
    return _iov_buffers(c, iovs, c.ret)


def _msg_out(c: CaptureCtx, i: int, spec: ArgSpec) -> Capture:
    if not c.ok or c.ret is None:
        return []
    addr = c.args[i]
    head = c.mem(addr, S.SIZEOF_MSGHDR)
    msg = S.parse_msghdr(head) if head else None
    if head is None or msg is None:
        return []
    out: Capture = [(addr, head)]
    out += _one(msg.name, c.mem(msg.name, min(msg.namelen, MAX_SOCKADDR)))
    _, iovs = iovec_array(c, msg.iov, msg.iovlen)
    out += _iov_buffers(c, iovs, c.ret)
    out += _one(msg.control, c.mem(msg.control, min(msg.controllen, MAX_STRUCT)))
    return out


def _pollfds_exit(c: CaptureCtx, i: int, spec: ArgSpec) -> Capture:
    return _pollfds(c, i, spec) if c.ok and c.ret else []


def _fdset_exit(c: CaptureCtx, i: int, spec: ArgSpec) -> Capture:
    return _fdset(c, i, spec) if c.ok else []


def _epevs_out(c: CaptureCtx, i: int, spec: ArgSpec) -> Capture:
    if not c.ok or not c.ret:
        return []
    return _one(c.args[i], c.mem(c.args[i], min(c.ret, MAX_ARRAY) * S.SIZEOF_EPOLL_EVENT))


def _status_out(c: CaptureCtx, i: int, spec: ArgSpec) -> Capture:
    return _one(c.args[i], c.mem(c.args[i], 4)) if c.ok and c.ret else []


def _ts_rem(c: CaptureCtx, i: int, spec: ArgSpec) -> Capture:
    interrupted = c.errno is not None and (c.errno == 4 or c.errno in xlat.RESTART_ERRNOS)
    return _one(c.args[i], c.mem(c.args[i], S.SIZEOF_TIMESPEC)) if interrupted else []


def _mincore_out(c: CaptureCtx, i: int, spec: ArgSpec) -> Capture:
    if not c.ok:
        return []
    pages = min((_param(c, spec) + 4095) // 4096, MAX_STRUCT)
    return _one(c.args[i], c.mem(c.args[i], pages))


def _gids_out(c: CaptureCtx, i: int, spec: ArgSpec) -> Capture:
    if not c.ok or not c.ret or _param(c, spec) == 0:
        return []
    return _one(c.args[i], c.mem(c.args[i], 4 * c.ret))


def _sockopt_out(c: CaptureCtx, i: int, spec: ArgSpec) -> Capture:
    if not c.ok:
        return []
    length = S.u32(c.mem(_param(c, spec), 4) or b"")
    if length is None:
        return []
    return _one(c.args[i], c.mem(c.args[i], min(length, MAX_STRUCT)))


def _xattr_list(c: CaptureCtx, i: int, spec: ArgSpec) -> Capture:
    return _ret_sized(c, i, spec) if _param(c, spec) else []


# --- argument kinds that depend on another argument --------------------------------------------------
F_GETLK, F_SETLK, F_SETLKW, F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW = 5, 6, 7, 36, 37, 38
F_GETOWN_EX, F_SETOWN_EX = 16, 15


def _fcntl_entry(c: CaptureCtx, i: int, spec: ArgSpec) -> Capture:
    cmd = c.args[1] & 0xFFFFFFFF
    if cmd in (F_GETLK, F_SETLK, F_SETLKW, F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW):
        return _one(c.args[2], c.mem(c.args[2], S.SIZEOF_FLOCK))
    if cmd == F_SETOWN_EX:
        return _one(c.args[2], c.mem(c.args[2], 8))
    return []


def _fcntl_exit(c: CaptureCtx, i: int, spec: ArgSpec) -> Capture:
    cmd = c.args[1] & 0xFFFFFFFF
    if not c.ok:
        return []
    if cmd in (F_GETLK, F_OFD_GETLK):
        return _one(c.args[2], c.mem(c.args[2], S.SIZEOF_FLOCK))
    if cmd == F_GETOWN_EX:
        return _one(c.args[2], c.mem(c.args[2], 8))
    return []


def _archprctl_exit(c: CaptureCtx, i: int, spec: ArgSpec) -> Capture:
    if c.ok and c.args[0] in (0x1003, 0x1004):  # ARCH_GET_FS, ARCH_GET_GS
        return _one(c.args[1], c.mem(c.args[1], 8))
    return []


def _clone_exit(c: CaptureCtx, i: int, spec: ArgSpec) -> Capture:
    flags = c.args[0]
    if c.ok and flags & (xlat.CLONE_PARENT_SETTID | xlat.CLONE_PIDFD):
        return _one(c.args[2], c.mem(c.args[2], 4))
    return []


def _clone_args_exit(c: CaptureCtx, i: int, spec: ArgSpec) -> Capture:
    if not c.ok:
        return []
    data = c.mem(c.args[i], min(_param(c, spec), S.SIZEOF_CLONE_ARGS))
    cl = S.parse_clone_args(data) if data else None
    if cl is None:
        return []
    out: Capture = []
    if cl.flags & xlat.CLONE_PIDFD:
        out += _one(cl.pidfd, c.mem(cl.pidfd, 4))
    if cl.flags & xlat.CLONE_PARENT_SETTID:
        out += _one(cl.parent_tid, c.mem(cl.parent_tid, 4))
    return out


FUTEX_WAIT_OPS = (0, 9, 11)  # FUTEX_WAIT, FUTEX_WAIT_BITSET, FUTEX_WAIT_REQUEUE_PI
FUTEX_LOCK_OPS = (6, 13)  # FUTEX_LOCK_PI, FUTEX_LOCK_PI2


def _futex_entry(c: CaptureCtx, i: int, spec: ArgSpec) -> Capture:
    op = c.args[1] & 0x7F
    if op in FUTEX_WAIT_OPS + FUTEX_LOCK_OPS:
        return _one(c.args[3], c.mem(c.args[3], S.SIZEOF_TIMESPEC))
    return []


PR_SET_NAME, PR_GET_NAME, PR_GET_PDEATHSIG = 15, 16, 2


def _prctl_entry(c: CaptureCtx, i: int, spec: ArgSpec) -> Capture:
    if c.args[0] == PR_SET_NAME:
        return _one(c.args[1], c.cstr(c.args[1], 16))
    return []


def _prctl_exit(c: CaptureCtx, i: int, spec: ArgSpec) -> Capture:
    if not c.ok:
        return []
    if c.args[0] == PR_GET_NAME:
        return _one(c.args[1], c.cstr(c.args[1], 16))
    if c.args[0] == PR_GET_PDEATHSIG:
        return _one(c.args[1], c.mem(c.args[1], 4))
    return []


# --- ioctl ----------------------------------------------------------------------------------------------
# request -> (size copied in at entry, size copied out at exit); arguments passed by value are absent.
IOCTL_MEMORY: Dict[int, Tuple[int, int]] = {
    0x5401: (0, S.SIZEOF_TERMIOS),  # TCGETS
    0x5402: (S.SIZEOF_TERMIOS, 0),
    0x5403: (S.SIZEOF_TERMIOS, 0),
    0x5404: (S.SIZEOF_TERMIOS, 0),
    0x5405: (0, S.SIZEOF_TERMIO),  # TCGETA
    0x5406: (S.SIZEOF_TERMIO, 0),
    0x5407: (S.SIZEOF_TERMIO, 0),
    0x5408: (S.SIZEOF_TERMIO, 0),
    0x5413: (0, S.SIZEOF_WINSIZE),  # TIOCGWINSZ
    0x5414: (S.SIZEOF_WINSIZE, 0),  # TIOCSWINSZ
    0x540F: (0, 4),  # TIOCGPGRP
    0x5410: (4, 0),  # TIOCSPGRP
    0x5429: (0, 4),  # TIOCGSID
    0x5411: (0, 4),  # TIOCOUTQ
    0x5412: (1, 0),  # TIOCSTI
    0x541B: (0, 4),  # FIONREAD
    0x5421: (4, 0),  # FIONBIO
    0x5452: (4, 0),  # FIOASYNC
    0x5424: (0, 4),  # TIOCGETD
    0x5423: (4, 0),  # TIOCSETD
    0x5415: (0, 4),  # TIOCMGET
    0x5416: (4, 0),
    0x5417: (4, 0),
    0x5418: (4, 0),
    0x5420: (4, 0),  # TIOCPKT
    0x80045430: (0, 4),  # TIOCGPTN
    0x40045431: (4, 0),  # TIOCSPTLCK
    0x80045432: (0, 4),  # TIOCGDEV
    0x80045438: (0, 4),
    0x80045439: (0, 4),
    0x80045440: (0, 4),
    0x5460: (0, 8),  # FIOQSIZE
    0x125D: (4, 0),  # BLKROSET
    0x125E: (0, 4),  # BLKROGET
    0x1260: (0, 8),  # BLKGETSIZE
    0x1263: (0, 8),  # BLKRAGET
    0x1265: (0, 8),  # BLKFRAGET
    0x1267: (0, 2),  # BLKSECTGET
    0x1268: (0, 4),  # BLKSSZGET
    0x80081270: (0, 4),  # BLKBSZGET (the kernel writes an int despite the size field)
    0x40081271: (4, 0),  # BLKBSZSET
    0x80081272: (0, 8),  # BLKGETSIZE64
    0x1277: (16, 0),  # BLKDISCARD
    0x1278: (0, 4),  # BLKIOMIN
    0x1279: (0, 4),  # BLKIOOPT
    0x127A: (0, 4),  # BLKALIGNOFF
    0x127B: (0, 4),  # BLKPBSZGET
    0x127C: (0, 4),  # BLKDISCARDZEROES
    0x127D: (16, 0),  # BLKSECDISCARD
    0x127E: (0, 2),  # BLKROTATIONAL
    0x127F: (16, 0),  # BLKZEROOUT
    0x80081280: (0, 8),  # BLKGETDISKSEQ
    0x4C04: (S.SIZEOF_LOOP_INFO64, 0),  # LOOP_SET_STATUS64
    0x4C05: (0, S.SIZEOF_LOOP_INFO64),  # LOOP_GET_STATUS64
    0x80086601: (0, 4),  # FS_IOC_GETFLAGS
    0x40086602: (4, 0),
}


def ioc_dir(req: int) -> int:
    return (req >> 30) & 3


def ioc_size(req: int) -> int:
    return (req >> 16) & 0x3FFF


def ioctl_memory(req: int) -> Tuple[int, int]:
    """(bytes read at entry, bytes written at exit) for an ioctl request, from the table or _IOC."""
    req &= 0xFFFFFFFF
    if req in IOCTL_MEMORY:
        return IOCTL_MEMORY[req]
    if req >> 16 == 0:
        return 0, 0  # an old-style request: the size is unknown
    direction, size = ioc_dir(req), min(ioc_size(req), MAX_STRUCT)
    return (size if direction & 1 else 0), (size if direction & 2 else 0)


def _ioctl_entry(c: CaptureCtx, i: int, spec: ArgSpec) -> Capture:
    size_in, _ = ioctl_memory(c.args[1])
    return _one(c.args[2], c.mem(c.args[2], size_in)) if size_in else []


def _ioctl_exit(c: CaptureCtx, i: int, spec: ArgSpec) -> Capture:
    _, size_out = ioctl_memory(c.args[1])
    return _one(c.args[2], c.mem(c.args[2], size_out)) if size_out and c.ok else []


ENTRY_RULES: Dict[str, Rule] = {
    "path": _cstr,
    "str": _cstr,
    "ibuf": _ibuf,
    "sa_in": _sized_in(MAX_SOCKADDR),
    "socklen_io": _socklen,
    "sigact_in": _sigact_in,
    "sigset_in": _sized_in(MAX_SIGSETSIZE),
    "iov_in": _iov_in,
    "iov_out": _iov_array_only,
    "msg_in": _msg_in,
    "msg_out": _msg_out_entry,
    "pollfds": _pollfds,
    "fdset": _fdset,
    "epev_in": _fixed(S.SIZEOF_EPOLL_EVENT),
    "ts_in": _fixed(S.SIZEOF_TIMESPEC),
    "ts2_in": _fixed(2 * S.SIZEOF_TIMESPEC),
    "tv_in": _fixed(S.SIZEOF_TIMEVAL),
    "tv2_in": _fixed(2 * S.SIZEOF_TIMEVAL),
    "its_in": _fixed(S.SIZEOF_ITIMERSPEC),
    "itv_in": _fixed(S.SIZEOF_ITIMERSPEC),
    "rlim_in": _fixed(S.SIZEOF_RLIMIT),
    "tz_in": _fixed(8),
    "utimbuf_in": _fixed(16),
    "stack_in": _fixed(S.SIZEOF_STACK_T),
    "schedparam_in": _fixed(S.SIZEOF_SCHED_PARAM),
    "siginfo_in": _fixed(S.SIZEOF_SIGINFO),
    "open_how": _sized_in(S.SIZEOF_OPEN_HOW),
    "clone_args": _sized_in(S.SIZEOF_CLONE_ARGS),
    "argv": _argv,
    "envp": _argv,
    "cpuset_in": _sized_in(MAX_STRUCT),
    "gids_in": _gids_in,
    "loff_io": _fixed(8),
    "xattr_in": _xattr_in,
    "sockopt_in": _sockopt_in,
    "fcntl_arg": _fcntl_entry,
    "ioctl_arg": _ioctl_entry,
    "futex": _futex_entry,
    "prctl": _prctl_entry,
    "sigreturn": _sigreturn,
}

EXIT_RULES: Dict[str, Rule] = {
    "obuf": _obuf,
    "random_out": _obuf,
    "cwd_out": _ret_sized,
    "dents_out": _ret_sized,
    "cpuset_out": _ret_sized,
    "xattr_list": _xattr_list,
    "stat_out": _fixed_ok(S.SIZEOF_STAT),
    "statx_out": _fixed_ok(S.SIZEOF_STATX),
    "statfs_out": _fixed_ok(S.SIZEOF_STATFS),
    "ts_out": _fixed_ok(S.SIZEOF_TIMESPEC),
    "ts_rem": _ts_rem,
    "tv_out": _fixed_ok(S.SIZEOF_TIMEVAL),
    "its_out": _fixed_ok(S.SIZEOF_ITIMERSPEC),
    "itv_out": _fixed_ok(S.SIZEOF_ITIMERSPEC),
    "rlim_out": _fixed_ok(S.SIZEOF_RLIMIT),
    "uts_out": _fixed_ok(S.SIZEOF_UTSNAME),
    "rusage_out": _fixed_ok(S.SIZEOF_RUSAGE),
    "tms_out": _fixed_ok(S.SIZEOF_TMS),
    "stack_out": _fixed_ok(S.SIZEOF_STACK_T),
    "schedparam_out": _fixed_ok(S.SIZEOF_SCHED_PARAM),
    "siginfo_out": _fixed_ok(S.SIZEOF_SIGINFO),
    "timerid_out": _fixed_ok(4),
    "aioctx_out": _fixed_ok(8),
    "uint_out": _fixed_ok(4),
    "uid_out": _fixed_ok(4),
    "time_out": _fixed_ok(8),
    "tz_out": _fixed_ok(8),
    "sysinfo_out": _fixed_ok(S.SIZEOF_SYSINFO),
    "ptr_out": _fixed_ok(8),
    "uint64_out": _fixed_ok(8),
    "mincore_out": _mincore_out,
    "fds_out": _fixed_ok(8),
    "loff_io": _fixed_ok(8),
    "sa_out": _sockaddr_out,
    "socklen_io": _socklen_exit,
    "sigact_out": _sigact_out,
    "sigset_out": _sigset_out,
    "iov_out": _iov_out,
    "msg_out": _msg_out,
    "pollfds": _pollfds_exit,
    "fdset": _fdset_exit,
    "epevs_out": _epevs_out,
    "status_out": _status_out,
    "gids_out": _gids_out,
    "sockopt_out": _sockopt_out,
    "fcntl_arg": _fcntl_exit,
    "ioctl_arg": _ioctl_exit,
    "archprctl_arg": _archprctl_exit,
    "clone": _clone_exit,
    "clone_args": _clone_args_exit,
    "prctl": _prctl_exit,
}

# rt_sigreturn finds the signal frame on the stack: struct rt_sigframe starts 8 bytes below the
# stack pointer at the syscall (the handler's return popped pretcode), and its uc.uc_sigmask is at
# offset 8 + 40 (uc_flags, uc_link, uc_stack) + 256 (uc_mcontext).
SIGFRAME_MASK_OFFSET = -8 + 8 + 40 + 256


RuleStep = Tuple[int, Rule, ArgSpec]  # (argument index, rule, its spec)


def _rule_steps(rules: Dict[str, Rule], nr: int) -> Tuple[RuleStep, ...]:
    name = SYSCALL_NAMES.get(nr)
    specs = (prototype(name) or ()) if name else ()
    return tuple((i, rules[spec.kind], spec) for i, spec in enumerate(specs) if spec.kind in rules and i < 6)


# The rules of every call, by number, worked out once; a number not in the table has none.
ENTRY_STEPS: Dict[int, Tuple[RuleStep, ...]] = {nr: _rule_steps(ENTRY_RULES, nr) for nr in SYSCALL_NAMES}
EXIT_STEPS: Dict[int, Tuple[RuleStep, ...]] = {nr: _rule_steps(EXIT_RULES, nr) for nr in SYSCALL_NAMES}
RT_SIGRETURN = next(nr for nr, name in SYSCALL_NAMES.items() if name == "rt_sigreturn")

# Calls that write user memory through an argument printed as a plain number, which no exit rule
# captures: ptrace's data (PEEK*, GET*), semctl's union semun (IPC_STAT, GETALL), keyctl's buffers
# (KEYCTL_READ, DESCRIBE ...), sysfs's buf, futex's words (WAKE_OP, the PI operations), vmsplice into
# user pages from a pipe, io_uring_enter's completions and read buffers, rseq's cpu_id fields, and
# restart_syscall, which resumes whichever call was interrupted (nanosleep's rem, poll's revents).
WRITES_UNCAPTURED = frozenset(
    {"ptrace", "semctl", "keyctl", "sysfs", "futex", "vmsplice", "io_uring_enter", "rseq", "restart_syscall"}
)


def has_exit_capture(nr: int) -> bool:
    """Whether the kernel may copy memory out to user space for this call, so that its exit matters.

    True when :func:`capture_exit` has a rule for one of its arguments (for some arguments and
    result: ioctl, fcntl and prctl depend on the command), when an argument is an opaque pointer
    (``p``: a structure nobody decodes yet, which the kernel may fill), when the call writes through
    an argument printed as a number (``WRITES_UNCAPTURED``), and for unknown numbers.
    """
    name = SYSCALL_NAMES.get(nr)
    specs = prototype(name) if name else None
    if name is None or specs is None or name in WRITES_UNCAPTURED:
        return True
    return bool(EXIT_STEPS.get(nr)) or any(spec.kind in OPAQUE_KINDS for spec in specs)


def capture_entry(
    nr: int,
    args: Tuple[int, ...],
    read: ReadFn,
    read_string: ReadFn,
    *,
    limit: Optional[int] = None,
    sp: Optional[int] = None,
) -> Capture:
    """The user memory the kernel will read for this call, read now (at syscall entry).

    ``limit`` caps data buffers (write's payload, iovec contents), not structs or strings; ``sp`` is
    the stack pointer, needed for rt_sigreturn's signal mask.
    """
    steps = ENTRY_STEPS.get(nr, ())
    out: Capture = []
    if steps:
        c = CaptureCtx(read, read_string, limit, args, None)
        for i, rule, spec in steps:
            out += rule(c, i, spec)
    if nr == RT_SIGRETURN and sp:
        addr = sp + SIGFRAME_MASK_OFFSET
        out += _one(addr, Reader(read, read_string, limit).mem(addr, 8))
    return out


def capture_exit(
    nr: int,
    args: Tuple[int, ...],
    ret: int,
    read: ReadFn,
    read_string: ReadFn,
    *,
    limit: Optional[int] = None,
) -> Capture:
    """The user memory the kernel wrote for this call (read at syscall exit, sized by ``ret``)."""
    steps = EXIT_STEPS.get(nr)
    if not steps:
        return []
    c = CaptureCtx(read, read_string, limit, args, ret)
    out: Capture = []
    for i, rule, spec in steps:
        out += rule(c, i, spec)
    return out


class _Mem(Protocol):
    def read(self, addr: int, size: int) -> bytes: ...

    def read_upto(self, addr: int, size: int) -> bytes: ...


def readers_for(mem: _Mem) -> Tuple[ReadFn, ReadFn]:
    """``(read, read_string)`` over a :class:`utrace.kernel.ProcMem`-like object."""

    def read_string(addr: int, maxlen: int) -> bytes:
        out = b""
        while len(out) < maxlen:
            chunk = min(maxlen - len(out), 4096 - ((addr + len(out)) & 4095))
            part = mem.read_upto(addr + len(out), chunk)
            nul = part.find(b"\0")
            if nul >= 0:
                return out + part[: nul + 1]
            out += part
            if len(part) < chunk:
                if not out:
                    raise OSError(14, f"cannot read a string at {addr:#x}")
                break
        return out

    return mem.read, read_string
