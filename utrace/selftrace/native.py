"""ctypes side of self-trace: the stub's mapping, raw rt_sigaction, the dispatch prctl, seccomp.

Names follow the kernel headers (<linux/prctl.h>, <linux/seccomp.h>, <linux/filter.h>,
<asm/signal.h>). Everything that must run while the selector says BLOCK goes through the stub's
``raw_syscall`` helper, whose syscall instruction lies in the allowed region.
"""

from __future__ import annotations

import ctypes
import os
import struct
from typing import Iterable, List, Optional, Tuple

from . import stub

_RING_WORDS = struct.Struct(f"<{stub.N_RING * stub.RING_ENTRY // 8}Q")  # nr, 6 args, ret per entry
_RING_STAMPS = struct.Struct(f"<{2 * stub.N_RING}q")  # struct timespec per entry

_libc = ctypes.CDLL(None, use_errno=True)
_mmap = _libc.mmap
_mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_mmap.restype = ctypes.c_void_p
_mprotect = _libc.mprotect
_mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_mprotect.restype = ctypes.c_int

PROT_READ, PROT_WRITE, PROT_EXEC = 1, 2, 4
MAP_PRIVATE, MAP_ANONYMOUS = 0x02, 0x20
MAP_FAILED = ctypes.c_void_p(-1).value

# --- <linux/prctl.h> -----------------------------------------------------------------------------
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SYSCALL_USER_DISPATCH = 59
PR_SYS_DISPATCH_OFF = 0
PR_SYS_DISPATCH_ON = 1

# --- <asm/siginfo.h>: si_code of SIGSYS ----------------------------------------------------------
SYS_SECCOMP = 1
SYS_USER_DISPATCH = 2

# --- <asm/signal.h> ------------------------------------------------------------------------------
SIGSYS = 31
SA_SIGINFO = 0x00000004
SA_ONSTACK = 0x08000000
SA_RESTORER = 0x04000000
SA_NODEFER = 0x40000000
SIG_DFL, SIG_IGN = 0, 1
NSIG = 64

# --- <linux/seccomp.h>, <linux/filter.h>, <linux/audit.h> ----------------------------------------
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_RET_TRAP = 0x00030000
SECCOMP_RET_ALLOW = 0x7FFF0000
AUDIT_ARCH_X86_64 = 0xC000003E
BPF_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
BPF_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
BPF_AND_K = 0x54  # BPF_ALU | BPF_AND | BPF_K
BPF_RET_K = 0x06  # BPF_RET | BPF_K
# struct seccomp_data: nr 0, arch 4, instruction_pointer 8 (u64: low word 8, high word 12), args 16
SD_NR, SD_ARCH, SD_IP_LO, SD_IP_HI = 0, 4, 8, 12

SYS_rt_sigaction = 13
SYS_prctl = 157
SYS_seccomp = 317
SYS_gettid = 186


class kernel_sigaction(ctypes.Structure):
    """The kernel's struct sigaction on x86-64 (not glibc's): handler, flags, restorer, mask."""

    _fields_ = [
        ("sa_handler", ctypes.c_uint64),
        ("sa_flags", ctypes.c_uint64),
        ("sa_restorer", ctypes.c_uint64),
        ("sa_mask", ctypes.c_uint64),
    ]


class sock_filter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class sock_fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(sock_filter))]


RawSyscall = ctypes.CFUNCTYPE(
    ctypes.c_long,
    *([ctypes.c_long] + [ctypes.c_ulong] * 6),  # nr, six arguments
)


RunSaved = ctypes.CFUNCTYPE(ctypes.c_long, ctypes.c_void_p, ctypes.c_long)  # (ucontext, nr)


class StubMapping:
    """The stub's pages in this process: code (r-x, the allowed region) and data (rw-).

    Mapped once per process and per mechanism and never unmapped: a thread started through a
    trampoline may still be two instructions away from leaving the page when the block ends.
    """

    def __init__(self, si_code: int) -> None:
        size = stub.CODE_SIZE + stub.DATA_SIZE
        base = _mmap(None, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        if base in (None, MAP_FAILED):
            err = ctypes.get_errno()
            raise OSError(err, f"mmap of the self-trace stub: {os.strerror(err)}")
        self.code_base = int(base)
        self.data_base = self.code_base + stub.CODE_SIZE
        self.si_code = si_code
        self.code = stub.generate(self.code_base, self.data_base, si_code)
        ctypes.memmove(self.code_base, self.code.code, len(self.code.code))
        if _mprotect(self.code_base, stub.CODE_SIZE, PROT_READ | PROT_EXEC) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"mprotect of the self-trace stub: {os.strerror(err)}")
        self.handler = self.code_base + self.code.handler
        self.sig_wrapper = self.code_base + self.code.sig_wrapper
        self._handlers = (ctypes.c_uint64 * (NSIG + 1)).from_address(self.data_base + stub.D_HANDLERS)
        self.restorer = self.code_base + self.code.restorer
        self.raw_syscall = RawSyscall(self.code_base + self.code.raw_syscall)
        self.run_saved = RunSaved(self.code_base + self.code.run_saved)
        self._selector = ctypes.c_uint8.from_address(self.data_base + stub.D_SELECTOR)
        self._kinds = (ctypes.c_uint8 * stub.KIND_SIZE).from_address(self.data_base + stub.D_KIND)
        self.ring_w = ctypes.c_uint64.from_address(self.data_base + stub.D_RING_W)
        self.ring_r = ctypes.c_uint64.from_address(self.data_base + stub.D_RING_R)
        self.done = ctypes.c_uint64.from_address(self.data_base + stub.D_DONE)
        self.raw_count = ctypes.c_uint64.from_address(self.data_base + stub.D_RAW_COUNT)
        self.last_ret = ctypes.c_int64.from_address(self.data_base + stub.D_LAST_RET)

    # --- data page fields --------------------------------------------------------------------------
    @property
    def selector(self) -> int:
        return int(self._selector.value)

    @selector.setter
    def selector(self, value: int) -> None:
        self._selector.value = value  # a plain store: no system call

    def set_callback(self, address: int) -> None:
        ctypes.c_uint64.from_address(self.data_base + stub.D_CALLBACK).value = address

    def set_thread(self, tid: int, check: bool) -> None:
        ctypes.c_int32.from_address(self.data_base + stub.D_TID).value = tid
        ctypes.c_uint8.from_address(self.data_base + stub.D_CHECK_TID).value = 1 if check else 0

    def set_python_api(self, add_pending_call: int, set_object: int) -> None:
        """Addresses of Py_AddPendingCall and PyErr_SetObject, for exceptions raised after a trap."""
        ctypes.c_uint64.from_address(self.data_base + stub.D_ADD_PENDING).value = add_pending_call
        ctypes.c_uint64.from_address(self.data_base + stub.D_SET_OBJECT).value = set_object

    def set_clock(self, clock_gettime: int) -> None:
        """Address of libc's clock_gettime, for the time of the records the stub makes."""
        ctypes.c_uint64.from_address(self.data_base + stub.D_CLOCK_GETTIME).value = clock_gettime

    def set_pending_exception(self, exc_type: int, exc_value: int) -> None:
        """After the callback returns, the stub has the main thread raise this (ids of live objects)."""
        ctypes.c_uint64.from_address(self.data_base + stub.D_EXC_TYPE).value = exc_type
        ctypes.c_uint64.from_address(self.data_base + stub.D_EXC_VALUE).value = exc_value
        ctypes.c_uint64.from_address(self.data_base + stub.D_PENDING).value = 1

    def real_handler(self, sig: int) -> int:
        return int(self._handlers[sig])

    def set_real_handler(self, sig: int, address: int) -> None:
        self._handlers[sig] = address

    def set_kinds(self, kinds: bytes) -> None:
        ctypes.memmove(self._kinds, kinds, stub.KIND_SIZE)

    @property
    def ring_written(self) -> int:
        return int(self.ring_w.value)

    def ring_entries(self, first: int, end: int) -> List[Tuple[int, Tuple[int, ...], int, float]]:
        """(nr, args, ret, time) of deferred records ``first`` to ``end`` - 1 (counted since the mapping
        was made; at most N_RING of them): the time is CLOCK_MONOTONIC at the trap, as
        time.monotonic() gives it. One copy of the ring, not a ctypes access per field."""
        words = _RING_WORDS.unpack(ctypes.string_at(self.data_base + stub.D_RING, _RING_WORDS.size))
        stamps = _RING_STAMPS.unpack(ctypes.string_at(self.data_base + stub.D_RING_TS, _RING_STAMPS.size))
        entries = []
        for index in range(first, end):
            slot = index % stub.N_RING
            base = slot * 8
            ret = words[base + 7]
            ret = ret - (1 << 64) if ret >> 63 else ret  # the kernel's value: -errno on failure
            when = stamps[2 * slot] + stamps[2 * slot + 1] * 1e-9
            entries.append((words[base], words[base + 1 : base + 7], ret, when))
        return entries

    # --- system calls from the allowed region ------------------------------------------------------
    def syscall(self, nr: int, *args: int) -> int:
        """A raw system call (result as the kernel returns it: -errno on failure)."""
        padded = list(args) + [0] * (6 - len(args))
        return int(self.raw_syscall(nr, *padded))

    def checked(self, what: str, nr: int, *args: int) -> int:
        res = self.syscall(nr, *args)
        if -4096 < res < 0:
            raise OSError(-res, f"{what}: {os.strerror(-res)}")
        return res

    def sigaction(self, sig: int, act: Optional[kernel_sigaction]) -> kernel_sigaction:
        """Raw rt_sigaction: install ``act`` (None: only query) and return the previous action.

        glibc's sigaction() would replace sa_restorer with its own __restore_rt, whose rt_sigreturn
        is outside the allowed region.
        """
        old = kernel_sigaction()
        new = ctypes.addressof(act) if act is not None else 0
        self.checked(f"rt_sigaction({sig})", SYS_rt_sigaction, sig, new, ctypes.addressof(old), 8)
        return old

    def install_handler(self) -> kernel_sigaction:
        """Make the stub the SIGSYS handler; returns the previous action.

        SA_NODEFER: SIGSYS must stay deliverable inside the handler (a trapped call while it is
        blocked kills the process). No SA_ONSTACK: the Python callback needs a real stack, not a
        small alternate one. An empty sa_mask: other handlers may run inside ours, and the mask a
        natively run call sees is the interrupted code's own.
        """
        act = kernel_sigaction(
            sa_handler=self.handler,
            sa_flags=SA_SIGINFO | SA_NODEFER | SA_RESTORER,
            sa_restorer=self.restorer,
            sa_mask=0,
        )
        return self.sigaction(SIGSYS, act)

    def dispatch_on(self) -> None:
        """Syscall User Dispatch on for the calling thread, the code page its allowed region."""
        self.checked(
            "prctl(PR_SET_SYSCALL_USER_DISPATCH)",
            SYS_prctl,
            PR_SET_SYSCALL_USER_DISPATCH,
            PR_SYS_DISPATCH_ON,
            self.code_base,
            stub.CODE_SIZE,
            self.data_base + stub.D_SELECTOR,
        )

    def dispatch_off(self) -> None:
        self.checked(
            "prctl(PR_SYS_DISPATCH_OFF)", SYS_prctl, PR_SET_SYSCALL_USER_DISPATCH, PR_SYS_DISPATCH_OFF
        )

    def install_filter(self, trap: Iterable[int], never_trap: Iterable[int]) -> None:
        """seccomp RET_TRAP for ``trap`` on the calling thread only (no TSYNC). Irreversible."""
        prog = build_filter(self.code_base, trap, never_trap)
        self.checked("prctl(PR_SET_NO_NEW_PRIVS)", SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        insns = (sock_filter * len(prog))(*(sock_filter(c, t, f, k) for c, t, f, k in prog))
        fprog = sock_fprog(len(prog), insns)
        self.checked(
            "seccomp(SET_MODE_FILTER)", SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, ctypes.addressof(fprog)
        )

    def gettid(self) -> int:
        return self.syscall(SYS_gettid)


def build_filter(
    code_base: int, trap: Iterable[int], never_trap: Iterable[int]
) -> List[Tuple[int, int, int, int]]:
    """A classic-BPF seccomp program: allow the stub's page, trap the numbers in ``trap``.

    Calls from the code page (the stub's own syscalls, the trampolines) and other architectures are
    allowed. Then one ``jeq`` per number, each followed by its ``ret``, so that no jump offset
    grows with the list: the shorter of the trap list and its complement is used.
    """
    traps = sorted(set(trap) - set(never_trap))
    universe = set(range(stub.KIND_SIZE))
    allows = sorted(universe - set(traps))
    hi, lo = code_base >> 32, code_base & 0xFFFFFFFF
    prog: List[Tuple[int, int, int, int]] = [
        (BPF_LD_W_ABS, 0, 0, SD_ARCH),
        (BPF_JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        (BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),  # not x86-64: not ours
        (BPF_LD_W_ABS, 0, 0, SD_IP_HI),
        (BPF_JEQ_K, 0, 4, hi),
        (BPF_LD_W_ABS, 0, 0, SD_IP_LO),
        (BPF_AND_K, 0, 0, 0xFFFFF000),
        (BPF_JEQ_K, 0, 1, lo),
        (BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),  # the stub's page
        (BPF_LD_W_ABS, 0, 0, SD_NR),
    ]
    if len(traps) <= len(allows):
        listed, hit, miss = traps, SECCOMP_RET_TRAP, SECCOMP_RET_ALLOW
    else:  # numbers outside the table (x32, junk) trap too; the stub runs them natively
        listed, hit, miss = allows, SECCOMP_RET_ALLOW, SECCOMP_RET_TRAP
    for nr in listed:
        prog.append((BPF_JEQ_K, 0, 1, nr))
        prog.append((BPF_RET_K, 0, 0, hit))
    prog.append((BPF_RET_K, 0, 0, miss))
    return prog


def dispatch_supported() -> bool:
    """Whether this kernel has Syscall User Dispatch (switching it off is harmless when it is off)."""
    res = _libc.syscall(
        ctypes.c_long(SYS_prctl),
        ctypes.c_long(PR_SET_SYSCALL_USER_DISPATCH),
        ctypes.c_long(PR_SYS_DISPATCH_OFF),
        ctypes.c_long(0),
        ctypes.c_long(0),
        ctypes.c_long(0),
    )
    return bool(res == 0)


def seccomp_trap_supported() -> bool:
    try:
        with open("/proc/sys/kernel/seccomp/actions_avail") as f:
            return "trap" in f.read().split()
    except OSError:
        return os.path.exists("/proc/self/status") and _has_seccomp_field()


def _has_seccomp_field() -> bool:
    with open("/proc/self/status") as f:
        return any(line.startswith("Seccomp:") for line in f)


__all__ = ["StubMapping", "kernel_sigaction", "build_filter", "dispatch_supported", "seccomp_trap_supported"]
