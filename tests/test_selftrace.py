"""Self-trace (SIGSYS) mode: a Python program intercepts its own system calls.

Every behaviour test runs its snippet in a fresh interpreter (a crash in the signal handler must not
take pytest down); the snippet prints one ``RESULT:`` line of JSON. strace is the oracle for the
pass-through records. The stub generator is checked against capstone's decoder in-process.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

import utrace.selftrace as selftrace_mod
from utrace.selftrace import native, stub

ROOT = Path(__file__).resolve().parent.parent


def _mechanism() -> str | None:
    return selftrace_mod.available_mechanism()


needs_dispatch = pytest.mark.skipif(
    _mechanism() != "dispatch", reason="the kernel has no Syscall User Dispatch (Linux 5.11+)"
)
needs_seccomp = pytest.mark.skipif(not native.seccomp_trap_supported(), reason="no seccomp SECCOMP_RET_TRAP")

PRELUDE = """
import errno, json, os, signal, subprocess, sys, threading, time
from utrace.selftrace import selftrace
from utrace.errors import UtraceError
def result(**kw):
    sys.stdout.flush()
    os.write(1, ("RESULT:" + json.dumps(kw) + "\\n").encode())
"""


def run_snippet(
    code: str, timeout: float = 60, argv_prefix: Tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    program = PRELUDE + textwrap.dedent(code)
    return subprocess.run(
        [*argv_prefix, sys.executable, "-c", program],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def result_of(proc: subprocess.CompletedProcess) -> Dict[str, Any]:
    assert proc.returncode == 0, f"snippet failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT:")]
    assert lines, f"no RESULT line:\n{proc.stdout}\n{proc.stderr}"
    return dict(json.loads(lines[-1][len("RESULT:") :]))


# --- the generated machine code --------------------------------------------------------------------
CODE_BASE, DATA_BASE = 0x7F1234560000, 0x7F1234561000


def _disasm(code: bytes, base: int) -> List[Any]:
    capstone = pytest.importorskip("capstone")
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    md.detail = True
    return list(md.disasm(code, base))


def test_stub_decodes_completely_and_fits_its_page():
    gen = stub.generate(CODE_BASE, DATA_BASE, native.SYS_USER_DISPATCH)
    insns = _disasm(gen.code, CODE_BASE)
    # every byte decodes (the int3 padding included): no gaps or mis-encodings
    assert sum(i.size for i in insns) == len(gen.code)
    assert len(gen.code) < stub.CODE_SIZE
    first = insns[0]
    assert first.mnemonic == "mov" and first.op_str == "rbx, rdx"
    # the selector store that allows system calls comes before the first syscall instruction
    text = [(i.address, i.mnemonic, i.op_str) for i in insns]
    allow = next(a for a, m, o in text if m == "mov" and o.startswith("byte ptr [rip") and o.endswith(", 0"))
    first_syscall = next(a for a, m, o in text if m == "syscall")
    assert allow < first_syscall or _only_gettid_before(insns, first_syscall)


def _only_gettid_before(insns: List[Any], address: int) -> bool:
    """The seccomp-mode gettid (under a CHECK_TID guard) is the one call allowed before the store."""
    before = [i for i in insns if i.address < address]
    return before[-1].mnemonic == "mov" and before[-1].op_str == f"eax, {hex(186)}"


def test_stub_rip_relative_operands_hit_the_data_fields():
    gen = stub.generate(CODE_BASE, DATA_BASE, native.SYS_USER_DISPATCH)
    insns = _disasm(gen.code, CODE_BASE)
    targets = set()
    for i in insns:
        m = re.search(r"\[rip ([+-]) (0x[0-9a-f]+|\d+)\]", i.op_str)
        if m:
            disp = int(m.group(2), 0) * (1 if m.group(1) == "+" else -1)
            targets.add(i.address + i.size + disp - DATA_BASE)
    for field in (stub.D_SELECTOR, stub.D_DEPTH, stub.D_CALLBACK, stub.D_KIND, stub.D_RING, stub.D_DONE):
        assert field in targets, f"no instruction addresses data field {field}"
    # the trampolines: syscall; mov rcx, rax; jrcxz; mov r11, [recptr]; mov [r11+56], rax; jmp [saved_rip]
    tramp = [i for i in insns if i.address >= CODE_BASE + gen.trampolines][:6]
    assert [i.mnemonic for i in tramp] == ["syscall", "mov", "jrcxz", "mov", "mov", "jmp"]
    assert tramp[5].op_str.startswith("qword ptr [rip")


@pytest.mark.parametrize(
    "emit, expected",
    [
        (lambda a: a.mov_r64_m64(stub.R12, stub.RSP, 8), "mov r12, qword ptr [rsp + 8]"),
        (lambda a: a.mov_m64_r64(stub.R13, 0x88, stub.RAX), "mov qword ptr [r13 + 0x88], rax"),
        (lambda a: a.movzx_r32_m8_idx(stub.R13, stub.RCX, stub.RAX), "movzx r13d, byte ptr [rcx + rax]"),
        (lambda a: a.mov_m64_idx8_r64(stub.RSI, stub.R14, stub.RDX), "mov qword ptr [rsi + r14*8], rdx"),
        (lambda a: a.cmp_m8_imm8(stub.RBX, 8, 1), "cmp byte ptr [rbx + 8], 1"),
        (lambda a: a.mov_r64_imm64(stub.RSI, 0xFFFFFFFFBFFBFEFF), "movabs rsi, 0xffffffffbffbfeff"),
        (lambda a: a.and_r64_imm8(stub.RSP, -16), "and rsp, 0xfffffffffffffff0"),
        (lambda a: a.mov_r8_m8(stub.RAX, stub.RSP, 8), "mov al, byte ptr [rsp + 8]"),
    ],
)
def test_assembler_encodings_match_capstone(emit, expected):
    a = stub.Assembler(CODE_BASE)
    emit(a)
    code = a.finish()
    (insn,) = _disasm(code, CODE_BASE)
    assert f"{insn.mnemonic} {insn.op_str}" == expected


def test_seccomp_filter_shape():
    prog = native.build_filter(CODE_BASE, {110, 2}, set())
    assert prog[1] == (native.BPF_JEQ_K, 1, 0, native.AUDIT_ARCH_X86_64)
    assert (native.BPF_JEQ_K, 0, 1, 110) in prog
    assert prog[-1] == (native.BPF_RET_K, 0, 0, native.SECCOMP_RET_ALLOW)
    everything = native.build_filter(CODE_BASE, set(range(1000)), {9})
    assert everything[-1] == (native.BPF_RET_K, 0, 0, native.SECCOMP_RET_TRAP)  # the complement listed
    assert (native.BPF_JEQ_K, 0, 1, 9) in everything and len(everything) < 100


def test_selection_rules():
    from utrace.errors import UsageError

    sel = selftrace_mod.resolve_selection({"getppid", 2})
    assert sel == {110, 2}
    assert 9 not in selftrace_mod.resolve_selection(None)  # mmap: always native
    with pytest.raises(UsageError, match="always run natively"):
        selftrace_mod.resolve_selection({"mmap"})
    with pytest.raises(UsageError, match="unknown system call"):
        selftrace_mod.resolve_selection({"no_such_call"})


# --- behaviour, each in its own interpreter ---------------------------------------------------------
@needs_dispatch
def test_emulate():
    res = result_of(
        run_snippet(
            """
            real = os.getppid()
            with selftrace(syscalls={"getppid"}, handler=lambda call: call.emulate(4242)) as st:
                got = os.getppid()
            result(got=got, real=real, after=os.getppid(),
                   records=[(r.name, r.ret, r.injected) for r in st.records])
            """
        )
    )
    assert res["got"] == 4242
    assert res["after"] == res["real"] != 4242
    assert res["records"] == [["getppid", 4242, "emulated by the handler"]]


@needs_dispatch
def test_deny_open_raises_permission_error():
    res = result_of(
        run_snippet(
            """
            def handler(call):
                if call.read_string(call.args[1]) == b"/etc/hostname":
                    return call.deny("EACCES")
                return call.passthrough()
            with selftrace(syscalls={"openat"}, handler=handler) as st:
                try:
                    open("/etc/hostname")
                    outcome = "opened"
                except PermissionError as exc:
                    outcome = ["PermissionError", exc.errno]
                with open("/etc/passwd") as f:
                    other = len(f.read(10))
            result(outcome=outcome, other=other, records=[(r.name, r.ret) for r in st.records])
            """
        )
    )
    assert res["outcome"] == ["PermissionError", 13]
    assert res["other"] == 10
    assert res["records"][0] == ["openat", -13]
    assert res["records"][1][0] == "openat" and res["records"][1][1] >= 0


STRACE_SET = "openat,read,write,close,lseek,getppid,pipe2,dup"
ORACLE_BODY = """
    os.access("/utrace-marker-begin", os.F_OK)
    fd = os.open("/etc/passwd", os.O_RDONLY)
    os.read(fd, 64)
    os.lseek(fd, 5, os.SEEK_SET)
    os.read(fd, 7)
    r, w = os.pipe()
    os.write(w, b"hello pipe")
    os.read(r, 100)
    d = os.dup(w)
    for x in (d, r, w, fd):
        os.close(x)
    try:
        os.close(fd)
    except OSError:
        pass
    try:
        os.open("/nonexistent/file", os.O_RDONLY)
    except OSError:
        pass
    os.getppid()
    os.access("/utrace-marker-end", os.F_OK)
"""


def _strace_calls(path: Path) -> List[Tuple[str, str]]:
    """(name, result) of the lines between the markers of an strace -f output file."""
    calls: List[Tuple[str, str]] = []
    inside = False
    for line in path.read_text().splitlines():
        line = re.sub(r"^\[pid\s+\d+\]\s+|^\d+\s+", "", line)
        if "/utrace-marker-begin" in line:
            inside = True
            continue
        if "/utrace-marker-end" in line:
            break
        m = re.match(r"(\w+)\(.*\)\s+=\s+(-1 E[A-Z]+|\d+|\?)", line)
        if inside and m:
            calls.append((m.group(1), m.group(2)))
    return calls


def _unless_ppid(call: Any) -> Tuple[str, str]:
    name, ret = call
    return (name, "PPID") if name == "getppid" else (name, ret)


@needs_dispatch
@pytest.mark.skipif(shutil.which("strace") is None, reason="strace (the oracle) is not installed")
def test_passthrough_records_match_strace(tmp_path):
    selftraced = f"""
with selftrace(syscalls="{STRACE_SET}") as st:
{textwrap.indent(textwrap.dedent(ORACLE_BODY), "    ")}
result(calls=[(r.name, str(r.ret) if r.ret >= 0 else "-1 " + errno.errorcode[-r.ret]) for r in st.records],
       failures=len(st.failures))
"""
    plain = textwrap.dedent(ORACLE_BODY) + "\nresult()\n"
    out = tmp_path / "strace.out"
    strace = ("strace", "-f", "-qq", "-e", f"trace={STRACE_SET},access", "-o", str(out))
    # the self-traced program under strace: its stub and handler run each call natively, so strace
    # sees exactly the calls (and results) the records hold
    replayed_records = result_of(run_snippet(selftraced, argv_prefix=strace))
    replayed = _strace_calls(out)
    assert replayed_records["failures"] == 0
    assert [tuple(c) for c in replayed_records["calls"]] == replayed
    # the same code run without self-trace: the same calls, the same results (but getppid's: the
    # parent differs between runs)
    result_of(run_snippet(plain, argv_prefix=strace))
    untraced = _strace_calls(out)
    ours = result_of(run_snippet(selftraced))
    assert [_unless_ppid(c) for c in ours["calls"]] == [_unless_ppid(c) for c in untraced]
    assert [c[0] for c in untraced] == [
        "openat", "read", "lseek", "read", "pipe2", "write", "read",  # (os.dup is an fcntl)
        "close", "close", "close", "close", "close", "openat", "getppid",
    ]  # fmt: skip


@needs_dispatch
def test_unselected_calls_never_reach_the_handler():
    res = result_of(
        run_snippet(
            """
            seen = []
            def handler(call):
                seen.append(call.name)
            with selftrace(syscalls={"getppid"}, handler=handler) as st:
                os.getpid(); os.getppid(); os.write(1, b""); os.getuid(); os.getppid()
            result(seen=seen, records=[r.name for r in st.records])
            """
        )
    )
    assert res["seen"] == ["getppid", "getppid"]
    assert res["records"] == ["getppid", "getppid"]


@needs_dispatch
def test_nested_block_is_refused_clearly():
    res = result_of(
        run_snippet(
            """
            with selftrace(syscalls={"getppid"}, handler=lambda c: c.emulate(1)) as outer:
                try:
                    with selftrace(syscalls={"getpid"}):
                        pass
                    message = None
                except UtraceError as exc:
                    message = str(exc)
                still = os.getppid()
            result(message=message, still=still, after=os.getppid())
            """
        )
    )
    assert res["message"] and "already active in this thread" in res["message"]
    assert "do not nest" in res["message"]
    assert res["still"] == 1 and res["after"] != 1


@needs_dispatch
def test_traced_code_cannot_switch_the_mode_off():
    res = result_of(
        run_snippet(
            """
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            with selftrace(syscalls={"getppid"}, handler=lambda c: c.emulate(1)) as st:
                rc = libc.prctl(59, 0, 0, 0, 0)  # PR_SET_SYSCALL_USER_DISPATCH, OFF
                err = ctypes.get_errno()
                still = os.getppid()
            result(rc=rc, err=err, still=still)
            """
        )
    )
    assert res == {"rc": -1, "err": 16, "still": 1}  # EBUSY


@needs_dispatch
def test_mode_is_off_after_the_block():
    res = result_of(
        run_snippet(
            """
            calls = []
            before = os.getppid()
            with selftrace(syscalls={"getppid", "execve", "wait4"},
                           handler=lambda c: calls.append(c.name)) as st:
                os.getppid()
            n = len(calls)
            after = [os.getppid() for _ in range(3)]
            rc = subprocess.run(["true"]).returncode
            out = subprocess.run([sys.executable, "-c", "print(7)"], capture_output=True, text=True).stdout
            result(before=before, after=after, rc=rc, out=out.strip(), handler_calls=len(calls) - n,
                   sigsys=int(signal.getsignal(signal.SIGSYS)))
            """
        )
    )
    assert res["after"] == [res["before"]] * 3
    assert res["rc"] == 0 and res["out"] == "7"
    assert res["handler_calls"] == 0
    assert res["sigsys"] == 0  # SIG_DFL is back


@needs_dispatch
@pytest.mark.slow
def test_signals_during_the_block():
    res = result_of(
        run_snippet(
            """
            alarms = 0
            def on_alarm(signum, frame):
                global alarms
                alarms += 1
                os.getpid()  # a call from a Python signal handler, traced or not
            signal.signal(signal.SIGALRM, on_alarm)
            signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)
            wrong = 0
            with selftrace(syscalls={"getppid", "getpid"},
                           handler=lambda c: c.emulate(777) if c.name == "getppid" else None) as st:
                for _ in range(10000):
                    if os.getppid() != 777:
                        wrong += 1
            signal.setitimer(signal.ITIMER_REAL, 0, 0)
            result(alarms=alarms, wrong=wrong, getppid=sum(r.name == "getppid" for r in st.records),
                   failures=[str(f) for f in st.failures])
            """
        ),
    )
    assert res["wrong"] == 0
    assert res["getppid"] == 10000
    assert res["alarms"] >= 10
    assert res["failures"] == []


@needs_dispatch
def test_exception_from_a_signal_handler_reaches_the_traced_code():
    res = result_of(
        run_snippet(
            """
            def timeout(signum, frame):
                raise TimeoutError("alarm")
            signal.signal(signal.SIGALRM, timeout)
            n = 0
            with selftrace(syscalls={"getppid"}, handler=lambda c: c.emulate(5)) as st:
                signal.setitimer(signal.ITIMER_REAL, 0.05)
                try:
                    while True:
                        assert os.getppid() == 5
                        n += 1
                except TimeoutError:
                    caught = True
            result(caught=caught, n=n, failures=len(st.failures), records=len(st.records))
            """
        )
    )
    assert res["caught"] and res["n"] > 0
    assert res["failures"] == 0
    assert res["records"] >= res["n"]


@needs_dispatch
def test_calls_inside_c_signal_handlers_run_natively_and_are_recorded():
    """CPython's C handler writes to the wakeup fd (asyncio does this): no Python may run there."""
    res = result_of(
        run_snippet(
            """
            r, w = os.pipe()
            os.set_blocking(w, False)
            os.set_blocking(r, False)
            signal.set_wakeup_fd(w)
            signal.signal(signal.SIGALRM, lambda *a: None)
            signal.setitimer(signal.ITIMER_REAL, 0.0005, 0.0005)
            junk = []
            with selftrace(syscalls={"write", "getppid"}, handler=lambda c: None) as st:
                for i in range(20000):
                    junk.append({"i": i, "s": str(i) * 3})  # keep the allocator busy
                    os.getppid()
                    if len(junk) > 1000:
                        junk.clear()
            signal.setitimer(signal.ITIMER_REAL, 0, 0)
            writes = [r for r in st.records if r.name == "write"]
            result(writes=len(writes), ok=all(r.args[0] == w and r.ret in (1, -11) for r in writes),
                   failures=len(st.failures))
            """
        )
    )
    assert res["writes"] >= 5 and res["ok"]
    assert res["failures"] == 0


@needs_dispatch
def test_ctrl_c_reaches_the_traced_code():
    res = result_of(
        run_snippet(
            """
            killer = subprocess.Popen(["sh", "-c", f"sleep 0.3; kill -INT {os.getpid()}"])
            n = 0
            with selftrace(syscalls={"getppid"}, handler=lambda c: c.emulate(3)) as st:
                try:
                    while True:
                        assert os.getppid() == 3
                        n += 1
                except KeyboardInterrupt:
                    interrupted = True
            killer.wait()
            result(interrupted=interrupted, n=n, failures=len(st.failures))
            """
        )
    )
    assert res["interrupted"] and res["n"] > 0 and res["failures"] == 0


@needs_dispatch
def test_python_cut_short_never_changes_a_result():
    """A KeyboardInterrupt inside the callback: the call is decided again, or run natively."""
    res = result_of(
        run_snippet(
            """
            r, w = os.pipe()
            os.set_blocking(r, False)
            def pipe_has_data():
                try:
                    return os.read(r, 100).decode()
                except BlockingIOError:
                    return ""
            asked = {"n": 0}
            def once(call):
                if call.args[0] != w:
                    return None
                asked["n"] += 1
                if asked["n"] == 1:
                    raise KeyboardInterrupt  # as if Ctrl-C fired inside the handler
                return call.deny("EACCES")
            outcomes = []
            with selftrace(syscalls={"write"}, handler=once) as st:
                try:
                    try:
                        os.write(w, b"must not be written")
                    except PermissionError:
                        outcomes.append("PermissionError")
                except KeyboardInterrupt:  # raised right after the call, maybe inside the except
                    outcomes.append("KeyboardInterrupt")
            denied = [rec.ret for rec in st.records if rec.args[0] == w]
            first = pipe_has_data()
            def always(call):
                if call.args[0] == w:
                    raise KeyboardInterrupt
            with selftrace(syscalls={"write"}, handler=always) as st2:
                try:
                    os.write(w, b"written natively")
                except KeyboardInterrupt:
                    after2 = "interrupted"
            second = pipe_has_data()
            def broken_sink(line):
                raise RuntimeError("output broke")
            with selftrace(syscalls={"getppid"}, handler=lambda c: c.emulate(6), output=broken_sink) as st3:
                try:
                    os.getppid()
                    after3 = "no error"
                except RuntimeError as exc:
                    after3 = str(exc)
            result(asked=asked["n"], outcomes=outcomes, denied=denied, first=first, after2=after2,
                   second=second, after3=after3,
                   failures=len(st.failures) + len(st2.failures) + len(st3.failures))
            """
        )
    )
    assert res["asked"] == 2 and res["denied"] == [-13]  # decided again ...
    assert res["first"] == ""  # ... so the denied write never ran
    assert "KeyboardInterrupt" in res["outcomes"]  # and the interrupt reaches the traced code
    assert res["second"] == "written natively" and res["after2"] == "interrupted"  # native after 3 tries
    assert res["after3"] == "output broke"  # raised in the traced code, after the result was set
    assert res["failures"] == 0


@needs_dispatch
def test_threads_and_subprocesses_started_inside_the_block():
    res = result_of(
        run_snippet(
            """
            seen = []
            def handler(call):
                seen.append((call.name, threading.get_native_id()))
                return call.emulate(99) if call.name == "getppid" else None
            out = {}
            with selftrace(syscalls={"getppid", "clone", "clone3", "vfork", "wait4"}, handler=handler) as st:
                t = threading.Thread(target=lambda: out.update(thread=os.getppid()))
                t.start(); t.join()
                main = os.getppid()
                pid = os.fork()
                if pid == 0:
                    os._exit(3 if os.getppid() == os.getpid() or os.getppid() == 99 else 4)
                _, status = os.waitpid(pid, 0)
                sub = subprocess.run([sys.executable, "-c", "import os; print(os.getppid())"],
                                     capture_output=True, text=True)
            result(thread=out["thread"], main=main, fork=os.waitstatus_to_exitcode(status),
                   child=pid, sub_out=sub.stdout.strip(), sub_rc=sub.returncode, me=os.getpid(),
                   seen_threads=sorted({tid for _, tid in seen}), traced=threading.get_native_id(),
                   records=[(r.name, r.ret) for r in st.records])
            """
        )
    )
    assert res["main"] == 99
    assert res["thread"] == res["me"] or res["thread"] != 99  # untraced: the real parent
    assert res["thread"] != 99
    assert res["fork"] == 4  # the child runs natively
    assert res["sub_rc"] == 0 and int(res["sub_out"]) == res["me"]
    assert res["seen_threads"] == [res["traced"]]
    names = [r[0] for r in res["records"]]
    assert names[0] == "clone3" and res["records"][0][1] > 0  # the thread, with its tid
    assert ["clone", res["child"]] in res["records"]  # fork, with the child's pid
    assert "vfork" in names or "clone3" in names[1:] or "clone" in names[2:]  # subprocess's spawn


@needs_dispatch
def test_an_exception_in_the_handler_fails_only_its_call():
    res = result_of(
        run_snippet(
            """
            state = {"n": 0}
            def handler(call):
                state["n"] += 1
                if state["n"] == 1:
                    raise ValueError("handler bug")
            with selftrace(syscalls={"openat"}, handler=handler) as st:
                try:
                    open("/etc/passwd")
                    first = "opened"
                except OSError as exc:
                    first = exc.errno
                with open("/etc/passwd") as f:
                    second = len(f.read(4))
            result(first=first, second=second, failures=[str(f) for f in st.failures],
                   failed=st.failures[0].record.ret, injected=st.failures[0].record.injected,
                   records=[(r.name, r.ret) for r in st.records])
            """
        )
    )
    assert res["first"] == 38  # ENOSYS
    assert res["second"] == 4
    assert res["failures"] == ["openat: handler raised ValueError: handler bug"]
    assert res["failed"] == -38 and "exception" in res["injected"]
    assert res["records"][0] == ["openat", -38]


@needs_dispatch
def test_printing_from_the_handler_while_the_traced_code_prints():
    res = result_of(
        run_snippet(
            """
            def handler(call):
                print("handler sees", call.name)  # sys.stdout: the traced code may be inside it
            with selftrace(syscalls={"write"}, handler=handler) as st:
                for i in range(3):
                    print("traced line", i, flush=True)
            result(failures=[str(f) for f in st.failures], writes=len(st.records))
            """
        )
    )
    assert res["failures"] == []
    assert res["writes"] >= 3


@needs_dispatch
def test_signal_mask_and_sigsys_stay_sane():
    res = result_of(
        run_snippet(
            """
            with selftrace(syscalls={"rt_sigprocmask", "rt_sigaction", "getppid"}) as st:
                old = signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1, signal.SIGSYS])
                inside = signal.pthread_sigmask(signal.SIG_BLOCK, [])
                previous = signal.signal(signal.SIGSYS, lambda *a: None)  # a virtual SIGSYS action
                os.getppid()  # still traced
            after = signal.pthread_sigmask(signal.SIG_BLOCK, [])
            result(old=sorted(old), inside=sorted(inside), after=sorted(after), previous=int(previous),
                   names=[r.name for r in st.records])
            """
        )
    )
    assert int(__import__("signal").SIGUSR1) in res["inside"]
    assert int(__import__("signal").SIGSYS) not in res["inside"]  # never blocked while tracing
    assert res["after"] == res["inside"]
    assert res["previous"] == 0
    assert res["names"].count("rt_sigprocmask") == 2 and "getppid" in res["names"]
    assert "rt_sigaction" in res["names"]


@needs_dispatch
def test_exit_inside_the_block_prints_its_line_first(tmp_path):
    script = tmp_path / "exits.py"
    script.write_text("import os\nos.write(1, b'bye\\n')\nos._exit(5)\n")
    proc = run_snippet(
        f"""
        from utrace.selftrace import run_script
        sys.exit(run_script({str(script)!r}, [], "exit_group,write", None, sys.stderr))
        """
    )
    assert proc.returncode == 5
    assert proc.stdout == "bye\n"
    assert "exit_group(5)" in proc.stderr and "= ?" in proc.stderr


@needs_dispatch
def test_execve_inside_the_block(tmp_path):
    script = tmp_path / "execs.py"
    script.write_text(
        textwrap.dedent(
            """
            import os
            try:
                os.execv("/nonexistent/prog", ["x"])
            except OSError as exc:
                print("failed", exc.errno, flush=True)
            os.execv("/bin/sh", ["sh", "-c", "echo exec ok; grep Seccomp: /proc/self/status"])
            """
        )
    )
    proc = run_snippet(
        f"""
        from utrace.selftrace import run_script
        sys.exit(run_script({str(script)!r}, [], "execve", None, sys.stderr))
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[:2] == ["failed 2", "exec ok"]  # the new program runs untraced
    lines = proc.stderr.splitlines()
    assert lines[0].startswith('execve("/nonexistent/prog", ["x"], ') and lines[0].endswith(
        "<unfinished ...>"
    )
    assert lines[1] == "<... execve resumed>) = -1 ENOENT (No such file or directory)"
    assert lines[2].startswith('execve("/bin/sh", ["sh", "-c", ') and lines[2].endswith("<unfinished ...>")


@needs_dispatch
def test_run_script_end_to_end(tmp_path):
    script = tmp_path / "target.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, sys
            print("argv", sys.argv[1:], flush=True)
            try:
                os.chdir("/")
            except PermissionError as exc:
                print("denied", exc.errno, flush=True)
            print("ppid", os.getppid(), flush=True)
            sys.exit(3)
            """
        )
    )
    proc = run_snippet(
        f"""
        from utrace.selftrace import run_script
        status = run_script({str(script)!r}, ["a", "b c"], "openat,getppid",
                            ["chdir:error=EACCES", "getppid:retval=31337"], sys.stderr)
        sys.exit(status)
        """
    )
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.splitlines() == ["argv ['a', 'b c']", "denied 13", "ppid 31337"]
    assert 'chdir("/") = -1 EACCES (Permission denied) (INJECTED)' in proc.stderr
    assert "getppid() = 31337 (INJECTED)" in proc.stderr
    # the script is read before the mode is on: its own loading is not part of its trace
    assert "target.py" not in proc.stderr


@needs_dispatch
def test_run_script_with_a_handler(tmp_path):
    script = tmp_path / "target.py"
    script.write_text("import os\nprint(os.getppid())\n")
    proc = run_snippet(
        f"""
        from utrace.selftrace import run_script
        import io
        out = io.StringIO()
        status = run_script({str(script)!r}, [], "getppid", lambda c: c.emulate(12), out)
        result(status=status, trace=out.getvalue())
        """
    )
    res = result_of(proc)
    assert proc.stdout.startswith("12\n")
    assert res["status"] == 0 and res["trace"] == "getppid() = 12 (INJECTED)\n"


@needs_dispatch
def test_run_script_reports_the_scripts_error_as_python_does(tmp_path):
    script = tmp_path / "fails.py"
    script.write_text("import os\nos.getppid()\nraise ValueError('boom')\n")
    proc = run_snippet(
        f"""
        from utrace.selftrace import run_script
        sys.exit(run_script({str(script)!r}, [], "getppid", None, sys.stdout))
        """
    )
    assert proc.returncode == 1
    assert proc.stdout.startswith("getppid() = ")
    assert proc.stderr.splitlines() == [
        "Traceback (most recent call last):",
        f'  File "{script}", line 3, in <module>',
        "    raise ValueError('boom')",
        "ValueError: boom",
    ]


@needs_seccomp
def test_seccomp_fallback_runs_on_a_throwaway_thread():
    res = result_of(
        run_snippet(
            """
            def handler(call):
                if call.name == "getppid":
                    return call.emulate(1234)
                if call.read_string(call.args[1]) == b"/etc/hostname":
                    return call.deny("EACCES")
            st = selftrace(syscalls={"getppid", "openat"}, handler=handler, mechanism="seccomp")
            def body():
                out = {}
                t = threading.Thread(target=lambda: out.update(thread=os.getppid()))
                t.start(); t.join()
                try:
                    open("/etc/hostname")
                except PermissionError as exc:
                    out["denied"] = exc.errno
                out["ppid"] = [os.getppid() for _ in range(100)]
                return out
            out = st.run(body)
            try:
                with selftrace(mechanism="seccomp"):
                    pass
            except UtraceError as exc:
                refused = str(exc)
            status = open("/proc/self/status").read()
            result(out=out, refused=refused, after=os.getppid(), rc=subprocess.run(["true"]).returncode,
                   seccomp=status.split("Seccomp:")[1].split()[0],
                   records=[r.name for r in st.records])
            """
        )
    )
    assert res["out"]["ppid"] == [1234] * 100
    assert res["out"]["denied"] == 13
    assert res["out"]["thread"] != 1234
    assert res["after"] != 1234 and res["rc"] == 0
    assert res["seccomp"] == "0"  # the calling thread never had the filter
    assert "SelfTrace.run" in res["refused"]
    assert res["records"].count("getppid") == 100


@needs_dispatch
def test_calls_with_nothing_to_capture_are_recorded_by_the_stub():
    """No handler, no output: a selected call with no memory to capture runs in the stub, which
    leaves its record (with the trap's time) in the ring; Python reads the ring when another call
    reaches it, when the ring is full and when the block ends, so the records keep their order."""
    res = result_of(
        run_snippet(
            """
            with selftrace(syscalls={"getppid", "write"}) as st:
                t0 = time.monotonic()
                for i in range(500):
                    os.getppid()
                    if i % 100 == 99:
                        os.write(1, b"")  # has a buffer to capture: through Python
                t1 = time.monotonic()
            recs = st.records
            stamps = [r.timestamp for r in recs]
            lines = []
            with selftrace(syscalls={"getppid"}, output=lines.append) as live:
                seen = []
                for i in range(3):
                    os.getppid()
                    seen.append(len(lines))
            result(names=[r.name for r in recs], rets=sorted({r.ret for r in recs if r.name == "getppid"}),
                   ppid=os.getppid(), in_block=all(t0 <= t <= t1 for t in stamps),
                   ordered=stamps == sorted(stamps), stub=st.stub_records, lost=st.lost, live_seen=seen,
                   live_stub=live.stub_records)
            """
        )
    )
    assert res["names"] == (["getppid"] * 100 + ["write"]) * 5
    assert res["rets"] == [res["ppid"]]
    assert res["in_block"] and res["ordered"]
    # per 100 calls one finds the ring full (63 records waiting) and goes through Python, which reads it
    assert res["stub"] == 5 * 99 and res["lost"] == 0
    # with an output, each line is printed as its call happens: every call goes through Python
    assert res["live_seen"] == [1, 2, 3] and res["live_stub"] == 0


@needs_seccomp
def test_stub_records_under_the_seccomp_fallback():
    res = result_of(
        run_snippet(
            """
            st = selftrace(syscalls={"getppid", "close"}, mechanism="seccomp")
            def body():
                for _ in range(200):
                    os.getppid()
                os.close(os.dup(0))
            st.run(body)
            rets = sorted({r.ret for r in st.records if r.name == "getppid"})
            result(names=[r.name for r in st.records], rets=rets, ppid=os.getppid(), stub=st.stub_records,
                   lost=st.lost)
            """
        )
    )
    assert res["names"] == ["getppid"] * 200 + ["close"]
    assert res["rets"] == [res["ppid"]] and res["lost"] == 0
    assert res["stub"] >= 190  # all but the calls that found the ring full
