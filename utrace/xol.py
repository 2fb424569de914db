"""Executable areas mapped into the tracee, and the code injection that maps them.

Slots (the displaced instructions run out of line) must lie within ±2 GiB of the code they serve
so that RIP-relative operands and rel32 jumps can reach it, so areas are mapped with an injected
``mmap`` at a hint next to the module with MAP_FIXED_NOREPLACE, and the result is checked.
Slots are never reused while the process lives: a thread, or a signal frame saved on a stack, may
still point into one.

Every area starts with a few fixed stubs: a ``syscall`` instruction for later injections, an
``int3`` that ends injected function calls, and an ``int3`` used as the return-probe trampoline.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from typing import Callable, Optional

from . import kernel
from .errors import TargetError
from .kernel import user_regs_struct
from .relocate import SLOT_SIZE

AREA_SIZE = 64 * 1024
REACH = 2**31 - AREA_SIZE - 1
PAGE = 4096

# The fixed header of every area: stubs, then a magic and the allocation mark, so that a later
# utrace session attaching to the same process finds and reuses the areas of earlier ones (they
# stay mapped after a detach: a thread or a saved signal frame may still point into a slot).
STUB_SYSCALL = 0  # 0f 05     syscall
STUB_CALL_TRAP = 8  # cc      int3 (end of an injected call)
STUB_RET_TRAMPOLINE = 16  # cc  int3 (return probes)
MAGIC_AT = 24
MAGIC = b"utrace\x00\x01"
USED_AT = 32  # u64: bytes of the area handed out so far
STUBS = b"\x0f\x05" + b"\xcc" * 14 + b"\xcc" * 8 + MAGIC
FIRST_SLOT = 64


@dataclass
class XolArea:
    start: int
    size: int
    used: int = FIRST_SLOT

    @property
    def end(self) -> int:
        return self.start + self.size

    def reaches(self, lo: int, hi: int) -> bool:
        """Whether every address in this area is within rel32 reach of every address in [lo, hi)."""
        return self.start - lo > -REACH and hi - self.start < REACH and self.end - lo < REACH


# Called with the stopped thread's tid when a signal arrived for it during an injection; the engine
# keeps it to deliver later (tid, signal, siginfo).
PendingSignal = Callable[[int, int, kernel.siginfo_t], None]


@dataclass
class Xol:
    """The XOL areas of one process (an address space)."""

    mem: kernel.ProcMem
    areas: list[XolArea] = field(default_factory=list)
    # A `syscall` instruction the first injection can use before any area exists (from the vDSO).
    bootstrap_syscall: Optional[int] = None

    @property
    def call_trap(self) -> int:
        return self.areas[0].start + STUB_CALL_TRAP

    @property
    def ret_trampoline(self) -> int:
        return self.areas[0].start + STUB_RET_TRAMPOLINE

    def syscall_insn(self) -> int:
        if self.areas:
            return self.areas[0].start + STUB_SYSCALL
        if self.bootstrap_syscall is None:
            raise TargetError("found no syscall instruction in the process to map utrace's code area with")
        return self.bootstrap_syscall

    def copy_for(self, mem: kernel.ProcMem) -> Xol:
        """The areas as a fork child inherits them (same addresses, its own copy of the memory)."""
        return Xol(mem, [XolArea(a.start, a.size, a.used) for a in self.areas], self.bootstrap_syscall)

    def is_xol(self, addr: int) -> bool:
        return any(a.start <= addr < a.end for a in self.areas)

    def alloc_slot(self, lo: int, hi: int, map_area: Callable[[int], int]) -> int:
        """A fresh SLOT_SIZE-byte slot within reach of [lo, hi); maps a new area with ``map_area(hint)``."""
        for area in self.areas:
            if area.used + SLOT_SIZE <= area.size and area.reaches(lo, hi):
                return self._take(area)
        return self._take(self._map_near(lo, hi, map_area))

    def _take(self, area: XolArea) -> int:
        slot = area.start + area.used
        area.used += SLOT_SIZE
        self.mem.write(area.start + USED_AT, area.used.to_bytes(8, "little"))
        return slot

    def adopt(self, pid: int) -> None:
        """Take over the areas an earlier utrace session left in this process (attach)."""
        with open(f"/proc/{pid}/maps") as f:
            lines = f.read().splitlines()
        for line in lines:
            parts = line.split()
            if len(parts) != 5 or parts[1] != "r-xp":  # anonymous: no path
                continue
            start, end = (int(x, 16) for x in parts[0].split("-"))
            if end - start != AREA_SIZE:
                continue
            try:
                head = self.mem.read(start, USED_AT + 8)
            except OSError:
                continue
            if head[: len(STUBS)] == STUBS:
                used = int.from_bytes(head[USED_AT:], "little")
                self.areas.append(XolArea(start, AREA_SIZE, max(used, FIRST_SLOT)))

    def ensure_area(self, lo: int, hi: int, map_area: Callable[[int], int]) -> None:
        if not self.areas:
            self._map_near(lo, hi, map_area)

    def _map_near(self, lo: int, hi: int, map_area: Callable[[int], int]) -> XolArea:
        for hint in _hints_near(lo, hi):
            addr = map_area(hint)
            if addr < 0:
                continue
            area = XolArea(addr, AREA_SIZE)
            if not self.areas or area.reaches(lo, hi):
                self.mem.write(addr, STUBS + FIRST_SLOT.to_bytes(8, "little"))
                self.areas.append(area)
                if area.reaches(lo, hi):
                    return area
        raise TargetError(f"could not map a code area within 2 GiB of {lo:#x}-{hi:#x} in the process")

    def forget(self) -> None:
        """After exec: the areas are gone with the old address space."""
        self.areas.clear()


def _hints_near(lo: int, hi: int) -> list[int]:
    """Candidate addresses for a new area: just past the module, then just before it, then further."""
    up = (hi + 16 * PAGE + 0xFFFF) & ~0xFFFF
    down = (lo - AREA_SIZE - 16 * PAGE) & ~0xFFFF
    hints = []
    for step in (0, 1 << 20, 1 << 22, 1 << 24, 1 << 26, 1 << 28, 1 << 29, 1 << 30):
        hints.append(up + step)
        if down - step > 0x10000:
            hints.append(down - step)
    return hints


def find_syscall_insn(pid: int, mem: kernel.ProcMem) -> Optional[int]:
    """Any ``0f 05`` in an executable mapping: executed from there it is a `syscall` instruction."""
    with open(f"/proc/{pid}/maps") as f:
        lines = f.read().splitlines()
    # The vDSO first (always present, small), then any other executable mapping.
    lines.sort(key=lambda ln: "[vdso]" not in ln)
    for line in lines:
        parts = line.split()
        if "x" not in parts[1] or "[vsyscall]" in line:
            continue
        start, end = (int(x, 16) for x in parts[0].split("-"))
        try:
            data = mem.read(start, min(end - start, 1 << 20))
        except OSError:
            continue
        idx = data.find(b"\x0f\x05")
        if idx >= 0:
            return start + idx
    return None


def _wait_stop(tid: int) -> int:
    status = kernel.wait_thread(tid)
    if not kernel.WIFSTOPPED(status):
        raise TargetError(f"thread {tid} ended while utrace was running code in it")
    return status


def inject_syscall(
    tid: int,
    saved: user_regs_struct,
    syscall_addr: int,
    nr: int,
    args: tuple[int, ...],
    on_signal: PendingSignal,
) -> int:
    """Run one system call in a stopped thread and restore its registers exactly.

    ``saved`` are the thread's current registers (not modified). orig_rax is set to -1 for the
    injected call so the kernel does not treat it as a restart, and the saved orig_rax is restored
    afterwards so an interrupted system call of the program still restarts correctly.
    """
    regs = user_regs_struct.from_buffer_copy(saved)
    regs.rip = syscall_addr
    regs.rax = nr
    regs.orig_rax = 0xFFFFFFFFFFFFFFFF
    for name, value in zip(("rdi", "rsi", "rdx", "r10", "r8", "r9"), args):
        setattr(regs, name, value & 0xFFFFFFFFFFFFFFFF)
    kernel.ptrace_setregs(tid, regs)
    try:
        while True:
            kernel.ptrace_singlestep(tid)
            status = _wait_stop(tid)
            kernel.ptrace_getregs(tid, regs)
            sig = kernel.WSTOPSIG(status)
            event = kernel.WPTRACEEVENT(status)
            if event == kernel.PTRACE_EVENT_SECCOMP:
                continue  # the injected call stopped by the program's seccomp filter: let it run
            if sig != signal.SIGTRAP or event:
                if not event:
                    on_signal(tid, sig, kernel.ptrace_getsiginfo(tid))
            if regs.rip == syscall_addr + 2:
                result = regs.rax
                return result - (1 << 64) if result >= 1 << 63 else result
            if regs.rip != syscall_addr:
                raise TargetError(f"injected system call {nr} in thread {tid} went astray to {regs.rip:#x}")
            # Not run yet. A thread that was inside a system call (stopped at its exec event) had
            # that call's result stored in rax on the way out: set the number again.
            regs.rax = nr
            regs.orig_rax = 0xFFFFFFFFFFFFFFFF
            kernel.ptrace_setregs(tid, regs)
    finally:
        kernel.ptrace_setregs(tid, saved)


def inject_call(
    tid: int,
    saved: user_regs_struct,
    mem: kernel.ProcMem,
    func: int,
    args: tuple[int, ...],
    trap: int,
    on_signal: PendingSignal,
) -> int:
    """Call ``func(*args)`` in a stopped thread (SysV ABI) and return rax; registers restored after.

    The return address is ``trap`` (an int3 in the XOL area); the callee runs on the thread's stack
    below the red zone. Used to run GNU IFUNC resolvers.
    """
    regs = user_regs_struct.from_buffer_copy(saved)
    sp = ((saved.rsp - 1024) & ~0xF) - 8  # at function entry rsp+8 is 16-byte aligned
    mem.write(sp, trap.to_bytes(8, "little"))
    regs.rsp = sp
    regs.rip = func
    regs.rax = 0
    regs.orig_rax = 0xFFFFFFFFFFFFFFFF
    for name, value in zip(("rdi", "rsi", "rdx", "rcx", "r8", "r9"), args):
        setattr(regs, name, value & 0xFFFFFFFFFFFFFFFF)
    kernel.ptrace_setregs(tid, regs)
    try:
        kernel.ptrace_cont(tid)
        while True:
            status = _wait_stop(tid)
            sig = kernel.WSTOPSIG(status)
            kernel.ptrace_getregs(tid, regs)
            if sig == signal.SIGTRAP and not kernel.WPTRACEEVENT(status) and regs.rip == trap + 1:
                return int(regs.rax)
            if sig in (signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGTRAP):
                raise TargetError(
                    f"function at {func:#x} called in thread {tid} faulted with signal {sig} at {regs.rip:#x}"
                )
            if not kernel.WPTRACEEVENT(status):
                on_signal(tid, sig, kernel.ptrace_getsiginfo(tid))
            kernel.ptrace_cont(tid)
    finally:
        kernel.ptrace_setregs(tid, saved)
