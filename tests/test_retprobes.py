"""Return probes on real programs: recursion, longjmp, C++ exceptions (g++), pthread_exit, the
nesting bound, threads, stacks through hijacked returns, and detach while calls are in flight.

The oracle is the program itself: each function's result is known from its argument (the entry
data), and every traced run must print what the untraced run prints. For each probe, every call is
accounted for: ``hits == returns + missed``.
"""

from __future__ import annotations

import collections
import io
import threading

import utrace
from utrace.output import Output

from .test_api import launched, quiet, running
from .test_core import untraced


def rec_result(n: int) -> int:
    return n * (n + 1) // 2  # api_returns: rec(n) = n + rec(n - 1)


class Returns(utrace.Handler):
    """Saves the first argument and the thread at entry; records (arg, retval) at return."""

    def __init__(self) -> None:
        self.entries: list[int] = []
        self.returns: list[tuple[int, int]] = []
        self.wrong_thread = 0
        self._lock = threading.Lock()

    def on_entry(self, ev: utrace.Event) -> None:
        ev.data["arg"] = ev.args[0]
        ev.data["tid"] = ev.tid
        self.entries.append(ev.args[0])

    def on_return(self, ev: utrace.Event) -> None:
        if ev.data["tid"] != ev.tid:
            self.wrong_thread += 1
        self.returns.append((ev.data["arg"], ev.retval))


def accounted(probe: utrace.Probe) -> bool:
    return probe.hits == probe.returns + probe.missed


# --- recursion and the nesting bound ---------------------------------------------------------------
def test_recursion_depth_50_every_return_matched_with_its_entry(sample, capfd):
    exe = sample("api_returns")
    h = Returns()
    with launched([exe, "rec", "50"]) as t:
        probe = t.add_probe("rec", h, ret=True)
        assert t.run() == 0
    assert (probe.hits, probe.returns, probe.missed) == (51, 51, 0)
    assert h.entries == list(range(50, -1, -1))
    assert h.returns == [(n, rec_result(n)) for n in range(51)]  # innermost first
    assert capfd.readouterr().out == untraced(exe, "rec", "50").stdout == "rec 50 = 1275\n"


def test_nesting_beyond_max_ret_depth_is_counted_missed(sample, capfd):
    exe = sample("api_returns")
    h = Returns()
    with launched([exe, "rec", "50"]) as t:
        t.max_ret_depth = 10
        probe = t.add_probe("rec", h, ret=True)
        assert t.run() == 0
    # the 10 outermost calls (rec(50) .. rec(41)) get return instances; the 41 deeper ones cannot
    assert (probe.hits, probe.returns, probe.missed) == (51, 10, 41)
    assert h.returns == [(n, rec_result(n)) for n in range(41, 51)]
    assert capfd.readouterr().out == untraced(exe, "rec", "50").stdout


class Stacks(utrace.Handler):
    """The function names of the stack at each entry and return of rec."""

    def __init__(self) -> None:
        self.bad: list[tuple[str, int, list[str | None]]] = []

    def on_entry(self, ev: utrace.Event) -> None:
        n = ev.args[0]
        ev.data["n"] = n
        self.check("entry", n, [f.symbol for f in ev.stack(80)], ["rec"] * (51 - n) + ["main"])

    def on_return(self, ev: utrace.Event) -> None:
        n = ev.data["n"]
        self.check("return", n, [f.symbol for f in ev.stack(80)], ["rec"] * (50 - n) + ["main"])

    def check(self, kind: str, n: int, names: list[str | None], expected: list[str]) -> None:
        if names[: len(expected)] != expected:
            self.bad.append((kind, n, names))


def test_stacks_see_through_hijacked_return_addresses(sample):
    # Every caller frame of a recursive return-probed function has the trampoline as its return
    # address on the machine stack; the unwinder must show the real callers.
    exe = sample("api_returns")
    stacks = Stacks()
    with launched([exe, "rec", "50"]) as t:
        probe = t.add_probe("rec", stacks, ret=True)
        assert t.run() == 0
    assert probe.returns == 51
    assert stacks.bad == []


# --- longjmp -------------------------------------------------------------------------------------------
def test_longjmp_out_of_probed_frames(sample, capfd):
    exe = sample("api_returns")
    dive_h, round_h = Returns(), Returns()
    with launched([exe, "jmp", "3"]) as t:
        dive = t.add_probe("dive", dive_h, ret=True)
        rnd = t.add_probe("round_", round_h, ret=True)
        assert t.run() == 0
    # per round: dive(5, 1) .. dive(0, 1) never return (longjmp), dive(2, 0) .. dive(0, 0) do
    assert (dive.hits, dive.returns, dive.missed) == (3 * 9, 3 * 3, 3 * 6)
    assert dive_h.returns == [(0, 100), (1, 101), (2, 103)] * 3
    # round_ returns past the skipped dive frames: matched with its own entry
    assert (rnd.hits, rnd.returns, rnd.missed) == (3, 3, 0)
    assert round_h.returns == [(k, k + 103) for k in range(3)]
    assert capfd.readouterr().out == untraced(exe, "jmp", "3").stdout


# --- C++ exceptions (g++) and pthread_exit's forced unwind ---------------------------------------------
def cxx_run(exe: str, mode: str) -> tuple[dict[str, utrace.Probe], dict[str, Returns], str]:
    handlers = {name: Returns() for name in ("catcher", "middle", "thrower", "relay")}
    log = io.StringIO()
    with launched([exe, "30", mode], output=Output(log)) as t:
        probes = {name: t.add_probe(name, h, ret=True) for name, h in handlers.items()}
        assert t.run() == 0, log.getvalue()  # not 134: no std::terminate, no abort
    return probes, handlers, log.getvalue()


def test_cxx_exceptions_through_probed_frames(sample, capfd):
    exe = sample("api_exc")
    probes, handlers, log = cxx_run(exe, "throw")
    assert "terminate" not in log
    assert (
        capfd.readouterr().out
        == untraced(exe, "30", "throw").stdout
        == "sum 3010 dtors 30 caught_in_main 0\n"
    )
    # i % 3 == 0: thrower throws, through middle (whose Guard destructor runs) into catcher
    for name in ("middle", "thrower"):
        p = probes[name]
        assert (p.hits, p.returns, p.missed) == (30, 20, 10), name
    assert handlers["thrower"].returns == [(i, 10 * i) for i in range(30) if i % 3]
    assert handlers["middle"].returns == [(i, 10 * i + 1) for i in range(30) if i % 3]
    assert all(accounted(p) for p in probes.values())


def test_cxx_frame_that_catches_still_has_its_return_seen(sample, capfd):
    # catcher() catches every exception itself and returns normally (-1): the exception never
    # unwinds its frame, so none of its 30 returns may be lost.
    exe = sample("api_exc")
    probes, handlers, _ = cxx_run(exe, "throw")
    assert capfd.readouterr().out == untraced(exe, "30", "throw").stdout
    catcher = probes["catcher"]
    assert (catcher.hits, catcher.returns, catcher.missed) == (30, 30, 0)
    # retval is rax as the function left it: -1 reads as 2**64 - 1
    assert handlers["catcher"].returns == [(i, -1 % 2**64 if i % 3 == 0 else 10 * i + 1) for i in range(30)]


def test_cxx_rethrow_from_a_probed_frame(sample, capfd):
    # catcher's handler calls relay(), which rethrows (`throw;`, _Unwind_Resume_or_Rethrow): relay's
    # and catcher's frames are unwound too, and main catches.
    exe = sample("api_exc")
    probes, _, log = cxx_run(exe, "rethrow")
    assert "terminate" not in log
    assert (
        capfd.readouterr().out
        == untraced(exe, "30", "rethrow").stdout
        == "sum 3000 dtors 30 caught_in_main 10\n"
    )
    relay = probes["relay"]
    assert (relay.hits, relay.returns, relay.missed) == (10, 0, 10)
    for name in ("catcher", "middle", "thrower"):
        p = probes[name]
        assert (p.hits, p.returns, p.missed) == (30, 20, 10), name


def test_pthread_exit_unwinds_through_probed_frames(sample, capfd):
    # glibc's pthread_exit unwinds with libgcc_s's _Unwind_ForcedUnwind (libgcc_s is dlopen'ed then)
    exe = sample("api_returns")
    quitter_h, leave_h = Returns(), Returns()
    with launched([exe, "quit", "4"]) as t:
        quitter = t.add_probe("quitter", quitter_h, ret=True)
        leave = t.add_probe("leave", leave_h, ret=True)
        assert t.run() == 0
    assert (
        capfd.readouterr().out == untraced(exe, "quit", "4").stdout == "quit threads 4 total 70 cleanups 4\n"
    )
    for p in (quitter, leave):
        assert (p.hits, p.returns, p.missed) == (4, 0, 4)
    assert sorted(quitter_h.entries) == [1, 2, 3, 4]


# --- threads -----------------------------------------------------------------------------------------
def test_threads_have_their_own_return_stacks(sample, capfd):
    exe = sample("api_returns")
    threads, per_thread = 4, 300
    h = Returns()
    with launched([exe, "threads", str(threads), str(per_thread)]) as t:
        probe = t.add_probe("rec", h, ret=True)
        assert t.run() == 0
    calls = threads * sum(i % 8 + 1 for i in range(per_thread))  # rec(k) makes k + 1 calls
    assert (probe.hits, probe.returns, probe.missed) == (calls, calls, 0)
    assert h.wrong_thread == 0
    assert all(ret == rec_result(n) for n, ret in h.returns)
    assert collections.Counter(n for n, _ in h.returns) == collections.Counter(h.entries)
    assert capfd.readouterr().out == untraced(exe, "threads", str(threads), str(per_thread)).stdout


# --- detach while calls are in flight -----------------------------------------------------------------------
def test_detach_while_threads_sleep_inside_a_return_probed_function(sample):
    # Four threads sleep inside napper() most of the time: at the detach their stacks hold the
    # trampoline as napper's return address. Every one must be put back, or the untraced program
    # dies of SIGTRAP (or jumps into nothing) when napper returns.
    exe = sample("api_returns")
    args = ["nap", "4", "100", "5000"]  # 0.5 s of naps per thread
    with running([exe, *args], first_line="ready\n") as target:
        h = Returns()
        with utrace.attach(target.pid, output=quiet()) as t:
            probe = t.add_probe("napper", h, ret=True)
            t.run(duration=0.1)
        assert target.poll() is None
        assert probe.returns > 0
        assert 1 <= probe.missed <= 4  # the calls in flight at the detach
        assert accounted(probe)
        assert all(ret == 3 * n + 1 for n, ret in h.returns)
        assert target.wait(timeout=30) == 0  # not 128 + SIGTRAP / SIGSEGV
        assert target.stdout.read() == untraced(exe, *args).stdout.split("\n", 1)[1]


class StopAfter(Returns):
    def __init__(self, tracer_box: list, hits: int) -> None:
        super().__init__()
        self.box = tracer_box
        self.hits = hits

    def on_entry(self, ev: utrace.Event) -> None:
        super().on_entry(ev)
        if len(self.entries) == self.hits:
            self.box[0].stop()  # this call, at least, is in flight


def test_stop_of_a_launched_target_with_calls_in_flight(sample, capfd):
    exe = sample("api_returns")
    args = ["nap", "3", "100", "5000"]
    box: list = [None]
    h = StopAfter(box, 10)
    with launched([exe, *args]) as t:
        box[0] = t
        probe = t.add_probe("napper", h, ret=True)
        assert t.run() == 0  # detached at the 10th call; run() then waits for the untraced end
    assert probe.hits == 10
    assert 1 <= probe.missed <= 3
    assert accounted(probe)
    assert capfd.readouterr().out == untraced(exe, *args).stdout


class FailOnReturn(utrace.Handler):
    def on_entry(self, ev: utrace.Event) -> None:
        ev.data["n"] = ev.args[0]

    def on_return(self, ev: utrace.Event) -> None:
        raise RuntimeError(f"return handler fails at rec({ev.data['n']})")


def test_strict_failure_in_a_return_handler_restores_the_outstanding_returns(sample, capfd):
    # The first return (rec(0)) fails with 50 hijacked returns still on the stack: strict mode
    # detaches there, and the program must finish untraced with its normal result.
    exe = sample("api_returns")
    log = io.StringIO()
    with launched([exe, "rec", "50"], output=Output(log), strict=True) as t:
        probe = t.add_probe("rec", FailOnReturn(), ret=True)
        assert t.run() == 0
        assert t.handler_failed
    assert probe.hits == 51 and probe.returns == 1 and not probe.enabled
    assert log.getvalue().count("Traceback (most recent call last)") == 1
    assert capfd.readouterr().out == "rec 50 = 1275\n"
