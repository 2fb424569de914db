"""The engine's syscall tracing, checked call by call against strace on the same programs."""

from __future__ import annotations

import collections
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

from .test_syscall_decode import ENV, assert_same_trace, normalize, prepare, run_strace
from .test_syscall_decode import strace as strace_fixture

strace_path = pytest.fixture(scope="module")(strace_fixture.__wrapped__)

ROOT = Path(__file__).resolve().parent.parent
# The CLI without touching the environment: the traced program must see exactly strace's.
CLI = [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r}); from utrace.cli import main; "
       "sys.exit(main())"]  # fmt: skip


def run_utrace(argv: List[str], cwd: Path, options: List[str], check: bool = True) -> List[str]:
    out = cwd.parent / f"utrace-{os.getpid()}.txt"
    cmd = ["setarch", "x86_64", "-R", *CLI, "-o", str(out), *options, "--", *argv]
    proc = subprocess.run(cmd, env=ENV, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, timeout=120)  # fmt: skip
    if check:
        assert proc.returncode == 0, proc.stderr
    lines = out.read_text(errors="replace").splitlines()
    out.unlink()
    return lines


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


def compare(strace_path: str, argv_of, cwd: Path, strace_opts: List[str], utrace_opts: List[str]) -> int:
    argv, their_ports = argv_of()
    theirs_raw = run_strace(strace_path, argv, ENV, cwd, strace_opts)
    argv, ports = argv_of()
    ours_raw = run_utrace(argv, cwd, utrace_opts)
    assert_same_trace(normalize(theirs_raw, their_ports), normalize(ours_raw, ports))
    assert signal_lines(ours_raw) == signal_lines(theirs_raw)
    return len(ours_raw)


def signal_lines(lines: List[str]) -> List[str]:
    """The ``--- SIG... {...} ---`` lines, with what differs between two runs (pids, CPU ticks) masked."""
    found = [ln for ln in lines if ln.startswith("--- ")]
    found = [re.sub(r"si_pid=\d+", "si_pid=PID", ln) for ln in found]
    return [re.sub(r"(si_[us]time=)\d+(?: /\* [\d.]+ s \*/)?", r"\1T", ln) for ln in found]


@pytest.mark.parametrize("name", ["sys_files", "sys_net", "sys_proc"])
def test_every_call_matches_strace(strace_path, sample, workdir, name):
    exe = sample(name)
    n = compare(strace_path, lambda: prepare(name, exe, workdir), workdir, ["-s", "32"], ["-S"])
    assert n > 30


@pytest.mark.parametrize("name", ["sys_files", "sys_proc"])
def test_fd_paths_match_strace_y(strace_path, sample, workdir, name):
    exe = sample(name)
    compare(strace_path, lambda: prepare(name, exe, workdir), workdir, ["-y"], ["-S", "-y"])


def test_selected_calls_with_seccomp_match_strace(strace_path, sample, workdir):
    exe = sample("sys_files")
    sel = "openat,read,write,close,%stat"
    compare(strace_path, lambda: prepare("sys_files", exe, workdir), workdir, ["-e", f"trace={sel}"],
            [f"--syscalls={sel}"])  # fmt: skip


@pytest.mark.parametrize("argv", [["cat", "/etc/hostname"], ["ls", "-l", "/"], ["env"]])
def test_system_binaries_match_strace(strace_path, workdir, argv):
    def argv_of():
        path = subprocess.run(
            ["sh", "-c", f"command -v {argv[0]}"], capture_output=True, text=True
        ).stdout.strip()
        return [path, *argv[1:]], ()

    compare(strace_path, argv_of, workdir, [], ["-S"])


def test_inject_error_matches_strace(strace_path, workdir):
    argv = ["/bin/cat", "/etc/hostname", "/etc/hostname"]
    spec = "openat:error=ENOENT:when=4"
    theirs = normalize(
        run_strace(strace_path, argv, ENV, workdir, ["-e", "trace=openat,read", f"--inject={spec}"])
    )
    ours = normalize(run_utrace(argv, workdir, ["--syscalls=openat,read", f"--inject={spec}"], check=False))
    assert [ln for ln in theirs if "INJECTED" in ln]
    assert_same_trace(theirs, ours)


def per_process(lines: List[str]) -> dict:
    calls = collections.defaultdict(list)
    for ln in lines:
        m = re.match(r"^(?:\[pid\s+(\d+)\] |(\d+) +)?(\w+)\(", ln)
        if m:
            calls[m.group(1) or m.group(2) or "main"].append(m.group(3))
    return calls


def test_follow_forks_shell_pipeline_same_calls_per_process(strace_path, workdir):
    argv = ["/bin/sh", "-c", "echo hello | /bin/cat"]
    theirs = per_process(run_strace(strace_path, argv, ENV, workdir, ["-f"]))
    ours = per_process(run_utrace(argv, workdir, ["-f", "-S"]))
    assert sorted(map(signal_timing_free, theirs.values())) == sorted(map(signal_timing_free, ours.values()))


def signal_timing_free(calls: List[str]) -> List[str]:
    """The shell's calls without what depends on when its SIGCHLDs land (they differed between two
    strace runs): no rt_sigreturn, and a wait4 repeated (restarted, or one per child) counted once."""
    kept = [c for c in calls if c != "rt_sigreturn"]
    return [c for i, c in enumerate(kept) if not (c == "wait4" and i and kept[i - 1] == "wait4")]


def test_raw_stream_records_copies(sample, workdir):
    exe = sample("sys_files")
    argv, _ = prepare("sys_files", exe, workdir)
    lines = run_utrace(argv, workdir, ["--syscalls=read,openat", "--raw-syscalls"])
    assert any(re.match(r"^NR 257 \(", ln) for ln in lines)  # openat entry
    assert any(ln.startswith("COPY_FROM_USER ") for ln in lines)  # the path it reads
    assert any(ln.startswith("COPY_TO_USER ") for ln in lines)  # what read() wrote
    assert any(re.match(r"^NR 0 = \d+", ln) for ln in lines)


def test_syscall_usage_errors_before_start(utrace_cli):
    res = utrace_cli("--syscalls=opne", "--", "true")
    assert res.returncode == 2 and "open" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    res = utrace_cli("--syscalls=%nosuch", "--", "true")
    assert res.returncode == 2 and "%file" in res.stderr
    res = utrace_cli("--inject=openat:bogus=1", "--", "true")
    assert res.returncode == 2 and "error=" in res.stderr


def test_api_handler_denies_and_changes_results(sample):
    import io

    import utrace
    from utrace.output import Output
    from utrace.systrace import SyscallHandler

    class Deny(SyscallHandler):
        def on_enter(self, rec):
            if rec.name == "openat" and b"/etc/hostname" in b"".join(d for _, d in rec.copy_from_user):
                return ("error", 13)
            return None

    out = io.StringIO()
    t = utrace.launch(["cat", "/etc/hostname"], output=Output(out))
    st = t.trace_syscalls("openat,read", Deny(), quiet=True)
    status = t.run()
    assert status == 1  # cat reports the error and fails, as with EACCES
    opened = [r for r in st.records if r.name == "openat" and r.injected]
    assert opened and opened[0].ret == -13


def test_seccomp_set_with_execve_does_not_hang(utrace_cli, tmp_path):
    """Regression: with execve in the seccomp set, the child stops at its own execve before utrace
    read the exec-error pipe, and both waited for each other."""
    out = tmp_path / "trace"
    res = utrace_cli("--syscalls=%file,!close", "-o", str(out), "--", "cat", "/etc/hostname", timeout=30)
    assert res.returncode == 0, res.stderr
    assert 'openat(AT_FDCWD, "/etc/hostname", O_RDONLY) = 3' in out.read_text().splitlines()
    res = utrace_cli("--syscalls=%file", "--", str(tmp_path / "nope"), timeout=30)
    assert res.returncode == 127 and "No such file or directory" in res.stderr


@pytest.mark.parametrize(
    "when, rule",
    [
        ("2", lambda n: n == 2),
        ("1+2", lambda n: n % 2 == 1),
        ("1..2", lambda n: n <= 2),
        ("3..5", lambda n: 3 <= n <= 5),
    ],
)
def test_inject_when_ranges(strace_path, workdir, when, rule):
    argv = ["/bin/cat", "/etc/hostname", "/etc/hostname", "/etc/hostname"]
    spec = f"openat:error=ENOENT:when={when}"
    theirs = normalize(
        run_strace(strace_path, argv, ENV, workdir, ["-e", "trace=openat", f"--inject={spec}"])
    )
    ours = normalize(run_utrace(argv, workdir, ["--syscalls=openat", f"--inject={spec}"], check=False))
    assert_same_trace(theirs, ours)
    calls = [ln for ln in ours if ln.startswith("openat(")]
    assert [i + 1 for i, ln in enumerate(calls) if "INJECTED" in ln] == [
        n for n in range(1, len(calls) + 1) if rule(n)
    ]


def test_inject_open_ended_range(workdir):
    """``when=N..`` (newer strace): from the Nth call on."""
    argv = ["/bin/cat", "/etc/hostname", "/etc/hostname", "/etc/hostname"]
    ours = run_utrace(
        argv, workdir, ["--syscalls=openat", "--inject=openat:error=ENOENT:when=2.."], check=False
    )
    calls = [ln for ln in ours if ln.startswith("openat(")]
    assert len(calls) > 3
    assert [("INJECTED" in ln) for ln in calls] == [False] + [True] * (len(calls) - 1)


def test_syscall_status_failed_matches_strace_Z(strace_path, workdir):
    """--syscall-status=failed: only the calls that returned an error, as strace -Z prints them."""
    argv = ["/bin/ls", "/nonexistent", "/etc/hostname"]
    theirs = normalize(run_strace(strace_path, argv, ENV, workdir, ["-Z"]))
    ours = normalize(run_utrace(argv, workdir, ["-S", "--syscall-status=failed"], check=False))
    assert len(theirs) > 5 and all(" = -1 E" in ln for ln in ours if not ln.startswith("+++"))
    assert_same_trace(theirs, ours)


def test_threads_calls_cut_by_others_are_unfinished_then_resumed(sample, workdir):
    """Threads sleeping in nanosleep and futex: a call that another thread's line interrupts is
    printed ``<unfinished ...>`` and finished by a ``<... NAME resumed>`` line of the same thread,
    and every call of every thread is either whole or such a pair."""
    lines = run_utrace([sample("threads"), "3", "4", "2000"], workdir, ["-f", "-S"])
    pending: dict = {}
    pairs = 0
    for ln in lines:
        m = re.match(r"^\[pid\s+(\d+)\] (.*)$", ln)
        if not m:
            continue
        tid, text = m.groups()
        resumed = re.match(r"^<\.\.\. (\w+) resumed>", text)
        if resumed:
            assert pending.pop(tid, None) == resumed.group(1), ln
            pairs += 1
        else:
            assert tid not in pending, f"thread {tid} started a call before its pending one resumed: {ln}"
            if text.endswith(" <unfinished ...>"):
                pending[tid] = text.split("(", 1)[0]
    assert pairs >= 3 and not {t: n for t, n in pending.items() if n not in ("exit", "exit_group")}
    assert sum("clone3(" in ln for ln in lines) >= 3  # the three threads were made and traced


def test_json_is_one_object_per_call_with_the_whole_data(workdir):
    """--json: an object per call with its arguments by name, result and strace line; with
    --raw-syscalls the memory copied in, not cut at -s as in text."""
    text = "0123456789" * 6 + "\n"
    lines = run_utrace(["/bin/echo", text[:-1]], workdir, ["--json", "--raw-syscalls", "--syscalls=write"])
    objs = [json.loads(ln) for ln in lines]
    (write,) = [o for o in objs if o["type"] == "syscall"]
    assert (write["event"], write["nr"], write["ret"], write["group"]) == ("write", 1, len(text), "syscalls")
    assert write["args"]["fd"] == 1 and write["args"]["count"] == len(text)
    assert write["text"] == f'write(1, "{text[:32]}"..., {len(text)}) = {len(text)}'
    assert [bytes.fromhex(c["data"]) for c in write["copy_from_user"]] == [text.encode()]
    assert objs[-1]["type"] == "exit" and objs[-1]["text"] == "+++ exited with 0 +++"
    raw = run_utrace(["/bin/echo", text[:-1]], workdir, ["--raw-syscalls", "--syscalls=write"])
    assert any(ln.startswith("COPY_FROM_USER ") and ln.endswith("...") and len(ln.split()[2]) == 67
               for ln in raw)  # fmt: skip


def test_strace_e_qualifiers_are_the_syscall_options(utrace_cli, tmp_path):
    """strace users type -e trace=SET, -e status=failed, -e inject=SPEC: the same traces as
    --syscalls, --syscall-status and --inject; other strace qualifiers are usage errors."""
    traces = []
    for options in (
        ["-e", "trace=%file,read", "-e", "status=failed", "-e", "inject=openat:error=EACCES:when=3"],
        ["--syscalls=%file,read", "--syscall-status=failed", "--inject=openat:error=EACCES:when=3"],
    ):
        out = tmp_path / "trace"
        res = utrace_cli(*options, "-o", str(out), "--", "/bin/cat", "/etc/hostname")
        assert res.returncode == 0, res.stderr
        traces.append(normalize(out.read_text().splitlines()))
    assert traces[0] == traces[1] and any("(INJECTED)" in ln for ln in traces[0])
    assert all(" = -1 E" in ln for ln in traces[0] if not ln.startswith("+++"))
    for options, words in (
        (["-e", "signal=none"], "trace=SET"),
        (["-e", "status=successful"], "status=failed"),
        (["-e", "trace=openat", "-e", "mem*"], "library calls"),
    ):
        res = utrace_cli(*options, "--", "/bin/true")
        assert res.returncode == 2 and words in res.stderr and "Traceback" not in res.stderr, res.stderr


def _names_and_results(lines: List[str]) -> List[tuple]:
    calls = []
    for ln in lines:
        m = re.match(r"^(\w+)\(.*\) += (.*)$", ln)
        if m:
            calls.append((m.group(1), m.group(2).split(" (", 1)[0]))
    return calls


@pytest.mark.parametrize("options", [["-S"], ["-S", "--no-seccomp"], ["--syscalls=open,getpid"]])
def test_int80_calls_are_named_by_the_i386_table(strace_path, sample, workdir, options):
    """A 64-bit program's int $0x80 calls use the i386 numbers (4 is write there, stat on x86-64):
    the same names and results as strace, under the filter and without; a set selects them by name.
    Their arguments are shown raw (hex), as the x86-64 decoders would misread i386 structs."""
    exe = sample("sys_i386")
    strace_opts = [] if options[0] == "-S" else ["-e", "trace=open,getpid"]
    theirs = _names_and_results(normalize(run_strace(strace_path, [exe], ENV, workdir, strace_opts)))
    ours_lines = normalize(run_utrace([exe], workdir, options))
    assert _names_and_results(ours_lines) == theirs
    assert ("open", "-1 ENOENT") in theirs
    text = "\n".join(ours_lines)
    # decoded as strace decodes them: only numbers, descriptors, flags, strings and buffers
    assert 'open("/nonexistent/utrace", O_RDONLY) = -1 ENOENT (No such file or directory)' in ours_lines
    if options[0] == "-S":
        assert 'write(1, "int80 write\\n", 12) = 12' in ours_lines  # i386 write (4), not x86-64 stat
        assert "lseek(-1, 0, SEEK_SET) = -1 EBADF (Bad file descriptor)" in ours_lines  # sign-extended
        assert "fstat64(0x63, 0x" in text  # a struct of the i386 layout: raw, not misread
