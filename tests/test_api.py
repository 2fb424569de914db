"""The Python API on real programs: the README example, launch and attach, the context manager,
stop() and probes added or removed by handlers while the target runs, registered handlers, every
field of an event (with nm and /proc/PID/maps as oracles), writable registers, snapshots, and
handlers that raise (with and without strict mode).

Launched targets write to this process's stdout: the tests read it with ``capfd``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

import utrace
import utrace.handlers
from utrace import cli
from utrace.handlers import make_handler
from utrace.output import Output

from .test_core import code_differs_from_file, untraced

ROOT = Path(__file__).resolve().parent.parent


def quiet() -> Output:
    return Output(io.StringIO())


@contextlib.contextmanager
def launched(argv: list[str], **kwargs) -> Iterator[utrace.Tracer]:
    """``utrace.launch`` as a context manager that also reaps the target, whatever happens."""
    kwargs.setdefault("output", quiet())
    tracer = utrace.launch(argv, **kwargs)
    try:
        with tracer:
            yield tracer
    finally:
        reap(tracer)


def reap(tracer: utrace.Tracer) -> None:
    """Kill and wait for a launched target the tracer did not see end (it is still our child)."""
    if tracer.exit_status is None:
        tracer.detach()
        with contextlib.suppress(ProcessLookupError):
            os.kill(tracer.leader, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(tracer.leader, 0)


@contextlib.contextmanager
def running(argv: list[str], first_line: str = "start\n") -> Iterator[subprocess.Popen]:
    """A target started untraced (to attach to); it has printed its first line when this yields."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == first_line
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()


def nm_address(exe: str, symbol: str) -> int:
    nm = subprocess.run(["nm", exe], capture_output=True, text=True)
    if nm.returncode != 0:
        pytest.skip("nm (binutils) is not installed: it is the oracle for symbol addresses")
    for line in nm.stdout.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[2] == symbol:
            return int(fields[0], 16)
    raise AssertionError(f"nm finds no {symbol} in {exe}")


def load_bias(pid: int, exe: str) -> int:
    """Where a PIE executable is loaded: the start of its lowest mapping (its first PT_LOAD is at 0)."""
    starts = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 6 and os.path.realpath(fields[5]) == os.path.realpath(exe):
                starts.append(int(fields[0].split("-")[0], 16))
    return min(starts)


class Count(utrace.Handler):
    def __init__(self) -> None:
        self.n = 0

    def on_entry(self, ev: utrace.Event) -> None:
        self.n += 1


# --- the README ------------------------------------------------------------------------------------
def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Python API", 1)[1]
    lines = []
    for line in section.splitlines()[1:]:
        if line and not line.startswith("    "):
            if lines:
                break
            continue
        lines.append(line[4:])
    return "\n".join(lines).strip() + "\n"


def test_readme_example_runs(sample, capfd):
    exe = sample("api_events")
    code = readme_example()
    assert 'utrace.launch(["./app"])' in code, "the README example changed: update this test"
    code = code.replace('["./app"]', repr([exe, "mallocs"]))
    namespace: dict = {}
    try:
        exec(compile(code, "README.md", "exec"), namespace)  # the documented example itself
    finally:
        if isinstance(namespace.get("t"), utrace.Tracer):
            reap(namespace["t"])
    tracer = namespace["t"]
    assert tracer.exit_status == 0
    out = capfd.readouterr().out.splitlines()
    tid = tracer.leader
    # the handler prints "TID SIZE RESULT STACK" at each return of a malloc over 4096 bytes; the
    # program prints "SIZE POINTER" for each of its grab(SIZE) calls: the pointers must agree
    printed = dict(line.split() for line in out if not line.startswith(f"{tid} ") and line != "start")
    assert list(printed) == ["100", "5000", "1048576", "3145728", "64"]
    seen = [line.split(" ", 3) for line in out if line.startswith(f"{tid} ")]
    assert [(size, ptr) for _, size, ptr, _ in seen if size in printed] == [
        (size, ptr) for size, ptr in printed.items() if int(size) > 4096
    ]
    assert all("'grab'" in stack for _, size, _, stack in seen if size in printed)  # ev.stack()[:3]


class BigMallocs(utrace.Handler):
    """The README's kind of handler: entry data saved for the return, the result, the caller's stack."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self.seen: list[tuple[int, int, list[str]]] = []

    def on_entry(self, ev: utrace.Event) -> None:
        ev.data["size"] = ev.args[0]
        ev.want_return = ev.args[0] >= self.threshold  # small ones: no return stop at all

    def on_return(self, ev: utrace.Event) -> None:
        self.seen.append((ev.data["size"], ev.retval, [f.symbol for f in ev.stack()[:3]]))


def test_big_mallocs_entry_data_retval_and_stack(sample, capfd):
    exe = sample("api_events")
    big = BigMallocs(1 << 20)
    with launched([exe, "mallocs"]) as t:
        probe = t.add_probe("libc:malloc", big, ret=True)
        assert t.run() == 0
    # the program prints "SIZE POINTER" for each grab(SIZE): the oracle for the sizes and the results
    printed = [line.split() for line in capfd.readouterr().out.splitlines()[1:]]
    expected = [(int(size), int(ptr, 16)) for size, ptr in printed if int(size) >= 1 << 20]
    assert [(size, ret) for size, ret, _ in big.seen] == expected
    for _, _, names in big.seen:
        assert names[:2] == ["grab", "main"]  # at the return the stack starts in malloc's caller
    assert probe.returns == len(expected) == 2
    assert probe.missed == 0


# --- launch, attach, the context manager, stop() ---------------------------------------------------------
def test_launch_counts_every_call(sample, capfd):
    exe = sample("api_events")
    counter = Count()
    with launched([exe, "calls", "300", "7"]) as t:
        probe = t.add_probe("step", counter)
        assert t.run() == 0
    assert counter.n == probe.hits == 300
    assert capfd.readouterr().out == untraced(exe, "calls", "300", "7").stdout


def test_attach_then_detach_leaves_the_program_running(sample):
    exe = sample("api_events")
    args = ["calls", "600", "0", "1000"]
    with running([exe, *args]) as target:
        counter = Count()
        with utrace.attach(target.pid, output=quiet()) as t:
            probe = t.add_probe("step", counter)
            assert t.run(duration=0.3) is None  # attached: no exit status
        assert target.poll() is None
        assert not code_differs_from_file(target.pid, "step")
        assert 10 < counter.n == probe.hits < 600
        assert target.wait(timeout=30) == 0
        assert target.stdout.read() == untraced(exe, *args).stdout.split("\n", 1)[1]


def test_context_manager_detaches_on_an_exception_launch(sample, capfd):
    exe = sample("api_events")
    counter = Count()
    tracer = None
    try:
        with pytest.raises(RuntimeError, match="in the with"):
            with utrace.launch([exe, "calls", "300", "7"], output=quiet()) as tracer:
                tracer.add_probe("step", counter)
                raise RuntimeError("raised in the with")
        # detached: the program runs to its end untraced, with its own output and status
        _, status = os.waitpid(tracer.leader, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    finally:
        if tracer is not None:
            with contextlib.suppress(ChildProcessError, ProcessLookupError):
                os.kill(tracer.leader, signal.SIGKILL)
                os.waitpid(tracer.leader, 0)
    assert counter.n == 0
    assert capfd.readouterr().out == untraced(exe, "calls", "300", "7").stdout


def test_context_manager_detaches_on_an_exception_attach(sample):
    exe = sample("api_events")
    args = ["calls", "400", "0", "1000"]
    with running([exe, *args]) as target:
        with pytest.raises(RuntimeError):
            with utrace.attach(target.pid, output=quiet()) as t:
                t.add_probe("step", Count())
                assert code_differs_from_file(target.pid, "step")  # the int3 is in
                raise RuntimeError("raised while the target is stopped with a probe in it")
        assert target.poll() is None
        assert not code_differs_from_file(target.pid, "step")
        assert target.wait(timeout=30) == 0
        assert target.stdout.read() == untraced(exe, *args).stdout.split("\n", 1)[1]


class StopAt(utrace.Handler):
    def __init__(self, tracer_box: list, at: int) -> None:
        self.box = tracer_box
        self.at = at
        self.n = 0

    def on_entry(self, ev: utrace.Event) -> None:
        self.n += 1
        if self.n == self.at:
            self.box[0].stop()


def test_stop_from_a_handler(sample, capfd):
    exe = sample("api_events")
    box: list = [None]
    handler = StopAt(box, 5)
    with launched([exe, "calls", "300", "7"]) as t:
        box[0] = t
        probe = t.add_probe("step", handler)
        # run() returns once stopped; a launched target then runs on untraced, and run() waits for it
        assert t.run() == 0
    assert handler.n == probe.hits == 5
    assert capfd.readouterr().out == untraced(exe, "calls", "300", "7").stdout


# --- probes added and removed by handlers while the target runs --------------------------------------------
class OneShot(utrace.Handler):
    def __init__(self, tracer_box: list) -> None:
        self.box = tracer_box
        self.n = 0

    def on_entry(self, ev: utrace.Event) -> None:
        self.n += 1
        self.box[0].remove_probe(ev.probe)


def test_one_shot_probe_removes_itself_at_its_first_hit(sample, capfd):
    exe = sample("api_events")
    box: list = [None]
    shot = OneShot(box)
    with launched([exe, "calls", "300", "7"]) as t:
        box[0] = t
        probe = t.add_probe("step", shot)
        assert t.run() == 0
        assert probe not in t.probes and not probe.enabled
    assert shot.n == probe.hits == 1
    assert capfd.readouterr().out == untraced(exe, "calls", "300", "7").stdout


def test_one_shot_probe_sharing_its_site_does_not_hide_the_hit_from_the_others(sample, capfd):
    # Two probes on step(): the first removes itself at its first hit. The second must still see
    # all 300 calls, the first included.
    exe = sample("api_events")
    box: list = [None]
    shot, counter = OneShot(box), Count()
    with launched([exe, "calls", "300", "7"]) as t:
        box[0] = t
        t.add_probe("step", shot)
        other = t.add_probe("step", counter)
        assert t.run() == 0
    assert shot.n == 1
    assert counter.n == other.hits == 300
    assert capfd.readouterr().out == untraced(exe, "calls", "300", "7").stdout


class ArmOnce(utrace.Handler):
    """At its first hit, adds a counting probe at ``target`` (or removes ``remove``)."""

    def __init__(
        self, tracer_box: list, target: str | None = None, remove: utrace.Probe | None = None
    ) -> None:
        self.box = tracer_box
        self.target = target
        self.remove = remove
        self.counter = Count()
        self.armed: utrace.Probe | None = None

    def on_entry(self, ev: utrace.Event) -> None:
        if self.target is not None and self.armed is None:
            self.armed = self.box[0].add_probe(self.target, self.counter)
        if self.remove is not None:
            self.box[0].remove_probe(self.remove)
            self.remove = None


# calls 300 50 1: step(0..299), marker() right after step(50), usleep after every step
@pytest.mark.parametrize(
    "target, expected",
    [("step", 300 - 51), ("libc:usleep", 300 - 50)],  # usleep: another module, so another code area
)
def test_probe_armed_by_another_probes_handler_counts_only_later_calls(sample, capfd, target, expected):
    exe = sample("api_events")
    box: list = [None]
    arm = ArmOnce(box, target=target)
    with launched([exe, "calls", "300", "50", "1"]) as t:
        box[0] = t
        t.add_probe("marker", arm)
        assert t.run() == 0
    assert arm.armed is not None
    assert arm.counter.n == arm.armed.hits == expected
    assert capfd.readouterr().out == untraced(exe, "calls", "300", "50", "1").stdout


def test_probe_armed_at_the_site_being_hit_does_not_see_that_hit(sample, capfd):
    # The handler of a probe on step() adds a second probe on step() at its first hit: that call
    # happened before the second probe existed, so it sees the 299 later calls only.
    exe = sample("api_events")
    box: list = [None]
    arm = ArmOnce(box, target="step")
    with launched([exe, "calls", "300", "7"]) as t:
        box[0] = t
        first = t.add_probe("step", arm)
        assert t.run() == 0
    assert first.hits == 300
    assert arm.armed is not None
    assert arm.counter.n == arm.armed.hits == 299
    assert capfd.readouterr().out == untraced(exe, "calls", "300", "7").stdout


def test_probe_removed_by_another_probes_handler(sample, capfd):
    exe = sample("api_events")
    box: list = [None]
    counter = Count()
    with launched([exe, "calls", "300", "50"]) as t:
        box[0] = t
        steps = t.add_probe("step", counter)
        t.add_probe("marker", ArmOnce(box, remove=steps))
        assert t.run() == 0
    assert counter.n == steps.hits == 51  # step(0) .. step(50), then marker() removed it
    assert capfd.readouterr().out == untraced(exe, "calls", "300", "50").stdout


# --- registered handlers -----------------------------------------------------------------------------
class Tally(utrace.Handler):
    instances: list[Tally] = []

    def __init__(self, weight: str = "1") -> None:
        self.weight = int(weight)
        self.total = 0
        Tally.instances.append(self)

    def on_entry(self, ev: utrace.Event) -> None:
        self.total += self.weight


@pytest.fixture
def registry(monkeypatch):
    """register_handler changes a process-wide table: give the test its own copy."""
    monkeypatch.setattr(utrace.handlers, "_REGISTRY", dict(utrace.handlers._REGISTRY))
    Tally.instances = []


def test_register_handler_then_make_handler_and_the_in_process_cli(sample, capfd, tmp_path, registry):
    exe = sample("api_events")
    utrace.register_handler("tally", Tally)
    handler = make_handler("TALLY:3")  # names are case-insensitive; ARGS go to the constructor
    assert isinstance(handler, Tally) and handler.weight == 3
    with launched([exe, "calls", "40", "7"]) as t:
        t.add_probe("step", handler)
        assert t.run() == 0
    assert handler.total == 120
    capfd.readouterr()
    # `-H NAME` works where the class is registered: in the process that runs the CLI (here, this one)
    trace = tmp_path / "trace"
    assert cli.main(["-o", str(trace), "-H", "Tally:2", "step", "--", exe, "calls", "40", "7"]) == 0
    assert [h.total for h in Tally.instances[1:]] == [80]
    assert capfd.readouterr().out == untraced(exe, "calls", "40", "7").stdout


def test_registered_name_is_unknown_to_another_process(sample, utrace_cli, tmp_path, registry):
    # A separate `utrace` process has its own registry: `-H TALLY` is a usage error there (register
    # handlers in a script that calls utrace.cli.main, or use --handler PLUGIN.py instead).
    utrace.register_handler("tally", Tally)
    marker = tmp_path / "ran"
    res = utrace_cli("-H", "TALLY", "main", "--", "touch", str(marker))
    assert res.returncode == 2
    assert "unknown handler 'TALLY'" in res.stderr
    assert not marker.exists()


# --- the event ----------------------------------------------------------------------------------------
class Fields(utrace.Handler):
    def __init__(self, exe: str) -> None:
        self.exe = exe
        self.entries: list[dict] = []
        self.returns: list[dict] = []

    def on_entry(self, ev: utrace.Event) -> None:
        self.entries.append(
            {
                "pid": ev.pid, "tid": ev.tid, "comm": ev.comm, "timestamp": ev.timestamp,
                "address": ev.address, "symbol": ev.symbol, "args": ev.args, "arg7": ev.arg(7),
                "arg8": ev.arg(8), "is_return": ev.is_return, "bias": load_bias(ev.pid, self.exe),
                "snapshot": ev.snapshot(),
            }
        )  # fmt: skip
        with pytest.raises(ValueError):
            ev.arg(0)


class Strings(utrace.Handler):
    def __init__(self, greeting_addr_box: list) -> None:
        self.box = greeting_addr_box
        self.seen: list[tuple[int, bytes, bytes, bytes]] = []

    def on_entry(self, ev: utrace.Event) -> None:
        known = self.box[0] + load_bias(ev.pid, self.box[1])  # `greeting`, from nm and the maps
        self.seen.append(
            (ev.args[0], ev.read_string(ev.args[0]), ev.read(known, 5), ev.read_string(known, 8))
        )


class SetArg(utrace.Handler):
    def on_entry(self, ev: utrace.Event) -> None:
        ev.regs.rdi = 21  # scale(20) -> scale(21)


class SetResult(utrace.Handler):
    def __init__(self) -> None:
        self.seen: list[tuple[int | None, float | None, bool]] = []

    def on_return(self, ev: utrace.Event) -> None:
        self.seen.append((ev.retval, ev.duration, ev.is_return))
        ev.regs.rax = 42


def test_event_fields_against_nm_and_proc_maps(sample, capfd):
    exe = sample("api_events")
    fields, strings = Fields(exe), Strings([nm_address(exe, "greeting"), exe])
    set_result = SetResult()
    before = time.monotonic()
    with launched([exe, "args"]) as t:
        probe = t.add_probe("add8", fields)
        t.add_probe("show", strings)
        t.add_probe("scale", SetArg())
        answer = t.add_probe("answer", set_result, ret=True)
        pid = t.leader
        assert t.run() == 0
    after = time.monotonic()
    (ev,) = fields.entries
    assert ev["pid"] == ev["tid"] == pid
    assert ev["comm"] == "api_events"
    assert before < ev["timestamp"] < after
    assert ev["address"] == probe.address == ev["bias"] + nm_address(exe, "add8")
    assert ev["symbol"] == probe.where == "api_events:add8+0x0"
    assert ev["args"] == [1, 2, 3, 4, 5, 6]
    assert (ev["arg7"], ev["arg8"]) == (7, 8)  # the stack arguments
    assert ev["is_return"] is False
    greeting = ev["bias"] + nm_address(exe, "greeting")
    assert strings.seen[0] == (greeting, b"hello from api_events", b"hello", b"hello fr")
    assert strings.seen[1][1] == b'say "hi"\tnow\n\x01'
    assert answer.hits == answer.returns == 1
    ((retval, duration, is_return),) = set_result.seen
    assert retval == 7 and is_return and duration is not None and 0 <= duration < after - before
    out = capfd.readouterr().out
    assert "scale 42\n" in out  # the argument changed at entry
    assert "answer 42\n" in out  # the result changed at return
    assert (
        out.replace("scale 42", "scale 40").replace("answer 42", "answer 7") == untraced(exe, "args").stdout
    )


def test_snapshot_is_plain_data_after_the_run(sample):
    exe = sample("api_events")
    fields = Fields(exe)
    with launched([exe, "args"]) as t:
        t.add_probe("add8", fields)
        assert t.run() == 0
    snap = fields.entries[0]["snapshot"]
    # usable after the thread is gone, and plain: JSON round-trips it unchanged
    assert json.loads(json.dumps(snap)) == snap
    assert snap["probe"] == "add8" and snap["symbol"] == "api_events:add8+0x0"
    assert snap["regs"]["rdi"] == 1 and snap["regs"]["r9"] == 6
    assert snap["regs"]["rip"] == snap["address"] == fields.entries[0]["address"]
    assert snap["retval"] is None and snap["duration"] is None


# --- handlers that raise -----------------------------------------------------------------------------------
class Boom(utrace.Handler):
    def __init__(self, at: int | str = 3) -> None:
        self.at = int(at)
        self.n = 0

    def on_entry(self, ev: utrace.Event) -> None:
        self.n += 1
        if self.n >= self.at:
            raise ZeroDivisionError("boom in the handler")


def test_raising_handler_is_disabled_with_one_traceback(sample, capfd):
    exe = sample("api_events")
    log = io.StringIO()
    boom = Boom()
    with launched([exe, "calls", "300", "7"], output=Output(log)) as t:
        probe = t.add_probe("step", boom)
        assert t.run() == 0
        assert not t.handler_failed
    assert boom.n == probe.hits == 3
    assert not probe.enabled
    assert "ZeroDivisionError" in (probe.error or "")
    text = log.getvalue()
    assert text.count("Traceback (most recent call last)") == 1
    assert "boom in the handler" in text and "probe step" in text
    assert capfd.readouterr().out == untraced(exe, "calls", "300", "7").stdout


def test_strict_stops_the_run_and_the_launched_target_finishes(sample, capfd):
    exe = sample("api_events")
    log = io.StringIO()
    with launched([exe, "calls", "300", "7"], output=Output(log), strict=True) as t:
        probe = t.add_probe("step", Boom())
        assert t.run() == 0  # detached at the failure; the program ran on untraced to its end
        assert t.handler_failed
    assert probe.hits == 3
    assert log.getvalue().count("Traceback (most recent call last)") == 1
    assert capfd.readouterr().out == untraced(exe, "calls", "300", "7").stdout


def test_strict_attach_leaves_the_target_running(sample):
    exe = sample("api_events")
    args = ["calls", "400", "0", "1000"]
    with running([exe, *args]) as target:
        with utrace.attach(target.pid, output=quiet(), strict=True) as t:
            probe = t.add_probe("step", Boom())
            t.run()  # returns at the failure, long before the target ends
            assert t.handler_failed
        assert probe.hits == 3
        assert target.poll() is None
        assert not code_differs_from_file(target.pid, "step")
        assert target.wait(timeout=30) == 0
        assert target.stdout.read() == untraced(exe, *args).stdout.split("\n", 1)[1]


def test_strict_from_the_in_process_cli_exits_1(sample, capfd, tmp_path, registry):
    exe = sample("api_events")
    utrace.register_handler("BOOM", Boom)
    trace = tmp_path / "trace"
    argv = ["-o", str(trace), "--strict", "-H", "BOOM:2", "step", "--", exe, "calls", "300", "7"]
    assert cli.main(argv) == 1
    assert re.search(r"handler of probe step raised", trace.read_text())
    assert capfd.readouterr().out == untraced(exe, "calls", "300", "7").stdout
