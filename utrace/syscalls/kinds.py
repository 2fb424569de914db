"""The registry of argument kinds: kind name -> decoder, and which kinds strace prints at exit.

:mod:`signatures` names the kinds, :mod:`capture` says what memory each needs, the decoders in
:mod:`decoders` (one argument) and :mod:`calls` (arguments that depend on each other) print them.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple

from . import calls as C
from . import decoders as D
from . import fmt, xlat
from . import structs as S
from .capture import F_GETLK, F_OFD_GETLK
from .decoders import Decoder, EntryDecoder, RenderCtx, ValueDecoder
from .signatures import ArgSpec

# --- registry ----------------------------------------------------------------------------------------
DECODERS: Dict[str, Decoder] = {
    "d": D.d_int,
    "ld": D.d_long,
    "u": D.d_uint,
    "lu": D.d_ulong,
    "x": D.d_hex,
    "p": D.d_pointer,
    "addr": D.d_pointer,
    "mremap_addr": D.d_mremap_addr,
    "pid": D.d_int,
    "uid": D.d_uid,
    "fd": D.d_fd,
    "dirfd": D.d_dirfd,
    "sig": D.d_signal,
    "E": D.d_enum,
    "F": D.d_flags,
    "mode": D.d_mode,
    "oflags": D.d_oflags,
    "oflags_noacc": D.d_oflags_noacc,
    "omode": D.d_omode,
    "accmode": D.d_accmode,
    "mmapflags": D.d_mmapflags,
    "mknod_mode": D.d_mknod_mode,
    "dev": D.d_dev,
    "statx_flags": D.d_statx_flags,
    "statx_mask": D.d_statx_mask,
    "ipckey": D.d_ipckey,
    "ipcflags": D.d_ipcflags,
    "path": D.d_path,
    "str": D.d_str,
    "ibuf": D.d_ibuf,
    "obuf": D.d_obuf,
    "random_out": D.d_random_out,
    "cwd_out": D.d_cwd_out,
    "xattr_in": D.d_xattr_in,
    "xattr_list": D.d_xattr_list,
    "ts_in": D.struct_in(S.parse_timespec, D.show_timespec),
    "ts_out": D.struct_out(S.parse_timespec, D.show_timespec),
    "ts2_in": D.struct_in(lambda d: S.parse_timespecs(d, 2), D.show_two(fmt.file_timespec)),
    "tv_in": D.struct_in(S.parse_timespec, D.show_timeval),
    "tv_out": D.struct_out(S.parse_timespec, D.show_timeval),
    "tv2_in": D.struct_in(lambda d: S.parse_timespecs(d, 2), D.show_two(fmt.file_timeval)),
    "its_in": D.struct_in(lambda d: S.parse_timespecs(d, 2), D.show_itimerspec),
    "its_out": D.struct_out(lambda d: S.parse_timespecs(d, 2), D.show_itimerspec),
    "itv_in": D.struct_in(lambda d: S.parse_timespecs(d, 2), D.show_itimerval),
    "itv_out": D.struct_out(lambda d: S.parse_timespecs(d, 2), D.show_itimerval),
    "rlim_in": D.struct_in(S.parse_rlimit, D.rlimit_shower("RLIM64_INFINITY")),
    "rlim_out": D.struct_out(S.parse_rlimit, D.rlimit_shower("RLIM64_INFINITY")),
    "stat_out": D.struct_out(S.parse_stat, D.show_stat),
    "statx_out": D.struct_out(S.parse_statx, D.show_statx),
    "statfs_out": D.struct_out(S.parse_statfs, D.show_statfs),
    "stack_in": D.struct_in(S.parse_stack_t, D.show_stack),
    "stack_out": D.struct_out(S.parse_stack_t, D.show_stack),
    "schedparam_in": D.struct_in(lambda d: S.s32(d), lambda v: f"[{v}]"),
    "schedparam_out": D.struct_out(lambda d: S.s32(d), lambda v: f"[{v}]"),
    "uts_out": D.struct_out(S.parse_utsname, D.show_utsname),
    "rusage_out": D.struct_out(S.parse_rusage, D.show_rusage),
    "tms_out": D.struct_out(D.fixed_size(S.SIZEOF_TMS), D.show_tms),
    "timerid_out": D.struct_out(D.bracket(S.s32), D.show_str),
    "aioctx_out": D.struct_out(
        lambda d: None if S.u64(d) is None else f"[{fmt.hexnum(S.u64(d) or 0)}]", D.show_str
    ),
    "uint_out": D.struct_out(D.bracket(S.u32), D.show_str),
    "uid_out": D.struct_out(D.bracket(S.u32), D.show_str),
    "tz_in": D.struct_in(D.fixed_size(8), D.show_timezone),
    "tz_out": D.struct_out(D.fixed_size(8), D.show_timezone),
    "utimbuf_in": D.struct_in(D.fixed_size(16), D.show_utimbuf),
    "sysinfo_out": D.struct_out(S.parse_sysinfo, D.show_sysinfo),
    "ptr_out": D.struct_out(
        lambda d: None if S.u64(d) is None else f"[{fmt.pointer(S.u64(d) or 0)}]", D.show_str
    ),
    "uint64_out": D.struct_out(D.bracket(S.u64), D.show_str),
    "mincore_out": D.d_mincore_out,
    "time_out": D.struct_out(
        D.bracket(lambda d: None if S.u64(d) is None else fmt.s64(S.u64(d) or 0)), D.show_str
    ),
    "ts_rem": lambda c, i, spec: (
        fmt.timespec(S.parse_timespec(c.out[c.args[i]]) or (0, 0))
        if c.args[i] in c.out
        else fmt.pointer(c.args[i])
    ),
    "sigset_in": D.d_sigset_in,
    "sigset_out": D.d_sigset_out,
    "sigact_in": D.d_sigact_in,
    "sigact_out": D.d_sigact_out,
    "siginfo_in": D.d_siginfo_in,
    "siginfo_out": D.d_siginfo_out,
    "sa_in": D.d_sa_in,
    "sa_out": D.d_sa_out,
    "socklen_io": D.d_socklen_io,
    "sockfamily": D.d_sockfamily,
    "socktype": D.d_socktype,
    "sockproto": D.d_sockproto,
    "sol": D.d_sol,
    "sockopt_name": D.d_sockopt_name,
    "sockopt_in": D.d_sockopt_in,
    "sockopt_out": D.d_sockopt_out,
    "iov_in": D.d_iov_in,
    "iov_out": D.d_iov_out,
    "msg_in": D.d_msg_in,
    "msg_out": D.d_msg_out,
    "pollfds": D.d_pollfds,
    "fdset": D.d_fdset,
    "epev_in": D.d_epev_in,
    "epevs_out": D.d_epevs_out,
    "status_out": D.d_status_out,
    "argv": D.d_argv,
    "envp": D.d_envp,
    "fds_out": D.d_fds_out,
    "gids_in": D.d_gids("inp"),
    "gids_out": D.d_gids("out"),
    "loff_io": D.d_loff_io,
    "dents_out": D.d_dents_out,
    "cpuset_in": D.d_cpuset("inp"),
    "cpuset_out": D.d_cpuset("out"),
    "archprctl_arg": D.d_archprctl_arg,
    "open_how": D.d_open_how,
    "clone_args": D.d_clone_args,
    "fcntl_arg": C.d_fcntl_arg,
    "ioctl_req": C.d_ioctl_req,
    "ioctl_arg": C.d_ioctl_arg,
}

# Kinds printed when the call returns (what the kernel writes), as strace does: an unfinished call's
# line stops before the first of them.
EXIT_KINDS = frozenset(
    {
        "obuf",
        "random_out",
        "cwd_out",
        "xattr_list",
        "ts_out",
        "tv_out",
        "its_out",
        "itv_out",
        "rlim_out",
        "stat_out",
        "statx_out",
        "statfs_out",
        "stack_out",
        "schedparam_out",
        "uts_out",
        "rusage_out",
        "tms_out",
        "timerid_out",
        "aioctx_out",
        "uint_out",
        "uid_out",
        "time_out",
        "ts_rem",
        "sigset_out",
        "sigact_out",
        "siginfo_out",
        "sa_out",
        "socklen_io",
        "sockopt_out",
        "iov_out",
        "msg_out",
        "epevs_out",
        "status_out",
        "fds_out",
        "gids_out",
        "loff_io",
        "dents_out",
        "cpuset_out",
        "tz_out",
        "sysinfo_out",
        "ptr_out",
        "uint64_out",
        "mincore_out",
    }
)


# --- kinds printed from the raw value alone ------------------------------------------------------
# kind -> (the function of the value that prints it, given the spec: the same text as its decoder;
# whether its texts are worth keeping: flags and enums repeat, and their formatting walks tables).
ValueFactory = Callable[[ArgSpec], ValueDecoder]
MEMO_SIZE = 256  # texts kept per argument of a call


def remember(memo: Dict[int, str], value: int, f: ValueDecoder) -> str:
    """``f(value)``, kept in ``memo`` (emptied when full)."""
    if len(memo) >= MEMO_SIZE:
        memo.clear()
    text = memo[value] = f(value)
    return text


def memoized(f: ValueDecoder) -> ValueDecoder:
    """``f`` with a small cache of its results."""
    memo: Dict[int, str] = {}

    def text(value: int) -> str:
        found = memo.get(value)
        return remember(memo, value, f) if found is None else found

    return text


def _plain(f: ValueDecoder) -> ValueFactory:
    return lambda spec: f


def _with_table(f: Callable[[int, xlat.Xlat], str]) -> ValueFactory:
    def make(spec: ArgSpec) -> ValueDecoder:
        table = D.table_of(spec)
        return lambda value: f(value, table)

    return make


VALUES: Dict[str, Tuple[ValueFactory, bool]] = {
    "d": (_plain(D.v_int), False),
    "ld": (_plain(D.v_long), False),
    "u": (_plain(D.v_uint), False),
    "lu": (_plain(str), False),
    "x": (_plain(fmt.hexnum), False),
    "p": (_plain(fmt.pointer), False),
    "addr": (_plain(fmt.pointer), False),
    "pid": (_plain(D.v_int), False),
    "uid": (_plain(D.v_uid), False),
    "sig": (_plain(D.v_signal), True),
    "E": (_with_table(D.enum_text), True),
    "F": (_with_table(D.flags_text), True),
    "mode": (_plain(D.v_mode), True),
    "oflags": (_plain(D.open_flags), True),
    "oflags_noacc": (_plain(D.v_oflags_noacc), True),
    "accmode": (_plain(D.v_accmode), True),
    "mmapflags": (_plain(D.mmap_flags), True),
    "mknod_mode": (_plain(D.v_mknod_mode), True),
    "statx_flags": (_plain(D.v_statx_flags), True),
    "statx_mask": (_plain(D.v_statx_mask), True),
    "ipckey": (_plain(D.v_ipckey), False),
    "ipcflags": (_plain(D.v_ipcflags), True),
    "sockfamily": (_plain(D.v_sockfamily), True),
    "socktype": (_plain(D.sock_type), True),
    "sol": (_plain(D.v_sol), True),
    "ioctl_req": (_plain(C.ioctl_request), True),
}
# Without -y, descriptors too print from their value.
FD_VALUES: Dict[str, Tuple[ValueFactory, bool]] = {
    "fd": (_plain(D.v_int), True),
    "dirfd": (_plain(D.v_dirfd), True),
}


def value_decoder(spec: ArgSpec, fd_paths: bool) -> Optional[Tuple[ValueDecoder, bool]]:
    """The function of the raw value that prints this argument and whether to keep its texts, or
    None when the argument needs a RenderCtx (with -y, descriptors do)."""
    found = VALUES.get(spec.kind) or (None if fd_paths else FD_VALUES.get(spec.kind))
    if found is None:
        return None
    make, keep = found
    return make(spec), keep


# --- kinds printed from the raw arguments and the memory copied in --------------------------------
ENTRY_DECODERS: Dict[str, EntryDecoder] = {
    "path": D.e_path,
    "str": D.e_str,
    "ibuf": D.e_ibuf,
    "xattr_in": D.e_ibuf,
    "omode": D.e_omode,
    "dev": D.e_dev,
    "mremap_addr": D.e_mremap_addr,
    "sockproto": D.e_sockproto,
    "sockopt_name": D.e_sockopt_name,
}
# Those that read a related argument (kind:N): a spec without N prints through the RenderCtx decoder.
ENTRY_DECODERS_WITH_N = frozenset({"ibuf", "xattr_in", "omode", "dev"})


# Kinds printed at exit or at entry depending on the other arguments (see at_exit).
DYNAMIC_EXIT_KINDS = frozenset({"ioctl_arg", "fcntl_arg", "archprctl_arg"})


def at_exit(c: RenderCtx, spec: ArgSpec) -> bool:
    if spec.kind in EXIT_KINDS:
        return True
    if spec.kind == "ioctl_arg":
        return C.ioctl_arg_at_exit(c)
    if spec.kind == "fcntl_arg":
        return fmt.u32(c.args[1]) in (F_GETLK, F_OFD_GETLK)
    if spec.kind == "archprctl_arg":
        return c.args[0] in (0x1003, 0x1004)
    return False
