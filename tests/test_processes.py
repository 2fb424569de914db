"""Real processes: threads, group-stops, fork/vfork/posix_spawn with and without -f, exec, the
program's own signals, dlopen/dlclose, detach at any moment, and a dying tracer."""

from __future__ import annotations

import collections
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import utrace
from utrace.output import Output

from .test_core import code_differs_from_file, hits, untraced, wait_for


class Count(utrace.Handler):
    def __init__(self) -> None:
        self.by_tid: collections.Counter[int] = collections.Counter()

    def on_entry(self, ev: utrace.Event) -> None:
        self.by_tid[ev.tid] += 1

    @property
    def total(self) -> int:
        return sum(self.by_tid.values())


def quiet() -> Output:
    return Output(io.StringIO())


def process_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


# --- threads -------------------------------------------------------------------------------------------
def test_eight_threads_exact_hit_count_launch(sample):
    exe = sample("threads")
    counter = Count()
    with utrace.launch([exe, "8", "100000"], output=quiet()) as t:
        t.add_probe("tick", counter)
        assert t.run() == 0
    assert counter.total == 800_000
    assert len(counter.by_tid) == 8
    assert all(n == 100_000 for n in counter.by_tid.values())


def test_eight_threads_exact_hit_count_attach(sample):
    exe = sample("threads")
    target = subprocess.Popen(
        [exe, "8", "100000", "0", "wait"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert target.stdout.readline() == "ready\n"  # every thread exists, none has called tick()
        counter = Count()
        with utrace.attach(target.pid, output=quiet()) as t:
            assert len(t.threads) == 9
            t.add_probe("tick", counter)
            target.stdin.write("go\n")
            target.stdin.close()
            t.run()
        assert counter.total == 800_000
        assert target.wait(timeout=60) == 0
        assert target.stdout.read() == untraced(exe, "8", "100000").stdout
    finally:
        target.kill()
        target.wait()
        target.stdout.close()


@pytest.mark.parametrize("mode", ["launch", "attach"])
def test_group_stop_and_sigcont_behave_as_untraced(sample, tmp_path, mode):
    exe = sample("checksum")
    out = tmp_path / "trace"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    target = None
    if mode == "launch":
        tracer = subprocess.Popen(
            [sys.executable, "-m", "utrace", "-o", str(out), "work", "--", exe, "3000", "300"],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        wait_for(lambda: out.exists() and len(hits(out)) > 5, what="hits")
        pid = int(hits(out)[0]["tid"])
    else:
        target = subprocess.Popen([exe, "3000", "300"], stdout=subprocess.PIPE, text=True)
        target.stdout.readline()
        pid = target.pid
        tracer = subprocess.Popen(
            [sys.executable, "-m", "utrace", "-o", str(out), "-p", str(pid), "work"],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        wait_for(lambda: out.exists() and len(hits(out)) > 5, what="hits")
    try:
        os.kill(pid, signal.SIGSTOP)
        # 't' (a tracee in its group-stop, kept there by PTRACE_LISTEN) or 'T' (a plain stop)
        wait_for(lambda: process_state(pid) in "tT", what="the group-stop")
        time.sleep(0.4)
        seen = len(hits(out))
        time.sleep(0.4)
        assert process_state(pid) in "tT"  # still stopped: the tracer did not resume it
        assert len(hits(out)) == seen
        os.kill(pid, signal.SIGCONT)
        wait_for(lambda: len(hits(out)) > seen, what="hits after SIGCONT")
        if mode == "launch":
            assert tracer.wait(timeout=60) == 0
            assert tracer.stdout.read() == untraced(exe, "3000").stdout
        else:
            tracer.send_signal(signal.SIGINT)
            assert tracer.wait(timeout=30) == 0
            assert target.wait(timeout=60) == 0
            assert target.stdout.read() == untraced(exe, "3000").stdout.split("\n", 1)[1]
    finally:
        for proc in (tracer, target):
            if proc is not None:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
                proc.stdout.close()


# --- fork, vfork, posix_spawn, exec ------------------------------------------------------------------------
def test_children_are_cleaned_and_released_without_f(sample, utrace_cli, tmp_path):
    exe = sample("forker")
    out = tmp_path / "trace"
    res = utrace_cli("-o", str(out), "work", "--", exe, "6")
    assert res.returncode == 0, res.stderr
    assert res.stdout == untraced(exe, "6").stdout  # the fork child did not die of SIGTRAP
    pids = collections.Counter(m["tid"] for m in hits(out))
    assert list(pids.values()) == [12]  # the parent's two loops only


def test_follow_forks_traces_children_with_their_own_pids(sample, utrace_cli, tmp_path):
    exe = sample("forker")
    out = tmp_path / "trace"
    res = utrace_cli("-f", "-o", str(out), "work", "--", exe, "6")
    assert res.returncode == 0, res.stderr
    assert res.stdout == untraced(exe, "6").stdout
    per_pid = collections.Counter(int(m["tid"]) for m in hits(out))
    counts = [per_pid[p] for p in sorted(per_pid)]
    assert counts == [12, 6, 1]  # parent, fork child, vfork child (its call before exec)
    assert "is pending in process" in out.read_text()  # /bin/true has no work()


@pytest.mark.parametrize("how", ["", "thread"])
def test_exec_rearms_probes_in_the_new_program(sample, utrace_cli, tmp_path, how):
    exe = sample("execer")
    out = tmp_path / "trace"
    res = utrace_cli("-o", str(out), "work", "--", exe, *([how] if how else []))
    assert res.returncode == 0, res.stderr
    assert res.stdout == untraced(exe, *([how] if how else [])).stdout
    got = hits(out)
    assert len(got) == 12
    assert len({m["tid"] for m in got}) == 1  # after exec the thread has the leader's id


def test_shell_pipeline_with_f(utrace_cli, tmp_path):
    out = tmp_path / "trace"
    cmd = ["sh", "-c", "echo hello world | tr a-z A-Z | cat"]
    res = utrace_cli("-f", "-o", str(out), "libc:malloc", "--", *cmd)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "HELLO WORLD\n"
    comms = {m["comm"] for m in hits(out)}
    assert {"tr", "cat"} <= comms


def test_python_threads_from_the_system(utrace_cli, tmp_path):
    code = (
        "import threading\n"
        "def f():\n    [bytearray(100) for _ in range(2000)]\n"
        "ts = [threading.Thread(target=f) for _ in range(4)]\n"
        "[t.start() for t in ts]; [t.join() for t in ts]\nprint('done')\n"
    )
    out = tmp_path / "trace"
    res = utrace_cli("-o", str(out), "libc:malloc", "--", sys.executable, "-c", code, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "done\n"
    assert len({m["tid"] for m in hits(out)}) >= 2


# --- signals ------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", [[], ["--single-step"]])
def test_programs_own_signals_reach_it_unchanged(sample, utrace_cli, tmp_path, mode):
    exe = sample("signals")
    out = tmp_path / "trace"
    res = utrace_cli(*mode, "-o", str(out), "load_word", "work", "--", exe, timeout=120)
    assert res.returncode == 0, res.stderr
    # includes "segv recovered rip=1": the fault in the out-of-line copy was reported at load_word
    assert res.stdout == untraced(exe).stdout
    assert res.stdout.startswith("segv recovered rip=1 addr=1 normal=1\n")
    events = collections.Counter(m["event"] for m in hits(out))
    assert events["load_word"] == 2
    assert events["work"] >= 20_000


# --- dlopen ------------------------------------------------------------------------------------------------
def test_dlopen_pending_probe_armed_before_constructor_and_rearmed(sample, utrace_cli, tmp_path):
    exe, plugin = sample("dl_main"), sample("libplugin.so")
    out = tmp_path / "trace"
    res = utrace_cli("-o", str(out), "libplugin.so:plugin_func", "--", exe, plugin)
    assert res.returncode == 0, res.stderr
    assert res.stdout == untraced(exe, plugin).stdout
    args = [m["rest"].split()[0] for m in hits(out)]
    # the constructor's call (100 = 0x64) comes first each time the library is loaded
    assert args == ["arg1=0x64", "arg1=0x0", "arg1=0x1", "arg1=0x2", "arg1=0x64", "arg1=0x0", "arg1=0x1"]
    text = out.read_text()
    assert "pending" in text and "disarmed" in text


def test_dlopen_in_attach_mode(sample, tmp_path):
    exe, plugin = sample("dl_main"), sample("libplugin.so")
    target = subprocess.Popen([exe, plugin, "wait"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert target.stdout.readline() == "ready\n"
        counter = Count()
        with utrace.attach(target.pid, output=quiet()) as t:
            t.add_probe("libplugin:plugin_func", counter)
            target.stdin.write("go\n")
            target.stdin.close()
            t.run()
        assert counter.total == 7
        assert target.wait(timeout=30) == 0
    finally:
        target.kill()
        target.wait()
        target.stdout.close()


# --- detach at any moment, and a tracer that dies --------------------------------------------------------
@pytest.fixture
def self_checking_threads(sample):
    """``threads 4 0 SLEEP until``: four threads call tick() until told to stop, checking every result
    themselves. ``start(sleep_us)`` returns the running process; ``finish(proc)`` stops it and asserts
    that it ends normally and saw only right results."""
    procs = []

    def start(sleep_us: int) -> subprocess.Popen:
        proc = subprocess.Popen([sample("threads"), "4", "0", str(sleep_us), "until"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)  # fmt: skip
        procs.append(proc)
        assert proc.stdout.readline() == "running\n"
        return proc

    def finish(proc: subprocess.Popen) -> None:
        proc.stdin.write("stop\n")
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0
        assert proc.stdout.read() == "consistent\n"

    yield start, finish
    for proc in procs:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def test_detach_while_threads_are_busy_in_slots(self_checking_threads):
    """Tight loops on a probed function: at each detach threads are inside slots or stopped at the
    int3; afterwards every call still returns the right value and the program ends normally."""
    start, finish = self_checking_threads
    target = start(0)
    for _ in range(5):
        counter = Count()
        with utrace.attach(target.pid, output=quiet()) as t:
            t.add_probe("tick", counter)
            t.run(duration=0.1)
        assert counter.total > 0
        assert target.poll() is None
    finish(target)


def test_attach_detach_stress_50_times(self_checking_threads):
    """50 attach/detach cycles on a multi-threaded program while it works: every traced call must
    return what the program computes inline (it checks each one), and it must never crash."""
    start, finish = self_checking_threads
    target = start(200)
    seen = 0
    for _ in range(50):
        counter = Count()
        with utrace.attach(target.pid, output=quiet()) as t:
            t.add_probe("tick", counter)
            t.run(duration=0.02)
        seen += counter.total
        assert target.poll() is None, "the target died during the stress"
        assert not code_differs_from_file(target.pid, "tick")
    assert seen > 0
    finish(target)


def test_launched_target_dies_with_a_killed_tracer(sample, tmp_path):
    exe = sample("checksum")
    out = tmp_path / "trace"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    tracer = subprocess.Popen(
        [sys.executable, "-m", "utrace", "-o", str(out), "work", "--", exe, "100000", "1000"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: out.exists() and len(hits(out)) > 2, what="hits")
        pid = int(hits(out)[0]["tid"])
        tracer.kill()
        tracer.wait()
        wait_for(
            lambda: not os.path.exists(f"/proc/{pid}") or process_state(pid) == "Z",
            what="the target to die with its tracer (PTRACE_O_EXITKILL)",
        )
    finally:
        if tracer.poll() is None:
            tracer.kill()
            tracer.wait()
        tracer.stdout.close()


def test_attached_program_survives_a_killed_tracer(sample, tmp_path):
    """SIGKILL on utrace while attached: its guardian puts the original bytes back, so the program's
    next call of a probed function does not hit an int3 with no tracer (which would kill it)."""
    exe = sample("checksum")
    target = subprocess.Popen([exe, "6", "500000"], stdout=subprocess.PIPE, text=True)
    out = tmp_path / "trace"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    try:
        assert target.stdout.readline() == "start\n"
        cmd = [sys.executable, "-m", "utrace", "-o", str(out), "-p", str(target.pid), "work"]
        tracer = subprocess.Popen(cmd, env=env)
        wait_for(lambda: out.exists() and len(hits(out)) >= 1, what="a hit")
        tracer.kill()  # SIGKILL: no chance to detach; the next call of work() is ~0.3 s away
        tracer.wait()
        assert target.wait(timeout=30) == 0
        assert target.stdout.read() == untraced(exe, "6").stdout.split("\n", 1)[1]
    finally:
        if target.poll() is None:
            target.kill()
        target.wait()
        target.stdout.close()
