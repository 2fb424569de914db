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
from typing import Callable, Dict, List, Optional, Tuple

from . import fmt, xlat
from ._table import SYSCALL_NAMES
from .abi32 import x86_64_twin
from .calls import CALL_DECODERS, Piece, WholeDecoder, fcntl_result, prctl_result
from .decoders import (
    Decoder,
    EntryDecoder,
    FdPath,
    RenderCtx,
    ValueDecoder,
    index_of,
    padded,
    poll_result,
    select_result,
    v_int,
)
from .kinds import (
    DECODERS,
    DYNAMIC_EXIT_KINDS,
    ENTRY_DECODERS,
    ENTRY_DECODERS_WITH_N,
    EXIT_KINDS,
    at_exit,
    memoized,
    remember,
    value_decoder,
)
from .record import SyscallRecord
from .signatures import ArgSpec, prototype, return_kind

# A decoder that meets memory it cannot make sense of (a short struct, a bogus length) must not take
# the trace down: the argument prints as its raw value instead.
DECODE_ERRORS = (struct.error, ValueError, KeyError, IndexError, TypeError, OverflowError, AssertionError)


def call_name(rec: SyscallRecord) -> str:
    return rec.name or SYSCALL_NAMES.get(rec.nr) or f"syscall_{rec.nr:#x}"


# --- plans: what printing a call needs, worked out once per call name ------------------------------
# How an argument's phase is known: never printed at exit, always, or it depends on other arguments.
ENTRY, EXIT, DEPENDS = 0, 1, 2
# (index, value decoder or None, decoder, spec, phase rule): the value decoder, when there is one,
# prints the argument from its raw value alone, faster than the decoder and without a RenderCtx.
Step = Tuple[int, Optional[ValueDecoder], Decoder, ArgSpec, int]
# The steps of format_call without -y, where the phase of an argument does not matter (it decides
# which descriptor paths print): (index, memo, value decoder, entry decoder, N of kind:N, decoder,
# spec) with one of the three decoders, the first that applies (the others need less than a
# RenderCtx): a value decoder with a dict of the texts it gave when they are worth keeping, an entry
# decoder (kinds.ENTRY_DECODERS) or the decoder.
Memo = Dict[int, str]
FastStep = Tuple[
    int, Optional[Memo], Optional[ValueDecoder], Optional[EntryDecoder], int, Optional[Decoder], ArgSpec
]
Success = Callable[[RenderCtx], str]


class Plan:
    """A call's rendering, prepared by :func:`plan_for`.

    ``steps`` is None when the call has no prototype (six raw arguments); ``whole`` decodes all the
    arguments at once (calls.CALL_DECODERS). ``fast``: the steps of format_call without -y (None
    for those two), ``fast_ctx``: whether that needs a RenderCtx. ``success`` prints a successful
    result, ``plain_success`` too from the value alone when it can. ``entry_only``: no argument is
    printed at exit.
    """

    __slots__ = ("name", "steps", "whole", "success", "plain_success", "entry_only", "fast", "fast_ctx")

    def __init__(self, name: str) -> None:
        self.name = name
        kind = return_kind(name)
        self.success = SUCCESS.get(kind, _success_d)
        self.plain_success = SUCCESS_BY_VALUE.get(kind)
        specs = prototype(name)
        self.whole: Optional[WholeDecoder] = None
        if specs is not None and len(specs) == 1 and specs[0].kind in CALL_DECODERS:
            self.whole, specs = CALL_DECODERS[specs[0].kind], ()
        self.steps = None if specs is None else tuple(_step(i, spec) for i, spec in enumerate(specs))
        self.entry_only = (
            self.whole is None and self.steps is not None and all(step[4] == ENTRY for step in self.steps)
        )
        self.fast: Optional[Tuple[FastStep, ...]] = None
        if specs is not None and self.whole is None:
            self.fast = tuple(_fast_step(i, spec) for i, spec in enumerate(specs))
        # the fast steps need a RenderCtx (for a decoder, or for the result)
        self.fast_ctx = self.plain_success is None or any(step[5] is not None for step in self.fast or ())


def _step(i: int, spec: ArgSpec) -> Step:
    if spec.kind in EXIT_KINDS:
        phase = EXIT
    else:
        phase = DEPENDS if spec.kind in DYNAMIC_EXIT_KINDS else ENTRY
    found = value_decoder(spec, True)
    value = None if found is None else (memoized(found[0]) if found[1] else found[0])
    return (i, value, DECODERS[spec.kind], spec, phase)


def _fast_step(i: int, spec: ArgSpec) -> FastStep:
    found = value_decoder(spec, False)
    if found is not None:
        return (i, {} if found[1] else None, found[0], None, -1, None, spec)
    entry = ENTRY_DECODERS.get(spec.kind)
    if entry is not None and (spec.kind not in ENTRY_DECODERS_WITH_N or index_of(spec) >= 0):
        return (i, None, None, entry, index_of(spec), None, spec)
    return (i, None, None, None, -1, DECODERS[spec.kind], spec)


_PLANS: Dict[str, Plan] = {}


def plan_for(rec: SyscallRecord) -> Plan:
    """The :class:`Plan` of the record's call, kept by name for the calls that have a prototype."""
    name = call_name(rec)
    plan = _PLANS.get(name)
    if plan is None:
        plan = Plan(name)
        if plan.steps is not None:  # not for any "syscall_0x..." a program may make up
            _PLANS[name] = plan
    return plan


# --- the arguments -----------------------------------------------------------------------------------
def _raw_pieces(c: RenderCtx, count: int) -> List[Piece]:
    return [(fmt.hexnum(a), False) for a in c.args[:count]]


def _entry_texts(c: RenderCtx, steps: Tuple[Step, ...]) -> List[str]:
    """The arguments of a call none of which is printed at exit (the common case)."""
    if c.entry_fd_path is not c.exit_fd_path:
        c.at_phase(False)
    args = c.args
    out: List[str] = []
    for i, value, decode, spec, _ in steps:
        try:
            text = value(args[i]) if value is not None else decode(c, i, spec)
        except DECODE_ERRORS:
            text = fmt.hexnum(args[i])
        if text is not None:
            out.append(text)
    c.fd_path = c.exit_fd_path
    return out


def _texts(c: RenderCtx, plan: Plan) -> Tuple[List[str], int]:
    """The arguments' texts and the index of the first one strace prints at exit (or their count)."""
    steps = plan.steps
    if steps is None or plan.whole is not None:
        ps = pieces(c, plan)
        return [text for text, _ in ps], _split(ps)
    if plan.entry_only:
        out = _entry_texts(c, steps)
        return out, len(out)
    switch = c.entry_fd_path is not c.exit_fd_path  # else the phase does not matter
    if switch:
        c.at_phase(False)
    args = c.args
    out = []
    split = -1
    exit_phase = False
    for i, value, decode, spec, phase in steps:
        try:
            if not exit_phase and phase != ENTRY and (phase == EXIT or at_exit(c, spec)):
                exit_phase = True  # strace prints this argument and all after it at exit
                if switch:
                    c.at_phase(True)
            text = value(args[i]) if value is not None else decode(c, i, spec)
        except DECODE_ERRORS:
            text = fmt.hexnum(args[i])
        if text is not None:
            if exit_phase and split < 0:
                split = len(out)
            out.append(text)
    c.fd_path = c.exit_fd_path
    return out, (len(out) if split < 0 else split)


def pieces(c: RenderCtx, plan: Optional[Plan] = None) -> List[Piece]:
    """The call's arguments as text, each tagged with whether strace prints it at exit."""
    plan = plan or plan_for(c.rec)
    if plan.steps is None:
        return _raw_pieces(c, 6)
    if plan.whole is not None:
        try:
            return plan.whole(c)
        except DECODE_ERRORS:
            return _raw_pieces(c, 6)
    texts, k = _texts(c, plan)
    return [(text, j >= k) for j, text in enumerate(texts)]


def _split(ps: List[Piece]) -> int:
    """The index of the first argument printed at exit (strace prints everything after it then too)."""
    for k, (_, exit_phase) in enumerate(ps):
        if exit_phase:
            return k
    return len(ps)


# --- the result --------------------------------------------------------------------------------------
_ERRNO_TEXTS: Dict[int, str] = {}


def _errno_text(code: int) -> str:
    text = _ERRNO_TEXTS.get(code)
    if text is None:
        name = xlat.errno_name(code)
        message = xlat.errno_text(code)
        if code in xlat.RESTART_ERRNOS:
            text = f"? {name} ({message})"
        else:
            text = f"-1 {name or 'E???'} ({message})"
        if len(_ERRNO_TEXTS) < 8192:
            _ERRNO_TEXTS[code] = text
    return text


def format_return(c: RenderCtx, plan: Optional[Plan] = None) -> str:
    """What follows ``= ``: the value, or ``-1 ENOENT (No such file or directory)``, or ``?``."""
    rec = c.rec
    ret = rec.ret
    text = _unsuccessful(ret) if ret is None or -4096 < ret < 0 else (plan or plan_for(rec)).success(c)
    return text + " (INJECTED)" if rec.injected else text


def _unsuccessful(ret: Optional[int]) -> str:
    """``?`` for a call whose return was not seen, else the errno text of a failed one."""
    return "?" if ret is None else _errno_text(-ret)


def _success_d(c: RenderCtx) -> str:
    return str(c.ret)


def _hex_result(ret: int) -> str:
    return fmt.hexnum(ret & 0xFFFFFFFFFFFFFFFF)


def _sched_policy(ret: int) -> str:
    return f"{ret} ({fmt.enum(ret, xlat.SCHED_POLICIES)})"


def _unknown_result(ret: int) -> str:
    return "?"


SUCCESS: Dict[str, Success] = {
    "d": _success_d,
    "hex": lambda c: _hex_result(c.ret),
    "fd": lambda c: c.fd(c.ret),
    "oct": lambda c: fmt.octal_mode(c.ret),
    "none": lambda c: "?",
    "poll": lambda c: str(c.ret) + (" (Timeout)" if c.ret == 0 else poll_result(c)),
    "select": lambda c: str(c.ret) + select_result(c),
    "fcntl": fcntl_result,
    "prctl": prctl_result,
    "sched_policy": lambda c: _sched_policy(c.ret),
}
# The results that print from the value alone (a descriptor: without -y).
SUCCESS_BY_VALUE: Dict[str, ValueDecoder] = {
    "d": str,
    "hex": _hex_result,
    "fd": v_int,
    "oct": fmt.octal_mode,
    "none": _unknown_result,
    "sched_policy": _sched_policy,
}


# --- lines -------------------------------------------------------------------------------------------
def _plain_result(rec: SyscallRecord, success: ValueDecoder) -> str:
    """format_return without -y, for a result that prints from its value."""
    ret = rec.ret
    text = _unsuccessful(ret) if ret is None or -4096 < ret < 0 else success(ret)
    return text + " (INJECTED)" if rec.injected else text


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
    if rec.abi is not None and x86_64_twin(rec.name) is None:
        return f"{rec.name}({_compat_args(rec)}) = {_compat_result(rec)}"
    plan = _PLANS.get(rec.name) or plan_for(rec)
    steps = plan.fast
    if steps is None or fd_path is not None or entry_fd_path is not None:
        return _ctx_line(rec, plan, strsize, fd_path, entry_fd_path)
    # Without -y, most lines: from the raw values and the memory copied in, with a RenderCtx only if
    # an argument needs one. (The loop inlines kinds.memoized: most arguments are flags or descriptors.)
    args = rec.args
    if len(args) != 6 or type(args) is not tuple:
        args = padded(args)
    inp = dict(rec.copy_from_user) if rec.copy_from_user else {}
    c = RenderCtx(rec, strsize, None) if plan.fast_ctx else None
    texts: List[str] = []
    for i, memo, value, entry, n, decode, spec in steps:
        try:
            if memo is not None:
                text = memo.get(args[i])
                if text is None and value is not None:
                    text = remember(memo, args[i], value)
            elif value is not None:
                text = value(args[i])
            elif entry is not None:
                text = entry(args, i, n, inp, strsize)
            else:
                text = decode(c, i, spec) if decode is not None and c is not None else None
        except DECODE_ERRORS:
            text = fmt.hexnum(args[i])
        if text is not None:
            texts.append(text)
    success, ret = plan.plain_success, rec.ret
    if success is None:
        result = format_return(c or RenderCtx(rec, strsize, None), plan)
    elif ret is not None and not -4096 < ret < 0 and not rec.injected:
        result = success(ret)
    else:
        result = _plain_result(rec, success)
    return f"{plan.name}({', '.join(texts)}) = {result}"


def _ctx_line(
    rec: SyscallRecord, plan: Plan, strsize: int, fd_path: Optional[FdPath], entry_fd_path: Optional[FdPath]
) -> str:
    """format_call through a RenderCtx: with -y, and for calls without steps (raw, decoded whole)."""
    c = RenderCtx(rec, strsize, fd_path, entry_fd_path)
    if plan.entry_only:
        args = ", ".join(_entry_texts(c, plan.steps or ()))
    else:
        args = ", ".join(_texts(c, plan)[0])
    return f"{plan.name}({args}) = {format_return(c, plan)}"


def format_entry(rec: SyscallRecord, strsize: int = 32, fd_path: Optional[FdPath] = None) -> str:
    """What strace prints at entry for an unfinished call: ``read(3, ``, ``futex(0x1, FUTEX_WAIT, 2, NULL``.

    The caller appends `` <unfinished ...>``.
    """
    if rec.abi is not None and x86_64_twin(rec.name) is None:
        return f"{rec.name}({_compat_args(rec)}"
    plan = _PLANS.get(rec.name) or plan_for(rec)
    texts, k = _texts(RenderCtx(rec, strsize, fd_path), plan)
    head = ", ".join(texts[:k])
    return f"{plan.name}({head}" + (", " if k < len(texts) and k > 0 else "")


def format_resumed(rec: SyscallRecord, strsize: int = 32, fd_path: Optional[FdPath] = None) -> str:
    """The rest of the call once it returned: ``<... read resumed>"data"..., 4096) = 10``."""
    if rec.abi is not None and x86_64_twin(rec.name) is None:
        return f"<... {rec.name} resumed>) = {_compat_result(rec)}"
    plan = _PLANS.get(rec.name) or plan_for(rec)
    c = RenderCtx(rec, strsize, fd_path)
    texts, k = _texts(c, plan)
    return f"<... {plan.name} resumed>{', '.join(texts[k:])}) = {format_return(c, plan)}"


def _hex_data(data: bytes, size: Optional[int]) -> str:
    if size is not None and len(data) > size:
        return data[:size].hex() + "..."
    return data.hex()


def _raw_ret(ret: Optional[int]) -> str:
    if ret is None:
        return "?"
    return f"-{-ret:x}" if ret < 0 else f"{ret:x}"


def _compat_args(rec: SyscallRecord) -> str:
    """The arguments of an i386 call (``int $0x80``) the x86-64 decoders would misread (structs with
    32-bit pointers and longs): in hex, as strace's ``-e raw=``; as many as the x86-64 call of that
    name has, or all six."""
    spec = prototype(rec.name)
    count = len(spec) if spec is not None else 6
    return ", ".join(f"{a & 0xFFFFFFFF:#x}" for a in rec.args[:count])


def _compat_result(rec: SyscallRecord) -> str:
    ret = rec.ret
    result = _unsuccessful(ret) if ret is None or -4096 < ret < 0 else str(ret)
    return result + (" (INJECTED)" if rec.injected else "")


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
