"""A guardian for attached processes: it puts the original bytes back if utrace dies.

A launched program dies with its tracer (PTRACE_O_EXITKILL). An attached one must not: but if
utrace is killed with SIGKILL, the kernel detaches its tracees with utrace's int3 bytes still in
their code, and the next probe hit kills the program with SIGTRAP. So when utrace attaches, it
starts a small process (double-forked, so it is not utrace's child) that holds the read end of a
pipe; utrace tells it each int3 it writes and removes. When the pipe reaches end-of-file without
the "detached cleanly" word, utrace is gone: the guardian writes every original byte back through
/proc/PID/mem at once (no ptrace needed for one's own process), which shrinks the window in which
a hit can kill the program from "forever" to the few microseconds before the guardian wakes.

Left out on purpose: a thread stopped at an int3 at the very moment utrace died, and return
addresses replaced by return probes, need registers changed or a stack walked, that is ptrace
again; those cases remain (see the README).
"""

from __future__ import annotations

import os
import struct
from typing import Dict, Optional

_ARM = b"A"
_DISARM = b"D"
_RESET = b"R"
_DONE = b"X"
_RECORD = struct.Struct("<cQB")  # kind, address, original byte


class Guardian:
    """utrace's end of the pipe (one per attached process)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.fd: Optional[int] = None
        read_end, write_end = os.pipe()
        child = os.fork()
        if child == 0:  # pragma: no cover - runs in the guardian
            try:
                os.close(write_end)
                if os.fork() == 0:
                    os.setsid()  # no terminal signals (a ^C meant for utrace must not kill it)
                    _guard(pid, read_end)
            finally:
                os._exit(0)
        os.close(read_end)
        os.waitpid(child, 0)  # the middle process exits at once: the guardian is nobody's child
        self.fd = write_end

    def _send(self, kind: bytes, addr: int = 0, byte: int = 0) -> None:
        if self.fd is not None:
            try:
                os.write(self.fd, _RECORD.pack(kind, addr, byte))
            except OSError:
                self.fd = None  # the guardian is gone; tracing goes on without it

    def armed(self, addr: int, orig: int) -> None:
        self._send(_ARM, addr, orig)

    def disarmed(self, addr: int) -> None:
        self._send(_DISARM, addr)

    def reset(self) -> None:
        """exec: the old address space and its int3 bytes are gone."""
        self._send(_RESET)

    def done(self) -> None:
        """Detached cleanly: the guardian has nothing to do."""
        self._send(_DONE)
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _guard(pid: int, fd: int) -> None:  # pragma: no cover - runs in the guardian
    null = os.open(os.devnull, os.O_RDWR)
    for std in (0, 1, 2):
        os.dup2(null, std)
    for other in range(3, 1024):
        if other != fd:
            try:
                os.close(other)
            except OSError:
                pass
    table: Dict[int, int] = {}
    pending = b""
    while True:
        chunk = os.read(fd, 4096 * _RECORD.size)
        if not chunk:
            break
        pending += chunk
        while len(pending) >= _RECORD.size:
            kind, addr, byte = _RECORD.unpack_from(pending)
            pending = pending[_RECORD.size :]
            if kind == _ARM:
                table[addr] = byte
            elif kind == _DISARM:
                table.pop(addr, None)
            elif kind == _RESET:
                table.clear()
            elif kind == _DONE:
                return
    # end of file without _DONE: utrace died. Put every original byte back now.
    try:
        mem = os.open(f"/proc/{pid}/mem", os.O_RDWR)
    except OSError:
        return
    for addr, byte in table.items():
        try:
            if os.pread(mem, 1, addr) == b"\xcc":
                os.pwrite(mem, bytes([byte]), addr)
        except OSError:
            pass
    os.close(mem)
