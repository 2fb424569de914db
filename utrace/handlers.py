"""Handlers: the Handler base class, the event a hit hands to it, and the predefined GETREGS.

An event's live views (registers, memory) are valid only while the thread is stopped, that is,
during the handler call; ``Event.snapshot()`` turns it into plain data to keep.
"""

from __future__ import annotations

import struct
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Type

from .errors import TargetError, UsageError

if TYPE_CHECKING:
    from .engine import Probe, Thread
    from .output import Output

ARG_REGS = ("rdi", "rsi", "rdx", "rcx", "r8", "r9")
GP_REGS = (
    "rax",
    "rbx",
    "rcx",
    "rdx",
    "rsi",
    "rdi",
    "rbp",
    "rsp",
    "r8",
    "r9",
    "r10",
    "r11",
    "r12",
    "r13",
    "r14",
    "r15",
    "rip",
    "eflags",
)


class Event:
    """One probe hit, seen from inside a handler."""

    __slots__ = ("thread", "probe", "timestamp", "address", "data", "retval")

    def __init__(self, thread: Thread, probe: Probe, timestamp: float, address: int) -> None:
        self.thread = thread
        self.probe = probe
        self.timestamp = timestamp  # seconds since the tracer started
        self.address = address
        self.data: Dict[str, Any] = {}
        self.retval: Optional[int] = None

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
    def regs(self) -> Any:
        """The thread's registers (a ctypes user_regs_struct); assignments are written back on resume."""
        return self.thread.regs

    @property
    def symbol(self) -> str:
        return self.probe.where

    def arg(self, n: int) -> int:
        """The Nth integer argument (1-based) under the SysV ABI, past the sixth read from the stack."""
        if n < 1:
            raise ValueError("arguments are numbered from 1")
        if n <= 6:
            return int(getattr(self.thread.regs, ARG_REGS[n - 1]))
        # at function entry [rsp] is the return address, the 7th argument is at rsp+8
        raw = self.read(self.thread.regs.rsp + 8 * (n - 6), 8)
        return int(struct.unpack("<Q", raw)[0])

    @property
    def args(self) -> list[int]:
        regs = self.thread.regs
        return [int(getattr(regs, r)) for r in ARG_REGS]

    def read(self, addr: int, size: int) -> bytes:
        try:
            return self.thread.process.mem.read(addr, size)
        except OSError as err:
            raise TargetError(
                f"cannot read {size} bytes at {addr:#x} in process {self.pid}: {err.strerror}"
            ) from err

    def read_string(self, addr: int, max_len: int = 256) -> bytes:
        """A NUL-terminated string (without the NUL), at most ``max_len`` bytes."""
        data = self.thread.process.mem.read_upto(addr, max_len)
        end = data.find(b"\0")
        return data if end < 0 else data[:end]

    def snapshot(self) -> Dict[str, Any]:
        """Plain data to keep after the handler returns."""
        regs = self.thread.regs
        return {
            "pid": self.pid,
            "tid": self.tid,
            "comm": self.comm,
            "timestamp": self.timestamp,
            "probe": self.probe.name,
            "address": self.address,
            "symbol": self.symbol,
            "regs": {r: int(getattr(regs, r)) for r in GP_REGS},
            "data": dict(self.data),
            "retval": self.retval,
        }


class Handler:
    """Base class of probe handlers: override on_entry (and on_return for return probes)."""

    def on_entry(self, event: Event) -> None:
        pass

    def on_return(self, event: Event) -> None:
        pass

    def attach_output(self, output: Output) -> None:
        """Called once by the tracer with the trace output the handler may write lines to."""
        self.output = output


class GetRegs(Handler):
    """GETREGS: one line per hit in the kernel probe tracer's style, with the six argument registers
    (or every general-purpose register with ``all_regs``)."""

    def __init__(self, all_regs: bool = False) -> None:
        self.all_regs = all_regs

    def on_entry(self, event: Event) -> None:
        regs = event.thread.regs
        if self.all_regs:
            fields = " ".join(f"{r}={getattr(regs, r):#x}" for r in GP_REGS)
        else:
            fields = (
                f"arg1={regs.rdi:#x} arg2={regs.rsi:#x} arg3={regs.rdx:#x} "
                f"arg4={regs.rcx:#x} arg5={regs.r8:#x} arg6={regs.r9:#x}"
            )
        self.output.event_line(event, fields)


_REGISTRY: Dict[str, Callable[..., Handler]] = {"GETREGS": GetRegs}


def register_handler(name: str, factory: Callable[..., Handler] | Type[Handler]) -> None:
    """Make a handler class selectable by name (``-H NAME``, probe specs)."""
    _REGISTRY[name.upper()] = factory


def make_handler(spec: str) -> Handler:
    """``NAME[:ARG[:ARG...]]`` -> a handler instance; UsageError for unknown names."""
    name, _, rest = spec.partition(":")
    factory = _REGISTRY.get(name.upper())
    if factory is None:
        raise UsageError(f"unknown handler {name!r}; known handlers: {', '.join(sorted(_REGISTRY))}")
    args = rest.split(":") if rest else []
    try:
        return factory(*args)
    except TypeError as err:
        raise UsageError(f"bad arguments for handler {name}: {err}") from err


def now() -> float:
    return time.monotonic()


__all__ = ["Event", "Handler", "GetRegs", "register_handler", "make_handler"]
