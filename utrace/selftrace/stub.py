"""The SIGSYS handler stub: x86-64 machine code generated here, byte by byte.

Why machine code and not a ctypes callback: CPython's callback machinery (GIL state, ctypes argument
conversion, the allocator) makes system calls of its own before any Python code could switch the
selector to ALLOW; under BLOCK each of them traps again, recursing until the stack is gone. So the
handler switches the selector before any system call, and everything that must never reach Python
(memory management, the GIL's futexes, calls made while glibc holds its malloc locks inside fork)
is done here, natively. Only calls selected for tracing go to Python.

The mapping is one code page (r-x, the allowed region of Syscall User Dispatch; its syscall
instructions pass the seccomp filter of the fallback mode) followed by two data pages (rw-)::

    code page                          data pages (offsets below, D_*)
    handler     SIGSYS entry           selector byte, re-entrancy depth, callback pointer,
    restorer    sa_restorer            the kind table (one byte per syscall number), the ring of
    raw_syscall, run_saved             deferred records, trampoline slots
    pending_call (raises exceptions)   the real handlers of wrapped signals
    sig_wrapper (other signals' handler)
    trampolines N x (syscall; jmp *saved_rip)

``generate(code_base, data_base, si_code)`` is a pure function: it returns the bytes and the offsets of the
entry points, so tests can disassemble it with capstone without installing anything.

Register conventions inside the handler: rbx = ucontext, r12 = siginfo, r13d = kind byte (then the
Python attempts left), r14 = the deferred record the native path completes (or the trampoline
index), r15 = raw_syscall's count before a Python attempt, rbp = rsp at entry. The handler may
clobber every register but rsp: rt_sigreturn restores all of them from the frame, and
``ret`` must find the restorer address at the stack pointer the kernel gave us.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Dict, List, Tuple, Union

# --- kernel ABI offsets (x86-64) --------------------------------------------------------------------
# siginfo_t: si_signo 0, si_errno 4, si_code 8; the SIGSYS union: si_call_addr 16, si_syscall 24,
# si_arch 28.
SI_CODE = 8
SI_CALL_ADDR = 16
SI_SYSCALL = 24
SI_ARCH = 28
# struct ucontext: uc_flags 0, uc_link 8, uc_stack 16 (24 bytes), uc_mcontext 40 (gregs[23], fpregs,
# reserved[8]: 256 bytes), uc_sigmask 296 (the kernel's 8-byte sigset).
UC_LINK = 8  # ignored by rt_sigreturn: the handler keeps the trap-time selector there
UC_GREGS = 40
UC_SIGMASK = 296
GREG_INDEX = {"r8": 0, "r9": 1, "r10": 2, "rdi": 8, "rsi": 9, "rdx": 12, "rax": 13, "rsp": 15, "rip": 16}
UC_R8, UC_R9, UC_R10, UC_RDI, UC_RSI, UC_RDX, UC_RAX, UC_RSP, UC_RIP = (
    UC_GREGS + 8 * GREG_INDEX[r] for r in ("r8", "r9", "r10", "rdi", "rsi", "rdx", "rax", "rsp", "rip")
)
#: gregs offsets of the six syscall arguments, in ABI order (rdi, rsi, rdx, r10, r8, r9).
UC_ARGS = (UC_RDI, UC_RSI, UC_RDX, UC_R10, UC_R8, UC_R9)

SYS_rt_sigreturn = 15
SYS_gettid = 186
SYS_clock_gettime = 228
CLOCK_MONOTONIC = 1
SIG_BLOCK, SIG_UNBLOCK, SIG_SETMASK = 0, 1, 2
EINVAL = 22
# Bits the kernel never lets a mask hold (SIGKILL, SIGSTOP), plus SIGSYS: a trap while SIGSYS is
# blocked kills the process, so the emulated rt_sigprocmask never blocks it.
UNBLOCKABLE = (1 << (9 - 1)) | (1 << (19 - 1)) | (1 << (31 - 1))

# --- selector values (<linux/prctl.h>) -------------------------------------------------------------
SYSCALL_DISPATCH_FILTER_ALLOW = 0
SYSCALL_DISPATCH_FILTER_BLOCK = 1
KEEP_SELECTOR = 0xFF  # in uc_link: the restorer must not touch the selector (not a trap of ours)

# --- the kind table: what the stub does with a trapped call --------------------------------------
K_PYTHON = 0  # call the Python callback (it records, runs the handler, sets the result)
K_NATIVE = 1  # run it here with the trap-time registers and store the result
K_SIGRETURN = 2  # a foreign handler's rt_sigreturn: run it on that handler's stack
K_SIGPROCMASK = 3  # emulate on uc_sigmask (running it here would be undone by rt_sigreturn)
K_REISSUE = 4  # run it after rt_sigreturn, in a trampoline: clone, clone3, fork, vfork, sigaltstack
K_RECORD = 0x80  # flag: selected. Stub-handled calls leave a deferred record in the ring; Python-bound
# ones do too when they trap inside a signal handler (they run natively there, never in Python).
# K_NATIVE | K_RECORD: a selected call with nothing for Python to do at the time (no handler, no
# output, no memory to capture) runs here and leaves a record; when the ring is full it goes to
# Python instead, which reads the ring first.
KIND_SIZE = 1024  # numbers at or above run natively (x32 numbers, junk)
PYTHON_ATTEMPTS = 3  # callbacks for one call when each is cut short before the call ran

# --- data layout (offsets from data_base) ----------------------------------------------------------
D_SELECTOR = 0  # byte: ALLOW / BLOCK
D_DEPTH = 8  # qword: 1 while the Python callback runs (never re-entered)
D_CALLBACK = 16  # qword: address of the ctypes callback(siginfo, ucontext)
D_TID = 24  # dword: the traced thread (seccomp mode: other threads inherit the filter)
D_CHECK_TID = 28  # byte: 1 in seccomp mode
D_RING_W = 32  # qword: deferred records written (the ring index is W mod N_RING)
D_TRAMP_N = 40  # qword: trampolines used (the slot is T mod N_TRAMP)
D_PENDING = 48  # qword: 1 = after the callback, Py_AddPendingCall(pending_call, 0)
D_ADD_PENDING = 56  # qword: address of Py_AddPendingCall
D_SET_OBJECT = 64  # qword: address of PyErr_SetObject
D_EXC_TYPE = 72  # qword: PyObject* the pending call raises (references held by Python)
D_EXC_VALUE = 80  # qword
D_DONE = 88  # qword: set by Python when it has set the call's result; 0 = the stub runs the call
D_RAW_COUNT = 96  # qword: raw_syscall calls so far (tells Python whether the call already ran)
D_LAST_RET = 104  # qword: raw_syscall's last result
D_IN_SIG = 112  # qword: foreign signal handlers running on the traced thread (see sig_wrapper)
D_RING_R = 120  # qword: deferred records Python has read (W - R = records waiting in the ring)
D_HANDLERS = 1024  # 65 qwords: the real handler of each wrapped signal
D_CLOCK_GETTIME = 1552  # qword: address of libc's clock_gettime (0: the stub makes the system call)
D_SAVED_RIP = 128  # N_TRAMP qwords: where each trampoline returns to
N_TRAMP = 32
D_RECPTR = D_SAVED_RIP + 8 * N_TRAMP  # N_TRAMP qwords: the record each trampoline completes
D_DUMMY = D_RECPTR + 8 * N_TRAMP  # one ring-sized record nobody reads (unselected re-issues)
D_KIND = 2048  # KIND_SIZE bytes
D_RING_TS = 3072  # N_RING struct timespec: CLOCK_MONOTONIC when each deferred record was made
D_RING = 4096  # N_RING records of RING_ENTRY bytes: nr, 6 args, ret
N_RING = 64
RING_ENTRY = 64
RING_RET = 56
DATA_SIZE = D_RING + N_RING * RING_ENTRY
CODE_SIZE = 4096
TRAMP_SIZE = 24

# --- registers -------------------------------------------------------------------------------------
RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI = range(8)
R8, R9, R10, R11, R12, R13, R14, R15 = range(8, 16)
# condition codes for jcc
CC_B, CC_AE, CC_E, CC_NE, CC_GE = 0x2, 0x3, 0x4, 0x5, 0xD

Target = Union[int, str]  # an absolute address, or a label in the code being assembled


class Assembler:
    """Just enough of an x86-64 encoder for the stub; every method emits one instruction.

    Memory operands are ``(base, disp)`` and always carry a displacement (mod 01 or 10), which
    sidesteps the rbp/r13 special case; rsp/r12 bases get their SIB byte. RIP-relative operands take
    an absolute address or a label and are fixed up when ``finish`` runs.
    """

    def __init__(self, origin: int) -> None:
        self.origin = origin
        self.buf = bytearray()
        self.labels: Dict[str, int] = {}
        self.fixups: List[Tuple[int, str, int, int]] = []  # (field offset, label, end offset, size)

    @property
    def pc(self) -> int:
        return self.origin + len(self.buf)

    def label(self, name: str) -> None:
        if name in self.labels:
            raise ValueError(f"label {name!r} defined twice")
        self.labels[name] = len(self.buf)

    def finish(self) -> bytes:
        for field, name, end, size in self.fixups:
            rel = self.labels[name] - end
            if size == 1:
                if not -128 <= rel <= 127:
                    raise ValueError(f"rel8 to {name!r} out of range: {rel}")
                self.buf[field] = rel & 0xFF
            else:
                self.buf[field : field + 4] = struct.pack("<i", rel)
        return bytes(self.buf)

    # --- encoding helpers ---------------------------------------------------------------------------
    @staticmethod
    def _rex(w: bool, reg: int = 0, index: int = 0, base: int = 0, force: bool = False) -> bytes:
        bits = (8 if w else 0) | (4 if reg & 8 else 0) | (2 if index & 8 else 0) | (1 if base & 8 else 0)
        return bytes([0x40 | bits]) if bits or force else b""

    @staticmethod
    def _mem(reg: int, base: int, disp: int) -> bytes:
        """ModRM (+SIB) + displacement for [base + disp]."""
        mod = 1 if -128 <= disp <= 127 else 2
        out = bytes([(mod << 6) | ((reg & 7) << 3) | (base & 7)])
        if base & 7 == RSP:  # rsp and r12 need a SIB byte: no index, base
            out += bytes([0x24])
        return out + (struct.pack("<b", disp) if mod == 1 else struct.pack("<i", disp))

    @staticmethod
    def _sib(reg: int, base: int, index: int, scale: int) -> bytes:
        """ModRM + SIB for [base + index*scale] (base must not be rbp/r13)."""
        ss = {1: 0, 2: 1, 4: 2, 8: 3}[scale]
        return bytes([((reg & 7) << 3) | 4, (ss << 6) | ((index & 7) << 3) | (base & 7)])

    def _rip(self, prefix: bytes, target: Target, suffix: bytes = b"") -> None:
        """``prefix`` ends with a ModRM whose rm is 101 (RIP-relative); disp32 counts from the end."""
        end = len(self.buf) + len(prefix) + 4 + len(suffix)
        if isinstance(target, str):
            self.fixups.append((len(self.buf) + len(prefix), target, end, 4))
            disp = 0
        else:
            disp = target - (self.origin + end)
        self.buf += prefix + struct.pack("<i", disp) + suffix

    def _rel32(self, opcode: bytes, target: Target) -> None:
        end = len(self.buf) + len(opcode) + 4
        if isinstance(target, str):
            self.fixups.append((len(self.buf) + len(opcode), target, end, 4))
            self.buf += opcode + b"\0\0\0\0"
        else:
            self.buf += opcode + struct.pack("<i", target - (self.origin + end))

    # --- instructions -------------------------------------------------------------------------------
    def mov_r64_m64(self, dst: int, base: int, disp: int) -> None:  # mov dst, [base+disp]
        self.buf += self._rex(True, dst, 0, base) + b"\x8b" + self._mem(dst, base, disp)

    def mov_m64_r64(self, base: int, disp: int, src: int) -> None:  # mov [base+disp], src
        self.buf += self._rex(True, src, 0, base) + b"\x89" + self._mem(src, base, disp)

    def mov_m64_imm32(self, base: int, disp: int, imm: int) -> None:  # mov qword [base+disp], simm32
        self.buf += self._rex(True, 0, 0, base) + b"\xc7" + self._mem(0, base, disp) + struct.pack("<i", imm)

    def mov_r64_r64(self, dst: int, src: int) -> None:  # mov dst, src
        self.buf += self._rex(True, src, 0, dst) + b"\x89" + bytes([0xC0 | ((src & 7) << 3) | (dst & 7)])

    def mov_r32_imm32(self, dst: int, imm: int) -> None:  # mov dst32, imm32 (zero-extends)
        self.buf += self._rex(False, 0, 0, dst) + bytes([0xB8 + (dst & 7)]) + struct.pack("<I", imm)

    def mov_r64_simm32(self, dst: int, imm: int) -> None:  # mov dst, simm32 (sign-extends)
        self.buf += self._rex(True, 0, 0, dst) + b"\xc7" + bytes([0xC0 | (dst & 7)]) + struct.pack("<i", imm)

    def mov_r64_imm64(self, dst: int, imm: int) -> None:  # movabs dst, imm64
        self.buf += self._rex(True, 0, 0, dst) + bytes([0xB8 + (dst & 7)]) + struct.pack("<Q", imm)

    def mov_r32_m32(self, dst: int, base: int, disp: int) -> None:  # mov dst32, dword [base+disp]
        self.buf += self._rex(False, dst, 0, base) + b"\x8b" + self._mem(dst, base, disp)

    def movzx_r32_m8(self, dst: int, base: int, disp: int) -> None:  # movzx dst32, byte [base+disp]
        self.buf += self._rex(False, dst, 0, base) + b"\x0f\xb6" + self._mem(dst, base, disp)

    def movzx_r32_m8_idx(self, dst: int, base: int, index: int) -> None:  # movzx dst32, byte [base+index]
        self.buf += self._rex(False, dst, index, base) + b"\x0f\xb6" + self._sib(dst, base, index, 1)

    def mov_m64_idx8_r64(self, base: int, index: int, src: int) -> None:  # mov [base+index*8], src
        self.buf += self._rex(True, src, index, base) + b"\x89" + self._sib(src, base, index, 8)

    def movzx_r32_rip8(self, dst: int, target: Target) -> None:  # movzx dst32, byte [rip+X]
        self._rip(self._rex(False, dst) + b"\x0f\xb6" + bytes([((dst & 7) << 3) | 5]), target)

    def mov_rip8_imm8(self, target: Target, imm: int) -> None:  # mov byte [rip+X], imm8
        self._rip(b"\xc6\x05", target, bytes([imm]))

    def mov_rip8_r8(self, target: Target, src: int) -> None:  # mov byte [rip+X], src8 (al, cl, dl, bl)
        assert src < 4, "only the legacy low byte registers"
        self._rip(b"\x88" + bytes([(src << 3) | 5]), target)

    def cmp_r8_imm8(self, reg: int, imm: int) -> None:  # cmp reg8, imm8 (al, cl, dl, bl)
        assert reg < 4, "only the legacy low byte registers"
        self.buf += b"\x80" + bytes([0xF8 | reg, imm])

    def mov_r8_m8(self, dst: int, base: int, disp: int) -> None:  # mov dst8, byte [base+disp]
        assert dst < 4, "only the legacy low byte registers"
        self.buf += self._rex(False, 0, 0, base) + b"\x8a" + self._mem(dst, base, disp)

    def mov_r64_rip(self, dst: int, target: Target) -> None:  # mov dst, qword [rip+X]
        self._rip(self._rex(True, dst) + b"\x8b" + bytes([((dst & 7) << 3) | 5]), target)

    def mov_rip_r64(self, target: Target, src: int) -> None:  # mov qword [rip+X], src
        self._rip(self._rex(True, src) + b"\x89" + bytes([((src & 7) << 3) | 5]), target)

    def lea_r64_rip(self, dst: int, target: Target) -> None:  # lea dst, [rip+X]
        self._rip(self._rex(True, dst) + b"\x8d" + bytes([((dst & 7) << 3) | 5]), target)

    def lea_r64_m(self, dst: int, base: int, disp: int) -> None:  # lea dst, [base+disp]
        self.buf += self._rex(True, dst, 0, base) + b"\x8d" + self._mem(dst, base, disp)

    def cmp_r32_imm32(self, reg: int, imm: int) -> None:  # cmp reg32, imm32
        self.buf += self._rex(False, 0, 0, reg) + b"\x81" + bytes([0xF8 | (reg & 7)]) + struct.pack("<I", imm)

    def cmp_m32_imm32(self, base: int, disp: int, imm: int) -> None:  # cmp dword [base+disp], imm32
        self.buf += self._rex(False, 0, 0, base) + b"\x81" + self._mem(7, base, disp) + struct.pack("<I", imm)

    def cmp_m64_imm32(self, base: int, disp: int, imm: int) -> None:  # cmp qword [base+disp], simm32
        self.buf += self._rex(True, 0, 0, base) + b"\x81" + self._mem(7, base, disp) + struct.pack("<i", imm)

    def cmp_m8_imm8(self, base: int, disp: int, imm: int) -> None:  # cmp byte [base+disp], imm8
        self.buf += self._rex(False, 0, 0, base) + b"\x80" + self._mem(7, base, disp) + bytes([imm])

    def cmp_rip8_imm8(self, target: Target, imm: int) -> None:  # cmp byte [rip+X], imm8
        self._rip(b"\x80\x3d", target, bytes([imm]))

    def cmp_rip64_imm8(self, target: Target, imm: int) -> None:  # cmp qword [rip+X], simm8
        self._rip(b"\x48\x83\x3d", target, struct.pack("<b", imm))

    def cmp_r32_rip(self, reg: int, target: Target) -> None:  # cmp reg32, dword [rip+X]
        self._rip(self._rex(False, reg) + b"\x3b" + bytes([((reg & 7) << 3) | 5]), target)

    def test_r32_imm32(self, reg: int, imm: int) -> None:  # test reg32, imm32
        self.buf += self._rex(False, 0, 0, reg) + b"\xf7" + bytes([0xC0 | (reg & 7)]) + struct.pack("<I", imm)

    def test_r64_r64(self, a: int, b: int) -> None:  # test a, b
        self.buf += self._rex(True, b, 0, a) + b"\x85" + bytes([0xC0 | ((b & 7) << 3) | (a & 7)])

    def and_r32_imm8(self, reg: int, imm: int) -> None:  # and reg32, simm8
        self.buf += self._rex(False, 0, 0, reg) + b"\x83" + bytes([0xE0 | (reg & 7)]) + struct.pack("<b", imm)

    def and_r64_imm8(self, reg: int, imm: int) -> None:  # and reg, simm8
        self.buf += self._rex(True, 0, 0, reg) + b"\x83" + bytes([0xE0 | (reg & 7)]) + struct.pack("<b", imm)

    def and_r64_r64(self, dst: int, src: int) -> None:  # and dst, src
        self.buf += self._rex(True, src, 0, dst) + b"\x21" + bytes([0xC0 | ((src & 7) << 3) | (dst & 7)])

    def or_r64_r64(self, dst: int, src: int) -> None:  # or dst, src
        self.buf += self._rex(True, src, 0, dst) + b"\x09" + bytes([0xC0 | ((src & 7) << 3) | (dst & 7)])

    def add_r64_r64(self, dst: int, src: int) -> None:  # add dst, src
        self.buf += self._rex(True, src, 0, dst) + b"\x01" + bytes([0xC0 | ((src & 7) << 3) | (dst & 7)])

    def not_r64(self, reg: int) -> None:  # not reg
        self.buf += self._rex(True, 0, 0, reg) + b"\xf7" + bytes([0xD0 | (reg & 7)])

    def shl_r32_imm8(self, reg: int, imm: int) -> None:  # shl reg32, imm8
        self.buf += self._rex(False, 0, 0, reg) + b"\xc1" + bytes([0xE0 | (reg & 7)]) + bytes([imm])

    def mov_rip64_imm32(self, target: Target, imm: int) -> None:  # mov qword [rip+X], simm32
        self._rip(b"\x48\xc7\x05", target, struct.pack("<i", imm))

    def sub_r32_imm8(self, reg: int, imm: int) -> None:  # sub reg32, simm8
        self.buf += self._rex(False, 0, 0, reg) + b"\x83" + bytes([0xE8 | (reg & 7)]) + struct.pack("<b", imm)

    def cmp_r64_rip(self, reg: int, target: Target) -> None:  # cmp reg, qword [rip+X]
        self._rip(self._rex(True, reg) + b"\x3b" + bytes([((reg & 7) << 3) | 5]), target)

    def sub_r64_imm8(self, reg: int, imm: int) -> None:  # sub reg, simm8
        self.buf += self._rex(True, 0, 0, reg) + b"\x83" + bytes([0xE8 | (reg & 7)]) + struct.pack("<b", imm)

    def add_r64_imm8(self, reg: int, imm: int) -> None:  # add reg, simm8
        self.buf += self._rex(True, 0, 0, reg) + b"\x83" + bytes([0xC0 | (reg & 7)]) + struct.pack("<b", imm)

    def inc_rip64(self, target: Target) -> None:  # inc qword [rip+X]
        self._rip(b"\x48\xff\x05", target)

    def dec_rip64(self, target: Target) -> None:  # dec qword [rip+X]
        self._rip(b"\x48\xff\x0d", target)

    def jmp(self, target: Target) -> None:  # jmp rel32
        self._rel32(b"\xe9", target)

    def jcc(self, cc: int, target: Target) -> None:  # jcc rel32
        self._rel32(bytes([0x0F, 0x80 | cc]), target)

    def jrcxz(self, label: str) -> None:  # jrcxz rel8 (uses no flags)
        self.fixups.append((len(self.buf) + 1, label, len(self.buf) + 2, 1))
        self.buf += b"\xe3\x00"

    def call(self, target: Target) -> None:  # call rel32
        self._rel32(b"\xe8", target)

    def call_rip(self, target: Target) -> None:  # call qword [rip+X]
        self._rip(b"\xff\x15", target)

    def jmp_rip(self, target: Target) -> None:  # jmp qword [rip+X]
        self._rip(b"\xff\x25", target)

    def mov_r64_m64_idx8(self, dst: int, base: int, index: int) -> None:  # mov dst, [base+index*8]
        self.buf += self._rex(True, dst, index, base) + b"\x8b" + self._sib(dst, base, index, 8)

    def call_r64(self, reg: int) -> None:  # call reg
        self.buf += self._rex(False, 0, 0, reg) + b"\xff" + bytes([0xD0 | (reg & 7)])

    def push(self, reg: int) -> None:  # push reg
        self.buf += self._rex(False, 0, 0, reg) + bytes([0x50 | (reg & 7)])

    def pop(self, reg: int) -> None:  # pop reg
        self.buf += self._rex(False, 0, 0, reg) + bytes([0x58 | (reg & 7)])

    def syscall(self) -> None:
        self.buf += b"\x0f\x05"

    def ret(self) -> None:
        self.buf += b"\xc3"

    def ud2(self) -> None:
        self.buf += b"\x0f\x0b"

    def align(self, n: int) -> None:  # pad with int3
        while len(self.buf) % n:
            self.buf += b"\xcc"


@dataclass(frozen=True)
class StubCode:
    """The generated code page and where its entry points are (offsets from the code base)."""

    code: bytes
    handler: int
    restorer: int
    raw_syscall: int
    pending_call: int
    run_saved: int
    sig_wrapper: int
    trampolines: int


def generate(code_base: int, data_base: int, si_code: int) -> StubCode:
    """The handler, restorer, raw_syscall helper and trampolines for a stub mapped at these bases.

    ``si_code`` is the code of the traps the handler serves: SYS_USER_DISPATCH (2) or SYS_SECCOMP (1).
    """
    a = Assembler(code_base)
    d = data_base
    _emit_handler(a, d, si_code)
    _emit_paths(a, d)
    _emit_ring_entry(a, d)
    a.align(16)
    a.label("restorer")
    _emit_restorer(a, d)
    a.align(16)
    a.label("pending_call")
    _emit_pending_call(a, d)
    a.align(16)
    a.label("raw_syscall")
    _emit_raw_syscall(a, d)
    a.align(16)
    a.label("sig_wrapper")
    _emit_sig_wrapper(a, d)
    a.align(16)
    a.label("run_saved")
    _emit_run_saved(a, d)
    a.align(16)
    a.label("trampolines")
    for i in range(N_TRAMP):
        _emit_trampoline(a, d, i)
    code = a.finish()
    if len(code) > CODE_SIZE - 16:  # the last syscall's return address must stay inside the page
        raise AssertionError(f"stub is {len(code)} bytes: it no longer fits its page")
    return StubCode(
        code=code,
        handler=0,
        restorer=a.labels["restorer"],
        raw_syscall=a.labels["raw_syscall"],
        pending_call=a.labels["pending_call"],
        run_saved=a.labels["run_saved"],
        sig_wrapper=a.labels["sig_wrapper"],
        trampolines=a.labels["trampolines"],
    )


def _emit_handler(a: Assembler, d: int, si_code: int) -> None:
    """Entry (rdi = signo, rsi = siginfo, rdx = ucontext): allow syscalls, classify the trap.

    Under Syscall User Dispatch only the traced thread traps, and nothing before the selector store
    makes a system call. In seccomp mode other threads trap too: they are told apart (gettid, which
    the filter lets through from this page) before the selector, which is the traced thread's, is
    touched.
    """
    a.mov_r64_r64(RBX, RDX)  # rbx = ucontext
    a.mov_r64_r64(R12, RSI)  # r12 = siginfo
    a.mov_m64_imm32(RBX, UC_LINK, KEEP_SELECTOR)  # until we know the trap is ours: hands off
    a.mov_r32_imm32(R14, 0)  # r14 = deferred record the native path completes (none yet)
    a.cmp_m32_imm32(R12, SI_CODE, si_code)  # one of our traps? (no syscall made before this:
    a.jcc(CC_NE, "done")  # kill(SIGSYS) or a foreign filter's trap: nothing to do
    a.cmp_rip8_imm8(d + D_CHECK_TID, 0)  # seccomp mode: other threads inherit the filter; their
    a.jcc(CC_E, "tid_ok")  # traps must not touch the selector (it is the traced thread's)
    a.mov_r32_imm32(RAX, SYS_gettid)  # eax = gettid() (seccomp allows this page's calls)
    a.syscall()
    a.cmp_r32_rip(RAX, d + D_TID)  # the traced thread?
    a.jcc(CC_NE, "other_thread")
    a.label("tid_ok")
    a.movzx_r32_rip8(RAX, d + D_SELECTOR)  # eax = the selector at trap time (BLOCK for our traps)
    a.mov_m64_r64(RBX, UC_LINK, RAX)  # keep it in uc_link: the restorer puts it back
    a.mov_rip8_imm8(d + D_SELECTOR, SYSCALL_DISPATCH_FILTER_ALLOW)  # C may make syscalls from here on
    a.mov_r32_m32(RAX, R12, SI_SYSCALL)  # eax = syscall number
    a.mov_r32_imm32(R13, K_NATIVE)  # r13d = kind: numbers outside the table run natively
    a.cmp_r32_imm32(RAX, KIND_SIZE)
    a.jcc(CC_AE, "classified")
    a.lea_r64_rip(RCX, d + D_KIND)  # rcx = kind table
    a.movzx_r32_m8_idx(R13, RCX, RAX)  # r13d = kind[nr]
    a.label("classified")
    a.cmp_m8_imm8(RBX, UC_LINK, SYSCALL_DISPATCH_FILTER_BLOCK)  # trapped while allowed (seccomp:
    a.jcc(CC_NE, "untraced")  # our own Python code): never trace it
    a.cmp_rip64_imm8(d + D_DEPTH, 0)  # inside the Python callback already: never re-enter
    a.jcc(CC_NE, "untraced")
    a.cmp_rip64_imm8(d + D_IN_SIG, 0)  # inside a signal handler: it interrupted arbitrary code,
    a.jcc(CC_NE, "in_signal")  # running Python there is not async-signal-safe
    a.label("dispatch")  # r13d = kind
    a.mov_r64_r64(RAX, R13)  # eax = kind & 0x7f: the action
    a.and_r32_imm8(RAX, 0x7F)
    a.cmp_r32_imm32(RAX, K_NATIVE)
    a.jcc(CC_E, "native_dispatch")
    a.cmp_r32_imm32(RAX, K_SIGRETURN)
    a.jcc(CC_E, "sigreturn")
    a.cmp_r32_imm32(RAX, K_SIGPROCMASK)
    a.jcc(CC_E, "sigprocmask")
    a.cmp_r32_imm32(RAX, K_REISSUE)
    a.jcc(CC_E, "reissue")
    # K_PYTHON: callback(siginfo, ucontext) on a 16-byte aligned stack. Python may be cut short
    # anywhere by an exception from a signal handler (Ctrl-C); the result must still be right.
    a.label("python")
    a.mov_r32_imm32(R13, PYTHON_ATTEMPTS)  # r13d = attempts left (callee-saved across the call)
    a.mov_r64_r64(RBP, RSP)  # rbp = rsp at entry (the restorer's return address is at [rsp])
    a.and_r64_imm8(RSP, -16)  # align for the C ABI
    a.label("python_again")
    a.inc_rip64(d + D_DEPTH)  # depth = 1
    a.mov_rip64_imm32(d + D_DONE, 0)  # Python sets it once the result is in uc RAX
    a.mov_r64_rip(R15, d + D_RAW_COUNT)  # r15 = raw calls so far: did Python run the call?
    a.mov_r64_r64(RDI, R12)  # arg 1: siginfo
    a.mov_r64_r64(RSI, RBX)  # arg 2: ucontext
    a.call_rip(d + D_CALLBACK)  # the ctypes callback (it writes uc RAX)
    a.dec_rip64(d + D_DEPTH)  # depth = 0
    a.cmp_rip64_imm8(d + D_DONE, 0)  # finished: the result is in uc RAX
    a.jcc(CC_NE, "after_python")
    a.cmp_r64_rip(R15, d + D_RAW_COUNT)  # cut short after the call ran: take its result
    a.jcc(CC_NE, "python_ran_it")
    a.sub_r32_imm8(R13, 1)  # cut short before: ask again (a deny must not become a run) ...
    a.jcc(CC_NE, "python_again")
    a.jmp("after_python")  # ... after the last attempt, done stays 0: run it as if untraced
    a.label("python_ran_it")
    a.mov_r64_rip(RAX, d + D_LAST_RET)
    a.mov_m64_r64(RBX, UC_RAX, RAX)
    a.mov_rip64_imm32(d + D_DONE, 1)
    a.label("after_python")
    a.cmp_rip64_imm8(d + D_PENDING, 0)  # an exception to raise in the traced code?
    a.jcc(CC_E, "python_out")
    a.mov_rip64_imm32(d + D_PENDING, 0)
    a.lea_r64_rip(RDI, "pending_call")  # Py_AddPendingCall(pending_call, NULL): the main thread
    a.mov_r32_imm32(RSI, 0)  # runs it at its next eval-breaker check, outside this handler
    a.call_rip(d + D_ADD_PENDING)
    a.label("python_out")
    a.mov_r64_r64(RSP, RBP)  # back to the entry stack pointer
    a.cmp_rip64_imm8(d + D_DONE, 0)
    a.jcc(CC_E, "native")
    a.label("done")
    a.ret()  # to the restorer (sa_restorer is the return address)


def _emit_paths(a: Assembler, d: int) -> None:
    """The actions that never reach Python."""
    a.label("other_thread")  # seccomp mode, a thread the traced one started: run it, record nothing
    a.mov_r32_m32(RAX, R12, SI_SYSCALL)  # eax = syscall number
    a.mov_r32_imm32(R13, K_NATIVE)
    a.cmp_r32_imm32(RAX, KIND_SIZE)
    a.jcc(CC_AE, "untraced")
    a.lea_r64_rip(RCX, d + D_KIND)
    a.movzx_r32_m8_idx(R13, RCX, RAX)  # r13d = kind[nr]
    a.label("untraced")  # never record, never call Python
    a.and_r32_imm8(R13, 0x7F)  # drop K_RECORD
    a.cmp_r32_imm32(R13, K_PYTHON)
    a.jcc(CC_NE, "dispatch")
    a.mov_r32_imm32(R13, K_NATIVE)  # a Python-bound call runs natively instead
    a.jmp("dispatch")

    a.label("native_dispatch")  # K_NATIVE, selected or not
    a.test_r32_imm32(R13, K_RECORD)
    a.jcc(CC_E, "native")
    a.mov_r64_rip(RAX, d + D_RING_W)  # a full ring (W - (N_RING - 1) >= R): Python reads it first
    a.sub_r64_imm8(RAX, N_RING - 1)
    a.cmp_r64_rip(RAX, d + D_RING_R)
    a.jcc(CC_GE, "python")
    a.jmp("record_native")

    a.label("in_signal")  # run it natively; a selected call leaves a deferred record
    a.mov_r64_r64(RAX, R13)
    a.and_r32_imm8(RAX, 0x7F)
    a.cmp_r32_imm32(RAX, K_NATIVE)  # recorded here whatever the ring holds: no Python in a handler
    a.jcc(CC_E, "record_native")
    a.cmp_r32_imm32(RAX, K_PYTHON)  # other stub-handled calls record themselves
    a.jcc(CC_NE, "dispatch")
    a.label("record_native")
    a.test_r32_imm32(R13, K_RECORD)
    a.jcc(CC_E, "native")
    a.call("ring_entry")  # rdi = a ring entry holding nr and args
    a.mov_r64_r64(R14, RDI)  # r14 = the entry: the native path stores the result there too
    a.label("native")  # run the call with the trap-time arguments
    a.mov_r32_m32(RAX, R12, SI_SYSCALL)  # eax = number
    a.mov_r64_m64(RDI, RBX, UC_RDI)  # the six argument registers from the ucontext
    a.mov_r64_m64(RSI, RBX, UC_RSI)
    a.mov_r64_m64(RDX, RBX, UC_RDX)
    a.mov_r64_m64(R10, RBX, UC_R10)
    a.mov_r64_m64(R8, RBX, UC_R8)
    a.mov_r64_m64(R9, RBX, UC_R9)
    a.syscall()  # allowed: this page is the allowed region
    a.mov_m64_r64(RBX, UC_RAX, RAX)  # the result, as the interrupted code will see it
    a.test_r64_r64(R14, R14)  # a deferred record to complete? (in_signal)
    a.jcc(CC_E, "done")
    a.mov_m64_r64(R14, RING_RET, RAX)
    a.jmp("done")

    a.label("sigreturn")  # a foreign handler's rt_sigreturn trapped: do it for that handler
    a.movzx_r32_m8(RAX, RBX, UC_LINK)  # al = trap-time selector (BLOCK)
    a.mov_rip8_r8(d + D_SELECTOR, RAX)  # restore it: the foreign frame's context ran under it
    a.mov_r64_m64(RSP, RBX, UC_RSP)  # rsp = the handler's rsp at its syscall (frame = rsp - 8)
    a.mov_r32_imm32(RAX, SYS_rt_sigreturn)
    a.syscall()  # never returns
    a.ud2()

    a.label("sigprocmask")  # rt_sigprocmask(how, set, oldset, sigsetsize) on uc_sigmask
    a.mov_r64_simm32(RAX, -EINVAL)  # rax = -EINVAL unless proven otherwise
    a.cmp_m64_imm32(RBX, UC_R10, 8)  # sigsetsize must be 8
    a.jcc(CC_NE, "mask_result")
    a.mov_r64_m64(RCX, RBX, UC_SIGMASK)  # rcx = old mask
    a.mov_r64_m64(RSI, RBX, UC_RSI)  # rsi = set
    a.test_r64_r64(RSI, RSI)
    a.jcc(CC_E, "mask_old")  # no new set: only report the old one
    a.mov_r64_m64(RSI, RSI, 0)  # rsi = *set
    a.mov_r64_m64(RDI, RBX, UC_RDI)  # rdi = how
    a.mov_r64_r64(RDX, RCX)  # rdx = new mask, start from old
    a.cmp_r32_imm32(RDI, SIG_BLOCK)
    a.jcc(CC_NE, "mask_not_block")
    a.or_r64_r64(RDX, RSI)  # SIG_BLOCK: old | set
    a.jmp("mask_store")
    a.label("mask_not_block")
    a.cmp_r32_imm32(RDI, SIG_SETMASK)
    a.jcc(CC_NE, "mask_not_set")
    a.mov_r64_r64(RDX, RSI)  # SIG_SETMASK: set
    a.jmp("mask_store")
    a.label("mask_not_set")
    a.cmp_r32_imm32(RDI, SIG_UNBLOCK)
    a.jcc(CC_NE, "mask_result")  # any other how: -EINVAL (rax)
    a.not_r64(RSI)  # SIG_UNBLOCK: old & ~set
    a.and_r64_r64(RDX, RSI)
    a.label("mask_store")
    a.mov_r64_imm64(RSI, (~UNBLOCKABLE) & 0xFFFFFFFFFFFFFFFF)  # never SIGKILL, SIGSTOP, SIGSYS
    a.and_r64_r64(RDX, RSI)
    a.mov_m64_r64(RBX, UC_SIGMASK, RDX)  # rt_sigreturn installs it
    a.label("mask_old")
    a.mov_r64_m64(RDX, RBX, UC_RDX)  # rdx = oldset
    a.test_r64_r64(RDX, RDX)
    a.jcc(CC_E, "mask_ok")
    a.mov_m64_r64(RDX, 0, RCX)  # *oldset = old mask
    a.label("mask_ok")
    a.mov_r32_imm32(RAX, 0)  # rax = 0
    a.label("mask_result")
    a.mov_m64_r64(RBX, UC_RAX, RAX)  # the result
    a.test_r32_imm32(R13, K_RECORD)  # selected: leave a deferred record
    a.jcc(CC_E, "done")
    a.call("ring_entry")  # rdi = a ring entry holding nr and args
    a.mov_r64_m64(RAX, RBX, UC_RAX)
    a.mov_m64_r64(RDI, RING_RET, RAX)  # its result
    a.jmp("done")

    a.label("reissue")  # run it after rt_sigreturn, from trampoline i, then jump back
    a.mov_r64_rip(R14, d + D_TRAMP_N)  # r14 = T
    a.lea_r64_m(RAX, R14, 1)  # T += 1
    a.mov_rip_r64(d + D_TRAMP_N, RAX)
    a.and_r32_imm8(R14, N_TRAMP - 1)  # r14d = i = T mod N_TRAMP
    a.mov_r64_m64(RDX, RBX, UC_RIP)  # saved_rip[i] = the address after the original syscall
    a.lea_r64_rip(RSI, d + D_SAVED_RIP)
    a.mov_m64_idx8_r64(RSI, R14, RDX)
    a.lea_r64_rip(RDI, d + D_DUMMY)  # rdi = the record the trampoline completes: a dummy ...
    a.test_r32_imm32(R13, K_RECORD)
    a.jcc(CC_E, "reissue_rec")
    a.call("ring_entry")  # ... or a ring entry when the call is selected
    a.label("reissue_rec")
    a.lea_r64_rip(RSI, d + D_RECPTR)  # recptr[i] = rdi
    a.mov_m64_idx8_r64(RSI, R14, RDI)
    a.mov_r32_m32(RAX, R12, SI_SYSCALL)  # uc RAX = the number, for the re-issued syscall
    a.mov_m64_r64(RBX, UC_RAX, RAX)
    a.shl_r32_imm8(R14, 3)  # r14 = i * 24 (TRAMP_SIZE) = (i << 3) * 3
    a.lea_r64_rip(RSI, "trampolines")
    a.add_r64_r64(RSI, R14)
    a.add_r64_r64(RSI, R14)
    a.add_r64_r64(RSI, R14)
    a.mov_m64_r64(RBX, UC_RIP, RSI)  # resume at trampoline i
    a.jmp("done")


def _emit_ring_entry(a: Assembler, d: int) -> None:
    """rdi = the next ring entry, filled with nr and the six arguments, ret = 0, and its time
    (clobbers rax, rcx, rdx, rsi, r8-r11)."""
    a.label("ring_entry")
    a.mov_r64_rip(RAX, d + D_RING_W)  # rax = W
    a.lea_r64_m(RDX, RAX, 1)  # W += 1
    a.mov_rip_r64(d + D_RING_W, RDX)
    a.and_r32_imm8(RAX, N_RING - 1)  # eax = W mod N_RING
    a.mov_r64_r64(RDX, RAX)
    a.shl_r32_imm8(RDX, 4)  # edx = (W mod N_RING) * sizeof(struct timespec)
    a.shl_r32_imm8(RAX, 6)  # eax = (W mod N_RING) * RING_ENTRY
    a.lea_r64_rip(RDI, d + D_RING)
    a.add_r64_r64(RDI, RAX)  # rdi = entry
    a.lea_r64_rip(RSI, d + D_RING_TS)
    a.add_r64_r64(RSI, RDX)  # rsi = its timespec
    a.push(RDI)
    a.mov_r32_imm32(RDI, CLOCK_MONOTONIC)  # clock_gettime(CLOCK_MONOTONIC, rsi): time.monotonic's clock
    a.cmp_rip64_imm8(d + D_CLOCK_GETTIME, 0)
    a.jcc(CC_E, "clock_syscall")
    # libc's, async-signal-safe: the vDSO reads the clock without a system call (and one it falls
    # back to runs natively: the selector is ALLOW here). C's ABI: a 16-byte aligned stack; rbx,
    # rbp, r12-r15 are kept, the registers the callers of ring_entry rely on.
    a.push(RBP)
    a.mov_r64_r64(RBP, RSP)
    a.and_r64_imm8(RSP, -16)
    a.call_rip(d + D_CLOCK_GETTIME)
    a.mov_r64_r64(RSP, RBP)
    a.pop(RBP)
    a.jmp("clock_done")
    a.label("clock_syscall")
    a.mov_r32_imm32(RAX, SYS_clock_gettime)
    a.syscall()
    a.label("clock_done")
    a.pop(RDI)
    a.mov_r32_m32(RAX, R12, SI_SYSCALL)  # entry.nr
    a.mov_m64_r64(RDI, 0, RAX)
    for i, off in enumerate(UC_ARGS):  # entry.args[i]
        a.mov_r64_m64(RAX, RBX, off)
        a.mov_m64_r64(RDI, 8 + 8 * i, RAX)
    a.mov_m64_imm32(RDI, RING_RET, 0)  # entry.ret = 0 until known
    a.ret()


def _emit_restorer(a: Assembler, d: int) -> None:
    """sa_restorer, entered by the handler's ret with rsp = &ucontext: restore the selector, return.

    Restoring the selector and rt_sigreturn are two instructions, but the second lives in the allowed
    region, so it runs natively whatever the selector says; a signal in between sees the traced
    code's state (BLOCK) and is handled like any other.
    """
    a.mov_r8_m8(RAX, RSP, UC_LINK)  # al = the selector at trap time
    a.cmp_r8_imm8(RAX, KEEP_SELECTOR)  # not our trap, or another thread's: leave it alone
    a.jcc(CC_E, "restorer_return")
    a.mov_rip8_r8(d + D_SELECTOR, RAX)  # back to BLOCK
    a.label("restorer_return")
    a.mov_r32_imm32(RAX, SYS_rt_sigreturn)
    a.syscall()
    a.ud2()


def _emit_pending_call(a: Assembler, d: int) -> None:
    """int pending_call(void *): PyErr_SetObject(exc_type, exc_value); return -1 (raise it)."""
    a.sub_r64_imm8(RSP, 8)  # align the stack for the call
    a.mov_r64_rip(RDI, d + D_EXC_TYPE)
    a.mov_r64_rip(RSI, d + D_EXC_VALUE)
    a.call_rip(d + D_SET_OBJECT)
    a.add_r64_imm8(RSP, 8)
    a.mov_r32_imm32(RAX, 0xFFFFFFFF)  # -1: the exception is set
    a.ret()


def _emit_raw_syscall(a: Assembler, d: int) -> None:
    """long raw_syscall(nr, a1, ..., a6): a syscall instruction inside the allowed region."""
    a.mov_r64_r64(RAX, RDI)  # rax = nr
    a.mov_r64_r64(RDI, RSI)  # the arguments shift down, the 4th goes to r10
    a.mov_r64_r64(RSI, RDX)
    a.mov_r64_r64(RDX, RCX)
    a.mov_r64_r64(R10, R8)
    a.mov_r64_r64(R8, R9)
    a.mov_r64_m64(R9, RSP, 8)  # the 7th C argument is on the stack
    a.syscall()
    a.mov_rip_r64(d + D_LAST_RET, RAX)  # for Python: the result, even if it never gets to see it
    a.inc_rip64(d + D_RAW_COUNT)
    a.ret()


def _emit_sig_wrapper(a: Assembler, d: int) -> None:
    """The kernel handler of every other signal while tracing: count it, call the real handler.

    CPython's C-level handler writes to the wakeup fd (asyncio); a trap there would run Python inside
    a signal handler, on top of whatever it interrupted (the allocator, a half-updated object). While
    the count is non-zero the traced thread's traps run natively. rdi, rsi and rdx (signo, siginfo,
    ucontext) survive the gettid syscall and reach the real handler unchanged, for either handler
    form. Handlers that leave by siglongjmp leave the count up: tracing then stays off.
    """
    a.push(R12)  # callee-saved; the push also aligns the stack to 16 bytes for the call
    a.mov_r32_imm32(R12, 0)  # r12d = 1 if we counted this one
    a.mov_r32_imm32(RAX, SYS_gettid)  # the traced thread? (this page's calls are allowed)
    a.syscall()
    a.cmp_r32_rip(RAX, d + D_TID)
    a.jcc(CC_NE, "wrapper_call")
    a.inc_rip64(d + D_IN_SIG)
    a.mov_r32_imm32(R12, 1)
    a.label("wrapper_call")
    a.lea_r64_rip(RCX, d + D_HANDLERS)  # rax = handlers[signo]
    a.mov_r64_m64_idx8(RAX, RCX, RDI)
    a.call_r64(RAX)  # the real handler(signo, siginfo, ucontext)
    a.test_r32_imm32(R12, 1)
    a.jcc(CC_E, "wrapper_out")
    a.dec_rip64(d + D_IN_SIG)
    a.label("wrapper_out")
    a.pop(R12)
    a.ret()  # to the restorer the real handler was installed with


def _emit_run_saved(a: Assembler, d: int) -> None:
    """long run_saved(ucontext *uc, long nr): the trapped call, arguments from the saved registers.

    Python's pass-through path: two arguments convert much faster through ctypes than seven.
    """
    a.mov_r64_r64(RAX, RSI)  # rax = nr
    a.mov_r64_r64(RCX, RDI)  # rcx = uc (rcx is free until the syscall clobbers it)
    a.mov_r64_m64(RSI, RCX, UC_RSI)  # the six argument registers from the ucontext
    a.mov_r64_m64(RDX, RCX, UC_RDX)
    a.mov_r64_m64(R10, RCX, UC_R10)
    a.mov_r64_m64(R8, RCX, UC_R8)
    a.mov_r64_m64(R9, RCX, UC_R9)
    a.mov_r64_m64(RDI, RCX, UC_RDI)
    a.syscall()
    a.mov_rip_r64(d + D_LAST_RET, RAX)  # as raw_syscall: Python may never see the result
    a.inc_rip64(d + D_RAW_COUNT)
    a.ret()


def _emit_trampoline(a: Assembler, d: int, i: int) -> None:
    """Trampoline i: the re-issued syscall, its result stored by the caller side, a jump back.

    After ``syscall`` only rcx and r11 are free (the ABI clobbers them) and the flags are not:
    jrcxz tests rcx without touching them. A new thread or child gets rax = 0 and skips the store
    (it must not race its parent for the record); so does a 0 result, which the ring entry holds.
    """
    start = len(a.buf)
    a.syscall()  # the original call, original registers, allowed region
    a.mov_r64_r64(RCX, RAX)  # rcx = result
    a.jrcxz(f"t{i}_back")  # 0: the child (or success of sigaltstack): nothing to store
    a.mov_r64_rip(R11, d + D_RECPTR + 8 * i)  # r11 = recptr[i]
    a.mov_m64_r64(R11, RING_RET, RAX)  # record.ret = result
    a.label(f"t{i}_back")
    a.jmp_rip(d + D_SAVED_RIP + 8 * i)  # back after the original syscall instruction
    if len(a.buf) - start != TRAMP_SIZE:
        raise AssertionError(f"trampoline is {len(a.buf) - start} bytes, expected {TRAMP_SIZE}")
