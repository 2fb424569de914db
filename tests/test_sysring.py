"""One stop per system call (utrace/sysring.py): a launch under a seccomp filter sends the return of
calls that copy nothing out through a stub that records the result, instead of an exit stop.

Checked against strace (the same lines), against the program itself (registers after `syscall`,
results, output and exit status as untraced), and through the corner cases: a call interrupted by a
signal and restarted, pause() ended by a handler, more calls than the ring holds, detach in the
middle, children under the inherited filter, lines of a call that returned while the program sleeps.
"""

from __future__ import annotations

import io
import os
import subprocess
import time
from pathlib import Path

import pytest

import utrace
from utrace.output import Output
from utrace.systrace import SyscallHandler, SysOptions

from .conftest import SAMPLE_BUILDS
from .test_syscall_decode import ENV, assert_same_trace, normalize, run_strace
from .test_syscall_decode import strace as strace_fixture
from .test_systrace import run_utrace, signal_lines

SAMPLE_BUILDS["sys_ring"] = (["sys_ring.c"], ["-O1", "-g", "-mno-red-zone"])

strace_path = pytest.fixture(scope="module")(strace_fixture.__wrapped__)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


def untraced(argv: list) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def launch_quiet(argv: list, numbers=None) -> utrace.Tracer:
    """The API's launch with every call (or ``numbers``) recorded, nothing printed."""
    opts = SysOptions(numbers=numbers, quiet=True)
    return utrace.launch(argv, syscalls=opts, probes=False, output=Output(io.StringIO()))


@pytest.mark.parametrize("option", ["-S", "--syscalls=getppid,getpid,getuid"])
def test_registers_after_a_one_stop_call_are_those_of_a_direct_return(sample, utrace_cli, option):
    """rcx = the return address and r11 = the flags, as SYSRET leaves them; rax the result."""
    exe = sample("sys_ring")
    plain = untraced([exe, "regs"])
    assert plain.returncode == 0 and "WRONG" not in plain.stdout
    res = utrace_cli(option, "-o", os.devnull, "--", exe, "regs")
    assert (res.returncode, res.stdout) == (plain.returncode, plain.stdout), res.stderr


def test_calls_go_through_the_ring_one_stop_each(sample):
    """The path is really taken: getppid and write copy nothing out."""
    exe = sample("sys_ring")
    t = launch_quiet([exe, "loop", "500"])
    assert t.run() == 0
    st = t.systrace
    assert st is not None
    assert st.one_stop_calls >= 1000
    parent = os.getpid()
    getppid = [r for r in st.records if r.name == "getppid"]
    writes = [r for r in st.records if r.name == "write" and r.args[0] != 1]
    assert len(getppid) == 501 and all(r.ret == parent for r in getppid)
    assert [r.ret for r in writes] == [1 + i % 8 for i in range(500)]


@pytest.mark.parametrize("mode", ["loop", "restart", "pause"])
def test_one_stop_trace_matches_strace(strace_path, sample, workdir, mode):
    """Line for line as strace: across many ring refills (loop), a write blocked on a full pipe that
    a SIGALRM interrupts and the kernel restarts (SA_RESTART), pause() ended by a handler."""
    exe = sample("sys_ring")
    argv = [exe, mode] + (["300"] if mode == "loop" else [])
    theirs_raw = run_strace(strace_path, argv, ENV, workdir, [])
    ours_raw = run_utrace(argv, workdir, ["-S"])
    theirs, ours = normalize(theirs_raw), normalize(ours_raw)
    assert_same_trace(theirs, ours)
    assert signal_lines(ours_raw) == signal_lines(theirs_raw)
    if mode == "restart":
        assert any("ERESTARTSYS" in ln for ln in ours) and 'write(4, "y", 1) = 1' in ours
    if mode == "pause":
        assert "pause() = ? ERESTARTNOHAND (To be restarted if no handler)" in ours


def test_detach_in_the_middle_leaves_the_program_whole(sample, utrace_cli, tmp_path):
    """--duration on a launched program under the filter: utrace goes quiet (the filter needs a
    tracer) and the program ends with its own output and status; every line printed is whole."""
    exe = sample("sys_ring")
    n = 200000
    trace = tmp_path / "trace"
    res = utrace_cli("-S", "--duration", "0.3", "-o", str(trace), "--", exe, "loop", str(n), timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout == untraced([exe, "loop", str(n)]).stdout
    lines = trace.read_text().splitlines()
    getppid = [ln for ln in lines if ln.startswith("getppid(")]
    assert getppid and len(getppid) < n  # it stopped tracing well before the end
    assert len(set(getppid)) == 1 and getppid[0] != "getppid() = ?"  # utrace's pid, each time


def test_children_under_the_filter_keep_working_without_f(utrace_cli):
    """Regression: an unfollowed child was let go with the launch's seccomp filter, so its selected
    calls failed with ENOSYS (echo's output vanished)."""
    res = utrace_cli("--syscalls=write", "-o", os.devnull, "--", "sh", "-c", "/bin/echo hi | /bin/cat")
    assert res.returncode == 0, res.stderr
    assert res.stdout == "hi\n"


def test_a_returned_call_is_printed_while_the_program_sleeps(tmp_path):
    """Its result waits in the ring: the flush timer prints it without waiting for another stop."""
    trace = tmp_path / "trace"
    script = "import os, time; os.write(1, b'x'); time.sleep(4)"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    cmd = ["python3", "-m", "utrace", "--syscalls=write", "-o", str(trace), "--", "python3", "-c", script]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 3
        seen = False
        while time.monotonic() < deadline and not seen:
            time.sleep(0.1)
            seen = trace.exists() and 'write(1, "x", 1) = 1' in trace.read_text()
        assert seen, "the write's line was not printed while the program slept"
        assert proc.poll() is None  # and the program was indeed still sleeping
    finally:
        proc.communicate(timeout=30)


def test_a_program_that_maps_over_the_ring_wins(sample, utrace_cli, tmp_path):
    """The ring's fixed address is the program's if it wants it: sys_proc maps MAP_FIXED_NOREPLACE
    at a low address; the exit status and output are those of an untraced run."""
    exe = sample("sys_proc")
    plain = untraced([exe])
    res = utrace_cli("-S", "-o", os.devnull, "--", exe)
    assert (res.returncode, res.stdout) == (plain.returncode, plain.stdout), res.stderr


@pytest.mark.parametrize("option, mode", [([], "2"), (["--no-seccomp"], "0")])
def test_no_seccomp_launches_without_a_filter(utrace_cli, option, mode):
    """--no-seccomp: plain PTRACE_SYSCALL stops, the program runs without a filter (for setuid and
    file-capability programs, and children left untraced)."""
    res = utrace_cli("-S", *option, "-o", os.devnull, "--", "grep", "^Seccomp:", "/proc/self/status")
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["Seccomp:", mode]


def test_no_seccomp_trace_matches_strace(strace_path, sample, workdir):
    exe = sample("sys_ring")
    theirs = normalize(run_strace(strace_path, [exe, "restart"], ENV, workdir, []))
    ours = normalize(run_utrace([exe, "restart"], workdir, ["-S", "--no-seccomp"]))
    assert_same_trace(theirs, ours)


@pytest.mark.parametrize("option", [[], ["--no-seccomp"]])
def test_probe_hits_and_calls_in_one_stream_in_order(sample, utrace_cli, tmp_path, option):
    """A probe on libc's getppid and the getppid and write calls: each hit comes before its call's
    line, and the lines follow the program's order (one-stop results are printed in order too)."""
    exe = sample("sys_ring")
    trace = tmp_path / "trace"
    argv = ["--syscalls=getppid,write", *option, "libc:getppid", "-o", str(trace), "--", exe, "loop", "3"]
    res = utrace_cli(*argv)
    assert res.returncode == 0, res.stderr
    assert res.stdout == untraced([exe, "loop", "3"]).stdout
    kinds = []
    for line in trace.read_text().splitlines():
        if ": getppid: (libc.so.6:getppid+0x0)" in line:
            kinds.append("hit")
        elif line.startswith(("getppid(", "write(")):
            kinds.append(line.split("(", 1)[0] + ("" if not line.startswith("write(3") else "3"))
    assert kinds == ["hit", "getppid"] + ["hit", "getppid", "write3"] * 3 + ["write"]


class SkipWritesChangeGetppid(SyscallHandler):
    """Writes to fd 3 are not executed and return 5; getppid returns 424242 after its first call."""

    def __init__(self) -> None:
        self.getppids = 0

    def on_enter(self, rec):
        return ("retval", 5) if rec.name == "write" and rec.args[0] == 3 else None

    def on_exit(self, rec):
        if rec.name == "getppid":
            self.getppids += 1
            return 424242 if self.getppids > 1 else None
        return None


@pytest.mark.parametrize("how", ["launch", "trace_syscalls"])
def test_api_handler_skips_calls_and_changes_results(sample, capfd, how):
    """on_enter's ("retval", N) skips the call (the program sees N), on_exit's int replaces the
    result, under the launch's filter and with trace_syscalls on PTRACE_SYSCALL stops alike."""
    exe = sample("sys_ring")
    handler = SkipWritesChangeGetppid()
    if how == "launch":
        opts = SysOptions(numbers=frozenset({1, 110}), handler=handler, quiet=True)
        t = utrace.launch([exe, "loop", "4"], syscalls=opts, probes=False, output=Output(io.StringIO()))
        st = t.systrace
    else:
        t = utrace.launch([exe, "loop", "4"], probes=False, output=Output(io.StringIO()))
        st = t.trace_syscalls("write,getppid", handler, quiet=True)
    assert t.run() == 0
    # the 4 writes "wrote" 5 bytes each; no getppid after the first returned the parent's pid
    assert capfd.readouterr().out == "20 0\n"
    assert st is not None
    writes = [r for r in st.records if r.name == "write" and r.args[0] == 3]
    assert [(r.ret, r.injected) for r in writes] == [(5, "retval=5")] * 4
    assert [r.ret for r in st.records if r.name == "getppid"] == [os.getpid()] + [424242] * 4


def test_summary_counts_calls_by_name(sample, utrace_cli, tmp_path):
    """-c with system calls: a count per call name (the one-stop calls included)."""
    trace = tmp_path / "trace"
    res = utrace_cli(
        "-c", "--syscalls=write,getppid", "-o", str(trace), "--", sample("sys_ring"), "loop", "7"
    )
    assert res.returncode == 0, res.stderr
    rows = [ln.split() for ln in trace.read_text().splitlines() if ln[:1].isalpha()]
    counts = {row[0]: int(row[1]) for row in rows[1:]}  # after the heading
    assert counts == {"write": 8, "getppid": 8, "total": 16}
