"""One system call as the tracer saw it: plain data, valid after the thread has moved on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence, Tuple


@dataclass
class SyscallRecord:
    """A system call's entry and exit.

    ``copy_from_user`` holds the user memory the kernel reads (strings, input buffers and structs),
    captured at entry; ``copy_to_user`` the memory it writes (output buffers sized by the result,
    structs), captured at exit. Both are ``(address, bytes)`` pairs, the formatter finds them by
    address. ``ret`` is the raw kernel value: negative errno for errors, None while unfinished (or
    for calls that do not return, such as exit_group). ``injected`` says why a call was denied or
    emulated instead of executed.
    """

    pid: int
    tid: int
    nr: int
    name: str
    args: Tuple[int, ...]
    timestamp: float
    copy_from_user: Sequence[Tuple[int, bytes]]
    copy_to_user: Sequence[Tuple[int, bytes]] = field(default_factory=list)
    ret: Optional[int] = None
    injected: Optional[str] = None
    abi: Optional[str] = None  # "i386" for an int $0x80 call (its nr is i386's); None: x86-64

    @property
    def finished(self) -> bool:
        return self.ret is not None

    @property
    def is_error(self) -> bool:
        """The kernel's IS_ERR_VALUE: -4095..-1 are errors, other negative values are results."""
        return self.ret is not None and -4096 < self.ret < 0

    @property
    def errno(self) -> Optional[int]:
        return -self.ret if self.is_error and self.ret is not None else None
