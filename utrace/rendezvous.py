"""The dynamic linker's debugger interface (r_debug / link_map, <link.h>): which libraries are
loaded, in which order, and when that changes (dlopen, dlclose).

ld.so calls ``r_brk`` (``_dl_debug_state``, a bare ``ret``) with ``r_state`` = RT_ADD or RT_DELETE
before it maps or unmaps libraries and with RT_CONSISTENT after; relocation and the new libraries'
constructors come only after the RT_CONSISTENT call. utrace probes r_brk and arms pending probes at
each RT_CONSISTENT stop, so they are in place before any code of a new library runs.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import List, Optional

from .kernel import ProcMem
from .symbols import AddressSpace

RT_CONSISTENT = 0
RT_ADD = 1
RT_DELETE = 2

# struct r_debug: int r_version @0; struct link_map *r_map @8; ElfW(Addr) r_brk @16;
# enum r_state @24; ElfW(Addr) r_ldbase @32.
R_MAP, R_BRK, R_STATE = 8, 16, 24
# struct link_map: l_addr @0, char *l_name @8, l_ld @16, l_next @24, l_prev @32.
L_NAME, L_NEXT = 8, 24
MAX_LINK_MAP = 4096  # a bound on the walk, against a corrupted list


@dataclass(frozen=True)
class Rendezvous:
    """Where the dynamic linker's r_debug and r_brk are in one process."""

    r_debug: int
    r_brk: int


def locate(space: AddressSpace) -> Optional[Rendezvous]:
    """r_debug and r_brk from the dynamic linker's exported symbols (``_r_debug``,
    ``_dl_debug_state``), or a static executable's own; None when there is no dynamic linker."""
    for module in [*reversed(space.modules)]:
        r_debug = [s for s in module.elf.lookup("_r_debug") if s.value]
        r_brk = [s for s in module.elf.lookup("_dl_debug_state") if s.value]
        if r_debug and r_brk:
            return Rendezvous(module.bias + r_debug[0].value, module.bias + r_brk[0].value)
    return None


def state(mem: ProcMem, rv: Rendezvous) -> int:
    return int(struct.unpack("<i", mem.read(rv.r_debug + R_STATE, 4))[0])


def load_order(mem: ProcMem, rv: Rendezvous) -> List[str]:
    """The l_name of every link_map entry in order ('' is the executable); [] before ld.so set it up."""
    names: List[str] = []
    lm = struct.unpack("<Q", mem.read(rv.r_debug + R_MAP, 8))[0]
    while lm and len(names) < MAX_LINK_MAP:
        raw = mem.read(lm, L_NEXT + 8)
        name_ptr = struct.unpack_from("<Q", raw, L_NAME)[0]
        name = b""
        if name_ptr:
            name = mem.read_upto(name_ptr, 4096).split(b"\0", 1)[0]
        names.append(name.decode("utf-8", "surrogateescape"))
        lm = struct.unpack_from("<Q", raw, L_NEXT)[0]
    return names
