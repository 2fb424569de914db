"""System call tracing on ptrace syscall stops: records, tampering, and strace-style lines.

Each traced call becomes a SyscallRecord: number and arguments at entry, the user memory the kernel
reads (captured at entry), the user memory it writes (captured at exit, sized by the result), and
the exit value (PTRACE_GET_SYSCALL_INFO gives entry/exit without guessing from orig_rax).

When utrace launches the program and only some calls are wanted, a seccomp filter installed just
before exec returns SECCOMP_RET_TRACE for those and ALLOW for the rest, so untraced calls cost no
stop at all; the exit of a selected call is caught by resuming that one call with PTRACE_SYSCALL.
(The filter is inherited by every child and cannot be removed, and it needs NO_NEW_PRIVS, so a
setuid program run under it does not gain privileges — the same trade-off as strace --seccomp-bpf.)

Tampering (``--inject``, or a handler's deny/emulate): at entry orig_rax is set to -1, so the kernel
skips the call, and at exit rax gets the chosen value. The call is then NOT executed.
"""

from __future__ import annotations

import ctypes
import errno as errno_mod
import os
import re
import struct
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Dict, FrozenSet, List, Optional, Sequence, Tuple

from . import kernel
from .errors import UsageError
from .output import Record
from .syscalls import (
    SYSCALL_NAMES,
    SYSCALL_NUMBERS,
    SyscallRecord,
    capture_entry,
    capture_exit,
    format_call,
    format_entry,
    format_raw,
    format_resumed,
    has_exit_capture,
    i386_name,
    parse_syscall_set,
    readers_for,
)
from .syscalls.abi32 import widen, x86_64_twin
from .syscalls.decoders import show_siginfo
from .syscalls.fmt import quote_cstring
from .syscalls.fmt import signal as fmt_signal
from .syscalls.signatures import argument_names
from .syscalls.structs import parse_siginfo

if TYPE_CHECKING:
    from .engine import Process, Thread
    from .output import Output

AT_FDCWD = -100
EXITS = frozenset((SYSCALL_NUMBERS["exit"], SYSCALL_NUMBERS["exit_group"]))
# Calls that never take the one-stop path: they return twice or not at all, or replace the registers.
NEVER_DEFERRED = frozenset(
    SYSCALL_NUMBERS[name]
    for name in (
        "clone",
        "clone3",
        "fork",
        "vfork",
        "execve",
        "execveat",
        "exit",
        "exit_group",
        "rt_sigreturn",
    )
)


class SyscallHandler:
    """Base class for ``Tracer.trace_syscalls`` handlers.

    ``on_enter`` may return ``("error", ERRNO)`` to deny the call or ``("retval", VALUE)`` to skip it
    with that result (the call is then not executed); ``on_exit`` may return an int to replace the
    result. Returning None leaves the call alone.
    """

    def on_enter(self, rec: SyscallRecord) -> Optional[tuple]:
        return None

    def on_exit(self, rec: SyscallRecord) -> Optional[int]:
        return None


@dataclass
class InjectRule:
    """strace's ``--inject=SET:error=E|retval=N[:when=FIRST[..LAST][+STEP]]``."""

    numbers: FrozenSet[int]
    error: Optional[int] = None
    retval: Optional[int] = None
    first: int = 1
    last: Optional[int] = None
    step: int = 1
    seen: Dict[int, int] = field(default_factory=dict)  # per syscall number: calls so far

    def applies(self, nr: int) -> bool:
        n = self.seen.get(nr, 0) + 1
        self.seen[nr] = n
        if n < self.first or (self.last is not None and n > self.last):
            return False
        return (n - self.first) % self.step == 0

    def value(self) -> int:
        return -self.error if self.error is not None else int(self.retval or 0)


_WHEN = re.compile(r"(?P<first>\d+)(?:(?P<range>\.\.)(?P<last>\d*))?(?:\+(?P<step>\d+))?$")


def parse_inject(spec: str) -> InjectRule:
    """Parse one --inject value; UsageError naming the valid forms."""
    usage = "--inject=SET:error=ERRNO|retval=N[:when=FIRST[..LAST][+STEP]]"
    parts = spec.split(":")
    if len(parts) < 2:
        raise UsageError(f"bad --inject {spec!r}: expected {usage}")
    rule = InjectRule(parse_syscall_set(parts[0]))
    for part in parts[1:]:
        key, _, value = part.partition("=")
        if key == "error":
            code = getattr(errno_mod, value, None) if not value.isdigit() else int(value)
            if not isinstance(code, int):
                raise UsageError(f"bad --inject {spec!r}: unknown errno {value!r} (use a name like ENOENT)")
            rule.error = code
        elif key == "retval":
            try:
                rule.retval = int(value, 0)
            except ValueError:
                raise UsageError(f"bad --inject {spec!r}: retval must be a number") from None
        elif key == "when":
            m = _WHEN.match(value)
            if m is None:
                raise UsageError(f"bad --inject {spec!r}: when=FIRST[..LAST][+STEP]")
            rule.first = int(m["first"])
            # strace: "N" is that call only, "N.." from N on, "N..M" from N to M
            rule.last = int(m["last"]) if m["last"] else (None if m["range"] or m["step"] else rule.first)
            rule.step = int(m["step"]) if m["step"] else 1
        else:
            raise UsageError(f"bad --inject {spec!r}: expected {usage}")
    if (rule.error is None) == (rule.retval is None):
        raise UsageError(f"bad --inject {spec!r}: give exactly one of error= or retval=")
    return rule


def seccomp_program(numbers: Optional[Sequence[int]]) -> bytes:
    """A classic-BPF seccomp filter: SECCOMP_RET_TRACE for ``numbers`` (x86-64; None: every call),
    ALLOW otherwise; every i386 call (int $0x80) is traced, and chosen by name at its stop (the
    numbers are x86-64's)."""
    ld_abs, jeq, ret = 0x20, 0x15, 0x06
    allow, trace = 0x7FFF0000, 0x7FF00000
    insns = [
        (ld_abs, 0, 0, 4),  # seccomp_data.arch
        (jeq, 3, 0, kernel.AUDIT_ARCH_X86_64),  # to the x86-64 part below
        (jeq, 0, 1, kernel.AUDIT_ARCH_I386),
        (ret, 0, 0, trace),
        (ret, 0, 0, allow),  # another ABI (x32 is x86-64's arch with a high bit in the number)
    ]
    if numbers is None:
        insns.append((ret, 0, 0, trace))
    else:
        nums = sorted(set(numbers))
        insns.append((ld_abs, 0, 0, 0))
        for i, nr in enumerate(nums):
            insns.append((jeq, len(nums) - i, 0, nr))  # to the RET_TRACE after the remaining jeqs + ALLOW
        insns += [(ret, 0, 0, allow), (ret, 0, 0, trace)]
    return b"".join(struct.pack("<HBBI", *insn) for insn in insns)


def install_seccomp(numbers: Optional[Sequence[int]]) -> None:
    """In the launched child, just before exec: NO_NEW_PRIVS and the filter (seccomp(2), raw)."""
    prog = seccomp_program(numbers)
    buf = ctypes.create_string_buffer(prog, len(prog))

    class sock_fprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = sock_fprog(len(prog) // 8, ctypes.addressof(buf))
    kernel.prctl(38, 1)  # PR_SET_NO_NEW_PRIVS
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(317, 1, 0, ctypes.byref(fprog)) != 0:  # seccomp(SECCOMP_SET_MODE_FILTER, 0, &prog)
        raise OSError(ctypes.get_errno(), "seccomp")


@dataclass
class SysOptions:
    numbers: Optional[FrozenSet[int]] = None  # None: every call
    strsize: int = 32
    raw: bool = False
    decode_fds: bool = False  # -y
    failed_only: bool = False  # --syscall-status=failed
    inject: List[InjectRule] = field(default_factory=list)
    handler: Optional[SyscallHandler] = None
    quiet: bool = False  # record, do not print (API use)
    seccomp: bool = True  # a launch selects the traced calls with a seccomp filter (one stop each)


class SyscallTracer:
    """The syscall half of a Tracer: what to do at each syscall stop."""

    def __init__(self, options: SysOptions, output: Output, t0: float) -> None:
        self.opts = options
        self.output = output
        self.t0 = t0
        self.records: List[SyscallRecord] = []  # finished records (API)
        self.keep = options.handler is not None or options.quiet
        self._unfinished: Dict[int, SyscallRecord] = {}  # tid -> record printed as "<unfinished ...>"
        self._last_tid: Optional[int] = None
        self.many = False  # several threads/processes: prefix lines with [pid N]
        # --json, -c, --hist, chrome: one Record per call at its return, no entry line to resume
        self.structured = output.fmt != "text"
        self._arg_names: Dict[str, tuple] = {}
        # Calls whose exit stop can be skipped (see sysring.py): they copy nothing out, and nothing
        # here needs to act at their exit (a handler's on_exit, -y's lookup of the live descriptors).
        handler_exits = (
            options.handler is not None and type(options.handler).on_exit is not SyscallHandler.on_exit
        )
        self.can_defer = not handler_exits and not options.decode_fds
        self.deferred: Dict[int, bool] = {}  # deferrable(nr), memoized
        self.one_stop_calls = 0  # calls that returned through the result ring, without an exit stop
        self._readers: Dict[int, tuple] = {}  # pid -> (its ProcMem, read, read_string)

    def deferrable(self, nr: int) -> bool:
        """Whether ``nr``'s exit stop can be skipped: its result is all the exit has to tell."""
        known = self.deferred.get(nr)
        if known is None:
            known = self.deferred[nr] = nr not in NEVER_DEFERRED and not has_exit_capture(nr)
        return known

    def wants(self, nr: int) -> bool:
        return self.opts.numbers is None or nr in self.opts.numbers

    def _capture_entry(self, proc: Process, nr: int, args: tuple, sp: int) -> List[Tuple[int, bytes]]:
        """The memory call ``nr`` (x86-64's number) reads, as its entry finds it."""
        readers = self._readers.get(proc.pid)
        if readers is None or readers[0] is not proc.mem:  # a new process, or a new image after exec
            readers = self._readers[proc.pid] = (proc.mem, *readers_for(proc.mem))
        try:
            return capture_entry(nr, args, readers[1], readers[2], sp=sp)
        except OSError:
            return []

    def wants_i386(self, nr: int) -> bool:
        """An i386 call (int $0x80) is selected by its name: the set holds x86-64 numbers."""
        return self.opts.numbers is None or SYSCALL_NUMBERS.get(i386_name(nr), -1) in self.opts.numbers

    # --- stops ----------------------------------------------------------------------------------
    def entry(self, thread: Thread, nr: int, args: tuple, sp: int, i386: bool = False) -> SyscallRecord:
        """A call's entry: record it with the memory the kernel will read; deny or emulate it when a
        handler or an --inject rule says so. Returns the record (also ``thread.sys_rec``).

        ``i386``: an int $0x80 call, of the i386 ABI (its own numbers, 32-bit arguments): recorded
        by name, nothing captured (the decoders know x86-64's layouts only), --inject rules (x86-64
        numbers) not applied."""
        proc = thread.process
        opts = self.opts
        if i386:
            name = i386_name(nr)
            twin = x86_64_twin(name)
            args = tuple(a & 0xFFFFFFFF for a in args) if twin is None else widen(args, twin[1])
            copied = [] if twin is None else self._capture_entry(proc, twin[0], args, sp)
            rec = SyscallRecord(proc.pid, thread.tid, nr, name, args, time.monotonic(), copied, abi="i386")
        else:
            name = SYSCALL_NAMES.get(nr) or f"syscall_{nr:#x}"
            copied = self._capture_entry(proc, nr, args, sp)
            rec = SyscallRecord(proc.pid, thread.tid, nr, name, args, time.monotonic(), copied)
        thread.sys_rec = rec
        thread.sys_inject = None
        if opts.decode_fds:
            self._snapshot_fds(rec)
        if opts.handler is not None:
            verdict = opts.handler.on_enter(rec)
            if verdict is not None:
                kind, value = verdict
                thread.sys_inject = -int(value) if kind == "error" else int(value)
                rec.injected = f"{kind}={value}"
        for rule in () if i386 else opts.inject:
            if thread.sys_inject is None and nr in rule.numbers and rule.applies(nr):
                thread.sys_inject = rule.value()
                rec.injected = "error=" + errno_mod.errorcode.get(rule.error, str(rule.error)) if rule.error \
                    else f"retval={rule.retval}"  # fmt: skip
        if thread.sys_inject is not None:
            regs = kernel.ptrace_getregs(thread.tid, thread.regs)
            regs.orig_rax = 0xFFFFFFFFFFFFFFFF  # the kernel skips a syscall whose number is -1
            kernel.ptrace_setregs(thread.tid, regs)
        if self.structured:
            if nr in EXITS and not opts.quiet:
                self._emit_call(thread, rec)  # it never returns
        elif opts.raw:
            self._print_raw(rec, entry=True)
        elif not opts.failed_only and not opts.quiet:
            self._unfinished[thread.tid] = rec
            if nr in EXITS:
                self._exit_at_entry(thread, rec)
        return rec

    def exit(self, thread: Thread, rval: int) -> None:
        rec = thread.sys_rec
        thread.sys_rec = None
        if rec is None:
            return
        self.finish(thread, rec, rval)

    def finish(self, thread: Thread, rec: SyscallRecord, rval: Optional[int], deferred: bool = False) -> None:
        """The call returned ``rval`` (None: unknown, the process is gone). ``deferred``: it returned
        some time ago through the result ring (it copies nothing out, so there is nothing to read
        and no register to change now)."""
        if deferred:
            self.one_stop_calls += 1
            rec.ret = rval
            if self.keep:
                self.records.append(rec)
            self._print_exit(thread, rec)
            return
        assert rval is not None
        if thread.sys_inject is not None:
            rval = thread.sys_inject
            thread.sys_inject = None
            regs = kernel.ptrace_getregs(thread.tid, thread.regs)
            regs.rax = rval & 0xFFFFFFFFFFFFFFFF
            kernel.ptrace_setregs(thread.tid, regs)
        elif not rec.name.startswith("rt_sigreturn"):
            # an i386 call is captured as its x86-64 twin, or not at all (shown raw)
            twin = None if rec.abi is None else x86_64_twin(rec.name)
            nr = rec.nr if rec.abi is None else None if twin is None else twin[0]
            if nr is not None:
                read, read_string = readers_for(thread.process.mem)
                try:
                    rec.copy_to_user = list(capture_exit(nr, rec.args, rval, read, read_string))
                except OSError:
                    rec.copy_to_user = []
        rec.ret = rval
        if self.opts.handler is not None:
            new = self.opts.handler.on_exit(rec)
            if new is not None:
                regs = kernel.ptrace_getregs(thread.tid, thread.regs)
                regs.rax = int(new) & 0xFFFFFFFFFFFFFFFF
                kernel.ptrace_setregs(thread.tid, regs)
                rec.ret = int(new)
        if self.keep:
            self.records.append(rec)
        self._print_exit(thread, rec)

    def finish_returned(self, thread: Thread, recs: List[SyscallRecord], values: List[Optional[int]]) -> None:
        """Calls that returned through the result ring, in order: one write for their lines."""
        opts = self.opts
        if (
            opts.quiet
            or self.structured
            or opts.raw
            or opts.failed_only
            or opts.decode_fds
            or self._unfinished.keys() - {thread.tid}
        ):
            for rec, value in zip(recs, values):
                self.finish(thread, rec, value, deferred=True)
            return
        self.one_stop_calls += len(recs)
        strsize = opts.strsize
        lines = []
        for rec, value in zip(recs, values):
            rec.ret = value
            lines.append(format_call(rec, strsize))
        if self.keep:
            self.records.extend(recs)
        pending = self._unfinished.get(thread.tid)
        if pending is not None and any(rec is pending for rec in recs):
            del self._unfinished[thread.tid]
        if lines:
            if self.many:
                lines = [f"[pid {thread.tid:>5}] {line}" for line in lines]
            self.output.line("\n".join(lines))
            self._last_tid = thread.tid

    def exec_done(self, thread: Thread, argv: Sequence[str], path: str) -> None:
        """The launch's own execve: its entry was in utrace's child before tracing began."""
        rec = SyscallRecord(
            thread.process.pid, thread.tid, 59, "execve", (0, 0, 0, 0, 0, 0), time.monotonic(), []
        )
        rec.ret = 0
        if self.keep:
            self.records.append(rec)
        if self.opts.quiet or self.opts.raw or self.opts.failed_only:
            return
        if self.wants(59):
            size = self.opts.strsize
            args = ", ".join(quote_cstring(os.fsencode(a) + b"\0", size) for a in argv)
            name = quote_cstring(os.fsencode(path) + b"\0", None)  # paths: whole, as strace
            # the environment block's address is the old image's, unknown here: 0x0 stands for it
            text = f"execve({name}, [{args}], 0x0 /* {len(os.environ)} vars */) = 0"
            if self.structured:
                self._emit_call(thread, rec, text)
            else:
                self._line(thread.tid, text)

    # --- printing -------------------------------------------------------------------------------
    def _prefix(self, tid: int) -> str:
        return f"[pid {tid:>5}] " if self.many else ""

    def _line(self, tid: int, text: str, thread: Optional[Thread] = None, kind: str = "") -> None:
        """A line of the trace; with a machine-readable format, ``thread``'s signal or exit (``kind``)
        becomes a record of its own."""
        if self.opts.quiet:
            return
        if self.structured:
            if thread is not None and self.output.fmt == "json":
                self.output.emit(Record(thread.comm, thread.process.pid, tid, time.monotonic(), kind, "",
                                        group="syscalls", kind=kind, extra={"text": text}))  # fmt: skip
            return
        if self._unfinished:
            self.interrupt_others(tid)
        self.output.line(f"[pid {tid:>5}] {text}" if self.many else text)
        self._last_tid = tid

    def interrupt_others(self, tid: int) -> None:
        """Another thread's line is about to be printed: end the pending entries of the others with
        ' <unfinished ...>', as strace does."""
        if len(self._unfinished) == 1 and tid in self._unfinished:
            return  # only this thread's own call is pending
        for other, rec in list(self._unfinished.items()):
            if other != tid and rec.ret is None and not getattr(rec, "_shown", False):
                self.output.line(self._prefix(other) + format_entry(rec, self.opts.strsize, self._fd(rec))
                                 + " <unfinished ...>")  # fmt: skip
                rec._shown = True  # type: ignore[attr-defined]

    def _exit_at_entry(self, thread: Thread, rec: SyscallRecord) -> None:
        """exit and exit_group never return: strace prints them at entry with "= ?"."""
        self._unfinished.pop(thread.tid, None)
        self._line(thread.tid, format_call(rec, self.opts.strsize, self._fd(rec)))
        rec._shown = True  # type: ignore[attr-defined]

    def _print_exit(self, thread: Thread, rec: SyscallRecord) -> None:
        if self._unfinished.get(thread.tid) is rec:  # (a later call of a one-stop thread may be there)
            del self._unfinished[thread.tid]
        opts = self.opts
        if opts.quiet:
            return
        if self.structured:
            if rec.name not in ("exit", "exit_group"):  # those were emitted at entry
                self._emit_call(thread, rec)
            return
        if opts.raw:
            self._print_raw(rec, entry=False)
            return
        if opts.failed_only and not rec.is_error:
            return
        if rec.__dict__.get("_shown"):
            if rec.name in ("exit", "exit_group"):
                return
            self._line(thread.tid, format_resumed(rec, opts.strsize, self._fd(rec)))
        elif opts.decode_fds:
            self._line(thread.tid, format_call(rec, opts.strsize, self._fd(rec), self._entry_fd(rec)))
        else:
            self._line(thread.tid, format_call(rec, opts.strsize))

    def _emit_call(self, thread: Thread, rec: SyscallRecord, text: Optional[str] = None) -> None:
        """A call as one Record: --json prints it as an object (its strace line in ``text``, the
        memory copied in and out with --raw-syscalls, whole); -c counts it, chrome shows it."""
        opts = self.opts
        if opts.failed_only and not rec.is_error:
            return
        names = self._arg_names.get(rec.name)
        if names is None:
            names = self._arg_names[rec.name] = argument_names(rec.name)
        ret = rec.ret
        if text is None:
            text = format_call(rec, opts.strsize, self._fd(rec), self._entry_fd(rec))
        extra: Dict[str, object] = {"nr": rec.nr, "ret": ret, "text": text}
        if rec.is_error:
            extra["errno"] = errno_mod.errorcode.get(-ret, str(-ret))  # type: ignore[operator]
        if rec.injected:
            extra["injected"] = rec.injected
        if rec.abi is not None:
            extra["abi"] = rec.abi  # nr and args are the int $0x80 ABI's
        if opts.raw:
            extra["copy_from_user"] = _json_copies(rec.copy_from_user)
            extra["copy_to_user"] = _json_copies(rec.copy_to_user)
        fields = [(name, value, hex(value)) for name, value in zip(names, rec.args)]
        self.output.emit(Record(thread.comm, rec.pid, rec.tid, rec.timestamp, rec.name, "syscall",
                                fields=fields, group="syscalls", kind="syscall", extra=extra))  # fmt: skip

    def _print_raw(self, rec: SyscallRecord, entry: bool) -> None:
        lines = format_raw(rec, None if self.output.fmt == "json" else self.opts.strsize)
        # format_raw gives the whole stream; at entry print the entry and copy-in lines only
        chosen = [ln for ln in lines if (ln.startswith("COPY_FROM_USER") or " = " not in ln)] if entry else \
            [ln for ln in lines if ln.startswith("COPY_TO_USER") or " = " in ln]  # fmt: skip
        if entry:
            chosen = [ln for ln in chosen if not ln.startswith("COPY_TO_USER")]
        for ln in chosen:
            self.output.line(self._prefix(rec.tid) + ln)

    def _snapshot_fds(self, rec: SyscallRecord) -> None:
        """strace names the descriptors an entry prints as they were when the call started (close(3)
        names the file it closes): keep what each small argument's descriptor was at entry."""
        lookup = self._fd(rec)
        assert lookup is not None
        snap: Dict[int, Optional[str]] = {}
        for arg in rec.args:
            fd = arg - (1 << 64) if arg >= 1 << 63 else arg
            fd32 = (arg & 0xFFFFFFFF) - (1 << 32) if arg & 0x80000000 else arg & 0xFFFFFFFF
            for candidate in {fd, fd32}:
                if 0 <= candidate < 1 << 20 or candidate == AT_FDCWD:
                    snap[candidate] = lookup(candidate)
        rec._fdsnap = snap  # type: ignore[attr-defined]

    def _entry_fd(self, rec: SyscallRecord) -> Optional[Callable[[int], Optional[str]]]:
        snap = getattr(rec, "_fdsnap", None)
        live = self._fd(rec)
        if snap is None or live is None:
            return None
        # descriptors inside structs (pollfd, ...) are not in the entry snapshot: look them up now
        return lambda fd: snap[fd] if fd in snap else live(fd)

    def _fd(self, rec: SyscallRecord) -> Optional[Callable[[int], Optional[str]]]:
        if not self.opts.decode_fds:
            return None
        pid = rec.pid

        def fd_path(fd: int) -> Optional[str]:
            try:
                if fd == AT_FDCWD:
                    return os.readlink(f"/proc/{pid}/cwd")
                return os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                return None

        return fd_path

    def signal_line(self, thread: Thread, sig: int, info: kernel.siginfo_t) -> None:
        """``--- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=42, ...} ---``, as strace."""
        si = parse_siginfo(bytes(info))
        assert si is not None  # a 128-byte siginfo always parses
        text = f"--- {fmt_signal(sig)} {show_siginfo(si)} ---"
        self._line(thread.tid, text, thread, "signal")

    def exit_line(self, thread: Thread, status: int) -> None:
        import signal as signal_mod

        if os.WIFSIGNALED(status):
            text = f"+++ killed by {signal_mod.Signals(os.WTERMSIG(status)).name} +++"
        else:
            text = f"+++ exited with {os.WEXITSTATUS(status)} +++"
        self._line(thread.tid, text, thread, "exit")


def _json_copies(copies: Sequence[Tuple[int, bytes]]) -> List[Dict[str, object]]:
    return [{"addr": addr, "data": data.hex()} for addr, data in copies]


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
