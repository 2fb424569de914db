"""Out-of-line execution of the instruction displaced by a probe's ``int3``.

A probe keeps an ``int3`` at its address for as long as it exists. After a hit the tracer moves the
thread to the probe's *slot* (at most ``SLOT_SIZE`` bytes of code in an executable area of the
tracee) and lets it run: the slot does what the original instruction would have done and then goes
on at the right original address by itself. Decoding is done once, by capstone; the code is
encoded here by hand (keystone is not a dependency).

Slot layouts (``Q`` is an 8-byte literal stored after the code, ``rS`` a scratch register, ``next``
is ``addr + size``; a ``jmp`` is ``jmp rel32`` when it reaches, else ``jmp [rip+0]; .quad dst``):

plain            copy; jmp next
RIP-relative     copy with disp32 rebased for the slot; jmp next
  (out of reach) lea rsp,[rsp-128]; push rS; mov rS,next; copy with [rip+d] turned into [rS+d];
                 pop rS; lea rsp,[rsp+128]; jmp next
                 rS is rsi, else rdi, else rbx (never rax/rcx/rdx/rsp: implicit operands), and
                 never a register the instruction uses. The lea keeps the push below the red zone.
syscall          syscall; mov rcx,next; jmp next  (the CPU loads rcx with the slot address)
jmp rel          jmp target
jcc rel          jcc rel32 target; jmp next
  (out of reach) j<cc> +N; jmp next; jmp target
loop*/j[er]cxz   loop* +N; jmp next; jmp target       (rel8 only: a short hop over the first jmp)
xbegin           xbegin +N; jmp next; jmp target      (the abort path is the "taken" branch)
call rel32       push [rip+Q]; jmp target; Q: .quad next
call r/m         push [rip+Q]; jmp r/m; Q: .quad next
                 (an rsp-based operand gets disp+8, it is read after the push; rip-relative ones
                 are rebased; out of reach: push [rip+Q]; push rsi; mov rsi,next; push [rsi+d];
                 mov rsi,[rsp+8]; ret 8)
jmp r/m, ret     copy (rip-relative rebased; out of reach like call r/m but without the first push
                 and behind lea rsp,[rsp-128], ending in ret 136)

The return address pushed for a call is the original one, so callees, unwinders and return probes
see the real caller. None of these sequences changes flags (lea, push, pop, mov, jmp and ret do
not).

"step" mode is for a tracer that single-steps the first instruction of the slot and then calls
``after_step``: calls are then real ``call`` copies (their pushed slot address is rewritten to
``next``), every other layout is the same as above. ``after_step`` short-circuits a thread that
stopped on a pure jump back; anywhere else it leaves rip in the slot, whose code then finishes by
itself (a partly done ``rep movs``, the scratch-register epilogue). ``call rsp`` always runs in step
mode; ``relocate(..., force_step=True)`` asks for it for any instruction.

Known limits: a slot beyond +-2 GiB of the rip-relative operand of an instruction that also uses
rsp (``push [rip+x]``, ``mov [rip+x], rsp``) cannot be built; user shadow stacks (CET) would reject
the pushed return addresses and the ``ret``-based far jumps.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

import capstone
from capstone import x86_const as X

from utrace.errors import UnsupportedInstruction

__all__ = ["SLOT_SIZE", "Relocation", "relocate", "instruction_boundaries"]

SLOT_SIZE = 128  # bytes reserved per slot

_MASK64 = (1 << 64) - 1
_RED_ZONE = 128

_LEGACY_PREFIXES = frozenset((0xF0, 0xF2, 0xF3, 0x2E, 0x36, 0x3E, 0x26, 0x64, 0x65, 0x66, 0x67))

# Instructions that are unsafe out of line in any form, with the reason shown to the user.
_REFUSED: dict[int, str] = {
    X.X86_INS_INT3: "int3 raises SIGTRAP by design (or another breakpoint is there already)",
    X.X86_INS_INT: "software interrupts (int n) are not supported",
    X.X86_INS_INT1: "int1 raises a debug trap",
    X.X86_INS_INTO: "into is not supported",
    X.X86_INS_HLT: "hlt is privileged",
    X.X86_INS_UD0: "undefined instruction (ud0)",
    X.X86_INS_UD1: "undefined instruction (ud1)",
    X.X86_INS_UD2: "undefined instruction (ud2)",
    X.X86_INS_IRET: "iret is not supported",
    X.X86_INS_IRETD: "iret is not supported",
    X.X86_INS_IRETQ: "iret is not supported",
    X.X86_INS_RETF: "far return is not supported",
    X.X86_INS_RETFQ: "far return is not supported",
    X.X86_INS_SYSENTER: "sysenter is not supported",
    X.X86_INS_SYSEXIT: "sysexit is privileged",
    X.X86_INS_SYSRET: "sysret is privileged",
    X.X86_INS_IN: "port I/O is privileged",
    X.X86_INS_OUT: "port I/O is privileged",
    X.X86_INS_INSB: "port I/O is privileged",
    X.X86_INS_INSW: "port I/O is privileged",
    X.X86_INS_INSD: "port I/O is privileged",
    X.X86_INS_OUTSB: "port I/O is privileged",
    X.X86_INS_OUTSW: "port I/O is privileged",
    X.X86_INS_OUTSD: "port I/O is privileged",
    X.X86_INS_CLI: "cli is privileged",
    X.X86_INS_STI: "sti is privileged",
    X.X86_INS_CLTS: "clts is privileged",
    X.X86_INS_INVD: "invd is privileged",
    X.X86_INS_WBINVD: "wbinvd is privileged",
    X.X86_INS_WRMSR: "wrmsr is privileged",
    X.X86_INS_RDMSR: "rdmsr is privileged",
    X.X86_INS_GETSEC: "getsec is privileged",
    X.X86_INS_RSM: "rsm is privileged",
    X.X86_INS_LGDT: "lgdt is privileged",
    X.X86_INS_LIDT: "lidt is privileged",
    X.X86_INS_LLDT: "lldt is privileged",
    X.X86_INS_LTR: "ltr is privileged",
    X.X86_INS_LMSW: "lmsw is privileged",
    X.X86_INS_INVLPG: "invlpg is privileged",
    X.X86_INS_INVLPGA: "invlpga is privileged",
    X.X86_INS_INVPCID: "invpcid is privileged",
    X.X86_INS_SWAPGS: "swapgs is privileged",
    X.X86_INS_MONITOR: "monitor is privileged",
    X.X86_INS_MWAIT: "mwait is privileged",
    X.X86_INS_XSETBV: "xsetbv is privileged",
    X.X86_INS_ENCLS: "encls is privileged",
    X.X86_INS_LSS: "loading ss inhibits interrupts and traps for the next instruction",
}

# capstone's "privilege" group is wider than what ring 3 really cannot do.
_PRIVILEGE_ALLOWED = frozenset((X.X86_INS_RDTSCP, X.X86_INS_RDPMC, X.X86_INS_MOV, X.X86_INS_POP))

_LOOPS = frozenset((X.X86_INS_LOOP, X.X86_INS_LOOPE, X.X86_INS_LOOPNE, X.X86_INS_JRCXZ, X.X86_INS_JECXZ))

# The 64-bit register each general-purpose register name belongs to (regs_access() reports
# sub-registers such as "esi" or "sil").
_GPR_NUMBERS = {"rax": 0, "rcx": 1, "rdx": 2, "rbx": 3, "rsp": 4, "rbp": 5, "rsi": 6, "rdi": 7}
_GPR_NUMBERS.update({f"r{n}": n for n in range(8, 16)})
_GPR_NAMES = {v: k for k, v in _GPR_NUMBERS.items()}


def _gpr_aliases() -> dict[str, str]:
    out: dict[str, str] = {}
    for x in "abcd":
        full = f"r{x}x"
        out.update({full: full, f"e{x}x": full, f"{x}x": full, f"{x}l": full, f"{x}h": full})
    for base in ("sp", "bp", "si", "di"):
        full = "r" + base
        out.update({full: full, "e" + base: full, base: full, base + "l": full})
    for n in range(8, 16):
        full = f"r{n}"
        out.update({full: full, full + "d": full, full + "w": full, full + "b": full})
    return out


_GPR_ALIASES = _gpr_aliases()

# Scratch registers in the kernel's order of preference (arch/x86/kernel/uprobes.c riprel_analyze).
_SCRATCH_CANDIDATES = ("rsi", "rdi", "rbx")


class Memory(Protocol):
    """What ``after_step`` and ``fault_fixup`` need of the tracee's memory."""

    def read(self, addr: int, n: int) -> bytes: ...

    def write(self, addr: int, data: bytes) -> None: ...


@cache
def _cs(detail: bool) -> capstone.Cs:
    cs = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    cs.detail = detail
    return cs


def _fits_i32(value: int) -> bool:
    return -(1 << 31) <= value < (1 << 31)


def _fits_i8(value: int) -> bool:
    return -128 <= value < 128


def _rel32(src_end: int, dst: int) -> int | None:
    """The rel32 that reaches ``dst`` from an instruction ending at ``src_end``, or None."""
    rel = _signed64((dst - src_end) & _MASK64)
    return rel if _fits_i32(rel) else None


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >> 63 else value


def _q(value: int) -> bytes:
    return struct.pack("<Q", value & _MASK64)


def _jmp(src: int, dst: int) -> bytes:
    """``jmp rel32`` from ``src`` to ``dst`` or, when that cannot reach, ``jmp [rip+0]; .quad dst``."""
    rel = _rel32(src + 5, dst)
    if rel is not None:
        return b"\xe9" + struct.pack("<i", rel)
    return b"\xff\x25\x00\x00\x00\x00" + _q(dst)


def _hexbytes(data: bytes) -> str:
    return " ".join(f"{b:02x}" for b in data)


# Encoders for the few fixed instructions the layouts need (Intel SDM vol. 2 encodings).
_LEA_RSP_DOWN = b"\x48\x8d\x64\x24\x80"  # lea rsp, [rsp-128]
_LEA_RSP_UP = b"\x48\x8d\xa4\x24\x80\x00\x00\x00"  # lea rsp, [rsp+128]


def _push_reg(n: int) -> bytes:
    return bytes((0x50 + n,))  # only rbx/rsi/rdi are used: no REX needed


def _pop_reg(n: int) -> bytes:
    return bytes((0x58 + n,))


def _mov_reg_imm64(n: int, value: int) -> bytes:
    return bytes((0x48, 0xB8 + n)) + _q(value)


def _mov_reg_from_rsp8(n: int) -> bytes:
    return bytes((0x48, 0x8B, 0x44 | (n << 3), 0x24, 0x08))  # mov r64, [rsp+8]


def _push_mem_reg_disp32(n: int, disp: int, seg: bytes) -> bytes:
    return seg + bytes((0xFF, 0xB0 | n)) + struct.pack("<i", disp)  # push qword [r64+disp32]


def _push_rip(disp: int) -> bytes:
    return b"\xff\x35" + struct.pack("<i", disp)  # push qword [rip+disp32]


def _ret_imm(n: int) -> bytes:
    return b"\xc2" + struct.pack("<H", n)


@dataclass(frozen=True)
class _Piece:
    """One instruction of a slot and the thread state while it is at its start."""

    offset: int
    length: int
    phase: str  # "before" the original instruction's effect, "after" it, or "taken" (branch done)
    rsp_delta: int = 0  # bytes the slot has moved rsp down, to undo on a fault
    saved: tuple[str, int] | None = None  # scratch register whose original value is at [rsp+off]
    jump_to: int | None = None  # a pure jump to this original address: after_step may take it


@dataclass(frozen=True)
class _Layout:
    code: bytes
    pieces: tuple[_Piece, ...]
    pushed_ret: int | None = None  # step mode: offset a copied call pushes as return address


class _Builder:
    def __init__(self, base: int) -> None:
        self.base = base
        self.buf = bytearray()
        self.pieces: list[_Piece] = []

    @property
    def pc(self) -> int:
        return self.base + len(self.buf)

    def emit(
        self,
        code: bytes,
        phase: str,
        rsp_delta: int = 0,
        saved: tuple[str, int] | None = None,
        jump_to: int | None = None,
    ) -> int:
        offset = len(self.buf)
        self.pieces.append(_Piece(offset, len(code), phase, rsp_delta, saved, jump_to))
        self.buf += code
        return offset

    def jump(self, dst: int, phase: str) -> int:
        return self.emit(_jmp(self.pc, dst), phase, jump_to=dst)

    def data(self, code: bytes) -> int:
        offset = len(self.buf)
        self.buf += code
        return offset

    def layout(self, pushed_ret: int | None = None) -> _Layout:
        return _Layout(bytes(self.buf), tuple(self.pieces), pushed_ret)


class Relocation:
    """One decoded instruction and the code that runs it out of line.

    Attributes: ``addr``, ``size``, ``text`` (capstone's disassembly), ``mode`` ("slot" or "step"),
    ``kind`` (the instruction class, e.g. "plain", "riprel", "jcc", "call_rel"), ``target`` (the
    original branch target of a relative branch, else None) and ``operand_addr`` (the address a
    rip-relative memory operand designates, else None).
    """

    addr: int
    size: int
    text: str
    mode: str
    kind: str
    target: int | None
    operand_addr: int | None

    def __init__(self, code: bytes, addr: int, force_step: bool = False) -> None:
        insn = _decode(code, addr)
        self.addr = addr
        self.size = insn.size
        self.text = f"{insn.mnemonic} {insn.op_str}".strip()
        self.target = None
        self.operand_addr = None
        self._bytes = bytes(insn.bytes)
        self._next = (addr + insn.size) & _MASK64
        self._layouts: dict[int, _Layout] = {}
        self._modrm_off = int(insn.modrm_offset)
        self._cc = 0  # condition code of a jcc
        self._call_rsp_mem = False  # call [rsp+...]: the operand moves when the slot pushes
        self._scratch: str | None = None  # register for the out-of-reach rip-relative form
        self._scratch_bytes = b""  # the copy with [rip+d] turned into [scratch+d]
        self._no_scratch_reason = ""
        self._seg = b""  # fs:/gs: override to keep on a rebuilt memory access
        self._call_rsp_reg = False  # call rsp: jumps to the stack pointer's value, run in step mode
        self._refuse_unsafe(insn)
        self.kind = self._classify(insn)
        self.mode = "step" if force_step or self._call_rsp_reg else "slot"

    def __repr__(self) -> str:
        return f"<Relocation {self.addr:#x} {self.text!r} {self.kind} {self.mode}>"

    # ---- analysis (once) ------------------------------------------------------------------------

    def _refuse(self, reason: str) -> UnsupportedInstruction:
        return UnsupportedInstruction(self.addr, self.text, reason)

    def _refuse_unsafe(self, insn: Any) -> None:
        ident = insn.id
        if ident in _REFUSED:
            raise self._refuse(_REFUSED[ident])
        if X.X86_GRP_PRIVILEGE in insn.groups and ident not in _PRIVILEGE_ALLOWED:
            raise self._refuse("privileged instruction")
        ops = insn.operands
        if ident in (X.X86_INS_MOV, X.X86_INS_POP) and ops and ops[0].type == X.X86_OP_REG:
            dest = ops[0].reg
            if dest == X.X86_REG_SS:
                raise self._refuse("loading ss inhibits interrupts and traps for the next instruction")
            if X.X86_GRP_PRIVILEGE in insn.groups and dest not in (
                X.X86_REG_DS,
                X.X86_REG_ES,
                X.X86_REG_FS,
                X.X86_REG_GS,
            ):
                raise self._refuse("privileged instruction")
        if ident in (X.X86_INS_CALL, X.X86_INS_JMP) and insn.opcode[0] == 0xFF:
            if (insn.modrm >> 3) & 7 in (3, 5):
                raise self._refuse("far call/jmp is not supported")
        is_branch = (
            ident in (X.X86_INS_CALL, X.X86_INS_JMP, X.X86_INS_RET, X.X86_INS_XBEGIN)
            or ident in _LOOPS
            or X.X86_GRP_JUMP in insn.groups
        )
        if is_branch and 0x66 in insn.prefix:
            # Intel ignores the operand-size override on near branches, AMD truncates rip to 16 bits.
            raise self._refuse("16-bit operand-size branch")

    def _classify(self, insn: Any) -> str:
        ident = insn.id
        op0, op1 = insn.opcode[0], insn.opcode[1]
        rip_op = self._analyze_riprel(insn)
        if ident == X.X86_INS_SYSCALL:
            return "syscall"
        if ident == X.X86_INS_RET:
            return "ret"
        if ident == X.X86_INS_JMP and op0 in (0xEB, 0xE9):
            self.target = self._rel_target(insn, 1 if op0 == 0xEB else 4)
            return "jmp_rel"
        if ident == X.X86_INS_JMP:
            return "jmp_indirect"
        is_jcc_opcode = 0x70 <= op0 <= 0x7F or (op0 == 0x0F and 0x80 <= op1 <= 0x8F)
        if is_jcc_opcode and X.X86_GRP_JUMP in insn.groups:
            self._cc = (op0 if op0 != 0x0F else op1) & 0xF
            self.target = self._rel_target(insn, 1 if op0 != 0x0F else 4)
            return "jcc"
        if ident in _LOOPS:
            self.target = self._rel_target(insn, 1)
            return "loop"
        if ident == X.X86_INS_XBEGIN:
            self.target = self._rel_target(insn, 4)
            return "xbegin"
        if ident == X.X86_INS_CALL and op0 == 0xE8:
            self.target = self._rel_target(insn, 4)
            return "call_rel"
        if ident == X.X86_INS_CALL:
            op = insn.operands[0]
            if op.type == X.X86_OP_REG and _GPR_ALIASES.get(insn.reg_name(op.reg)) == "rsp":
                self._call_rsp_reg = True
            elif op.type == X.X86_OP_MEM and op.mem.base in (X.X86_REG_RSP, X.X86_REG_ESP):
                self._call_rsp_mem = True
            return "call_indirect"
        return "riprel" if rip_op else "plain"

    def _rel_target(self, insn: Any, imm_size: int) -> int:
        """The absolute target of a relative branch whose displacement ends the instruction."""
        fmt = "<b" if imm_size == 1 else "<i"
        rel = struct.unpack_from(fmt, self._bytes, self.size - imm_size)[0]
        target = (self._next + rel) & _MASK64
        imms = [op.imm & _MASK64 for op in insn.operands if op.type == X.X86_OP_IMM]
        if imms and imms[-1] != target:
            raise self._refuse(f"decoder disagreement on the branch target ({imms[-1]:#x} != {target:#x})")
        return target

    def _analyze_riprel(self, insn: Any) -> bool:
        mem = [op for op in insn.operands if op.type == X.X86_OP_MEM]
        if any(op.mem.base == X.X86_REG_EIP for op in mem):
            raise self._refuse("eip-relative addressing (address-size override) is not supported")
        if not any(op.mem.base == X.X86_REG_RIP for op in mem):
            return False
        mo = self._modrm_off
        # A rip-relative operand is always modrm "00 reg 101" followed by disp32, never a SIB byte.
        if not 0 < mo < self.size - 4 or (self._bytes[mo] & 0xC7) != 0x05:
            raise self._refuse("cannot locate the rip-relative displacement")
        disp = struct.unpack_from("<i", self._bytes, mo + 1)[0]
        if disp != _signed64(insn.disp & _MASK64):
            raise self._refuse("decoder disagreement on the rip-relative displacement")
        self.operand_addr = (self._next + disp) & _MASK64
        self._seg = bytes(p for p in insn.prefix if p in (0x64, 0x65))
        self._prepare_scratch(insn)
        return True

    def _prepare_scratch(self, insn: Any) -> None:
        """Choose the scratch register and build the [scratch+disp32] form of the copy."""
        code = bytearray(self._bytes)
        mo = self._modrm_off
        i = 0
        while i < mo and code[i] in _LEGACY_PREFIXES:
            i += 1
        rex_off = vex_off = None
        if 0x40 <= code[i] <= 0x4F:
            rex_off, i = i, i + 1
        vvvv = None
        if code[i] in (0xC4, 0xC5, 0x62):  # VEX3, VEX2, EVEX (always so in 64-bit mode)
            vex_off = i
            expected_modrm = i + {0xC5: 3, 0xC4: 4, 0x62: 5}[code[i]]
            vvvv = ((code[i + (1 if code[i] == 0xC5 else 2)] >> 3) & 0xF) ^ 0xF
        elif code[i] == 0x0F:
            expected_modrm = i + (3 if code[i + 1] in (0x38, 0x3A) else 2)
        else:
            expected_modrm = i + 1
        if expected_modrm != mo:
            self._no_scratch_reason = "unrecognised encoding"
            return
        used: set[str] = set()
        try:
            read, written = insn.regs_access()
        except capstone.CsError:
            read, written = [], []
        for reg in (*read, *written):
            name = _GPR_ALIASES.get(insn.reg_name(reg))
            if name:
                used.add(name)
        for op in insn.operands:
            if op.type == X.X86_OP_REG and _GPR_ALIASES.get(insn.reg_name(op.reg)):
                used.add(_GPR_ALIASES[insn.reg_name(op.reg)])
        # Like the kernel, also keep clear of whatever the modrm.reg and vex.vvvv fields name, by
        # their low three bits: they may name a register capstone does not report.
        used.add(_GPR_NAMES[(code[mo] >> 3) & 7])
        if vvvv is not None:
            used.add(_GPR_NAMES[vvvv & 7])
        if "rsp" in used:
            self._no_scratch_reason = "the instruction uses rsp"
            return
        scratch = next((r for r in _SCRATCH_CANDIDATES if r not in used), None)
        if scratch is None:
            self._no_scratch_reason = "no free scratch register"
            return
        if rex_off is not None:
            code[rex_off] &= 0xFE  # clear REX.B: rm must name rsi/rdi/rbx, not r14/r15/r11
        if vex_off is not None and code[vex_off] != 0xC5:
            code[vex_off + 1] |= 0x60  # VEX3/EVEX: set the inverted X and B bits (VEX2 has none)
        code[mo] = 0x80 | (code[mo] & 0x38) | _GPR_NUMBERS[scratch]  # mod=10: [scratch+disp32]
        self._scratch = scratch
        self._scratch_bytes = bytes(code)

    # ---- code generation ------------------------------------------------------------------------

    def _rebased(self, at: int) -> bytes | None:
        """The copy with its rip-relative displacement rebased for execution at ``at``."""
        assert self.operand_addr is not None
        disp = _rel32(at + self.size, self.operand_addr)
        if disp is None:
            return None
        mo = self._modrm_off
        return self._bytes[: mo + 1] + struct.pack("<i", disp) + self._bytes[mo + 5 :]

    def _copy_at(self, at: int) -> bytes | None:
        return self._bytes if self.operand_addr is None else self._rebased(at)

    def _as_jmp(self) -> bytes:
        """``call r/m`` turned into ``jmp r/m`` (modrm.reg 2 -> 4), reading its operand after a push."""
        code = bytearray(self._bytes)
        mo = self._modrm_off
        code[mo] = (code[mo] & 0xC7) | (4 << 3)
        if not self._call_rsp_mem:
            return bytes(code)
        # [rsp+disp]: the push moved rsp down by 8, so the operand is now at [rsp+disp+8]. rsp as a
        # base always takes a SIB byte; mod 00/01/10 mean no disp, disp8 and disp32.
        mod = code[mo] >> 6
        old_size = {0: 0, 1: 1, 2: 4}[mod]
        old = 0 if mod == 0 else struct.unpack_from("<b" if mod == 1 else "<i", code, mo + 2)[0]
        new = old + 8
        if _fits_i8(new):
            modrm, disp = (code[mo] & 0x3F) | 0x40, struct.pack("<b", new)
        else:
            modrm, disp = (code[mo] & 0x3F) | 0x80, struct.pack("<i", new)
        return bytes(code[:mo]) + bytes((modrm, code[mo + 1])) + disp + bytes(code[mo + 2 + old_size :])

    def _layout(self, slot: int) -> _Layout:
        layout = self._layouts.get(slot)
        if layout is None:
            layout = self._make_layout(slot)
            if len(layout.code) > SLOT_SIZE:  # pragma: no cover - the longest layout is ~60 bytes
                raise self._refuse(f"slot code of {len(layout.code)} bytes exceeds {SLOT_SIZE}")
            self._layouts[slot] = layout
        return layout

    def _make_layout(self, slot: int) -> _Layout:
        b = _Builder(slot)
        kind = self.kind
        if kind == "syscall":
            b.emit(self._bytes, "before")
            b.emit(b"\x48\xb9" + _q(self._next), "after")  # mov rcx, next: what the CPU would load
            b.jump(self._next, "after")
        elif kind == "ret":
            b.emit(self._bytes, "before")
        elif kind == "jmp_rel":
            assert self.target is not None
            b.emit(_jmp(slot, self.target), "before")
        elif kind == "jcc":
            assert self.target is not None
            rel = _rel32(slot + 6, self.target)
            if rel is not None:
                b.emit(bytes((0x0F, 0x80 | self._cc)) + struct.pack("<i", rel), "before")
                b.jump(self._next, "after")
            else:
                self._hop(b, bytes((0x70 | self._cc, 0)))
        elif kind == "loop":
            self._hop(b, self._bytes)
        elif kind == "xbegin":
            self._hop(b, self._bytes)
        elif kind == "call_rel":
            return self._call_rel_layout(b)
        elif kind == "call_indirect":
            return self._call_indirect_layout(b)
        elif kind == "jmp_indirect":
            copy = self._copy_at(slot)
            if copy is not None:
                b.emit(copy, "before")
            else:
                self._far_indirect(b, call=False)
        else:  # plain, riprel
            copy = self._copy_at(slot)
            if copy is not None:
                b.emit(copy, "before")
                b.jump(self._next, "after")
            else:
                self._far_riprel(b, slot)
        return b.layout()

    def _hop(self, b: _Builder, branch: bytes) -> None:
        """branch +N; jmp next; jmp target -- ``branch``'s trailing rel8/rel32 is patched to N."""
        assert self.target is not None
        at = b.emit(branch, "before")
        back = b.jump(self._next, "after")
        hop = len(b.buf) - back
        rel_size = 4 if self.kind == "xbegin" else 1
        b.buf[at + len(branch) - rel_size : at + len(branch)] = hop.to_bytes(rel_size, "little")
        b.jump(self.target, "taken")

    def _far_riprel(self, b: _Builder, slot: int) -> None:
        if self._scratch is None:
            raise self._refuse(
                f"the slot at {slot:#x} is beyond +-2 GiB of the operand at {self.operand_addr:#x} "
                f"and a scratch register cannot be used ({self._no_scratch_reason})"
            )
        n = _GPR_NUMBERS[self._scratch]
        down = _RED_ZONE + 8
        b.emit(_LEA_RSP_DOWN, "before")
        b.emit(_push_reg(n), "before", _RED_ZONE)
        saved = (self._scratch, 0)
        b.emit(_mov_reg_imm64(n, self._next), "before", down, saved)  # [scratch+disp] == [rip+disp]
        b.emit(self._scratch_bytes, "before", down, saved)
        b.emit(_pop_reg(n), "after", down, saved)
        b.emit(_LEA_RSP_UP, "after", _RED_ZONE)
        b.jump(self._next, "after")

    def _far_indirect(self, b: _Builder, call: bool) -> None:
        """``call/jmp [rip+d]`` out of reach: push the target through rsi and ``ret`` to it."""
        assert self.operand_addr is not None
        base = 8 if call else _RED_ZONE  # a call pushed its return address; a jmp skips the red zone
        drop = 8 if call else 8 + _RED_ZONE  # what ret must drop after popping the target
        if not call:
            b.emit(_LEA_RSP_DOWN, "before")
        rsi = _GPR_NUMBERS["rsi"]
        disp = _signed64((self.operand_addr - self._next) & _MASK64)
        b.emit(_push_reg(rsi), "before", base)
        b.emit(_mov_reg_imm64(rsi, self._next), "before", base + 8, ("rsi", 0))
        b.emit(_push_mem_reg_disp32(rsi, disp, self._seg), "before", base + 8, ("rsi", 0))
        b.emit(_mov_reg_from_rsp8(rsi), "before", base + 16, ("rsi", 8))
        b.emit(_ret_imm(drop), "before", base + 16)  # pops the target, drops rsi (and the red zone)

    def _call_rel_layout(self, b: _Builder) -> _Layout:
        assert self.target is not None
        if self.mode == "step":
            rel = _rel32(b.pc + 5, self.target)
            at = b.emit(b"\xe8" + struct.pack("<i", rel or 0), "before")
            b.jump(self._next, "after")
            if rel is None:  # call a hop to an absolute jump to the target
                hop = len(b.buf)
                b.buf[at + 1 : at + 5] = struct.pack("<i", hop - 5 - at)
                b.jump(self.target, "taken")
            return b.layout(pushed_ret=at + 5)
        push = b.emit(_push_rip(0), "before")
        b.emit(_jmp(b.pc, self.target), "before", 8)
        quad = b.data(_q(self._next))
        b.buf[push + 2 : push + 6] = struct.pack("<i", quad - (push + 6))
        return b.layout()

    def _call_indirect_layout(self, b: _Builder) -> _Layout:
        copy = self._copy_at(b.pc)
        if self.mode == "step" and copy is not None:
            at = b.emit(copy, "before")
            b.jump(self._next, "after")
            return b.layout(pushed_ret=at + len(copy))
        push = b.emit(_push_rip(0), "before")
        if self.operand_addr is None:
            b.emit(self._as_jmp(), "before", 8)
        else:
            jmp = self._as_jmp()
            disp = _rel32(b.pc + len(jmp), self.operand_addr)
            if disp is not None:
                mo = self._modrm_off
                b.emit(jmp[: mo + 1] + struct.pack("<i", disp) + jmp[mo + 5 :], "before", 8)
            else:
                self._far_indirect(b, call=True)
        quad = b.data(_q(self._next))
        b.buf[push + 2 : push + 6] = struct.pack("<i", quad - (push + 6))
        return b.layout()

    # ---- public interface -----------------------------------------------------------------------

    def build(self, slot_addr: int) -> bytes:
        """The code to write at ``slot_addr`` (at most SLOT_SIZE bytes); see the module docstring.

        Raises UnsupportedInstruction when the slot is too far from a rip-relative operand of an
        instruction that also uses rsp.
        """
        return self._layout(slot_addr).code

    def _piece_at(self, pc: int, slot_addr: int) -> _Piece | None:
        layout = self._layout(slot_addr)
        off = pc - slot_addr
        if not 0 <= off < len(layout.code):
            return None
        for piece in layout.pieces:
            if piece.offset <= off < piece.offset + piece.length:
                return piece
        return None

    def _phase_pc(self, phase: str) -> int:
        if phase == "before":
            return self.addr
        if phase == "taken" and self.target is not None:
            return self.target
        return self._next

    def after_step(self, regs: Any, slot_addr: int, mem: Memory) -> None:
        """Finish one PTRACE_SINGLESTEP of the slot's first instruction (step mode).

        Rewrites a return address the copied call pushed (slot-based -> addr+size) and, when the
        thread stopped on a plain jump back to original code, moves rip there. Otherwise rip stays
        in the slot, whose remaining code finishes the instruction and jumps back by itself.
        """
        layout = self._layout(slot_addr)
        if layout.pushed_ret is not None:
            ret = struct.unpack("<Q", mem.read(regs.rsp, 8))[0]
            if ret == slot_addr + layout.pushed_ret:
                mem.write(regs.rsp, _q(self._next))
        piece = self._piece_at(regs.rip, slot_addr)
        if piece is not None and piece.jump_to is not None and regs.rip == slot_addr + piece.offset:
            regs.rip = piece.jump_to

    def fault_fixup(self, regs: Any, slot_addr: int, mem: Memory) -> bool:
        """Undo the slot's own changes after a synchronous fault at ``regs.rip`` inside the slot.

        Restores a saved scratch register and rsp and points rip at the original instruction (or
        after it, if the fault came after its effect). Returns True if ``regs`` was changed.
        """
        piece = self._piece_at(regs.rip, slot_addr)
        if piece is None:
            return False
        if piece.saved is not None:
            reg, off = piece.saved
            value = struct.unpack("<Q", mem.read((regs.rsp + off) & _MASK64, 8))[0]
            setattr(regs, reg, value)
        regs.rsp = (regs.rsp + piece.rsp_delta) & _MASK64
        regs.rip = self._phase_pc(piece.phase)
        return True

    def original_pc(self, pc: int, slot_addr: int) -> int:
        """Map ``pc`` inside the slot at ``slot_addr`` to an original address (else return it as is)."""
        off = pc - slot_addr
        layout = self._layout(slot_addr)
        if not 0 <= off < len(layout.code):
            return pc
        piece = self._piece_at(pc, slot_addr)
        return self._phase_pc(piece.phase if piece is not None else "before")


def _decode(code: bytes, addr: int) -> Any:
    try:
        insn = next(_cs(True).disasm(bytes(code[:16]), addr, 1), None)
    except capstone.CsError as err:
        raise UnsupportedInstruction(addr, f"(bad) {_hexbytes(code[:16])}", f"capstone: {err}") from err
    if insn is None:
        raise UnsupportedInstruction(addr, f"(bad) {_hexbytes(code[:16])}", "not a valid x86-64 instruction")
    return insn


def relocate(code: bytes, addr: int, force_step: bool = False) -> Relocation:
    """Decode the instruction at the start of ``code`` (>= 16 bytes read at ``addr``) for out-of-line use.

    Raises UnsupportedInstruction for what cannot run out of line in any form.
    """
    return Relocation(code, addr, force_step)


def instruction_boundaries(code: bytes, start: int) -> list[int]:
    """Start addresses of the instructions of a linear sweep of ``code`` placed at ``start``.

    The sweep stops at the first undecodable bytes.
    """
    return [address for address, _size, _mnemonic, _ops in _cs(False).disasm_lite(bytes(code), start)]
