"""System call decoding checked against strace, call by call, on real programs.

Design: each sample (samples/sys_*.c) runs twice with address-space randomisation off, the same
argv, environment and working directory, so that both runs see the same addresses:

- under ``strace -o FILE`` (the oracle, nobody here wrote it);
- under a minimal ptrace syscall-stop loop written here with utrace.kernel (PTRACE_TRACEME,
  TRACESYSGOOD, PTRACE_GET_SYSCALL_INFO, /proc/PID/mem) that builds SyscallRecords with
  capture_entry/capture_exit and prints them with format_call.

The two traces must agree line for line once strace's column alignment is undone and what differs
between any two runs is masked (pids, the loop's own envp address in execve, getrandom's bytes,
socket inode numbers, the TCP ports picked for each run). The loop stands in for the engine's
syscall tracing until that exists; it tests the decoding, not the loop.
"""

from __future__ import annotations

import ctypes
import difflib
import io
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

from utrace import kernel as K
from utrace.errors import UsageError
from utrace.syscalls import (
    GROUPS,
    SYSCALL_NAMES,
    SYSCALL_NUMBERS,
    SyscallRecord,
    _gentable,
    capture_entry,
    capture_exit,
    format_call,
    format_entry,
    format_raw,
    format_resumed,
    parse_syscall_set,
    readers_for,
    signatures,
)

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.machine() != "x86_64", reason="x86-64 Linux system calls"
)

ADDR_NO_RANDOMIZE = 0x0040000
AT_FDCWD = -100
DATA = b'root:x:0:0:root:/root:/bin/bash\n\t\0\377"\\ 0123\001\0022 tail after the NULs, long enough to cut\n'

_libc = ctypes.CDLL(None, use_errno=True)


# --- the reference: strace ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def strace() -> str:
    path = shutil.which("strace")
    if path is None:
        pytest.skip("strace is not installed: it is the oracle for system call decoding")
    if shutil.which("setarch") is None:
        pytest.skip("setarch (util-linux) is needed to run strace without address randomisation")
    return path


def run_strace(strace: str, argv: List[str], env: Dict[str, str], cwd: Path, options: List[str]) -> List[str]:
    out = cwd.parent / f"strace-{os.getpid()}-{random.randrange(1 << 30)}.txt"
    cmd = ["setarch", "x86_64", "-R", strace, "-o", str(out), *options, *argv]
    proc = subprocess.run(
        cmd,
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
    )
    if not out.exists():
        pytest.skip(f"strace could not trace: {proc.stderr.strip()}")
    lines = out.read_text(errors="replace").splitlines()
    out.unlink()
    return lines


# --- the system under test: a minimal syscall-stop loop ------------------------------------------------
def _fd_paths(pid: int) -> Dict[int, str]:
    """Every descriptor's path, and AT_FDCWD's (the working directory), as -y shows them."""
    paths: Dict[int, str] = {}
    try:
        paths[AT_FDCWD] = os.readlink(f"/proc/{pid}/cwd")
        for name in os.listdir(f"/proc/{pid}/fd"):
            try:
                paths[int(name)] = os.readlink(f"/proc/{pid}/fd/{name}")
            except OSError:
                pass
    except OSError:
        pass
    return paths


def _spawn_stopped(argv: List[str], env: Dict[str, str], cwd: Path) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            os.chdir(cwd)
            null = os.open(os.devnull, os.O_RDWR)
            os.dup2(null, 0)
            os.dup2(null, 1)
            os.close(null)
            os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # strace's child inherits only 0, 1 and 2
            _libc.personality(ADDR_NO_RANDOMIZE)
            K.ptrace(K.PTRACE_TRACEME, 0)
            os.kill(os.getpid(), signal.SIGSTOP)
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSTOPPED(status), status
    return pid


def run_utrace_loop(
    argv: List[str],
    env: Dict[str, str],
    cwd: Path,
    strsize: int = 32,
    fd_paths: bool = False,
    records: Optional[List[SyscallRecord]] = None,
) -> List[str]:
    """Trace argv's system calls from its execve on and format each one as it returns."""
    pid = _spawn_stopped(argv, env, cwd)
    lines: List[str] = []
    try:
        K.ptrace_setoptions(pid, K.PTRACE_O_TRACESYSGOOD | K.PTRACE_O_EXITKILL | K.PTRACE_O_TRACEEXEC)
        K.ptrace(K.PTRACE_SYSCALL, pid, 0, 0)
        _loop(pid, strsize, fd_paths, lines, [] if records is None else records)
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    return lines


def _loop(pid: int, strsize: int, fd_paths: bool, lines: List[str], records: List[SyscallRecord]) -> None:
    info = K.ptrace_syscall_info()
    mem: Optional[K.ProcMem] = None
    rec: Optional[SyscallRecord] = None
    entry_paths: Dict[int, str] = {}
    started = False

    def live_path(fd: int) -> Optional[str]:
        return _fd_paths(pid).get(fd)

    def show(r: SyscallRecord) -> str:
        if not fd_paths:
            return format_call(r, strsize)
        return format_call(r, strsize, fd_path=live_path, entry_fd_path=entry_paths.get)

    while True:
        _, status = os.waitpid(pid, K.WALL)
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            break
        sig, inject = os.WSTOPSIG(status), 0
        if K.WPTRACEEVENT(status) == K.PTRACE_EVENT_EXEC:
            if mem is not None:
                mem.close()
            mem = K.ProcMem.open(pid)
        elif sig == signal.SIGTRAP | 0x80:
            if mem is None:
                mem = K.ProcMem.open(pid)
            read, read_string = readers_for(mem)
            K.ptrace_get_syscall_info(pid, info)
            if info.op == K.PTRACE_SYSCALL_INFO_ENTRY:
                started = started or SYSCALL_NAMES.get(info.nr) == "execve"
                name = SYSCALL_NAMES.get(info.nr, f"syscall_{info.nr:#x}")
                captured = capture_entry(info.nr, info.args, read, read_string, sp=info.stack_pointer)
                rec = SyscallRecord(pid, pid, info.nr, name, info.args, 0.0, captured)
                entry_paths = _fd_paths(pid) if fd_paths else {}
            elif info.op == K.PTRACE_SYSCALL_INFO_EXIT and rec is not None:
                rec.ret = info.rval
                rec.copy_to_user = capture_exit(rec.nr, rec.args, rec.ret, read, read_string)
                if started:
                    lines.append(show(rec))
                    records.append(rec)
                rec = None
        else:
            inject = sig  # a signal for the program: deliver it
        K.ptrace(K.PTRACE_SYSCALL, pid, 0, inject)
    if rec is not None and started:  # exit_group: no exit stop
        lines.append(show(rec))
        records.append(rec)
    if mem is not None:
        mem.close()


# --- comparing ------------------------------------------------------------------------------------------
def unalign(line: str) -> str:
    """strace pads the call to column 40 before "= "; format_call does not."""
    if len(line) > 41 and line[40:42] == "= " and line[39] == " ":
        return line[:40].rstrip() + " " + line[40:]
    return line


PID_CALLS = re.compile(r"^(?:getpid|gettid|getppid|set_tid_address|clone|clone3|fork|vfork)\(.*\) = (\d+)")


# Calls whose arguments hold process ids. Elsewhere a pid is replaced only where it is a result or a
# line's [pid N]: a number such as 512 (BLKSSZGET's) is not a pid because a pid happens to be 512.
PID_ARG_CALLS = re.compile(r"^(?:kill|tkill|tgkill|wait4|waitid|getpgid|setpgid|getsid|pidfd_open|prlimit64|"
                           r"sched_\w+|rt_sigqueueinfo|rt_tgsigqueueinfo)\(")  # fmt: skip


def _replace_pid(line: str, pid: str) -> str:
    if PID_ARG_CALLS.match(line):
        return re.sub(rf"\b{pid}\b", "PID", line)
    return re.sub(rf"(^\[pid\s+|^|= ){pid}\b", r"\1PID", line)


def normalize(lines: List[str], ports: Tuple[int, ...] = ()) -> List[str]:
    lines = [unalign(ln) for ln in lines if not ln.startswith(("---", "+++"))]
    pids = {m.group(1) for ln in lines for m in [PID_CALLS.match(ln)] if m}
    out = []
    for ln in lines:
        for pid in pids:
            ln = _replace_pid(ln, pid)
        for k, port in enumerate(ports):
            ln = re.sub(rf"\b{port}\b", f"PORT{k}", ln)
        ln = re.sub(r"^(execve\(.*\], )0x[0-9a-f]+( /\* \d+ vars \*/)", r"\1ENVP\2", ln)
        ln = re.sub(r'^getrandom\("[^"]*"', 'getrandom("RANDOM"', ln)
        ln = re.sub(r"(socket|pipe):\[\d+\]", r"\1:[INODE]", ln)
        out.append(ln)
    return out


def test_normalize_replaces_pids_only_where_they_are_pids():
    """Regression: with strace's pid 512, BLKSSZGET's [512] became [PID] in its trace alone."""
    lines = [
        "getpid() = 512",
        "ioctl(6, BLKSSZGET, [512]) = 0",
        "tgkill(512, 512, SIGUSR1) = 0",
        'read(3, "", 512) = 0',
    ]
    assert normalize(lines) == [
        "getpid() = PID",
        "ioctl(6, BLKSSZGET, [512]) = 0",
        "tgkill(PID, PID, SIGUSR1) = 0",
        'read(3, "", 512) = 0',
    ]


UNKNOWN_TO_STRACE = re.compile(r"^syscall_0x[0-9a-f]+\(")


def utrace_shows_more(theirs: str, ours: str) -> bool:
    """The only differences allowed: calls strace (older than the kernel) cannot name or decode."""
    return bool(UNKNOWN_TO_STRACE.match(theirs)) and not UNKNOWN_TO_STRACE.match(ours)


def assert_same_trace(theirs: List[str], ours: List[str]) -> None:
    mismatched = len(theirs) != len(ours) or any(
        t != o and not utrace_shows_more(t, o) for t, o in zip(theirs, ours)
    )
    if mismatched:
        diff = "\n".join(difflib.unified_diff(theirs, ours, "strace", "utrace", lineterm="", n=1))
        pytest.fail(f"utrace's decoding differs from strace's:\n{diff}")


# --- samples -----------------------------------------------------------------------------------------------
def _free_ports(count: int) -> Tuple[int, ...]:
    socks = []
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = tuple(s.getsockname()[1] for s in socks)
    for s in socks:
        s.close()
    return ports


# strace dates utimensat's timestamps in its local time zone, format_call in this process's one.
ENV = {
    "PATH": "/usr/bin:/bin",
    "HOME": "/",
    "LC_ALL": "C",
    **({"TZ": os.environ["TZ"]} if "TZ" in os.environ else {}),
}


def prepare(name: str, exe: str, cwd: Path) -> Tuple[List[str], Tuple[int, ...]]:
    """A fresh start for one run of a sample in cwd: its data files, its own ports."""
    if name == "sys_files":
        data = cwd / "d"
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir()
        (data / "data").write_bytes(DATA)
        return [exe, "d"], ()
    if name == "sys_net":
        ports = _free_ports(2)
        return [exe, str(ports[0]), str(ports[1]), "."], ports
    return [exe], ()


def compare_with_strace(
    strace: str, exe: str, name: str, cwd: Path, strsize: int = 32, fd_paths: bool = False
) -> int:
    options = ["-s", str(strsize)] + (["-y"] if fd_paths else [])
    argv, ports = prepare(name, exe, cwd)
    theirs = normalize(run_strace(strace, argv, ENV, cwd, options), ports)
    argv, ports = prepare(name, exe, cwd)
    ours = normalize(run_utrace_loop(argv, ENV, cwd, strsize, fd_paths), ports)
    assert_same_trace(theirs, ours)
    return len(ours)


SAMPLES = ["sys_files", "sys_net", "sys_proc"]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    cwd = tmp_path / "work"
    cwd.mkdir()
    return cwd


@pytest.mark.parametrize("name", SAMPLES)
def test_decoding_matches_strace(strace, sample, workdir, name):
    assert compare_with_strace(strace, sample(name), name, workdir) > 60


@pytest.mark.parametrize("name", SAMPLES)
def test_fd_paths_match_strace_y(strace, sample, workdir, name):
    """-y: descriptors print with their paths, resolved at entry for entry arguments as strace does."""
    compare_with_strace(strace, sample(name), name, workdir, fd_paths=True)


@pytest.mark.parametrize("strsize", [4, 100])
def test_string_size_matches_strace_s(strace, sample, workdir, strsize):
    compare_with_strace(strace, sample("sys_files"), "sys_files", workdir, strsize=strsize)


STRACE_CLASSES = [g for g in GROUPS if g != "%net"]


@pytest.mark.parametrize("name", SAMPLES)
def test_classes_match_strace(strace, sample, workdir, name):
    """-e trace=%class: the calls strace keeps for each class are the ones GROUPS puts in it."""
    exe = sample(name)
    argv, _ = prepare(name, exe, workdir)
    seen = {_call(ln) for ln in run_strace(strace, argv, ENV, workdir, [])} - {None}
    assert len(seen) > 20
    for group in STRACE_CLASSES:
        argv, _ = prepare(name, exe, workdir)
        kept = {_call(ln) for ln in run_strace(strace, argv, ENV, workdir, ["-e", f"trace={group}"])} - {None}
        ours = {n for n in seen if n in GROUPS[group]}
        assert kept == ours, f"{group}: strace keeps {sorted(kept)}, GROUPS says {sorted(ours)}"


def _call(line: str) -> Optional[str]:
    m = re.match(r"^([a-z_0-9]+)\(", line)
    return m.group(1) if m else None


# --- the table ------------------------------------------------------------------------------------------
UNISTD_HEADERS = ["/usr/include/x86_64-linux-gnu/asm/unistd_64.h", "/usr/include/asm/unistd_64.h"]


def test_table_agrees_with_the_installed_kernel_headers():
    header = next((Path(h) for h in UNISTD_HEADERS if Path(h).exists()), None)
    if header is None:
        pytest.skip("no <asm/unistd_64.h> (linux-libc-dev) to compare with")
    numbers = dict(re.findall(r"#define __NR_(\w+) (\d+)", header.read_text()))
    assert numbers, header
    for name, nr in numbers.items():
        assert SYSCALL_NAMES[int(nr)] == name


def test_table_has_the_recent_calls():
    expected = {
        "clone3": 435,
        "openat2": 437,
        "pidfd_getfd": 438,
        "io_uring_setup": 425,
        "landlock_create_ruleset": 444,
        "futex_waitv": 449,
        "cachestat": 451,
        "fchmodat2": 452,
        "map_shadow_stack": 453,
        "futex_wake": 454,
        "futex_wait": 455,
        "futex_requeue": 456,
        "statmount": 457,
        "listmount": 458,
        "lsm_get_self_attr": 459,
        "lsm_list_modules": 461,
        "mseal": 462,
        "setxattrat": 463,
        "removexattrat": 466,
        "listns": 470,
        "uretprobe": 335,
        "rseq": 334,
    }
    assert {name: SYSCALL_NUMBERS[name] for name in expected} == expected
    assert not set(SYSCALL_NAMES) & set(range(512, 548)), "x32 numbers are another ABI"


def test_committed_table_is_the_generators_output():
    table_py = Path(_gentable.__file__).with_name("_table.py")
    text = table_py.read_text()
    version = re.search(r"syscall_64\.tbl \(([^;]+);", text)
    assert version, "the header says which kernel the table comes from"
    out = io.StringIO()
    _gentable.write_table(dict(SYSCALL_NAMES), version.group(1), out)
    assert out.getvalue() == text


def test_i386_table_is_the_installed_headers_and_the_generators_output():
    from utrace.syscalls import _table32, i386_name

    header = Path("/usr/include/x86_64-linux-gnu/asm/unistd_32.h")
    if header.exists():  # linux-libc-dev; older or newer than the table's: compare what both have
        numbers = {int(n): name for name, n in re.findall(r"#define __NR_(\w+) (\d+)", header.read_text())}
        assert {n: i386_name(n) for n in numbers} == numbers
    text = Path(_table32.__file__).read_text()
    version = re.search(r"of Linux ([^.]+\.[^.\s]+)\.", text)
    assert version, "the header says which kernel the table comes from"
    out = io.StringIO()
    _gentable.write_table32(dict(_table32.I386_SYSCALL_NAMES), version.group(1), out)
    assert out.getvalue() == text
    assert (i386_name(4), i386_name(20), i386_name(435)) == ("write", "getpid", "clone3")


def test_generator_reads_the_kernel_format():
    tbl = """# comment
0\tcommon\tread\t\t\tsys_read
13\t64\trt_sigaction\t\tsys_rt_sigaction
134\t64\tuselib
512\tx32\trt_sigaction\t\tcompat_sys_rt_sigaction
462 \tcommon  mseal\t\t\tsys_mseal
"""
    assert _gentable.parse_tbl(tbl.splitlines()) == {
        0: "read",
        13: "rt_sigaction",
        134: "uselib",
        462: "mseal",
    }


def test_every_call_has_a_prototype():
    from utrace.syscalls.calls import CALL_DECODERS
    from utrace.syscalls.kinds import DECODERS

    for name in SYSCALL_NAMES.values():
        proto = signatures.prototype(name)
        assert proto is not None, name
        assert len(proto) <= 6, name
        for spec in proto:
            assert spec.kind in DECODERS or spec.kind in CALL_DECODERS, (name, spec.kind)
    assert len(signatures.fully_decoded()) > 300


# --- syscall sets -------------------------------------------------------------------------------------
def numbers(*names: str) -> frozenset:
    return frozenset(SYSCALL_NUMBERS[n] for n in names)


def test_syscall_set_names_and_classes():
    assert parse_syscall_set("open,read") == numbers("open", "read")
    assert parse_syscall_set("%file") == numbers(*GROUPS["%file"])
    assert parse_syscall_set("%net") == parse_syscall_set("%network")
    mixed = parse_syscall_set("open,read,%file,!write")
    assert numbers("open", "read", "openat", "statx") <= mixed and SYSCALL_NUMBERS["write"] not in mixed
    assert parse_syscall_set("%desc,!write") == numbers(*GROUPS["%desc"]) - numbers("write")
    assert parse_syscall_set("/^epoll_") == numbers(*[n for n in SYSCALL_NUMBERS if n.startswith("epoll_")])
    assert parse_syscall_set("all") == frozenset(SYSCALL_NAMES)
    assert parse_syscall_set("none") == frozenset()
    assert parse_syscall_set("0,1") == numbers("read", "write")


def test_leading_bang_negates_the_whole_set():
    assert parse_syscall_set("!open") == frozenset(SYSCALL_NAMES) - numbers("open")
    assert parse_syscall_set("!open,close") == frozenset(SYSCALL_NAMES) - numbers("open", "close")
    assert parse_syscall_set("!%file") == frozenset(SYSCALL_NAMES) - numbers(*GROUPS["%file"])


def test_question_mark_ignores_unknown_names():
    assert parse_syscall_set("?no_such_call,read") == numbers("read")


@pytest.mark.parametrize(
    "spec, words",
    [
        ("opne", ["unknown system call 'opne'", "did you mean: open"]),
        ("read,%fiel", ["unknown system call class '%fiel'", "%file", "%network", "%process", "%memory"]),
        ("/[", ["invalid system call regular expression"]),
        ("", ["empty system call set"]),
        ("read,,write", ["empty element"]),
    ],
)
def test_bad_syscall_sets_are_usage_errors(spec, words):
    with pytest.raises(UsageError) as info:
        parse_syscall_set(spec)
    for word in words:
        assert word in str(info.value)
    assert info.value.exit_code == 2


def test_groups_name_only_real_calls():
    for group, names in GROUPS.items():
        assert names <= SYSCALL_NUMBERS.keys(), group
    assert {
        "%file",
        "%network",
        "%process",
        "%memory",
        "%signal",
        "%desc",
        "%ipc",
        "%creds",
        "%clock",
    } <= set(GROUPS)


# --- records without a tracee: special results, raw stream, halves -----------------------------------------
def rec(name: str, args: Tuple[int, ...], ret: Optional[int], cfu=(), ctu=(), injected=None) -> SyscallRecord:
    return SyscallRecord(
        1, 1, SYSCALL_NUMBERS.get(name, 999), name, args, 0.0, list(cfu), list(ctu), ret, injected
    )


def test_special_results():
    assert format_call(rec("read", (0, 0x1000, 10), -512)) == (
        "read(0, 0x1000, 10) = ? ERESTARTSYS (To be restarted if SA_RESTART is set)"
    )
    assert (
        format_call(rec("read", (0, 0x1000, 10), -4))
        == "read(0, 0x1000, 10) = -1 EINTR (Interrupted system call)"
    )
    assert format_call(rec("exit_group", (0,), None)) == "exit_group(0) = ?"
    assert format_call(rec("getpid", (), -1, injected="deny")) == (
        "getpid() = -1 EPERM (Operation not permitted) (INJECTED)"
    )
    assert format_call(rec("mmap", (0, 4096, 3, 0x22, -1 & (2**64 - 1), 0), 0x7F0000001000)) == (
        "mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000001000"
    )
    unknown = SyscallRecord(1, 1, 999, "", (1, 2, 3, 4, 5, 6), 0.0, [], [], 0)
    assert format_call(unknown) == "syscall_0x3e7(0x1, 0x2, 0x3, 0x4, 0x5, 0x6) = 0"


def test_raw_stream():
    r = rec("read", (3, 0x7FFC1234, 0x1000, 0, 0, 0), 5, ctu=[(0x7FFC1234, b"root:")])
    assert format_raw(r) == [
        "NR 0 (3, 7ffc1234, 1000, 0, 0, 0)",
        "COPY_TO_USER 7ffc1234 726f6f743a",
        "NR 0 = 5",
    ]
    w = rec("write", (1, 0x1000, 40, 0, 0, 0), -9, cfu=[(0x1000, bytes(range(40)))], injected="deny")
    assert format_raw(w, size=4) == [
        "NR 1 (1, 1000, 28, 0, 0, 0)",
        "COPY_FROM_USER 1000 00010203...",
        "NR 1 = -9 (injected: deny)",
    ]
    assert format_raw(w, size=None)[1] == "COPY_FROM_USER 1000 " + bytes(range(40)).hex()
    assert format_raw(rec("read", (0, 0x10, 1, 0, 0, 0), None)) == ["NR 0 (0, 10, 1, 0, 0, 0)"]


def test_unfinished_halves_join_into_the_whole_line(sample, workdir):
    records: List[SyscallRecord] = []
    argv, _ = prepare("sys_proc", sample("sys_proc"), workdir)
    run_utrace_loop(argv, ENV, workdir, records=records)
    assert len(records) > 60
    for r in records:
        head, tail = format_entry(r), format_resumed(r)
        prefix = f"<... {r.name} resumed>"
        assert tail.startswith(prefix)
        assert head + tail[len(prefix) :] == format_call(r), r.name
    read = rec("read", (3, 0x1000, 10), 2, ctu=[(0x1000, b"ab")])
    assert (format_entry(read), format_resumed(read)) == ("read(3, ", '<... read resumed>"ab", 10) = 2')
    futex = rec("futex", (0x1000, 128, 2, 0, 0, 0), 0)
    assert format_entry(futex) == "futex(0x1000, FUTEX_WAIT_PRIVATE, 2, NULL"
    assert format_resumed(futex) == "<... futex resumed>) = 0"
    assert format_entry(rec("pipe", (0x1000,), None)) == "pipe("


# --- capture: bad pointers, sizes, and garbage never crash ------------------------------------------------
def test_capture_sizes_buffers_by_the_result():
    calls = []

    def read(addr: int, n: int) -> bytes:
        calls.append((addr, n))
        return b"x" * n

    nr = SYSCALL_NUMBERS["read"]
    assert capture_exit(nr, (3, 0x1000, 4096), 5, read, read) == [(0x1000, b"xxxxx")]
    assert capture_exit(nr, (3, 0x1000, 4096), -14, read, read) == []
    assert capture_exit(nr, (3, 0x1000, 4096), 4096, read, read, limit=16) == [(0x1000, b"x" * 16)]
    assert capture_entry(SYSCALL_NUMBERS["write"], (1, 0x2000, 3), read, read) == [(0x2000, b"xxx")]
    assert calls == [(0x1000, 5), (0x1000, 16), (0x2000, 3)]


def test_unreadable_pointers_capture_nothing_and_print_as_addresses():
    def bad(addr: int, n: int) -> bytes:
        raise OSError(14, "Bad address")

    nr = SYSCALL_NUMBERS["openat"]
    args = (2**64 - 100, 0xDEAD0000, 0, 0, 0, 0)
    assert capture_entry(nr, args, bad, bad) == []
    r = SyscallRecord(1, 1, nr, "openat", args, 0.0, [], [], -14)
    assert format_call(r) == "openat(AT_FDCWD, 0xdead0000, O_RDONLY) = -1 EFAULT (Bad address)"


def test_strings_are_captured_with_their_terminator_or_cut():
    def read_string(addr: int, n: int) -> bytes:
        return (b"/etc/passwd\0garbage" if addr == 0x1000 else b"A" * 10000)[:n]

    nr = SYSCALL_NUMBERS["openat"]
    assert capture_entry(nr, (0, 0x1000, 0, 0, 0, 0), read_string, read_string) == [
        (0x1000, b"/etc/passwd\0")
    ]
    ((addr, data),) = capture_entry(nr, (0, 0x2000, 0, 0, 0, 0), read_string, read_string)
    assert len(data) == 4096 and not data.endswith(b"\0")
    r = rec("openat", (0, 0x2000, 0, 0), 3, cfu=[(addr, data)])
    assert format_call(r).endswith('AAAA"..., O_RDONLY) = 3')


@pytest.mark.parametrize("seed", range(3))
def test_garbage_never_crashes_capture_or_formatting(seed):
    rng = random.Random(seed)
    interesting = [0, 1, 8, 16, 4096, 2**31 - 1, 2**32 - 1, 2**63, 2**64 - 1, 2**64 - 100]

    def arg() -> int:
        return rng.choice(interesting) if rng.random() < 0.5 else rng.randrange(2**64)

    def read(addr: int, n: int) -> bytes:
        if n > 1 << 20 or rng.random() < 0.2:
            raise OSError(5, "EIO")
        return bytes(rng.randrange(256) for _ in range(min(n, 512))) + b"\0" * max(0, n - 512)

    for nr, name in SYSCALL_NAMES.items():
        args = tuple(arg() for _ in range(6))
        ret = rng.choice([None, 0, 1, 64, -1, -14, -512, 2**40, rng.randrange(-4095, 4096)])
        cfu = capture_entry(nr, args, read, read, sp=rng.choice([None, 0x7FFC0000]))
        ctu = capture_exit(nr, args, ret, read, read) if ret is not None else []
        r = SyscallRecord(1, 1, nr, name, args, 0.0, cfu, ctu, ret)
        for text in (format_call(r, rng.choice([0, 4, 32])), format_entry(r), format_resumed(r)):
            assert text.startswith((name, "<..."))
        assert format_call(r, fd_path=lambda fd: f"/fd/{fd}", entry_fd_path=lambda fd: None)
        format_raw(r)
