"""The self-trace session: the Python side of a trapped call, and entering and leaving the mode.

The stub (``stub.py``) calls ``_on_sigsys(siginfo, ucontext)`` for selected calls only, with the
selector already at ALLOW: every system call made here runs natively and is never traced.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import io
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import (
    Any,
    Callable,
    Collection,
    Dict,
    FrozenSet,
    Iterable,
    List,
    NamedTuple,
    Optional,
    Tuple,
    Union,
)

from .. import kernel
from ..errors import UsageError, UtraceError
from ..syscalls import (
    SYSCALL_NAMES,
    SYSCALL_NUMBERS,
    SyscallRecord,
    capture_entry,
    capture_exit,
    format_call,
    format_entry,
    format_resumed,
    parse_syscall_set,
    readers_for,
)
from ..syscalls.capture import ENTRY_RULES, EXIT_RULES
from ..syscalls.signatures import prototype
from . import native, stub

# --- which calls go where ----------------------------------------------------------------------------
#: Run natively by the stub whatever the selection: the allocator, the GIL and thread start-up make
#: them while holding locks the Python callback would need (routing them to Python deadlocks).
ALWAYS_NATIVE: FrozenSet[int] = frozenset(
    SYSCALL_NUMBERS[n]
    for n in (
        "futex",
        "mmap",
        "munmap",
        "mremap",
        "brk",
        "madvise",
        "mprotect",
        "sched_yield",
        "set_robust_list",
        "rseq",
        "membarrier",
    )
)
#: Re-issued from a trampoline after rt_sigreturn, never shown to the handler: a child or thread
#: must not start inside the signal handler (and glibc's fork holds its malloc locks here); a
#: sigaltstack change made inside a handler is undone by rt_sigreturn.
REISSUED: FrozenSet[int] = frozenset(
    SYSCALL_NUMBERS[n] for n in ("clone", "clone3", "fork", "vfork", "sigaltstack")
)
SYS_rt_sigaction = SYSCALL_NUMBERS["rt_sigaction"]
SYS_prctl = SYSCALL_NUMBERS["prctl"]
SYS_rt_sigprocmask = SYSCALL_NUMBERS["rt_sigprocmask"]
SYS_rt_sigreturn = SYSCALL_NUMBERS["rt_sigreturn"]
#: Never traced: the stub forwards a foreign handler's rt_sigreturn; recording it has no result.
NEVER_SELECTED: FrozenSet[int] = ALWAYS_NATIVE | {SYS_rt_sigreturn}
#: Calls that do not return: their record (and trace line) is complete before they run.
NO_RETURN: FrozenSet[int] = frozenset(SYSCALL_NUMBERS[n] for n in ("exit", "exit_group"))
#: Calls that return only when they fail: their line starts before they run, strace's way.
EXECS: FrozenSet[int] = frozenset(SYSCALL_NUMBERS[n] for n in ("execve", "execveat"))

SIGSYS_BIT = 1 << (native.SIGSYS - 1)
_U64 = 0xFFFFFFFFFFFFFFFF
_Gregs = ctypes.c_uint64 * 23

SyscallSpec = Union[None, str, Iterable[Union[str, int]]]


def resolve_selection(syscalls: SyscallSpec) -> FrozenSet[int]:
    """The syscall numbers to trace: None = all, a ``trace=`` spec string, or names/numbers.

    Named explicitly, a call that always runs natively is an error; in a spec's class (%memory) or
    in "all" it is left out quietly.
    """
    if syscalls is None:
        return frozenset(SYSCALL_NAMES) - NEVER_SELECTED
    if isinstance(syscalls, str):
        chosen = parse_syscall_set(syscalls)
        selected = frozenset(chosen) - NEVER_SELECTED
        if chosen and not selected:
            raise UsageError(f"self-trace cannot trace {syscalls!r}: {_never_reason(chosen)}")
        return selected
    numbers = set()
    for item in syscalls:
        numbers.add(_number_of(item))
    refused = numbers & NEVER_SELECTED
    if refused:
        raise UsageError(f"self-trace cannot trace {_names(refused)}: {_never_reason(refused)}")
    return frozenset(numbers)


def _number_of(item: Union[str, int]) -> int:
    if isinstance(item, int) and not isinstance(item, bool):
        if not 0 <= item < stub.KIND_SIZE:
            raise UsageError(f"no such system call number: {item}")
        return item
    if isinstance(item, str) and item in SYSCALL_NUMBERS:
        return SYSCALL_NUMBERS[item]
    raise UsageError(f"unknown system call {item!r}")


def _names(numbers: Iterable[int]) -> str:
    return ", ".join(SYSCALL_NAMES.get(n, str(n)) for n in sorted(numbers))


def _never_reason(numbers: Iterable[int]) -> str:
    if set(numbers) & ALWAYS_NATIVE:
        return (
            "memory management, futex, sched_yield, rseq, set_robust_list and membarrier always run "
            "natively in self-trace mode (the handler itself needs them)"
        )
    return "rt_sigreturn is forwarded by the SIGSYS handler and never traced"


def capture_plan(nr: int) -> Tuple[bool, bool]:
    """Whether a call has user memory to capture at entry, at exit (most calls have none)."""
    name = SYSCALL_NAMES.get(nr)
    specs = (prototype(name) or ()) if name else ()
    return any(s.kind in ENTRY_RULES for s in specs), any(s.kind in EXIT_RULES for s in specs)


def kind_table(selected: Collection[int], record_natively: bool = False) -> bytes:
    """One byte per syscall number for the stub: what to do with it when it traps.

    ``record_natively`` (no handler, no output): a selected call with no memory to capture has
    nothing for Python to do when it happens; the stub runs it and leaves a record in its ring, which
    Python reads at the next call that reaches it and when the block ends. Such a call then costs
    what an unselected one does.
    """
    kinds = bytearray([stub.K_NATIVE]) * stub.KIND_SIZE
    for nr in selected:
        native = record_natively and capture_plan(nr) == (False, False) and nr not in NO_RETURN | EXECS
        kinds[nr] = (stub.K_NATIVE if native else stub.K_PYTHON) | stub.K_RECORD
    kinds[SYS_rt_sigaction] = stub.K_PYTHON  # always: keeps SIGSYS ours and out of handler masks
    kinds[SYS_prctl] = stub.K_PYTHON  # always: PR_SET_SYSCALL_USER_DISPATCH would end the trace
    record = stub.K_RECORD if SYS_rt_sigprocmask in selected else 0
    kinds[SYS_rt_sigprocmask] = stub.K_SIGPROCMASK | record
    kinds[SYS_rt_sigreturn] = stub.K_SIGRETURN
    for nr in REISSUED:
        kinds[nr] = stub.K_REISSUE | (stub.K_RECORD if nr in selected else 0)
    for nr in ALWAYS_NATIVE:
        kinds[nr] = stub.K_NATIVE
    return bytes(kinds)


# --- what a handler sees and returns -----------------------------------------------------------------
class Decision(NamedTuple):
    """A handler's answer: ``action`` is "passthrough", "emulate" or "deny"; ``value`` its result."""

    action: str
    value: int = 0


PASSTHROUGH = Decision("passthrough")


class SyscallCall:
    """One trapped call, as the handler sees it. Valid only during the handler call."""

    __slots__ = ("nr", "name", "args", "record", "_session")

    def __init__(self, nr: int, name: str, args: Tuple[int, ...], record: SyscallRecord, session: SelfTrace):
        self.nr = nr
        self.name = name
        self.args = args
        self.record = record
        self._session = session

    def passthrough(self) -> Decision:
        """Run the call natively (the default when a handler returns None)."""
        return PASSTHROUGH

    def emulate(self, value: int) -> Decision:
        """Do not run the call; it returns ``value`` (a negative value in -4095..-1 is an error)."""
        return Decision("emulate", int(value))

    def deny(self, err: Union[int, str]) -> Decision:
        """Do not run the call; it fails with ``err`` (a number or a name such as "EACCES")."""
        code = getattr(errno, err) if isinstance(err, str) else int(err)
        if not 0 < code < 4096:
            raise ValueError(f"not an errno value: {err!r}")
        return Decision("deny", code)

    def read(self, address: int, size: int) -> bytes:
        """``size`` bytes of this process's memory (OSError for an unmapped range, never a crash)."""
        return self._session._mem.read(address, size)

    def read_string(self, address: int, limit: int = 4096) -> bytes:
        """A NUL-terminated string (without its NUL), at most ``limit`` bytes."""
        data = self._session._mem.read_upto(address, limit)
        return data.split(b"\0", 1)[0]

    def __repr__(self) -> str:
        return f"<SyscallCall {self.name}{self.args}>"


Handler = Callable[[SyscallCall], Optional[Decision]]


@dataclass
class HandlerFailure:
    """An exception raised inside the handler: its call got -ENOSYS, nothing else happened."""

    record: Optional[SyscallRecord]
    exception: BaseException
    traceback: str

    def __str__(self) -> str:
        what = self.record.name if self.record is not None else "self-trace"
        return f"{what}: handler raised {type(self.exception).__name__}: {self.exception}"


class _DirectStream(io.TextIOBase):
    """sys.stdout/sys.stderr while a handler runs: os.write to a duplicate of the descriptor.

    The traced code may be inside the real stream's write (holding its buffer lock) when its write
    traps; a print from the handler to the same buffered stream would raise "reentrant call" or
    block. This one has no buffer and no lock.
    """

    def __init__(self, fd: int, name: str) -> None:
        super().__init__()
        self._fd = fd
        self._name = name

    def write(self, text: str) -> int:
        data = text.encode("utf-8", "backslashreplace")
        while data:
            data = data[os.write(self._fd, data) :]
        return len(text)

    def fileno(self) -> int:
        return self._fd

    def writable(self) -> bool:
        return True

    @property
    def name(self) -> str:  # type: ignore[override]
        return self._name


def high_fd(fd: int) -> int:
    """Move one of our descriptors to 256 or above (close-on-exec), out of the traced code's way.

    The kernel hands out the lowest free number: ours, kept low, would shift every descriptor the
    traced code opens, and its trace would differ from an untraced run's.
    """
    try:
        moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, HIGH_FD)
    except OSError:
        os.set_inheritable(fd, False)
        return fd  # a low limit on descriptors: keep the one we have
    os.close(fd)
    return moved


HIGH_FD = 256
#: Signals whose handlers the block wraps (SIGKILL and SIGSTOP have none; SIGSYS is the stub's).
_WRAPPABLE = tuple(
    s for s in range(1, native.NSIG + 1) if s not in (signal.SIGKILL, signal.SIGSTOP, native.SIGSYS)
)

# --- the mode ---------------------------------------------------------------------------------------
_lock = threading.Lock()
_active: Optional[SelfTrace] = None  # the one session whose stub handler is installed
_mappings: Dict[int, native.StubMapping] = {}  # per si_code, never unmapped
_CALLBACK_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)


def _on_sigsys(info: Optional[int], uc: Optional[int]) -> None:
    """The ctypes callback the stub calls: nothing may escape from here into C.

    An exception raised before the ``try`` (a pending Ctrl-C fires at a function's first bytecode)
    is swallowed by ctypes and reaches ``_unraisable``; the stub then runs the call natively, since
    the done flag was never set.
    """
    session = _active
    try:
        if session is not None and info is not None and uc is not None:
            session._on_trap(info, uc)
    except BaseException as exc:  # noqa: BLE001 - the boundary with C: see SelfTrace._escaped
        if session is not None:
            session._escaped(exc)


def _unraisable(unraisable: Any) -> None:
    """sys.unraisablehook while a session is active: exceptions ctypes swallowed at the callback."""
    session = _active
    if session is not None and unraisable.object is _on_sigsys and unraisable.exc_value is not None:
        session._lost(unraisable.exc_value)
    elif _previous_hook is not None:
        _previous_hook(unraisable)


_previous_hook: Optional[Callable[[Any], None]] = None
_callback = _CALLBACK_TYPE(_on_sigsys)  # one for the process lifetime: the stub holds its address


def available_mechanism() -> Optional[str]:
    """The best mechanism this kernel has: "dispatch" (Syscall User Dispatch), "seccomp" or None.

    Probed once: the probe switches dispatch off for the calling thread, which inside a block
    would end the trace.
    """
    global _mechanism
    if _mechanism == "":
        if _active is not None:
            return _active.mechanism
        if native.dispatch_supported():
            _mechanism = "dispatch"
        elif native.seccomp_trap_supported():
            _mechanism = "seccomp"
        else:
            _mechanism = None
    return _mechanism


_mechanism: Optional[str] = ""  # "" until probed


class SelfTrace:
    """One self-trace session; use ``selftrace()`` to make it and ``with`` (or ``run``) to trace."""

    def __init__(
        self,
        syscalls: SyscallSpec = None,
        handler: Optional[Handler] = None,
        *,
        output: Optional[Callable[[str], None]] = None,
        strsize: int = 32,
        mechanism: Optional[str] = None,
        capture_limit: Optional[int] = None,
    ) -> None:
        self.selected = resolve_selection(syscalls)
        self.handler = handler
        self.output = output
        self.strsize = strsize
        self.capture_limit = capture_limit
        self.mechanism = mechanism or available_mechanism()
        if self.mechanism not in ("dispatch", "seccomp"):
            raise UtraceError(
                "self-trace needs Syscall User Dispatch (Linux 5.11+) or seccomp with SECCOMP_RET_TRAP; "
                "this kernel has neither"
            )
        self.records: List[SyscallRecord] = []
        self.failures: List[HandlerFailure] = []
        self.lost = 0  # deferred records overwritten before they were read (ring overflow)
        self.stub_records = 0  # records the stub made (calls that never reached Python), read so far
        self._state = "new"
        self._map: Optional[native.StubMapping] = None
        self._mem: kernel.ProcMem = kernel.ProcMem(-1, 0)
        self._read: Callable[[int, int], bytes] = self._mem.read
        self._read_string: Callable[[int, int], bytes] = self._mem.read_upto
        self._pid = 0
        self._tid = 0
        self._ring_read = 0
        self._old_sigsys: Optional[native.kernel_sigaction] = None
        self._virtual_sigsys: Optional[bytes] = None
        self._virtual: Dict[int, bytes] = {}  # signal -> the action the traced code believes in
        self._sigsys_was_blocked = False
        self._stdout: Optional[_DirectStream] = None
        self._stderr: Optional[_DirectStream] = None
        self._dup_fds: List[int] = []
        self._deferred_exc: Optional[BaseException] = None
        self._is_main = False
        self._uc = 0
        self._plans: Dict[int, Tuple[bool, bool]] = {}
        self._run_saved: Callable[[int, int], int] = lambda uc, nr: -errno.ENOSYS

    # --- public -------------------------------------------------------------------------------------
    def __enter__(self) -> SelfTrace:
        if self.mechanism != "dispatch":
            raise UtraceError(
                "this kernel has no Syscall User Dispatch: a seccomp filter can never be removed, so "
                "self-trace cannot wrap a block of the calling thread; use SelfTrace.run(function), "
                "which runs it on a thread of its own"
            )
        self._start()
        self._map_or_die().selector = stub.SYSCALL_DISPATCH_FILTER_BLOCK  # from here on calls trap
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop()

    def run(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``function(*args, **kwargs)`` traced; return its result or raise its exception.

        With Syscall User Dispatch it runs on the calling thread. With the seccomp fallback it runs on
        a new thread that installs the filter (without TSYNC, so only that thread has it) and ends
        with the call: a filter can never be removed.
        """
        if self.mechanism == "dispatch":
            with self:
                return function(*args, **kwargs)
        return self._run_on_thread(function, args, kwargs)

    # --- entering and leaving -----------------------------------------------------------------------
    def _start(self) -> None:
        global _active
        with _lock:
            if _active is not None:
                where = (
                    "this thread" if _active._tid == threading.get_native_id() else f"thread {_active._tid}"
                )
                raise UtraceError(
                    f"a self-trace block is already active in {where}: self-trace blocks do not nest "
                    "and one process has one at a time (the SIGSYS handler is per process)"
                )
            if self._state != "new":
                raise UtraceError("a self-trace session can be used once; make a new one with selftrace()")
            _active = self
            self._state = "starting"
        try:
            self._setup()
        except BaseException:
            self._teardown()
            raise

    def _setup(self) -> None:
        si_code = native.SYS_USER_DISPATCH if self.mechanism == "dispatch" else native.SYS_SECCOMP
        if si_code not in _mappings:
            _mappings[si_code] = native.StubMapping(si_code)
        m = self._map = _mappings[si_code]
        self._run_saved = m.run_saved
        self._pid, self._tid = os.getpid(), threading.get_native_id()
        self._is_main = threading.current_thread() is threading.main_thread()
        self._ring_read = m.ring_written
        m.selector = stub.SYSCALL_DISPATCH_FILTER_ALLOW
        m.ring_r.value = self._ring_read
        m.set_kinds(kind_table(self.selected, record_natively=self.handler is None and self.output is None))
        m.set_thread(self._tid, check=self.mechanism == "seccomp")
        m.set_callback(ctypes.cast(_callback, ctypes.c_void_p).value or 0)
        m.set_python_api(
            ctypes.cast(ctypes.pythonapi.Py_AddPendingCall, ctypes.c_void_p).value or 0,
            ctypes.cast(ctypes.pythonapi.PyErr_SetObject, ctypes.c_void_p).value or 0,
        )
        m.set_clock(ctypes.cast(ctypes.CDLL(None).clock_gettime, ctypes.c_void_p).value or 0)
        self._mem = kernel.ProcMem(high_fd(os.open("/proc/self/mem", os.O_RDWR | os.O_CLOEXEC)), self._pid)
        self._read, self._read_string = readers_for(self._mem)
        self._stdout = self._direct_stream(1, "<stdout>")
        self._stderr = self._direct_stream(2, "<stderr>")
        self._install_unraisable_hook()
        self._unblock_sigsys()
        self._old_sigsys = m.install_handler()
        self._wrap_handlers()
        if self.mechanism == "dispatch":
            m.dispatch_on()
        self._state = "active"

    def _stop(self) -> None:
        m = self._map_or_die()
        m.selector = stub.SYSCALL_DISPATCH_FILTER_ALLOW  # a plain store: calls run natively again
        if self.mechanism == "dispatch":
            m.dispatch_off()
        self._drain_ring()
        self._teardown()

    def _teardown(self) -> None:
        global _active
        m = self._map
        if m is not None:
            self._restore_handlers(m)
        if self._sigsys_was_blocked:
            signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGSYS])
        if sys.unraisablehook is _unraisable:
            sys.unraisablehook = _previous_hook or sys.__unraisablehook__
        self._mem.close()
        for fd in self._dup_fds:
            os.close(fd)
        self._dup_fds = []
        self._state = "done"
        with _lock:
            if _active is self:
                _active = None

    def _restore_handlers(self, m: native.StubMapping) -> None:
        """The SIGSYS action of before (seccomp mode: never, threads may keep the filter), unwrapped ones."""
        if self._old_sigsys is not None and self.mechanism == "dispatch":
            old = self._old_sigsys
            if self._virtual_sigsys is not None:  # the traced code installed one: it gets it now
                old = native.kernel_sigaction.from_buffer_copy(self._virtual_sigsys)
            m.sigaction(native.SIGSYS, old)
        self._unwrap_handlers(m)

    @staticmethod
    def _install_unraisable_hook() -> None:
        global _previous_hook
        if sys.unraisablehook is not _unraisable:
            _previous_hook = sys.unraisablehook
            sys.unraisablehook = _unraisable

    def _direct_stream(self, fd: int, name: str) -> Optional[_DirectStream]:
        try:
            dup = high_fd(os.dup(fd))
        except OSError:
            return None
        self._dup_fds.append(dup)
        return _DirectStream(dup, name)

    def _unblock_sigsys(self) -> None:
        """A trap while SIGSYS is blocked kills the process."""
        blocked = signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGSYS])
        self._sigsys_was_blocked = signal.SIGSYS in blocked

    def _wrap_handlers(self) -> None:
        """Every installed handler runs through the stub's sig_wrapper while the block lasts.

        The traced code keeps seeing its own actions (``_virtual``), and no handler mask blocks
        SIGSYS (the handler's own calls trap too; a trap while SIGSYS is blocked kills).
        """
        m = self._map_or_die()
        for sig in _WRAPPABLE:
            try:
                act = m.sigaction(sig, None)
            except OSError:
                continue
            if act.sa_handler not in (native.SIG_DFL, native.SIG_IGN) and act.sa_handler != m.sig_wrapper:
                self._virtual[sig] = bytes(act)
                self._install_wrapped(sig, act, None)

    def _install_wrapped(self, sig: int, act: native.kernel_sigaction, oldact: Optional[int]) -> int:
        """Install ``act`` for ``sig`` the way the block needs it; the raw result of rt_sigaction."""
        m = self._map_or_die()
        real = native.kernel_sigaction.from_buffer_copy(bytes(act))
        real.sa_mask &= ~SIGSYS_BIT
        if real.sa_handler not in (native.SIG_DFL, native.SIG_IGN):
            m.set_real_handler(sig, real.sa_handler)
            real.sa_handler = m.sig_wrapper
        return m.syscall(SYS_rt_sigaction, sig, ctypes.addressof(real), oldact or 0, 8)

    def _unwrap_handlers(self, m: native.StubMapping) -> None:
        for sig, raw in self._virtual.items():
            current = m.sigaction(sig, None)
            if current.sa_handler == m.sig_wrapper:
                m.sigaction(sig, native.kernel_sigaction.from_buffer_copy(raw))
        self._virtual = {}

    def _map_or_die(self) -> native.StubMapping:
        if self._map is None:
            raise UtraceError("the self-trace session is not active")
        return self._map

    def _run_on_thread(
        self, function: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]
    ) -> Any:
        outcome: Dict[str, Any] = {}

        def body() -> None:
            try:
                self._start()
            except BaseException as exc:  # noqa: BLE001 - handed to the calling thread below
                outcome["error"] = exc
                return
            m = self._map_or_die()
            try:
                m.install_filter(self._seccomp_traps(), NEVER_SELECTED)
                m.selector = stub.SYSCALL_DISPATCH_FILTER_BLOCK  # the stub's own flag in this mode
                outcome["result"] = function(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - handed to the calling thread below
                outcome["error"] = exc
            finally:
                self._stop()

        worker = threading.Thread(target=body, name="utrace-selftrace", daemon=False)
        worker.start()
        worker.join()
        if "error" in outcome:
            raise outcome["error"]
        return outcome.get("result")

    def _seccomp_traps(self) -> FrozenSet[int]:
        """Calls the filter traps: the selection, and what the stub must see in any case."""
        return self.selected | {SYS_rt_sigprocmask, SYS_rt_sigaction}

    # --- the trapped call ---------------------------------------------------------------------------
    def _on_trap(self, info: int, uc: int) -> None:
        m = self._map_or_die()
        self._uc = uc
        if self._ring_read != m.ring_w.value:
            self._drain_ring()
        nr = ctypes.c_int.from_address(info + stub.SI_SYSCALL).value
        gregs = _Gregs.from_address(uc + stub.UC_GREGS)
        args = (gregs[8], gregs[9], gregs[12], gregs[2], gregs[0], gregs[1])
        if nr not in self.selected:  # rt_sigaction or prctl, routed here to guard the mode
            gregs[13] = self._execute(nr, args) & _U64
            m.done.value = 1
            return
        record = self._new_record(nr, args)
        ret = self._traced_call(record)
        gregs[13] = ret & _U64  # the result first: an exception from here on cannot change it
        m.done.value = 1
        self._finish(record)

    def _new_record(self, nr: int, args: Tuple[int, ...]) -> SyscallRecord:
        plan = self._plans.get(nr)
        if plan is None:
            plan = self._plans[nr] = capture_plan(nr)
        captured: List[Tuple[int, bytes]] = []
        if plan[0]:
            try:
                captured = capture_entry(nr, args, self._read, self._read_string, limit=self.capture_limit)
            except (OSError, ValueError):
                pass
        return SyscallRecord(
            self._pid, self._tid, nr, SYSCALL_NAMES.get(nr, f"syscall_{nr}"), args, time.monotonic(), captured
        )

    def _traced_call(self, record: SyscallRecord) -> int:
        """Ask the handler, then run, emulate or deny the call: its result."""
        decision = self._ask_handler(record) if self.handler is not None else PASSTHROUGH
        if decision.action == "passthrough":
            return self._passthrough(record)
        if decision.action == "emulate":
            record.ret, record.injected = decision.value, "emulated by the handler"
        elif decision.action == "deny":
            record.ret, record.injected = -decision.value, "denied by the handler"
        else:
            record.ret, record.injected = -errno.ENOSYS, "the handler raised an exception"
        return record.ret

    def _finish(self, record: SyscallRecord) -> None:
        """After the result is set: what the kernel wrote, the record, its line."""
        if record.injected is None and (record.nr in NO_RETURN or record.nr in EXECS):
            return  # out before it ran (and an exec's end, if any, too)
        if record.injected is None and self._plans[record.nr][1] and record.ret is not None:
            try:
                record.copy_to_user = capture_exit(
                    record.nr,
                    record.args,
                    record.ret,
                    self._read,
                    self._read_string,
                    limit=self.capture_limit,
                )
            except (OSError, ValueError):
                pass
        self._emit(record)

    def _ask_handler(self, record: SyscallRecord) -> Decision:
        assert self.handler is not None
        call = SyscallCall(record.nr, record.name, record.args, record, self)
        saved = sys.stdout, sys.stderr
        sys.stdout = self._stdout or sys.stdout
        sys.stderr = self._stderr or sys.stderr
        try:
            decision = self.handler(call)
        except Exception as exc:  # noqa: BLE001 - any error of the handler fails its call, visibly
            if _raised_by_signal_handler(exc):
                raise  # the traced code's exception, not the handler's: see _escaped
            self.failures.append(HandlerFailure(record, exc, traceback.format_exc()))
            return Decision("error")
        finally:
            sys.stdout, sys.stderr = saved
        if decision is None:
            return PASSTHROUGH
        if not isinstance(decision, Decision):
            bad = TypeError(f"the handler returned {decision!r}, not call.passthrough(), emulate() or deny()")
            self.failures.append(HandlerFailure(record, bad, ""))
            return Decision("error")
        return decision

    def _passthrough(self, record: SyscallRecord) -> int:
        if record.nr in NO_RETURN:  # its line must be out before it runs
            self._emit(record)
            return self._execute(record.nr, record.args)
        if record.nr in EXECS:
            return self._passthrough_exec(record)
        record.ret = self._execute(record.nr, record.args)
        return record.ret

    def _passthrough_exec(self, record: SyscallRecord) -> int:
        """execve: recorded and started before it runs (a success never returns), finished if it fails."""
        self.records.append(record)
        if self.output is not None:
            self.output(format_entry(record, self.strsize) + " <unfinished ...>")
        record.ret = ret = self._execute(record.nr, record.args)
        if self.output is not None:
            self.output(format_resumed(record, self.strsize))
        return ret

    def _execute(self, nr: int, args: Tuple[int, ...]) -> int:
        """Run the trapped call natively, from the saved registers (rt_sigaction: our version)."""
        if nr == SYS_rt_sigaction:
            return self._sigaction(*args[:4])
        if nr == SYS_prctl and args[0] == native.PR_SET_SYSCALL_USER_DISPATCH:
            return -errno.EBUSY  # the traced code cannot switch the mode this block depends on
        return int(self._run_saved(self._uc, nr))

    def _emit(self, record: SyscallRecord) -> None:
        self.records.append(record)
        if self.output is not None:
            self.output(format_call(record, self.strsize))

    # --- rt_sigaction: SIGSYS stays ours, and no handler blocks it ----------------------------------
    def _sigaction(self, sig: int, act: int, oldact: int, size: int) -> int:
        """rt_sigaction on the traced code's behalf: the block's wrapping stays, the code sees its own."""
        if size != 8:
            return -errno.EINVAL
        if sig == native.SIGSYS:
            return self._sigaction_sigsys(act, oldact)
        if sig not in _WRAPPABLE:  # SIGKILL, SIGSTOP, junk: the kernel answers
            return self._map_or_die().syscall(SYS_rt_sigaction, sig, act, oldact, 8)
        try:
            new = native.kernel_sigaction.from_buffer_copy(self._mem.read(act, 32)) if act else None
        except OSError:
            return -errno.EFAULT
        previous = native.kernel_sigaction()
        if new is None:
            res = self._map_or_die().syscall(SYS_rt_sigaction, sig, 0, ctypes.addressof(previous), 8)
        else:
            res = self._install_wrapped(sig, new, ctypes.addressof(previous))
        if res < 0:
            return res
        shown = self._virtual.get(sig, bytes(previous))  # what the code itself installed last
        if new is not None:
            self._virtual[sig] = bytes(new)
        if oldact:
            try:
                self._mem.write(oldact, shown)
            except OSError:
                return -errno.EFAULT
        return 0

    def _sigaction_sigsys(self, act: int, oldact: int) -> int:
        """SIGSYS: the traced code sees (and sets) a virtual action; the stub stays the handler."""
        current = self._virtual_sigsys or bytes(self._old_sigsys or native.kernel_sigaction())
        if act:
            try:
                self._virtual_sigsys = self._mem.read(act, 32)
            except OSError:
                return -errno.EFAULT
        if oldact:
            try:
                self._mem.write(oldact, current)
            except OSError:
                return -errno.EFAULT
        return 0

    # --- deferred records (calls the stub handled itself) --------------------------------------------
    def _drain_ring(self) -> None:
        m = self._map_or_die()
        written = m.ring_written
        first = max(self._ring_read, written - stub.N_RING)
        self.lost += first - self._ring_read
        self.stub_records += written - first
        name_of = SYSCALL_NAMES.get
        for nr, args, ret, when in m.ring_entries(first, written):
            record = SyscallRecord(self._pid, self._tid, nr, name_of(nr) or str(nr), args, when, (), (), ret)
            self.records.append(record)
            if self.output is not None:
                self.output(format_call(record, self.strsize))
        self._ring_read = m.ring_r.value = written

    # --- errors that reach the callback's boundary --------------------------------------------------
    def _escaped(self, exc: BaseException) -> None:
        """An exception escaped ``_on_trap`` before the result was set.

        The stub sees that (done is still 0): if the call already ran it takes that result,
        otherwise it calls Python again, and after the last attempt runs the call natively. Either
        way no call gets a wrong result. The exception itself came from a Python signal handler
        (Ctrl-C) that ran inside the callback, or is a bug of ours: it belongs to the traced code
        and is raised there once the callback has returned (a pending call the stub schedules).
        """
        self._lost(exc)

    def _lost(self, exc: BaseException) -> None:
        if self._is_main:
            self._deferred_exc = exc  # keeps both objects alive until the pending call has run
            self._map_or_die().set_pending_exception(id(type(exc)), id(exc))
        else:  # pending calls run on the main thread only
            self.failures.append(HandlerFailure(None, exc, "".join(traceback.format_exception(exc))))


def _raised_by_signal_handler(exc: BaseException) -> bool:
    """Whether ``exc`` came from a Python signal handler (or Ctrl-C) rather than the handler's code."""
    if isinstance(exc, KeyboardInterrupt):
        return True
    codes = set()
    for sig in signal.valid_signals():
        try:
            handler = signal.getsignal(sig)
        except (OSError, ValueError):
            continue
        function = getattr(handler, "__func__", handler)  # bound methods too
        code = getattr(function, "__code__", None)
        if code is not None:
            codes.add(code)
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code in codes:
            return True
        tb = tb.tb_next
    return False


def selftrace(
    syscalls: SyscallSpec = None,
    handler: Optional[Handler] = None,
    *,
    output: Optional[Callable[[str], None]] = None,
    strsize: int = 32,
    mechanism: Optional[str] = None,
    capture_limit: Optional[int] = None,
) -> SelfTrace:
    """A self-trace session for ``with`` (see the package docstring).

    ``output``, when given, receives each finished call as an strace-style line (``strsize`` bytes
    of strings); ``capture_limit`` caps the data buffers a record keeps; ``mechanism`` forces
    "dispatch" or "seccomp" (default: the best this kernel has).
    """
    return SelfTrace(
        syscalls, handler, output=output, strsize=strsize, mechanism=mechanism, capture_limit=capture_limit
    )
