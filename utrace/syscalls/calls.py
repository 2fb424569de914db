"""Arguments decoded together: ioctl and fcntl (the third argument depends on the second) and the calls
whose arguments are shown as a whole (clone, futex, prctl, rt_sigreturn), as strace prints them."""

from __future__ import annotations

import struct
from typing import Callable, Dict, List, Optional, Tuple

from . import fmt, xlat
from . import structs as S
from .capture import (
    F_GETLK,
    F_OFD_GETLK,
    F_OFD_SETLK,
    F_OFD_SETLKW,
    F_SETLK,
    F_SETLKW,
    IOCTL_MEMORY,
    ioc_dir,
    ioc_size,
    ioctl_memory,
)
from .decoders import RenderCtx, clone_flags, open_flags, show_timespec, struct_in
from .signatures import ArgSpec


def show_flock(fl: S.Flock, with_pid: bool) -> str:
    fields = [
        f"l_type={fmt.enum(fl.type, xlat.LOCK_TYPES)}",
        f"l_whence={fmt.enum(fl.whence, xlat.SEEK_WHENCE)}",
        f"l_start={fl.start}",
        f"l_len={fl.len}",
    ]
    if with_pid:
        fields.append(f"l_pid={fl.pid}")
    return fmt.struct(fields)


NOARG_FCNTL = frozenset((1, 3, 9, 11, 1025, 1032, 1034, 1035, 1037))  # F_GETFD, F_GETFL, F_GETOWN, ...


def d_fcntl_arg(c: RenderCtx, i: int, spec: ArgSpec) -> Optional[str]:
    cmd, arg = fmt.u32(c.args[1]), c.args[2]
    if cmd in NOARG_FCNTL:
        return None
    if cmd == 2:  # F_SETFD
        return fmt.flags(fmt.u32(arg), xlat.FD_FLAGS)
    if cmd == 4:  # F_SETFL
        return open_flags(arg)
    if cmd in (F_SETLK, F_SETLKW, F_OFD_SETLK, F_OFD_SETLKW):
        data = c.inp.get(arg)
        fl = S.parse_flock(data) if data is not None else None
        return fmt.pointer(arg) if fl is None else show_flock(fl, False)
    if cmd in (F_GETLK, F_OFD_GETLK):
        data = c.out.get(arg) if c.ok else None
        fl = S.parse_flock(data) if data is not None else None
        return fmt.pointer(arg) if fl is None else show_flock(fl, True)
    if cmd == 1024:  # F_SETLEASE
        return fmt.enum(fmt.u32(arg), xlat.LOCK_TYPES)
    if cmd == 1026:  # F_NOTIFY
        return fmt.flags(fmt.u32(arg), xlat.NOTIFY_FLAGS)
    if cmd == 1033:  # F_ADD_SEALS
        return fmt.flags(fmt.u32(arg), xlat.SEALS)
    if cmd == 10:  # F_SETSIG
        return fmt.signal(fmt.s32(arg))
    if cmd in (0, 8, 1030, 1031):  # F_DUPFD, F_SETOWN, F_DUPFD_CLOEXEC, F_SETPIPE_SZ
        return str(fmt.s32(arg))
    return fmt.hexnum(arg)


def fcntl_result(c: RenderCtx) -> str:
    cmd, ret = fmt.u32(c.args[1]), c.ret
    if cmd == 1 and ret:  # F_GETFD
        return f"{fmt.hexnum(ret)} (flags {fmt.flags(ret, xlat.FD_FLAGS)})"
    if cmd == 3:  # F_GETFL
        return f"{fmt.hexnum(ret)} (flags {open_flags(ret)})"
    if cmd == 1034 and ret:  # F_GET_SEALS
        return f"{fmt.hexnum(ret)} (seals {fmt.flags(ret, xlat.SEALS)})"
    if cmd == 1025:  # F_GETLEASE
        return f"{fmt.hexnum(ret)} ({fmt.enum(ret, xlat.LOCK_TYPES)})"
    if cmd in (0, 1030):
        return c.fd(ret)
    return str(ret)


# --- ioctl ------------------------------------------------------------------------------------------------
def ioctl_request(req: int) -> str:
    req = fmt.u32(req)
    name = xlat.IOCTLS.get(req)
    if name is not None:
        return name
    direction = xlat.IOC_DIRS.get(ioc_dir(req)) or "0"
    kind, number = (req >> 8) & 0xFF, req & 0xFF
    return f"_IOC({direction}, {kind:#x}, {number:#x}, {fmt.hexnum(ioc_size(req))})"


def d_ioctl_req(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    return ioctl_request(c.args[i])


def show_termios(t: S.Termios) -> str:
    odelays = [table.get(t.oflag & mask) or "" for mask, table in xlat.TERM_ODELAYS]
    delay_mask = sum(mask for mask, _ in xlat.TERM_ODELAYS)
    orest = t.oflag & ~delay_mask
    oflag = fmt.join_flags([*odelays, fmt.flags(orest, xlat.TERM_OFLAGS) if orest else ""])
    cflag_parts = [xlat.TERM_BAUDS.get(t.cflag & xlat.TERM_CBAUD) or fmt.hexnum(t.cflag & xlat.TERM_CBAUD)]
    ibaud = (t.cflag & xlat.TERM_CIBAUD) >> 16
    if ibaud:
        cflag_parts.append(f"{xlat.TERM_BAUDS.get(ibaud) or fmt.hexnum(ibaud)}<<IBSHIFT")
    cflag_parts.append(xlat.TERM_CSIZE.get(t.cflag & 0o60) or "")
    crest = t.cflag & ~(xlat.TERM_CBAUD | xlat.TERM_CIBAUD | 0o60)
    if crest:
        cflag_parts.append(fmt.flags(crest, xlat.TERM_CFLAGS))
    # strace prints an empty flag set as nothing at all: "c_iflag=, "
    fields = [
        f"c_iflag={fmt.flags(t.iflag, xlat.TERM_IFLAGS, zero='')}",
        f"c_oflag={oflag}",
        f"c_cflag={fmt.join_flags(cflag_parts)}",
        f"c_lflag={fmt.flags(t.lflag, xlat.TERM_LFLAGS, zero='')}",
    ]
    return fmt.struct(fields, more=True)


def show_winsize(ws: Tuple[int, int, int, int]) -> str:
    return "{{ws_row={}, ws_col={}, ws_xpixel={}, ws_ypixel={}}}".format(*ws)


def show_loop_info64(li: S.LoopInfo64) -> str:
    fields = [f"lo_offset={li.offset}"]
    if li.sizelimit:
        fields.append(f"lo_sizelimit={li.sizelimit}")
    fields.append(f"lo_number={li.number}")
    if li.encrypt_type:
        fields.append(f"lo_encrypt_type={fmt.enum(li.encrypt_type, xlat.LOOP_CRYPT)}")
    if li.encrypt_key_size:
        fields.append(f"lo_encrypt_key_size={li.encrypt_key_size}")
    fields.append(f"lo_flags={fmt.flags(li.flags, xlat.LOOP_FLAGS)}")
    fields.append("lo_file_name=" + fmt.quote_cstring(li.file_name, None))
    if li.crypt_name[:1] != b"\0":
        fields.append("lo_crypt_name=" + fmt.quote_cstring(li.crypt_name, None))
    return fmt.struct(fields, more=True)


def _int_ptr(fmt_char: str) -> Callable[[bytes], Optional[str]]:
    size = struct.calcsize("<" + fmt_char)

    def show(data: bytes) -> Optional[str]:
        if len(data) < size:
            return None
        return f"[{struct.unpack_from('<' + fmt_char, data)[0]}]"

    return show


def _u64_pair(data: bytes) -> Optional[str]:
    if len(data) < 16:
        return None
    first, second = struct.unpack_from("<QQ", data)
    return f"[{first}, {second}]"


def _termios(data: bytes) -> Optional[str]:
    t = S.parse_termios(data)
    return None if t is None else show_termios(t)


def _termio(data: bytes) -> Optional[str]:
    t = S.parse_termio(data)
    return None if t is None else show_termios(t)


def _winsize(data: bytes) -> Optional[str]:
    ws = S.parse_winsize(data)
    return None if ws is None else show_winsize(ws)


def _loop_info64(data: bytes) -> Optional[str]:
    li = S.parse_loop_info64(data)
    return None if li is None else show_loop_info64(li)


def _char(data: bytes) -> Optional[str]:
    return None if not data else '"' + fmt.escape(data[:1]) + '"'


# request -> how its pointed-to argument prints (copied in or out as capture.IOCTL_MEMORY says)
IOCTL_SHOW: Dict[int, Callable[[bytes], Optional[str]]] = {
    **dict.fromkeys((0x5401, 0x5402, 0x5403, 0x5404), _termios),
    **dict.fromkeys((0x5405, 0x5406, 0x5407, 0x5408), _termio),
    0x5413: _winsize,
    0x5414: _winsize,
    0x5412: _char,
    0x4C04: _loop_info64,
    0x4C05: _loop_info64,
    **dict.fromkeys((0x1260, 0x1263, 0x1265, 0x80081272, 0x80081280, 0x5460), _int_ptr("Q")),
    **dict.fromkeys((0x1267, 0x127E), _int_ptr("H")),
    **dict.fromkeys((0x1278, 0x1279, 0x127B, 0x127C, 0x80045430, 0x80045432), _int_ptr("I")),
    **dict.fromkeys((0x1277, 0x127D, 0x127F), _u64_pair),
}
# requests whose third argument is a value, not a pointer
IOCTL_VALUE: Dict[int, Callable[[int], str]] = {
    0x540E: lambda v: str(fmt.s32(v)),  # TIOCSCTTY
    0x5409: lambda v: str(fmt.s32(v)),  # TCSBRK
    0x5425: lambda v: str(fmt.s32(v)),  # TCSBRKP
    0x540A: lambda v: fmt.enum(fmt.u32(v), xlat.TCXONC_ACTIONS),
    0x540B: lambda v: fmt.enum(fmt.u32(v), xlat.TCFLSH_QUEUES),
    0x40045436: lambda v: fmt.signal(fmt.s32(v)),  # TIOCSIG
    0x4C00: lambda v: str(fmt.s32(v)),  # LOOP_SET_FD
    0x4C06: lambda v: str(fmt.s32(v)),  # LOOP_CHANGE_FD
    0x4C08: str,  # LOOP_SET_DIRECT_IO
    0x4C09: str,  # LOOP_SET_BLOCK_SIZE
    0x4C80: lambda v: str(fmt.s32(v)),  # LOOP_CTL_ADD
    0x4C81: lambda v: str(fmt.s32(v)),  # LOOP_CTL_REMOVE
    0x1262: str,  # BLKRASET
    0x1264: str,  # BLKFRASET
}
IOCTL_NOARG = frozenset(
    (
        0x540C,
        0x540D,
        0x5422,
        0x5427,
        0x5428,
        0x5437,
        0x541D,
        0x5450,
        0x5451,
        0x4C01,
        0x4C07,
        0x4C82,
        0x125F,
        0x1261,
        0x1274,
        0x1275,
        0x1276,
    )
)
IOCTL_FD_VALUE = frozenset((0x4C00, 0x4C06))


_INT_IOCTLS = frozenset(req for req, sizes in IOCTL_MEMORY.items() if max(sizes) == 4)


def d_ioctl_arg(c: RenderCtx, i: int, spec: ArgSpec) -> Optional[str]:
    req, arg = fmt.u32(c.args[1]), c.args[2]
    if req in IOCTL_NOARG:
        return None
    if req in IOCTL_FD_VALUE:
        return c.fd(arg)
    if req in IOCTL_VALUE:
        return IOCTL_VALUE[req](arg)
    size_in, size_out = ioctl_memory(req)
    data = c.inp.get(arg) if size_in else (c.out.get(arg) if c.ok and size_out else None)
    show = IOCTL_SHOW.get(req, _int_ptr("i") if max(size_in, size_out) == 4 and req in _INT_IOCTLS else None)
    text = show(data) if (show is not None and data is not None) else None
    return text if text is not None else fmt.hexnum(arg)


def ioctl_arg_at_exit(c: RenderCtx) -> bool:
    req = fmt.u32(c.args[1])
    size_in, size_out = ioctl_memory(req)
    return bool(size_out) and req not in IOCTL_VALUE and req not in IOCTL_NOARG


# --- calls decoded as a whole (the arguments shown depend on each other) ----------------------------------
Piece = Tuple[str, bool]  # (text, printed at exit)


def call_clone(c: RenderCtx) -> List[Piece]:
    flags, stack, parent_tid, child_tid, tls = c.args[:5]
    deferred = bool(flags & (xlat.CLONE_PARENT_SETTID | xlat.CLONE_PIDFD))
    pieces: List[Piece] = [
        (f"child_stack={fmt.pointer(stack)}", False),
        (f"flags={clone_flags(flags)}", False),
    ]
    if flags & (xlat.CLONE_PARENT_SETTID | xlat.CLONE_PIDFD):
        data = c.out.get(parent_tid) if c.ok else None
        label = "pidfd" if flags & xlat.CLONE_PIDFD else "parent_tid"
        value = fmt.pointer(parent_tid) if data is None else f"[{S.s32(data)}]"
        pieces.append((f"{label}={value}", True))
    if flags & xlat.CLONE_SETTLS:
        pieces.append((f"tls={fmt.pointer(tls)}", deferred))
    if flags & (xlat.CLONE_CHILD_SETTID | xlat.CLONE_CHILD_CLEARTID):
        pieces.append((f"child_tidptr={fmt.pointer(child_tid)}", deferred))
    return pieces


def futex_op(op: int) -> str:
    cmd = op & 0x7F
    name = xlat.FUTEX_OPS.get(cmd)
    if name is None:
        return fmt.hexnum(op)
    if op & xlat.FUTEX_PRIVATE_FLAG:
        name += "_PRIVATE"
    if op & xlat.FUTEX_CLOCK_REALTIME:
        name += "|FUTEX_CLOCK_REALTIME"
    rest = op & ~(0x7F | xlat.FUTEX_PRIVATE_FLAG | xlat.FUTEX_CLOCK_REALTIME)
    return name + (f"|{rest:#x}" if rest else "")


def _bitset(value: int) -> str:
    return "FUTEX_BITSET_MATCH_ANY" if value == 0xFFFFFFFF else fmt.hexnum(value)


_futex_timeout = struct_in(S.parse_timespec, show_timespec)
_TS_IN = ArgSpec("ts_in")


def call_futex(c: RenderCtx) -> List[Piece]:
    uaddr, op, val, timeout, uaddr2, val3 = c.args
    op = fmt.u32(op)
    cmd, val, val2, val3 = op & 0x7F, fmt.u32(val), fmt.u32(timeout), fmt.u32(val3)
    ts = _futex_timeout(c, 3, _TS_IN) or fmt.pointer(timeout)
    texts = [fmt.pointer(uaddr), futex_op(op)]
    if cmd == 0:  # FUTEX_WAIT
        texts += [str(val), ts]
    elif cmd in (6, 13):  # FUTEX_LOCK_PI, FUTEX_LOCK_PI2
        texts += [ts]
    elif cmd == 9:  # FUTEX_WAIT_BITSET
        texts += [str(val), ts, _bitset(val3)]
    elif cmd == 10:  # FUTEX_WAKE_BITSET
        texts += [str(val), _bitset(val3)]
    elif cmd == 3:  # FUTEX_REQUEUE
        texts += [str(val), str(val2), fmt.pointer(uaddr2)]
    elif cmd in (4, 12):  # FUTEX_CMP_REQUEUE, FUTEX_CMP_REQUEUE_PI
        texts += [str(val), str(val2), fmt.pointer(uaddr2), str(val3)]
    elif cmd == 5:  # FUTEX_WAKE_OP
        texts += [str(val), str(val2), fmt.pointer(uaddr2), fmt.hexnum(val3)]
    elif cmd == 11:  # FUTEX_WAIT_REQUEUE_PI
        texts += [str(val), ts, fmt.pointer(uaddr2)]
    elif cmd in (1, 2):  # FUTEX_WAKE, FUTEX_FD
        texts += [str(val)]
    elif cmd not in (7, 8):  # not FUTEX_UNLOCK_PI / FUTEX_TRYLOCK_PI
        texts += [str(val), fmt.pointer(timeout), fmt.pointer(uaddr2), fmt.hexnum(val3)]
    return [(t, False) for t in texts]


def call_prctl(c: RenderCtx) -> List[Piece]:
    option, arg2 = fmt.u32(c.args[0]), c.args[1]
    pieces: List[Piece] = [(fmt.enum(option, xlat.PRCTL_OPTIONS), False)]
    if option == 15:  # PR_SET_NAME
        pieces.append((c.cstring(arg2, 15), False))
    elif option == 16:  # PR_GET_NAME
        data = c.out.get(arg2) if c.ok else None
        pieces.append((fmt.pointer(arg2) if data is None else fmt.quote_cstring(data, 15), True))
    elif option == 1:  # PR_SET_PDEATHSIG
        pieces.append((fmt.signal(fmt.s32(arg2)), False))
    elif option == 2:  # PR_GET_PDEATHSIG
        data = c.out.get(arg2) if c.ok else None
        pieces.append((fmt.pointer(arg2) if data is None else f"[{fmt.signal(S.s32(data) or 0)}]", True))
    elif option in (3, 5, 7, 9, 11, 13, 19, 21, 30, 37, 39, 42):  # PR_GET_* without arguments
        pass
    elif option == 4:  # PR_SET_DUMPABLE
        pieces.append((fmt.enum(arg2, SUID_DUMP), False))
    elif option in (8, 14, 24, 36, 38):  # PR_SET_KEEPCAPS, ..., PR_SET_NO_NEW_PRIVS
        pieces.append((str(arg2), False))
        if option == 38:
            pieces += [(str(a), False) for a in c.args[2:5]]
    else:
        pieces += [(fmt.hexnum(a), False) for a in c.args[1:5]]
    return pieces


SUID_DUMP = xlat.Xlat([(0, "SUID_DUMP_DISABLE"), (1, "SUID_DUMP_USER"), (2, "SUID_DUMP_ROOT")])


def prctl_result(c: RenderCtx) -> str:
    if fmt.u32(c.args[0]) == 3 and c.ret in SUID_DUMP:  # PR_GET_DUMPABLE
        return f"{c.ret} ({SUID_DUMP.get(c.ret)})"
    return str(c.ret)


def call_sigreturn(c: RenderCtx) -> List[Piece]:
    if not c.rec.copy_from_user:
        return []
    mask = c.rec.copy_from_user[0][1]
    return [(f"{{mask={fmt.sigset(mask)}}}", False)]


WholeDecoder = Callable[[RenderCtx], List[Piece]]
CALL_DECODERS: Dict[str, WholeDecoder] = {
    "clone": call_clone,
    "futex": call_futex,
    "prctl": call_prctl,
    "sigreturn": call_sigreturn,
}
