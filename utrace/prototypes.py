"""Prototypes of library functions, for the no-probe (ltrace) mode: how to show a call's arguments and
its result, as ltrace does (``strlen("abc") = 3``, ``malloc(16) = 0x55d0c0a2b2a0``).

The syntax is ltrace.conf's, the part of it that needs no struct layouts::

    int strcmp(string, string);
    addr malloc(ulong);
    void free(addr);

Types: ``int uint long ulong short ushort char bool octal hex addr file string format void``;
``string[N]`` reads at most N bytes, ``string[retval]`` and ``string[argN]`` as many as the result
or argument N says; ``+T`` is an output argument, shown at the return (``long read(int,
+string[retval], ulong)`` shows what was read); ``enum(NAME=VALUE, NAME, ...)`` shows the name of a
value. Anything else (``array(...)``, ``struct(...)``, a typedef'd name) is shown as an address.
``format`` is printf's format string; the variable arguments its conversions announce follow it
(``printf("%s=%d\\n", "x", 3)``), up to the first floating-point one (those are in xmm registers).
A built-in table covers common libc functions; ``-F FILE`` adds more (an ltrace.conf works: what
the subset does not know falls back to addresses). Strings are escaped as ltrace escapes them.

No well-kept Python library reads ltrace.conf, so this small parser is utrace's own.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .errors import UsageError
from .syscalls.fmt import s32

BUILTIN = """
int strlen(string); int strnlen(string, ulong);
int strcmp(string, string); int strncmp(string, string, ulong);
int strcasecmp(string, string); int strncasecmp(string, string, ulong);
int strcoll(string, string);
string strcpy(addr, string); string strncpy(addr, string, ulong);
string strcat(string, string); string strncat(string, string, ulong);
string strchr(string, char); string strrchr(string, char); string strstr(string, string);
string strdup(string); string strndup(string, ulong);
string strerror(int); string strsignal(int);
string getenv(string); int setenv(string, string, int); int unsetenv(string);
long strtol(string, addr, int); ulong strtoul(string, addr, int);
long strtoll(string, addr, int); ulong strtoull(string, addr, int);
int atoi(string); long atol(string);
addr malloc(ulong); addr calloc(ulong, ulong); addr realloc(addr, ulong); void free(addr);
addr aligned_alloc(ulong, ulong); int posix_memalign(addr, ulong, ulong);
addr memcpy(addr, addr, ulong); addr memmove(addr, addr, ulong); addr memset(addr, char, ulong);
int memcmp(addr, addr, ulong); addr memchr(addr, char, ulong);
int puts(string); int fputs(string, file); int putchar(char); int fputc(char, file);
int printf(format); int fprintf(file, format); int sprintf(addr, format);
int snprintf(addr, ulong, format); int dprintf(int, format);
file fopen(string, string); file fdopen(int, string); int fclose(file); int fflush(file);
ulong fread(addr, ulong, ulong, file); ulong fwrite(addr, ulong, ulong, file);
string fgets(+string, int, file); int fgetc(file); int getc(file); int feof(file); int fileno(file);
int open(string, int, octal); int open64(string, int, octal); int openat(int, string, int, octal);
int close(int); long read(int, +string[retval], ulong); long write(int, string[arg3], ulong);
long lseek(int, long, int); int unlink(string); int mkdir(string, octal); int rmdir(string);
int access(string, int); int chdir(string); string getcwd(+string, ulong);
int isatty(int); int getpid(); int getppid(); int getuid(); int geteuid();
uint sleep(uint); int usleep(uint); long time(addr);
void exit(int); void _exit(int); void abort(); int atexit(addr);
string setlocale(enum(LC_CTYPE=0,LC_NUMERIC,LC_TIME,LC_COLLATE,LC_MONETARY,LC_MESSAGES,LC_ALL), string);
string bindtextdomain(string, string); string textdomain(string);
string dcgettext(string, string, int); string gettext(string);
int getopt(int, addr, string); int getopt_long(int, addr, string, addr, addr);
addr opendir(string); addr readdir(addr); int closedir(addr);
addr dlopen(string, int); addr dlsym(addr, string); int dlclose(addr); string dlerror();
int system(string); int execvp(string, addr); int fork();
int pthread_create(addr, addr, addr, addr); int pthread_join(ulong, addr);
int pthread_mutex_lock(addr); int pthread_mutex_unlock(addr);
int tolower(char); int toupper(char);
int getpagesize(); int __cxa_atexit(addr, addr, addr); int fstat(int, addr); int stat(string, addr);
int posix_fadvise(int, long, long, int); int ioctl(int, ulong, addr); int fcntl(int, int, addr);
"""

# name -> how one value is shown (value, read a C string at an address) -> text
Render = Callable[[int, Callable[[int, int], bytes]], str]


@dataclass(frozen=True)
class Arg:
    render: Render
    output: bool = False  # +T: the function writes it; shown at the return
    size_from: Optional[str] = None  # string[retval] / string[argN]: its length


@dataclass(frozen=True)
class Prototype:
    name: str
    ret: Optional[Render]  # None: void
    args: Tuple[Arg, ...]
    format_at: int = -1  # the index of a printf format argument: variable arguments follow it

    @functools.cached_property
    def at_return(self) -> bool:
        """Whether an argument can only be shown once the function has returned (asked at every hit:
        worked out once)."""
        return any(a.output or a.size_from == "retval" for a in self.args)


def sized_string(value: int, length: int, read: Callable[[int, int], bytes], strsize: int) -> str:
    """A buffer of ``length`` bytes as a string, cut at ``strsize`` (``"..."`` after it)."""
    if not value:
        return "nil"
    if length < 0:
        return f"{value:#x}"  # the call failed: nothing was written
    try:
        data = read(value, min(length, strsize))
    except OSError:
        return f"{value:#x}"
    return _quoted(data, length > strsize)


def _quoted(data: bytes, cut: bool) -> str:
    """``"data"``, with ``...`` after it when the string went on."""
    return f'"{escape(data)}"' + ("..." if cut else "")


def _arg(text: str, strsize: int) -> Arg:
    output = text.startswith("+")
    text = text[1:].strip() if output else text
    sized = re.fullmatch(r"string\[(retval|arg\d+)\]", text)
    if sized:
        return Arg(_addr, output, sized.group(1))
    return Arg(_type(text, strsize) or _addr, output)


# printf conversions: flags, width, precision, length, conversion
_CONVERSION = re.compile(
    rb"%[-+ #0]*(?:\*|\d+)?(?:\.(?:\*|\d+))?(hh|h|ll|l|j|z|t|L|q)?([diouxXcspfFeEgGaAn%])"
)


def format_arguments(fmt: bytes, arg: Callable[[int], int], first: int, read: Callable[[int, int], bytes],
                     strsize: int) -> List[str]:  # fmt: skip
    """The variable arguments a printf format announces, from argument number ``first`` on (1-based),
    as ltrace shows them; it stops at a floating-point conversion (xmm registers, not read here)."""
    out: List[str] = []
    n = first
    for m in _CONVERSION.finditer(fmt):
        length, conv = (m.group(1) or b"").decode(), m.group(2).decode()
        if conv == "%":
            continue
        if conv in "fFeEgGaA" or b"*" in m.group(0):
            out.append("...")
            break
        value = arg(n)
        n += 1
        wide = length in ("l", "ll", "j", "z", "t", "q")
        if conv in "di":
            out.append(_SCALARS["long" if wide else "int"](value, read))
        elif conv in "ouxX":
            value &= (1 << 64) - 1 if wide else 0xFFFFFFFF
            out.append(f"{value:#x}" if conv in "xX" else (f"0{value:o}" if conv == "o" else str(value)))
        elif conv == "c":
            out.append(_char(value, read))
        elif conv == "s":
            out.append(_string(strsize)(value, read))
        else:  # p, n
            out.append(_addr(value, read))
    return out


def _signed(bits: int) -> Render:
    def render(value: int, read: Callable[[int, int], bytes]) -> str:
        value &= (1 << bits) - 1
        return str(value - (1 << bits) if value >> (bits - 1) else value)

    return render


def _unsigned(bits: int) -> Render:
    return lambda value, read: str(value & ((1 << bits) - 1))


def _addr(value: int, read: Callable[[int, int], bytes]) -> str:
    return f"{value:#x}" if value else "nil"


_ESCAPES = {
    0x0A: "\\n", 0x09: "\\t", 0x0D: "\\r", 0x5C: "\\\\", 0x22: '\\"',
    0x0B: "\\v", 0x0C: "\\f", 0x07: "\\a", 0x08: "\\b",
}  # fmt: skip


def escape(data: bytes) -> str:
    """Bytes as ltrace shows them in a string: printable ASCII as is, C escapes, else ``\\ooo``."""
    return "".join(_ESCAPES.get(b) or (chr(b) if 0x20 <= b < 0x7F else f"\\{b:03o}") for b in data)


def _char(value: int, read: Callable[[int, int], bytes]) -> str:
    b = value & 0xFF
    return "'" + ("\\'" if b == 0x27 else '"' if b == 0x22 else escape(bytes([b]))) + "'"


def _string(limit: int) -> Render:
    def render(value: int, read: Callable[[int, int], bytes]) -> str:
        if not value:
            return "nil"
        try:
            data = read(value, limit + 1)
        except OSError:
            return f"{value:#x}"
        return _quoted(data[:limit], len(data) > limit)

    return render


_SCALARS: Dict[str, Render] = {
    "int": _signed(32),
    "uint": _unsigned(32),
    "long": _signed(64),
    "ulong": _unsigned(64),
    "short": _signed(16),
    "ushort": _unsigned(16),
    "bool": lambda value, read: "true" if value & 0xFF else "false",
    "char": _char,
    "octal": lambda value, read: "0" + format(value & 0xFFFFFFFF, "o"),
    "hex": lambda value, read: f"{value:#x}",
    "addr": _addr,
    "file": _addr,
}
_DECL = re.compile(r"^\s*(?P<ret>[^\s(]+(?:\[[^\]]*\])?)\s+(?P<name>[A-Za-z_]\w*)\s*\((?P<args>.*)\)\s*$")


def _enum(body: str) -> Render:
    """``enum(A=1, B, C=5)``: B is 2, as in C."""
    names: Dict[int, str] = {}
    value = -1
    for item in body.split(","):
        name, equals, number = item.strip().partition("=")
        value = int(number, 0) if equals else value + 1
        names.setdefault(value, name.strip())

    def render(value: int, read: Callable[[int, int], bytes]) -> str:
        value = s32(value)
        return names.get(value, str(value))

    return render


def _type(text: str, strsize: int) -> Optional[Render]:
    """A renderer for one ltrace.conf type (None for void)."""
    text = text.strip()
    if text == "void":
        return None
    m = re.fullmatch(r"enum\((.*)\)", text)
    if m:
        return _enum(m.group(1))
    m = re.fullmatch(r"(string|format)(?:\[(\d+)\])?", text)
    if m:
        return _string(min(int(m.group(2)), strsize) if m.group(2) else strsize)
    m = re.fullmatch(r"(?:hex|oct)\((\w+)\)", text)
    if m and m.group(1) in _SCALARS:
        return _SCALARS["hex"] if text.startswith("hex") else _SCALARS["octal"]
    return _SCALARS.get(text, _addr)  # arrays, structs, typedef'd names: an address


def _split_args(text: str) -> List[str]:
    """Top-level commas only: ``array(char, arg2), int`` is two arguments."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += {"(": 1, "[": 1, ")": -1, "]": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p for p in (part.strip() for part in parts) if p]


def parse(text: str, strsize: int = 32) -> Dict[str, Prototype]:
    """``name -> Prototype`` from ltrace.conf text. A line starting with ``;`` is a comment, and so is
    the rest of a line after an empty ``;`` (``int open(string,int,octal);  ; may have 2 args``);
    ``typedef`` lines and declarations this subset cannot read are skipped, as ltrace skips what it
    does not know."""
    found: Dict[str, Prototype] = {}
    for line in text.splitlines():
        if line.lstrip().startswith((";", "#")):
            continue
        for decl in line.split(";")[:-1]:  # the parts a ";" ends
            if not decl.strip():
                break  # ";;" or "; ;": a comment follows
            m = _DECL.match(" ".join(decl.split()))
            if m is None or decl.strip().startswith("typedef"):
                continue
            args = [] if m.group("args").strip() in ("", "void") else _split_args(m.group("args"))
            args = [a for a in args if a != "..."]
            renders = tuple(_arg(a, strsize) for a in args)
            at = next((i for i, a in enumerate(args) if a.startswith("format")), -1)
            found[m.group("name")] = Prototype(m.group("name"), _type(m.group("ret"), strsize), renders, at)
    return found


def load(paths: Sequence[str], strsize: int = 32) -> Dict[str, Prototype]:
    """The built-in table, then each file in ``paths`` (later ones win)."""
    table = parse(BUILTIN, strsize)
    for path in paths:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                table.update(parse(f.read(), strsize))
        except OSError as err:
            raise UsageError(f"-F {path}: {err.strerror}") from err
    return table
