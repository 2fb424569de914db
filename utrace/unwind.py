"""The user stack of a stopped thread, from .eh_frame call-frame information, symbolized.

Why CFI and not frame pointers: Debian's glibc (and most distribution libraries, and any program built
with -O2, where -fomit-frame-pointer is the default) keeps no frame pointer, so an rbp-chain walk breaks
at the first such frame and usually wanders into garbage. The .eh_frame section is always there (C++
exceptions and glibc's own backtrace() need it): for every instruction it says where the caller's stack
pointer (the CFA) is and where the return address and callee-saved registers were stored. gdb, perf
--call-graph=dwarf, libunwind and libgcc's unwinder all walk the stack with it; so does this module.

How, and what it costs:

- Per ELF file (cached by build-id, so every process that maps the same libc shares it) the FDE index is
  read straight from .eh_frame_hdr's binary-search table: two int32 per function, no parsing. The FDE
  itself is parsed and its rows decoded with pyelftools only when a pc first falls inside it (decoding
  all of libc's .eh_frame up front costs about a second of Python). pyelftools crashes decoding
  DW_CFA_GNU_args_size (an exception-unwinding hint with no effect on the CFA): it is dropped first.
- Per stop, the stack is read with ONE pread from rsp (64 KiB, or up to the end of the stack mapping)
  and unwound from that buffer; another read happens only when a frame points outside it (a signal
  handler on an alternate stack). Rows and symbols are cached per pc, so a warm unwind is a few dict
  lookups and struct unpacks per frame.
- Caller frames are looked up at pc-1 (the call instruction, not what follows it: a call to a noreturn
  function may be the last instruction of its function), frame 0 and frames interrupted by a signal at
  their exact pc.
- Special cases: the PLT (its CFA is a DWARF expression, evaluated by a small DWARF stack machine); the
  vDSO (its own .eh_frame, from the in-memory image AddressSpace.vdso carries); signal frames (glibc's
  __restore_rt trampoline: the interrupted registers are in the ucontext the kernel pushed); code without
  CFI (hand-written assembly, JIT code): the frame-pointer rule for that one frame.
- Source lines come from DWARF .debug_line (of the file, or of its separate debug file found by
  build-id), decoded one compilation unit at a time on first use.
"""

from __future__ import annotations

import bisect
import io
import os
import struct
from collections import OrderedDict
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Callable, Hashable, NamedTuple, Sequence, Union, cast

from elftools.common.exceptions import DWARFError, ELFError
from elftools.dwarf.callframe import FDE, CallFrameInfo, CFIEntry
from elftools.dwarf.structs import DWARFStructs
from elftools.elf.relocation import RelocationSection
from elftools.elf.sections import SymbolTableSection

from .errors import UtraceError
from .symbols import DEBUG_ROOTS, PF_X, AddressSpace, ElfFile, Module, display_name, load_elf

if TYPE_CHECKING:
    from .kernel import ProcMem

__all__ = [
    "CfiTable",
    "Frame",
    "LineTable",
    "PltNames",
    "Unwinder",
    "cfi_table",
    "clear_cache",
    "eval_dwarf_expr",
    "line_table",
    "plt_names",
]

# --------------------------------------------------------------------------------------------------
# Registers: DWARF numbering for x86-64 (System V psABI, figure 3.36)

RAX, RDX, RCX, RBX, RSI, RDI, RBP, RSP = range(8)
R8, R9, R10, R11, R12, R13, R14, R15 = range(8, 16)
RIP = 16
"""Column 16 is the return address in the CFI; in a register state it holds the frame's pc."""
NUM_REGS = 17

_STRUCT_FIELDS = (
    "rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp",
    "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip",
)  # fmt: skip
"""user_regs_struct field of each DWARF register number."""

_SIGCONTEXT_ORDER = (R8, R9, R10, R11, R12, R13, R14, R15, RDI, RSI, RBP, RBX, RDX, RAX, RCX, RSP, RIP)
"""uc_mcontext.gregs[REG_R8=0 .. REG_RIP=16] (<sys/ucontext.h>; the kernel's struct sigcontext_64)."""

UCONTEXT_GREGS_OFFSET = 40
"""uc_flags 8 + uc_link 8 + uc_stack 24: where uc_mcontext's registers start in the ucontext."""

SIGRETURN_CODE = bytes.fromhex("48c7c00f000000" + "0f05")
"""glibc's __restore_rt: mov $15 (SYS_rt_sigreturn), %rax; syscall. The kernel's rt_sigframe is
{pretcode, ucontext, siginfo}: the handler returns into this code with rsp pointing at the ucontext."""

MASK64 = (1 << 64) - 1
USER_ADDRESS_LIMIT = 1 << 56
"""Above every user address (5-level paging included): anything higher is garbage, not a stack slot."""

STACK_READ = 64 * 1024
"""Bytes of stack read per stop (fewer at the end of the stack mapping)."""
MAX_EXTRA_READS = 8
"""Further reads allowed in one unwind for frames outside the first buffer (garbage must not loop)."""
FRAME_POINTER_REACH = 16 * 1024 * 1024
"""A saved rbp farther than this above rsp is not trusted as a frame pointer."""
PC_CACHE_SIZE = 8192

_U64 = struct.Struct("<Q")

# --------------------------------------------------------------------------------------------------
# Frames


@dataclass(frozen=True)
class Frame:
    """One frame of a stack trace. ``pc`` is the stop pc for frame 0, the return address otherwise.

    ``offset`` is pc minus the symbol's start; without a symbol, pc minus the module's start. ``file`` and
    ``line`` come from DWARF line tables when the module (or its debug file) has them. ``signal_frame``
    marks the signal trampoline: the frame above it was interrupted by a signal at its exact pc.
    """

    pc: int
    module: str | None
    symbol: str | None
    offset: int
    file: str | None = None
    line: int | None = None
    signal_frame: bool = False

    def format(self, index: int) -> str:
        """'#N  0xADDR symbol+off (module) file:line', gdb-like; '??' when the symbol is unknown."""
        if self.symbol is not None:
            where = f"{display_name(self.symbol)}+{self.offset:#x}"
            if self.module is not None:
                where += f" ({self.module})"
        elif self.module is not None:
            where = f"?? ({self.module}+{self.offset:#x})"
        else:
            where = "??"
        text = f"#{index:<2} 0x{self.pc:016x} {where}"
        if self.file is not None and self.line is not None:
            text += f" {self.file}:{self.line}"
        if self.signal_frame:
            text += " <signal handler called>"
        return text


# --------------------------------------------------------------------------------------------------
# Caches keyed by file identity


def _file_key(elf: ElfFile) -> Hashable:
    """Build-id when the file has one (same content, whatever its path); else path+inode+mtime."""
    if elf.build_id:
        return ("build-id", elf.build_id)
    try:
        st = os.stat(elf.path)
    except OSError:
        return ("object", id(elf))  # the vDSO without a build-id: the cached table keeps elf alive
    return ("file", elf.path, st.st_dev, st.st_ino, st.st_mtime_ns)


class _LruCache(OrderedDict):
    """A small LRU of per-file tables."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def remember(self, key: Hashable, value: Any) -> Any:
        self[key] = value
        if len(self) > self.size:
            self.popitem(last=False)
        return value

    def recall(self, key: Hashable) -> Any:
        value = self.get(key)
        if value is not None:
            self.move_to_end(key)
        return value

    def per_file(self, module_or_elf: Module | ElfFile, build: Callable[[ElfFile], Any]) -> Any:
        """The table of this file, built with ``build`` once per file content (keyed by build-id)."""
        elf = _elf_of(module_or_elf)
        key = _file_key(elf)
        table = self.recall(key)
        return self.remember(key, build(elf)) if table is None else table


_CFI_TABLES = _LruCache(64)
_LINE_TABLES = _LruCache(64)


def clear_cache() -> None:
    """Forget every CFI and line table (tests measure cold costs with it)."""
    _CFI_TABLES.clear()
    _LINE_TABLES.clear()
    _PLT_NAMES.clear()


def _elf_of(module_or_elf: Module | ElfFile) -> ElfFile:
    return module_or_elf.elf if isinstance(module_or_elf, Module) else module_or_elf


# pyelftools reports malformed or unsupported CFI and DWARF with its own errors, but also with assert
# statements and lookups of unknown encodings; any of them makes that one FDE or CU unusable.
_PYELFTOOLS_ERRORS = (ELFError, DWARFError, struct.error, AssertionError, KeyError, IndexError, ValueError)

# --------------------------------------------------------------------------------------------------
# CFI rows


class _Rule(NamedTuple):
    """How to recover one register of the caller: ``kind`` is a pyelftools RegisterRule type."""

    reg: int
    kind: str
    arg: Any  # int offset, register number, or DWARF expression bytes


class _Row(NamedTuple):
    """One decoded CFI row: CFA = reg + offset (or the expression), and the register rules."""

    cfa_reg: int | None
    cfa_offset: int
    cfa_expr: bytes | None
    rules: tuple[_Rule, ...]


class _Fde(NamedTuple):
    start: int
    end: int
    row_pcs: list[int]
    rows: list[_Row]


DW_CFA_GNU_args_size = 0x2E
DW_EH_PE_omit = 0xFF
DW_EH_PE_udata4 = 0x03
DW_EH_PE_sdata4 = 0x0B
DW_EH_PE_pcrel = 0x10
DW_EH_PE_datarel = 0x30
_HDR_TABLE_ENCODING = DW_EH_PE_datarel | DW_EH_PE_sdata4
"""The only .eh_frame_hdr table encoding GNU ld, gold, lld and mold write."""


def _convert_row(line: dict[Any, Any]) -> _Row | None:
    """A pyelftools decoded row -> _Row; None when it defines no CFA."""
    cfa = line["cfa"]
    expr = bytes(cfa.expr) if cfa.expr is not None else None
    if cfa.reg is None and expr is None:
        return None
    rules = []
    for reg, rule in line.items():
        if isinstance(reg, int) and 0 <= reg < NUM_REGS:
            arg = bytes(rule.arg) if rule.type in ("EXPRESSION", "VAL_EXPRESSION") else rule.arg
            rules.append(_Rule(reg, rule.type, arg))
    return _Row(cfa.reg, cfa.offset or 0, expr, tuple(rules))


def _drop_args_size(entry: CFIEntry) -> None:
    """pyelftools' get_decoded() has no case for DW_CFA_GNU_args_size and fails on it; it only matters
    to exception unwinding (the size of outgoing arguments), so drop it before decoding."""
    entry.instructions = [i for i in entry.instructions if i.opcode != DW_CFA_GNU_args_size]


def _decode_fde(fde: FDE) -> _Fde:
    """The FDE's rows, converted once; rows without a CFA stay as None (no CFI at those pcs)."""
    if fde.cie is not None:
        _drop_args_size(fde.cie)
    _drop_args_size(fde)
    start = fde.header["initial_location"]
    table = fde.get_decoded().table
    row_pcs = [line["pc"] for line in table]
    rows = [_convert_row(line) for line in table]
    return _Fde(start, start + fde.header["address_range"], row_pcs, cast("list[_Row]", rows))


class CfiTable:
    """The .eh_frame of one ELF file: a sorted FDE index built upfront, rows decoded per FDE on first use.

    Addresses are the file's virtual addresses (add the module's bias for absolute ones).
    """

    def __init__(self, elf: ElfFile) -> None:
        self.path = elf.path
        self._elf = elf
        self._starts: list[int] = []
        self._offsets: list[int] = []  # offset of each FDE in .eh_frame
        self._parsed: dict[int, CFIEntry] = {}  # FDEs parsed by a full scan (no usable .eh_frame_hdr)
        self._decoded: dict[int, _Fde | None] = {}
        self._cfi: CallFrameInfo | None = None
        try:
            self._build_index(elf)
        except _PYELFTOOLS_ERRORS:
            self._starts, self._offsets, self._cfi = [], [], None  # unusable .eh_frame: no CFI at all

    def __len__(self) -> int:
        return len(self._starts)

    def __repr__(self) -> str:
        return f"<CfiTable {self.path}: {len(self)} FDEs, {len(self._decoded)} decoded>"

    def _build_index(self, elf: ElfFile) -> None:
        pyelf = elf.elf
        section = pyelf.get_section_by_name(".eh_frame")
        if section is None or section["sh_type"] == "SHT_NOBITS" or not section["sh_size"]:
            return
        structs = DWARFStructs(
            little_endian=pyelf.little_endian, dwarf_format=32, address_size=pyelf.elfclass // 8
        )
        stream = cast(IO[bytes], io.BytesIO(section.data()))
        self._cfi = CallFrameInfo(stream, section["sh_size"], section["sh_addr"], structs, for_eh_frame=True)
        hdr = pyelf.get_section_by_name(".eh_frame_hdr")
        index = None
        if hdr is not None and hasattr(self._cfi, "_parse_entry_at"):
            index = _read_eh_frame_hdr(hdr.data(), hdr["sh_addr"], section["sh_addr"])
        if index is None:
            index = self._scan_all()
        self._starts = [start for start, _ in index]
        self._offsets = [offset for _, offset in index]

    def _scan_all(self) -> list[tuple[int, int]]:
        """Without .eh_frame_hdr: parse every entry (pyelftools' EH_CFI_entries), slower but complete."""
        assert self._cfi is not None
        index = []
        for entry in self._cfi.get_entries():
            if isinstance(entry, FDE):
                self._parsed[entry.offset] = entry
                index.append((entry.header["initial_location"], entry.offset))
        return sorted(index)

    def _fde(self, i: int) -> _Fde | None:
        offset = self._offsets[i]
        if offset in self._decoded:
            return self._decoded[offset]
        fde: _Fde | None = None
        try:
            entry: object = self._parsed.get(offset)
            if entry is None and self._cfi is not None:
                # One FDE (and its CIE, cached by pyelftools) instead of the whole section: the only
                # pyelftools entry point that parses a single CFI entry is this private method.
                entry = self._cfi._parse_entry_at(offset)
            if isinstance(entry, FDE):
                fde = _decode_fde(entry)
        except _PYELFTOOLS_ERRORS:
            fde = None
        self._decoded[offset] = fde
        return fde

    def row_at(self, vaddr: int) -> _Row | None:
        """The CFI row in effect at ``vaddr``; None when no FDE covers it."""
        i = bisect.bisect_right(self._starts, vaddr) - 1
        if i < 0:
            return None
        fde = self._fde(i)
        if fde is None or not fde.start <= vaddr < fde.end:
            return None
        j = bisect.bisect_right(fde.row_pcs, vaddr) - 1
        return fde.rows[j] if j >= 0 else None


def _read_eh_frame_hdr(data: bytes, hdr_addr: int, eh_frame_addr: int) -> list[tuple[int, int]] | None:
    """(initial location, .eh_frame offset) of every FDE, from .eh_frame_hdr's sorted search table.

    Layout: version 1, eh_frame_ptr encoding, fde_count encoding, table encoding, eh_frame_ptr,
    fde_count, then fde_count pairs. None when the encodings are not the usual ones (then scan).
    """
    if len(data) < 12 or data[0] != 1:
        return None
    ptr_enc, count_enc, table_enc = data[1], data[2], data[3]
    if ptr_enc == DW_EH_PE_omit or ptr_enc & 0x0F not in (DW_EH_PE_sdata4, DW_EH_PE_udata4):
        return None
    if count_enc != DW_EH_PE_udata4 or table_enc != _HDR_TABLE_ENCODING:
        return None
    (count,) = struct.unpack_from("<I", data, 8)
    if 12 + 8 * count > len(data):
        return None
    pairs = struct.unpack_from(f"<{2 * count}i", data, 12)
    return [(hdr_addr + pairs[k], hdr_addr + pairs[k + 1] - eh_frame_addr) for k in range(0, 2 * count, 2)]


def cfi_table(module_or_elf: Module | ElfFile) -> CfiTable:
    """The file's CFI table, built once per file content (keyed by build-id) and cached."""
    return cast(CfiTable, _CFI_TABLES.per_file(module_or_elf, CfiTable))


# --------------------------------------------------------------------------------------------------
# DWARF expressions (CFA expressions of the PLT, register rules of hand-written CFI)


def _uleb(code: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = code[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, i


def _sleb(code: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = code[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            if byte & 0x40:
                value -= 1 << shift
            return value, i


def _signed(v: int) -> int:
    return v - (1 << 64) if v & (1 << 63) else v


_CONSTANTS = {  # opcode: (size, signed)
    0x08: (1, False), 0x09: (1, True), 0x0A: (2, False), 0x0B: (2, True),
    0x0C: (4, False), 0x0D: (4, True), 0x0E: (8, False), 0x0F: (8, True),
}  # fmt: skip
_BINARY: dict[int, Callable[[int, int], int]] = {
    0x1A: lambda a, b: a & b,  # DW_OP_and
    0x1C: lambda a, b: a - b,  # DW_OP_minus
    0x1E: lambda a, b: a * b,  # DW_OP_mul
    0x21: lambda a, b: a | b,  # DW_OP_or
    0x22: lambda a, b: a + b,  # DW_OP_plus
    0x24: lambda a, b: a << b if b < 64 else 0,  # DW_OP_shl
    0x25: lambda a, b: a >> b,  # DW_OP_shr
    0x26: lambda a, b: _signed(a) >> min(b, 63),  # DW_OP_shra
    0x27: lambda a, b: a ^ b,  # DW_OP_xor
    0x29: lambda a, b: int(a == b),  # DW_OP_eq
    0x2A: lambda a, b: int(_signed(a) >= _signed(b)),  # DW_OP_ge
    0x2B: lambda a, b: int(_signed(a) > _signed(b)),  # DW_OP_gt
    0x2C: lambda a, b: int(_signed(a) <= _signed(b)),  # DW_OP_le
    0x2D: lambda a, b: int(_signed(a) < _signed(b)),  # DW_OP_lt
    0x2E: lambda a, b: int(a != b),  # DW_OP_ne
}


def eval_dwarf_expr(
    code: bytes, regs: Sequence[int | None], read: Callable[[int], int | None], initial: int | None = None
) -> int | None:
    """Evaluate a DWARF expression of the kinds CFI uses; None when it needs an unknown register or
    memory, or uses an operation outside this subset (then the caller treats the frame as without CFI).

    Supported: DW_OP_lit*, const*, constu/consts, breg*/bregx, deref, plus_uconst, dup, drop, over, swap,
    nop, and the arithmetic, logical, shift and comparison operators. ``initial`` is pushed first
    (DW_CFA_expression rules start with the CFA on the stack).
    """
    stack: list[int] = [] if initial is None else [initial]
    i = 0
    try:
        while i < len(code):
            op = code[i]
            i += 1
            if 0x30 <= op <= 0x4F:  # DW_OP_lit0..31
                stack.append(op - 0x30)
            elif 0x70 <= op <= 0x8F or op == 0x92:  # DW_OP_breg0..31, DW_OP_bregx
                if op == 0x92:
                    reg, i = _uleb(code, i)
                else:
                    reg = op - 0x70
                offset, i = _sleb(code, i)
                value = regs[reg] if reg < len(regs) else None
                if value is None:
                    return None
                stack.append((value + offset) & MASK64)
            elif op in _BINARY:
                b, a = stack.pop(), stack.pop()
                stack.append(_BINARY[op](a, b) & MASK64)
            elif op in _CONSTANTS:
                size, signed = _CONSTANTS[op]
                stack.append(int.from_bytes(code[i : i + size], "little", signed=signed) & MASK64)
                i += size
            elif op == 0x10:  # DW_OP_constu
                value, i = _uleb(code, i)
                stack.append(value & MASK64)
            elif op == 0x11:  # DW_OP_consts
                value, i = _sleb(code, i)
                stack.append(value & MASK64)
            elif op == 0x23:  # DW_OP_plus_uconst
                value, i = _uleb(code, i)
                stack.append((stack.pop() + value) & MASK64)
            elif op == 0x06:  # DW_OP_deref
                loaded = read(stack.pop())
                if loaded is None:
                    return None
                stack.append(loaded)
            elif op == 0x12:  # DW_OP_dup
                stack.append(stack[-1])
            elif op == 0x13:  # DW_OP_drop
                stack.pop()
            elif op == 0x14:  # DW_OP_over
                stack.append(stack[-2])
            elif op == 0x16:  # DW_OP_swap
                stack[-1], stack[-2] = stack[-2], stack[-1]
            elif op == 0x1F:  # DW_OP_neg
                stack.append(-stack.pop() & MASK64)
            elif op == 0x20:  # DW_OP_not
                stack.append(~stack.pop() & MASK64)
            elif op != 0x96:  # anything but DW_OP_nop
                return None
    except IndexError:  # stack underflow or a truncated operand: a malformed expression
        return None
    return stack[-1] if stack else None


# --------------------------------------------------------------------------------------------------
# Source lines


class _CuLines(NamedTuple):
    keys: list[tuple[int, int]]  # (address, 0 for an end of sequence else 1), sorted
    places: list[tuple[str, int] | None]  # None: after an end of sequence


class LineTable:
    """address -> (file, line) for one ELF file, from its DWARF .debug_line or its debug file's.

    The compilation unit of an address comes from .debug_aranges; each unit's line program is decoded
    on its first lookup. Addresses are the file's virtual addresses.
    """

    def __init__(self, elf: ElfFile) -> None:
        self.path = elf.path
        self._source = _line_source(elf)
        self._dwarf: Any = None
        self._aranges: Any = None
        self._cu_lines: dict[int, _CuLines | None] = {}
        self._failed = self._source is None

    def __repr__(self) -> str:
        source = self._source.path if self._source is not None else None
        return f"<LineTable {self.path} from {source}: {len(self._cu_lines)} units decoded>"

    def lookup(self, vaddr: int) -> tuple[str, int] | None:
        if self._failed:
            return None
        try:
            cu_offset = self._cu_offset(vaddr)
            if cu_offset is None:
                return None
            if cu_offset not in self._cu_lines:
                self._cu_lines[cu_offset] = self._decode_cu(cu_offset)
        except _PYELFTOOLS_ERRORS:
            self._failed = True  # broken debug information: stop trying for this file
            return None
        lines = self._cu_lines[cu_offset]
        if lines is None:
            return None
        i = bisect.bisect_right(lines.keys, (vaddr, 2)) - 1
        return lines.places[i] if i >= 0 else None

    def _cu_offset(self, vaddr: int) -> int | None:
        if self._dwarf is None:
            assert self._source is not None
            self._dwarf = self._source.elf.get_dwarf_info(follow_links=False)
            self._aranges = self._dwarf.get_aranges()
            if self._aranges is None:
                self._aranges = _RangesFromUnits(self._dwarf)
        if not getattr(self._aranges, "entries", True):
            return None
        return cast("int | None", self._aranges.cu_offset_at_addr(vaddr))

    def _decode_cu(self, cu_offset: int) -> _CuLines | None:
        program = self._dwarf.line_program_for_CU(self._dwarf.get_CU_at(cu_offset))
        if program is None:
            return None
        names = _file_names(program)
        rows: dict[tuple[int, int], tuple[str, int] | None] = {}
        for entry in program.get_entries():
            state = entry.state
            if state is None:
                continue
            if state.end_sequence:
                rows.setdefault((state.address, 0), None)
            elif state.is_stmt or (state.address, 1) not in rows:
                # The last statement row at an address wins (as in gdb); other rows only fill gaps.
                rows[(state.address, 1)] = (names.get(state.file, "??"), state.line)
        keys = sorted(rows)
        return _CuLines(keys, [rows[k] for k in keys])


class _RangesFromUnits:
    """Stands in for .debug_aranges when a file lacks it: each unit's low_pc/high_pc, read once."""

    def __init__(self, dwarf: Any) -> None:
        spans = []
        for cu in dwarf.iter_CUs():
            attrs = cu.get_top_DIE().attributes
            if "DW_AT_low_pc" not in attrs or "DW_AT_high_pc" not in attrs:
                continue
            low = attrs["DW_AT_low_pc"].value
            high = attrs["DW_AT_high_pc"]
            end = high.value if high.form == "DW_FORM_addr" else low + high.value
            spans.append((low, end, cu.cu_offset))
        spans.sort()
        self.entries = spans
        self._starts = [s[0] for s in spans]

    def cu_offset_at_addr(self, addr: int) -> int | None:
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0 and addr < self.entries[i][1]:
            return int(self.entries[i][2])
        return None


def _file_names(program: Any) -> dict[int, str]:
    """File index -> name as gdb shows it: a relative name joined to its directory ('./nptl/pthread_kill.c').

    DWARF 5 numbers files and directories from 0 and lists the unit's own directory as directory 0;
    earlier versions number both from 1, and directory 0 (the unit's directory) is left implicit.
    """
    version = program.header["version"]
    dirs = [_text(d) for d in program.header["include_directory"]]
    names = {}
    for index, entry in enumerate(program.header["file_entry"]):
        name = _text(entry.name)
        dir_index = entry.dir_index if version >= 5 else entry.dir_index - 1
        if not name.startswith("/") and 0 <= dir_index < len(dirs):
            name = os.path.join(dirs[dir_index], name)
        names[index if version >= 5 else index + 1] = name
    return names


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _has_line_info(elf: ElfFile) -> bool:
    section = elf.elf.get_section_by_name(".debug_line")
    return section is not None and section["sh_type"] != "SHT_NOBITS"


def _line_source(elf: ElfFile) -> ElfFile | None:
    """The file itself if it has .debug_line, else its separate debug file (same build-id) if installed."""
    if _has_line_info(elf):
        return elf
    build_id = elf.build_id
    if not build_id or len(build_id) < 3:
        return None
    for root in DEBUG_ROOTS:
        path = os.path.join(root, ".build-id", build_id[:2], build_id[2:] + ".debug")
        if path == elf.path or not os.path.exists(path):
            continue
        try:
            debug = load_elf(path)
        except UtraceError:
            continue
        if debug.build_id == build_id and _has_line_info(debug):
            return debug
    return None


def line_table(module_or_elf: Module | ElfFile) -> LineTable:
    """The file's line table, built once per file content (keyed by build-id) and cached."""
    return cast(LineTable, _LINE_TABLES.per_file(module_or_elf, LineTable))


# --------------------------------------------------------------------------------------------------
# PLT entries: no symbol covers them; gdb and objdump call them 'name@plt'

R_X86_64_GLOB_DAT = 6
R_X86_64_JUMP_SLOT = 7
_PLT_SECTIONS = ((".plt", 16), (".plt.sec", 16), (".plt.got", 8))
"""PLT sections and their entry sizes (.plt.sec holds the jumps when .plt has IBT landing pads)."""


class PltNames:
    """'name@plt' for the PLT entries of one file: each entry's ``jmp *slot(%rip)`` names the GOT slot,
    whose JUMP_SLOT (or GLOB_DAT, for .plt.got) relocation names the function (what BFD does too)."""

    def __init__(self, elf: ElfFile) -> None:
        self._sections: list[tuple[int, int, int]] = []  # (start, end, entry size)
        self._names: dict[int, str] = {}
        try:
            self._build(elf)
        except _PYELFTOOLS_ERRORS:
            self._sections, self._names = [], {}

    def _build(self, elf: ElfFile) -> None:
        slots = _got_slot_names(elf)
        for name, step in _PLT_SECTIONS:
            section = elf.elf.get_section_by_name(name)
            if section is None or section["sh_type"] == "SHT_NOBITS":
                continue
            data, base = section.data(), section["sh_addr"]
            self._sections.append((base, base + len(data), step))
            for off in range(0, len(data) - step + 1, step):
                k = data.find(b"\xff\x25", off, off + step - 4)  # jmp *disp32(%rip)
                if k < 0:
                    continue
                slot = base + k + 6 + int.from_bytes(data[k + 2 : k + 6], "little", signed=True)
                if slot in slots:
                    self._names[base + off] = slots[slot] + "@plt"

    def entries(self) -> dict[str, int]:
        """'name@plt' -> the entry's file vaddr."""
        return {name: vaddr for vaddr, name in self._names.items()}

    def lookup(self, vaddr: int) -> tuple[str, int] | None:
        """('qsort@plt', offset into the entry), or None outside the PLT's named entries."""
        for start, end, step in self._sections:
            if start <= vaddr < end:
                entry = start + (vaddr - start) // step * step
                name = self._names.get(entry)
                return (name, vaddr - entry) if name is not None else None
        return None


def _got_slot_names(elf: ElfFile) -> dict[int, str]:
    slots: dict[int, str] = {}
    for name in (".rela.plt", ".rela.dyn"):
        section = elf.elf.get_section_by_name(name)
        if not isinstance(section, RelocationSection):
            continue
        symtab = elf.elf.get_section(section["sh_link"])
        if not isinstance(symtab, SymbolTableSection):
            continue
        for rel in section.iter_relocations():
            if rel["r_info_type"] in (R_X86_64_JUMP_SLOT, R_X86_64_GLOB_DAT) and rel["r_info_sym"]:
                slots[rel["r_offset"]] = symtab.get_symbol(rel["r_info_sym"]).name
    return slots


_PLT_NAMES = _LruCache(64)


def plt_names(module_or_elf: Module | ElfFile) -> PltNames:
    """The file's PLT entry names, built on first use and cached like the CFI tables."""
    return cast(PltNames, _PLT_NAMES.per_file(module_or_elf, PltNames))


# --------------------------------------------------------------------------------------------------
# The stack of one stop


class _StackWindow:
    """The stack bytes of one stop: one read from rsp, further reads only for frames outside it."""

    def __init__(self, mem: ProcMem, limit: Callable[[int], int], sp: int) -> None:
        self._mem = mem
        self._limit = limit
        self._chunks: list[tuple[int, bytes]] = []
        self.reads = 0
        self._start = sp
        self._data = self._read(sp)

    def _read(self, addr: int) -> bytes:
        if not 0 < addr < USER_ADDRESS_LIMIT or self.reads > MAX_EXTRA_READS:
            return b""
        self.reads += 1
        data = self._mem.read_upto(addr, self._limit(addr))
        self._chunks.append((addr, data))
        return data

    def read(self, addr: int, size: int) -> bytes | None:
        offset = addr - self._start
        if 0 <= offset and offset + size <= len(self._data):
            return self._data[offset : offset + size]
        for start, data in self._chunks:
            if start <= addr and addr + size <= start + len(data):
                return data[addr - start : addr - start + size]
        data = self._read(addr)
        return data[:size] if len(data) >= size else None

    def u64(self, addr: int) -> int | None:
        offset = addr - self._start
        if 0 <= offset <= len(self._data) - 8:
            return int(_U64.unpack_from(self._data, offset)[0])
        raw = self.read(addr, 8)
        return int(_U64.unpack(raw)[0]) if raw is not None else None


# --------------------------------------------------------------------------------------------------
# The unwinder

_Regs = list[Union[int, None]]


class _PcInfo(NamedTuple):
    """What the unwinder needs to know about one pc, computed once per Unwinder."""

    module: Module | None
    executable: bool
    sigreturn: bool  # glibc's __restore_rt (or its syscall instruction)
    at_symbol_start: bool


class _Symbolized(NamedTuple):
    module: str | None
    symbol: str | None
    offset: int
    file: str | None
    line: int | None


class Unwinder:
    """Unwinds stopped threads of one process; built per AddressSpace snapshot (caches are per pc).

    ``pc_map`` maps an address inside utrace's out-of-line slots back to the original instruction's
    address; it is called with each frame's pc in turn, innermost first, so a closure may also put back
    return addresses that a return probe replaced with its trampoline. ``lines=False`` skips source lines
    (decoding a large debug file's line table is the most expensive cold step).
    """

    def __init__(
        self,
        space: AddressSpace,
        mem: ProcMem,
        pc_map: Callable[[int], int] | None = None,
        *,
        lines: bool = True,
    ) -> None:
        self.space = space
        self.mem = mem
        self.pc_map = pc_map
        self.lines = lines
        self._map_starts = [m.start for m in space.mappings]
        self._pc_info: dict[int, _PcInfo] = {}
        self._rows: dict[tuple[int, bool], _Row | None] = {}
        self._symbols: dict[tuple[int, bool], _Symbolized] = {}
        self.last_reads = 0
        """How many reads of the stack the last unwind needed (1 unless a frame was outside the first)."""

    # --- public ------------------------------------------------------------------------------------

    def unwind(self, regs: Any, max_depth: int = 64) -> list[Frame]:
        """The frames of a stopped thread, innermost first, from its user_regs_struct."""
        state: _Regs = [int(getattr(regs, name)) & MASK64 for name in _STRUCT_FIELDS]
        stack = _StackWindow(self.mem, self._read_extent, cast(int, state[RSP]))
        frames: list[Frame] = []
        exact = True  # frame 0, and a frame interrupted by a signal: their pc is not a return address
        while len(frames) < max_depth:
            pc = state[RIP]
            if pc is None:
                break
            if self.pc_map is not None:
                pc = state[RIP] = self.pc_map(pc)
            info = self._info(pc)
            if frames and not info.executable:
                break  # a return address must point into code: this is garbage or the end
            frames.append(self._frame(pc, exact, info))
            caller = self._step(pc, exact, info, state, stack, first=len(frames) == 1)
            if caller is None:
                break
            if not info.sigreturn and not _above(caller[RSP], state[RSP]):
                break  # the stack must grow towards the caller, except across a signal frame
            state, exact = caller, info.sigreturn
        self.last_reads = stack.reads
        return frames

    # --- one step ----------------------------------------------------------------------------------

    def _step(
        self, pc: int, exact: bool, info: _PcInfo, state: _Regs, stack: _StackWindow, first: bool
    ) -> _Regs | None:
        """The caller's registers, or None when this is the outermost frame or it cannot be unwound."""
        if info.sigreturn:
            return _signal_step(state, stack)
        row = self._row(pc, exact, info)
        if row is not None:
            return _cfi_step(row, state, stack)
        # Stopped at a function's first instruction, or after a call through a bad pointer (pc 0 or
        # data): the return address is still at [rsp].
        at_entry = first and (info.at_symbol_start or not info.executable)
        return _frame_pointer_step(state, stack, at_entry)

    def _row(self, pc: int, exact: bool, info: _PcInfo) -> _Row | None:
        key = (pc, exact)
        if key not in self._rows:
            module = info.module
            row = None
            if module is not None:
                row = cfi_table(module.elf).row_at(pc - module.bias - (0 if exact else 1))
            self._rows[key] = row
            _trim(self._rows)
        return self._rows[key]

    # --- per-pc facts ------------------------------------------------------------------------------

    def _info(self, pc: int) -> _PcInfo:
        info = self._pc_info.get(pc)
        if info is None:
            module = self.space.module_at(pc)
            found = self.space.symbolize(pc)
            executable = pc != 0 and self._is_executable(pc, module)
            info = _PcInfo(
                module=module,
                executable=executable,
                sigreturn=executable and self._is_sigreturn(pc, module),
                at_symbol_start=found is not None and found[1] is not None and found[2] == 0,
            )
            self._pc_info[pc] = info
            _trim(self._pc_info)
        return info

    def _is_executable(self, pc: int, module: Module | None) -> bool:
        if module is not None:
            vaddr = pc - module.bias
            return any(ld.flags & PF_X and ld.vaddr <= vaddr < ld.vaddr + ld.memsz for ld in module.elf.loads)
        mapping = self._mapping_at(pc)
        return mapping is not None and "x" in mapping.perms

    def _is_sigreturn(self, pc: int, module: Module | None) -> bool:
        """pc at glibc's __restore_rt, or at its syscall (a thread stopped inside rt_sigreturn)."""
        code = self._code(pc - 7, len(SIGRETURN_CODE) + 7, module)
        return code[7:] == SIGRETURN_CODE or code[: len(SIGRETURN_CODE)] == SIGRETURN_CODE

    def _code(self, addr: int, size: int, module: Module | None) -> bytes:
        """Code bytes from the file image (breakpoints are never in it), else from memory."""
        if module is not None:
            try:
                return module.elf.read(addr - module.bias, size)
            except UtraceError:
                pass
        try:
            return self.mem.read_upto(addr, size)
        except (OSError, OverflowError):
            return b""

    def _mapping_at(self, addr: int) -> Any:
        i = bisect.bisect_right(self._map_starts, addr) - 1
        if i >= 0 and self.space.mappings[i].contains(addr):
            return self.space.mappings[i]
        return None

    def _read_extent(self, addr: int) -> int:
        """How much stack to read from ``addr``: STACK_READ, less at the end of its mapping."""
        mapping = self._mapping_at(addr)
        if mapping is None:
            return STACK_READ
        return max(8, min(STACK_READ, mapping.end - addr))

    # --- symbolization -----------------------------------------------------------------------------

    def _frame(self, pc: int, exact: bool, info: _PcInfo) -> Frame:
        key = (pc, exact)
        sym = self._symbols.get(key)
        if sym is None:
            sym = self._symbols[key] = self._symbolize(pc, exact, info)
            _trim(self._symbols)
        return Frame(pc, sym.module, sym.symbol, sym.offset, sym.file, sym.line, info.sigreturn)

    def _symbolize(self, pc: int, exact: bool, info: _PcInfo) -> _Symbolized:
        # A return address belongs to the call before it: look up pc-1 (gdb does the same).
        lookup = pc if exact or info.sigreturn else pc - 1
        found = self.space.symbolize(lookup)
        if found is None:
            return _Symbolized(None, None, 0, None, None)
        module, symbol, offset = found
        if symbol is None:
            entry = plt_names(module.elf).lookup(lookup - module.bias)
            if entry is not None:
                symbol, offset = entry
        place = line_table(module.elf).lookup(lookup - module.bias) if self.lines else None
        file, line = place if place is not None else (None, None)
        return _Symbolized(module.name, symbol, offset + (pc - lookup), file, line)


def _trim(cache: dict[Any, Any]) -> None:
    if len(cache) > PC_CACHE_SIZE:
        cache.clear()


def _above(new_sp: int | None, old_sp: int | None) -> bool:
    return new_sp is not None and old_sp is not None and new_sp > old_sp


def _cfi_step(row: _Row, state: _Regs, stack: _StackWindow) -> _Regs | None:
    """Apply one CFI row: compute the CFA, then each register rule; registers without a rule keep their
    value (callee-saved ones are unchanged by definition, the others are unknown but harmless)."""
    if row.cfa_expr is not None:
        cfa = eval_dwarf_expr(row.cfa_expr, state, stack.u64)
    else:
        base = state[row.cfa_reg] if row.cfa_reg is not None and row.cfa_reg < NUM_REGS else None
        cfa = (base + row.cfa_offset) & MASK64 if base is not None else None
    if cfa is None:
        return None
    caller = list(state)
    caller[RIP] = None  # an FDE without a return-address rule marks the outermost frame
    for rule in row.rules:
        caller[rule.reg] = _apply_rule(rule, cfa, state, stack)
    caller[RSP] = cfa
    return caller if caller[RIP] is not None else None


def _apply_rule(rule: _Rule, cfa: int, state: _Regs, stack: _StackWindow) -> int | None:
    kind, arg = rule.kind, rule.arg
    if kind == "OFFSET":
        return stack.u64((cfa + arg) & MASK64)
    if kind == "VAL_OFFSET":
        return (cfa + arg) & MASK64
    if kind == "REGISTER":
        return state[arg] if arg < NUM_REGS else None
    if kind == "SAME_VALUE":
        return state[rule.reg]
    if kind == "EXPRESSION":
        addr = eval_dwarf_expr(arg, state, stack.u64, initial=cfa)
        return stack.u64(addr) if addr is not None else None
    if kind == "VAL_EXPRESSION":
        return eval_dwarf_expr(arg, state, stack.u64, initial=cfa)
    return None  # UNDEFINED (and anything unknown)


def _signal_step(state: _Regs, stack: _StackWindow) -> _Regs | None:
    """At __restore_rt, rsp points at the ucontext the kernel saved: take every register from it."""
    sp = state[RSP]
    if sp is None:
        return None
    raw = stack.read(sp + UCONTEXT_GREGS_OFFSET, 8 * len(_SIGCONTEXT_ORDER))
    if raw is None:
        return None
    caller: _Regs = [None] * NUM_REGS
    for reg, value in zip(_SIGCONTEXT_ORDER, struct.unpack(f"<{len(_SIGCONTEXT_ORDER)}Q", raw)):
        caller[reg] = value
    return caller


def _frame_pointer_step(state: _Regs, stack: _StackWindow, at_entry: bool) -> _Regs | None:
    """No CFI for this pc: at a function's first instruction the return address is at [rsp]; elsewhere
    assume the classic frame (push rbp; mov rsp,rbp): caller's rbp at [rbp], return address at [rbp+8]."""
    rsp, rbp = state[RSP], state[RBP]
    caller = list(state)
    if at_entry and rsp is not None:
        caller[RIP], caller[RSP] = stack.u64(rsp), rsp + 8
    elif rsp is not None and rbp is not None and rsp <= rbp < rsp + FRAME_POINTER_REACH and not rbp & 7:
        caller[RIP], caller[RBP], caller[RSP] = stack.u64(rbp + 8), stack.u64(rbp), rbp + 16
    else:
        return None
    return caller if caller[RIP] is not None else None
