"""The breakpoint engine and event loop.

One blocking ``waitpid(-1, __WALL)`` loop serves every traced thread of every traced process; each
stop is classified (breakpoint hit, single-step, signal, clone/fork/exec event, group-stop, exit)
and dispatched. A hit costs one ptrace stop: the int3 stays in place, the handlers run, and the
thread continues in the probe's slot, which runs the displaced instruction and jumps back
(design.md, "Breakpoints: one stop per hit").

The hot path (``_on_trap`` -> ``_hit``) makes four system calls: waitpid, GETREGS, SETREGS, CONT.
It allocates no python-ptrace objects, reads no memory and parses no ELF file.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import re
import signal
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

from . import kernel, rendezvous, sysring
from .errors import (
    BadProbeAddress,
    LaunchError,
    ModuleNotFound,
    PermissionDenied,
    ProcessGone,
    TargetError,
    UsageError,
    UtraceError,
)
from .guardian import Guardian
from .handlers import Event, GetRegs, Handler
from .kernel import user_regs_struct
from .output import Output
from .probes import SpecHandler, parse_spec
from .relocate import SLOT_SIZE, Relocation, instruction_boundaries, relocate
from .symbols import AddressSpace, Location, cxx_short_name, looks_cxx
from .syscalls import SyscallRecord
from .sysring import AREA_CALLS, SysRing, code_page, touches_area, unpack_values
from .systrace import SyscallHandler, SyscallTracer, SysOptions, install_seccomp
from .unwind import Unwinder
from .xol import FIRST_SLOT, Xol, find_syscall_insn, inject_call, inject_syscall

INT3 = b"\xcc"
TRACE_OPTIONS = (
    kernel.PTRACE_O_TRACESYSGOOD
    | kernel.PTRACE_O_TRACECLONE
    | kernel.PTRACE_O_TRACEFORK
    | kernel.PTRACE_O_TRACEVFORK
    | kernel.PTRACE_O_TRACEEXEC
)
STOP_SIGNALS = (signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU)
FAULT_SIGNALS = (signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGTRAP)
DETACH_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
SIGTRAP = signal.SIGTRAP.value
SECCOMP_STOP = kernel.PTRACE_EVENT_SECCOMP << 16 | SIGTRAP << 8 | 0x7F  # the wait status of a seccomp stop
FLUSH_INTERVAL = 0.2  # seconds a trace line may wait in the buffer when the output is not a terminal
TICK = 0.05  # period of the SIGALRM that wakes the event loop while a flush or a deadline is pending


@dataclass(eq=False)
class Probe:
    """A probe the user asked for: a target and a handler. ``hits`` counts handler calls."""

    target: str
    handler: Handler
    name: str
    enabled: bool = True
    hits: int = 0
    where: str = ""  # resolved location, e.g. "libc.so.6:malloc+0x0"
    address: Optional[int] = None
    error: Optional[str] = None
    internal: bool = False  # utrace's own (the dynamic linker's r_brk): no output, not counted
    pending_said: bool = False  # the "pending" note was printed
    ret: bool = False  # also a return probe: on_return runs when the probed function returns
    group: str = "utrace"
    returns: int = 0  # return handler calls
    missed: int = 0  # returns not seen: nesting over the bound, longjmp, exceptions, detach


@dataclass(eq=False)
class Site:
    """One int3 in one address space and the slot that runs the instruction it displaced."""

    addr: int
    orig: bytes  # the original bytes at addr (at least the displaced instruction)
    reloc: Relocation
    slot: int
    step: bool  # single-step the slot copy (step mode) instead of letting it run
    probes: List[Probe] = field(default_factory=list)


@dataclass(eq=False)
class Process:
    """One traced address space (a thread group)."""

    pid: int
    mem: kernel.ProcMem
    xol: Xol
    sites: Dict[int, Site] = field(default_factory=dict)
    retired: Dict[int, Site] = field(default_factory=dict)  # removed sites a thread may still trap on
    slots: Dict[int, Site] = field(default_factory=dict)
    threads: Dict[int, Thread] = field(default_factory=dict)
    space: Optional[AddressSpace] = None
    follow: bool = True  # report hits (False: a vfork child traced only until it execs)
    exit_status: Optional[int] = None
    entry_trap: Optional[Tuple[int, bytes]] = None  # (AT_ENTRY, original byte) after exec
    rdv: Optional[rendezvous.Rendezvous] = None  # the dynamic linker's r_debug and r_brk
    rstate: int = rendezvous.RT_CONSISTENT  # r_state at the last r_brk stop
    relocated: bool = True  # ld.so has relocated the libraries (IFUNC resolvers can run)
    armed: Dict[Probe, List[int]] = field(default_factory=dict)  # probe -> its site addresses here
    modules_seen: set = field(default_factory=set)  # (path, bias) of modules already searched
    guardian: Optional[Guardian] = None  # attached processes: restores the bytes if utrace dies
    # system calls returning through the result ring (sysring.py) instead of an exit stop
    sysring: Optional[SysRing] = None
    # traced only because a seccomp filter it inherited stops its calls (a child without -f, or
    # after detach): no probes, no output, every stop resumed as it is
    quiet: bool = False
    exec_pending: bool = False  # exec'd; probes and ring are set up at execve's exit stop
    _unwinder: Optional[Unwinder] = None

    def site_of_slot(self, pc: int) -> Optional[Site]:
        """The site whose slot holds ``pc`` (slots are SLOT_SIZE apart from FIRST_SLOT in each area)."""
        for area in self.xol.areas:
            if area.start + FIRST_SLOT <= pc < area.end:
                base = area.start + FIRST_SLOT + (pc - area.start - FIRST_SLOT) // SLOT_SIZE * SLOT_SIZE
                return self.slots.get(base)
        return None

    def unwinder(self, thread: Thread) -> Unwinder:
        """An unwinder for ``thread``'s stack (one per address-space snapshot: its caches are per pc),
        mapping slot addresses and return trampolines back to the program's own addresses."""
        space = self.address_space()
        if self._unwinder is None or self._unwinder.space is not space:
            self._unwinder = Unwinder(space, self.mem)
        tramp = self.xol.ret_trampoline if self.xol.areas else -1
        returns = iter(reversed(thread.rstack))

        def pc_map(pc: int) -> int:
            if pc == tramp:
                instance = next(returns, None)
                return pc if instance is None else instance.orig_ret
            site = self.site_of_slot(pc) if self.xol.is_xol(pc) else None
            return pc if site is None else site.reloc.original_pc(pc, site.slot)

        self._unwinder.pc_map = pc_map
        return self._unwinder

    def address_space(self) -> AddressSpace:
        if self.space is None:
            order = None
            if self.rdv is not None:
                try:
                    order = rendezvous.load_order(self.mem, self.rdv) or None
                except OSError:
                    order = None
            self.space = AddressSpace.from_pid(self.pid, load_order=order)
        return self.space


@dataclass(eq=False)
class RetInstance:
    """A call whose return address utrace replaced with the return trampoline."""

    rsp: int  # where the return address lives: rsp at the probed function's entry
    orig_ret: int  # the real return address
    site: int  # the probed function's address
    probes: List[Probe]
    data: Dict[Probe, Dict[str, object]]  # what each probe's entry handler saved, for its return
    t_entry: float
    restored: bool = False  # the real return address is back on the stack while an exception unwinds


@dataclass(eq=False)
class Thread:
    tid: int
    process: Process
    regs: user_regs_struct = field(default_factory=user_regs_struct)
    comm: str = "?"
    stepping: Optional[Site] = None
    running: bool = False
    group_stopped: bool = False
    # a signal held back while utrace had the thread busy, delivered on its next resume
    held: Optional[Tuple[int, kernel.siginfo_t]] = None
    rstack: List[RetInstance] = field(default_factory=list)  # hijacked returns, innermost last
    sys_rec: Optional[SyscallRecord] = None  # the system call this thread is inside (syscall tracing)
    sys_inject: Optional[int] = None  # the result to give that call instead of running it
    # where the thread must continue if utrace lets go of it in the middle of handling its stop
    # (a handler's exception, a closed output pipe): the probed instruction, or a real return address
    fix_rip: Optional[int] = None


class Tracer:
    """Traces one program (launched or attached) with probes; see ``launch`` and ``attach``."""

    max_ret_depth = 256  # return instances per thread; deeper calls are counted as missed returns

    def __init__(
        self,
        output: Optional[Output] = None,
        single_step: bool = False,
        follow_forks: bool = False,
        strict: bool = False,
        syscalls: Optional[SysOptions] = None,
        probes: bool = True,
    ) -> None:
        # False: only system calls will be traced, so utrace maps nothing into the program and its
        # memory layout stays exactly the untraced one (the r_brk probe needs a code area)
        self.watch_libraries = probes
        self.strict = strict  # a handler that raises makes the tracer detach and fail
        self.handler_failed = False
        self._unwinder_probes: List[Probe] = []
        self.output = output if output is not None else Output()
        self.systrace: Optional[SyscallTracer] = None
        self._sys_all = False  # resume every thread with PTRACE_SYSCALL
        self._seccomp = False  # a seccomp filter selects the traced calls (a launch)
        self._serving = False  # detached from a seccomp launch: serving its stops silently until it ends
        self._ring_unprinted = False  # some result ring holds calls not printed yet
        self._argv: List[str] = []
        self.single_step = single_step
        self.follow_forks = follow_forks
        self.probes: List[Probe] = []
        self.procs: Dict[int, Process] = {}
        self.threads: Dict[int, Thread] = {}
        self.leader: int = 0
        self.launched = False
        self.exit_status: Optional[int] = None
        self._stop_requested = False
        self._current: Optional[Thread] = None  # the thread whose stop is being handled
        self._siginfo = kernel.siginfo_t()
        self._sysinfo = kernel.ptrace_syscall_info()
        self._syscall_info = kernel.SyscallInfo()
        self._deadline: Optional[float] = None
        self._ticking = False  # the periodic SIGALRM is armed
        self._alarm = False  # it fired since the loop last looked at the timers
        self._flush_at: Optional[float] = None  # when buffered trace lines must be written out
        self._timers_ok = False  # SIGALRM handled (run() in the main thread)
        self._detached = False
        # child processes announced by a fork/vfork/clone event (parent, shares memory), and those
        # whose first stop came before the event
        self._new_children: Dict[int, Tuple[Thread, bool]] = {}
        self._early_children: set[int] = set()
        self._paused: Optional[Thread] = None  # the loop returns leaving this thread stopped
        self._startup = True  # a launched program that has not reached its first probe-arming stop
        self._linker_probe = Probe(
            target="_dl_debug_state", handler=_LinkerEvents(self), name="<r_brk>", internal=True
        )
        if syscalls is not None:
            self._setup_syscalls(syscalls)

    # ------------------------------------------------------------------ system calls
    def trace_syscalls(
        self, syscalls: Optional[str] = None, handler: Optional[SyscallHandler] = None, **options: object
    ) -> SyscallTracer:
        """Trace system calls (strace's -e trace= set syntax; None for all) from now on. ``handler``
        may deny, emulate or change results; the records are in the returned object's ``records``.
        Options are SysOptions fields (strsize, raw, decode_fds, failed_only, quiet)."""
        from .syscalls import parse_syscall_set

        numbers = parse_syscall_set(syscalls) if syscalls else None
        opts = SysOptions(numbers=numbers, handler=handler, **options)  # type: ignore[arg-type]
        return self._setup_syscalls(opts)

    def _setup_syscalls(self, opts: SysOptions) -> SyscallTracer:
        self.systrace = SyscallTracer(opts, self.output, self.output.t0)
        self.systrace.many = self.follow_forks  # like strace -f: every line says whose it is
        # a launch uses a seccomp filter (decided in _launch); otherwise every thread stops at every call
        self._sys_all = not (opts.seccomp and not self.procs and self._seccomp_ok())
        return self.systrace

    @staticmethod
    def _seccomp_ok() -> bool:
        try:
            with open("/proc/self/status") as f:
                return "Seccomp:" in f.read()
        except OSError:
            return False

    def _cont(self, thread: Thread, sig: int = 0) -> None:
        if self._sys_all or thread.sys_rec is not None:
            kernel.ptrace_syscall(thread.tid, sig)
        else:
            kernel.ptrace_cont(thread.tid, sig)
        thread.running = True

    def _on_syscall(self, thread: Thread) -> None:
        info = kernel.ptrace_get_syscall_info(thread.tid, self._sysinfo)
        st = self.systrace
        if not thread.process.follow or thread.process.quiet:
            if info.op == kernel.PTRACE_SYSCALL_INFO_EXIT and thread.sys_rec is not None:
                if thread.sys_inject is not None:  # denied before utrace went quiet: give its result
                    regs = kernel.ptrace_getregs(thread.tid, thread.regs)
                    regs.rax = thread.sys_inject & 0xFFFFFFFFFFFFFFFF
                    kernel.ptrace_setregs(thread.tid, regs)
                thread.sys_rec = thread.sys_inject = None
        elif st is not None:
            if info.op == kernel.PTRACE_SYSCALL_INFO_ENTRY and info.arch == kernel.AUDIT_ARCH_I386:
                if st.wants_i386(info.nr):
                    st.many = st.many or (len(self.threads) > 1 and not self._alone(thread))
                    st.entry(thread, info.nr, info.args, info.stack_pointer, i386=True)
            elif info.op == kernel.PTRACE_SYSCALL_INFO_ENTRY and st.wants(info.nr):
                st.many = st.many or (len(self.threads) > 1 and not self._alone(thread))
                st.entry(thread, info.nr, info.args, info.stack_pointer)
            elif info.op == kernel.PTRACE_SYSCALL_INFO_EXIT:
                st.exit(thread, info.rval)
        if thread.process.exec_pending and info.op == kernel.PTRACE_SYSCALL_INFO_EXIT:
            thread.process.exec_pending = False
            self._after_exec(thread)
        self._cont(thread)

    def _on_seccomp(self, thread: Thread) -> None:
        """A call the launch's seccomp filter selected, at its entry. A call that copies nothing out
        returns through the result ring when the thread is the only one (no exit stop); any other
        is resumed with PTRACE_SYSCALL for its exit stop. (The per-call path: keep it lean.)"""
        info = self._syscall_info.get(thread.tid)  # op, arch, ip, sp, nr, args...
        proc = thread.process
        st = self.systrace
        ring = proc.sysring
        if st is None or proc.quiet or not proc.follow or info[0] != kernel.PTRACE_SYSCALL_INFO_SECCOMP:
            if ring is not None and ring.records:
                self._ring_resolve(thread, ring, at_entry=True)
            self._cont(thread)
            return
        nr = info[4]
        args = info[5:11]
        if info[1] == kernel.AUDIT_ARCH_I386:  # int $0x80: never through the ring (64-bit stubs)
            if ring is not None and ring.records:
                self._ring_resolve(thread, ring, at_entry=True)
            if st.wants_i386(nr):
                st.many = st.many or (len(self.threads) > 1 and not self._alone(thread))
                st.entry(thread, nr, args, info[3], i386=True)
            self._cont(thread)
            return
        ret_addr = info[2]
        defer = False
        if ring is not None:
            if ring.records and ring.area <= ret_addr < ring.code_end:  # a restart from a stub
                ret_addr = self._ring_resolve(thread, ring, at_entry=True)
            touches = nr in AREA_CALLS and touches_area(ring, nr, args)
            known = st.deferred.get(nr)
            if known is None:
                known = st.deferrable(nr)
            defer = known and not touches and (len(self.threads) == 1 or self._alone(thread))
            if ring.records and (not defer or len(ring.records) == sysring.SLOTS):
                self._ring_resolve(thread, ring, at_entry=True)
            if touches:
                proc.sysring = ring = None  # the program unmaps or re-protects it: no more one-stop calls
        if not st.many and len(self.threads) > 1 and not self._alone(thread):
            st.many = True
        rec = st.entry(thread, nr, args, info[3])
        if defer and ring is not None and thread.sys_inject is None:
            thread.sys_rec = None
            records = ring.records
            kernel.ptrace_pokeuser(thread.tid, kernel.RIP_OFFSET, ring.stub_refs[len(records)])
            records.append((rec, ret_addr))
            self._ring_unprinted = True
            kernel.ptrace_cont(thread.tid, 0)
            thread.running = True
            return
        self._cont(thread)  # sys_rec is set: PTRACE_SYSCALL, so the exit stops too

    def _alone(self, thread: Thread) -> bool:
        """The only thread whose calls are reported (the others are quiet children)."""
        return all(t is thread or t.process.quiet or not t.process.follow for t in self.threads.values())

    # ------------------------------------------------------------------ the result ring (sysring.py)
    def _map_sysring(self, proc: Process, thread: Thread) -> None:
        """Map the result ring into a program stopped at its exec (launch with seccomp only)."""
        insn = proc.xol.bootstrap_syscall or find_syscall_insn(proc.pid, proc.mem)
        if insn is None:
            return
        proc.xol.bootstrap_syscall = insn
        area = None
        flags = kernel.MAP_PRIVATE | kernel.MAP_ANONYMOUS | kernel.MAP_FIXED_NOREPLACE
        for hint in sysring.HINTS:
            mapped = inject_syscall(
                thread.tid,
                thread.regs,
                insn,
                kernel.SYS_mmap,
                (hint, sysring.AREA_SIZE, kernel.PROT_READ | kernel.PROT_WRITE, flags, -1, 0),
                self._hold_info,
            )
            if mapped == hint:
                area = hint
                break
            if mapped > 0:  # a kernel without MAP_FIXED_NOREPLACE put it elsewhere: not ours to use
                inject_syscall(
                    thread.tid,
                    thread.regs,
                    insn,
                    kernel.SYS_munmap,
                    (mapped, sysring.AREA_SIZE),
                    self._hold_info,
                )
        if area is None:
            return
        proc.mem.write(area, code_page(area))
        protect = (area, sysring.PAGE, kernel.PROT_READ | kernel.PROT_EXEC)
        if inject_syscall(thread.tid, thread.regs, insn, kernel.SYS_mprotect, protect, self._hold_info) == 0:
            proc.sysring = SysRing(area)

    def _ring_resolve(
        self, thread: Thread, ring: SysRing, at_entry: bool = False, exiting: bool = False
    ) -> int:
        """Print the calls in ``ring`` and empty it, with ``thread`` stopped.

        At a seccomp stop (``at_entry``) every call in the ring has returned through its stub. At any
        other stop the last one may have returned without running its stub yet (rip is in it: the
        stop is on the way back to user mode, a signal or an interrupt): its result is in rax, and
        the thread is sent to the real return address (a restart then rewinds to the real syscall
        instruction). A seccomp stop with rip in a stub is such a restart that ran without a stop in
        between: rcx then points into the stub, so it gets the real return address back. At the exit
        stop (``exiting``) a call still in its stub never returned (killed): its result is unknown.
        Returns the address the stopped call returns to.
        """
        proc = thread.process
        records = ring.records
        override: Dict[int, Optional[int]] = {}
        regs = kernel.ptrace_getregs(thread.tid, thread.regs)
        ret_addr = regs.rip
        if ring.in_code(regs.rip):
            k = ring.slot_at(regs.rip)
            offset = regs.rip - (ring.area + k * sysring.STUB)
            real = records[k][1] if k < len(records) else 0
            if at_entry:  # a restart of call k: the first attempt's result is unknown
                override[k] = None
                regs.rcx = regs.rip = ret_addr = real
            elif offset < 2 or exiting:  # about to execute the syscall of a restart, or killed
                override[k] = None
                regs.rip = real - 2
            else:
                override[k] = sysring.signed(regs.rax)
                regs.rip = real
            kernel.ptrace_setregs(thread.tid, regs)
        n = len(records)
        values: List[Optional[int]] = [None] * n
        try:
            values = list(unpack_values(proc.mem.read(ring.values, 8 * n)))
            proc.mem.write(ring.gens, bytes(n))
        except OSError:
            proc.sysring = None  # the area is gone: these results are lost
        for k, value in override.items():
            if k < n:
                values[k] = value
        self._ring_print(thread, ring, values, n)
        ring.records = []
        ring.printed = 0
        return ret_addr

    def _ring_print(self, thread: Thread, ring: SysRing, values: List[Optional[int]], upto: int) -> None:
        st = self.systrace
        assert st is not None
        st.finish_returned(
            thread, [rec for rec, _ in ring.records[ring.printed : upto]], values[ring.printed : upto]
        )
        ring.printed = upto

    def _ring_peek(self) -> None:
        """The flush timer: print the calls that already returned through a running thread's ring
        (all but the last one for sure, the last one when its stub marked it done)."""
        self._ring_unprinted = False
        for proc in list(self.procs.values()):
            ring = proc.sysring
            if ring is None or ring.printed == len(ring.records) or not proc.threads:
                continue
            thread = next(iter(proc.threads.values()))
            n = len(ring.records)
            try:
                # the done byte first: its stub stores the value before it, so a done slot's value is in
                done = proc.mem.read(ring.gens + n - 1, 1)[0]
                values: List[Optional[int]] = list(unpack_values(proc.mem.read(ring.values, 8 * n)))
            except OSError:
                continue
            self._ring_print(thread, ring, values, n if done else n - 1)
            if ring.printed < n:
                self._ring_unprinted = True

    # ------------------------------------------------------------------ launch and attach
    @classmethod
    def launch(cls, argv: List[str], **kwargs: object) -> Tracer:
        """Start ``argv`` under the tracer, stopped at its entry point (shared libraries mapped)."""
        tracer = cls(**kwargs)  # type: ignore[arg-type]
        tracer._launch(argv)
        return tracer

    @classmethod
    def attach(cls, pid: int, **kwargs: object) -> Tracer:
        """Seize every thread of a running process and stop them until ``run``."""
        tracer = cls(**kwargs)  # type: ignore[arg-type]
        tracer._attach(pid)
        return tracer

    def _launch(self, argv: List[str]) -> None:
        if not argv:
            raise UsageError("no command to run")
        seccomp_numbers: Optional[List[int]] = None  # None: the filter stops every call
        if self.systrace is not None and not self._sys_all:
            numbers = self.systrace.opts.numbers
            seccomp_numbers = None if numbers is None else sorted(numbers)
            self._seccomp = True
        self._argv = list(argv)
        ready_r, ready_w = os.pipe()
        go_r, go_w = os.pipe()
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:  # the child: wait until seized, then exec; report exec failure by the pipe
            try:
                os.close(ready_r)
                os.close(go_w)
                os.close(err_r)
                for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                    signal.signal(sig, signal.SIG_DFL)
                # A tracer that changed its uid (a service dropping root) forks non-dumpable children,
                # which it may not trace; exec makes the program dumpable again anyway.
                kernel.prctl(kernel.PR_SET_DUMPABLE, 1)
                os.write(ready_w, b"r")
                os.read(go_r, 1)
                if self._seccomp:
                    install_seccomp(seccomp_numbers)
                os.execvp(argv[0], argv)
            except OSError as err:
                os.write(err_w, struct.pack("<i", err.errno or errno.ENOEXEC))
            finally:
                os._exit(127)
        for fd in (ready_w, go_r, err_w):
            os.close(fd)
        self.launched = True
        self.leader = pid
        try:
            os.read(ready_r, 1)
            options = TRACE_OPTIONS | kernel.PTRACE_O_EXITKILL
            if self._seccomp:
                # the exit stop: the last calls of a result ring are read while the memory is there
                options |= kernel.PTRACE_O_TRACESECCOMP | kernel.PTRACE_O_TRACEEXIT
            kernel.ptrace_seize(pid, options)
        except OSError as err:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            if err.errno == errno.EPERM:
                raise PermissionDenied(pid, self._eperm_hint(pid)) from None
            raise TargetError(f"cannot trace the new process {pid}: {err.strerror}") from None
        else:
            os.write(go_w, b"x")
        finally:
            os.close(ready_r)
            os.close(go_w)
        # Wait for the exec (or the child's exit when exec failed) before reading the error pipe:
        # with a seccomp filter that selects execve, the child stops at its execve first.
        while True:
            status = kernel.wait_thread(pid)
            if not kernel.WIFSTOPPED(status):
                failure = os.read(err_r, 4)
                os.close(err_r)
                code = struct.unpack("<i", failure)[0] if len(failure) == 4 else errno.ENOEXEC
                exit_code = 127 if code == errno.ENOENT else 126
                raise LaunchError(argv[0], os.strerror(code), exit_code)
            if kernel.WPTRACEEVENT(status) not in (kernel.PTRACE_EVENT_SECCOMP, kernel.PTRACE_EVENT_EXIT):
                break
            kernel.ptrace_cont(pid)  # the child's own calls between seccomp() and execve, or its end
        os.close(err_r)
        if kernel.WPTRACEEVENT(status) != kernel.PTRACE_EVENT_EXEC:
            raise TargetError(f"{argv[0]}: unexpected stop {status:#x} at start")
        proc = self._new_process(pid)
        thread = self._add_thread(proc, pid)
        if self.systrace is not None:
            self.systrace.exec_done(thread, argv, _which(argv[0]))
        self._after_exec(thread)
        self._loop_until_paused()

    def _after_exec(self, thread: Thread) -> None:
        """A fresh program in ``thread``'s process, stopped at its exec: watch the dynamic linker.

        Probes are armed at the first r_brk stop with r_state RT_CONSISTENT: every DT_NEEDED library is
        mapped then, but not yet relocated or initialised, so no library constructor runs unprobed.
        GNU IFUNC probes wait for AT_ENTRY, because a resolver can only run once its library is
        relocated. A static executable has no dynamic linker: everything is armed at AT_ENTRY.
        """
        proc = thread.process
        kernel.ptrace_getregs(thread.tid, thread.regs)  # code injections start from these
        # ... and end by setting them back: with execve's result, which it stores after this stop
        thread.regs.rax = 0
        entry = kernel.read_auxv(proc.pid)[kernel.AT_ENTRY]
        proc.entry_trap = (entry, proc.mem.read(entry, 1))
        if proc.guardian is not None:
            proc.guardian.reset()
            proc.guardian.armed(entry, proc.entry_trap[1][0])
        proc.mem.write(entry, INT3)
        proc.relocated = False
        proc.sysring = None
        if self._seccomp and self.systrace is not None and self.systrace.can_defer and proc.follow:
            self._map_sysring(proc, thread)
        rdv = rendezvous.locate(proc.address_space()) if self.watch_libraries else None
        if rdv is not None:
            proc.rdv = rdv
            proc.rstate = rendezvous.RT_ADD
            self._insert_internal(proc, thread, rdv.r_brk)

    def _insert_internal(self, proc: Process, thread: Thread, address: int) -> None:
        space = proc.address_space()
        module = space.module_at(address)
        if module is None:
            return
        loc = Location(address, module, "_dl_debug_state", 0, address, False)
        site = proc.sites.get(address) or self._insert_site(proc, thread, address, loc)
        site.probes.append(self._linker_probe)

    def _loop_until_paused(self) -> None:
        """Run the event loop until a handler pauses it (the start-up r_brk or AT_ENTRY stop)."""
        self._resume_all()
        self._loop()
        if self._paused is None:
            if self.exit_status is not None:
                raise TargetError(f"the program exited with status {self.exit_status} before its entry point")
            raise TargetError("the program did not reach its entry point")
        self._paused = None

    def _attach(self, pid: int) -> None:
        self.leader = pid
        if self.systrace is not None:
            self._sys_all = True  # no seccomp filter can be put into a running process
        self._check_attachable(pid)
        proc = self._new_process(pid, seize=True)
        seized: Dict[int, Thread] = {}
        while True:  # threads may be created while we seize: repeat until the set is stable
            try:
                tids = kernel.thread_ids(pid)
            except FileNotFoundError:
                raise ProcessGone(pid) from None
            new = [t for t in tids if t not in seized]
            if not new:
                break
            for tid in new:
                try:
                    kernel.ptrace_seize(tid, TRACE_OPTIONS)
                except OSError as err:
                    if err.errno == errno.ESRCH:
                        continue  # the thread exited meanwhile
                    if err.errno == errno.EPERM:
                        raise PermissionDenied(pid, self._eperm_hint(pid)) from None
                    raise
                seized[tid] = self._add_thread(proc, tid)
                self.threads[tid].running = True
        for thread in seized.values():
            self._interrupt(thread)
        for thread in list(seized.values()):
            self._wait_interrupted(thread)
        if not proc.threads:
            raise ProcessGone(pid)
        proc.xol.adopt(pid)
        try:
            proc.guardian = Guardian(pid)
        except OSError as err:
            self.output.message(f"no guardian for process {pid} ({err.strerror}): if utrace is killed, "
                                "its int3 bytes stay in the program")  # fmt: skip
        self._watch_linker(proc)

    def _watch_linker(self, proc: Process) -> None:
        """Attach: probe the dynamic linker's r_brk so dlopen/dlclose are seen from now on."""
        space = proc.address_space()
        proc.modules_seen = {(m.path, m.bias) for m in space.modules}
        rdv = rendezvous.locate(space)
        if rdv is None:
            return
        try:
            r_brk = int.from_bytes(proc.mem.read(rdv.r_debug + rendezvous.R_BRK, 8), "little")
        except OSError:
            return
        proc.rdv = rendezvous.Rendezvous(rdv.r_debug, r_brk or rdv.r_brk)
        try:
            self._insert_internal(proc, self._injector(proc), proc.rdv.r_brk)
        except UtraceError as err:
            self.output.message(f"libraries loaded later will not be seen: {err}")

    def _check_attachable(self, pid: int) -> None:
        try:
            status = kernel.proc_status(pid)
        except (FileNotFoundError, ProcessLookupError):
            raise ProcessGone(pid) from None
        except PermissionError:
            raise PermissionDenied(pid, self._eperm_hint(pid)) from None
        if not _live_threads(pid):
            raise UtraceError(f"process {pid} is a zombie: it has exited and has no code left to trace")
        if pid == os.getpid():
            raise UsageError("utrace cannot trace itself; use --self for in-process syscall tracing")
        tracer = int(status.get("TracerPid", "0") or 0)
        if tracer:
            raise PermissionDenied(pid, f"it is already traced by process {tracer} (a debugger or tracer)")

    @staticmethod
    def _eperm_hint(pid: int) -> str:
        try:
            uid = int(kernel.proc_status(pid)["Uid"].split()[1])
        except (OSError, KeyError, IndexError, ValueError):
            uid = -1
        if uid not in (-1, os.geteuid()) and os.geteuid() != 0:
            return (
                f"it belongs to another user (uid {uid}); trace your own processes, or run utrace as "
                "that user or with CAP_SYS_PTRACE"
            )
        try:
            with open("/proc/sys/kernel/yama/ptrace_scope") as f:
                scope = int(f.read())
        except OSError:
            scope = 0
        if scope >= 1 and os.geteuid() != 0:
            return (
                f"kernel.yama.ptrace_scope is {scope}, which only lets a process trace its own children; "
                "launch the program under utrace, or set it to 0 (sysctl kernel.yama.ptrace_scope=0) "
                "or grant CAP_SYS_PTRACE"
            )
        return "the kernel refused (it may be set non-dumpable, setuid, or need CAP_SYS_PTRACE)"

    def _interrupt(self, thread: Thread) -> None:
        try:
            kernel.ptrace_interrupt(thread.tid)
        except ProcessLookupError:
            pass

    def _wait_interrupted(self, thread: Thread) -> None:
        """Wait until an interrupted thread reports its interrupt stop; hold any signal it reports first."""
        while True:
            pid, status = kernel.waitpid(thread.tid, kernel.WALL)
            if pid == 0:
                continue
            if not kernel.WIFSTOPPED(status):
                self._thread_gone(thread, status)
                return
            event = kernel.WPTRACEEVENT(status)
            sig = kernel.WSTOPSIG(status)
            if event == kernel.PTRACE_EVENT_STOP:
                thread.running = False
                thread.group_stopped = sig in STOP_SIGNALS
                kernel.ptrace_getregs(thread.tid, thread.regs)
                return
            if not event:
                # A signal-delivery stop came first: keep the signal for the resume, and let the thread
                # run on to its interrupt stop without it.
                self._hold(thread, sig)
                kernel.ptrace_cont(thread.tid)
            else:
                kernel.ptrace_cont(thread.tid)

    def _new_process(self, pid: int, seize: bool = False) -> Process:
        try:
            mem = kernel.ProcMem.open(pid)
        except FileNotFoundError:
            raise ProcessGone(pid) from None
        except PermissionError:
            raise PermissionDenied(pid, self._eperm_hint(pid)) from None
        proc = Process(pid=pid, mem=mem, xol=Xol(mem))
        self.procs[pid] = proc
        return proc

    def _add_thread(self, proc: Process, tid: int) -> Thread:
        thread = Thread(tid=tid, process=proc, comm=kernel.comm_of(tid))
        proc.threads[tid] = thread
        self.threads[tid] = thread
        return thread

    # ------------------------------------------------------------------ probes
    def functions(self, pattern: str = "*") -> List[str]:
        """``MODULE:NAME`` of the functions a probe could name in the traced program now (``pattern``:
        a glob, or ``LIB:GLOB``); see AddressSpace.functions."""
        proc = self.procs.get(self.leader)
        if proc is None:
            raise ProcessGone(self.leader)
        return proc.address_space().functions(pattern)

    def add_probe(
        self,
        target: str,
        handler: Optional[Handler] = None,
        name: Optional[str] = None,
        ret: bool = False,
    ) -> Probe:
        """Insert a probe at ``target`` (SYMBOL, LIB:SYMBOL, SYMBOL+OFF, 0xADDR, PATH:0xOFF).

        ``ret=True`` also calls the handler's ``on_return`` when the function returns (the target must
        be a function's entry), with ``event.data`` as the entry handler left it. Callable before
        ``run`` and from inside a handler while the target runs.
        """
        group = "utrace"
        if is_spec(target):  # a probe definition: p[:[GROUP/]EVENT] TARGET [FETCHARG...] [if FILTER]
            spec = parse_spec(target)
            if spec.kind == "-":
                self.remove_probes_named(spec.event, spec.group)
                return None  # type: ignore[return-value]
            if handler is None:
                handler = SpecHandler(spec)
            target, name, group, ret = spec.target, name or spec.event, spec.group, ret or spec.kind == "r"
        if handler is None:
            handler = GetRegs()
        handler.attach_output(self.output)
        probe = Probe(target=target, handler=handler, name=name or _probe_name(target), ret=ret, group=group)
        if ret:
            self._watch_unwinder()
        if not self.procs:
            raise ProcessGone(self.leader)
        for proc in list(self.procs.values()):
            if proc.follow:
                self._arm_or_pend(proc, probe, fatal=True)
        self.probes.append(probe)
        return probe

    def _arm_or_pend(self, proc: Process, probe: Probe, fatal: bool) -> None:
        """Arm ``probe`` in ``proc``; a library that is not loaded yet leaves it pending. Other errors
        are raised when ``fatal`` (a probe being added), else reported once (a probe re-armed after exec
        or dlopen)."""
        try:
            self._arm(proc, probe)
        except _Deferred:
            pass
        except ModuleNotFound as err:
            if not probe.pending_said:
                probe.pending_said = True
                self.output.message(
                    f"probe {probe.name} is pending: {err.name} is not loaded yet (armed when it is)"
                )
        except UtraceError as err:
            if fatal:
                raise
            if not probe.pending_said:
                probe.pending_said = True
                comm = kernel.comm_of(proc.pid)
                self.output.message(f"probe {probe.name} is pending in process {proc.pid} ({comm}): {err}")

    def _arm_pending(self, proc: Process) -> None:
        """Arm every probe not yet armed in ``proc``, and bare-symbol probes in newly loaded modules."""
        for probe in self.probes:
            if probe.enabled and probe not in proc.armed:
                self._arm_or_pend(proc, probe, fatal=False)
        space = proc.address_space()
        new = [m for m in space.modules if (m.path, m.bias) not in proc.modules_seen]
        if proc.modules_seen:
            for probe in self.probes:
                if probe.enabled and probe in proc.armed and _is_bare_symbol(probe.target):
                    for module in new:
                        self._arm_in_module(proc, probe, module)
        proc.modules_seen.update((m.path, m.bias) for m in space.modules)

    def remove_probes_named(self, event: str, group: str = "utrace") -> None:
        """``-:[GROUP/]EVENT``: remove the probes defined with that event name."""
        for probe in [p for p in self.probes if p.name == event and p.group == group and not p.internal]:
            self.remove_probe(probe)

    def remove_probe(self, probe: Probe) -> None:
        """Remove a probe; its int3 goes when no other probe shares the site."""
        if probe in self.probes:
            self.probes.remove(probe)
        probe.enabled = False
        for proc in self.procs.values():
            for addr in proc.armed.pop(probe, []):
                site = proc.sites.get(addr)
                if site is not None and probe in site.probes:
                    site.probes.remove(probe)
                    if not site.probes:
                        self._disarm(proc, site)

    def _injector(self, proc: Process) -> Thread:
        """A thread of ``proc`` stopped where utrace may run code in it."""
        if self._current is not None and self._current.process is proc:
            return self._current
        for thread in proc.threads.values():
            if not thread.running:  # injections restore every register, so any stopped thread works
                return thread
        raise TargetError(f"no stopped thread in process {proc.pid} to insert the probe with")

    def _arm(self, proc: Process, probe: Probe) -> None:
        space = proc.address_space()
        loc = space.resolve(probe.target)
        self._arm_at(proc, probe, loc)

    def _arm_in_module(self, proc: Process, probe: Probe, module: object) -> None:
        """A bare-symbol probe, also in a library loaded later that defines the symbol (dlopen)."""
        from .symbols import Module

        assert isinstance(module, Module)
        try:
            loc = proc.address_space().resolve(f"{module.path}:{probe.target}")
        except UtraceError:
            return
        if loc.address not in proc.armed.get(probe, []):
            try:
                self._arm_at(proc, probe, loc)
            except _Deferred:
                pass
            except UtraceError as err:
                self.output.message(f"probe {probe.name} not armed in {module.name}: {err}")

    def _arm_at(self, proc: Process, probe: Probe, loc: Location) -> None:
        space = proc.address_space()
        address = loc.address
        if probe.ret and loc.symbol is not None and loc.offset != 0:
            raise UsageError(
                f"return probe {probe.name}: {loc.describe()} is not a function's entry (a return probe "
                "replaces the return address, which is at the stack top only there)"
            )
        if loc.ifunc and not proc.relocated:
            raise _Deferred()
        thread = self._injector(proc)
        if loc.ifunc:
            address = self._resolve_ifunc(proc, thread, loc)
            where = space.symbolize(address)
            if where is not None and where[1] is not None:
                probe.where = f"{where[0].name}:{where[1]}+{where[2]:#x}"
            else:
                probe.where = f"{address:#x}"
        else:
            self._check_boundary(proc, loc)
            probe.where = loc.describe()
        probe.address = address
        site = proc.sites.get(address)
        if site is None:
            site = self._insert_site(proc, thread, address, loc)
        if probe not in site.probes:
            site.probes.append(probe)
        proc.armed.setdefault(probe, []).append(address)

    def _check_boundary(self, proc: Process, loc: Location) -> None:
        if loc.symbol is None or loc.offset == 0:
            return
        code = self._read_code(proc, loc.sym_start, loc.offset + 16)
        bounds = instruction_boundaries(code, loc.sym_start)
        if loc.address in bounds:
            return
        before = [b for b in bounds if b < loc.address][-1:]
        after = [b for b in bounds if b > loc.address][:1]
        near = ", ".join(f"{loc.symbol}+{b - loc.sym_start:#x}" for b in before + after)
        raise BadProbeAddress(
            f"{loc.describe()} is not at an instruction boundary (nearest: {near}); "
            "a breakpoint there would corrupt the program"
        )

    def _read_code(self, proc: Process, addr: int, size: int) -> bytes:
        """Code as the program sees it: utrace's own int3 bytes replaced by what they displaced."""
        try:
            data = bytearray(proc.mem.read_upto(addr, size))
        except OSError as err:
            raise TargetError(f"cannot read code at {addr:#x}: {err.strerror}") from err
        for site_addr, site in proc.sites.items():
            if addr <= site_addr < addr + len(data):
                data[site_addr - addr] = site.orig[0]
        return bytes(data)

    def _insert_site(self, proc: Process, thread: Thread, address: int, loc: Location) -> Site:
        code = self._read_code(proc, address, 16)
        if not code:
            raise BadProbeAddress(f"{loc.describe()} ({address:#x}) is not mapped in process {proc.pid}")
        if not self._is_executable(proc, address):
            raise BadProbeAddress(f"{loc.describe()} ({address:#x}) is not in executable code")
        reloc = relocate(code, address, force_step=self.single_step)
        mapper = self._mapper(proc, thread)
        slot = proc.xol.alloc_slot(loc.module.start, loc.module.end, mapper)
        proc.mem.write(slot, reloc.build(slot))
        site = Site(
            addr=address,
            orig=code[: reloc.size],
            reloc=reloc,
            slot=slot,
            step=self.single_step or reloc.mode == "step",
        )
        proc.mem.write(address, INT3)
        proc.sites[address] = site
        if proc.guardian is not None:
            proc.guardian.armed(address, site.orig[0])
        proc.slots[slot] = site
        return site

    @staticmethod
    def _is_executable(proc: Process, address: int) -> bool:
        for mapping in proc.address_space().mappings:
            if mapping.start <= address < mapping.end:
                return "x" in mapping.perms
        return False

    def _mapper(self, proc: Process, thread: Thread) -> Callable[[int], int]:
        if proc.xol.bootstrap_syscall is None and not proc.xol.areas:
            proc.xol.bootstrap_syscall = find_syscall_insn(proc.pid, proc.mem)

        def map_area(hint: int) -> int:
            from .xol import AREA_SIZE

            return inject_syscall(
                thread.tid,
                thread.regs,
                proc.xol.syscall_insn(),
                kernel.SYS_mmap,
                (
                    hint,
                    AREA_SIZE,
                    kernel.PROT_READ | kernel.PROT_EXEC,
                    kernel.MAP_PRIVATE | kernel.MAP_ANONYMOUS | kernel.MAP_FIXED_NOREPLACE,
                    -1,
                    0,
                ),
                self._hold_info,
            )

        return map_area

    def _resolve_ifunc(self, proc: Process, thread: Thread, loc: Location) -> int:
        """Run the IFUNC resolver in the tracee: the implementation this process's CPU gets."""
        proc.xol.ensure_area(loc.module.start, loc.module.end, self._mapper(proc, thread))
        impl = inject_call(
            thread.tid, thread.regs, proc.mem, loc.address, (), proc.xol.call_trap, self._hold_info
        )
        if not loc.module.contains(impl) and proc.address_space().module_at(impl) is None:
            raise TargetError(f"IFUNC resolver of {loc.describe()} returned {impl:#x}, outside any module")
        return impl

    def _disarm(self, proc: Process, site: Site) -> None:
        try:
            proc.mem.write(site.addr, site.orig[:1])
        except OSError:
            pass  # the address space is gone (exit or exec)
        if proc.guardian is not None:
            proc.guardian.disarmed(site.addr)
        del proc.sites[site.addr]
        proc.retired[site.addr] = site

    # ------------------------------------------------------------------ the event loop
    def run(self, duration: Optional[float] = None) -> Optional[int]:
        """Resume the target and handle events until it exits, ``stop()`` is called, a detach signal
        arrives (SIGINT, SIGTERM, SIGHUP) or ``duration`` seconds pass. Returns the exit status of a
        launched target that ran to its end (128+N for a signal), else None."""
        self._deadline = None if duration is None else time.monotonic() + duration
        previous = self._install_signal_handlers()
        try:
            self._resume_all()
            self._loop()
        except BaseException:
            # Whatever went wrong on utrace's side (a closed output pipe, a bug, ^C twice), the
            # program must not be left with int3 bytes and no tracer: let go of it cleanly first.
            self._restore_signal_handlers(previous)
            previous = {}
            if not self._detached:
                self.detach()
            raise
        finally:
            self._restore_signal_handlers(previous)
            if self._stop_requested and not self._detached:
                self.detach()
            try:
                self.output.flush()
            except BrokenPipeError:
                pass
        if self.exit_status is None and self.launched and self._detached:
            self.exit_status = self._wait_untraced_exit()
        return self.exit_status

    @property
    def detached(self) -> bool:
        """Whether tracing ended by letting go of the program (``stop()``, ``run(duration=...)``, a
        signal to utrace) rather than by its exit: a plugin's ``finish()`` may report differently
        (a block still allocated at exit is a leak; at detach it may yet be freed)."""
        return self._detached

    def stop(self) -> None:
        """Ask the loop to detach and return (safe from handlers and signal handlers)."""
        self._stop_requested = True

    def _install_signal_handlers(self) -> Dict[int, object]:
        previous: Dict[int, object] = {}
        if threading.current_thread() is not threading.main_thread():
            return previous

        def on_signal(signum: int, frame: object) -> None:
            self._stop_requested = True

        for sig in DETACH_SIGNALS:
            previous[sig] = signal.signal(sig, on_signal)

        # SIGALRM only interrupts the blocking waitpid (the loop then flushes output or ends at the
        # --duration deadline); it is armed only while there is something to flush or a deadline.
        def on_alarm(signum: int, frame: object) -> None:
            self._alarm = True

        previous[signal.SIGALRM] = signal.signal(signal.SIGALRM, on_alarm)
        self._timers_ok = True
        return previous

    def _restore_signal_handlers(self, previous: Dict[int, object]) -> None:
        if previous:
            signal.setitimer(signal.ITIMER_REAL, 0, 0)
            self._timers_ok = False
            self._ticking = False
        for sig, handler in previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]

    def _resume_all(self) -> None:
        for thread in list(self.threads.values()):
            if not thread.running:
                self._resume(thread)

    def _loop(self) -> None:
        while self.threads and self._paused is None:
            # the timers need a look when the SIGALRM tick came, or to arm it (not on every stop)
            if self._alarm or (
                not self._ticking
                and (self._deadline is not None or self.output.pending or self._ring_unprinted)
            ):
                self._alarm = False
                self._timers()
            if self._stop_requested:
                break
            pid, status = kernel.waitpid(-1, kernel.WALL)
            if not pid:
                continue  # EINTR: the timer or a detach signal
            thread = self.threads.get(pid) if status == SECCOMP_STOP else None
            if thread is not None:  # the per-call stop of a seccomp launch, straight to its handler
                thread.running = False
                self._current = thread
                try:
                    self._on_seccomp(thread)
                except ProcessLookupError:
                    pass  # killed under us: its exit status follows
                finally:
                    self._current = None
            else:
                self._dispatch(pid, status)

    def _timers(self) -> None:
        """Flush buffered trace lines after FLUSH_INTERVAL, end at the --duration deadline.

        A periodic SIGALRM interrupts the blocking waitpid only while one of those is pending (a
        one-shot timer could fire just before waitpid starts and be lost); when there is nothing to
        do none is armed, so a traced program that sleeps costs utrace no CPU.
        """
        idle = self._deadline is None and self._flush_at is None and not self._ticking
        if idle and not self.output.pending and not self._ring_unprinted:
            return  # the common case on the hot path: nothing to do
        now = time.monotonic()
        if self._flush_at is not None and now >= self._flush_at:
            self._flush_at = None
            if self._ring_unprinted:
                self._ring_peek()
            self.output.flush()
        if self._deadline is not None and now >= self._deadline:
            self._stop_requested = True
        if (self.output.pending or self._ring_unprinted) and self._flush_at is None:
            if not self._timers_ok:
                self.output.flush()  # not in the main thread: no SIGALRM handler, so no timer
            else:
                self._flush_at = now + FLUSH_INTERVAL
        ticking = self._timers_ok and (self._flush_at is not None or self._deadline is not None)
        if ticking != self._ticking:
            self._ticking = ticking
            interval = TICK if ticking else 0
            signal.setitimer(signal.ITIMER_REAL, interval, interval)

    def _dispatch(self, tid: int, status: int) -> None:
        thread = self.threads.get(tid)
        if thread is None:
            thread = self._adopt(tid)
            if thread is None:
                return
        thread.running = False
        if status & 0xFF != 0x7F:  # not WIFSTOPPED: exited or killed
            self._thread_gone(thread, status)
            return
        sig = (status >> 8) & 0xFF
        event = status >> 16
        self._current = thread
        try:
            ring = thread.process.sysring
            if ring is not None and ring.records and event != kernel.PTRACE_EVENT_SECCOMP:
                # its calls come before whatever this stop prints
                self._ring_resolve(thread, ring, exiting=event == kernel.PTRACE_EVENT_EXIT)
            if event == 0:
                if sig == SIGTRAP:
                    self._on_trap(thread)
                elif sig == SIGTRAP | 0x80:
                    self._on_syscall(thread)
                else:
                    self._on_signal(thread, sig)
            elif event == kernel.PTRACE_EVENT_SECCOMP:
                self._on_seccomp(thread)
            else:
                self._on_event(thread, event, sig)
        except ProcessLookupError:
            pass  # the thread died under us (SIGKILL, exit of the group): its exit status follows
        finally:
            self._current = None

    def _resume(self, thread: Thread, sig: int = 0) -> None:
        if thread.group_stopped:
            kernel.ptrace_listen(thread.tid)
        elif thread.stepping is not None:
            kernel.ptrace_singlestep(thread.tid, sig)
        else:
            self._cont(thread, sig or (0 if thread.held is None else self._held_signal(thread)))
        thread.running = True

    # ------------------------------------------------------------------ stops
    def _on_trap(self, thread: Thread) -> None:
        regs = kernel.ptrace_getregs(thread.tid, thread.regs)
        proc = thread.process
        if thread.stepping is not None:
            self._finish_step(thread)
            return
        site = proc.sites.get(regs.rip - 1)
        if site is not None and (site.reloc.size > 1 or self._is_int3_trap(thread)):
            self._hit(thread, site)
            return
        if thread.rstack and regs.rip - 1 == proc.xol.ret_trampoline:
            self._on_return(thread)
            return
        if proc.entry_trap is not None and regs.rip - 1 == proc.entry_trap[0]:
            self._at_entry(thread)
            return
        retired = proc.retired.get(regs.rip - 1)
        if retired is not None and self._is_int3_trap(thread):
            # The thread hit an int3 that was removed before its stop was handled: the original
            # instruction is back in place, so run it there.
            regs.rip -= 1
            kernel.ptrace_setregs(thread.tid, regs)
            self._resume(thread)
            return
        self._on_signal(thread, signal.SIGTRAP)

    def _is_int3_trap(self, thread: Thread) -> bool:
        info = kernel.ptrace_getsiginfo(thread.tid, self._siginfo)
        return info.si_code == kernel.SI_KERNEL

    def _hit(self, thread: Thread, site: Site) -> None:
        now = time.monotonic()
        proc = thread.process
        regs = thread.regs
        thread.fix_rip = site.addr
        regs.rip = site.addr  # handlers see the probed instruction's address, as with the kernel's uprobes
        if proc.follow:
            instance: Optional[RetInstance] = None
            # a snapshot: handlers may add or remove probes at this very site
            for probe in tuple(site.probes):
                if probe.enabled:
                    if not probe.internal:
                        probe.hits += 1
                    event = Event(thread, probe, now, site.addr)
                    self._call_handler(probe, probe.handler.on_entry, event)
                    if probe.ret and event.want_return:
                        if instance is None:
                            instance = RetInstance(regs.rsp, 0, site.addr, [], {}, now)
                        instance.probes.append(probe)
                        instance.data[probe] = event.data
            if instance is not None:
                self._hijack_return(thread, instance)
            if regs.rip != site.addr:
                # a handler moved the pc (e.g. to skip the function): go there, not through the slot
                kernel.ptrace_setregs(thread.tid, regs)
                thread.fix_rip = None
                self._resume(thread)
                return
        regs.rip = site.slot
        kernel.ptrace_setregs(thread.tid, regs)
        thread.fix_rip = None
        if site.step:
            thread.stepping = site
        if self._paused is thread:
            return  # stays stopped, on its way into the slot, until run() resumes it
        self._resume(thread)

    def _hijack_return(self, thread: Thread, instance: RetInstance) -> None:
        """Replace the return address at [rsp] with the trampoline and remember the real one."""
        alive = [p for p in instance.probes if p.enabled]
        if not alive:
            return
        if len(thread.rstack) >= self.max_ret_depth:
            for probe in alive:
                probe.missed += 1
            return
        proc = thread.process
        try:
            instance.orig_ret = int.from_bytes(proc.mem.read(instance.rsp, 8), "little")
            proc.mem.write(instance.rsp, proc.xol.ret_trampoline.to_bytes(8, "little"))
        except OSError:
            for probe in alive:
                probe.missed += 1
            return
        instance.probes = alive
        thread.rstack.append(instance)

    def _pop_return(self, thread: Thread) -> Optional[RetInstance]:
        """The instance this trampoline hit returns from. Instances deeper in the stack than where the
        thread now is were skipped (longjmp, a stack switch): dropped, counted as missed."""
        sp = thread.regs.rsp  # the ret popped the trampoline address: rsp = entry rsp + 8
        while thread.rstack and thread.rstack[-1].rsp + 8 < sp:
            for probe in thread.rstack.pop().probes:
                probe.missed += 1
        return thread.rstack.pop() if thread.rstack else None

    def _on_return(self, thread: Thread) -> None:
        instance = self._pop_return(thread)
        regs = thread.regs
        if instance is None:  # cannot happen unless the program jumped to the trampoline itself
            self._on_signal(thread, signal.SIGTRAP)
            return
        regs.rip = instance.orig_ret
        thread.fix_rip = instance.orig_ret
        now = time.monotonic()
        if thread.process.follow:
            for probe in instance.probes:
                if probe.enabled:
                    probe.returns += 1
                    event = Event(thread, probe, now, instance.site)
                    event.data = instance.data[probe]
                    event.retval = int(regs.rax)
                    event.t_entry = instance.t_entry
                    self._call_handler(probe, probe.handler.on_return, event)
        kernel.ptrace_setregs(thread.tid, regs)
        thread.fix_rip = None
        self._resume(thread)

    def _restore_returns(self, thread: Thread) -> None:
        """Detach: put every hijacked return address of a thread back; those returns are missed."""
        proc = thread.process
        for instance in reversed(thread.rstack):
            if proc.xol.areas:
                _swap_return(proc.mem, instance, instance.orig_ret, proc.xol.ret_trampoline)
            for probe in instance.probes:
                probe.missed += 1
        thread.rstack.clear()

    def _unwind_started(self, thread: Thread) -> None:
        """An exception starts or resumes unwinding this thread's stack: put the real return addresses
        back (libgcc finds no FDE for the trampoline and would call std::terminate). The instances
        stay, marked restored, until the exception lands."""
        proc = thread.process
        for instance in thread.rstack:
            if not instance.restored:
                _swap_return(proc.mem, instance, instance.orig_ret, proc.xol.ret_trampoline)
                instance.restored = True

    def _exception_caught(self, thread: Thread) -> None:
        """__cxa_begin_catch: the stack is unwound down to the catching frame. Frames above it were
        not unwound: hijack their returns again; the unwound ones are missed returns."""
        proc = thread.process
        sp = thread.regs.rsp  # __cxa_begin_catch's own return address is here
        kept: List[RetInstance] = []
        for instance in thread.rstack:
            if not instance.restored:
                kept.append(instance)
            elif instance.rsp > sp:
                _swap_return(proc.mem, instance, proc.xol.ret_trampoline, instance.orig_ret)
                instance.restored = False
                kept.append(instance)
            else:
                for probe in instance.probes:
                    probe.missed += 1
        thread.rstack[:] = kept

    def _watch_unwinder(self) -> None:
        """C++ exceptions unwind with libgcc_s, which cannot step through a frame whose return
        address is the trampoline (no FDE for it: std::terminate). Its entry points are probed to
        put the real return addresses back before it unwinds (design.md, option b), and
        __cxa_begin_catch to hijack again the returns of the frames the exception did not unwind."""
        if self._unwinder_probes:
            return
        unwinder = (
            "_Unwind_RaiseException",
            "_Unwind_Resume",
            "_Unwind_ForcedUnwind",
            "_Unwind_Resume_or_Rethrow",
        )
        targets = [f"libgcc_s.so.1:{symbol}" for symbol in unwinder] + ["libstdc++.so.6:__cxa_begin_catch"]
        for target in targets:
            symbol = target.split(":")[1]
            probe = Probe(
                target=target,
                handler=_UnwindEntry(self, caught=symbol == "__cxa_begin_catch"),
                name=symbol,
                internal=True,
                pending_said=True,
            )
            self._unwinder_probes.append(probe)
            self.probes.append(probe)
            for proc in list(self.procs.values()):
                if proc.follow:
                    self._arm_or_pend(proc, probe, fatal=False)

    def _call_handler(self, probe: Probe, method: Callable[[Event], None], event: Event) -> None:
        try:
            method(event)
        except UtraceError as err:
            self._disable(probe, str(err))
        except Exception as err:  # noqa: BLE001 - a user handler's bug must not harm the target
            import traceback

            if self.strict:
                self.handler_failed = True
                self._stop_requested = True

            self.output.message(
                f"handler of probe {probe.name} raised; probe disabled:\n"
                + "".join(traceback.format_exception(type(err), err, err.__traceback__)).rstrip()
            )
            probe.enabled = False
            probe.error = repr(err)

    def _disable(self, probe: Probe, why: str) -> None:
        self.output.message(f"probe {probe.name} disabled: {why}")
        probe.enabled = False
        probe.error = why

    def _finish_step(self, thread: Thread) -> None:
        site = thread.stepping
        assert site is not None
        thread.stepping = None
        site.reloc.after_step(thread.regs, site.slot, thread.process.mem)
        kernel.ptrace_setregs(thread.tid, thread.regs)
        self._resume(thread)

    def _on_signal(self, thread: Thread, sig: int) -> None:
        """A signal for the program: fix the context if it faulted in a slot, then deliver it."""
        if thread.stepping is not None and sig not in FAULT_SIGNALS:
            # An asynchronous signal arrived before the single-step: hold it until the step is done,
            # so the handler never runs with rip inside the one-instruction slot copy.
            self._hold(thread, sig)
            kernel.ptrace_singlestep(thread.tid)
            thread.running = True
            return
        if sig in FAULT_SIGNALS:
            self._fixup_fault(thread)
        if self.systrace is not None and thread.process.follow and not thread.process.quiet:
            self.systrace.signal_line(thread, sig, kernel.ptrace_getsiginfo(thread.tid))
        self._cont(thread, sig)  # a stop signal becomes a group-stop, reported as EVENT_STOP

    def _fixup_fault(self, thread: Thread) -> None:
        proc = thread.process
        regs = kernel.ptrace_getregs(thread.tid, thread.regs)
        site = proc.site_of_slot(regs.rip)
        if site is None:
            return
        thread.stepping = None
        if site.reloc.fault_fixup(regs, site.slot, proc.mem):
            kernel.ptrace_setregs(thread.tid, regs)

    def _hold(self, thread: Thread, sig: int) -> None:
        self._hold_info(thread.tid, sig, kernel.ptrace_getsiginfo(thread.tid))

    def _hold_info(self, tid: int, sig: int, info: kernel.siginfo_t) -> None:
        thread = self.threads.get(tid)
        if thread is not None and sig not in (0, signal.SIGTRAP):
            thread.held = (sig, info)

    def _held_signal(self, thread: Thread) -> int:
        """A held signal to deliver now (its siginfo restored), or 0."""
        if thread.held is None:
            return 0
        sig, info = thread.held
        thread.held = None
        try:
            kernel.ptrace(kernel.PTRACE_SETSIGINFO, thread.tid, 0, kernel.ctypes.addressof(info))
        except OSError:
            pass  # not in a signal-delivery stop: the signal still goes, with a tracer-made siginfo
        return sig

    def _on_event(self, thread: Thread, event: int, sig: int) -> None:
        if event == kernel.PTRACE_EVENT_STOP:
            if sig in STOP_SIGNALS:
                thread.group_stopped = True
                kernel.ptrace_listen(thread.tid)
            else:
                thread.group_stopped = False
                self._resume(thread)
            thread.running = True
            return
        if event in (kernel.PTRACE_EVENT_FORK, kernel.PTRACE_EVENT_VFORK, kernel.PTRACE_EVENT_CLONE):
            child = kernel.ptrace_geteventmsg(thread.tid)
            self._announce_child(thread, child, event)
            self._resume(thread)
            return
        if event == kernel.PTRACE_EVENT_EXEC:
            self._on_exec(thread)
            return
        self._resume(thread)

    def _announce_child(self, parent: Thread, child: int, event: int) -> None:
        if event == kernel.PTRACE_EVENT_CLONE and _tgid_of(child) == parent.process.pid:
            if child not in self.threads:  # else its first stop came first and _adopt added it
                self._add_thread(parent.process, child).running = True
            return
        # A new process. A vfork child (posix_spawn too) and a CLONE_VM child share the parent's
        # memory; only a fork child has a copy of its own.
        shares = event != kernel.PTRACE_EVENT_FORK
        if child in self._early_children:
            self._early_children.discard(child)
            self._take_child(child, parent, shares)
        else:
            self._new_children[child] = (parent, shares)

    def _adopt(self, tid: int) -> Optional[Thread]:
        """A stop from a thread we have not seen: a new thread of a traced process, or a child
        process whose first stop arrived before its parent's fork/vfork/clone event."""
        proc = self.procs.get(_tgid_of(tid))
        if proc is not None:
            return self._add_thread(proc, tid)
        announced = self._new_children.pop(tid, None)
        if announced is None:
            # The parent's event is queued behind this stop: keep the child stopped until then.
            self._early_children.add(tid)
            return None
        self._take_child(tid, announced[0], announced[1])
        return None

    def _take_child(self, pid: int, forker: Thread, shares_memory: bool) -> None:
        """A new child process, stopped at its first stop: follow it (-f) or release it."""
        parent = forker.process
        if not self.follow_forks or not parent.follow:
            self._release_child(pid, forker, shares_memory)
            return
        if shares_memory:
            # vfork/posix_spawn/CLONE_VM: one address space, so the very same sites and areas
            proc = _sharing(pid, parent, follow=True)
        else:
            # fork: a copy of the parent's memory, int3 bytes and slots included
            mem = kernel.ProcMem.open(pid)
            sites = {
                a: dataclasses.replace(site, probes=list(site.probes)) for a, site in parent.sites.items()
            }
            proc = Process(
                pid=pid,
                mem=mem,
                xol=parent.xol.copy_for(mem),
                sites=sites,
                retired=dict(parent.retired),
                slots={s.slot: s for s in sites.values()},
                armed={p: list(a) for p, a in parent.armed.items()},
            )
            if parent.sysring is not None:
                proc.sysring = SysRing(parent.sysring.area)  # its copy of the stubs and slots
        proc.rdv, proc.rstate, proc.relocated = parent.rdv, parent.rstate, parent.relocated
        proc.modules_seen = set(parent.modules_seen)
        proc.space = parent.space
        self.procs[pid] = proc
        child = self._add_thread(proc, pid)
        if not shares_memory:
            # the child runs on a copy of the forking thread's stack, hijacked returns included
            child.rstack = [dataclasses.replace(i, probes=list(i.probes)) for i in forker.rstack]
        self._resume(child)

    def _release_child(self, pid: int, forker: Thread, shares_memory: bool) -> None:
        """A child of a traced process, not followed: take utrace's int3 bytes out and let it go.

        A fork child has a copy of the parent's memory: restore its bytes before it runs anything. A
        vfork child shares the parent's memory, so the bytes must stay; it stays traced, silently
        (its hits run through the slots without handlers), until it execs or exits.
        """
        parent = forker.process
        if shares_memory:
            proc = _sharing(pid, parent, follow=False)
            proc.quiet = self._seccomp
            self.procs[pid] = proc
            thread = self._add_thread(proc, pid)
            self._resume(thread)
            return
        try:
            mem = kernel.ProcMem.open(pid)
            keep = False
            try:
                for site in parent.sites.values():
                    mem.write(site.addr, site.orig[:1])
                if forker.rstack and parent.xol.areas:
                    # its copy of the forking thread's stack holds trampoline addresses: put the real
                    # return addresses back, or its returns would hit an int3 nobody handles
                    for instance in forker.rstack:
                        _swap_return(mem, instance, instance.orig_ret, parent.xol.ret_trampoline)
                # Under the launch's seccomp filter (inherited, permanent) its selected calls would
                # fail with ENOSYS without a tracer: it stays traced, silently, as strace -f would.
                keep = self._seccomp
            finally:
                if not keep:
                    mem.close()
            if keep:
                proc = Process(pid=pid, mem=mem, xol=Xol(mem), follow=False, quiet=True)
                self.procs[pid] = proc
                self._resume(self._add_thread(proc, pid))
            else:
                kernel.ptrace_detach(pid)
        except OSError:
            pass

    def _on_exec(self, thread: Thread) -> None:
        """exec replaced the address space: every site and area is gone. Re-arm at the new entry."""
        proc = thread.process
        former = kernel.ptrace_geteventmsg(thread.tid)
        if former != thread.tid and former in self.threads:
            old = self.threads.pop(former)
            old.process.threads.pop(former, None)
        for tid in [t for t in proc.threads if t != thread.tid]:
            self.threads.pop(tid, None)
            proc.threads.pop(tid, None)
        if not proc.follow and not self._seccomp:
            # a vfork child that was traced only because it shared its parent's memory
            self.threads.pop(thread.tid, None)
            self.procs.pop(proc.pid, None)
            kernel.ptrace_detach(thread.tid)
            return
        if proc.mem.pid == proc.pid:
            proc.mem.close()
        proc.mem = kernel.ProcMem.open(proc.pid)
        # New containers, not cleared ones: a vfork child's were its parent's.
        proc.xol = Xol(proc.mem)
        proc.sites, proc.retired, proc.slots, proc.armed = {}, {}, {}, {}
        proc.modules_seen = set()
        proc.space = None
        proc.rdv = None
        thread.comm = kernel.comm_of(thread.tid)
        thread.stepping = None
        thread.rstack.clear()
        proc.sysring = None
        if proc.follow and thread.sys_rec is not None:
            # execve's own exit stop is next: finish there (a code injection now would eat it)
            proc.exec_pending = True
        elif proc.follow:
            self._after_exec(thread)
        else:
            proc.quiet = True  # an unfollowed child under the launch's seccomp filter: it cannot go
        self._resume(thread)

    def _at_entry(self, thread: Thread) -> None:
        """AT_ENTRY of a new program: libraries relocated and initialised; arm what was waiting."""
        proc = thread.process
        assert proc.entry_trap is not None
        entry, orig = proc.entry_trap
        # Only this thread ever runs _start, so restoring the byte in place races with nothing.
        proc.mem.write(entry, orig)
        if proc.guardian is not None:
            proc.guardian.disarmed(entry)
        proc.entry_trap = None
        thread.regs.rip = entry
        kernel.ptrace_setregs(thread.tid, thread.regs)
        proc.relocated = True
        proc.space = None
        if self.launched and self._startup:
            self._startup = False
            self._paused = thread  # launch() returns here when there is no dynamic linker
        self._arm_pending(proc)
        if self._paused is not thread:
            self._resume(thread)

    def _on_linker_event(self, thread: Thread) -> None:
        """r_brk: the dynamic linker is about to change (RT_ADD, RT_DELETE) or has changed
        (RT_CONSISTENT) the list of loaded libraries."""
        proc = thread.process
        if proc.rdv is None:
            return
        try:
            state = rendezvous.state(proc.mem, proc.rdv)
        except OSError:
            return
        previous, proc.rstate = proc.rstate, state
        if state != rendezvous.RT_CONSISTENT:
            return
        proc.space = None
        if previous == rendezvous.RT_DELETE:
            self._forget_unloaded(proc)
        if self.launched and self._startup and proc.pid == self.leader:
            self._startup = False
            self._paused = thread  # launch() returns here: libraries mapped, nothing initialised
        self._arm_pending(proc)

    def _forget_unloaded(self, proc: Process) -> None:
        """After dlclose: drop the sites of libraries that are gone; their probes become pending."""
        space = proc.address_space()
        for addr, site in list(proc.sites.items()):
            if space.module_at(addr) is None:
                del proc.sites[addr]
                for probe in site.probes:
                    if probe.internal:
                        continue
                    addrs = proc.armed.get(probe, [])
                    if addr in addrs:
                        addrs.remove(addr)
                    if not addrs:
                        proc.armed.pop(probe, None)
                        probe.pending_said = True  # this message says it: no "pending" note after it
                        self.output.message(
                            f"probe {probe.name} disarmed: its library was unloaded (pending until it is "
                            "loaded again)"
                        )
        proc.modules_seen = {(m.path, m.bias) for m in space.modules}

    def _thread_gone(self, thread: Thread, status: int) -> None:
        proc = thread.process
        ring = proc.sysring
        if ring is not None and ring.records and len(proc.threads) <= 1:
            # killed (SIGKILL) with calls in the ring: the memory holding their results is gone
            self._ring_print(thread, ring, [None] * len(ring.records), len(ring.records))
            ring.records = []
            ring.printed = 0
        for instance in thread.rstack:  # calls that never returned (pthread_exit, exit())
            for probe in instance.probes:
                probe.missed += 1
        thread.rstack.clear()
        self.threads.pop(thread.tid, None)
        proc.threads.pop(thread.tid, None)
        if thread.tid == proc.pid:
            proc.exit_status = _exit_code(status)
            if self.systrace is not None and proc.follow and not proc.quiet:
                self.systrace.exit_line(thread, status)
            if proc.pid == self.leader:
                self.exit_status = proc.exit_status
        if not proc.threads:
            self.procs.pop(proc.pid, None)
            if proc.guardian is not None:
                proc.guardian.done()  # nothing left to guard (and its pid may be reused)

    # ------------------------------------------------------------------ detach
    def detach(self) -> None:
        """Stop every thread, take every int3 out, put every thread back at a sane pc, let go.

        A program launched under a seccomp filter cannot be let go: without a tracer the calls the
        filter selects fail with ENOSYS. It is served silently instead, until it ends (then this
        returns); if utrace is killed meanwhile, the kernel kills it too (PTRACE_O_EXITKILL).
        """
        if self._detached:
            return
        if self._seccomp:
            if not self._serving:
                self._serve_until_exit()
            return
        self._detached = True
        for proc in list(self.procs.values()):
            self._detach_process(proc)
        self.procs.clear()
        self.threads.clear()

    def _serve_until_exit(self) -> None:
        self._serving = True
        for proc in list(self.procs.values()):
            self._detach_process(proc, release=False)
        self._stop_requested = False
        self._deadline = None
        self._paused = None
        self._resume_all()
        self._loop()
        self._detached = True

    def _detach_process(self, proc: Process, release: bool = True) -> None:
        """``release`` False: everything but letting go (the process stays traced, quiet)."""
        threads = list(proc.threads.values())
        for thread in threads:
            if thread.running:
                self._interrupt(thread)
        for thread in threads:
            if thread.running:
                self._settle(thread)
        for site in list(proc.sites.values()):
            self._disarm(proc, site)
        if proc.entry_trap is not None:
            try:
                proc.mem.write(proc.entry_trap[0], proc.entry_trap[1])
            except OSError:
                pass
        ring = proc.sysring
        for thread in proc.threads.values():
            if ring is not None and ring.records:
                self._ring_resolve(thread, ring)
        proc.sysring = None
        if not release:
            for thread in proc.threads.values():
                self._restore_returns(thread)
            proc.quiet = True
            return
        for thread in proc.threads.values():
            self._restore_returns(thread)
            self._release_thread(thread)
        if proc.guardian is not None:
            proc.guardian.done()
        if proc.mem.pid == proc.pid:  # a vfork child's is its parent's
            proc.mem.close()

    def _settle(self, thread: Thread) -> None:
        """Wait for an interrupted thread's stop and undo whatever utrace had it in the middle of.

        The interrupt stop is reported before signals already queued for the thread, so a thread
        that executed one of our int3 (or finished a single-step) just before it may still hold
        that SIGTRAP: let go now, it would die of it with no tracer. Such a thread is resumed until
        the trap is reported and handled here, then stopped again.
        """
        reinterrupt = False

        def cont() -> None:
            if reinterrupt:
                self._interrupt(thread)
            kernel.ptrace_cont(thread.tid)

        while True:
            pid, status = kernel.waitpid(thread.tid, kernel.WALL)
            if pid == 0:
                continue
            if not kernel.WIFSTOPPED(status):
                self._thread_gone(thread, status)
                return
            thread.running = False
            sig = kernel.WSTOPSIG(status)
            event = kernel.WPTRACEEVENT(status)
            ring = thread.process.sysring
            if ring is not None and ring.records:
                self._ring_resolve(thread, ring, at_entry=event == kernel.PTRACE_EVENT_SECCOMP)
            if event == kernel.PTRACE_EVENT_STOP:
                thread.group_stopped = sig in STOP_SIGNALS
                if not thread.group_stopped and _sigtrap_pending(thread.tid):
                    reinterrupt = True
                    kernel.ptrace_cont(thread.tid)  # the queued SIGTRAP is reported at once
                    continue
                return
            if event:
                cont()  # clone/fork/exec event: let it finish, then stop
                continue
            proc = thread.process
            if sig == SIGTRAP | 0x80:  # a syscall stop on the way to the interrupt stop
                if thread.sys_inject is not None:
                    thread.sys_rec = None  # its exit is not ours to fake any more
                cont()
                continue
            regs = kernel.ptrace_getregs(thread.tid, thread.regs)
            if sig == signal.SIGTRAP and thread.stepping is not None:
                site = thread.stepping
                thread.stepping = None
                site.reloc.after_step(regs, site.slot, proc.mem)
                kernel.ptrace_setregs(thread.tid, regs)
                cont()
                continue
            if sig == signal.SIGTRAP and thread.rstack and regs.rip - 1 == proc.xol.ret_trampoline:
                instance = self._pop_return(thread)  # returning: finish the return, without handlers
                if instance is not None:
                    for probe in instance.probes:
                        probe.missed += 1
                    regs.rip = instance.orig_ret
                    kernel.ptrace_setregs(thread.tid, regs)
                cont()
                continue
            if sig == signal.SIGTRAP and (regs.rip - 1 in proc.sites or regs.rip - 1 in proc.retired):
                # stopped on one of our int3: the hit is dropped; the original instruction runs in
                # place once the byte is restored.
                regs.rip -= 1
                kernel.ptrace_setregs(thread.tid, regs)
                cont()
                continue
            if sig in FAULT_SIGNALS:
                self._fixup_fault(thread)
            self._hold(thread, sig)
            cont()

    def _release_thread(self, thread: Thread) -> None:
        sig = 0
        if thread.held is not None:
            sig = thread.held[0]
        try:
            if thread.stepping is not None or thread.fix_rip is not None:
                regs = kernel.ptrace_getregs(thread.tid, thread.regs)
                site = thread.stepping
                if thread.fix_rip is not None:
                    regs.rip = thread.fix_rip  # let go in the middle of handling its stop
                elif site is not None and regs.rip == site.slot:
                    regs.rip = site.addr  # its single-step never ran: run the original in place
                elif site is not None:
                    site.reloc.after_step(regs, site.slot, thread.process.mem)
                kernel.ptrace_setregs(thread.tid, regs)
                thread.stepping = None
                thread.fix_rip = None
            kernel.ptrace_detach(thread.tid, sig)
        except ProcessLookupError:
            # It is exiting (the program ended while we let go): a traced thread that dies stays a
            # zombie until its tracer reaps it, and its thread group cannot be reaped before that.
            self._reap(thread.tid)

    @staticmethod
    def _reap(tid: int) -> None:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                pid, status = kernel.waitpid(tid, kernel.WALL | kernel.WNOHANG)
            except ChildProcessError:
                return
            if pid == tid and not kernel.WIFSTOPPED(status):
                return
            time.sleep(0.001)

    def _wait_untraced_exit(self) -> Optional[int]:
        """After detaching from a launched target: it is still our child, so wait for its end."""
        while True:
            try:
                _, status = os.waitpid(self.leader, 0)
            except ChildProcessError:
                return None
            except KeyboardInterrupt:
                return None
            if os.WIFEXITED(status) or os.WIFSIGNALED(status):
                return _exit_code(status)

    # ------------------------------------------------------------------ context manager
    def __enter__(self) -> Tracer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.detach()


class _Deferred(Exception):
    """A probe that can only be armed later in this process (an IFUNC before relocation)."""


class _LinkerEvents(Handler):
    """The handler of utrace's own probe on the dynamic linker's r_brk."""

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer

    def on_entry(self, event: Event) -> None:
        self.tracer._on_linker_event(event.thread)


class _UnwindEntry(Handler):
    """utrace's own probes on libgcc_s's unwinder entry points and on __cxa_begin_catch."""

    def __init__(self, tracer: Tracer, caught: bool = False) -> None:
        self.tracer = tracer
        self.caught = caught

    def on_entry(self, event: Event) -> None:
        if self.caught:
            self.tracer._exception_caught(event.thread)
        else:
            self.tracer._unwind_started(event.thread)


def is_spec(text: str) -> bool:
    """A probe definition rather than a bare target: ``p ...``, ``r:ev ...``, ``-:ev``, or anything with
    fetch arguments or a filter (a space, other than inside a C++ target's brackets:
    ``app::(anonymous namespace)::f``, ``app::f(int, long)``)."""
    depth = 0
    for ch in re.sub(r"\)\s+(?=const\b|volatile\b|&)", ")", text.strip()):  # app::Shape::area() const
        depth += {"(": 1, "<": 1, ")": -1, ">": -1}.get(ch, 0)
        if ch == " " and depth <= 0:
            return True
    return text.startswith(("p:", "r:", "-:"))


def _is_bare_symbol(target: str) -> bool:
    return ":" not in target and not target.startswith("0x")


def _which(cmd: str) -> str:
    """The path execvp ran for ``cmd`` (for the execve line of a syscall trace)."""
    if "/" in cmd:
        return cmd
    import shutil

    return shutil.which(cmd) or cmd


def _exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _swap_return(mem: kernel.ProcMem, instance: RetInstance, value: int, expected: int) -> None:
    """Set the return-address slot of ``instance`` to ``value`` if it still holds ``expected``."""
    try:
        if int.from_bytes(mem.read(instance.rsp, 8), "little") == expected:
            mem.write(instance.rsp, value.to_bytes(8, "little"))
    except OSError:
        pass  # the stack is gone (the thread exited) or was never there


def _sharing(pid: int, parent: Process, follow: bool) -> Process:
    """A child that shares its parent's memory (vfork, posix_spawn, CLONE_VM): the very same sites,
    slots and code areas. ``follow`` False: traced only until it execs, without handlers."""
    return Process(pid=pid, mem=parent.mem, xol=parent.xol, sites=parent.sites, retired=parent.retired,
                   slots=parent.slots, armed=parent.armed, follow=follow)  # fmt: skip


def _sigtrap_pending(tid: int) -> bool:
    """Whether a SIGTRAP is queued for this thread (its SigPnd mask in /proc)."""
    try:
        with open(f"/proc/{tid}/status") as f:
            for line in f:
                if line.startswith("SigPnd:"):
                    return bool(int(line.split()[1], 16) & (1 << (signal.SIGTRAP - 1)))
    except (OSError, ValueError):
        pass
    return False


def _live_threads(pid: int) -> List[int]:
    """Threads of ``pid`` that are not zombies (a leader that called pthread_exit is one, while the
    other threads run on)."""
    live = []
    for tid in kernel.thread_ids(pid):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state not in ("Z", "X"):
            live.append(tid)
    return live


def _tgid_of(tid: int) -> int:
    try:
        return int(kernel.proc_status(tid).get("Tgid", "0"))
    except OSError:
        return 0


_CXX_LIB = re.compile(r"^[^:\s()]+:(?!:)")  # the LIB: of a C++ target (libfoo.so:app::f)


def _probe_name(target: str) -> str:
    """The default event name: the symbol of the target (``libc:malloc+4`` -> ``malloc``,
    ``app::scale(int)`` -> ``scale(int)``)."""
    if looks_cxx(target):
        return cxx_short_name(_CXX_LIB.sub("", target.split("+", 1)[0]))
    name = target.rsplit(":", 1)[-1].split("+", 1)[0]
    return name or target
