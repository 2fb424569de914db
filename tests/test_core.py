"""The core: launch and attach, probes at symbols/offsets/addresses, one-stop hits, errors."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HIT = re.compile(
    r"^(?P<comm>\S+)-(?P<tid>\d+) (?P<ts>\d+\.\d{6}): (?P<event>\S+): \((?P<where>[^)]*)\) (?P<rest>.*)$"
)


def hits(path: Path, event: str | None = None) -> list[re.Match]:
    out = []
    for line in path.read_text().splitlines():
        m = HIT.match(line)
        if m and (event is None or m["event"] == event):
            out.append(m)
    return out


def untraced(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("variant", ["checksum", "checksum_nopie"])
def test_launch_symbol_probe_counts_every_call_and_leaves_output_alone(sample, utrace_cli, tmp_path, variant):
    exe = sample(variant)
    out = tmp_path / "trace"
    res = utrace_cli("-o", str(out), "work", "--", exe, "2000")
    ref = untraced(exe, "2000")
    assert res.stdout == ref.stdout
    assert res.returncode == ref.returncode
    got = hits(out, "work")
    assert len(got) == 2000
    first = got[0]
    assert first["comm"] == variant[:15]
    assert first["where"] == f"{variant}:work+0x0"
    # work(i, salt): the first call has i == 0, the second i == 1
    assert first["rest"].startswith("arg1=0x0 ")
    assert got[1]["rest"].startswith("arg1=0x1 ")


def test_probe_at_offset_inside_function(sample, utrace_cli, tmp_path):
    exe = sample("checksum")
    out = tmp_path / "trace"
    res = utrace_cli("-o", str(out), "work+5", "--", exe, "300")
    assert res.returncode == 0, res.stderr
    got = hits(out)
    assert len(got) == 300
    assert got[0]["where"] == "checksum:work+0x5"
    assert res.stdout == untraced(exe, "300").stdout


def test_probe_at_absolute_address_in_non_pie(sample, utrace_cli, tmp_path):
    exe = sample("checksum_nopie")
    nm = subprocess.run(["nm", exe], capture_output=True, text=True)
    if nm.returncode != 0:
        pytest.skip("nm (binutils) is not installed: it is the oracle for the symbol's address")
    addr = next(int(line.split()[0], 16) for line in nm.stdout.splitlines() if line.endswith(" work"))
    out = tmp_path / "trace"
    res = utrace_cli("-o", str(out), hex(addr), "--", exe, "50")
    assert res.returncode == 0, res.stderr
    assert len(hits(out)) == 50
    assert hits(out)[0]["where"] == "checksum_nopie:work+0x0"


def _libc_calls(utrace_cli, exe: str, probe: str, n: int, tmp_path: Path) -> int:
    out = tmp_path / f"trace-{n}"
    res = utrace_cli("-o", str(out), probe, "--", exe, str(n))
    assert res.returncode == 0, res.stderr
    assert res.stdout == untraced(exe, str(n)).stdout
    return len(hits(out))


@pytest.mark.parametrize("probe", ["libc:malloc", "malloc", "libc.so.6:free"])
def test_libc_probe_sees_each_call_of_the_loop(sample, utrace_cli, tmp_path, probe):
    exe = sample("checksum")
    # the loop calls malloc and free once per iteration; start-up may call them too, the same each run
    base = _libc_calls(utrace_cli, exe, probe, 10, tmp_path)
    more = _libc_calls(utrace_cli, exe, probe, 510, tmp_path)
    assert more - base == 500


def test_ifunc_symbol_is_probed_at_the_implementation_in_use(sample, utrace_cli, tmp_path):
    exe = sample("checksum")
    out = tmp_path / "trace"
    res = utrace_cli("-o", str(out), "libc:strlen", "--", exe, "200")
    assert res.returncode == 0, res.stderr
    got = hits(out)
    assert len(got) >= 200
    where = got[0]["where"]
    # the resolver picks e.g. __strlen_avx2 / __strlen_evex / __strlen_sse2: never the resolver itself
    assert re.match(r"libc\.so\.6:__strlen_\w+\+0x0$", where), where
    base = _libc_calls(utrace_cli, exe, "libc:strlen", 0, tmp_path)
    assert len(got) - base == 200


def test_threads_every_call_is_counted_exactly(sample, utrace_cli, tmp_path):
    exe = sample("threads")
    out = tmp_path / "trace"
    res = utrace_cli("-o", str(out), "tick", "--", exe, "4", "5000", timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout == untraced(exe, "4", "5000").stdout
    got = hits(out, "tick")
    assert len(got) == 20000
    assert len({m["tid"] for m in got}) == 4


def test_regs_option_prints_every_register(sample, utrace_cli, tmp_path):
    exe = sample("checksum")
    out = tmp_path / "trace"
    res = utrace_cli("-o", str(out), "--regs", "work", "--", exe, "3")
    assert res.returncode == 0, res.stderr
    got = hits(out)
    assert len(got) == 3
    for reg in ("rax", "rbx", "rsp", "r15", "rip", "eflags"):
        assert f" {reg}=0x" in " " + got[0]["rest"]
    rip = int(re.search(r"rip=(0x[0-9a-f]+)", got[0]["rest"]).group(1), 16)
    nm = subprocess.run(["nm", exe], capture_output=True, text=True).stdout
    work = next(int(line.split()[0], 16) for line in nm.splitlines() if line.endswith(" work"))
    assert rip & 0xFFF == work & 0xFFF  # the probed instruction's address (a PIE: page offset), not int3+1


def test_trace_goes_to_stderr_by_default(sample, utrace_cli):
    exe = sample("checksum")
    res = utrace_cli("work", "--", exe, "2")
    assert res.stdout == untraced(exe, "2").stdout
    assert len([ln for ln in res.stderr.splitlines() if HIT.match(ln)]) == 2


def test_exit_status_and_signal_death_are_passed_on(utrace_cli):
    res = utrace_cli("malloc", "--", "sh", "-c", "exit 7")
    assert res.returncode == 7
    res = utrace_cli("malloc", "--", "sh", "-c", "kill -SEGV $$")
    assert res.returncode == 128 + signal.SIGSEGV


def test_system_binary_ls(utrace_cli, tmp_path):
    out = tmp_path / "trace"
    res = utrace_cli("-o", str(out), "malloc", "--", "ls", "/")
    assert res.returncode == 0, res.stderr
    assert res.stdout == untraced("ls", "/").stdout
    got = hits(out, "malloc")
    assert got and all(m["comm"] == "ls" and m["where"] == "libc.so.6:malloc+0x0" for m in got)


# --- attach and detach -----------------------------------------------------------------------------
@pytest.fixture
def running_checksum(sample):
    procs = []

    def start(n: int = 3000, delay_us: int = 1000, exe: str | None = None):
        proc = subprocess.Popen(
            [exe or sample("checksum"), str(n), str(delay_us)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout.readline() == "start\n"  # it is running (and past its start-up)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()


def code_differs_from_file(pid: int, symbol: str, size: int = 32) -> bool:
    """Whether the code of ``symbol`` in the live process differs from the bytes in its ELF file."""
    from utrace.symbols import AddressSpace

    loc = AddressSpace.from_pid(pid).resolve(symbol)
    with open(f"/proc/{pid}/mem", "rb") as mem:
        mem.seek(loc.address)
        live = mem.read(size)
    return live != loc.module.elf.read(loc.address - loc.module.bias, size)


def test_attach_traces_then_detach_leaves_program_correct(sample, utrace_cli, tmp_path, running_checksum):
    target = running_checksum(n=8000, delay_us=500)
    out = tmp_path / "trace"
    res = utrace_cli("-o", str(out), "-p", str(target.pid), "--duration", "0.7", "work", "libc:malloc")
    assert res.returncode == 0, res.stderr
    assert target.poll() is None, "the target should still be running after the detach"
    assert not code_differs_from_file(target.pid, "work")
    assert not code_differs_from_file(target.pid, "libc:malloc")
    assert len(hits(out, "work")) > 10
    assert len(hits(out, "malloc")) > 10
    assert all(int(m["tid"]) == target.pid for m in hits(out))
    rest = target.stdout.read()
    assert target.wait(timeout=60) == 0
    assert rest == untraced(sample("checksum"), "8000").stdout.split("\n", 1)[1]


def wait_for(predicate, timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.02)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_detach_signals_leave_the_program_running(sample, tmp_path, running_checksum, sig):
    target = running_checksum(n=8000, delay_us=300)
    out = tmp_path / "trace"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    tracer = subprocess.Popen(
        [sys.executable, "-m", "utrace", "-o", str(out), "-p", str(target.pid), "work"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: out.exists() and len(hits(out)) > 0, what="the first hit")
    finally:
        tracer.send_signal(sig)
    with tracer:
        assert tracer.wait(timeout=30) == 0, tracer.stderr.read()
    assert target.poll() is None
    assert not code_differs_from_file(target.pid, "work")
    rest = target.stdout.read()
    assert target.wait(timeout=60) == 0
    assert rest == untraced(sample("checksum"), "8000").stdout.split("\n", 1)[1]


def test_attach_to_threads_sees_every_thread(sample, utrace_cli, tmp_path):
    exe = sample("threads")
    target = subprocess.Popen([exe, "3", "4000000000"], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while len(os.listdir(f"/proc/{target.pid}/task")) < 4:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        out = tmp_path / "trace"
        res = utrace_cli("-o", str(out), "-p", str(target.pid), "--duration", "0.5", "tick")
        assert res.returncode == 0, res.stderr
        tids = {int(m["tid"]) for m in hits(out)}
        assert len(tids) == 3
    finally:
        target.kill()
        target.wait()


# --- errors ------------------------------------------------------------------------------------------
def test_unknown_symbol_suggests_names_and_leaves_nothing(sample, utrace_cli):
    res = utrace_cli("wrok", "--", sample("checksum"), "5")
    assert res.returncode == 2
    assert res.stderr.startswith("utrace: ")
    assert len(res.stderr.strip().splitlines()) == 1
    assert "'wrok'" in res.stderr and "work" in res.stderr
    assert "Traceback" not in res.stderr


def test_mid_instruction_offset_is_refused_with_nearest_boundaries(sample, utrace_cli):
    res = utrace_cli("work+1", "--", sample("checksum"), "5")
    assert res.returncode == 2
    assert "work+0x0" in res.stderr and "work+0x5" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_missing_and_non_executable_commands_like_a_shell(utrace_cli, tmp_path):
    res = utrace_cli("malloc", "--", str(tmp_path / "nope"))
    assert res.returncode == 127
    assert res.stderr.strip() == f"utrace: {tmp_path / 'nope'}: No such file or directory"
    script = tmp_path / "noexec"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o644)
    res = utrace_cli("malloc", "--", str(script))
    assert res.returncode == 126
    assert res.stderr.strip() == f"utrace: {script}: Permission denied"


def test_bad_pid(utrace_cli):
    res = utrace_cli("-p", "999999999", "malloc")
    assert res.returncode == 1
    assert res.stderr.strip() == "utrace: no such process: 999999999"


def test_usage_errors_exit_2(utrace_cli):
    assert utrace_cli("malloc").returncode == 2  # neither a command nor -p
    assert utrace_cli().returncode == 2
    assert utrace_cli("-p", "1", "malloc", "--", "true").returncode == 2
    res = utrace_cli("-H", "NOSUCH", "malloc", "--", "true")
    assert res.returncode == 2 and "NOSUCH" in res.stderr and "GETREGS" in res.stderr


def test_closed_output_pipe_detaches_cleanly(sample, tmp_path, running_checksum):
    """`utrace -p PID ... | head -1`: when head exits, utrace must let go of the program properly
    (every int3 out) before it exits, not leave it to die at its next probe hit."""
    target = running_checksum(n=8000, delay_us=300)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    cmd = f"{sys.executable} -m utrace -o /dev/stdout -p {target.pid} work | head -1"
    res = subprocess.run(["sh", "-c", cmd], env=env, capture_output=True, text=True, timeout=60)
    assert HIT.match(res.stdout.strip()), res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    assert target.poll() is None
    assert not code_differs_from_file(target.pid, "work")
    rest = target.stdout.read()
    assert target.wait(timeout=60) == 0
    assert rest == untraced(sample("checksum"), "8000").stdout.split("\n", 1)[1]
