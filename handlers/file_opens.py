"""file_opens: every file the program opens through libc's fopen, open or openat, one line per call.

Like bcc's ``opensnoop``, but at the library call: utrace probes libc's ``fopen``, ``open`` and
``openat`` (with their ``*64`` aliases, the same functions), reads the path and the flags (and the
mode when ``O_CREAT`` or ``O_TMPFILE`` asks for one) at the entry, and prints the call with its
result when it returns: the file descriptor, or the ``FILE *`` and its descriptor, or the failure
with ``errno`` (read from the thread's TLS). Flags are decoded to their names in strace's order, so
an ``openat`` line reads like strace's (``samples/plug_files.c``)::

    plug_files-18092 open("/dev/null", O_RDONLY|O_CLOEXEC) = 3
    plug_files-18092 openat(AT_FDCWD, "/tmp/d/new", O_WRONLY|O_CREAT|O_TRUNC, 0640) = 4
    plug_files-18092 open("/nonexistent-utrace/missing", O_RDONLY) = -1 ENOENT (No such file or directory)
    plug_files-18092 open("/tmp/d", O_RDONLY|O_DIRECTORY) = 5
    plug_files-18092 openat(5, "new", O_RDWR|O_APPEND|O_NOFOLLOW) = 6
    plug_files-18092 openat(5, "new", O_WRONLY|O_CREAT|O_EXCL, 0600) = -1 EEXIST (File exists)
    plug_files-18092 openat(5, "we\\"ird\\tna\\0017m\\303\\251", O_RDONLY|O_CREAT|O_NONBLOCK, 000) = 7
    plug_files-18092 fopen("/etc/passwd", "re") = 0x564ce7dc72a0 (fd 8)
    plug_files-18092 fopen("/tmp/d/missing", "r") = NULL ENOENT (No such file or directory)
    plug_files-18092 fopen("/tmp/d/log", "w") = 0x564ce7dc7480 (fd 9)

Run it::

    utrace --handler handlers/file_opens.py -- cat /etc/hostname
    utrace --handler handlers/file_opens.py fopen -- ./app       # only the functions named
    utrace --handler handlers/file_opens.py -p 1234 -o opens.txt

The PROBEs of the command line, if any, choose among ``fopen``, ``open`` and ``openat``. A call made
inside another traced call (``fopen`` opens its file with ``open``) is shown once, as the outer call.
Not shown, because they are not those libc functions: the dynamic linker's opens of shared libraries,
glibc's internal "no-cancel" opens (``opendir``, locale and ``nsswitch`` files) and raw
``syscall(SYS_openat)``; strace shows them all. A call still blocked when tracing ends (a FIFO) is
listed at the end with ``= ?``.

Written only against utrace's public API (``utrace.Tracer.add_probe``, ``utrace.handlers.Plugin``,
``Event.read_string``); see handlers/README.md.
"""

from __future__ import annotations

import errno
import os
import struct
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Sequence, Tuple

import utrace
from utrace import open_flags
from utrace.handlers import Handler, Plugin

if TYPE_CHECKING:
    from utrace import Event, Tracer

FUNCTIONS = ("fopen", "open", "openat")
PATH_MAX = 4096
AT_FDCWD = -100
FILENO_OFFSET = 0x70  # glibc's struct _IO_FILE: _fileno follows _flags and 13 pointers (x86-64)

O_CREAT = 0o100  # the two flags that make open() take a mode (<asm-generic/fcntl.h>, x86-64)
O_TMPFILE_BIT = 0o20000000

# __errno_location in x86-64 glibc: mov rax, [rip+errno@gottpoff]; add rax, fs:0; ret
ERRNO_LOCATION_HEAD = b"\x48\x8b\x05"
ERRNO_LOCATION_TAIL = b"\x64\x48\x03\x04\x25\x00\x00\x00\x00\xc3"


class FileOpens(Plugin):
    """One line per fopen/open/openat call: path, decoded flags, result (and errno on failure)."""

    def __init__(self) -> None:
        self.functions: List[str] = []
        self.errno_location: Optional[int] = None
        # per thread, the traced call it is inside: (rsp at its entry, its text), shown at the return
        self.active: Dict[int, Tuple[int, str]] = {}
        self.comms: Dict[int, str] = {}
        self._describe: Dict[str, Callable[[Event], str]] = {
            "fopen": self._fopen_call,
            "open": self._open_call,
            "openat": self._openat_call,
        }

    def install(self, tracer: Tracer, targets: Sequence[str]) -> None:
        unknown = [t for t in targets if t not in FUNCTIONS]
        if unknown:
            raise utrace.UsageError(
                f"file_opens traces {', '.join(FUNCTIONS)}; {', '.join(unknown)} is not one of them"
            )
        self.functions = list(dict.fromkeys(targets)) or list(FUNCTIONS)
        for name in self.functions:
            tracer.add_probe(f"libc:{name}", self, name=name, ret=True)
        self.errno_location = find_function(tracer, "libc:__errno_location")

    # --- hits ---------------------------------------------------------------------------------------
    def on_entry(self, event: Event) -> None:
        rsp = int(event.regs.rsp)
        outer = self.active.get(event.tid)
        if outer is not None and rsp < outer[0]:
            event.want_return = False  # inside a traced call (open inside fopen): shown as that call
            return
        self.active[event.tid] = (rsp, self._describe[event.probe.name](event))
        self.comms[event.tid] = event.comm

    def on_return(self, event: Event) -> None:
        entry = self.active.pop(event.tid, None)
        if entry is None:
            return
        if event.probe.name == "fopen":
            result = self._fopen_result(event)
        else:
            result = self._fd_result(event)
        self.output.line(f"{event.comm}-{event.tid} {entry[1]} = {result}")

    def finish(self) -> None:
        for tid, (_, call) in sorted(self.active.items()):
            self.output.line(f"{self.comms.get(tid, '?')}-{tid} {call} = ? (had not returned)")
        self.active.clear()

    # --- the calls ----------------------------------------------------------------------------------
    def _fopen_call(self, event: Event) -> str:
        return f"fopen({path_text(event, event.arg(1))}, {path_text(event, event.arg(2))})"

    def _open_call(self, event: Event) -> str:
        return f"open({path_text(event, event.arg(1))}, {open_flags_and_mode(event.arg(2), event.arg(3))})"

    def _openat_call(self, event: Event) -> str:
        path = path_text(event, event.arg(2))
        return (
            f"openat({dirfd_text(event.arg(1))}, {path}, {open_flags_and_mode(event.arg(3), event.arg(4))})"
        )

    def _fd_result(self, event: Event) -> str:
        fd = to_int32(event.retval or 0)
        if fd != -1:
            return str(fd)
        return "-1" + self._errno_text(event)

    def _fopen_result(self, event: Event) -> str:
        stream = event.retval or 0
        if stream == 0:
            return "NULL" + self._errno_text(event)
        try:
            fd = struct.unpack("<i", event.read(stream + FILENO_OFFSET, 4))[0]
        except utrace.TargetError:
            return f"{stream:#x}"
        return f"{stream:#x} (fd {fd})"

    def _errno_text(self, event: Event) -> str:
        code = read_errno(event, self.errno_location)
        if code is None:
            return ""
        return f" {errno.errorcode.get(code, str(code))} ({os.strerror(code)})"


# --- the target's memory ----------------------------------------------------------------------------
def find_function(tracer: Tracer, target: str) -> Optional[int]:
    """The address of a function, found by probing it and removing the probe again (None if it
    cannot be probed: a static program, a libc without it)."""
    try:
        probe = tracer.add_probe(target, Handler(), name="<file_opens lookup>")
    except utrace.UtraceError:
        return None
    tracer.remove_probe(probe)
    return probe.address


def read_errno(event: Event, errno_location: Optional[int]) -> Optional[int]:
    """The thread's errno: the TLS offset comes from the GOT slot __errno_location reads. None when
    the code is not the expected one (another libc, or another program after exec)."""
    if errno_location is None:
        return None
    try:
        code = event.read(errno_location, 17)
        if code[:3] != ERRNO_LOCATION_HEAD or code[7:] != ERRNO_LOCATION_TAIL:
            return None
        got = errno_location + 7 + struct.unpack("<i", code[3:7])[0]
        address = (int(event.regs.fs_base) + event.read_u64(got)) & (2**64 - 1)
        value = struct.unpack("<i", event.read(address, 4))[0]
    except utrace.TargetError:
        return None
    return value if 0 < value < 4096 else None


def path_text(event: Event, address: int) -> str:
    """A C string as strace prints it: quoted and escaped, NULL, or the address if unreadable."""
    if address == 0:
        return "NULL"
    data = event.read_string(address, PATH_MAX)
    if not data:
        try:
            event.read(address, 1)
        except utrace.TargetError:
            return f"{address:#x}"
    return '"' + escape(data) + '"'


ESCAPES = {ord("\t"): "\\t", ord("\n"): "\\n", ord("\v"): "\\v", ord("\f"): "\\f", ord("\r"): "\\r",
           ord('"'): '\\"', ord("\\"): "\\\\"}  # fmt: skip


def escape(data: bytes) -> str:
    """strace's escaping: \\t \\n \\v \\f \\r \\" \\\\, printable ASCII as is, other bytes in octal
    (three digits when an octal digit follows, so the text reads back unambiguously)."""
    out = []
    for i, b in enumerate(data):
        if b in ESCAPES:
            out.append(ESCAPES[b])
        elif 32 <= b < 127:
            out.append(chr(b))
        elif i + 1 < len(data) and 0x30 <= data[i + 1] <= 0x37:
            out.append(f"\\{b:03o}")
        else:
            out.append(f"\\{b:o}")
    return "".join(out)


# --- decoding ---------------------------------------------------------------------------------------
def to_int32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def dirfd_text(value: int) -> str:
    fd = to_int32(value)
    return "AT_FDCWD" if fd == AT_FDCWD else str(fd)


def open_flags_and_mode(flags: int, mode: int) -> str:
    """The flags, and the mode when the call creates a file (as strace: ``0644``, ``000``)."""
    text = open_flags(flags)
    if flags & (O_CREAT | O_TMPFILE_BIT):
        mode &= 0o7777
        text += ", " + (f"0{mode:o}" if mode else "0").zfill(3)
    return text
