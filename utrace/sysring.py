"""One stop per system call: the return path that records results in the tracee (launch + seccomp).

Tracing a call with PTRACE_SYSCALL costs two stops, entry and exit; strace pays the same two. When
utrace launched the program with a seccomp filter, the entry is a seccomp stop and the program can
be resumed with PTRACE_CONT, which skips the exit stop. For a call that copies no memory out to the
program, the exit only has the return value to give, so utrace sends the call's return through a
small stub instead of stopping there: at the seccomp stop it sets the thread's rip to stub ``k``,
the kernel runs the call and returns to the stub, which stores rax in slot ``k`` of a data page and
jumps back through rcx (the `syscall` instruction put the real return address there; rcx and r11
end up exactly as after a direct return). The results are read in one pread when the ring is full
or the thread stops for anything else; the lines come out in call order.

The area is two pages mapped at a fixed address out of everybody's way (so the program's own mmap
results are those of an untraced run): code (read+exec, written through /proc/PID/mem) and
data (read+write). Each stub is preceded by a `syscall` instruction: when the kernel restarts an
interrupted call it re-executes the instruction 2 bytes before the return address, so a restart
that happens without a stop in between still runs the same call (the tracer fixes rcx at its
seccomp stop). Only single-threaded traces use it: with several threads the lines of different
threads must be ordered by the time calls return, which only an exit stop tells.
"""

from __future__ import annotations

import ctypes
import struct
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from .syscalls import SyscallRecord

PAGE = 4096
STUB = 32  # bytes per stub: "syscall" (restart landing), then the stub proper at +2
SLOTS = PAGE // STUB  # 128 calls between two reads of the results
GEN_OFFSET = 0  # data page: one "done" byte per slot ...
VALUE_OFFSET = 256  # ... then the 8-byte results
# Far below the shared libraries (mmap allocates top-down from just under the stack) and far above
# the heap, at addresses no program picks for a MAP_FIXED mapping of its own (not round numbers).
HINTS = (0x7A5E5AB00000, 0x6A5E5AB00000, 0x4A5E5AB00000, 0x3A5E5AB00000)
AREA_SIZE = 2 * PAGE


def code_page(area: int) -> bytes:
    """The stubs for an area mapped at ``area``: stub k stores rax in slot k, marks it done, returns."""
    data = area + PAGE
    code = bytearray()
    for k in range(SLOTS):
        base = area + k * STUB
        stub = bytearray(b"\x0f\x05")  # syscall: where a restart lands (return address - 2)
        # mov [rip+rel32], rax   (7 bytes, rip-relative to the next instruction)
        stub += b"\x48\x89\x05" + struct.pack("<i", data + VALUE_OFFSET + 8 * k - (base + 9))
        # mov byte [rip+rel32], 1   (7 bytes)
        stub += b"\xc6\x05" + struct.pack("<i", data + GEN_OFFSET + k - (base + 16)) + b"\x01"
        stub += b"\xff\xe1"  # jmp rcx
        code += stub.ljust(STUB, b"\xcc")
    return bytes(code.ljust(PAGE, b"\xcc"))


@dataclass(eq=False)
class SysRing:
    """The calls of one thread whose results are on their way to the ring: (record, return address)
    in slot order; ``printed`` of them were already printed (by the flush timer)."""

    area: int
    records: List[Tuple[SyscallRecord, int]] = field(default_factory=list)
    printed: int = 0
    stub_refs: List[ctypes.c_uint64] = field(default_factory=list)  # stub k's address, for POKEUSER

    code_end: int = 0  # the end of the stubs

    def __post_init__(self) -> None:
        self.stub_refs = [ctypes.c_uint64(self.stub(k)) for k in range(SLOTS)]
        self.code_end = self.area + SLOTS * STUB

    @property
    def full(self) -> bool:
        return len(self.records) == SLOTS

    def stub(self, k: int) -> int:
        return self.area + k * STUB + 2

    def in_code(self, pc: int) -> bool:
        return self.area <= pc < self.area + SLOTS * STUB

    def slot_at(self, pc: int) -> int:
        return (pc - self.area) // STUB

    @property
    def values(self) -> int:
        return self.area + PAGE + VALUE_OFFSET

    @property
    def gens(self) -> int:
        return self.area + PAGE + GEN_OFFSET

    def overlaps(self, start: int, length: int) -> bool:
        return start < self.area + AREA_SIZE and self.area < start + max(length, 1)


def signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def unpack_values(data: bytes) -> List[int]:
    return [signed(v) for v in struct.unpack(f"<{len(data) // 8}Q", data)]


AREA_CALLS = frozenset((9, 10, 11, 25, 26, 28, 30, 329))


def touches_area(ring: Optional[SysRing], nr: int, args: Tuple[int, ...]) -> bool:
    """Whether a call may unmap, move or re-protect the area (mmap MAP_FIXED, munmap, mremap,
    mprotect, madvise, shmat): it then runs with an exit stop and the ring is given up."""
    if nr not in AREA_CALLS or ring is None:
        return False
    if nr in (10, 11, 26, 28, 329):  # mprotect, munmap, msync, madvise, pkey_mprotect: (addr, len, ...)
        return ring.overlaps(args[0], args[1])
    if nr == 9:  # mmap: only MAP_FIXED/MAP_FIXED_NOREPLACE can land on it
        return bool(args[3] & 0x100010) and ring.overlaps(args[0], args[1])
    if nr == 25:  # mremap(old, old_size, new_size, flags, new_address)
        return ring.overlaps(args[0], args[1]) or (bool(args[3] & 2) and ring.overlaps(args[4], args[2]))
    if nr == 30:  # shmat: any address it picks with SHM_REMAP
        return bool(args[2] & 0o40000)
    return False
