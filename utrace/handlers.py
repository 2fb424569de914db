"""Handlers: the Handler base class, the event a hit hands to it, and the predefined handlers
GETREGS, GETDATA and STACKTRACE.

An event's live views (registers, memory, the stack) are valid only while the thread is stopped,
that is, during the handler call; ``Event.snapshot()`` turns it into plain data to keep.
"""

from __future__ import annotations

import re
import struct
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Type

from .errors import TargetError, UsageError

if TYPE_CHECKING:
    from .engine import Probe, Thread, Tracer
    from .output import Output
    from .unwind import Frame

ARG_REGS = ("rdi", "rsi", "rdx", "rcx", "r8", "r9")
GP_REGS = (
    "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
    "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip", "eflags",
)  # fmt: skip
# register spellings a user may give: rdi/di/edi all name rdi
REG_ALIASES = {r: r for r in GP_REGS}
REG_ALIASES.update({"di": "rdi", "si": "rsi", "dx": "rdx", "cx": "rcx", "ax": "rax", "bx": "rbx",
                    "bp": "rbp", "sp": "rsp", "ip": "rip", "flags": "eflags"})  # fmt: skip


class Event:
    """One probe hit (entry) or one return of a return-probed function, seen from a handler."""

    __slots__ = ("thread", "probe", "timestamp", "address", "data", "retval", "t_entry", "want_return")

    def __init__(self, thread: Thread, probe: Probe, timestamp: float, address: int) -> None:
        self.thread = thread
        self.probe = probe
        self.timestamp = timestamp  # time.monotonic() of the stop
        self.address = address  # the probed instruction
        self.data: Dict[str, Any] = {}  # saved at entry, handed to the return handler
        self.retval: Optional[int] = None  # return events: rax as the function returned it
        self.t_entry: Optional[float] = None  # return events: the entry's timestamp
        self.want_return = True  # an entry handler of a return probe may set False: no return event

    @property
    def pid(self) -> int:
        return self.thread.process.pid

    @property
    def tid(self) -> int:
        return self.thread.tid

    @property
    def comm(self) -> str:
        return self.thread.comm

    @property
    def is_return(self) -> bool:
        return self.t_entry is not None

    @property
    def duration(self) -> Optional[float]:
        """Seconds from the call to its return (return events)."""
        return None if self.t_entry is None else self.timestamp - self.t_entry

    @property
    def regs(self) -> Any:
        """The thread's registers (a ctypes user_regs_struct). Assignments take effect when the thread
        resumes: change an argument at entry (``ev.regs.rdi = 0``) or the result at return
        (``ev.regs.rax = -1``)."""
        return self.thread.regs

    @property
    def symbol(self) -> str:
        """Where the probe is, e.g. ``libc.so.6:malloc+0x0``."""
        return self.probe.where

    def arg(self, n: int) -> int:
        """The Nth integer argument (1-based) under the SysV ABI; past the sixth, from the stack.
        Only meaningful at a function's entry."""
        if n < 1:
            raise ValueError("arguments are numbered from 1")
        if n <= 6:
            return int(getattr(self.thread.regs, ARG_REGS[n - 1]))
        # at function entry [rsp] is the return address, the 7th argument is at rsp+8
        return self.read_u64(self.thread.regs.rsp + 8 * (n - 6))

    @property
    def args(self) -> List[int]:
        """The six register arguments (rdi, rsi, rdx, rcx, r8, r9); ``arg(n)`` reaches further."""
        regs = self.thread.regs
        return [int(getattr(regs, r)) for r in ARG_REGS]

    def read(self, addr: int, size: int) -> bytes:
        try:
            return self.thread.process.mem.read(addr, size)
        except OSError as err:
            raise TargetError(
                f"cannot read {size} bytes at {addr:#x} in process {self.pid}: {err.strerror or err}"
            ) from err

    def read_u64(self, addr: int) -> int:
        return int(struct.unpack("<Q", self.read(addr, 8))[0])

    def read_string(self, addr: int, max_len: int = 256) -> bytes:
        """A NUL-terminated string (without the NUL), at most ``max_len`` bytes."""
        data = self.thread.process.mem.read_upto(addr, max_len)
        end = data.find(b"\0")
        return data if end < 0 else data[:end]

    def stack(self, depth: int = 64) -> List[Frame]:
        """The user stack at this stop, innermost first, from .eh_frame CFI (see utrace.unwind)."""
        return self.thread.process.unwinder(self.thread).unwind(self.thread.regs, max_depth=depth)

    def snapshot(self) -> Dict[str, Any]:
        """Plain data to keep after the handler returns."""
        regs = self.thread.regs
        return {
            "pid": self.pid, "tid": self.tid, "comm": self.comm, "timestamp": self.timestamp,
            "probe": self.probe.name, "address": self.address, "symbol": self.symbol,
            "regs": {r: int(getattr(regs, r)) for r in GP_REGS},
            "data": dict(self.data), "retval": self.retval, "duration": self.duration,
        }  # fmt: skip


class Handler:
    """Base class of probe handlers: override on_entry (and on_return for return probes)."""

    output: Output

    def on_entry(self, event: Event) -> None:
        pass

    def on_return(self, event: Event) -> None:
        pass

    def attach_output(self, output: Output) -> None:
        """Called by the tracer with the trace output the handler may write lines to."""
        self.output = output


class Plugin(Handler):
    """A ready-made tool (handlers/*.py): it adds the probes it needs and reports at the end.

    ``utrace --handler PATH.py[:Class] [PROBE...] -- CMD`` instantiates the class, calls
    ``install(tracer, probes)`` with the PROBEs of the command line, runs the target, then calls
    ``finish()`` (at exit or detach).
    """

    def install(self, tracer: Tracer, targets: Sequence[str]) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        pass


class GetRegs(Handler):
    """GETREGS: one line per hit in the kernel probe tracer's layout, with the six argument
    registers (or every general-purpose register with ``all_regs``); returns show the value."""

    def __init__(self, all_regs: Any = False) -> None:
        self.all_regs = all_regs not in (False, "0", "", "no")

    def on_entry(self, event: Event) -> None:
        regs = event.thread.regs
        out = self.output
        if not self.all_regs and out.fmt == "text" and out.time_mode == "start":
            # the default, on the hot path: one f-string instead of a Record (a hit costs ~20 µs)
            out.line(
                f"{event.thread.comm}-{event.thread.tid} {event.timestamp - out.t0:.6f}: {event.probe.name}: "
                f"({event.probe.where}) arg1={regs.rdi:#x} arg2={regs.rsi:#x} arg3={regs.rdx:#x} "
                f"arg4={regs.rcx:#x} arg5={regs.r8:#x} arg6={regs.r9:#x}"
            )
            return
        if self.all_regs:
            values = [(r, int(getattr(regs, r))) for r in GP_REGS]
        else:
            values = [(f"arg{i + 1}", int(getattr(regs, r))) for i, r in enumerate(ARG_REGS)]
        out.emit(out.record(event, [(name, v, f"{v:#x}") for name, v in values]))

    def on_return(self, event: Event) -> None:
        value = event.retval or 0
        self.output.emit(self.output.record(event, [("retval", value, f"{value:#x}")]))


_SOURCE = re.compile(
    r"(?:arg(?P<arg>[1-9]\d*)|stack(?P<stack>\d+)|(?P<addr>0x[0-9a-fA-F]+)|%?(?P<reg>[a-z0-9]+))$"
)


def parse_source(text: str) -> Callable[[Event], int]:
    """Where an address comes from: ``argN``, ``stackN`` (the Nth 8-byte slot above rsp), a register
    (``rdi``, ``%di``), or an absolute ``0xADDR``. UsageError otherwise."""
    m = _SOURCE.match(text)
    if m is None:
        raise UsageError(f"bad address source {text!r}: use argN, stackN, a register name or 0xADDRESS")
    if m["arg"]:
        n = int(m["arg"])
        return lambda ev: ev.arg(n)
    if m["stack"]:
        n = int(m["stack"])
        return lambda ev: ev.read_u64(ev.regs.rsp + 8 * n)
    if m["addr"]:
        value = int(m["addr"], 16)
        return lambda ev: value
    reg = REG_ALIASES.get(m["reg"])
    if reg is not None:
        return lambda ev: int(getattr(ev.regs, reg))
    low32 = _REG32.get(m["reg"])  # edi, r8d, ...: the low 32 bits (a non-PIE address fits)
    if low32 is None:
        raise UsageError(f"bad address source {text!r}: use argN, stackN, a register name or 0xADDRESS")
    return lambda ev: int(getattr(ev.regs, low32)) & 0xFFFFFFFF


_REG32 = {"e" + r[1:]: r for r in ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp")}
_REG32.update({f"r{n}d": f"r{n}" for n in range(8, 16)})


class GetData(Handler):
    """GETDATA:SOURCE:LENGTH — memory at an address taken from an argument, register, stack slot or
    absolute address: LENGTH bytes as a hex+ASCII dump, or ``str`` (``str:MAX``) for a C string
    printed as escaped text. At a return probe the address is read again at return time."""

    def __init__(self, source: str = "", length: str = "64", max_len: str = "256") -> None:
        if not source:
            raise UsageError("GETDATA needs an address source: GETDATA:arg2:64, GETDATA:rdi:str, ...")
        self.fetch = parse_source(source)
        self.source = source
        self.string = length in ("str", "string")
        try:
            self.length = int(max_len if self.string else length, 0)
        except ValueError:
            raise UsageError(f"GETDATA length must be a number of bytes or 'str', not {length!r}") from None
        if not 0 < self.length <= 1 << 20:
            raise UsageError("GETDATA length must be between 1 and 1048576 bytes")

    def on_entry(self, event: Event) -> None:
        addr = self.fetch(event)
        out = self.output
        if self.string:
            raw = event.read_string(addr, self.length + 1)  # one byte more: was it cut?
            cut = len(raw) > self.length
            raw = raw[: self.length]
            fields = [
                (self.source, addr, f"{addr:#x}"),
                ("string", raw.decode("utf-8", "replace"), f'"{escape(raw)}"' + ("..." if cut else "")),
            ]
            out.emit(out.record(event, fields))
            return
        data = event.thread.process.mem.read_upto(addr, self.length)
        dump = "\n".join(["", *hexdump(data, addr)])
        fields = [
            (self.source, addr, f"{addr:#x}"),
            ("len", len(data), str(len(data))),
            ("data", data.hex(), dump),
        ]
        out.emit(out.record(event, fields))


def escape(data: bytes) -> str:
    """A C string as strace prints it: \\n \\t \\" \\\\ and octal escapes for other bytes."""
    out = []
    for b in data:
        ch = chr(b)
        if ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch in '"\\':
            out.append("\\" + ch)
        elif 32 <= b < 127:
            out.append(ch)
        else:
            out.append(f"\\{b:o}")
    return "".join(out)


def hexdump(data: bytes, addr: int) -> List[str]:
    """``ADDR  hh hh ... |ascii|`` lines of 16 bytes, like ``xxd``/``hexdump -C``."""
    lines = []
    for off in range(0, len(data), 16):
        chunk = data[off : off + 16]
        hexpart = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"    {addr + off:016x}  {hexpart:<47}  |{text}|")
    return lines


class StackTrace(Handler):
    """STACKTRACE[:DEPTH] — the user stack at the hit, one frame a line:
    ``#N  0xADDR symbol+off (module) file:line``."""

    def __init__(self, depth: str = "32") -> None:
        try:
            self.depth = int(depth)
        except ValueError:
            raise UsageError(f"STACKTRACE depth must be a number, not {depth!r}") from None
        if self.depth < 1:
            raise UsageError("STACKTRACE depth must be at least 1")

    def on_entry(self, event: Event) -> None:
        self.output.emit(self.output.record(event, [], stack=event.stack(self.depth)))

    on_return = on_entry


_REGISTRY: Dict[str, Callable[..., Handler]] = {
    "GETREGS": GetRegs,
    "GETDATA": GetData,
    "STACKTRACE": StackTrace,
}


def register_handler(name: str, factory: Callable[..., Handler] | Type[Handler]) -> None:
    """Make a handler class selectable by name (``-H NAME[:ARGS]``)."""
    _REGISTRY[name.upper()] = factory


def make_handler(spec: str) -> Handler:
    """``NAME[:ARG[:ARG...]]`` -> a handler instance; UsageError for unknown names or bad args."""
    name, _, rest = spec.partition(":")
    factory = _REGISTRY.get(name.upper())
    if factory is None:
        raise UsageError(f"unknown handler {name!r}; known handlers: {', '.join(sorted(_REGISTRY))}")
    args = rest.split(":") if rest else []
    try:
        return factory(*args)
    except TypeError as err:
        raise UsageError(f"bad arguments for handler {name}: {err}") from err


__all__ = [
    "Event", "Handler", "Plugin", "GetRegs", "GetData", "StackTrace", "register_handler",
    "make_handler",
]  # fmt: skip
