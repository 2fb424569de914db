"""System calls: the x86-64 table, strace's classes, argument capture and strace-style rendering.

The engine (ptrace syscall stops) and the in-process SIGSYS mode build :class:`SyscallRecord`s with
:func:`capture_entry` and :func:`capture_exit`, which copy the user memory the kernel reads and
writes (:func:`has_exit_capture`: whether a call can write any); :func:`format_call` and friends
print them as strace does, :func:`format_raw` as hex.

Layout: ``_table`` (generated numbers and names), ``groups`` (classes, ``-e trace=`` sets),
``signatures`` (argument kinds per call), ``capture`` (memory per kind), ``structs`` (parsing of
kernel structures), ``xlat`` (flag and enum names), ``decoders``/``fmt``/``render`` (display).
"""

from __future__ import annotations

from ._table import SYSCALL_NAMES
from .abi32 import i386_name
from .capture import capture_entry, capture_exit, has_exit_capture, readers_for
from .decoders import open_flags
from .groups import GROUPS, SYSCALL_NUMBERS, parse_syscall_set
from .record import SyscallRecord
from .render import format_call, format_entry, format_raw, format_resumed

__all__ = [
    "GROUPS",
    "SYSCALL_NAMES",
    "SYSCALL_NUMBERS",
    "SyscallRecord",
    "capture_entry",
    "capture_exit",
    "format_call",
    "format_entry",
    "format_raw",
    "format_resumed",
    "has_exit_capture",
    "i386_name",
    "open_flags",
    "parse_syscall_set",
    "readers_for",
]
