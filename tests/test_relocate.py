"""The out-of-line relocator: layouts checked with capstone, then run for real against the CPU.

The first part decodes the produced slot code with capstone and checks where every operand and
jump points, for a slot near the original code and one more than 2 GiB away. The second part runs
each instruction natively and from its slot inside a forked child (machine code in RWX pages,
called through ctypes) and compares registers, flags, stack and memory: the CPU is the oracle.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import re
import shutil
import signal
import struct
import subprocess
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import capstone
import pytest
from capstone import x86_const as X

from utrace.errors import UnsupportedInstruction
from utrace.relocate import SLOT_SIZE, Relocation, instruction_boundaries, relocate

ADDR = 0x5555_5555_5139
NEXT_PAD = b"\x90" * 16  # bytes after the instruction (relocate() is given >= 16 bytes)
NEAR = ADDR + 0x10_0000
FAR = 0x7F00_0000_0000  # far more than 2 GiB away from ADDR
MASK64 = (1 << 64) - 1

_cs = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
_cs.detail = True


def d32(value: int) -> bytes:
    return struct.pack("<i", value)


def q(value: int) -> bytes:
    return struct.pack("<Q", value & MASK64)


def rel(insn_hex: str, addr: int = ADDR) -> Relocation:
    return relocate(bytes.fromhex(insn_hex.replace(" ", "")) + NEXT_PAD, addr)


@dataclass
class Decoded:
    insn: Any
    abs_target: Optional[int] = None  # target of a jmp rel32 or a jmp [rip+0]; .quad


def decode(code: bytes, base: int, count: int) -> list[Decoded]:
    """The first ``count`` instructions of slot code, following ``jmp [rip+0]; .quad`` pairs."""
    out: list[Decoded] = []
    off = 0
    while len(out) < count:
        insn = next(_cs.disasm(code[off:], base + off, 1))
        entry = Decoded(insn)
        off += insn.size
        if insn.bytes == bytearray(b"\xff\x25\x00\x00\x00\x00"):
            entry.abs_target = struct.unpack_from("<Q", code, off)[0]
            off += 8
        elif insn.id == X.X86_INS_JMP and insn.operands[0].type == X.X86_OP_IMM:
            entry.abs_target = insn.operands[0].imm & MASK64
        out.append(entry)
    return out


def branch_target(entry: Decoded) -> int:
    insn = entry.insn
    assert insn.operands[0].type == X.X86_OP_IMM, insn
    return insn.operands[0].imm & MASK64


def mem_operand(insn: Any) -> Any:
    return next(op.mem for op in insn.operands if op.type == X.X86_OP_MEM)


def rip_operand_addr(insn: Any) -> int:
    mem = mem_operand(insn)
    assert mem.base == X.X86_REG_RIP, f"{insn.mnemonic} {insn.op_str}"
    return (insn.address + insn.size + mem.disp) & MASK64


def quad_at(code: bytes, base: int, addr: int) -> int:
    return struct.unpack_from("<Q", code, addr - base)[0]


SLOTS = pytest.mark.parametrize("slot", [NEAR, FAR], ids=["near", "far"])


# ---- decoding, classes and modes ------------------------------------------------------------------


def test_decoded_once_with_text_and_size() -> None:
    r = rel("48 8b 05 e5 2e 00 00")
    assert (r.addr, r.size, r.text, r.mode, r.kind) == (
        ADDR,
        7,
        "mov rax, qword ptr [rip + 0x2ee5]",
        "slot",
        "riprel",
    )
    assert r.operand_addr == ADDR + 7 + 0x2EE5
    assert r.build(NEAR) is r.build(NEAR)  # cached per slot address


@pytest.mark.parametrize(
    "hexcode, kind",
    [
        ("48 01 f8", "plain"),
        ("f3 0f 1e fa", "plain"),
        ("90", "plain"),
        ("66 2e 0f 1f 84 00 00 00 00 00", "plain"),
        ("57", "plain"),
        ("58", "plain"),
        ("48 8d 05 00 10 00 00", "riprel"),
        ("0f 05", "syscall"),
        ("c3", "ret"),
        ("c2 08 00", "ret"),
        ("eb 10", "jmp_rel"),
        ("e9 00 01 00 00", "jmp_rel"),
        ("74 10", "jcc"),
        ("0f 8f 00 01 00 00", "jcc"),
        ("e2 fe", "loop"),
        ("e1 fe", "loop"),
        ("e0 fe", "loop"),
        ("e3 fe", "loop"),
        ("67 e3 fe", "loop"),
        ("e8 00 00 00 00", "call_rel"),
        ("ff d0", "call_indirect"),
        ("ff 15 00 10 00 00", "call_indirect"),
        ("ff e0", "jmp_indirect"),
        ("3e ff e0", "jmp_indirect"),
        ("ff 25 00 10 00 00", "jmp_indirect"),
        ("c7 f8 00 01 00 00", "xbegin"),
    ],
)
def test_classes(hexcode: str, kind: str) -> None:
    r = rel(hexcode)
    assert r.kind == kind
    assert r.mode == "slot"
    assert relocate(bytes.fromhex(hexcode.replace(" ", "")) + NEXT_PAD, ADDR, force_step=True).mode == "step"


def test_call_rsp_runs_in_step_mode() -> None:
    r = rel("ff d4")
    assert (r.kind, r.mode) == ("call_indirect", "step")


@pytest.mark.parametrize(
    "hexcode, mnemonic, reason",
    [
        ("cc", "int3", "int3"),
        ("cd 80", "int", "interrupt"),
        ("f1", "int1", "int1"),
        ("f4", "hlt", "privileged"),
        ("0f 0b", "ud2", "undefined"),
        ("0f b9 c0", "ud1", "undefined"),
        ("0f ff c0", "ud0", "undefined"),
        ("48 cf", "iretq", "iret"),
        ("cf", "iretd", "iret"),
        ("cb", "retf", "far return"),
        ("ca 08 00", "retf", "far return"),
        ("ff 28", "jmp", "far call/jmp"),
        ("ff 18", "call", "far call/jmp"),
        ("8e d0", "mov", "ss"),
        ("0f b2 00", "lss", "ss"),
        ("0f 34", "sysenter", "sysenter"),
        ("0f 35", "sysexit", "privileged"),
        ("0f 07", "sysret", "privileged"),
        ("e4 60", "in", "I/O"),
        ("ee", "out", "I/O"),
        ("6c", "insb", "I/O"),
        ("6f", "outsd", "I/O"),
        ("f3 6d", "rep", "I/O"),
        ("fa", "cli", "privileged"),
        ("fb", "sti", "privileged"),
        ("0f 01 10", "lgdt", "privileged"),
        ("0f 01 f8", "swapgs", "privileged"),
        ("0f 30", "wrmsr", "privileged"),
        ("0f 22 d8", "mov", "privileged"),
        ("66 eb 00", "jmp", "16-bit"),
        ("66 74 00", "je", "16-bit"),
        ("66 ff d0", "call", "16-bit"),
        ("66 c3", "ret", "16-bit"),
        ("67 8b 05 00 00 00 00", "mov", "eip-relative"),
    ],
)
def test_refused(hexcode: str, mnemonic: str, reason: str) -> None:
    with pytest.raises(UnsupportedInstruction) as info:
        rel(hexcode)
    err = info.value
    assert err.address == ADDR
    assert err.disassembly.split()[0] == mnemonic
    assert reason in err.reason
    assert f"{ADDR:#x}" in str(err) and err.disassembly in str(err)


@pytest.mark.parametrize("hexcode", ["", "0f", "06", "17", "ce", "ea 00 00 00 00 00 00", "62 00"])
def test_undecodable_refused(hexcode: str) -> None:
    with pytest.raises(UnsupportedInstruction, match="not a valid x86-64 instruction"):
        relocate(bytes.fromhex(hexcode.replace(" ", "")), ADDR)


@pytest.mark.parametrize(
    "hexcode", ["0f 01 f9", "0f 33", "0f 31", "8e e0", "0f a1", "0f 01 d0", "0f a2", "f3 48 0f ae c0"]
)
def test_user_mode_instructions_capstone_calls_privileged_are_allowed(hexcode: str) -> None:
    """rdtscp, rdpmc, rdtsc, mov fs, pop fs, xgetbv, cpuid, rdfsbase run fine out of line."""
    assert rel(hexcode).mode == "slot"


# ---- slot layouts, checked with capstone ------------------------------------------------------------


@SLOTS
@pytest.mark.parametrize(
    "hexcode", ["48 01 f8", "f3 0f 1e fa", "90", "66 2e 0f 1f 84 00 00 00 00 00", "57", "9d"]
)
def test_plain_copy_then_jump_back(slot: int, hexcode: str) -> None:
    orig = bytes.fromhex(hexcode.replace(" ", ""))
    r = rel(hexcode)
    code = r.build(slot)
    first, back = decode(code, slot, 2)
    assert bytes(first.insn.bytes) == orig
    assert back.abs_target == ADDR + len(orig)
    assert len(code) <= SLOT_SIZE


RIPREL_CASES = [
    "48 8b 05 e5 2e 00 00",  # mov rax, [rip+x]
    "48 01 3d e5 2e 00 00",  # add [rip+x], rdi
    "81 05 e5 2e 00 00 44 33 22 11",  # add dword [rip+x], imm32 (immediate after the disp)
    "80 3d 00 f0 ff ff 07",  # cmp byte [rip-x], 7
    "48 8d 05 00 00 00 80",  # lea rax, [rip-2GiB]: out of reach even of the near slot
    "48 8d 05 00 00 00 c0",  # lea rax, [rip-1GiB]
    "f2 0f 10 05 10 20 00 00",  # movsd xmm0, [rip+x]
    "66 0f 6f 0d 10 20 00 00",  # movdqa xmm1, [rip+x]
    "c5 fb 58 05 e5 2e 00 00",  # vaddsd xmm0, xmm0, [rip+x] (VEX2)
    "c4 e2 79 00 05 e5 2e 00 00",  # vpshufb xmm0, xmm0, [rip+x] (VEX3)
    "62 f1 fd 48 58 05 10 00 00 00",  # vaddpd zmm0, zmm0, [rip+x] (EVEX)
    "c4 c2 79 00 05 e5 2e 00 00",  # vpshufb with VEX.B set
    "62 d1 fd 48 58 05 10 00 00 00",  # vaddpd with EVEX.B set
    "4c 8b 35 e5 2e 00 00",  # mov r14, [rip+x] (REX.R)
    "49 8b 05 e5 2e 00 00",  # mov rax, [rip+x] with a meaningless REX.B
    "f0 48 83 05 e5 2e 00 00 01",  # lock add qword [rip+x], 1
    "64 48 8b 05 e5 2e 00 00",  # mov rax, fs:[rip+x]
    "d9 05 e5 2e 00 00",  # fld dword [rip+x]
    "0f 1f 05 e5 2e 00 00",  # nop dword [rip+x]
]


@SLOTS
@pytest.mark.parametrize("hexcode", RIPREL_CASES)
def test_riprel(slot: int, hexcode: str) -> None:
    orig = bytes.fromhex(hexcode.replace(" ", ""))
    original = next(_cs.disasm(orig, ADDR, 1))
    target = rip_operand_addr(original)
    r = rel(hexcode)
    assert r.operand_addr == target
    code = r.build(slot)
    assert len(code) <= SLOT_SIZE
    if -(1 << 31) <= target - (slot + len(orig)) < (1 << 31):
        copy, back = decode(code, slot, 2)
        assert copy.insn.mnemonic == original.mnemonic
        assert rip_operand_addr(copy.insn) == target
        assert copy.insn.size == original.size
        assert back.abs_target == ADDR + len(orig)
        return
    # lea rsp,[rsp-128]; push rS; mov rS, next; copy [rS+disp]; pop rS; lea rsp,[rsp+128]; jmp next
    lea, push, mov, copy, pop, lea2, back = decode(code, slot, 7)
    assert (lea.insn.mnemonic, lea.insn.op_str) == ("lea", "rsp, [rsp - 0x80]")
    scratch = push.insn.op_str
    assert push.insn.mnemonic == "push" and scratch in ("rsi", "rdi", "rbx")
    assert (mov.insn.mnemonic, mov.insn.op_str) == ("movabs", f"{scratch}, {ADDR + len(orig):#x}")
    assert copy.insn.mnemonic == original.mnemonic
    mem = mem_operand(copy.insn)
    assert copy.insn.reg_name(mem.base) == scratch
    assert mem.disp == mem_operand(original).disp  # [scratch + disp] == [next + disp] == target
    assert copy.insn.size == original.size
    assert [op.type for op in copy.insn.operands] == [op.type for op in original.operands]
    regs_copy = [copy.insn.reg_name(op.reg) for op in copy.insn.operands if op.type == X.X86_OP_REG]
    regs_orig = [original.reg_name(op.reg) for op in original.operands if op.type == X.X86_OP_REG]
    assert regs_copy == regs_orig
    assert (pop.insn.mnemonic, pop.insn.op_str) == ("pop", scratch)
    assert (lea2.insn.mnemonic, lea2.insn.op_str) == ("lea", "rsp, [rsp + 0x80]")
    assert back.abs_target == ADDR + len(orig)


@pytest.mark.parametrize(
    "hexcode, scratch",
    [
        ("48 8b 05 00 10 00 00", "rsi"),  # mov rax, [rip]
        ("48 8b 35 00 10 00 00", "rdi"),  # mov rsi, [rip]
        ("40 8a 35 00 10 00 00", "rdi"),  # mov sil, [rip]: a sub-register of rsi
        ("c4 e2 40 f2 35 00 10 00 00", "rbx"),  # andn rsi, rdi, [rip]
        ("48 0f c7 0d 00 10 00 00", "rsi"),  # cmpxchg16b [rip]: rbx is implicit
        ("f3 0f 10 35 00 10 00 00", "rdi"),  # movss xmm6, [rip]: modrm.reg 6, kept clear like the kernel
    ],
)
def test_scratch_register_choice(hexcode: str, scratch: str) -> None:
    code = rel(hexcode).build(FAR)
    push = decode(code, FAR, 2)[1]
    assert push.insn.op_str == scratch


@pytest.mark.parametrize(
    "hexcode",
    [
        "ff 35 00 10 00 00",  # push qword [rip]
        "8f 05 00 10 00 00",  # pop qword [rip]
        "48 89 25 00 10 00 00",  # mov [rip], rsp
        "48 8d 25 00 10 00 00",  # lea rsp, [rip]
    ],
)
def test_riprel_using_rsp(hexcode: str) -> None:
    """Near: rebased like any other; beyond 2 GiB no scratch form exists, and build() says so."""
    r = rel(hexcode)
    copy = decode(r.build(NEAR), NEAR, 1)[0]
    assert rip_operand_addr(copy.insn) == r.operand_addr
    with pytest.raises(UnsupportedInstruction, match="uses rsp"):
        r.build(FAR)


@SLOTS
@pytest.mark.parametrize(
    "hexcode", ["eb 10", "eb 80", "e9 00 01 00 00", "e9 00 00 00 80", "f2 e9 00 01 00 00"]
)
def test_jmp_rel(slot: int, hexcode: str) -> None:
    orig = bytes.fromhex(hexcode.replace(" ", ""))
    r = rel(hexcode)
    target = branch_target(Decoded(next(_cs.disasm(orig, ADDR, 1))))
    assert r.target == target
    (jmp,) = decode(r.build(slot), slot, 1)
    assert jmp.abs_target == target


@SLOTS
@pytest.mark.parametrize("cc", range(16))
@pytest.mark.parametrize("form", ["rel8", "rel32"])
def test_jcc(slot: int, cc: int, form: str) -> None:
    orig = bytes((0x70 | cc, 0x40)) if form == "rel8" else bytes((0x0F, 0x80 | cc)) + d32(-0x4000)
    original = next(_cs.disasm(orig, ADDR, 1))
    target = branch_target(Decoded(original))
    r = relocate(orig + NEXT_PAD, ADDR)
    code = r.build(slot)
    if slot == NEAR:
        jcc, back = decode(code, slot, 2)
        assert jcc.insn.mnemonic == original.mnemonic
        assert branch_target(jcc) == target
        assert back.abs_target == ADDR + len(orig)
    else:
        jcc, back, taken = decode(code, slot, 3)
        assert jcc.insn.mnemonic == original.mnemonic
        assert branch_target(jcc) == taken.insn.address  # a short hop over the jump back
        assert back.abs_target == ADDR + len(orig)
        assert taken.abs_target == target


@SLOTS
@pytest.mark.parametrize("hexcode", ["e2 fe", "e2 7f", "e1 80", "e0 10", "e3 f0", "67 e3 20", "67 e2 fe"])
def test_loops_keep_their_form_with_a_short_hop(slot: int, hexcode: str) -> None:
    orig = bytes.fromhex(hexcode.replace(" ", ""))
    original = next(_cs.disasm(orig, ADDR, 1))
    r = rel(hexcode)
    loop, back, taken = decode(r.build(slot), slot, 3)
    assert loop.insn.mnemonic == original.mnemonic
    assert bytes(loop.insn.bytes[:-1]) == orig[:-1]  # same prefixes: jecxz stays jecxz
    assert branch_target(loop) == taken.insn.address
    assert back.abs_target == ADDR + len(orig)
    assert taken.abs_target == branch_target(Decoded(original)) == r.target


@SLOTS
def test_xbegin_abort_path_is_the_taken_branch(slot: int) -> None:
    r = rel("c7 f8 00 01 00 00")
    xbegin, back, taken = decode(r.build(slot), slot, 3)
    assert xbegin.insn.mnemonic == "xbegin"
    assert branch_target(xbegin) == taken.insn.address
    assert back.abs_target == ADDR + 6
    assert taken.abs_target == ADDR + 6 + 0x100


@SLOTS
@pytest.mark.parametrize(
    "hexcode", ["e8 00 01 00 00", "e8 00 00 00 80", "e8 00 00 00 00", "f2 e8 00 01 00 00"]
)
def test_call_rel_pushes_original_return_address(slot: int, hexcode: str) -> None:
    orig = bytes.fromhex(hexcode.replace(" ", ""))
    r = rel(hexcode)
    code = r.build(slot)
    push, jmp = decode(code, slot, 2)
    assert push.insn.mnemonic == "push"
    assert quad_at(code, slot, rip_operand_addr(push.insn)) == ADDR + len(orig)
    assert jmp.abs_target == r.target == branch_target(Decoded(next(_cs.disasm(orig, ADDR, 1))))


@SLOTS
@pytest.mark.parametrize(
    "hexcode, jmp_text",
    [
        ("ff d0", "rax"),
        ("41 ff d3", "r11"),
        ("ff 57 08", "qword ptr [rdi + 8]"),
        ("3e ff d0", "rax"),
        ("ff 54 24 08", "qword ptr [rsp + 0x10]"),  # read after our push: 8 further up
        ("ff 14 24", "qword ptr [rsp + 8]"),
        ("ff 54 24 7c", "qword ptr [rsp + 0x84]"),  # disp8 grows to disp32
        ("ff 94 24 00 01 00 00", "qword ptr [rsp + 0x108]"),
        ("ff 54 24 f8", "qword ptr [rsp]"),
    ],
)
def test_call_indirect(slot: int, hexcode: str, jmp_text: str) -> None:
    orig = bytes.fromhex(hexcode.replace(" ", ""))
    code = rel(hexcode).build(slot)
    push, jmp = decode(code, slot, 2)
    assert quad_at(code, slot, rip_operand_addr(push.insn)) == ADDR + len(orig)
    assert jmp.insn.mnemonic.split()[-1] == "jmp"
    assert jmp.insn.op_str == jmp_text


@SLOTS
def test_call_riprel(slot: int) -> None:
    r = rel("ff 15 e2 2e 00 00")
    pointer = ADDR + 6 + 0x2EE2
    assert r.operand_addr == pointer
    code = r.build(slot)
    push = decode(code, slot, 1)[0]
    assert quad_at(code, slot, rip_operand_addr(push.insn)) == ADDR + 6
    if slot == NEAR:
        jmp = decode(code, slot, 2)[1]
        assert jmp.insn.mnemonic == "jmp" and rip_operand_addr(jmp.insn) == pointer
        return
    # push ret; push rsi; mov rsi, next; push [rsi+disp]; mov rsi, [rsp+8]; ret 8
    texts = [(d.insn.mnemonic, d.insn.op_str) for d in decode(code, slot, 6)[1:]]
    assert texts == [
        ("push", "rsi"),
        ("movabs", f"rsi, {ADDR + 6:#x}"),
        ("push", "qword ptr [rsi + 0x2ee2]"),
        ("mov", "rsi, qword ptr [rsp + 8]"),
        ("ret", "8"),
    ]


@SLOTS
def test_jmp_riprel(slot: int) -> None:
    r = rel("ff 25 e2 2e 00 00")
    pointer = ADDR + 6 + 0x2EE2
    code = r.build(slot)
    if slot == NEAR:
        (jmp,) = decode(code, slot, 1)
        assert jmp.insn.mnemonic == "jmp" and rip_operand_addr(jmp.insn) == pointer
        return
    texts = [(d.insn.mnemonic, d.insn.op_str) for d in decode(code, slot, 6)]
    assert texts == [
        ("lea", "rsp, [rsp - 0x80]"),
        ("push", "rsi"),
        ("movabs", f"rsi, {ADDR + 6:#x}"),
        ("push", "qword ptr [rsi + 0x2ee2]"),
        ("mov", "rsi, qword ptr [rsp + 8]"),
        ("ret", "0x88"),  # target popped, then rsi and the red zone dropped
    ]


@SLOTS
@pytest.mark.parametrize(
    "hexcode", ["c3", "c2 08 00", "f3 c3", "ff e0", "3e ff e0", "ff 64 24 08", "41 ff e3"]
)
def test_ret_and_jmp_indirect_copied_as_is(slot: int, hexcode: str) -> None:
    orig = bytes.fromhex(hexcode.replace(" ", ""))
    assert rel(hexcode).build(slot) == orig


@SLOTS
def test_syscall_sets_rcx_like_the_original(slot: int) -> None:
    code = rel("0f 05").build(slot)
    sc, mov, back = decode(code, slot, 3)
    assert sc.insn.mnemonic == "syscall"
    assert (mov.insn.mnemonic, mov.insn.op_str) == ("movabs", f"rcx, {ADDR + 2:#x}")
    assert back.abs_target == ADDR + 2


# ---- step mode, fault fix-ups and pc mapping ------------------------------------------------------


class Regs:
    """Stands in for ctypes user_regs_struct (the same field names)."""

    def __init__(self, rip: int = 0, rsp: int = 0, rcx: int = 0, rsi: int = 0) -> None:
        self.rip, self.rsp, self.rcx, self.rsi = rip, rsp, rcx, rsi
        self.rax = self.rbx = self.rdx = self.rdi = self.eflags = 0


class Mem:
    def __init__(self, words: dict[int, int] | None = None) -> None:
        self.data: dict[int, int] = {}
        for addr, value in (words or {}).items():
            self.write(addr, q(value))

    def read(self, addr: int, n: int) -> bytes:
        return bytes(self.data[a] for a in range(addr, addr + n))

    def write(self, addr: int, data: bytes) -> None:
        for i, b in enumerate(data):
            self.data[addr + i] = b

    def u64(self, addr: int) -> int:
        return struct.unpack("<Q", self.read(addr, 8))[0]


STACK = 0x7FFD_0000_1000


def step_rel(hexcode: str) -> Relocation:
    return relocate(bytes.fromhex(hexcode.replace(" ", "")) + NEXT_PAD, ADDR, force_step=True)


@SLOTS
def test_step_plain_fallthrough(slot: int) -> None:
    r = step_rel("48 01 f8")
    code = r.build(slot)
    assert code[:3] == bytes.fromhex("4801f8")
    regs = Regs(rip=slot + 3, rsp=STACK)
    r.after_step(regs, slot, Mem())
    assert regs.rip == ADDR + 3


def test_step_rep_string_not_finished_stays_in_slot() -> None:
    """One step of rep movsb moves one byte; the slot copy + jump back finishes it freely."""
    r = step_rel("f3 a4")
    regs = Regs(rip=NEAR, rsp=STACK)
    r.after_step(regs, NEAR, Mem())
    assert regs.rip == NEAR
    assert decode(r.build(NEAR), NEAR, 2)[1].abs_target == ADDR + 2


@SLOTS
@pytest.mark.parametrize("hexcode", ["74 10", "0f 84 00 01 00 00", "e2 fe", "67 e3 10"])
def test_step_branches(slot: int, hexcode: str) -> None:
    r = step_rel(hexcode)
    size = len(bytes.fromhex(hexcode.replace(" ", "")))
    code = r.build(slot)
    first = decode(code, slot, 1)[0]  # a jcc may be re-encoded with another length
    # not taken: the thread stopped on the jump back
    regs = Regs(rip=slot + first.insn.size, rsp=STACK)
    r.after_step(regs, slot, Mem())
    assert regs.rip == ADDR + size
    # taken: the thread is wherever the copied branch went
    taken = branch_target(first)
    regs = Regs(rip=taken, rsp=STACK)
    r.after_step(regs, slot, Mem())
    assert regs.rip == r.target


@SLOTS
def test_step_call_rel_fixes_return_address(slot: int) -> None:
    r = step_rel("e8 00 01 00 00")
    code = r.build(slot)
    call = decode(code, slot, 1)[0]
    assert call.insn.mnemonic == "call"
    mem = Mem({STACK - 8: slot + 5})
    regs = Regs(rip=branch_target(call), rsp=STACK - 8)
    r.after_step(regs, slot, mem)
    assert regs.rip == ADDR + 5 + 0x100
    assert mem.u64(STACK - 8) == ADDR + 5


@pytest.mark.parametrize("hexcode", ["ff d4", "ff d0", "ff 54 24 08", "ff 15 00 10 00 00"])
def test_step_call_indirect_is_a_real_call(hexcode: str) -> None:
    orig = bytes.fromhex(hexcode.replace(" ", ""))
    r = step_rel(hexcode)
    code = r.build(NEAR)
    call = decode(code, NEAR, 1)[0]
    assert call.insn.mnemonic == "call" and call.insn.size == len(orig)
    if r.operand_addr is not None:
        assert rip_operand_addr(call.insn) == r.operand_addr
    mem = Mem({STACK - 8: NEAR + len(orig)})
    regs = Regs(rip=0x4000, rsp=STACK - 8)
    r.after_step(regs, NEAR, mem)
    assert regs.rip == 0x4000
    assert mem.u64(STACK - 8) == ADDR + len(orig)


def test_step_far_riprel_uses_the_slot_sequence() -> None:
    """The stepped instruction is the lea; the rest of the slot runs freely afterwards."""
    r = step_rel("48 8b 05 00 10 00 00")
    code = r.build(FAR)
    assert decode(code, FAR, 1)[0].insn.op_str == "rsp, [rsp - 0x80]"
    regs = Regs(rip=FAR + 5, rsp=STACK - 128)
    r.after_step(regs, FAR, Mem())
    assert regs.rip == FAR + 5


@SLOTS
def test_step_syscall(slot: int) -> None:
    r = step_rel("0f 05")
    regs = Regs(rip=slot + 2, rsp=STACK, rcx=slot + 2)
    r.after_step(regs, slot, Mem())
    assert regs.rip == slot + 2  # the slot's mov rcx, next; jmp next finish it
    assert decode(r.build(slot), slot, 2)[1].insn.op_str == f"rcx, {ADDR + 2:#x}"


def test_fault_fixup_scratch_restored() -> None:
    r = rel("48 8b 05 00 10 00 00")
    code = r.build(FAR)
    copy = decode(code, FAR, 4)[3]
    assert copy.insn.mnemonic == "mov"
    rsp0 = STACK
    mem = Mem({rsp0 - 136: 0x6666})  # the pushed rsi, below the red zone
    regs = Regs(rip=copy.insn.address, rsp=rsp0 - 136, rsi=ADDR + 7)
    assert r.fault_fixup(regs, FAR, mem)
    assert (regs.rip, regs.rsp, regs.rsi) == (ADDR, rsp0, 0x6666)


def test_fault_fixup_call_indirect_undoes_the_push() -> None:
    r = rel("ff 10")  # call [rax]
    code = r.build(NEAR)
    jmp = decode(code, NEAR, 2)[1]
    regs = Regs(rip=jmp.insn.address, rsp=STACK - 8)
    assert r.fault_fixup(regs, NEAR, Mem())
    assert (regs.rip, regs.rsp) == (ADDR, STACK)


def test_fault_fixup_far_call_riprel_at_every_instruction() -> None:
    r = rel("ff 15 00 10 00 00")
    code = r.build(FAR)
    entries = decode(code, FAR, 6)
    # rsp below the original at each instruction, and where rsi's original value is (or None)
    expected = [(0, None), (8, None), (16, 0), (16, 0), (24, 8), (24, None)]
    for entry, (delta, saved) in zip(entries, expected):
        rsp = STACK - delta
        mem = Mem({rsp + (saved or 0): 0x6666})
        regs = Regs(rip=entry.insn.address, rsp=rsp, rsi=0xDEAD if saved is not None else 0x6666)
        assert r.fault_fixup(regs, FAR, mem), entry.insn
        assert (regs.rip, regs.rsp, regs.rsi) == (ADDR, STACK, 0x6666), entry.insn


def test_fault_fixup_outside_slot() -> None:
    r = rel("48 8b 05 00 10 00 00")
    regs = Regs(rip=0x1234, rsp=STACK)
    assert not r.fault_fixup(regs, NEAR, Mem())
    assert regs.rip == 0x1234


@SLOTS
def test_original_pc(slot: int) -> None:
    r = rel("74 10")
    jcc, back, *rest = decode(r.build(slot), slot, 3 if slot == FAR else 2)
    assert r.original_pc(slot, slot) == ADDR
    assert r.original_pc(back.insn.address, slot) == ADDR + 2
    if rest:
        assert r.original_pc(rest[0].insn.address, slot) == ADDR + 2 + 0x10
    assert r.original_pc(0x1234, slot) == 0x1234
    c = rel("e8 00 01 00 00")
    assert c.original_pc(slot + 6, slot) == ADDR  # mid-call: the call has not happened yet


def test_slot_size_respected_by_the_longest_layouts() -> None:
    longest = [
        "f0 48 83 05 e5 2e 00 00 01",
        "62 f1 fd 48 58 05 10 00 00 00",
        "c4 e3 79 0f 05 00 10 00 00 08",  # vpalignr with imm8 after the disp
        "ff 15 00 10 00 00",
        "ff 25 00 10 00 00",
        "e8 00 01 00 00",
        "67 e3 10",
        "0f 05",
    ]
    for hexcode in longest:
        for force_step in (False, True):
            r = relocate(bytes.fromhex(hexcode.replace(" ", "")) + NEXT_PAD, ADDR, force_step)
            for slot in (NEAR, FAR, ADDR - 0x7FFF_0000, 0x1000):
                assert len(r.build(slot)) <= SLOT_SIZE


# ---- instruction boundaries against objdump ------------------------------------------------------


@pytest.mark.parametrize("binary", ["/bin/true", "/usr/bin/env"])
def test_instruction_boundaries_match_objdump(binary: str) -> None:
    elftools = pytest.importorskip("elftools.elf.elffile")
    if shutil.which("objdump") is None:
        pytest.skip("objdump (binutils) is not installed: no independent disassembler to compare with")
    if not Path(binary).exists():
        pytest.skip(f"{binary} does not exist here")
    with open(binary, "rb") as f:
        elf = elftools.ELFFile(f)
        text = elf.get_section_by_name(".text")
        data, start = text.data(), text["sh_addr"]
        stripped = elf.get_section_by_name(".symtab") is None
    if not stripped:
        pytest.skip(f"{binary} has symbols: objdump restarts its sweep at each one")
    out = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", "-j", ".text", binary],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    theirs = [int(m.group(1), 16) for m in re.finditer(r"^\s*([0-9a-f]+):\t(\S.*)$", out, re.M)]
    assert "(bad)" not in out
    assert instruction_boundaries(data, start) == theirs


def test_instruction_boundaries_stop_at_undecodable_bytes() -> None:
    code = bytes.fromhex("55 4889e5 06 90".replace(" ", ""))
    assert instruction_boundaries(code, 0x1000) == [0x1000, 0x1001]


# ---- real execution: native vs. slot, in a forked child --------------------------------------------

PROT_RWX = 7
MAP_PRIVATE_ANON = 0x22
MAP_FIXED_NOREPLACE = 0x100000
REGS = ["rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi"] + [f"r{n}" for n in range(8, 16)]
IN_FLAGS, IN_XMM0 = 16, 17
OUT, OUT_FLAGS, OUT_XMM0, TAKEN, RETADDR, TOS, FAULT = 32, 48, 49, 50, 51, 52, 53
ENTRY_RSP = 63
FLAG_MASK = 0xCD5  # CF PF AF ZF SF OF DF
CPU_FLAGS = set()
if os.path.exists("/proc/cpuinfo"):
    with open("/proc/cpuinfo") as _f:
        for _line in _f:
            if _line.startswith("flags"):
                CPU_FLAGS = set(_line.split(":", 1)[1].split())
                break


def _load(reg: int, idx: int, store: bool = False) -> bytes:
    """mov reg, [r15 + idx*8] (or the store)."""
    rex = 0x49 | ((reg >> 3) << 2)
    return bytes((rex, 0x89 if store else 0x8B, 0x80 | ((reg & 7) << 3) | 7)) + d32(idx * 8)


def _set_taken(value: int) -> bytes:
    return b"\x49\xc7\x87" + d32(TAKEN * 8) + d32(value)  # mov qword [r15+TAKEN], value


class Harness:
    """Machine code in an RWX area: load registers, jump to the instruction (or its slot), record."""

    def __init__(self, base: int) -> None:
        self.base = base
        self.entry = base
        self.addr = base + 0x1000  # the probed instruction
        self.t_back = self.addr - 0x40
        self.t_near = self.addr + 0x40
        self.t_jump = base + 0x2000
        self.t_call = base + 0x2100
        self.store = base + 0x2800
        self.fault_handler = base + 0x2C00
        self.data = base + 0x3000

    def jump_to_store(self, at: int) -> bytes:
        return b"\xe9" + d32(self.store - (at + 5))

    def image(self, insn: bytes, pre: bytes, goto: int, state_addr: int) -> dict[int, bytes]:
        out: dict[int, bytes] = {}
        code = b"\x53\x55\x41\x54\x41\x55\x41\x56\x41\x57"  # push rbx, rbp, r12-r15
        code += b"\x49\x89\xff" + _load(4, ENTRY_RSP, store=True)  # mov r15, rdi; save rsp
        code += b"\x41\xff\xb7" + d32(IN_FLAGS * 8) + b"\x9d"  # push [r15+flags]; popfq
        code += b"\xf3\x41\x0f\x7e\x87" + d32(IN_XMM0 * 8)  # movq xmm0, [r15+xmm0]
        code += b"".join(_load(r, r) for r in range(15) if r != 4)
        code += pre + b"\xff\x25\x00\x00\x00\x00" + q(goto)
        out[self.entry] = code
        out[self.addr] = insn + self.jump_to_store(self.addr + len(insn))
        for at, value in ((self.t_back, 4), (self.t_near, 3), (self.t_jump, 1)):
            out[at] = _set_taken(value) + self.jump_to_store(at + 11)
        # push rax; mov rax, [rsp+8]; mov [r15+RETADDR], rax; pop rax; ret
        out[self.t_call] = b"\x50\x48\x8b\x44\x24\x08" + _load(0, RETADDR, store=True) + b"\x58\xc3"
        store = b"\x9c\x41\x8f\x87" + d32(OUT_FLAGS * 8)  # pushfq; pop [r15+flags]
        store += b"".join(_load(r, OUT + r, store=True) for r in range(15))
        store += b"\x66\x41\x0f\xd6\x87" + d32(OUT_XMM0 * 8)  # movq [r15+xmm0], xmm0
        store += b"\xff\x34\x24\x41\x8f\x87" + d32(TOS * 8)  # push [rsp]; pop [r15+tos]
        store += _load(4, ENTRY_RSP) + b"\xfc"  # mov rsp, [r15+entry rsp]; cld
        store += b"\x41\x5f\x41\x5e\x41\x5d\x41\x5c\x5d\x5b\xc3"
        out[self.store] = store
        # SIGSEGV handler (rdi=sig, rsi=info, rdx=ucontext): record the faulting rip, rsp, rsi and
        # the two stack words at rsp, then resume at the store code (r15 is still the state).
        h = b"\x48\xb9" + q(state_addr)  # mov rcx, state
        for i, greg in enumerate((16, 15, 9)):  # RIP, RSP, RSI in uc_mcontext.gregs
            h += b"\x48\x8b\x82" + d32(40 + 8 * greg)  # mov rax, [rdx+greg]
            h += b"\x48\x89\x81" + d32((FAULT + i) * 8)  # mov [rcx+FAULT+i], rax
        h += b"\x48\x8b\x82" + d32(40 + 8 * 15)  # mov rax, [rdx+RSP]
        for i in range(2):
            h += b"\x4c\x8b\x40" + bytes((8 * i,))  # mov r8, [rax+8i]
            h += b"\x4c\x89\x81" + d32((FAULT + 3 + i) * 8)  # mov [rcx+...], r8
        h += b"\x48\xb8" + q(self.store) + b"\x48\x89\x82" + d32(40 + 8 * 16)  # set RIP
        out[self.fault_handler] = h + b"\xc3"
        return out

    def data_image(self) -> bytes:
        data = bytearray(0x100)
        struct.pack_into("<QQQ", data, 0, 0x1122334455667788, self.t_call, self.t_jump)
        struct.pack_into("<dd", data, 32, 1.5, 2.25)
        data[64:80] = bytes(range(15, -1, -1))  # pshufb mask
        struct.pack_into("<8d", data, 128, *[float(i) + 0.5 for i in range(8)])
        return bytes(data)


RegValue = Callable[[Harness], int]


@dataclass
class Case:
    name: str
    insn: Callable[[Harness], bytes]
    regs: dict[str, RegValue] = field(default_factory=dict)
    flags: int = 0x202
    pre: Callable[[Harness], bytes] = lambda h: b""
    cpu: str = ""  # a /proc/cpuinfo flag the instruction needs
    far: bool = True  # has an out-of-reach form (no rip-relative operand together with rsp)
    fault: bool = False  # expected to raise SIGSEGV at the instruction


def const(value: int) -> RegValue:
    return lambda h: value


def riprel(opcode: bytes, data_off: int, imm: bytes = b"") -> Callable[[Harness], bytes]:
    """``opcode [rip+disp32] imm`` whose operand is ``data_off`` into the harness's data area."""

    def make(h: Harness) -> bytes:
        return opcode + d32(h.data + data_off - (h.addr + len(opcode) + 4 + len(imm))) + imm

    return make


def fixed(hexcode: str) -> Callable[[Harness], bytes]:
    code = bytes.fromhex(hexcode.replace(" ", ""))
    return lambda h: code


def push_imm64(value: RegValue) -> Callable[[Harness], bytes]:
    return lambda h: b"\x49\xbe" + q(value(h)) + b"\x41\x56"  # mov r14, imm64; push r14


def rel_to(opcode: bytes, size: int, target: RegValue) -> Callable[[Harness], bytes]:
    def make(h: Harness) -> bytes:
        disp = target(h) - (h.addr + len(opcode) + size)
        return opcode + (struct.pack("<b", disp) if size == 1 else d32(disp))

    return make


ZF, CF, PF, SF, OF = 0x40, 0x1, 0x4, 0x80, 0x800
GUARD = 0x8000  # offset of a PROT_NONE page in the harness area

EXEC_CASES = [
    Case("add", fixed("48 01 f8")),
    Case("imul_flags", fixed("48 0f af c7"), flags=0x202 | CF | ZF),
    Case("mov_load_rip", riprel(b"\x48\x8b\x05", 0)),
    Case("add_store_rip", riprel(b"\x48\x01\x3d", 0)),
    Case("add_imm32_rip", riprel(b"\x81\x05", 0, d32(0x11223344))),
    Case("cmp_imm8_rip", riprel(b"\x80\x3d", 0, b"\x88")),
    Case("lea_rip", riprel(b"\x48\x8d\x05", 0x80)),
    Case("mov_rsi_rip", riprel(b"\x48\x8b\x35", 8)),
    Case("mov_sil_rip", riprel(b"\x40\x8a\x35", 8)),
    Case("mov_r14_rip", riprel(b"\x4c\x8b\x35", 0)),
    Case("rexb_rip", riprel(b"\x49\x8b\x05", 0)),
    Case("lock_add_rip", riprel(b"\xf0\x48\x83\x05", 0, b"\x05")),
    Case("andn_rip", riprel(b"\xc4\xe2\x40\xf2\x35", 0), cpu="bmi1"),
    Case(
        "cmpxchg16b_rip", riprel(b"\x48\x0f\xc7\x0d", 0), regs={"rax": const(0x1122334455667788)}, cpu="cx16"
    ),
    Case("movsd_rip", riprel(b"\xf2\x0f\x10\x05", 32)),
    Case("addsd_rip", riprel(b"\xf2\x0f\x58\x05", 40)),
    Case("vaddsd_vex2_rip", riprel(b"\xc5\xfb\x58\x05", 40), cpu="avx"),
    Case("vpshufb_vex3_rip", riprel(b"\xc4\xe2\x79\x00\x05", 64), cpu="avx"),
    Case("vpalignr_imm_rip", riprel(b"\xc4\xe3\x79\x0f\x05", 64, b"\x03"), cpu="avx"),
    Case("vaddpd_evex_rip", riprel(b"\x62\xf1\xfd\x48\x58\x05", 128), cpu="avx512f"),
    # the same with VEX.B / EVEX.B set (meaningless for rip-relative, but not for [rS+disp32])
    Case("vpshufb_vex3_b_rip", riprel(b"\xc4\xc2\x79\x00\x05", 64), cpu="avx"),
    Case("vaddpd_evex_b_rip", riprel(b"\x62\xd1\xfd\x48\x58\x05", 128), cpu="avx512f"),
    Case("push_rip", riprel(b"\xff\x35", 0), far=False),
    Case("pop_rip", riprel(b"\x8f\x05", 24), pre=push_imm64(const(0xABCDEF)), far=False),
    Case("push_rdi", fixed("57")),
    Case("pop_rax", fixed("58"), pre=push_imm64(const(0x1234))),
    Case("pushfq", fixed("9c"), flags=0x202 | CF | SF),
    Case("endbr64", fixed("f3 0f 1e fa")),
    Case("nopw", fixed("66 2e 0f 1f 84 00 00 00 00 00")),
    Case("rep_movsb", fixed("f3 a4"), regs={"rcx": const(8)}),
    Case("syscall_getpid", fixed("0f 05"), regs={"rax": const(39)}),
    Case("jmp_rel8", rel_to(b"\xeb", 1, lambda h: h.t_near)),
    Case("jmp_rel8_back", rel_to(b"\xeb", 1, lambda h: h.t_back)),
    Case("jmp_rel32", rel_to(b"\xe9", 4, lambda h: h.t_jump)),
    Case("call_rel32", rel_to(b"\xe8", 4, lambda h: h.t_call)),
    Case("call_rax", fixed("ff d0"), regs={"rax": lambda h: h.t_call}),
    Case("call_mem", fixed("ff 57 08"), regs={"rdi": lambda h: h.data}),
    Case("call_rsp8", fixed("ff 54 24 08"), pre=lambda h: push_imm64(lambda h: h.t_call)(h) + b"\x6a\x07"),
    Case("call_rsp", fixed("ff 14 24"), pre=push_imm64(lambda h: h.t_call)),
    Case("call_rip", riprel(b"\xff\x15", 8)),
    Case("jmp_rip", riprel(b"\xff\x25", 16)),
    Case("jmp_rax", fixed("ff e0"), regs={"rax": lambda h: h.t_jump}),
    Case("notrack_jmp_rax", fixed("3e ff e0"), regs={"rax": lambda h: h.t_jump}),
    Case("ret", fixed("c3"), pre=push_imm64(lambda h: h.t_jump)),
    Case("ret_imm", fixed("c2 08 00"), pre=lambda h: b"\x6a\x09" + push_imm64(lambda h: h.t_jump)(h)),
    Case("fault_load_rip", riprel(b"\x48\x8b\x05", GUARD - 0x3000), fault=True),
    Case("fault_store_rip", riprel(b"\x48\x89\x05", GUARD - 0x3000 + 8), fault=True),
    Case("fault_call_mem", fixed("ff 10"), regs={"rax": const(0x10)}, fault=True),
    Case("fault_call_rip", riprel(b"\xff\x15", 24), fault=True),  # calls address 0
]
for _cc in range(16):
    for _flags in (0x202, 0x202 | ZF | CF, 0x202 | SF, 0x202 | OF | PF):
        EXEC_CASES.append(
            Case(
                f"jcc{_cc:x}_rel8_{_flags:x}",
                rel_to(bytes((0x70 | _cc,)), 1, lambda h: h.t_near),
                flags=_flags,
            )
        )
    EXEC_CASES.append(
        Case(f"jcc{_cc:x}_rel32", rel_to(bytes((0x0F, 0x80 | _cc)), 4, lambda h: h.t_jump), flags=0x202 | ZF)
    )
for _name, _op, _rcx, _flags in [
    ("loop_taken", b"\xe2", 5, 0x202),
    ("loop_last", b"\xe2", 1, 0x202),
    ("loop_wraps", b"\xe2", 0, 0x202),
    ("loope_zf", b"\xe1", 5, 0x202 | ZF),
    ("loope_nz", b"\xe1", 5, 0x202),
    ("loopne_nz", b"\xe0", 5, 0x202),
    ("loopne_zf", b"\xe0", 5, 0x202 | ZF),
    ("jrcxz_zero", b"\xe3", 0, 0x202),
    ("jrcxz_high", b"\xe3", 1 << 32, 0x202),
    ("jecxz_high", b"\x67\xe3", 1 << 32, 0x202),
    ("jecxz_one", b"\x67\xe3", 1, 0x202),
]:
    EXEC_CASES.append(
        Case(_name, rel_to(_op, 1, lambda h: h.t_back), regs={"rcx": const(_rcx)}, flags=_flags)
    )


class _Sigaction(ctypes.Structure):
    """glibc's struct sigaction on x86-64."""

    _fields_ = [
        ("sa_handler", ctypes.c_void_p),
        ("sa_mask", ctypes.c_ulong * 16),
        ("sa_flags", ctypes.c_int),
        ("sa_restorer", ctypes.c_void_p),
    ]


SA_SIGINFO, SA_NODEFER = 0x4, 0x40000000


class _Libc:
    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self._mmap = libc.mmap
        self._mmap.restype = ctypes.c_void_p
        self._mmap.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_long,
        ]
        self.mprotect = libc.mprotect
        self.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        self.sigaction = libc.sigaction
        self.sigaction.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]

    def map_at(self, hint: int, size: int, fixed: bool) -> Optional[int]:
        flags = MAP_PRIVATE_ANON | (MAP_FIXED_NOREPLACE if fixed else 0)
        addr = self._mmap(hint, size, PROT_RWX, flags, -1, 0)
        if addr is None or addr == ctypes.c_void_p(-1).value or (fixed and addr != hint):
            return None
        return int(addr)


def _child(case: Case, where: str) -> Any:  # pragma: no cover - runs in the forked child
    libc = _Libc()
    base = libc.map_at(0, 0x10000, fixed=False)
    if base is None:
        return "Skip: cannot map an RWX area"
    libc.mprotect(base + GUARD, 0x1000, 0)
    near = [sign * (1 << bits) for bits in (28, 30, 26, 24, 20) for sign in (1, -1)]  # within 2 GiB
    offsets = near if where == "near" else [1 << 33, -(1 << 33), 1 << 35, -(1 << 35)]
    slot_base = None
    for off in offsets:
        hint = (base + off) & ~0xFFF
        if 0x10000 < hint < 0x7FFF_FFFF_0000:
            slot_base = libc.map_at(hint, 0x1000, fixed=True)
            if slot_base is not None:
                break
    if slot_base is None:
        return f"Skip: cannot map a {where} slot page"
    h = Harness(base)
    state = (ctypes.c_uint64 * 64)()
    action = _Sigaction(sa_handler=h.fault_handler, sa_flags=SA_SIGINFO | SA_NODEFER)
    if libc.sigaction(signal.SIGSEGV, ctypes.byref(action), None) != 0:
        return "Skip: sigaction failed"
    func = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(h.entry)
    insn = case.insn(h)
    reloc = relocate(insn + NEXT_PAD, h.addr)
    slot = slot_base + 0x40
    code = reloc.build(slot)
    records = {}
    for run in ("native", "slot"):
        for at, part in h.image(
            insn, case.pre(h), h.addr if run == "native" else slot, ctypes.addressof(state)
        ).items():
            ctypes.memmove(at, part, len(part))
        ctypes.memmove(h.data, h.data_image(), 0x100)
        if run == "slot":
            ctypes.memmove(slot, code, len(code))
            ctypes.memset(h.addr, 0xCC, 1)  # the probe's int3: a correct slot never comes back to it
        regs = {name: 0x1111 * (i + 1) for i, name in enumerate(REGS)}
        regs.update(rsi=h.data + 0x40, rdi=h.data + 0xC0)  # for rep movsb
        regs.update({name: value(h) for name, value in case.regs.items()})
        for i in range(64):
            state[i] = 0
        for i, name in enumerate(REGS):
            state[i] = regs[name] & MASK64
        state[IN_FLAGS] = case.flags
        state[IN_XMM0] = struct.unpack("<Q", struct.pack("<d", 0.25))[0]
        func(ctypes.addressof(state))
        entry_rsp = state[ENTRY_RSP]
        out: dict[str, Any] = {
            name: state[OUT + i] for i, name in enumerate(REGS) if name not in ("rsp", "r15")
        }
        out.update(
            rsp=state[OUT + 4] - entry_rsp,
            flags=state[OUT_FLAGS] & FLAG_MASK,
            xmm0=state[OUT_XMM0],
            taken=state[TAKEN],
            retaddr=state[RETADDR],
            tos=state[TOS],
            data=ctypes.string_at(h.data, 0x100),
            fault=[state[FAULT + i] for i in range(5)],
            entry_rsp=entry_rsp,
        )
        records[run] = out
    return {
        "records": records,
        "slot": slot,
        "addr": h.addr,
        "next": h.addr + len(insn),
        "insn": insn,
        "code": code,
    }


def _run_in_child(case: Case, where: str) -> dict[str, Any]:
    """Run ``case`` natively and from a slot (near or far) in a forked child; return both records."""
    rfd, wfd = os.pipe()
    with warnings.catch_warnings():
        # Python >= 3.12 warns about fork() in a process with threads; the child only runs
        # machine code and ctypes, then _exit()s.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe and never returns
        status = 0
        try:
            result: Any = _child(case, where)
        except BaseException as err:  # noqa: BLE001 - every failure must reach the parent, not pytest
            result, status = f"{type(err).__name__}: {err}", 1
        os.write(wfd, pickle.dumps(result))
        os._exit(status)
    os.close(wfd)
    chunks = []
    while chunk := os.read(rfd, 65536):
        chunks.append(chunk)
    os.close(rfd)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        pytest.fail(f"{case.name}: the child died of {signal.Signals(os.WTERMSIG(status)).name}")
    result = pickle.loads(b"".join(chunks))
    if isinstance(result, str):
        if result.startswith("Skip: "):
            pytest.skip(result[len("Skip: ") :])
        pytest.fail(f"{case.name}: {result}")
    return result


class _FaultRegs:
    def __init__(self, rip: int, rsp: int, rsi: int) -> None:
        self.rip, self.rsp, self.rsi = rip, rsp, rsi


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="runs x86-64 machine code")
@pytest.mark.parametrize("where", ["near", "far"])
@pytest.mark.parametrize("case", EXEC_CASES, ids=[c.name for c in EXEC_CASES])
def test_slot_runs_like_the_original(case: Case, where: str) -> None:
    if case.cpu and case.cpu not in CPU_FLAGS:
        pytest.skip(f"the CPU has no {case.cpu}")
    if where == "far" and not case.far:
        pytest.skip("no out-of-reach form for a rip-relative operand of an instruction that uses rsp")
    result = _run_in_child(case, where)
    native, slot = result["records"]["native"], result["records"]["slot"]
    if not case.fault:
        assert native["fault"][0] == 0 and slot["fault"][0] == 0, "unexpected SIGSEGV"
        for record in (native, slot):
            del record["entry_rsp"]
        assert slot == native
        if case.name.startswith("call"):
            assert native["retaddr"] == result["next"]
        return
    # A fault inside the slot: fault_fixup must give the context the original instruction faulted with.
    n_rip, n_rsp, n_rsi = native["fault"][:3]
    rip, rsp, rsi, word0, word1 = slot["fault"]
    if n_rip != result["addr"]:
        # The fault came after the instruction (a call to an unmapped address): same place, same stack.
        assert (rip, rsi, word0) == (n_rip, n_rsi, native["fault"][3])
        assert rsp - slot["entry_rsp"] == n_rsp - native["entry_rsp"]
        return
    assert result["slot"] <= rip < result["slot"] + len(result["code"]), "the fault was not in the slot"
    reloc = relocate(result["insn"] + NEXT_PAD, result["addr"])
    assert reloc.build(result["slot"]) == result["code"]
    regs = _FaultRegs(rip, rsp, rsi)
    assert reloc.fault_fixup(regs, result["slot"], Mem({rsp: word0, rsp + 8: word1}))
    assert regs.rip == n_rip
    assert regs.rsp - slot["entry_rsp"] == n_rsp - native["entry_rsp"]
    assert regs.rsi == n_rsi
