"""strace's notation for values: quoted strings, flags, enums, signal sets, modes, devices.

Display only: these take decoded numbers and bytes and return text. The rules follow strace's
``util.c`` (string_quote, printflags, sprintsigmask) so that traces can be diffed against strace.
"""

from __future__ import annotations

import datetime
import re
from typing import Any, Dict, Iterable, Optional, Tuple

from . import xlat
from .xlat import Xlat

_SIMPLE_ESCAPES = {
    ord('"'): '\\"',
    ord("\\"): "\\\\",
    ord("\f"): "\\f",
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
    ord("\v"): "\\v",
}


def _short_escape(c: int) -> str:
    if c in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[c]
    return chr(c) if 0x20 <= c < 0x7F else f"\\{c:o}"


# Byte (as a latin-1 code point) -> its text; lists, which str.translate indexes without the
# KeyError a dict raises for every byte that stays as it is.
_ESCAPES = [_short_escape(c) for c in range(256)]
_SIMPLE_ONLY = [_SIMPLE_ESCAPES.get(c, chr(c)) for c in range(256)]  # control bytes kept as they are
_HEX_ESCAPES = [f"\\x{c:02x}" for c in range(256)]
# A byte printed in octal and followed by an octal digit takes three digits ("\0001", not "\01").
_OCTAL_BEFORE_DIGIT = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\xff](?=[0-7])")


def escape(data: bytes, force_hex: bool = False) -> str:
    """The inside of strace's quoted string: C escapes, octal for the rest (or \\xNN throughout)."""
    if force_hex:
        return "".join([_HEX_ESCAPES[c] for c in data])
    try:
        text = data.decode("latin-1")
    except AttributeError:  # a memoryview
        text = str(data, "latin-1")
    if text.isascii():
        if text.isprintable():
            return text.translate(_ESCAPES) if '"' in text or "\\" in text else text
        simple = text.translate(_SIMPLE_ONLY)
        if simple.isprintable():  # text with newlines or tabs, no byte that needs octal
            return simple
    if _OCTAL_BEFORE_DIGIT.search(text) is None:
        return text.translate(_ESCAPES)
    parts = []
    start = 0
    for m in _OCTAL_BEFORE_DIGIT.finditer(text):
        parts.append(text[start : m.start()].translate(_ESCAPES))
        parts.append(f"\\{ord(m.group()):03o}")
        start = m.end()
    parts.append(text[start:].translate(_ESCAPES))
    return "".join(parts)


def quote_buffer(data: bytes, size: int, strsize: int, force_hex: bool = False) -> str:
    """A buffer of ``size`` bytes of which ``data`` was captured: at most strsize bytes, then ``...``."""
    limit = size if size < strsize else strsize
    shown = data if len(data) <= limit else data[:limit]
    return f'"{escape(shown, force_hex)}"...' if size > len(shown) else f'"{escape(shown, force_hex)}"'


def quote_cstring(data: bytes, strsize: Optional[int]) -> str:
    """A NUL-terminated string as captured (``data`` ends with its NUL unless it was cut short).

    ``strsize`` None prints it whole (paths: strace prints them up to PATH_MAX regardless of -s).
    """
    complete = data.endswith(b"\0")
    text = data[:-1] if complete else data
    if b"\0" in text:
        text, complete = text.split(b"\0", 1)[0], True
    more = not complete
    if strsize is not None and len(text) > strsize:
        text, more = text[:strsize], True
    return f'"{escape(text)}"...' if more else f'"{escape(text)}"'


def hexnum(value: int) -> str:
    """C's ``%#lx``: 0 stays "0"."""
    return "0" if value == 0 else hex(value)


def pointer(value: int) -> str:
    return "NULL" if value == 0 else hex(value)


def unknown(value: int, table: Xlat) -> str:
    """An enum value the table does not name: ``0x3001 /* ARCH_??? */``."""
    return f"{hexnum(value)} /* {_prefix(table)}??? */"


def _prefix(table: Xlat) -> str:
    if not table.pairs:
        return ""
    name = table.pairs[0][1].split(" or ")[-1]
    cut = name.rfind("_")
    return name[: cut + 1] if cut > 0 else ""


def enum(value: int, table: Xlat, numeric_default: bool = False) -> str:
    name = table.get(value)
    if name is not None:
        return name
    return str(value) if numeric_default else unknown(value, table)


def flag_names(value: int, table: Xlat) -> tuple[list[str], int]:
    """The names of the table entries all of whose bits are set in value, and the bits left over."""
    names = []
    for bit, name in table.pairs:
        if bit and value & bit == bit:
            names.append(name)
            value &= ~bit
    return names, value


def flags(value: int, table: Xlat, zero: str = "0") -> str:
    """``A|B|0x40``; ``zero`` when no bit is set; ``0x40 /* X_??? */`` when no bit is known."""
    key = (value, table, zero)
    text = _FLAG_TEXTS.get(key)
    return text if text is not None else _remember(_FLAG_TEXTS, key, _flags(value, table, zero))


# Texts of flag sets, signal sets and file modes seen lately: a trace repeats them, and formatting
# them walks tables or bits. (Xlat tables are never changed once built.)
CACHE_SIZE = 1024
_FLAG_TEXTS: Dict[Tuple[int, Xlat, str], str] = {}
_FILE_MODES: Dict[int, str] = {}


def _remember(cache: Dict[Any, str], key: Any, text: str) -> str:
    """Store text under key in one of the caches above, emptying it first when it is full."""
    if len(cache) >= CACHE_SIZE:
        cache.clear()
    cache[key] = text
    return text


def _flags(value: int, table: Xlat, zero: str) -> str:
    if value == 0:
        return table.get(0) or zero
    names, rest = flag_names(value, table)
    if not names:
        return unknown(value, table)
    if rest:
        names.append(hex(rest))
    return "|".join(names)


def join_flags(parts: Iterable[str]) -> str:
    return "|".join(p for p in parts if p)


def signal(sig: int) -> str:
    name = xlat.signal_name(sig)
    return name if name is not None else str(sig)


def sigset(mask: bytes) -> str:
    """``[INT TERM]``, or ``~[RTMIN RT_1]`` when more than half the bits are set."""
    mask = bytes(mask)
    text = _SIGSETS.get(mask)
    return text if text is not None else _remember(_SIGSETS, mask, _sigset(mask))


_SIGSETS: Dict[bytes, str] = {}  # see CACHE_SIZE


def _sigset(mask: bytes) -> str:
    nbits = len(mask) * 8
    value = int.from_bytes(mask, "little")
    prefix = ""
    if bin(value).count("1") > nbits // 2:
        prefix = "~"
        value = ~value & ((1 << nbits) - 1)
    names = []
    while value:  # the set bits, lowest first
        low = value & -value
        sig = low.bit_length()  # bit N is signal N + 1
        name = xlat.signal_name(sig)
        names.append(name[3:] if name else str(sig))
        value ^= low
    return prefix + "[" + " ".join(names) + "]"


def octal_mode(mode: int) -> str:
    """C's ``%#03o``: 0644, 022, 000."""
    return (f"0{mode:o}").rjust(3, "0")


def file_mode(mode: int) -> str:
    """``S_IFREG|S_ISUID|0755`` (st_mode, mknod's mode)."""
    text = _FILE_MODES.get(mode)
    return text if text is not None else _remember(_FILE_MODES, mode, _file_mode(mode))


def _file_mode(mode: int) -> str:
    parts = []
    ftype = xlat.FILE_TYPES.get(mode & 0o170000)
    if ftype:
        parts.append(ftype)
    elif mode & 0o170000:
        parts.append("%#o" % (mode & 0o170000))
    special, _ = flag_names(mode & 0o7000, xlat.MODE_SPECIAL)
    parts.extend(special)
    parts.append(octal_mode(mode & 0o777))
    return "|".join(parts)


def dev_major(dev: int) -> int:
    return ((dev >> 8) & 0xFFF) | ((dev >> 32) & ~0xFFF)


def dev_minor(dev: int) -> int:
    return (dev & 0xFF) | ((dev >> 12) & ~0xFF)


def makedev(major: int, minor: int) -> str:
    return f"makedev({hexnum(major)}, {hexnum(minor)})"


def dev(value: int) -> str:
    return makedev(dev_major(value), dev_minor(value))


def timespec(ts: tuple[int, int]) -> str:
    return f"{{tv_sec={ts[0]}, tv_nsec={ts[1]}}}"


def iso_time(sec: int, frac: str = "") -> str:
    """strace's comment for file timestamps: local time, ISO 8601 with the fraction and offset."""
    try:
        stamp = datetime.datetime.fromtimestamp(sec).astimezone()
    except (OverflowError, OSError, ValueError):
        return ""
    dot = f".{frac}" if frac else ""
    return f" /* {stamp.strftime('%Y-%m-%dT%H:%M:%S')}{dot}{stamp.strftime('%z')} */"


def file_timespec(ts: tuple[int, int]) -> str:
    """utimensat's timestamps: UTIME_NOW / UTIME_OMIT, or the value with its date."""
    if ts[1] == xlat.UTIME_NOW:
        return "UTIME_NOW"
    if ts[1] == xlat.UTIME_OMIT:
        return "UTIME_OMIT"
    return timespec(ts) + iso_time(ts[0], f"{ts[1]:09d}" if ts[1] else "")


def file_timeval(tv: tuple[int, int]) -> str:
    return timeval(tv) + iso_time(tv[0], f"{tv[1]:06d}" if tv[1] else "")


def timeval(tv: tuple[int, int]) -> str:
    return f"{{tv_sec={tv[0]}, tv_usec={tv[1]}}}"


def rlim(value: int, infinity: str) -> str:
    if value == 0xFFFFFFFFFFFFFFFF:
        return infinity
    if value and value % 1024 == 0:
        return f"{value // 1024}*1024"
    return str(value)


def struct(fields: Iterable[str], more: bool = False) -> str:
    items = list(fields)
    if more:
        items.append("...")
    return "{" + ", ".join(items) + "}"


def array(items: Iterable[str]) -> str:
    return "[" + ", ".join(items) + "]"


def s32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def s64(value: int) -> int:
    value &= 0xFFFFFFFFFFFFFFFF
    return value - (1 << 64) if value & (1 << 63) else value


def u32(value: int) -> int:
    return value & 0xFFFFFFFF
