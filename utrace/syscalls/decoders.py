"""How each argument kind prints, strace style, from a record's raw arguments and captured memory.

A decoder gets the :class:`RenderCtx` (the record, its captured memory by address, the string size
and the fd-path lookup), the argument's index and its :class:`~signatures.ArgSpec`, and returns the
text, or None to leave the argument out (open's mode without O_CREAT, fcntl's unused third argument).
Memory that was not captured (a bad pointer, a failed call) prints as the pointer, as strace does.
"""

from __future__ import annotations

import socket
import struct
from typing import Callable, Dict, List, Optional, Sequence, Tuple, TypeVar

from . import fmt, xlat
from . import structs as S
from .record import SyscallRecord
from .signatures import ArgSpec

FdPath = Callable[[int], Optional[str]]
T = TypeVar("T")
Pair = Tuple[int, int]
Args = Tuple[int, ...]
Memory = Dict[int, bytes]


def padded(args: Sequence[int]) -> Tuple[int, ...]:
    """The six argument registers (a record may hold fewer)."""
    if len(args) == 6 and type(args) is tuple:
        return args
    return tuple(args) + (0,) * (6 - len(args))


class RenderCtx:
    """A record prepared for display: memory indexed by address, arguments padded to six, and the
    result: ``ok`` (a success), ``ret`` (0 while unfinished)."""

    __slots__ = (
        "rec",
        "args",
        "inp",
        "out",
        "strsize",
        "exit_fd_path",
        "entry_fd_path",
        "fd_path",
        "ok",
        "ret",
    )

    def __init__(
        self,
        rec: SyscallRecord,
        strsize: int,
        fd_path: Optional[FdPath],
        entry_fd_path: Optional[FdPath] = None,
    ) -> None:
        self.rec = rec
        # padded(), inlined: a RenderCtx for most lines printed
        args = rec.args
        self.args: Tuple[int, ...] = (
            args if len(args) == 6 and type(args) is tuple else tuple(args) + (0,) * (6 - len(args))
        )
        self.inp: Dict[int, bytes] = dict(rec.copy_from_user) if rec.copy_from_user else {}
        self.out: Dict[int, bytes] = dict(rec.copy_to_user) if rec.copy_to_user else {}
        self.strsize = strsize
        self.exit_fd_path = fd_path
        self.entry_fd_path = entry_fd_path if entry_fd_path is not None else fd_path
        # strace resolves the descriptors of entry arguments when the call starts, the others (and
        # the result) when it returns; the renderer switches this while it walks the arguments.
        self.fd_path = fd_path
        ret = rec.ret
        self.ok = ret is not None and not -4096 < ret < 0
        self.ret = ret if ret is not None else 0

    def at_phase(self, exit_phase: bool) -> None:
        self.fd_path = self.exit_fd_path if exit_phase else self.entry_fd_path

    def fd(self, value: int) -> str:
        fd = value & 0xFFFFFFFF  # fmt.s32, inlined
        if fd & 0x80000000:
            fd -= 1 << 32
        if self.fd_path is not None and fd >= 0:
            path = self.fd_path(fd)
            if path is not None:
                return f"{fd}<{path}>"
        return str(fd)

    def cstring(self, addr: int, strsize: Optional[int]) -> str:
        return cstring_text(addr, self.inp, strsize)


def cstring_text(addr: int, mem: Dict[int, bytes], strsize: Optional[int]) -> str:
    if addr == 0:
        return "NULL"
    data = mem.get(addr)
    return fmt.hexnum(addr) if data is None else fmt.quote_cstring(data, strsize)


Decoder = Callable[[RenderCtx, int, ArgSpec], Optional[str]]
# The e_* decoders need only the raw arguments and the memory copied in: (args, index, N of kind:N
# (see index_of), memory copied in by address, strsize). The render plans call them without a
# RenderCtx when there is no -y.
EntryDecoder = Callable[[Args, int, int, Memory, int], Optional[str]]


def param(c: RenderCtx, spec: ArgSpec) -> int:
    assert isinstance(spec.param, int)
    return c.args[spec.param]


def param_index(spec: ArgSpec) -> int:
    assert isinstance(spec.param, int)
    return spec.param


def index_of(spec: ArgSpec) -> int:
    """N of a ``kind:N`` spec (the index of a related argument), -1 for other specs."""
    return spec.param if isinstance(spec.param, int) else -1


def table_of(spec: ArgSpec) -> xlat.Xlat:
    assert isinstance(spec.param, xlat.Xlat)
    return spec.param


# --- numbers: printed from the value alone ------------------------------------------------------------
# The render plans call the v_* functions directly, without a RenderCtx (see kinds.VALUES); the d_*
# decoders wrap them for the registry. Descriptors print from their value alone only without -y.
ValueDecoder = Callable[[int], str]


def v_int(value: int) -> str:
    value &= 0xFFFFFFFF  # fmt.s32, inlined: the most common argument (descriptors too, without -y)
    return str(value - 0x100000000 if value & 0x80000000 else value)


def v_long(value: int) -> str:
    return str(fmt.s64(value))


def v_uint(value: int) -> str:
    return str(value & 0xFFFFFFFF)


def v_uid(value: int) -> str:
    value &= 0xFFFFFFFF
    return "-1" if value == 0xFFFFFFFF else str(value)


def v_dirfd(value: int) -> str:
    fd = fmt.s32(value)
    return "AT_FDCWD" if fd == xlat.AT_FDCWD else str(fd)


def v_signal(value: int) -> str:
    return fmt.signal(fmt.s32(value))


def enum_text(value: int, table: xlat.Xlat) -> str:
    for candidate in (fmt.s32(value), fmt.u32(value), value):
        if candidate in table:
            return fmt.enum(candidate, table)
    return fmt.unknown(fmt.u32(value) if value >> 32 in (0, 0xFFFFFFFF) else value, table)


def flags_text(value: int, table: xlat.Xlat) -> str:
    if value >> 32 == 0xFFFFFFFF:
        value = fmt.u32(value)  # an int flags argument sign-extended by the caller
    return fmt.flags(value, table)


def v_mode(value: int) -> str:
    return fmt.octal_mode(fmt.u32(value))


def open_flags(value: int) -> str:
    value = fmt.u32(value)
    acc = xlat.OPEN_ACCMODE.get(value & 3) or "O_ACCMODE"
    rest = value & ~3
    return acc if rest == 0 else acc + "|" + fmt.flags(rest, xlat.OPEN_FLAGS)


def v_oflags_noacc(value: int) -> str:
    return fmt.flags(fmt.u32(value), xlat.OPEN_FLAGS)


def v_accmode(value: int) -> str:
    return fmt.flags(fmt.u32(value), xlat.ACCESS_MODES, zero="F_OK")


def mmap_flags(value: int) -> str:
    value = fmt.u32(value)
    kind = value & 0xF
    parts = [xlat.MAP_TYPES.get(kind) or fmt.hexnum(kind)]
    if value & ~0xF:
        parts.append(fmt.flags(value & ~0xF, xlat.MAP_FLAGS))
    return "|".join(parts)


def v_mknod_mode(value: int) -> str:
    return fmt.file_mode(fmt.u32(value))


def v_statx_flags(value: int) -> str:
    value = fmt.u32(value)
    sync = xlat.STATX_SYNC.get(value & 0x6000) or "AT_STATX_SYNC_AS_STAT"
    rest = value & ~0x6000
    return sync if not rest else sync + "|" + fmt.flags(rest, xlat.AT_FLAGS)


def v_statx_mask(value: int) -> str:
    return fmt.flags(fmt.u32(value), xlat.STATX_MASKS)


def v_ipckey(value: int) -> str:
    return "IPC_PRIVATE" if fmt.s32(value) == 0 else f"{fmt.u32(value):#x}"


def v_ipcflags(value: int) -> str:
    value = fmt.u32(value)
    names, _ = fmt.flag_names(value & ~0o777, xlat.IPC_FLAGS)
    return "|".join([*names, fmt.octal_mode(value & 0o777)])


def d_int(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    return v_int(c.args[i])


def d_long(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    return v_long(c.args[i])


def d_uint(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    return v_uint(c.args[i])


def d_ulong(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    return str(c.args[i])


def d_hex(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    return fmt.hexnum(c.args[i])


def d_pointer(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    return fmt.pointer(c.args[i])


def d_uid(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    return v_uid(c.args[i])


def d_fd(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    return c.fd(c.args[i])


def d_dirfd(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    if fmt.s32(c.args[i]) != xlat.AT_FDCWD:
        return c.fd(c.args[i])
    cwd = c.fd_path(xlat.AT_FDCWD) if c.fd_path is not None else None
    return "AT_FDCWD" if cwd is None else f"AT_FDCWD<{cwd}>"


def d_signal(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    return v_signal(c.args[i])


def d_enum(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    return enum_text(c.args[i], table_of(spec))


def d_flags(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    return flags_text(c.args[i], table_of(spec))


def d_mode(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    return v_mode(c.args[i])


def d_oflags(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    return open_flags(c.args[i])


def d_oflags_noacc(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    return v_oflags_noacc(c.args[i])


O_CREAT, O_TMPFILE_BIT = 0o100, 0o20000000


def e_omode(args: Args, i: int, n: int, inp: Memory, strsize: int) -> Optional[str]:
    if args[n] & (O_CREAT | O_TMPFILE_BIT):
        return fmt.octal_mode(fmt.u32(args[i]))
    return None


def d_omode(c: RenderCtx, i: int, spec: ArgSpec) -> Optional[str]:
    return e_omode(c.args, i, param_index(spec), c.inp, c.strsize)


def d_accmode(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    return v_accmode(c.args[i])


def d_mmapflags(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    return mmap_flags(c.args[i])


def d_mknod_mode(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    return v_mknod_mode(c.args[i])


def e_dev(args: Args, i: int, n: int, inp: Memory, strsize: int) -> Optional[str]:
    mode = args[n] & 0o170000
    if mode not in (0o020000, 0o060000):
        return None  # mknod prints the device only for character and block special files
    return fmt.dev(args[i])


def d_dev(c: RenderCtx, i: int, spec: ArgSpec) -> Optional[str]:
    return e_dev(c.args, i, param_index(spec), c.inp, c.strsize)


def d_statx_flags(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    return v_statx_flags(c.args[i])


def d_statx_mask(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    return v_statx_mask(c.args[i])


def d_ipckey(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    return v_ipckey(c.args[i])


def d_ipcflags(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    return v_ipcflags(c.args[i])


def e_mremap_addr(args: Args, i: int, n: int, inp: Memory, strsize: int) -> Optional[str]:
    return fmt.pointer(args[i]) if args[3] & 2 else None  # only with MREMAP_FIXED


def d_mremap_addr(c: RenderCtx, i: int, spec: ArgSpec) -> Optional[str]:
    return e_mremap_addr(c.args, i, index_of(spec), c.inp, c.strsize)


# --- strings and buffers ------------------------------------------------------------------------------
def e_path(args: Args, i: int, n: int, inp: Memory, strsize: int) -> str:
    addr = args[i]  # cstring_text, inlined: most calls take a path
    data = inp.get(addr)
    if data is None or addr == 0:
        return cstring_text(addr, inp, None)
    return fmt.quote_cstring(data, None)


def e_str(args: Args, i: int, n: int, inp: Memory, strsize: int) -> str:
    return cstring_text(args[i], inp, strsize)


def d_path(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    return cstring_text(c.args[i], c.inp, None)


def d_str(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    return cstring_text(c.args[i], c.inp, c.strsize)


def buffer_text(addr: int, size: int, mem: Dict[int, bytes], strsize: int, force_hex: bool = False) -> str:
    if addr == 0:
        return "NULL"
    data = mem.get(addr)
    if data is None:
        return fmt.hexnum(addr) if size else '""'
    return fmt.quote_buffer(data, size, strsize, force_hex)


def buffer(c: RenderCtx, mem: Dict[int, bytes], addr: int, size: int, force_hex: bool = False) -> str:
    return buffer_text(addr, size, mem, c.strsize, force_hex)


def e_ibuf(args: Args, i: int, n: int, inp: Memory, strsize: int) -> str:
    addr = args[i]
    data = inp.get(addr)
    if data is None or addr == 0:
        return buffer_text(addr, args[n], inp, strsize)
    # buffer_text's and fmt.quote_buffer's common case, inlined: write's data
    size = args[n]
    length = len(data)
    if length > size or length > strsize:
        data = data[: min(size, strsize)]
        length = len(data)
    return f'"{fmt.escape(data)}"...' if size > length else f'"{fmt.escape(data)}"'


def d_ibuf(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    return buffer_text(c.args[i], param(c, spec), c.inp, c.strsize)


def d_obuf(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    if not c.ok:
        return fmt.pointer(c.args[i])
    return buffer(c, c.out, c.args[i], min(c.ret, param(c, spec)))


def d_random_out(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    if not c.ok:
        return fmt.pointer(c.args[i])
    return buffer(c, c.out, c.args[i], c.ret, force_hex=True)


def d_cwd_out(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    data = c.out.get(c.args[i])
    if not c.ok or data is None:
        return fmt.pointer(c.args[i])
    return fmt.quote_cstring(data, None)


def d_xattr_in(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    return buffer_text(c.args[i], param(c, spec), c.inp, c.strsize)


def d_xattr_list(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    data = c.out.get(c.args[i])
    if not c.ok or data is None:
        return fmt.pointer(c.args[i])
    names = [fmt.quote_cstring(n + b"\0", c.strsize) for n in data.rstrip(b"\0").split(b"\0")]
    return fmt.array(names)


# --- structures copied in ------------------------------------------------------------------------------
def struct_in(parse: Callable[[bytes], Optional[T]], show: Callable[[T], str]) -> Decoder:
    def decode(c: RenderCtx, i: int, spec: ArgSpec) -> str:
        data = c.inp.get(c.args[i])
        value = parse(data) if data is not None else None
        return fmt.pointer(c.args[i]) if value is None else show(value)

    return decode


def struct_out(parse: Callable[[bytes], Optional[T]], show: Callable[[T], str]) -> Decoder:
    def decode(c: RenderCtx, i: int, spec: ArgSpec) -> str:
        data = c.out.get(c.args[i]) if c.ok else None
        value = parse(data) if data is not None else None
        return fmt.pointer(c.args[i]) if value is None else show(value)

    return decode


def show_timespec(ts: Pair) -> str:
    return fmt.timespec(ts)


def show_timeval(tv: Pair) -> str:
    return fmt.timeval(tv)


def show_two(show: Callable[[Pair], str]) -> Callable[[List[Pair]], str]:
    def both(value: List[Pair]) -> str:
        return fmt.array([show(value[0]), show(value[1])])

    return both


def show_itimerspec(value: List[Pair]) -> str:
    return f"{{it_interval={fmt.timespec(value[0])}, it_value={fmt.timespec(value[1])}}}"


def show_itimerval(value: List[Pair]) -> str:
    return f"{{it_interval={fmt.timeval(value[0])}, it_value={fmt.timeval(value[1])}}}"


def rlimit_shower(infinity: str) -> Callable[[Pair], str]:
    def show(value: Pair) -> str:
        cur, lim = value
        return f"{{rlim_cur={fmt.rlim(cur, infinity)}, rlim_max={fmt.rlim(lim, infinity)}}}"

    return show


def show_stat(st: S.Stat) -> str:
    fields = [f"st_mode={fmt.file_mode(st.mode)}"]
    if st.mode & 0o170000 in (0o020000, 0o060000):
        fields.append(f"st_rdev={fmt.dev(st.rdev)}")
    else:
        fields.append(f"st_size={st.size}")
    return fmt.struct(fields, more=True)


def show_statx(stx: S.Statx) -> str:
    return fmt.struct(
        [
            f"stx_mask={fmt.flags(stx.mask, xlat.STATX_MASKS)}",
            f"stx_attributes={fmt.flags(stx.attributes, xlat.STATX_ATTRS)}",
            f"stx_mode={fmt.file_mode(stx.mode)}",
            f"stx_size={stx.size}",
        ],
        more=True,
    )


FS_MAGICS = xlat.Xlat(
    [
        (0xEF53, "EXT2_SUPER_MAGIC"),
        (0x01021994, "TMPFS_MAGIC"),
        (0x9FA0, "PROC_SUPER_MAGIC"),
        (0x62656572, "SYSFS_MAGIC"),
        (0x794C7630, "OVERLAYFS_SUPER_MAGIC"),
        (0x9123683E, "BTRFS_SUPER_MAGIC"),
        (0x58465342, "XFS_SUPER_MAGIC"),
        (0x1CD1, "DEVPTS_SUPER_MAGIC"),
        (0x6969, "NFS_SUPER_MAGIC"),
        (0x27E0EB, "CGROUP_SUPER_MAGIC"),
        (0x63677270, "CGROUP2_SUPER_MAGIC"),
        (0x65735546, "FUSE_SUPER_MAGIC"),
    ]
)
ST_FLAGS = xlat.Xlat(
    [
        (0x1, "ST_RDONLY"),
        (0x2, "ST_NOSUID"),
        (0x4, "ST_NODEV"),
        (0x8, "ST_NOEXEC"),
        (0x10, "ST_SYNCHRONOUS"),
        (0x20, "ST_VALID"),
        (0x40, "ST_MANDLOCK"),
        (0x400, "ST_NOATIME"),
        (0x800, "ST_NODIRATIME"),
        (0x1000, "ST_RELATIME"),
        (0x2000, "ST_NOSYMFOLLOW"),
    ]
)


def show_statfs(sf: S.Statfs) -> str:
    return fmt.struct(
        [
            f"f_type={FS_MAGICS.get(sf.type) or fmt.hexnum(sf.type)}",
            f"f_bsize={sf.bsize}",
            f"f_blocks={sf.blocks}",
            f"f_bfree={sf.bfree}",
            f"f_bavail={sf.bavail}",
            f"f_files={sf.files}",
            f"f_ffree={sf.ffree}",
            f"f_fsid={{val=[{hex(sf.fsid[0] & 0xFFFFFFFF)}, {hex(sf.fsid[1] & 0xFFFFFFFF)}]}}",
            f"f_namelen={sf.namelen}",
            f"f_frsize={sf.frsize}",
            f"f_flags={fmt.flags(sf.flags, ST_FLAGS)}",
        ]
    )


def show_stack(st: S.StackT) -> str:
    flags = fmt.flags(st.flags & 0xFFFFFFFF, xlat.SS_FLAGS)
    return f"{{ss_sp={fmt.pointer(st.sp)}, ss_flags={flags}, ss_size={st.size}}}"


def show_utsname(names: List[bytes]) -> str:
    return fmt.struct([f'sysname="{fmt.escape(names[0])}"', f'nodename="{fmt.escape(names[1])}"'], more=True)


def show_rusage(ru: S.Rusage) -> str:
    return fmt.struct([f"ru_utime={fmt.timeval(ru.utime)}", f"ru_stime={fmt.timeval(ru.stime)}"], more=True)


def show_timezone(data: bytes) -> str:
    west, dst = struct.unpack_from("<ii", data)
    return f"{{tz_minuteswest={west}, tz_dsttime={dst}}}"


def show_utimbuf(data: bytes) -> str:
    actime, modtime = struct.unpack_from("<qq", data)
    return f"{{actime={actime}{fmt.iso_time(actime)}, modtime={modtime}{fmt.iso_time(modtime)}}}"


def show_sysinfo(si: S.Sysinfo) -> str:
    loads = ", ".join(str(x) for x in si.loads)
    return fmt.struct(
        [
            f"uptime={si.uptime}",
            f"loads=[{loads}]",
            f"totalram={si.totalram}",
            f"freeram={si.freeram}",
            f"sharedram={si.sharedram}",
            f"bufferram={si.bufferram}",
            f"totalswap={si.totalswap}",
            f"freeswap={si.freeswap}",
            f"procs={si.procs}",
            f"totalhigh={si.totalhigh}",
            f"freehigh={si.freehigh}",
            f"mem_unit={si.mem_unit}",
        ]
    )


def d_mincore_out(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    data = c.out.get(c.args[i]) if c.ok else None
    if data is None:
        return fmt.pointer(c.args[i])
    shown = [str(b & 1) for b in data[: c.strsize]]
    return fmt.array(shown + (["..."] if len(data) > c.strsize else []))


def show_tms(data: bytes) -> str:
    u, s, cu, cs = struct.unpack_from("<qqqq", data)
    return f"{{tms_utime={u}, tms_stime={s}, tms_cutime={cu}, tms_cstime={cs}}}"


def bracket(parse: Callable[[bytes], Optional[int]]) -> Callable[[bytes], Optional[str]]:
    def inner(data: bytes) -> Optional[str]:
        v = parse(data)
        return None if v is None else f"[{v}]"

    return inner


def identity(data: bytes) -> bytes:
    return data


def fixed_size(size: int) -> Callable[[bytes], Optional[bytes]]:
    def check(data: bytes) -> Optional[bytes]:
        return data if len(data) >= size else None

    return check


def show_str(value: object) -> str:
    return str(value)


def d_sigset_in(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    data = c.inp.get(c.args[i])
    size = param(c, spec)
    if data is None or len(data) != size or size == 0:
        return fmt.pointer(c.args[i])
    return fmt.sigset(data)


def d_sigset_out(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    data = c.out.get(c.args[i]) if c.ok else None
    size = param(c, spec)
    if data is None or len(data) != size or size == 0:
        return fmt.pointer(c.args[i])
    return fmt.sigset(data)


def show_sigaction(sa: S.Sigaction) -> str:
    handler = xlat.SIG_HANDLERS.get(sa.handler) or fmt.hexnum(sa.handler)
    fields = [
        f"sa_handler={handler}",
        f"sa_mask={fmt.sigset(sa.mask)}",
        f"sa_flags={fmt.flags(sa.flags, xlat.SA_FLAGS)}",
    ]
    if sa.flags & xlat.SA_RESTORER:
        fields.append(f"sa_restorer={fmt.pointer(sa.restorer)}")
    return fmt.struct(fields)


def sigaction_at(c: RenderCtx, mem: Dict[int, bytes], i: int, size: int) -> str:
    data = mem.get(c.args[i])
    sa = S.parse_sigaction(data) if data is not None else None
    if sa is None or len(sa.mask) != size or size == 0:
        return fmt.pointer(c.args[i])
    return show_sigaction(sa)


def d_sigact_in(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    return sigaction_at(c, c.inp, i, param(c, spec))


def d_sigact_out(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    return sigaction_at(c, c.out, i, param(c, spec)) if c.ok else fmt.pointer(c.args[i])


# --- sockets ----------------------------------------------------------------------------------------------
def show_sockaddr(data: bytes) -> str:
    sa = S.parse_sockaddr(data)
    if sa is None:
        return "{}"
    family = xlat.ADDRESS_FAMILIES.get(sa.family) or fmt.unknown(sa.family, xlat.ADDRESS_FAMILIES)
    fields = [f"sa_family={family}"]
    body = sa.data
    if sa.family == xlat.AF_INET and len(body) >= 6:
        port = struct.unpack_from(">H", body)[0]
        fields += [
            f"sin_port=htons({port})",
            f'sin_addr=inet_addr("{socket.inet_ntop(socket.AF_INET, body[2:6])}")',
        ]
    elif sa.family == xlat.AF_INET6 and len(body) >= 22:
        port, flow = struct.unpack_from(">HI", body)
        addr = socket.inet_ntop(socket.AF_INET6, body[6:22])
        fields += [
            f"sin6_port=htons({port})",
            f"sin6_flowinfo=htonl({flow})",
            f'inet_pton(AF_INET6, "{addr}", &sin6_addr)',
        ]
        if len(body) >= 26:
            fields.append(f"sin6_scope_id={struct.unpack_from('<I', body, 22)[0]}")
    elif sa.family == xlat.AF_UNIX:
        if body:
            if body[0] == 0:
                fields.append('sun_path=@"' + fmt.escape(body[1:].rstrip(b"\0")) + '"')
            else:
                fields.append('sun_path="' + fmt.escape(body.split(b"\0", 1)[0]) + '"')
    elif sa.family == xlat.AF_NETLINK and len(body) >= 10:
        pid, groups = struct.unpack_from("<II", body, 2)
        fields += [f"nl_pid={pid}", f"nl_groups={groups:08x}"]
    elif body:
        fields.append('sa_data="' + fmt.escape(body) + '"')
    return fmt.struct(fields)


def d_sa_in(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    addr, data = c.args[i], c.inp.get(c.args[i])
    if addr == 0:
        return "NULL"
    return fmt.hexnum(addr) if not data else show_sockaddr(data)


def d_sa_out(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    addr = c.args[i]
    data = c.out.get(addr) if c.ok else None
    if addr == 0:
        return "NULL"
    return fmt.hexnum(addr) if not data else show_sockaddr(data)


def d_socklen_io(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    addr = c.args[i]
    if addr == 0:
        return "NULL"
    before = S.u32(c.inp.get(addr, b""))
    after = S.u32(c.out.get(addr, b"")) if c.ok else None
    if before is None:
        return fmt.hexnum(addr)
    if after is None or after == before:
        return f"[{before}]"
    return f"[{before} => {after}]"


def v_sockfamily(value: int) -> str:
    return fmt.enum(fmt.u32(value), xlat.ADDRESS_FAMILIES)


def d_sockfamily(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    return v_sockfamily(c.args[i])


def sock_type(value: int) -> str:
    value = fmt.u32(value)
    kind = xlat.SOCK_TYPES.get(value & 0xF) or fmt.hexnum(value & 0xF)
    rest = value & ~0xF
    return kind if not rest else kind + "|" + fmt.flags(rest, xlat.SOCK_TYPE_FLAGS)


def d_socktype(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    return sock_type(c.args[i])


def e_sockproto(args: Args, i: int, n: int, inp: Memory, strsize: int) -> str:
    family, proto = fmt.u32(args[0]), fmt.u32(args[i])
    if family in (xlat.AF_INET, xlat.AF_INET6):
        return fmt.enum(proto, xlat.IP_PROTOCOLS)
    if family == xlat.AF_NETLINK:
        return fmt.enum(proto, xlat.NETLINK_PROTOCOLS)
    return str(proto)


def d_sockproto(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    return e_sockproto(c.args, i, index_of(spec), c.inp, c.strsize)


def v_sol(value: int) -> str:
    return fmt.enum(fmt.u32(value), xlat.SOCKET_LEVELS, numeric_default=True)


def d_sol(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    return v_sol(c.args[i])


SOCKOPT_TABLES = {
    xlat.SOL_SOCKET: xlat.SOCKET_OPTIONS,
    xlat.SOL_TCP: xlat.TCP_OPTIONS,
    xlat.SOL_IP: xlat.IP_OPTIONS,
    xlat.SOL_IPV6: xlat.IPV6_OPTIONS,
}


def e_sockopt_name(args: Args, i: int, n: int, inp: Memory, strsize: int) -> str:
    table = SOCKOPT_TABLES.get(fmt.u32(args[1]))
    value = fmt.u32(args[i])
    return str(value) if table is None else fmt.enum(value, table)


def d_sockopt_name(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    return e_sockopt_name(c.args, i, index_of(spec), c.inp, c.strsize)


def show_sockopt(level: int, name: int, data: bytes, strsize: int) -> str:
    if level == xlat.SOL_SOCKET and name == 13 and len(data) >= 8:  # SO_LINGER
        onoff, linger = struct.unpack_from("<ii", data)
        return f"{{l_onoff={onoff}, l_linger={linger}}}"
    if level == xlat.SOL_SOCKET and name == 17 and len(data) >= 12:  # SO_PEERCRED
        pid, uid, gid = struct.unpack_from("<iII", data)
        return f"{{pid={pid}, uid={uid}, gid={gid}}}"
    if len(data) == 4:
        return f"[{struct.unpack('<i', data)[0]}]"
    return fmt.quote_buffer(data, len(data), strsize)


def d_sockopt_in(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    data = c.inp.get(c.args[i])
    if data is None or c.args[i] == 0:
        return fmt.pointer(c.args[i])
    return show_sockopt(fmt.u32(c.args[1]), fmt.u32(c.args[2]), data, c.strsize)


def d_sockopt_out(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    data = c.out.get(c.args[i]) if c.ok else None
    if data is None:
        return fmt.pointer(c.args[i])
    return show_sockopt(fmt.u32(c.args[1]), fmt.u32(c.args[2]), data, c.strsize)


def show_iovecs(
    c: RenderCtx, iovs: Sequence[Tuple[int, int]], mem: Dict[int, bytes], total: Optional[int]
) -> str:
    """``[{iov_base="...", iov_len=3}, ...]``; with ``total`` (bytes transferred) each shows its share."""
    items = []
    left = total
    for k, (base, length) in enumerate(iovs):
        if k >= c.strsize:
            items.append("...")
            break
        size = length if left is None else max(0, min(length, left))
        if left is not None:
            left -= size
        shown = buffer(c, mem, base, size) if (size or base == 0) else '""'
        items.append(f"{{iov_base={shown}, iov_len={length}}}")
    return fmt.array(items)


def iovecs_at(c: RenderCtx, addr: int) -> Optional[List[Tuple[int, int]]]:
    data = c.inp.get(addr)
    return None if data is None else S.parse_iovecs(data)


def d_iov_in(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    iovs = iovecs_at(c, c.args[i])
    return fmt.pointer(c.args[i]) if iovs is None else show_iovecs(c, iovs, c.inp, None)


def d_iov_out(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    iovs = iovecs_at(c, c.args[i])
    if iovs is None or not c.ok:
        return fmt.pointer(c.args[i])
    return show_iovecs(c, iovs, c.out, c.ret)


def show_cmsgs(c: RenderCtx, data: bytes) -> str:
    cmsgs, _ = S.parse_cmsgs(data)
    items = []
    for cm in cmsgs:
        level = xlat.SOCKET_LEVELS.get(cm.level) or str(cm.level)
        fields = [f"cmsg_len={cm.len}", f"cmsg_level={level}"]
        if cm.level == xlat.SOL_SOCKET:
            fields.append(f"cmsg_type={xlat.SCM_TYPES.get(cm.type) or fmt.hexnum(cm.type)}")
        else:
            fields.append(f"cmsg_type={fmt.hexnum(cm.type)}")
        if cm.level == xlat.SOL_SOCKET and cm.type == xlat.SCM_RIGHTS:
            fds = struct.unpack_from(f"<{len(cm.data) // 4}i", cm.data)
            fields.append("cmsg_data=" + fmt.array(c.fd(fd) for fd in fds))
        elif cm.level == xlat.SOL_SOCKET and cm.type == xlat.SCM_CREDENTIALS and len(cm.data) >= 12:
            pid, uid, gid = struct.unpack_from("<iII", cm.data)
            fields.append(f"cmsg_data={{pid={pid}, uid={uid}, gid={gid}}}")
        else:
            fields.append("cmsg_data=" + fmt.quote_buffer(cm.data, len(cm.data), c.strsize))
        items.append(fmt.struct(fields))
    return fmt.array(items)


def show_msghdr(
    c: RenderCtx,
    msg: S.Msghdr,
    data_mem: Dict[int, bytes],
    total: Optional[int],
    namelen_before: Optional[int] = None,
) -> str:
    name = (
        "NULL"
        if msg.name == 0
        else (show_sockaddr(data_mem[msg.name]) if data_mem.get(msg.name) else fmt.hexnum(msg.name))
    )
    iovs = iovecs_at(c, msg.iov)
    namelen = str(msg.namelen)
    if namelen_before is not None and namelen_before != msg.namelen:
        namelen = f"{namelen_before} => {msg.namelen}"
    fields = [
        f"msg_name={name}",
        f"msg_namelen={namelen}",
        "msg_iov=" + (fmt.pointer(msg.iov) if iovs is None else show_iovecs(c, iovs, data_mem, total)),
        f"msg_iovlen={msg.iovlen}",
    ]
    if msg.controllen:
        control = data_mem.get(msg.control)
        shown = fmt.pointer(msg.control) if control is None else show_cmsgs(c, control[: msg.controllen])
        fields.append(f"msg_control={shown}")
    fields += [f"msg_controllen={msg.controllen}", f"msg_flags={fmt.flags(msg.flags, xlat.MSG_FLAGS)}"]
    return fmt.struct(fields)


def d_msg_in(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    data = c.inp.get(c.args[i])
    msg = S.parse_msghdr(data) if data is not None else None
    return fmt.pointer(c.args[i]) if msg is None else show_msghdr(c, msg, c.inp, None)


def d_msg_out(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    data = c.out.get(c.args[i]) if c.ok else None
    msg = S.parse_msghdr(data) if data is not None else None
    before = S.parse_msghdr(c.inp.get(c.args[i], b""))
    namelen_before = before.namelen if before is not None else None
    return fmt.pointer(c.args[i]) if msg is None else show_msghdr(c, msg, c.out, c.ret, namelen_before)


# --- poll, select, epoll ------------------------------------------------------------------------------------
def d_pollfds(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    data = c.inp.get(c.args[i])
    if data is None:
        return fmt.pointer(c.args[i])
    items = []
    for fd, events, _ in S.parse_pollfds(data):
        fields = [f"fd={c.fd(fd)}"]
        if fd >= 0:
            fields.append(f"events={fmt.flags(events & 0xFFFF, xlat.POLL_EVENTS)}")
        items.append(fmt.struct(fields))
    return fmt.array(items)


def poll_result(c: RenderCtx) -> str:
    data = c.out.get(c.args[0])
    if data is None:
        return ""
    # strace prints the result's descriptors as bare numbers, even with -y
    items = [
        f"{{fd={fd}, revents={fmt.flags(revents & 0xFFFF, xlat.POLL_EVENTS)}}}"
        for fd, _, revents in S.parse_pollfds(data)
        if revents
    ]
    return f" ({fmt.array(items)})"


def fdset_text(data: bytes, nfds: int) -> str:
    bits = int.from_bytes(data, "little")
    return "[" + " ".join(str(fd) for fd in range(min(nfds, len(data) * 8)) if bits >> fd & 1) + "]"


def d_fdset(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    data = c.inp.get(c.args[i])
    return fmt.pointer(c.args[i]) if data is None else fdset_text(data, fmt.u32(param(c, spec)))


def select_result(c: RenderCtx) -> str:
    if c.ret == 0:
        return " (Timeout)"
    parts = []
    for label, i in (("in", 1), ("out", 2), ("except", 3)):
        data = c.out.get(c.args[i])
        if data is not None and any(data):
            parts.append(f"{label} {fdset_text(data, fmt.u32(c.args[0]))}")
    return f" ({', '.join(parts)})" if parts else ""


def show_epoll_event(events: int, data: int) -> str:
    return f"{{events={fmt.flags(events, xlat.EPOLL_EVENTS)}, data={{u32={data & 0xFFFFFFFF}, u64={data}}}}}"


def d_epev_in(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    data = c.inp.get(c.args[i])
    evs = S.parse_epoll_events(data) if data is not None else []
    return fmt.pointer(c.args[i]) if not evs else show_epoll_event(*evs[0])


def d_epevs_out(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    if not c.ok:
        return fmt.pointer(c.args[i])
    data = c.out.get(c.args[i], b"")
    return fmt.array(show_epoll_event(ev, d) for ev, d in S.parse_epoll_events(data)[: c.ret])


# --- processes ---------------------------------------------------------------------------------------------
def wait_status(status: int) -> str:
    sig = status & 0x7F
    if sig == 0:
        return f"[{{WIFEXITED(s) && WEXITSTATUS(s) == {(status >> 8) & 0xFF}}}]"
    if sig == 0x7F:
        text = f"WIFSTOPPED(s) && WSTOPSIG(s) == {fmt.signal((status >> 8) & 0xFF)}"
        event = status >> 16
        return f"[{{{text}}} | {event} << 16]" if event else f"[{{{text}}}]"
    if status == 0xFFFF:
        return "[{WIFCONTINUED(s)}]"
    core = " && WCOREDUMP(s)" if status & 0x80 else ""
    return f"[{{WIFSIGNALED(s) && WTERMSIG(s) == {fmt.signal(sig)}{core}}}]"


def d_status_out(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    data = c.out.get(c.args[i]) if c.ok else None
    return fmt.pointer(c.args[i]) if data is None else wait_status(S.u32(data) or 0)


def d_argv(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    data = c.inp.get(c.args[i])
    if data is None:
        return fmt.pointer(c.args[i])
    ptrs = S.ptr_array(data)
    items = [c.cstring(p, c.strsize) for p in ptrs[: c.strsize]]
    if len(ptrs) > c.strsize:
        items.append("...")
    return fmt.array(items)


def d_envp(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    data = c.inp.get(c.args[i])
    if data is None:
        return fmt.pointer(c.args[i])
    count = len(S.ptr_array(data))
    return f"{fmt.hexnum(c.args[i])} /* {count} var{'' if count == 1 else 's'} */"


def d_fds_out(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    data = c.out.get(c.args[i]) if c.ok else None
    fds = S.int_array(data, 2) if data is not None else None
    return fmt.pointer(c.args[i]) if fds is None else fmt.array(c.fd(fd) for fd in fds)


def d_gids(mem_attr: str) -> Decoder:
    def decode(c: RenderCtx, i: int, spec: ArgSpec) -> str:
        mem = c.inp if mem_attr == "inp" else c.out
        data = mem.get(c.args[i]) if (mem_attr == "inp" or c.ok) else None
        if c.args[i] == 0:
            return "NULL"
        if data is None:
            return fmt.pointer(c.args[i])
        return fmt.array(str(g) for g in struct.unpack_from(f"<{len(data) // 4}I", data))

    return decode


# si_code values the kernel gives per signal (<asm-generic/siginfo.h>), 1-based
_SIGNAL_CODES = {
    17: "CLD_EXITED CLD_KILLED CLD_DUMPED CLD_TRAPPED CLD_STOPPED CLD_CONTINUED",  # SIGCHLD
    11: "SEGV_MAPERR SEGV_ACCERR SEGV_BNDERR SEGV_PKUERR SEGV_ACCADI SEGV_ADIDERR SEGV_ADIPERR",  # SIGSEGV
    7: "BUS_ADRALN BUS_ADRERR BUS_OBJERR BUS_MCEERR_AR BUS_MCEERR_AO",  # SIGBUS
    4: "ILL_ILLOPC ILL_ILLOPN ILL_ILLADR ILL_ILLTRP ILL_PRVOPC ILL_PRVREG ILL_COPROC ILL_BADSTK",  # SIGILL
    8: "FPE_INTDIV FPE_INTOVF FPE_FLTDIV FPE_FLTOVF FPE_FLTUND FPE_FLTRES FPE_FLTINV FPE_FLTSUB",  # SIGFPE
    5: "TRAP_BRKPT TRAP_TRACE TRAP_BRANCH TRAP_HWBKPT",  # SIGTRAP
    29: "POLL_IN POLL_OUT POLL_MSG POLL_ERR POLL_PRI POLL_HUP",  # SIGIO
    31: "SYS_SECCOMP SYS_USER_DISPATCH",  # SIGSYS
}
_FAULTS = frozenset({4, 5, 7, 8, 11})  # SIGILL SIGTRAP SIGBUS SIGFPE SIGSEGV: si_addr


def _ticks(value: int) -> str:
    """Clock ticks as strace shows them: ``1 /* 0.01 s */`` (USER_HZ is 100)."""
    return f"{value} /* {value // 100}.{value % 100:02d} s */" if value else "0"


def show_siginfo(si: S.Siginfo) -> str:
    """strace's rendering of a siginfo (printsiginfo): the sender of a user signal, the child of a
    SIGCHLD, the address of a fault; nothing more for other signals from the kernel."""
    fields = [f"si_signo={fmt.signal(si.signo)}"]
    names = _SIGNAL_CODES.get(si.signo, "").split()
    if 0 < si.code <= len(names):
        code = names[si.code - 1]
    else:
        code = xlat.SI_CODES.get(si.code) or str(si.code)
    fields.append(f"si_code={code}")
    if si.code <= 0:  # from a process (kill, tgkill, sigqueue)
        if si.code in (0, -1, -3, -6):  # SI_USER, SI_QUEUE, SI_MESGQ, SI_TKILL
            fields += [f"si_pid={si.pid}", f"si_uid={si.uid}"]
    elif si.signo == 17 and si.code <= 6:
        status = str(si.status) if si.code == 1 else fmt.signal(si.status)
        fields += [f"si_pid={si.pid}", f"si_uid={si.uid}", f"si_status={status}"]
        fields += [f"si_utime={_ticks(si.utime)}", f"si_stime={_ticks(si.stime)}"]
    elif si.signo in _FAULTS:
        fields.append(f"si_addr={fmt.pointer(si.addr)}")
    return fmt.struct(fields)


def d_siginfo_out(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    data = c.out.get(c.args[i]) if c.ok else None
    si = S.parse_siginfo(data) if data is not None else None
    return fmt.pointer(c.args[i]) if si is None else show_siginfo(si)


def d_siginfo_in(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    data = c.inp.get(c.args[i])
    si = S.parse_siginfo(data) if data is not None else None
    return fmt.pointer(c.args[i]) if si is None else show_siginfo(si)


def d_loff_io(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    addr = c.args[i]
    if addr == 0:
        return "NULL"
    before = S.u64(c.inp.get(addr, b""))
    after = S.u64(c.out.get(addr, b"")) if c.ok else None
    if before is None:
        return fmt.hexnum(addr)
    if after is None or after == before:
        return f"[{fmt.s64(before)}]"
    return f"[{fmt.s64(before)}] => [{fmt.s64(after)}]"


def d_dents_out(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    if not c.ok:
        return fmt.pointer(c.args[i])
    data = c.out.get(c.args[i], b"")
    parse = S.parse_dirents64 if c.rec.name == "getdents64" else S.parse_dirents
    count = len(parse(data))
    return f"{fmt.hexnum(c.args[i])} /* {count} entr{'y' if count == 1 else 'ies'} */"


def d_cpuset(mem_attr: str) -> Decoder:
    def decode(c: RenderCtx, i: int, spec: ArgSpec) -> str:
        mem = c.inp if mem_attr == "inp" else c.out
        data = mem.get(c.args[i]) if (mem_attr == "inp" or c.ok) else None
        if data is None:
            return fmt.pointer(c.args[i])
        bits = int.from_bytes(data, "little")
        return "[" + " ".join(str(b) for b in range(len(data) * 8) if bits >> b & 1) + "]"

    return decode


def d_archprctl_arg(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    if c.args[0] in (0x1003, 0x1004):
        data = c.out.get(c.args[i]) if c.ok else None
        return fmt.pointer(c.args[i]) if data is None else f"[{fmt.hexnum(S.u64(data) or 0)}]"
    return fmt.hexnum(c.args[i])


def show_open_how(how: S.OpenHow) -> str:
    fields = [f"flags={open_flags(how.flags)}"]
    if how.flags & (O_CREAT | O_TMPFILE_BIT) or how.mode:
        fields.append(f"mode={fmt.octal_mode(how.mode)}")
    fields.append(f"resolve={fmt.flags(how.resolve, xlat.RESOLVE_FLAGS)}")
    return fmt.struct(fields)


def d_open_how(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    data = c.inp.get(c.args[i])
    how = S.parse_open_how(data) if data is not None else None
    return fmt.pointer(c.args[i]) if how is None else show_open_how(how)


def clone_flags(flags: int) -> str:
    sig = flags & 0xFF
    parts = []
    if flags & ~0xFF:
        parts.append(fmt.flags(flags & ~0xFF, xlat.CLONE_FLAGS))
    if sig:
        parts.append(fmt.signal(sig))
    return "|".join(parts) or "0"


def d_clone_args(c: RenderCtx, i: int, spec: ArgSpec) -> str:
    data = c.inp.get(c.args[i])
    cl = S.parse_clone_args(data) if data is not None else None
    if cl is None:
        return fmt.pointer(c.args[i])
    fields = [f"flags={fmt.flags(cl.flags, xlat.CLONE_FLAGS)}"]
    if cl.flags & xlat.CLONE_PIDFD:
        fields.append(f"pidfd={fmt.pointer(cl.pidfd)}")
    if cl.flags & (xlat.CLONE_CHILD_SETTID | xlat.CLONE_CHILD_CLEARTID):
        fields.append(f"child_tid={fmt.pointer(cl.child_tid)}")
    if cl.flags & xlat.CLONE_PARENT_SETTID:
        fields.append(f"parent_tid={fmt.pointer(cl.parent_tid)}")
    fields.append(f"exit_signal={fmt.signal(cl.exit_signal) if cl.exit_signal else 0}")
    fields += [f"stack={fmt.pointer(cl.stack)}", f"stack_size={fmt.hexnum(cl.stack_size)}"]
    if cl.flags & xlat.CLONE_SETTLS:
        fields.append(f"tls={fmt.pointer(cl.tls)}")
    text = fmt.struct(fields)
    after = []
    if c.ok and cl.flags & xlat.CLONE_PIDFD and cl.pidfd in c.out:
        after.append(f"pidfd=[{c.fd(S.s32(c.out[cl.pidfd]) or 0)}]")
    if c.ok and cl.flags & xlat.CLONE_PARENT_SETTID and cl.parent_tid in c.out:
        after.append(f"parent_tid=[{S.s32(c.out[cl.parent_tid])}]")
    return text + (" => " + fmt.struct(after) if after else "")
