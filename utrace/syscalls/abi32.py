"""The i386 ABI (``int $0x80``, from a 64-bit or a 32-bit program): which of its calls the x86-64
decoders can show.

An i386 call has its own number and 32-bit arguments. When its arguments are only numbers,
descriptors, flags, strings and plain buffers, their meaning is the same as in the x86-64 call of the
same name, so that call's decoders print it (signed arguments sign-extended from 32 bits). Calls
with a struct or a pointer-sized field (stat, sigaction, iovec, timespec, ...), and the i386 calls
that differ from their x86-64 namesake (old_mmap and old_select take a struct), are shown raw.
"""

from __future__ import annotations

import functools
from typing import Optional, Tuple

from ._table import SYSCALL_NAMES
from ._table32 import I386_SYSCALL_NAMES, UNIFIED_FROM
from .fmt import s32
from .groups import SYSCALL_NUMBERS
from .signatures import prototype

# argument kinds whose meaning does not depend on the ABI's word size or struct layouts
LAYOUT_FREE_KINDS = frozenset(
    "fd dirfd path str ibuf obuf d u x lu ld p addr F E mode oflags omode accmode oflags_noacc pid uid "
    "sig".split()
)
SIGNED_KINDS = frozenset({"d", "ld", "fd", "dirfd", "pid"})
# i386 calls that share a name with an x86-64 call but not its arguments
DIFFERENT_ARGUMENTS = frozenset({"mmap", "select"})


def i386_name(nr: int) -> str:
    """The name of i386 call ``nr``: its own table below 424, x86-64's from there on (new calls have
    one number on every architecture)."""
    name = I386_SYSCALL_NAMES.get(nr) if nr < UNIFIED_FROM else SYSCALL_NAMES.get(nr)
    return name or f"syscall_{nr:#x}"


@functools.cache
def x86_64_twin(name: str) -> Optional[Tuple[int, Tuple[bool, ...]]]:
    """(the x86-64 number whose decoders show i386 call ``name``, which arguments are signed), or
    None when it must be shown raw."""
    nr = SYSCALL_NUMBERS.get(name)
    specs = prototype(name)
    if nr is None or specs is None or name in DIFFERENT_ARGUMENTS:
        return None
    if any(spec.kind not in LAYOUT_FREE_KINDS for spec in specs):
        return None
    return nr, tuple(spec.kind in SIGNED_KINDS for spec in specs)


def widen(args: Tuple[int, ...], signed: Tuple[bool, ...]) -> Tuple[int, ...]:
    """32-bit arguments as the x86-64 decoders expect them: signed ones sign-extended to 64 bits."""
    return tuple(
        s32(value) & 0xFFFFFFFFFFFFFFFF if i < len(signed) and signed[i] else value & 0xFFFFFFFF
        for i, value in enumerate(args)
    )
