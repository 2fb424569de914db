"""ELF symbols, /proc/PID/maps, probe-target resolution and symbolization.

Everything here is read-only: files are parsed with pyelftools, the process is only looked at through
/proc (maps, exe, and mem for the vDSO image). Symbol values stay relative to their file (st_value);
a :class:`Module` adds its load bias when an absolute address is needed.

Parsing is done once per file and cached by identity (device, inode, mtime, size), so a second process
running the same libc, or a re-read of the maps after dlopen, costs no parsing. The symbol entries
themselves are unpacked with :mod:`struct` straight from the section data: pyelftools' per-symbol
``iter_symbols()`` builds one construct container per entry, about 20 µs each, which is fine for libc's
3,000 dynamic symbols but takes seconds for a large C++ executable's .symtab.

Symbol sources, merged: .dynsym (with its GNU version information, so ``memcpy@@GLIBC_2.14`` and
``memcpy@GLIBC_2.2.5`` are told apart) plus .symtab, or when the file is stripped, the .symtab of its
separate debug file (/usr/lib/debug/.build-id/xx/yyyy.debug, as gdb finds it; Debian's libc6-dbg).
"""

from __future__ import annotations

import bisect
import ctypes
import ctypes.util
import difflib
import fnmatch
import functools
import io
import mmap
import os
import re
import struct
import subprocess
import sys
from array import array
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any, Iterable, Iterator, NamedTuple, Sequence, cast

from elftools.common.exceptions import DWARFError, ELFError
from elftools.elf.dynamic import DynamicSegment
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerDefSection, GNUVerNeedSection, GNUVerSymSection
from elftools.elf.sections import NoteSection, Section, SymbolTableSection
from elftools.elf.segments import InterpSegment

from .errors import (
    BadProbeAddress,
    ModuleNotFound,
    PermissionDenied,
    ProcessGone,
    SymbolNotFound,
    UsageError,
    UtraceError,
)

__all__ = [
    "AddressSpace",
    "ElfFile",
    "Location",
    "Mapping",
    "Module",
    "Symbol",
    "clear_cache",
    "load_elf",
    "read_maps",
]

PAGE_SIZE = mmap.PAGESIZE
DEBUG_ROOTS = ("/usr/lib/debug",)
"""Where separate debug files are looked up by build-id (gdb's default debug-file-directory)."""

ELF_MAGIC = b"\x7fELF"
PF_X = 1
SHF_EXECINSTR = 0x4
SHN_UNDEF = 0
SHN_ABS = 0xFFF1
VERSYM_HIDDEN = 0x8000
VERSYM_INDEX = 0x7FFF

STT_NAMES = {0: "NOTYPE", 1: "OBJECT", 2: "FUNC", 3: "SECTION", 4: "FILE", 5: "COMMON", 6: "TLS", 10: "IFUNC"}
STB_NAMES = {0: "LOCAL", 1: "GLOBAL", 2: "WEAK", 10: "UNIQUE"}
CODE_TYPES = frozenset({"FUNC", "IFUNC", "NOTYPE"})
"""Symbol types that can name code: the probe targets, and the names symbolize() hands out."""
NOT_ADDRESSES = frozenset({"TLS"})
"""Types whose st_value is not a virtual address (TLS: an offset in the thread's TLS block)."""

MAX_NESTING_WALK = 64
"""How many preceding symbols symbolize() inspects for one that contains the address (nested symbols)."""

ACCEPTED_FORMS = "SYMBOL, SYMBOL+OFFSET, LIB:SYMBOL, LIB:SYMBOL+OFFSET, 0xADDRESS or PATH:0xFILEOFFSET"

# --------------------------------------------------------------------------------------------------
# /proc/PID/maps


@dataclass(frozen=True)
class Mapping:
    """One line of /proc/PID/maps. ``path`` is '' for anonymous memory, '[vdso]' etc. for special ones."""

    start: int
    end: int
    perms: str
    offset: int
    dev: str
    inode: int
    path: str

    def contains(self, addr: int) -> bool:
        return self.start <= addr < self.end


def read_maps(pid: int) -> list[Mapping]:
    """Parse /proc/PID/maps; ProcessGone when the process no longer exists."""
    try:
        with open(f"/proc/{pid}/maps", encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()
    except (FileNotFoundError, ProcessLookupError) as err:
        raise ProcessGone(pid) from err
    except PermissionError as err:
        raise PermissionDenied(pid, f"cannot read /proc/{pid}/maps ({err.strerror})") from err
    return [_parse_maps_line(line) for line in lines if line]


def _parse_maps_line(line: str) -> Mapping:
    """``start-end perms offset dev inode [path]``; the path may contain spaces, so split at most 5 times."""
    fields = line.split(None, 5)
    start, _, end = fields[0].partition("-")
    return Mapping(
        start=int(start, 16),
        end=int(end, 16),
        perms=fields[1],
        offset=int(fields[2], 16),
        dev=fields[3],
        inode=int(fields[4]),
        path=fields[5] if len(fields) > 5 else "",
    )


# --------------------------------------------------------------------------------------------------
# ELF files


@dataclass(frozen=True)
class Symbol:
    """A defined symbol. ``value`` is the file's st_value (a vaddr); ``name`` carries no version suffix.

    ``version`` is the GNU symbol version ('GLIBC_2.14') when known; ``hidden`` is True for a non-default
    version (``memcpy@GLIBC_2.2.5``, one '@'), False for the default one (``memcpy@@GLIBC_2.14``).
    """

    name: str
    value: int
    size: int
    type: str
    bind: str
    version: str | None = None
    hidden: bool = False


class _Load(NamedTuple):
    """A PT_LOAD program header: the only thing the address <-> file offset maths needs."""

    vaddr: int
    offset: int
    filesz: int
    memsz: int
    flags: int


_RawSym = tuple[int, int, int, int, int, int]  # name offset, value, size, info, other, shndx


@contextmanager
def _elf_errors(path: str) -> Iterator[None]:
    """The one place where pyelftools' (and struct's) parse errors become a UtraceError naming the file."""
    try:
        yield
    except (ELFError, DWARFError, struct.error) as err:
        raise UtraceError(f"{path}: malformed ELF file: {err}") from err


def _cstr(table: bytes, offset: int) -> str:
    end = table.find(b"\0", offset)
    return table[offset : end if end >= 0 else len(table)].decode("utf-8", "replace")


def _split_version(name: str) -> tuple[str, str | None, bool]:
    """'memcpy@@GLIBC_2.14' -> ('memcpy', 'GLIBC_2.14', False); 'memcpy@GLIBC_2.2.5' -> (..., True)."""
    base, sep, version = name.partition("@")
    if not sep:
        return name, None, False
    if version.startswith("@"):
        return base, version[1:], False
    return base, version, True


def _target_rank(sym: Symbol) -> tuple[bool, bool, bool, int]:
    """Order of preference among same-named symbols when one is a probe target.

    The default version wins over a hidden one (what the dynamic linker binds new references to), code
    over data, and an exported definition over a file-local one.
    """
    return (sym.hidden, sym.type not in CODE_TYPES, sym.bind == "LOCAL", sym.value)


def _alias_rank(sym: Symbol) -> tuple[bool, bool, int, bool, int, int, str]:
    """Order of preference among symbols at the same address, for naming that address.

    Sized code symbols first, then exported ones, then the name a user would write: 'malloc' rather than
    '__libc_malloc' (fewest leading underscores, then shortest).
    """
    bind_rank = {"GLOBAL": 0, "WEAK": 1, "UNIQUE": 1}.get(sym.bind, 2)
    underscores = len(sym.name) - len(sym.name.lstrip("_"))
    return (sym.size == 0, sym.type == "NOTYPE", bind_rank, sym.hidden, underscores, len(sym.name), sym.name)


class ElfFile:
    """One ELF file, parsed once (see :func:`load_elf`); the symbol indexes are built on first use.

    ``elf`` is the pyelftools ELFFile, for other layers that need more (the unwinder's .eh_frame).
    """

    def __init__(self, path: str, buffer: mmap.mmap | bytes) -> None:
        self.path = path
        self._buffer = buffer
        stream = buffer if isinstance(buffer, mmap.mmap) else io.BytesIO(buffer)
        with _elf_errors(path):
            self.elf = ELFFile(cast(IO[bytes], stream))
            header = self.elf.header
            self.is_pie_or_dyn: bool = header["e_type"] == "ET_DYN"
            self.entry: int = header["e_entry"]
            self.loads: tuple[_Load, ...] = tuple(
                _Load(seg["p_vaddr"], seg["p_offset"], seg["p_filesz"], seg["p_memsz"], seg["p_flags"])
                for seg in self.elf.iter_segments()
                if seg["p_type"] == "PT_LOAD"
            )
        endian = "<" if self.elf.little_endian else ">"
        self._sym_format = struct.Struct(endian + ("IBBHQQ" if self.elf.elfclass == 64 else "IIIBBH"))

    @classmethod
    def open(cls, path: str) -> ElfFile:
        """Map the file read-only: pages are shared with the page cache and no descriptor stays open."""
        try:
            with open(path, "rb") as f:
                buffer = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError as err:  # mmap of an empty file
            raise UtraceError(f"{path}: not an ELF file (empty)") from err
        except OSError as err:
            raise UtraceError(f"cannot read {path}: {err.strerror}") from err
        if buffer[:4] != ELF_MAGIC:
            buffer.close()
            raise UtraceError(f"{path}: not an ELF file")
        return cls(path, buffer)

    def __repr__(self) -> str:
        return f"<ElfFile {self.path} build-id={self.build_id}>"

    # --- headers -----------------------------------------------------------------------------------

    @functools.cached_property
    def _sections(self) -> list[Section]:
        with _elf_errors(self.path):
            return list(self.elf.iter_sections())

    @functools.cached_property
    def build_id(self) -> str | None:
        """The NT_GNU_BUILD_ID note as hex, from the note sections or, without section headers, segments."""
        with _elf_errors(self.path):
            holders: Iterable = [s for s in self._sections if isinstance(s, NoteSection)]
            if not holders:
                holders = [seg for seg in self.elf.iter_segments() if seg["p_type"] == "PT_NOTE"]
            for holder in holders:
                for note in holder.iter_notes():
                    if note["n_type"] == "NT_GNU_BUILD_ID":
                        return str(note["n_desc"])
        return None

    @functools.cached_property
    def _dynamic(self) -> dict[str, list[str]]:
        """DT_SONAME and DT_NEEDED strings from the dynamic segment."""
        tags: dict[str, list[str]] = {"DT_SONAME": [], "DT_NEEDED": []}
        with _elf_errors(self.path):
            for seg in self.elf.iter_segments():
                if not isinstance(seg, DynamicSegment):
                    continue
                for tag in seg.iter_tags():
                    # pyelftools sets .soname/.needed on these tags dynamically (not in its type hints)
                    if tag.entry.d_tag == "DT_SONAME":
                        tags["DT_SONAME"].append(str(tag.soname))  # type: ignore[attr-defined]
                    elif tag.entry.d_tag == "DT_NEEDED":
                        tags["DT_NEEDED"].append(str(tag.needed))  # type: ignore[attr-defined]
        return tags

    @property
    def soname(self) -> str | None:
        sonames = self._dynamic["DT_SONAME"]
        return sonames[0] if sonames else None

    @property
    def needed(self) -> list[str]:
        """DT_NEEDED entries, in order (the dynamic linker's breadth-first load order starts from these)."""
        return list(self._dynamic["DT_NEEDED"])

    @functools.cached_property
    def interp(self) -> str | None:
        """PT_INTERP: the dynamic linker an executable asks for."""
        with _elf_errors(self.path):
            for seg in self.elf.iter_segments():
                if isinstance(seg, InterpSegment):
                    return str(seg.get_interp_name())
        return None

    # --- address maths -----------------------------------------------------------------------------

    def _load_at_vaddr(self, vaddr: int) -> _Load:
        for load in self.loads:
            if load.vaddr <= vaddr < load.vaddr + load.filesz:
                return load
        raise BadProbeAddress(f"{self.path}: address {vaddr:#x} is not backed by the file (no PT_LOAD)")

    def vaddr_to_offset(self, vaddr: int) -> int:
        """File offset of a virtual address (as the kernel's uprobe_events wants it)."""
        load = self._load_at_vaddr(vaddr)
        return load.offset + (vaddr - load.vaddr)

    def offset_to_vaddr(self, off: int) -> int:
        """Virtual address of a file offset, through the PT_LOAD that maps it."""
        for load in self.loads:
            if load.offset <= off < load.offset + load.filesz:
                return load.vaddr + (off - load.offset)
        raise BadProbeAddress(f"{self.path}: file offset {off:#x} is not in any loadable segment")

    def read(self, vaddr: int, n: int) -> bytes:
        """The file's bytes at ``vaddr``: at most ``n``, fewer at the end of the segment's file image."""
        load = self._load_at_vaddr(vaddr)
        start = load.offset + (vaddr - load.vaddr)
        end = min(start + n, load.offset + load.filesz)
        return bytes(self._buffer[start:end])

    # --- symbols -----------------------------------------------------------------------------------

    def _raw_symbols(self, section: Section) -> Iterator[_RawSym]:
        """Unpack a symbol table's entries with struct (see the module docstring for why)."""
        data = section.data()
        entsize = self._sym_format.size
        if section["sh_entsize"] not in (0, entsize):
            raise UtraceError(f"{self.path}: {section.name}: unexpected entry size {section['sh_entsize']}")
        data = data[: len(data) - len(data) % entsize]
        if self.elf.elfclass == 64:
            for name, info, other, shndx, value, size in self._sym_format.iter_unpack(data):
                yield name, value, size, info, other, shndx
        else:
            for name, value, size, info, other, shndx in self._sym_format.iter_unpack(data):
                yield name, value, size, info, other, shndx

    def _version_names(self) -> dict[int, str]:
        """Version index -> name, from .gnu.version_d (definitions) and .gnu.version_r (copy relocations)."""
        names: dict[int, str] = {}
        for sec in self._sections:
            if isinstance(sec, GNUVerDefSection):
                for verdef, auxiliaries in sec.iter_versions():
                    first = next(iter(auxiliaries), None)
                    if first is not None:
                        names[verdef["vd_ndx"]] = first.name
            elif isinstance(sec, GNUVerNeedSection):
                for _verneed, auxiliaries in sec.iter_versions():
                    for aux in auxiliaries:
                        names[aux["vna_other"]] = aux.name
        return names

    def _versym(self) -> array | None:
        for sec in self._sections:
            if isinstance(sec, GNUVerSymSection):
                versym = array("H", sec.data()[: sec["sh_size"] & ~1])
                if self.elf.little_endian != (sys.byteorder == "little"):
                    versym.byteswap()
                return versym
        return None

    def _parse_symtab(self, section: Section, with_versions: bool) -> list[Symbol]:
        """Defined symbols of one table; section, file and absolute symbols (no addresses) are dropped."""
        strtab = self.elf.get_section(section["sh_link"]).data()
        versym = self._versym() if with_versions else None
        version_names = self._version_names() if versym is not None else {}
        symbols = []
        for index, (name_off, value, size, info, _other, shndx) in enumerate(self._raw_symbols(section)):
            sym_type = STT_NAMES.get(info & 0xF)
            if shndx in (SHN_UNDEF, SHN_ABS) or sym_type is None or sym_type in ("SECTION", "FILE"):
                continue
            raw_name = _cstr(strtab, name_off)
            if not raw_name:
                continue
            name, version, hidden = _split_version(raw_name)
            if versym is not None and index < len(versym):
                ver_index = versym[index] & VERSYM_INDEX
                version = version_names.get(ver_index) if ver_index > 1 else None
                hidden = bool(versym[index] & VERSYM_HIDDEN)
            bind = STB_NAMES.get(info >> 4, str(info >> 4))
            symbols.append(Symbol(name, value, size, sym_type, bind, version, hidden))
        return symbols

    def _section_of_type(self, sh_type: str) -> Section | None:
        for sec in self._sections:
            if sec["sh_type"] == sh_type and isinstance(sec, SymbolTableSection):
                return sec
        return None

    def _debug_file(self) -> ElfFile | None:
        """The separate debug file with the same build-id, if one is installed."""
        build_id = self.build_id
        if not build_id or len(build_id) < 3:
            return None
        for root in DEBUG_ROOTS:
            path = os.path.join(root, ".build-id", build_id[:2], build_id[2:] + ".debug")
            if path == self.path or not os.path.exists(path):
                continue
            try:
                debug = load_elf(path)
            except UtraceError:
                continue
            if debug.build_id == build_id:
                return debug
        return None

    def _full_symtab(self) -> list[Symbol]:
        """.symtab of the file itself, else of its debug file; [] when neither exists."""
        own = self._section_of_type("SHT_SYMTAB")
        if own is not None:
            return self._parse_symtab(own, with_versions=False)
        debug = self._debug_file()
        if debug is not None:
            table = debug._section_of_type("SHT_SYMTAB")
            if table is not None and table["sh_type"] != "SHT_NOBITS":
                with _elf_errors(debug.path):
                    return debug._parse_symtab(table, with_versions=False)
        return []

    @functools.cached_property
    def _symbols(self) -> list[Symbol]:
        with _elf_errors(self.path):
            dynsym = self._section_of_type("SHT_DYNSYM")
            merged = self._parse_symtab(dynsym, with_versions=True) if dynsym is not None else []
            seen = {(s.name, s.value) for s in merged}
            for sym in self._full_symtab():
                if (sym.name, sym.value) not in seen:
                    seen.add((sym.name, sym.value))
                    merged.append(sym)
        return merged

    def symbols(self) -> list[Symbol]:
        """Every defined symbol (.dynsym merged with .symtab or the debug file's .symtab)."""
        return list(self._symbols)

    def imported_functions(self) -> list[str]:
        """Names of the functions this file imports: undefined .dynsym entries of type FUNC (or NOTYPE,
        which some linkers emit for calls), in table order, without duplicates."""
        dynsym = self._section_of_type("SHT_DYNSYM")
        if dynsym is None:
            return []
        names: list[str] = []
        with _elf_errors(self.path):
            strtab = self.elf.get_section(dynsym["sh_link"]).data()
            for name_off, _value, _size, info, _other, shndx in self._raw_symbols(dynsym):
                if shndx != SHN_UNDEF or STT_NAMES.get(info & 0xF) not in ("FUNC", "NOTYPE"):
                    continue
                name = _split_version(_cstr(strtab, name_off))[0]
                if name and name not in names:
                    names.append(name)
        return names

    @functools.cached_property
    def _by_name(self) -> dict[str, list[Symbol]]:
        index: dict[str, list[Symbol]] = {}
        for sym in self._symbols:
            index.setdefault(sym.name, []).append(sym)
        for candidates in index.values():
            candidates.sort(key=_target_rank)
        return index

    def lookup(self, name: str) -> list[Symbol]:
        """Defined symbols called ``name``, best probe target first (see _target_rank).

        ``name@@VERSION`` selects the default version, ``name@VERSION`` that version whether default or not.
        """
        base, version, hidden = _split_version(name)
        found = self._by_name.get(base, [])
        if version is None:
            return list(found)
        return [s for s in found if s.version == version and (hidden or not s.hidden)]

    @functools.cached_property
    def _names(self) -> list[str]:
        return sorted({s.name for s in self._symbols if s.type in CODE_TYPES and s.value})

    @functools.cached_property
    def _cxx(self) -> _CxxTables:
        """The C++ functions, demangled once (probe targets written as in C++, messages, -l)."""
        mangled = [
            s for s in self._symbols if s.name.startswith("_Z") and s.value and s.type in ("FUNC", "IFUNC")
        ]
        tables = _CxxTables({}, {}, {}, {})
        for sym, text in zip(mangled, demangle([s.name for s in mangled])):
            if text is not None:
                head, tail = cxx_parts(text)
                name, signature = cxx_signature(text)
                tables.functions.setdefault(name, []).append((signature, sym))
                tables.names.setdefault(name, head)
                tables.signatures.setdefault(signature, head + tail)
                tables.by_symbol[sym.name] = head + tail
        return tables

    def cxx_names(self) -> dict[str, str]:
        """The demangled function names without parameters: spaces removed -> as demangled
        (``app::(anonymous namespace)::f``), for 'did you mean' suggestions."""
        return self._cxx.names

    def cxx_shown(self, signature: str) -> str:
        """A signature (spaces removed, as cxx_lookup gives it) as demangled: ``f(int const&)``."""
        return self._cxx.signatures.get(signature, signature)

    def cxx_by_symbol(self) -> dict[str, str]:
        """Mangled symbol name -> the function as written in C++ (``app::twice<double>(double)``)."""
        return self._cxx.by_symbol

    def cxx_lookup(self, target: str) -> list[tuple[str, Symbol]]:
        """The C++ functions ``target`` names: ``ns::f`` (every overload) or ``ns::f(int)`` (that one),
        as (demangled name, symbol), one per address."""
        name, wanted = cxx_signature(target)
        found = self._cxx.functions.get(name, [])
        if wanted != name:  # a parameter list was given
            found = [(text, sym) for text, sym in found if text in (wanted, wanted + "const")]
        by_address = {sym.value: (text, sym) for text, sym in sorted(found, key=lambda f: _target_rank(f[1]))}
        return list(by_address.values())

    def names(self) -> list[str]:
        """Names of the code symbols, for 'did you mean' suggestions."""
        return list(self._names)

    @functools.cached_property
    def _exec_ranges(self) -> list[tuple[int, int]]:
        """Executable sections (or PF_X segments without section headers), sorted: where labels may live."""
        ranges = [
            (sec["sh_addr"], sec["sh_addr"] + sec["sh_size"])
            for sec in self._sections
            if sec["sh_flags"] & SHF_EXECINSTR and sec["sh_addr"]
        ]
        if not ranges:
            ranges = [(ld.vaddr, ld.vaddr + ld.memsz) for ld in self.loads if ld.flags & PF_X]
        return sorted(ranges)

    def _exec_range_end(self, vaddr: int) -> int | None:
        i = bisect.bisect_right(self._exec_ranges, (vaddr, sys.maxsize)) - 1
        if i >= 0 and self._exec_ranges[i][0] <= vaddr < self._exec_ranges[i][1]:
            return self._exec_ranges[i][1]
        return None

    @functools.cached_property
    def _addr_index(self) -> tuple[list[int], list[int], list[Symbol]]:
        """(starts, ends, symbols), sorted by start, one symbol per address.

        A sized symbol covers [value, value+size). A size-0 label (hand-written assembly) covers up to the
        next symbol or the end of its executable section; labels outside code (_end, __bss_start) are dropped.
        """
        with _elf_errors(self.path):
            best: dict[int, Symbol] = {}
            for sym in self._symbols:
                if not sym.value or sym.type not in CODE_TYPES:
                    continue
                if sym.size == 0 and self._exec_range_end(sym.value) is None:
                    continue
                current = best.get(sym.value)
                if current is None or _alias_rank(sym) < _alias_rank(current):
                    best[sym.value] = sym
        starts = sorted(best)
        ends = []
        for i, start in enumerate(starts):
            sym = best[start]
            if sym.size:
                ends.append(start + sym.size)
            else:
                section_end = self._exec_range_end(start) or start
                following = starts[i + 1] if i + 1 < len(starts) else section_end
                ends.append(min(following, section_end))
        return starts, ends, [best[s] for s in starts]

    def symbolize(self, vaddr: int) -> tuple[Symbol, int] | None:
        """The code symbol containing ``vaddr`` (innermost when symbols nest) and the offset into it."""
        starts, ends, symbols = self._addr_index
        i = bisect.bisect_right(starts, vaddr) - 1
        for j in range(i, max(-1, i - MAX_NESTING_WALK), -1):
            if vaddr < ends[j]:
                return symbols[j], vaddr - starts[j]
        return None


# Parsed files by identity; the path is not part of the key, so /lib/... and /usr/lib/... share an entry.
class _CxxTables(NamedTuple):
    functions: dict[str, list[tuple[str, Symbol]]]  # name without parameters, spaces removed -> ...
    names: dict[str, str]  # ... that name as demangled
    signatures: dict[str, str]  # name with parameters, spaces removed -> as demangled
    by_symbol: dict[str, str]  # mangled name -> as demangled, without a return type


_CACHE: OrderedDict[tuple[int, int, int, int], ElfFile] = OrderedDict()
_CACHE_SIZE = 64


def demangle(names: Sequence[str]) -> list[str | None]:
    """The C++ demangled form of each name (None where it is not a mangled name).

    libstdc++'s own __cxa_demangle through ctypes, as gdb and c++filt use the same code (libiberty):
    no maintained Python package does this, and pyelftools does not demangle. Without libstdc++,
    binutils' c++filt; without either, nothing is demangled.
    """
    cxa = _cxa_demangle()
    if cxa is None:
        return _cxxfilt(names)
    out: list[str | None] = []
    status = ctypes.c_int()
    for name in names:
        buf = cxa(name.encode(), None, None, ctypes.byref(status))
        if not buf or status.value != 0:
            out.append(None)
            continue
        out.append(ctypes.string_at(buf).decode(errors="replace"))
        _libc_free(buf)
    return out


@functools.lru_cache(maxsize=1)
def _cxa_demangle() -> Any:
    path = ctypes.util.find_library("stdc++")
    try:
        lib = ctypes.CDLL(path or "libstdc++.so.6")
    except OSError:
        return None
    fn = lib.__cxa_demangle
    fn.restype = ctypes.c_void_p  # a malloc'ed string: freed with libc's free
    fn.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)]
    return fn


def _libc_free(address: int) -> None:
    _free()(address)


@functools.lru_cache(maxsize=1)
def _free() -> Any:
    free = ctypes.CDLL(None).free
    free.argtypes = [ctypes.c_void_p]
    return free


def _cxxfilt(names: Sequence[str]) -> list[str | None]:
    try:
        proc = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return [None] * len(names)
    lines = proc.stdout.split("\n")
    return [text if text != name else None for name, text in zip(names, lines)]


def looks_cxx(target: str) -> bool:
    """A function named as in C++: a qualified name or a parameter list (``app::scale(int)``)."""
    return "::" in target or re.match(r"[\w~<>:,*& ]+\(", target) is not None


def cxx_short_name(text: str) -> str:
    """The last component of a C++ function name with its parameters: ``app::Shape::area() const``
    -> ``area()const``, ``app::scale(int)`` -> ``scale(int)`` (event names of probes)."""
    name, signature = cxx_signature(text)
    depth, start = 0, 0
    for i, ch in enumerate(name):
        depth += {"<": 1, "(": 1, ">": -1, ")": -1}.get(ch, 0)
        if depth == 0 and name.startswith("::", i):
            start = i + 2
    return name[start:] + signature[len(name) :]


@functools.lru_cache(maxsize=4096)
def display_name(symbol: str) -> str:
    """How a symbol is shown: C++ names demangled (``app::scale(int)``), others as they are."""
    if not symbol.startswith("_Z"):
        return symbol
    return demangle([symbol])[0] or symbol


def without_return_type(text: str) -> str:
    """A demangled function as one writes its name: ``double app::twice<double>(double)`` ->
    ``app::twice<double>(double)`` (function templates carry their return type)."""
    return "".join(cxx_parts(text))


def cxx_function_name(text: str) -> str:
    """A demangled function name without its parameters, qualifiers and return type, spaces removed:
    ``int app::scale<int>(int) const`` -> ``app::scale<int>``."""
    return cxx_signature(text)[0]


def cxx_signature(text: str) -> tuple[str, str]:
    """(name, name with its parameter list and qualifiers), spaces removed, return type dropped:
    ``double app::twice<double>(double)`` -> (``app::twice<double>``, ``app::twice<double>(double)``)."""
    name, tail = cxx_parts(text)
    name = name.replace(" ", "")
    return name, name + tail.replace(" ", "")


def cxx_parts(text: str) -> tuple[str, str]:
    """(the name, its parameter list and qualifiers), return type dropped, spaces kept:
    ``int app::scale(int) const`` -> (``app::scale``, ``(int) const``)."""
    text = text.strip()
    head, tail = text, ""
    stripped = re.sub(r"\)[\s]*(?:(?:const|volatile|&&|&)\s*)*$", ")", text)
    if stripped.endswith(")"):  # the parameter list: from its matching "("
        depth = 0
        for i in range(len(stripped) - 1, -1, -1):
            depth += {")": 1, "(": -1}.get(stripped[i], 0)
            if depth == 0:
                head, tail = text[:i], text[i:]
                break
    depth, start = 0, 0
    for i, ch in enumerate(head):  # a return type (function templates) ends at a top-level space
        depth += {"<": 1, "(": 1, ">": -1, ")": -1}.get(ch, 0)
        if ch == " " and depth == 0:
            start = i + 1
    return head[start:], tail


def load_elf(path: str) -> ElfFile:
    """The parsed ELF file at ``path``; parsed once while its (device, inode, mtime, size) stays the same."""
    try:
        st = os.stat(path)
    except OSError as err:
        raise UtraceError(f"cannot read {path}: {err.strerror}") from err
    key = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
    cached = _CACHE.get(key)
    if cached is not None:
        _CACHE.move_to_end(key)
        return cached
    elf = ElfFile.open(path)
    _CACHE[key] = elf
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return elf


@functools.lru_cache(maxsize=4)
def _load_vdso(image: bytes) -> ElfFile:
    """The vDSO is the same image in every process of a kernel: parse it once per content."""
    return ElfFile("[vdso]", image)


def clear_cache() -> None:
    """Forget every parsed file (tests measure cold parsing; nothing else needs this)."""
    _CACHE.clear()
    _load_vdso.cache_clear()


def _has_elf_magic(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == ELF_MAGIC
    except OSError:
        return False


# --------------------------------------------------------------------------------------------------
# Modules and the address space


def _page_start(addr: int) -> int:
    return addr & ~(PAGE_SIZE - 1)


def _page_end(addr: int) -> int:
    return (addr + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)


def _image_span(elf: ElfFile, bias: int, mappings: Sequence[Mapping]) -> tuple[int, int]:
    """[start, end) of the image the PT_LOAD headers describe, .bss included; the mappings without them."""
    if elf.loads:
        start = bias + _page_start(min(ld.vaddr for ld in elf.loads))
        return start, bias + _page_end(max(ld.vaddr + ld.memsz for ld in elf.loads))
    return min(m.start for m in mappings), max(m.end for m in mappings)


class Module:
    """One ELF file mapped in a process: absolute address = ``bias`` + file vaddr.

    ``start``/``end`` span the whole image the PT_LOAD headers describe (including .bss), which is what the
    process's mappings of the file plus its anonymous .bss tail cover.
    """

    def __init__(self, path: str, elf: ElfFile, bias: int, mappings: Sequence[Mapping]) -> None:
        self.path = path
        self.name = os.path.basename(path)
        self.elf = elf
        self.bias = bias
        self.mappings = tuple(mappings)
        self.inode = mappings[0].inode if mappings else 0
        self.start, self.end = _image_span(elf, bias, mappings)

    def contains(self, addr: int) -> bool:
        return self.start <= addr < self.end

    def __repr__(self) -> str:
        return f"<Module {self.name} {self.start:#x}-{self.end:#x} bias={self.bias:#x}>"


@dataclass(frozen=True)
class Location:
    """A resolved probe target."""

    address: int
    module: Module
    symbol: str | None
    offset: int
    sym_start: int
    ifunc: bool

    def describe(self) -> str:
        """'libc.so.6:malloc+0x0' for a symbol, '0x401136' for a raw address outside any symbol."""
        if self.symbol is None:
            return f"{self.address:#x}"
        return f"{self.module.name}:{display_name(self.symbol)}+{self.offset:#x}"


def _biases(elf: ElfFile, mappings: Sequence[Mapping]) -> list[int]:
    """Load biases of the copies of ``elf`` in these mappings (more than one with dlmopen).

    Anchored on executable mappings only: each lies inside the file range of a PF_X PT_LOAD, and the
    kernel maps that segment at page_start(bias + p_vaddr) from file offset p_offset - page_offset(p_vaddr).
    Read-only mappings are ambiguous: the dynamic linker's PROT_NONE gaps, RELRO splits and a program's
    own mmap of the file all look like segments at some offset.
    """
    found: list[int] = []
    for m in mappings:
        if "x" not in m.perms:
            continue
        for load in elf.loads:
            file_start = load.offset - (load.vaddr - _page_start(load.vaddr))
            if load.flags & PF_X and file_start <= m.offset < load.offset + load.filesz:
                bias = m.start - (_page_start(load.vaddr) + (m.offset - file_start))
                if bias not in found:
                    found.append(bias)
                break
    return found


def _open_mapped_elf(pid: int, mapping: Mapping) -> ElfFile | None:
    """The ELF file behind a mapping, checked by inode: the path may be replaced, deleted or in a chroot."""
    path = mapping.path
    candidates = [f"/proc/{pid}/map_files/{mapping.start:x}-{mapping.end:x}"]
    if not path.endswith(" (deleted)"):
        candidates[:0] = [path, f"/proc/{pid}/root{path}"]
    for candidate in candidates:
        try:
            if os.stat(candidate).st_ino != mapping.inode:
                continue
        except OSError:
            continue
        if not _has_elf_magic(candidate):
            return None
        try:
            return load_elf(candidate)
        except UtraceError:
            return None  # a malformed file must not make the whole process untraceable
    return None


def _file_modules(pid: int, maps: Sequence[Mapping]) -> list[Module]:
    """A Module per copy of each mapped ELF file, in the order the files first appear in the maps."""
    by_file: dict[tuple[str, int], list[Mapping]] = {}
    for m in maps:
        if m.inode and m.path.startswith("/"):
            by_file.setdefault((m.dev, m.inode), []).append(m)
    modules = []
    for group in by_file.values():
        if not any("x" in m.perms for m in group):
            continue
        elf = _open_mapped_elf(pid, group[0])
        if elf is None:
            continue
        path = group[0].path.removesuffix(" (deleted)")
        for bias in _biases(elf, group):
            start, end = _image_span(elf, bias, group)
            modules.append(Module(path, elf, bias, [m for m in group if start <= m.start < end]))
    return modules


def _vdso_module(pid: int, maps: Sequence[Mapping]) -> Module | None:
    """The vDSO, whose ELF image is only in memory; optional (None if /proc/PID/mem is not readable)."""
    for m in maps:
        if m.path != "[vdso]":
            continue
        try:
            fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
            try:
                image = os.pread(fd, m.end - m.start, m.start)
            finally:
                os.close(fd)
        except OSError:
            return None
        if image[:4] != ELF_MAGIC:
            return None
        try:
            elf = _load_vdso(image)
        except UtraceError:
            return None
        loads = elf.loads
        bias = m.start - _page_start(loads[0].vaddr) if loads else m.start
        return Module("[vdso]", elf, bias, [m])
    return None


def _stat_ino(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def _name_matches(query: str, module: Module) -> int | None:
    """How well a module name matches: 0 file name, 1 soname, 2 prefix ('libc' -> libc.so.6, libc-2.36.so)."""
    names = [module.name] + ([module.elf.soname] if module.elf.soname else [])
    if module.name == query:
        return 0
    if module.elf.soname == query:
        return 1
    prefix = re.compile(re.escape(query) + r"(\.|-\d)")
    if any(prefix.match(n) for n in names):
        return 2
    return None


def _is_dynamic_linker(module: Module, interp_ino: int | None) -> bool:
    if interp_ino is not None and module.inode == interp_ino:
        return True
    return re.match(r"ld-linux[-.\w]*\.so|ld\.so", module.name) is not None


class AddressSpace:
    """The ELF modules of one process, in symbol search order, and address <-> symbol resolution.

    A snapshot: after dlopen/dlclose or exec, build a new one (parsed files are cached, so that is cheap).
    """

    def __init__(
        self,
        pid: int,
        modules: Sequence[Module],
        executable: Module | None,
        vdso: Module | None,
        mappings: Sequence[Mapping] = (),
    ) -> None:
        self.pid = pid
        self.mappings = list(mappings)  # every line of /proc/PID/maps when the snapshot was taken
        self.modules = list(modules)
        self.executable = executable
        self.vdso = vdso
        everything = self.modules + ([vdso] if vdso is not None else [])
        self._by_start = sorted(everything, key=lambda m: m.start)
        self._starts = [m.start for m in self._by_start]

    @classmethod
    def from_pid(
        cls, pid: int, exe_path: str | None = None, load_order: list[str] | None = None
    ) -> AddressSpace:
        """Read the process's maps; ``load_order`` (link_map l_name paths, '' = the executable) sets the
        search order, which otherwise is: executable, its DT_NEEDED libraries breadth first (the dynamic
        linker's rule), other libraries newest first, the dynamic linker last."""
        maps = read_maps(pid)
        modules = _file_modules(pid, maps)
        executable = cls._find_executable(pid, modules, exe_path)
        ordered = cls._default_order(modules, executable)
        if load_order is not None:
            ordered = cls._apply_load_order(ordered, executable, load_order)
        return cls(pid, ordered, executable, _vdso_module(pid, maps), maps)

    @staticmethod
    def _find_executable(pid: int, modules: list[Module], exe_path: str | None) -> Module | None:
        """The module of ``exe_path`` if given and mapped (not for a script: its interpreter runs), else of
        /proc/PID/exe; None for a zombie or when the file cannot be identified."""
        proc_exe = f"/proc/{pid}/exe"
        for candidate in ([exe_path] if exe_path else []) + [proc_exe]:
            ino = _stat_ino(candidate)
            if ino is None and candidate == proc_exe and not os.path.exists(f"/proc/{pid}"):
                raise ProcessGone(pid)
            found = next((m for m in modules if ino is not None and m.inode == ino), None)
            if found is not None:
                return found
        return None

    @staticmethod
    def _default_order(modules: list[Module], executable: Module | None) -> list[Module]:
        interp = executable.elf.interp if executable is not None else None
        interp_ino = _stat_ino(interp) if interp else None
        linkers = [m for m in modules if m is not executable and _is_dynamic_linker(m, interp_ino)]
        libraries = [m for m in modules if m is not executable and m not in linkers]
        ordered: list[Module] = []
        queue = [executable] if executable is not None else []
        while queue:
            for needed in queue.pop(0).elf.needed:
                for lib in libraries:
                    if lib not in ordered and needed in (lib.name, lib.elf.soname):
                        ordered.append(lib)
                        queue.append(lib)
        rest = sorted((m for m in libraries if m not in ordered), key=lambda m: -m.start)
        return ([executable] if executable is not None else []) + ordered + rest + linkers

    @staticmethod
    def _apply_load_order(modules: list[Module], executable: Module | None, order: list[str]) -> list[Module]:
        ordered: list[Module] = []
        for path in order:
            if path == "":
                match = executable
            else:
                ino = _stat_ino(path)
                real = os.path.realpath(path)
                match = next((m for m in modules if m.inode == ino or os.path.realpath(m.path) == real), None)
            if match is not None and match not in ordered:
                ordered.append(match)
        return ordered + [m for m in modules if m not in ordered]

    # --- lookups -----------------------------------------------------------------------------------

    def module_named(self, name: str) -> Module:
        """A module by file name, soname, name prefix ('libc'), or path (compared after realpath)."""
        if "/" in name:
            real, ino = os.path.realpath(name), _stat_ino(name)
            for module in self.modules:
                if module.inode == ino or os.path.realpath(module.path) == real:
                    return module
        else:
            ranked = [(_name_matches(name, m), i, m) for i, m in enumerate(self.modules)]
            matches = [(rank, i, m) for rank, i, m in ranked if rank is not None]
            if matches:
                return min(matches, key=lambda t: (t[0], t[1]))[2]
        raise ModuleNotFound(name, [m.name for m in self.modules])

    def module_at(self, addr: int) -> Module | None:
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0 and self._by_start[i].contains(addr):
            return self._by_start[i]
        return None

    def symbolize(self, addr: int) -> tuple[Module, str | None, int] | None:
        """(module, symbol, offset into it), (module, None, offset from module start), or None."""
        module = self.module_at(addr)
        if module is None:
            return None
        found = module.elf.symbolize(addr - module.bias)
        if found is None:
            return module, None, addr - module.start
        return module, found[0].name, found[1]

    def describe(self, addr: int) -> str:
        """'libc.so.6:malloc+0x10', 'libc.so.6+0x1234' (no symbol) or '0x7f...' (no module)."""
        found = self.symbolize(addr)
        if found is None:
            return f"{addr:#x}"
        module, symbol, offset = found
        if symbol is None:
            return f"{module.name}+{offset:#x}"
        return f"{module.name}:{display_name(symbol)}+{offset:#x}"

    def functions(self, pattern: str = "*") -> list[str]:
        """``MODULE:NAME`` of every function a probe can name, module by module in search order, names
        sorted; ``pattern`` is a glob of names (``mem*``) or ``LIB:GLOB`` for one module, LIB as in a
        probe target (``libc:str*``)."""
        qualified = re.match(r"([^:\s()]+):(?!:)(.*)$", pattern)  # LIB:GLOB (not ns::name)
        lib, glob = qualified.groups() if qualified else ("", pattern)
        modules = [self.module_named(lib)] if lib else self.modules
        glob = glob or "*"
        found: list[str] = []
        for module in modules:
            names = {s.name for s in module.elf.symbols() if s.value and s.type in ("FUNC", "IFUNC")}
            cxx = module.elf.cxx_by_symbol()
            shown = {n: cxx.get(n, n) for n in names}
            matched = {shown[n] for n in names if any(fnmatch.fnmatchcase(x, glob) for x in (n, shown[n]))}
            found.extend(f"{module.name}:{name}" for name in sorted(matched))
        return found

    # --- probe targets -----------------------------------------------------------------------------

    def resolve(self, target: str) -> Location:
        """Resolve a probe target; the accepted forms are in ACCEPTED_FORMS.

        ``ifunc`` is set only for a GNU IFUNC named as a symbol (the engine then runs the resolver to find
        the implementation); an address or file offset is probed as given, even at a resolver's entry.
        """
        if _ADDRESS_RE.fullmatch(target):
            return self._at_address(int(target, 16), target)
        match = _FILE_OFFSET_RE.fullmatch(target)
        if match:
            module = self.module_named(match["path"])
            address = module.bias + module.elf.offset_to_vaddr(int(match["offset"], 16))
            return self._at_address(address, target)
        match = _SYMBOL_RE.fullmatch(target) or _CXX_RE.fullmatch(target)
        if match is None:
            raise UsageError(f"bad probe target {target!r}: expected {ACCEPTED_FORMS}")
        offset = int(match["offset"], 0) if match["offset"] else 0
        if match.re is _CXX_RE:
            modules = [self.module_named(match["lib"])] if match["lib"] else self.modules
            return self._cxx_symbol_in(modules, match["symbol"], offset, target, bool(match["lib"]))
        if match["lib"]:
            return self._symbol_in([self.module_named(match["lib"])], match["symbol"], offset, target, True)
        return self._symbol_in(self.modules, match["symbol"], offset, target, False)

    def _at_address(self, address: int, target: str) -> Location:
        module = self.module_at(address)
        if module is None:
            raise BadProbeAddress(f"{target}: address {address:#x} is not inside any loaded module")
        found = module.elf.symbolize(address - module.bias)
        if found is None:
            return Location(address, module, None, 0, address, False)
        sym, offset = found
        return Location(address, module, sym.name, offset, address - offset, False)

    def _symbol_in(
        self, modules: Sequence[Module], name: str, offset: int, target: str, qualified: bool
    ) -> Location:
        """First module (in the given order) that defines ``name`` wins, like the dynamic linker's lookup."""
        for module in modules:
            candidates = [s for s in module.elf.lookup(name) if s.value and s.type not in NOT_ADDRESSES]
            if not candidates:
                continue
            sym = candidates[0]
            if sym.size and offset >= sym.size:
                raise BadProbeAddress(
                    f"{target}: offset {offset:#x} is beyond the end of {sym.name} (size {sym.size:#x})"
                )
            if sym.type == "IFUNC" and offset:
                raise BadProbeAddress(
                    f"{target}: {sym.name} is a GNU IFUNC, so an offset points into its resolver, which "
                    "runs once at load time; probe the implementation by its own name instead"
                )
            start = module.bias + sym.value
            return Location(start + offset, module, sym.name, offset, start, sym.type == "IFUNC")
        if "@" not in name:  # a C++ function of the global namespace, by its plain name (foo(int))
            for module in modules:
                if module.elf.cxx_lookup(name):
                    return self._cxx_symbol_in([module], name, offset, target, qualified)
        base = _split_version(name)[0]
        pool = sorted({n for m in modules for n in m.elf.names()})
        suggestions = difflib.get_close_matches(base, pool, n=5)
        raise SymbolNotFound(name, modules[0].name if qualified and modules else None, suggestions)

    def _cxx_symbol_in(
        self, modules: Sequence[Module], name: str, offset: int, target: str, qualified: bool
    ) -> Location:
        """A function named as in C++ (``app::Shape::area``, ``app::scale(int)``): the first module
        that defines it; a name that several overloads share must be given with its parameters."""
        for module in modules:
            found = module.elf.cxx_lookup(name)
            if not found:
                continue
            if len(found) > 1:
                choices = ", ".join(f"'{module.elf.cxx_shown(text)}'" for text, _ in found)
                raise UsageError(f"{target!r} names {len(found)} functions in {module.name}: {choices}; "
                                 "give one with its parameter list")  # fmt: skip
            _, sym = found[0]
            if sym.size and offset >= sym.size:
                raise BadProbeAddress(f"{target}: offset {offset:#x} is beyond the end of the function "
                                      f"(size {sym.size:#x})")  # fmt: skip
            start = module.bias + sym.value
            return Location(start + offset, module, sym.name, offset, start, sym.type == "IFUNC")
        shown = {key: text for m in modules for key, text in m.elf.cxx_names().items()}
        matches = difflib.get_close_matches(cxx_function_name(name), sorted(shown), n=5)
        suggestions = [shown[m] for m in matches]
        raise SymbolNotFound(name, modules[0].name if qualified and modules else None, suggestions)


_HEX = r"0[xX][0-9a-fA-F]+"
_ADDRESS_RE = re.compile(_HEX)
_FILE_OFFSET_RE = re.compile(rf"(?P<path>[^\s]+):(?P<offset>{_HEX})")
# A function named as in C++: a qualified name (``::``) or a parameter list, after an optional LIB:
_CXX_RE = re.compile(
    r"(?:(?P<lib>[^:\s()]+):(?!:))?"
    r"(?P<symbol>[^:\s+][^+]*?(?:::|\()[^+]*?)"
    rf"(?:\+(?P<offset>{_HEX}|[0-9]+))?"
)
_SYMBOL_RE = re.compile(
    r"(?:(?P<lib>[^:\s]+):)?"
    r"(?P<symbol>[A-Za-z_.$][\w.$]*(?:@@?[\w.]+)?)"
    rf"(?:\+(?P<offset>{_HEX}|[0-9]+))?"
)
