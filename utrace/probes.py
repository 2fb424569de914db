"""The probe definition language: the kernel's kprobe_events/uprobe_events syntax, parsed once, then
evaluated at each hit against the stopped thread. No eval(): hand-written recursive descent.

    p[:[GROUP/]EVENT] TARGET [FETCHARG ...] [if FILTER]     a probe (a bare TARGET means ``p TARGET``)
    r[:[GROUP/]EVENT] TARGET [FETCHARG ...] [if FILTER]     a return probe (also ``p TARGET%return``)
    -:[GROUP/]EVENT                                         removal

FETCHARG is ``[NAME=]ARG[:TYPE]``; unnamed arguments are called arg1, arg2, ... by position, as the
kernel does. ARG is one of

    %REG                  a general-purpose register (%di or %rdi, %ip, %sp, %ax, %r8, %flags, ...)
    %xmmN                 an SSE register (N 0-15): x64 of the low quadword unless typed (f64, f32, ...)
    $argN                 the Nth integer argument, SysV (rdi rsi rdx rcx r8 r9, then the stack)
    $fargN                the Nth floating-point argument (xmm0-xmm7), f64 unless typed
    $stackN / $stack      the Nth 8-byte slot above rsp ($stack0 is the return address at entry) / rsp
    $comm / $tid          the thread's name (a string) / id (u32)
    $retval / $duration   return probes: rax / nanoseconds since the call (u64)
    $entry.NAME           return probes: the argument NAME of this probe as it was at the function's entry
    @ADDR                 memory at an absolute address
    @[LIB:]SYMBOL[+|-OFF] memory at a global variable, resolved like probe targets (cached per address space)
    @+OFF                 memory at a file offset of the probed module (uprobe_events' form)
    +|-[u]OFF(ARG)        memory at ARG + OFF; nestable: +0(+8(%di)):string

TYPE is one of u8..u64, s8..s64, x8..x64 (decimal, signed decimal, 0x-hex), f32 f64, char, string and
ustring (a NUL-terminated string), symbol (an address as sym+0xoff), bitfields ``b<width>@<offset>/<bits>``
and arrays ``TYPE[N]`` (N <= 64; on memory, or in an xmm register). As in the kernel, the default type
is x64 (its ``DEFAULT_FETCH_TYPE``, the native word in hex); $comm is a string, $tid a u32, $duration a
u64, $fargN an f64. A string type reads at the address the argument names (``+0(%di):string`` and
``%di:string`` both read the string %di points to); ``string[N]`` is an array of N ``char *``.

In a return probe every argument is fetched when the function returns, as in the kernel, except that
``$argN`` and ``$fargN`` are captured at the entry (the kernel's ``$argN`` on return probes): so
``+0($arg2):string`` shows a buffer the function filled. ``$entry.NAME`` evaluates the whole argument NAME
at the entry. The engine calls ``spec.fetch_entry(ev)`` at the entry (it keeps what it needs in
``ev.data``) and ``spec.fetch(ev)`` at the return.

A memory read that fails gives the value ``(fault)``, as the kernel prints it; fetch never raises.

FILTER (after the word ``if``) is an expression over the argument names, $tid, $comm, and in a return probe
$retval (an s64 here: ``$retval < 0``) and $duration: ``NAME OP LITERAL`` with == != < <= > >= (numbers
compare by the argument's type; a negative literal compares an unsigned one as signed, so an x64 ``ret``
matches ``ret == -1``), ``NAME & MASK`` (true when a bit is set), == != ~ !~ on strings (``~`` is a glob:
``$comm ~ "ba*"``), joined by ! && || and parentheses. Literals: decimal, 0x-hex, negative, decimal
floats, "double-quoted" strings (\\" and \\\\ escape). A comparison on a faulted value is false.

A malformed specification raises SpecError (a UsageError) whose message shows the spec with a caret under
the offending character, like the kernel's tracing/error_log.
"""

from __future__ import annotations

import fnmatch
import math
import re
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Tuple, Union

from .errors import TargetError, UsageError, UtraceError
from .handlers import ARG_REGS, REG_ALIASES, Handler, escape
from .kernel import ptrace_getfpregs
from .symbols import cxx_function_name, looks_cxx

if TYPE_CHECKING:
    from .handlers import Event
    from .symbols import AddressSpace

DEFAULT_GROUP = "utrace"
DEFAULT_TYPE = "x64"  # the kernel's DEFAULT_FETCH_TYPE on 64-bit: x##BITS_PER_LONG
ENTRY_KEY = "probe_entry"  # ev.data key under which fetch_entry leaves the entry values for fetch
MAX_ARGS = 128  # the kernel's MAX_TRACE_ARGS
MAX_ARRAY_LEN = 64  # the kernel's MAX_ARRAY_LEN
MAX_STRING = 4096  # bytes of one string (the kernel's MAX_STRING_SIZE, PATH_MAX)
FARG_REGS = 8  # SysV passes the first 8 floating-point arguments in xmm0-xmm7
M64 = (1 << 64) - 1

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUM_RE = re.compile(r"0[xX][0-9a-fA-F]+|[0-9]+")
_SYMBOL_CHARS = re.compile(r"[^\s()+\-:]+")  # a symbol or library name inside @...
_TYPE_LIKE = re.compile(r"(?:[usxfb][0-9]|string|ustring|symbol|char)")
_EXTRA_REGS = {
    "orig_ax": "orig_rax", "orig_rax": "orig_rax", "fs_base": "fs_base", "gs_base": "gs_base",
    "cs": "cs", "ss": "ss", "ds": "ds", "es": "es", "fs": "fs", "gs": "gs",
    **{f"e{r}": f"r{r}" for r in ("ax", "bx", "cx", "dx", "si", "di", "bp", "sp", "ip")},
}  # fmt: skip
_REGS = {**REG_ALIASES, **_EXTRA_REGS}


# --------------------------------------------------------------------------------------------- errors
class SpecError(UsageError):
    """A malformed probe specification: the reason, and the column of the offending character."""

    def __init__(self, spec: str, column: int, reason: str) -> None:
        shown = spec.replace("\t", " ").replace("\n", " ")
        column = max(0, min(column, len(shown)))
        super().__init__(f"bad probe spec: {reason}\n  {shown}\n  {' ' * column}^")
        self.spec = spec
        self.column = column
        self.reason = reason


# ---------------------------------------------------------------------------------------------- types
@dataclass(frozen=True)
class FetchType:
    """A TYPE: ``kind`` is u s x f char string symbol or bitfield; ``size`` the bytes of one element as
    stored (a string element of an array is its 8-byte pointer); ``count`` the array length, if any."""

    name: str
    kind: str
    size: int
    count: Optional[int] = None
    bit_width: int = 0
    bit_offset: int = 0

    @property
    def element(self) -> FetchType:
        if self.count is None:
            return self
        return FetchType(
            self.name.split("[", 1)[0], self.kind, self.size, None, self.bit_width, self.bit_offset
        )

    @property
    def numeric(self) -> bool:
        return self.kind in ("u", "s", "x", "char", "symbol", "bitfield")

    @property
    def bits(self) -> int:
        return self.bit_width if self.kind == "bitfield" else self.size * 8


_BASE_TYPES: Dict[str, Tuple[str, int]] = {
    **{f"{k}{b}": (k, b // 8) for k in "usx" for b in (8, 16, 32, 64)},
    "f32": ("f", 4), "f64": ("f", 8), "char": ("char", 1), "symbol": ("symbol", 8),
    "string": ("string", 8), "ustring": ("string", 8),
}  # fmt: skip
_BITFIELD_RE = re.compile(r"b([0-9]+)@([0-9]+)/([0-9]+)")


def parse_type(text: str) -> FetchType:
    """``u32``, ``string``, ``b3@2/32``, ``s16[4]`` ... -> FetchType; ValueError(reason, offset) if bad."""
    base, count = text, None
    if "[" in text:
        base, _, rest = text.partition("[")
        if not rest.endswith("]") or not rest[:-1].isdigit():
            raise _TypeError("an array type is TYPE[N] with a number N", len(base) + 1)
        count = int(rest[:-1])
        if not 0 < count <= MAX_ARRAY_LEN:
            raise _TypeError(f"array length must be 1 to {MAX_ARRAY_LEN}", len(base) + 1)
    if base in _BASE_TYPES:
        kind, size = _BASE_TYPES[base]
        return FetchType(text, kind, size, count)
    m = _BITFIELD_RE.fullmatch(base)
    if m is None:
        raise _TypeError(
            f"unknown type {base!r} (u8..u64, s8..s64, x8..x64, f32, f64, char, string, ustring, symbol, "
            "b<width>@<offset>/<container-bits>, TYPE[N])",
            0,
        )
    width, offset, container = (int(g) for g in m.groups())
    if container not in (8, 16, 32, 64):
        raise _TypeError("a bitfield container is 8, 16, 32 or 64 bits", m.start(3))
    if width == 0:
        raise _TypeError("a bitfield is at least 1 bit wide", 1)
    if width + offset > container:
        raise _TypeError(f"bitfield b{width}@{offset} does not fit in {container} bits", 1)
    return FetchType(text, "bitfield", container // 8, count, width, offset)


class _TypeError(ValueError):
    def __init__(self, reason: str, offset: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.offset = offset


# ---------------------------------------------------------------------------------------------- values
Data = Union[int, float, bytes, Tuple["Value", ...], None]


@dataclass(frozen=True)
class Value:
    """One fetched argument: ``data`` is an int (u s x char bitfield symbol), a float, the string's
    bytes, a tuple of element Values (arrays), or None when the read faulted. ``symbol`` holds the
    address of a ``symbol`` value as sym+0xoff, resolved at fetch time."""

    type: FetchType
    data: Data
    symbol: Optional[str] = None

    @property
    def fault(self) -> bool:
        return self.data is None


def format_value(value: Value) -> str:
    """The value as the kernel's trace prints it: u* decimal, s* signed decimal, x* 0x-hex, strings in
    double quotes (non-printable bytes escaped), symbol as sym+0xoff, arrays {a,b,c}, floats in the
    shortest %g form that reads back exactly; ``(fault)`` for a failed read."""
    data, t = value.data, value.type
    if data is None:
        return "(fault)"
    if isinstance(data, tuple):
        return "{" + ",".join(format_value(v) for v in data) + "}"
    if isinstance(data, bytes):
        return '"' + escape(data) + '"'
    if isinstance(data, float):
        return _format_float(data, t.size)
    if t.kind == "x":
        return f"{data:#x}"
    if t.kind == "symbol":
        return value.symbol or f"{data:#x}"
    if t.kind == "char":
        return "'" + escape(bytes([data & 0xFF])).replace("'", "\\'") + "'"
    return str(data)


def json_value(value: Value) -> Any:
    """A JSON-able form: ints as ints, strings as str, floats, lists; None for a fault; symbol and char
    values as their printed text."""
    data, t = value.data, value.type
    if data is None:
        return None
    if isinstance(data, tuple):
        return [json_value(v) for v in data]
    if isinstance(data, bytes):
        return data.decode("utf-8", "backslashreplace")
    if t.kind == "symbol" or t.kind == "char":
        return format_value(value)
    return data


def _format_float(x: float, size: int) -> str:
    if math.isnan(x) or math.isinf(x):
        return str(x)
    code = "<f" if size == 4 else "<d"
    exact = struct.pack(code, x)
    for digits in range(1, 18):
        text = f"{x:.{digits}g}"
        if struct.pack(code, float(text)) == exact:
            return text
    return repr(x)


def _decode(t: FetchType, raw: bytes) -> Value:
    """One element of numeric type ``t`` from its little-endian bytes."""
    if t.kind == "f":
        return Value(t, struct.unpack("<f" if t.size == 4 else "<d", raw[: t.size])[0])
    n = int.from_bytes(raw[: t.size], "little")
    if t.kind == "s" and n >> (t.size * 8 - 1):
        n -= 1 << (t.size * 8)
    elif t.kind == "bitfield":
        n = (n >> t.bit_offset) & ((1 << t.bit_width) - 1)
    return Value(t, n)


# ---------------------------------------------------------------------------------- fetch-argument tree
class _Ctx:
    """One evaluation: the event, and (at a return) what fetch_entry saved."""

    __slots__ = ("ev", "entry", "at_return", "_fp", "_space")

    def __init__(self, ev: Event, entry: Optional[Dict[str, Any]], at_return: bool) -> None:
        self.ev = ev
        self.entry = entry
        self.at_return = at_return
        self._fp: Optional[bytes] = None
        self._space: Optional[AddressSpace] = None

    def read(self, addr: Optional[int], size: int) -> Optional[bytes]:
        if addr is None:
            return None
        try:
            return self.ev.read(addr & M64, size)
        except (TargetError, OverflowError, ValueError):
            return None

    def read_u64(self, addr: Optional[int]) -> Optional[int]:
        raw = self.read(addr, 8)
        return None if raw is None else int.from_bytes(raw, "little")

    def read_string(self, addr: Optional[int]) -> Optional[bytes]:
        if addr is None:
            return None
        try:
            data = self.ev.thread.process.mem.read_upto(addr & M64, MAX_STRING)
        except (OSError, OverflowError, ValueError):
            return None
        if not data:
            return None
        end = data.find(b"\0")
        return data if end < 0 else data[:end]

    def xmm(self, n: int) -> Optional[bytes]:
        if self._fp is None:
            try:
                fp = ptrace_getfpregs(self.ev.tid)
            except OSError:
                return None
            self._fp = struct.pack("<64I", *fp.xmm_space)
        return self._fp[16 * n : 16 * n + 16]

    def space(self) -> Optional[AddressSpace]:
        if self._space is None:
            try:
                self._space = self.ev.thread.process.address_space()
            except (UtraceError, OSError):
                return None
        return self._space


class Node:
    """A FETCHARG's source. Memory nodes (``@...``, ``+OFF(...)``) name an address the type is read at;
    the others hold a value (8 bytes, 16 for xmm registers) the type decodes. As the operand of a
    dereference, a memory node reads 8 bytes at its address."""

    memory = False
    width = 8
    entry_only = False  # $argN / $fargN: captured at the entry in a return probe
    return_only = False  # $retval / $duration

    def __init__(self, text: str, column: int) -> None:
        self.text = text
        self.column = column

    def raw(self, ctx: _Ctx) -> Optional[bytes]:
        """The value's bytes (non-memory nodes)."""
        raise NotImplementedError

    def address(self, ctx: _Ctx) -> Optional[int]:
        """The address named (memory nodes)."""
        raise NotImplementedError

    def value(self, ctx: _Ctx) -> Optional[int]:
        """The unsigned 64-bit value as a dereference's operand."""
        if self.memory:
            return ctx.read_u64(self.address(ctx))
        raw = self.raw(ctx)
        return None if raw is None else int.from_bytes(raw[:8], "little")

    def walk(self) -> Iterator[Node]:
        yield self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.text!r})"


def _number(text: str) -> int:
    """A decimal or 0x-hex number (no octal: 010 is ten)."""
    return int(text, 16) if text[:2].lower() == "0x" else int(text, 10)


def _u64(n: Optional[int]) -> Optional[bytes]:
    return None if n is None else (n & M64).to_bytes(8, "little")


class Reg(Node):
    def __init__(self, text: str, column: int, reg: str) -> None:
        super().__init__(text, column)
        self.reg = reg  # user_regs_struct field name

    def raw(self, ctx: _Ctx) -> Optional[bytes]:
        return _u64(int(getattr(ctx.ev.regs, self.reg)))


class Xmm(Node):
    width = 16

    def __init__(self, text: str, column: int, n: int) -> None:
        super().__init__(text, column)
        self.n = n

    def raw(self, ctx: _Ctx) -> Optional[bytes]:
        return ctx.xmm(self.n)


class Arg(Node):
    """$argN (integer) or $fargN (floating point, an xmm register)."""

    entry_only = True

    def __init__(self, text: str, column: int, n: int, floating: bool) -> None:
        super().__init__(text, column)
        self.n = n
        self.floating = floating
        self.width = 16 if floating else 8
        self.key = text  # "$arg3": where fetch_entry keeps the value for the return

    def live(self, ctx: _Ctx) -> Optional[bytes]:
        if self.floating:
            return ctx.xmm(self.n - 1)
        if self.n <= len(ARG_REGS):
            return _u64(int(getattr(ctx.ev.regs, ARG_REGS[self.n - 1])))
        # at the function's entry [rsp] is the return address, the 7th argument is at rsp+8
        return _u64(ctx.read_u64(int(ctx.ev.regs.rsp) + 8 * (self.n - len(ARG_REGS))))

    def raw(self, ctx: _Ctx) -> Optional[bytes]:
        if ctx.at_return:
            return None if ctx.entry is None else ctx.entry.get(self.key)
        return self.live(ctx)


class StackSlot(Node):
    def __init__(self, text: str, column: int, n: int) -> None:
        super().__init__(text, column)
        self.n = n

    def raw(self, ctx: _Ctx) -> Optional[bytes]:
        return ctx.read(int(ctx.ev.regs.rsp) + 8 * self.n, 8)


class Special(Node):
    """$stack $tid $comm $retval $duration."""

    def __init__(self, text: str, column: int) -> None:
        super().__init__(text, column)
        self.return_only = text in ("$retval", "$duration")

    def raw(self, ctx: _Ctx) -> Optional[bytes]:
        var = self.text
        if var == "$stack":
            return _u64(int(ctx.ev.regs.rsp))
        if var == "$tid":
            return _u64(ctx.ev.tid)
        if var == "$retval":
            return _u64(ctx.ev.retval)
        if var == "$duration":
            d = ctx.ev.duration
            return None if d is None else _u64(max(0, round(d * 1e9)))
        return None  # $comm: a string only, read by fetch


class EntryRef(Node):
    """$entry.NAME: the argument NAME of the same probe, fetched at the entry."""

    def __init__(self, text: str, column: int, name: str) -> None:
        super().__init__(text, column)
        self.name = name

    def stored(self, ctx: _Ctx) -> Optional[Value]:
        return None if ctx.entry is None else ctx.entry.get(self.name)

    def raw(self, ctx: _Ctx) -> Optional[bytes]:
        value = self.stored(ctx)
        if value is None or not isinstance(value.data, int):
            return None
        return _u64(value.data)


class Absolute(Node):
    memory = True

    def __init__(self, text: str, column: int, addr: int) -> None:
        super().__init__(text, column)
        self.addr = addr

    def address(self, ctx: _Ctx) -> Optional[int]:
        return self.addr


class Global(Node):
    """@[LIB:]SYMBOL[+|-OFF], resolved through the address space (cached per address space)."""

    memory = True

    def __init__(self, text: str, column: int, target: str, offset: int) -> None:
        super().__init__(text, column)
        self.target = target
        self.offset = offset
        self._cache: Tuple[Optional[AddressSpace], Optional[int]] = (None, None)

    def address(self, ctx: _Ctx) -> Optional[int]:
        space = ctx.space()
        if space is None:
            return None
        cached_space, addr = self._cache
        if cached_space is not space:
            try:
                addr = space.resolve(self.target).address
            except (UtraceError, OSError):
                addr = None
            self._cache = (space, addr)
        return None if addr is None else addr + self.offset


class FileOffset(Node):
    """@+OFF: a file offset in the module of the probed address (uprobe_events)."""

    memory = True

    def __init__(self, text: str, column: int, offset: int) -> None:
        super().__init__(text, column)
        self.offset = offset

    def address(self, ctx: _Ctx) -> Optional[int]:
        space = ctx.space()
        module = None if space is None else space.module_at(ctx.ev.address)
        if module is None:
            return None
        try:
            return module.bias + module.elf.offset_to_vaddr(self.offset)
        except UtraceError:
            return None


class Deref(Node):
    """+OFF(ARG) / -OFF(ARG): the memory at ARG's value + OFF."""

    memory = True

    def __init__(self, text: str, column: int, offset: int, inner: Node) -> None:
        super().__init__(text, column)
        self.offset = offset
        self.inner = inner

    def address(self, ctx: _Ctx) -> Optional[int]:
        base = self.inner.value(ctx)
        return None if base is None else base + self.offset

    def walk(self) -> Iterator[Node]:
        yield self
        yield from self.inner.walk()


@dataclass
class FetchArg:
    """One ``[NAME=]ARG[:TYPE]``: ``source`` is ARG as written, ``column`` where the argument starts."""

    name: str
    source: str
    type: FetchType
    node: Node
    column: int = 0
    typed: bool = False  # the TYPE was given

    def fetch(self, ctx: _Ctx) -> Value:
        try:
            return self._fetch(ctx)
        except (UtraceError, OSError, OverflowError, ValueError, struct.error):
            return Value(self.type, None)

    def _fetch(self, ctx: _Ctx) -> Value:
        node, t = self.node, self.type
        if isinstance(node, Special) and node.text == "$comm":
            return Value(t, ctx.ev.comm.encode())
        if isinstance(node, EntryRef) and not self.typed:
            stored = node.stored(ctx)
            return stored if stored is not None else Value(t, None)
        if t.count is not None:
            return self._array(ctx)
        if t.kind == "string":
            addr = node.address(ctx) if node.memory else node.value(ctx)
            return Value(t, ctx.read_string(addr))
        raw = ctx.read(node.address(ctx), t.size) if node.memory else node.raw(ctx)
        if raw is None:
            return Value(t, None)
        return self._symbolize(_decode(t, raw), ctx)

    def _array(self, ctx: _Ctx) -> Value:
        t, node = self.type, self.node
        elem = t.element
        assert t.count is not None
        raw = ctx.read(node.address(ctx), t.size * t.count) if node.memory else node.raw(ctx)
        if raw is None:
            return Value(t, None)
        items = []
        for i in range(t.count):
            chunk = raw[i * t.size : (i + 1) * t.size]
            if elem.kind == "string":
                items.append(Value(elem, ctx.read_string(int.from_bytes(chunk, "little"))))
            else:
                items.append(self._symbolize(_decode(elem, chunk), ctx))
        return Value(t, tuple(items))

    @staticmethod
    def _symbolize(value: Value, ctx: _Ctx) -> Value:
        if value.type.kind != "symbol" or not isinstance(value.data, int):
            return value
        space = ctx.space()
        found = None if space is None else space.symbolize(value.data)
        if found is None:
            return value
        module, symbol, offset = found
        return Value(value.type, value.data, f"{symbol or module.name}+{offset:#x}")


# -------------------------------------------------------------------------------------------- filters
class Expr:
    """A filter expression node."""

    def evaluate(self, lookup: Dict[str, Value]) -> bool:
        raise NotImplementedError


@dataclass
class Or(Expr):
    parts: List[Expr]

    def evaluate(self, lookup: Dict[str, Value]) -> bool:
        return any(p.evaluate(lookup) for p in self.parts)


@dataclass
class And(Expr):
    parts: List[Expr]

    def evaluate(self, lookup: Dict[str, Value]) -> bool:
        return all(p.evaluate(lookup) for p in self.parts)


@dataclass
class Not(Expr):
    part: Expr

    def evaluate(self, lookup: Dict[str, Value]) -> bool:
        return not self.part.evaluate(lookup)


@dataclass
class Compare(Expr):
    """``field op literal``; op is one of == != < <= > >= & ~ !~."""

    field: str
    op: str
    literal: Union[int, float, str]

    def evaluate(self, lookup: Dict[str, Value]) -> bool:
        value = lookup.get(self.field)
        if value is None or value.data is None:
            return False
        data, lit = value.data, self.literal
        if isinstance(data, bytes):
            text = data.decode("utf-8", "surrogateescape")
            assert isinstance(lit, str)
            if self.op in ("~", "!~"):
                return fnmatch.fnmatchcase(text, lit) == (self.op == "~")
            return (text == lit) == (self.op == "==")
        if not isinstance(data, (int, float)) or isinstance(lit, str):
            return False
        if isinstance(data, int) and value.type.kind != "s" and isinstance(lit, (int, float)) and lit < 0:
            bits = value.type.bits  # a negative literal: compare the unsigned field as signed
            if data >> (bits - 1):
                data -= 1 << bits
        if self.op == "&":
            return isinstance(data, int) and isinstance(lit, int) and bool(data & lit)
        return _COMPARE[self.op](data, lit)


_COMPARE = {
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}  # fmt: skip


@dataclass
class Filter:
    """The ``if`` expression: ``text`` as written, ``names`` the fields it reads."""

    text: str
    expr: Expr
    names: List[str]

    def matches(self, lookup: Dict[str, Value]) -> bool:
        return self.expr.evaluate(lookup)


# ---------------------------------------------------------------------------------------------- specs
class Values(Dict[str, Value]):
    """What ``ProbeSpec.fetch`` returns: the arguments by name, in order. ``hidden`` holds the specials
    the filter reads ($tid, $comm, $retval, $duration) without being arguments."""

    hidden: Dict[str, Value]

    def __init__(self) -> None:
        super().__init__()
        self.hidden = {}


_FILTER_SPECIALS = {
    "$tid": FetchType("u32", "u", 4),
    "$comm": FetchType("string", "string", 8),
    "$retval": FetchType("s64", "s", 8),  # signed in filters: $retval < 0
    "$duration": FetchType("u64", "u", 8),
}


@dataclass
class ProbeSpec:
    """A parsed probe definition (see the module doc). ``kind`` is 'p', 'r' or '-'."""

    kind: str
    group: str
    event: str
    target: str
    args: List[FetchArg]
    filter: Optional[Filter]
    text: str
    _entry_args: List[FetchArg] = field(default_factory=list, repr=False)
    _captures: List[Arg] = field(default_factory=list, repr=False)
    _specials: Dict[str, Node] = field(default_factory=dict, repr=False)

    @property
    def needs_entry_fetch(self) -> bool:
        """A return probe whose arguments read something at the entry: call fetch_entry there."""
        return self.kind == "r" and bool(self._entry_args or self._captures)

    def fetch_entry(self, ev: Event) -> Dict[str, Any]:
        """At the function's entry (return probes): capture $argN/$fargN and the arguments $entry.NAME
        refers to. The dict is also kept in ``ev.data[ENTRY_KEY]``, where ``fetch`` finds it at the
        return."""
        ctx = _Ctx(ev, None, at_return=False)
        entry: Dict[str, Any] = {}
        for node in self._captures:
            try:
                entry[node.key] = node.live(ctx)
            except (UtraceError, OSError, OverflowError, ValueError):
                entry[node.key] = None
        for arg in self._entry_args:
            entry[arg.name] = arg.fetch(ctx)
        ev.data[ENTRY_KEY] = entry
        return entry

    def fetch(self, ev: Event, entry: Optional[Dict[str, Any]] = None) -> Values:
        """The arguments, in order, as typed Values (a fault is a Value, never an exception). In a return
        probe this runs at the return, with ``entry`` (default: what fetch_entry left in ev.data)."""
        at_return = self.kind == "r"
        if at_return and entry is None:
            entry = ev.data.get(ENTRY_KEY)
        ctx = _Ctx(ev, entry, at_return)
        out = Values()
        for arg in self.args:
            out[arg.name] = arg.fetch(ctx)
        for name, node in self._specials.items():
            out.hidden[name] = FetchArg(name, name, _FILTER_SPECIALS[name], node).fetch(ctx)
        return out

    def matches(self, values: Dict[str, Value]) -> bool:
        """Whether the filter accepts these values (what fetch returned); True without a filter."""
        if self.filter is None:
            return True
        hidden = getattr(values, "hidden", {})
        return self.filter.matches({**hidden, **values})


# --------------------------------------------------------------------------------------------- parser
def parse_spec(text: str) -> ProbeSpec:
    """Parse a probe definition; SpecError (a UsageError) with a caret for a malformed one."""
    return _SpecParser(text).parse()


class _SpecParser:
    def __init__(self, text: str) -> None:
        self.text = text

    def error(self, column: int, reason: str) -> SpecError:
        return SpecError(self.text, column, reason)

    # ------------------------------------------------------------------ the words
    def parse(self) -> ProbeSpec:
        text = self.text
        words = [(m.group(), m.start()) for m in re.finditer(r"\S+", text)]
        filter_at: Optional[int] = None
        for i, (word, col) in enumerate(words):
            if word == "if":
                filter_at = col
                words = words[:i]
                break
        if not words:
            raise self.error(0 if filter_at is None else filter_at, "empty probe definition")
        head, head_col = words[0]
        kind, group, event = "p", DEFAULT_GROUP, ""
        m = re.match(r"([pr\-])(?::|$)", head)
        if re.match(r"r[0-9]+(:|$)", head):
            raise self.error(head_col + 1, "MAXACTIVE is not supported (utrace bounds nesting itself)")
        rest = words
        if m is not None:
            kind = m.group(1)
            rest = words[1:]
            if len(head) > 1:
                group, event = self._event_name(head[2:], head_col + 2, kind)
        elif head.startswith("-"):
            raise self.error(head_col, "a removal is -:[GROUP/]EVENT")
        if kind == "-":
            if not event:
                raise self.error(head_col + len(head), "a removal needs the event name: -:[GROUP/]EVENT")
            if rest:
                raise self.error(rest[0][1], "nothing may follow -:[GROUP/]EVENT")
            if filter_at is not None:
                raise self.error(filter_at, "nothing may follow -:[GROUP/]EVENT")
            return ProbeSpec("-", group, event, "", [], None, text)
        if not rest:
            raise self.error(len(text.rstrip()) if filter_at is None else filter_at, "no probe target")
        rest = _join_cxx_target(rest)
        target, target_col = rest[0]
        if target.endswith("%return"):
            if kind == "r":
                raise self.error(target_col + len(target) - 7, "%return on an r probe")
            kind, target = "r", target[: -len("%return")]
        self._check_target(target, target_col, kind)
        if not event:
            event = _default_event(target)
        args = [self._fetcharg(word, col, i + 1, kind, target) for i, (word, col) in enumerate(rest[1:])]
        if len(args) > MAX_ARGS:
            raise self.error(rest[MAX_ARGS + 1][1], f"at most {MAX_ARGS} arguments")
        spec = ProbeSpec(kind, group, event, target, args, None, text)
        self._link(spec)
        if filter_at is not None:
            spec.filter = _FilterParser(self, filter_at + 2, spec).parse()
            for name in spec.filter.names:
                if name.startswith("$"):
                    spec._specials[name] = Special(name, 0)
        return spec

    def _event_name(self, text: str, col: int, kind: str) -> Tuple[str, str]:
        group = DEFAULT_GROUP
        if "/" in text:
            group, _, text = text.partition("/")
            self._check_name(group, col, "group")
            col += len(group) + 1
            if not text and kind == "-":
                raise self.error(col, "a removal needs the event name: -:[GROUP/]EVENT")
            if not text:
                return group, ""
        elif not text:
            raise self.error(col, "empty event name after ':'")
        self._check_name(text, col, "event")
        return group, text

    def _check_name(self, name: str, col: int, what: str) -> None:
        if not name:
            raise self.error(col, f"empty {what} name")
        m = _NAME_RE.match(name)
        end = m.end() if m else 0
        if end != len(name):
            raise self.error(
                col + end, f"bad {what} name {name!r}: letters, digits and '_', not first a digit"
            )

    def _check_target(self, target: str, col: int, kind: str) -> None:
        bad = re.search(r"[\"'=]" if looks_cxx(target) else r"[()\"'=,]", target)
        if bad or target.startswith(("%", "$", "@", "+")):
            at = bad.start() if bad else 0
            raise self.error(col + at, f"bad probe target {target!r}")
        m = re.search(r"\+(0[xX][0-9a-fA-F]+|[0-9]+)$", target)
        if kind == "r" and m is not None and _number(m.group(1)) != 0:
            raise self.error(col + m.start(), "a return probe must be on a function's entry (SYMBOL[+0])")

    # ------------------------------------------------------------------ one FETCHARG
    def _fetcharg(self, word: str, col: int, index: int, kind: str, target: str) -> FetchArg:
        name = f"arg{index}"
        body, body_col = word, col
        m = _NAME_RE.match(word)
        if m is not None:
            if m.end() == len(word) or word[m.end()] != "=":
                raise self.error(col, f"bad fetch argument {word!r}: expected NAME=ARG, %REG, $VAR, @ADDR, "
                                      "@SYMBOL or +|-OFF(ARG)")  # fmt: skip
            name = m.group()
            body, body_col = word[m.end() + 1 :], col + m.end() + 1
            if not body:
                raise self.error(body_col, f"nothing after {name}=")
        elif word[0] == "=":
            raise self.error(col, "empty argument name before '='")
        node, end = _ArgParser(self, body, body_col, kind, target).parse()
        ftype: Optional[FetchType] = None
        rest = body[end:]
        type_col = body_col + end + 1
        if rest:
            if rest[0] != ":" or len(rest) == 1:
                raise self.error(body_col + end + (1 if rest[0] == ":" else 0),
                                 "expected ':TYPE' or the end of the argument")  # fmt: skip
            try:
                ftype = parse_type(rest[1:])
            except _TypeError as err:
                raise self.error(type_col + err.offset, err.reason) from None
        typed = ftype is not None
        ftype = self._check_type(node, ftype, type_col)
        return FetchArg(name, body[:end], ftype, node, col, typed)

    def _check_type(self, node: Node, ftype: Optional[FetchType], type_col: int) -> FetchType:
        is_comm = isinstance(node, Special) and node.text == "$comm"
        if ftype is None:
            if is_comm:
                return _named_type("string")
            if isinstance(node, Special) and node.text == "$tid":
                return _named_type("u32")
            if isinstance(node, Special) and node.text == "$duration":
                return _named_type("u64")
            if isinstance(node, Arg) and node.floating:
                return _named_type("f64")
            return _named_type(DEFAULT_TYPE)
        if is_comm and (ftype.kind != "string" or ftype.count is not None):
            raise self.error(type_col, "$comm is a string: no other type")
        if ftype.count is not None and not node.memory:
            if node.width < 16:
                raise self.error(type_col + ftype.name.index("["),
                                 "an array type needs a memory argument (@ADDR, @SYMBOL, +OFF(ARG)) "
                                 "or an xmm register")  # fmt: skip
            if ftype.kind == "string" or ftype.size * ftype.count > node.width:
                raise self.error(type_col, f"{ftype.name} does not fit in the {node.width}-byte {node.text}")
        return ftype

    # ------------------------------------------------------------------ cross-argument checks
    def _link(self, spec: ProbeSpec) -> None:
        by_name: Dict[str, FetchArg] = {}
        for arg in spec.args:
            if arg.name in by_name:
                raise self.error(arg.column, f"argument name {arg.name!r} is used twice")
            by_name[arg.name] = arg
        entry_names: List[str] = []
        for arg in spec.args:
            for node in arg.node.walk():
                if (
                    isinstance(node, Arg)
                    and spec.kind == "r"
                    and all(c.key != node.key for c in spec._captures)
                ):
                    spec._captures.append(node)
                if not isinstance(node, EntryRef):
                    continue
                ref = by_name.get(node.name)
                name_col = node.column + len("$entry.")
                if ref is None:
                    raise self.error(name_col, f"no argument named {node.name!r} in this probe")
                if ref is arg:
                    raise self.error(name_col, "an argument cannot refer to its own entry value")
                for inner in ref.node.walk():
                    if inner.return_only or isinstance(inner, EntryRef):
                        raise self.error(
                            name_col, f"{node.name} reads {inner.text}, which has no value at entry"
                        )
                if node is not arg.node or arg.typed:  # dereferenced or re-typed: must be a number
                    if not ref.type.numeric or ref.type.count is not None:
                        raise self.error(node.column, f"{node.name} is a {ref.type.name}, not a number")
                if node is arg.node and not arg.typed:
                    arg.type = ref.type  # $entry.NAME alone: NAME's value, as NAME's type
                if node.name not in entry_names:
                    entry_names.append(node.name)
        spec._entry_args = [by_name[n] for n in entry_names]


def _named_type(name: str) -> FetchType:
    return parse_type(name)


def _default_event(target: str) -> str:
    """The symbol of the target (``libc:malloc+4`` -> ``malloc``), as the engine names bare probes;
    a C++ target's is its last name alone (``app::scale(int)`` -> ``scale``, where a bare probe is
    ``scale(int)``): an event name is a plain word."""
    if looks_cxx(target):
        target = cxx_function_name(target.split("+", 1)[0]).split("<", 1)[0]
    name = target.rsplit(":", 1)[-1].split("+", 1)[0]
    return name or target


def _join_cxx_target(words: List[Tuple[str, int]]) -> List[Tuple[str, int]]:
    """A C++ target's parameter list or template arguments may hold spaces (``app::f(int, long)``):
    the words up to the closing bracket are the target."""
    target, col = words[0]
    i = 1
    while i < len(words) and (target.count("(") > target.count(")") or target.count("<") > target.count(">")):
        target += " " + words[i][0]
        i += 1
    return [(target, col)] + words[i:]


class _ArgParser:
    """Recursive descent over one ARG (without NAME= and :TYPE): returns the node and where it ends."""

    def __init__(self, spec: _SpecParser, text: str, col: int, kind: str, target: str) -> None:
        self.spec = spec
        self.text = text
        self.col = col
        self.kind = kind
        self.target = target

    def error(self, pos: int, reason: str) -> SpecError:
        return self.spec.error(self.col + pos, reason)

    def parse(self) -> Tuple[Node, int]:
        return self.arg(0)

    def arg(self, pos: int) -> Tuple[Node, int]:
        text = self.text
        if pos >= len(text):
            raise self.error(pos, "missing fetch argument")
        c = text[pos]
        if c == "%":
            return self.register(pos)
        if c == "$":
            return self.variable(pos)
        if c == "@":
            return self.memory(pos)
        if c in "+-":
            return self.deref(pos)
        raise self.error(pos, "expected %REG, $VAR, @ADDR, @SYMBOL or +|-OFF(ARG)")

    def register(self, pos: int) -> Tuple[Node, int]:
        m = re.compile(r"[a-z0-9_]*").match(self.text, pos + 1)
        assert m is not None
        name = m.group()
        xmm = re.fullmatch(r"xmm([0-9]+)", name)
        if xmm is not None:
            n = int(xmm.group(1))
            if n > 15:
                raise self.error(pos + 1, f"no register {name}: xmm0 to xmm15")
            return Xmm(self.text[pos : m.end()], self.col + pos, n), m.end()
        reg = _REGS.get(name)
        if reg is None:
            raise self.error(pos + 1, f"unknown register %{name}" if name else "missing register name")
        return Reg(self.text[pos : m.end()], self.col + pos, reg), m.end()

    def variable(self, pos: int) -> Tuple[Node, int]:
        m = re.compile(r"\$([a-z]+)([0-9]*)").match(self.text, pos)
        if m is None:
            raise self.error(pos + 1, "expected a variable name after '$'")
        word, digits = m.group(1), m.group(2)
        text, col, end = m.group(), self.col + pos, m.end()
        if word == "entry" and not digits:
            if self.text.startswith(".", end):
                ref = _NAME_RE.match(self.text, end + 1)
                if ref is None:
                    raise self.error(end + 1, "expected an argument name after $entry.")
                if self.kind != "r":
                    raise self.error(pos, "$entry is only for return probes (r)")
                return EntryRef(self.text[pos : ref.end()], col, ref.group()), ref.end()
            raise self.error(end, "$entry needs an argument name: $entry.NAME")
        if word in ("arg", "farg", "stack") and digits:
            n = int(digits)
            if word == "stack":
                return StackSlot(text, col, n), end
            if n < 1:
                raise self.error(pos + len(word) + 1, f"${word}N counts from 1")
            if word == "farg" and n > FARG_REGS:
                raise self.error(pos + 5, f"$farg1 to $farg{FARG_REGS} (xmm0-xmm7) only")
            off = re.search(r"\+(0[xX][0-9a-fA-F]+|[0-9]+)$", self.target)
            if off is not None and _number(off.group(1)) != 0:
                raise self.error(pos, f"${word}N is only available at a function's entry (SYMBOL+0)")
            return Arg(text, col, n, word == "farg"), end
        if digits:
            raise self.error(pos + 1 + len(word), f"unexpected number after ${word}")
        if word in ("stack", "comm", "tid", "retval", "duration"):
            if word in ("retval", "duration") and self.kind != "r":
                raise self.error(pos, f"${word} is only for return probes (r)")
            return Special(text, col), end
        raise self.error(pos + 1, f"unknown variable ${word}: $argN, $fargN, $stackN, $stack, $comm, $tid, "
                                  "$retval, $duration, $entry.NAME")  # fmt: skip

    def memory(self, pos: int) -> Tuple[Node, int]:
        text, start = self.text, pos + 1
        col = self.col + pos
        if text.startswith("+", start):
            m = _NUM_RE.match(text, start + 1)
            if m is None:
                raise self.error(start + 1, "expected a file offset after @+")
            return FileOffset(text[pos : m.end()], col, _number(m.group())), m.end()
        m = _NUM_RE.match(text, start)
        if m is not None and (m.end() == len(text) or text[m.end()] in ":)"):
            return Absolute(text[pos : m.end()], col, _number(m.group())), m.end()
        if m is not None and text[start:].lower().startswith("0x"):
            raise self.error(m.end(), "bad address")
        # [LIB:]SYMBOL: a ':' ends the symbol when what follows is a type (@var:u32), else names a library
        m = _SYMBOL_CHARS.match(text, start)
        if m is None:
            raise self.error(start, "expected an address or a symbol after '@'")
        end = m.end()
        if text.startswith(":", end) and not _TYPE_LIKE.match(text, end + 1):
            lib_end = end
            m = _SYMBOL_CHARS.match(text, end + 1)
            if m is None:
                raise self.error(end + 1, "expected a symbol after LIB:")
            end = m.end()
            if text[start:lib_end] == "" or not re.match(r"[A-Za-z_.$]", text[lib_end + 1]):
                raise self.error(lib_end + 1, "expected a symbol name")
        elif not re.match(r"[A-Za-z_.$]", text[start]):
            raise self.error(start, "expected an address or a symbol after '@'")
        target = text[start:end]
        offset = 0
        if end < len(text) and text[end] in "+-":
            n = _NUM_RE.match(text, end + 1)
            if n is None:
                raise self.error(end + 1, "expected an offset")
            offset = _number(n.group()) * (-1 if text[end] == "-" else 1)
            end = n.end()
        return Global(text[pos:end], col, target, offset), end

    def deref(self, pos: int) -> Tuple[Node, int]:
        text = self.text
        sign = -1 if text[pos] == "-" else 1
        start = pos + 1
        if text.startswith("u", start):  # +u: user-space dereference; the same thing here
            start += 1
        m = _NUM_RE.match(text, start)
        if m is None:
            raise self.error(start, "expected an offset: +|-OFF(ARG)")
        if not text.startswith("(", m.end()):
            raise self.error(m.end(), "expected '(' after the offset: +|-OFF(ARG)")
        inner, end = self.arg(m.end() + 1)
        if isinstance(inner, Special) and inner.text == "$comm":
            raise self.error(m.end() + 1, "$comm is a string, not an address")
        if not text.startswith(")", end):
            raise self.error(end, "expected ')'" if end < len(text) else "missing ')'")
        node = Deref(text[pos : end + 1], self.col + pos, sign * _number(m.group()), inner)
        return node, end + 1


# ------------------------------------------------------------------------------------- filter parser
_FILTER_TOKEN = re.compile(
    r"""\s*(?:
        (?P<op>&&|\|\||==|!=|<=|>=|!~|[<>&~!()])
      | (?P<num>-?(?:0[xX][0-9a-fA-F]+|[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?))
      | (?P<str>")
      | (?P<name>\$?[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)


class _FilterParser:
    """``expr := and ('||' and)*; and := unary ('&&' unary)*; unary := '!' unary | '(' expr ')' | pred;
    pred := FIELD OP LITERAL | FIELD '&' NUMBER``."""

    def __init__(self, spec: _SpecParser, start: int, probe: ProbeSpec) -> None:
        self.spec = spec
        self.text = spec.text
        self.pos = start
        self.probe = probe
        self.fields: Dict[str, FetchType] = {a.name: a.type for a in probe.args}
        for name, t in _FILTER_SPECIALS.items():
            if name in ("$tid", "$comm") or probe.kind == "r":
                self.fields[name] = t
        self.names: List[str] = []

    def error(self, pos: int, reason: str) -> SpecError:
        return self.spec.error(pos, reason)

    def parse(self) -> Filter:
        start = self.pos
        while start < len(self.text) and self.text[start].isspace():
            start += 1
        if start >= len(self.text):
            raise self.error(start, "empty filter after 'if'")
        expr = self.or_expr()
        kind, _, col = self.peek()
        if kind != "end":
            raise self.error(col, "expected && or || or the end of the filter")
        return Filter(self.text[start:].strip(), expr, self.names)

    # tokens: (kind, text, column); kind is op, num, str, name or end
    def peek(self) -> Tuple[str, str, int]:
        m = _FILTER_TOKEN.match(self.text, self.pos)
        if m is None or m.lastgroup is None:
            rest = self.text[self.pos :]
            col = self.pos + len(rest) - len(rest.lstrip())
            if col >= len(self.text):
                return ("end", "", col)
            raise self.error(col, f"unexpected {self.text[col]!r} in the filter")
        return (m.lastgroup, m.group(m.lastgroup), m.start(m.lastgroup))

    def take(self) -> Tuple[str, str, int]:
        kind, text, col = self.peek()
        if kind == "str":
            return kind, self.string(col), col
        if kind != "end":
            self.pos = col + len(text)
        return kind, text, col

    def string(self, col: int) -> str:
        out: List[str] = []
        i = col + 1
        while i < len(self.text):
            c = self.text[i]
            if c == '"':
                self.pos = i + 1
                return "".join(out)
            if c == "\\" and i + 1 < len(self.text):
                i += 1
                c = self.text[i]
            out.append(c)
            i += 1
        raise self.error(col, "unterminated string")

    def or_expr(self) -> Expr:
        parts = [self.and_expr()]
        while self.peek()[1] == "||" and self.peek()[0] == "op":
            self.take()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else Or(parts)

    def and_expr(self) -> Expr:
        parts = [self.unary()]
        while self.peek()[1] == "&&" and self.peek()[0] == "op":
            self.take()
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else And(parts)

    def unary(self) -> Expr:
        kind, text, col = self.peek()
        if kind == "op" and text == "!":
            self.take()
            return Not(self.unary())
        if kind == "op" and text == "(":
            self.take()
            expr = self.or_expr()
            kind, text, col = self.peek()
            if not (kind == "op" and text == ")"):
                raise self.error(col, "expected ')'")
            self.take()
            return expr
        return self.predicate()

    def predicate(self) -> Expr:
        kind, name, col = self.take()
        if kind == "end":
            raise self.error(col, "expected a field name")
        if kind != "name":
            raise self.error(
                col, "expected a field name (an argument's name, $tid, $comm, $retval, $duration)"
            )
        t = self.fields.get(name)
        if t is None:
            known = ", ".join(self.fields)
            raise self.error(col, f"no field {name!r} (known: {known})")
        op_kind, op, op_col = self.take()
        if op_kind != "op" or op not in ("==", "!=", "<", "<=", ">", ">=", "&", "~", "!~"):
            raise self.error(op_col, "expected == != < <= > >= & ~ or !~")
        lit_kind, lit_text, lit_col = self.take()
        if lit_kind not in ("num", "str"):
            raise self.error(lit_col, 'expected a number or a "string"')
        literal: Union[int, float, str]
        if t.count is not None:
            raise self.error(col, f"{name} is an array ({t.name}): it cannot be compared")
        if t.kind == "string":
            if lit_kind != "str":
                raise self.error(lit_col, f'{name} is a string: compare it with a "string"')
            if op not in ("==", "!=", "~", "!~"):
                raise self.error(op_col, "strings compare with == != ~ (glob) !~ only")
            literal = lit_text
        else:
            if lit_kind != "num":
                raise self.error(lit_col, f"{name} is a number ({t.name}): compare it with a number")
            if op in ("~", "!~"):
                raise self.error(op_col, "~ (glob) is for strings")
            digits = lit_text.lstrip("-")
            if re.fullmatch(r"0[xX][0-9a-fA-F]+|[0-9]+", digits):
                literal = _number(digits) * (-1 if lit_text.startswith("-") else 1)
            else:
                literal = float(lit_text)
            if op == "&" and (not isinstance(literal, int) or t.kind == "f"):
                raise self.error(op_col if t.kind == "f" else lit_col, "& tests the bits of integers")
        if name not in self.names:
            self.names.append(name)
        return Compare(name, op, literal)


__all__ = [
    "ProbeSpec", "FetchArg", "FetchType", "Filter", "Value", "Values", "SpecError",
    "parse_spec", "parse_type", "format_value", "json_value", "DEFAULT_GROUP", "DEFAULT_TYPE", "ENTRY_KEY",
]  # fmt: skip


class SpecHandler(Handler):
    """A probe definition's fetch arguments and filter (``p:grp/ev malloc size=$arg1:u64 if size > 64``):
    the values are fetched at each hit (or return, for ``r`` probes) and printed when the filter
    passes; events that fail the filter are neither printed nor counted in summaries."""

    def __init__(self, spec: ProbeSpec) -> None:
        self.spec = spec

    def on_entry(self, event: Event) -> None:
        if self.spec.kind == "r":
            if self.spec.needs_entry_fetch:
                self.spec.fetch_entry(event)
            return
        self._emit(event)

    def on_return(self, event: Event) -> None:
        self._emit(event)

    def _emit(self, event: Event) -> None:
        values = self.spec.fetch(event)
        if not self.spec.matches(values):
            return
        fields = [(name, json_value(v), format_value(v)) for name, v in values.items()]
        self.output.emit(self.output.record(event, fields))
