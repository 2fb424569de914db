"""Self-trace: a Python program intercepts its own system calls, in-process, with no tracer process.

::

    from utrace.selftrace import selftrace

    def handler(call):                       # call.nr, call.name, call.args, call.record
        if call.name == "openat" and b"secret" in call.read_string(call.args[1]):
            return call.deny("EACCES")
        return call.passthrough()            # or call.emulate(value); None also passes through

    with selftrace(syscalls={"openat", "write"}, handler=handler) as st:
        run_code_under_test()
    st.records                               # list[SyscallRecord], as the ptrace tracer makes them
    st.failures                              # exceptions the handler raised (their calls got ENOSYS)

``syscalls`` is a set of names or numbers, a ``trace=`` spec string ("%file,write"), or None for
every call except the ones that always run natively (below).

How it works
------------
Syscall User Dispatch (``prctl(PR_SET_SYSCALL_USER_DISPATCH)``, Linux 5.11+) makes every system call
the calling thread makes raise SIGSYS instead of running, while a selector byte in our memory says
BLOCK, except calls made from one "allowed" code region. The SIGSYS handler runs the call, emulates
it or denies it, writes the result into the saved registers and returns.

The handler cannot be a ctypes callback: CPython's callback machinery (the GIL, ctypes' conversions,
the allocator) makes system calls before any Python code could switch the selector to ALLOW; under
BLOCK they trap again and the process recurses until its stack is gone. So the handler is a small
machine-code stub (``stub.py``, generated here byte by byte) in a page this module maps, and that page
is the allowed region. The stub:

- switches the selector to ALLOW before any system call (the few instructions before it only check
  that the signal is a trap of ours), and back (to the value it had at the trap) in its own
  rt_sigreturn restorer: glibc's restorer is outside the allowed region, and
  glibc's sigaction() replaces sa_restorer, so the handler is installed with a raw rt_sigaction;
- runs unselected calls natively from a per-number table, never entering Python;
- always runs natively futex, mmap, munmap, mremap, brk, madvise, mprotect, sched_yield,
  set_robust_list, rseq and membarrier: the allocator and the GIL make them while holding locks the
  Python side would need;
- emulates rt_sigprocmask on the saved signal mask (running it inside a handler is undone by
  rt_sigreturn), never letting SIGSYS be blocked: a trap while SIGSYS is blocked kills the process;
- forwards a foreign signal handler's trapped rt_sigreturn (its restorer is glibc's) by running it on
  that handler's stack;
- re-issues clone, clone3, fork, vfork and sigaltstack from a trampoline after rt_sigreturn
  (``syscall; jmp *saved_rip``): a child or new thread must not start inside a signal handler, glibc's
  fork holds its malloc locks at that point (Python would deadlock), and a sigaltstack change made in
  a handler is undone on return. They are recorded (without the handler) when selected;
- calls Python (a CFUNCTYPE callback) for selected calls, never re-entering it; except, in a block
  with no handler and no output, the selected calls that have no memory to capture (getppid, close,
  lseek, kill, ...): there Python has nothing to do at the time, so the stub runs them and leaves
  their record (number, arguments, result, time) in a ring that Python reads when another call
  reaches it, when the ring is full and when the block ends (``st.stub_records`` counts them).

The handler is installed with SA_SIGINFO | SA_NODEFER | SA_RESTORER and an empty mask, without
SA_ONSTACK: SIGSYS must stay deliverable inside the handler and inside other handlers, and the Python
callback needs the thread's real stack, not a small alternate one. rt_sigaction and prctl always
reach the Python side: the traced code sees (and sets) a virtual SIGSYS action, installed when the
block ends; no handler mask may block SIGSYS; PR_SET_SYSCALL_USER_DISPATCH fails with EBUSY.

Every other installed signal handler runs through a wrapper in the stub while the block lasts (the
traced code still sees its own handler addresses). A call trapped inside a signal handler, such as
CPython's C-level handler writing to the wakeup fd for asyncio, runs natively and is recorded, but
never reaches Python or the handler: that handler interrupted arbitrary code (the allocator, a
half-updated object), where running Python crashes.

Where Syscall User Dispatch is missing, seccomp's SECCOMP_RET_TRAP is the fallback: a filter traps
the selected calls unless they come from the stub's page (unselected calls then cost nothing). A
filter can never be removed, so ``SelfTrace.run(function)`` runs the function on a throw-away thread
that installs the filter without TSYNC; the ``with`` form needs Syscall User Dispatch.

The descriptors the mode opens (/proc/self/mem for reading arguments, duplicates of stdout and
stderr) live at 256 and above, so the traced code gets the descriptor numbers it would get untraced.

Errors and signals
------------------
- An exception raised by the handler is recorded in ``st.failures`` and its call returns -ENOSYS
  (never a silently wrong value); the block goes on.
- Python signal handlers may run inside the callback (that is where the main thread spends its time
  during a traced call). An exception they raise, and KeyboardInterrupt, belongs to the traced code:
  it is raised there right after the call (through a pending call the stub schedules once the
  callback has returned). If it cut Python short before the call had a result, the stub takes the
  result of the call if it already ran, else asks Python again (a denied call must not run; so a
  handler may, rarely, see one call twice), and after three attempts runs the call natively.
- While the handler runs, sys.stdout and sys.stderr write straight to their file descriptors: the
  traced code may be inside a buffered write to the same stream (holding its lock) when it traps.

Limits
------
- Only the thread that enters the block is traced. Threads it starts run natively (the kernel does
  not pass the mode on to new threads), and so do child processes (nor to forks).
- vDSO calls (time, gettimeofday, clock_gettime, getcpu) never enter the kernel and are never seen.
- Calls made by the handler, and by Python signal handlers that run inside it, are not traced.
- One block per process at a time (the SIGSYS handler is per process), and blocks do not nest:
  both raise UtraceError.
- rt_sigreturn is never recorded. clone, clone3, fork, vfork, sigaltstack and rt_sigprocmask, and
  calls made inside signal handlers, are recorded (with their results) but not shown to the handler,
  and their records hold no captured memory.
- A handler must not import modules lazily (the traced code may hold the import lock of the module it
  is loading) nor take locks the traced code may hold.
- A signal handler that leaves by siglongjmp leaves the traced thread untraced for the rest of the
  block (its wrapper never sees it return).
- The seccomp fallback: children that exec inside the block keep the filter without the handler, and
  die of SIGSYS at their first selected call; the traced function runs on a non-main thread (so
  Python signal handlers cannot be installed from it); the SIGSYS handler stays installed after.

After the block the mode is off (PR_SYS_DISPATCH_OFF): later calls run natively, children run
normally. Measured on a 2-vCPU VM (``bench/selftrace_bench.py``, getppid loop): a recorded call costs
~7 µs (0.21 x the ptrace tracer's ~32.7 µs), an unselected one ~2.5 µs (0.07 x).
"""

from __future__ import annotations

from .script import parse_inject, run_script
from .session import (
    ALWAYS_NATIVE,
    Decision,
    HandlerFailure,
    SelfTrace,
    SyscallCall,
    available_mechanism,
    resolve_selection,
    selftrace,
)

__all__ = [
    "selftrace",
    "SelfTrace",
    "SyscallCall",
    "Decision",
    "HandlerFailure",
    "ALWAYS_NATIVE",
    "available_mechanism",
    "resolve_selection",
    "run_script",
    "parse_inject",
]
