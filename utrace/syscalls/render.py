"""strace-style lines for system call records, and the raw record stream.

``format_call`` gives strace's line without its column alignment::

    openat(AT_FDCWD, "/etc/passwd", O_RDONLY|O_CLOEXEC) = 3
    read(3, "root:x:0:0:"..., 4096) = 1234
    openat(AT_FDCWD, "/nonexistent", O_RDONLY) = -1 ENOENT (No such file or directory)

``format_entry`` and ``format_resumed`` are the two halves strace prints when another thread's line
comes in between: ``read(3, `` (followed by `` <unfinished ...>``) and
``<... read resumed>"root:x:0:0:"..., 4096) = 1234``.
"""

from __future__ import annotations

import struct
from typing import List, Optional

from . import fmt, xlat
from ._table import SYSCALL_NAMES
from .calls import CALL_DECODERS, Piece, fcntl_result, prctl_result
from .decoders import FdPath, RenderCtx, poll_result, select_result
from .kinds import DECODERS, at_exit
from .record import SyscallRecord
from .signatures import prototype, return_kind

# A decoder that meets memory it cannot make sense of (a short struct, a bogus length) must not take
# the trace down: the argument prints as its raw value instead.
DECODE_ERRORS = (struct.error, ValueError, KeyError, IndexError, TypeError, OverflowError, AssertionError)


def call_name(rec: SyscallRecord) -> str:
    return rec.name or SYSCALL_NAMES.get(rec.nr) or f"syscall_{rec.nr:#x}"


def _raw_pieces(c: RenderCtx, count: int) -> List[Piece]:
    return [(fmt.hexnum(a), False) for a in c.args[:count]]


def pieces(c: RenderCtx) -> List[Piece]:
    """The call's arguments as text, each tagged with whether strace prints it at exit."""
    specs = prototype(call_name(c.rec))
    if specs is None:
        return _raw_pieces(c, 6)
    if len(specs) == 1 and specs[0].kind in CALL_DECODERS:
        try:
            return CALL_DECODERS[specs[0].kind](c)
        except DECODE_ERRORS:
            return _raw_pieces(c, 6)
    out: List[Piece] = []
    exit_phase = False
    for i, spec in enumerate(specs):
        try:
            exit_phase = exit_phase or at_exit(c, spec)
            c.at_phase(exit_phase)
            text = DECODERS[spec.kind](c, i, spec)
        except DECODE_ERRORS:
            text = fmt.hexnum(c.args[i])
        if text is not None:
            out.append((text, exit_phase))
    c.at_phase(True)
    return out


def _split(ps: List[Piece]) -> int:
    """The index of the first argument printed at exit (strace prints everything after it then too)."""
    for k, (_, exit_phase) in enumerate(ps):
        if exit_phase:
            return k
    return len(ps)


def _errno_text(code: int) -> str:
    name = xlat.errno_name(code)
    text = xlat.errno_text(code)
    if code in xlat.RESTART_ERRNOS:
        return f"? {name} ({text})"
    return f"-1 {name or 'E???'} ({text})"


def format_return(c: RenderCtx) -> str:
    """What follows ``= ``: the value, or ``-1 ENOENT (No such file or directory)``, or ``?``."""
    rec = c.rec
    if rec.ret is None:
        text = "?"
    elif rec.is_error:
        text = _errno_text(-rec.ret)
    else:
        text = _success(c, return_kind(call_name(rec)))
    if rec.injected:
        text += " (INJECTED)"
    return text


def _success(c: RenderCtx, kind: str) -> str:
    ret = c.ret
    if kind == "hex":
        return fmt.hexnum(ret & 0xFFFFFFFFFFFFFFFF)
    if kind == "fd":
        return c.fd(ret)
    if kind == "oct":
        return fmt.octal_mode(ret)
    if kind == "none":
        return "?"
    if kind == "poll":
        return str(ret) + (" (Timeout)" if ret == 0 else poll_result(c))
    if kind == "select":
        return str(ret) + select_result(c)
    if kind == "fcntl":
        return fcntl_result(c)
    if kind == "prctl":
        return prctl_result(c)
    if kind == "sched_policy":
        return f"{ret} ({fmt.enum(ret, xlat.SCHED_POLICIES)})"
    return str(ret)


def format_call(
    rec: SyscallRecord,
    strsize: int = 32,
    fd_path: Optional[FdPath] = None,
    entry_fd_path: Optional[FdPath] = None,
) -> str:
    """The whole strace line (without strace's alignment of ``=`` to column 40).

    ``fd_path(fd)`` names a descriptor for ``-y`` (``3</etc/passwd>``); ``fd_path(AT_FDCWD)``, with
    AT_FDCWD = -100, names the working directory. strace resolves the descriptors of the arguments
    it prints at entry when the call starts (``close(3</etc/passwd>)``, ``dup2(4, 1</dev/null>)``):
    give ``entry_fd_path`` as a lookup of that moment (a snapshot taken at entry) to match it.
    """
    c = RenderCtx(rec, strsize, fd_path, entry_fd_path)
    args = ", ".join(text for text, _ in pieces(c))
    return f"{call_name(rec)}({args}) = {format_return(c)}"


def format_entry(rec: SyscallRecord, strsize: int = 32, fd_path: Optional[FdPath] = None) -> str:
    """What strace prints at entry for an unfinished call: ``read(3, ``, ``futex(0x1, FUTEX_WAIT, 2, NULL``.

    The caller appends `` <unfinished ...>``.
    """
    c = RenderCtx(rec, strsize, fd_path)
    ps = pieces(c)
    k = _split(ps)
    head = ", ".join(text for text, _ in ps[:k])
    return f"{call_name(rec)}({head}" + (", " if k < len(ps) and k > 0 else "")


def format_resumed(rec: SyscallRecord, strsize: int = 32, fd_path: Optional[FdPath] = None) -> str:
    """The rest of the call once it returned: ``<... read resumed>"data"..., 4096) = 10``."""
    c = RenderCtx(rec, strsize, fd_path)
    ps = pieces(c)
    tail = ", ".join(text for text, _ in ps[_split(ps) :])
    return f"<... {call_name(rec)} resumed>{tail}) = {format_return(c)}"


def _hex_data(data: bytes, size: Optional[int]) -> str:
    if size is not None and len(data) > size:
        return data[:size].hex() + "..."
    return data.hex()


def _raw_ret(ret: Optional[int]) -> str:
    if ret is None:
        return "?"
    return f"-{-ret:x}" if ret < 0 else f"{ret:x}"


def format_raw(rec: SyscallRecord, size: Optional[int] = 32) -> List[str]:
    """The raw record stream: numbers in hex, memory as hex bytes (cut to ``size`` bytes, None: all).

    ::

        NR 0 (3, 7ffc1234, 1000, 0, 0, 0)
        COPY_TO_USER 7ffc1234 726f6f743a783a303a30...
        NR 0 = 1000
    """
    lines = [f"NR {rec.nr} (" + ", ".join(f"{a:x}" for a in rec.args) + ")"]
    lines += [f"COPY_FROM_USER {addr:x} {_hex_data(data, size)}" for addr, data in rec.copy_from_user]
    if rec.ret is not None:
        lines += [f"COPY_TO_USER {addr:x} {_hex_data(data, size)}" for addr, data in rec.copy_to_user]
        injected = f" (injected: {rec.injected})" if rec.injected else ""
        lines.append(f"NR {rec.nr} = {_raw_ret(rec.ret)}{injected}")
    return lines
