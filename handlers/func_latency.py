"""func_latency: how long each call of the given functions takes, as a log2 histogram per function.

Like bcc's ``funclatency`` or ``bpftrace -e 'uprobe:...{...} uretprobe:...{@usecs = hist(...)}'``:
every PROBE of the command line gets a return probe; each call's duration (from the entry stop to
the return stop) goes into a power-of-two histogram, drawn as bpftrace draws ``hist()``. At exit or
detach one histogram per function is printed, with the count, average, minimum and maximum.

Run it::

    utrace --handler handlers/func_latency.py work -- ./app
    utrace --handler handlers/func_latency.py libc:malloc libc:free -p 1234 --duration 10
    UTRACE_LATENCY_UNIT=ns utrace --handler handlers/func_latency.py work -- ./app

The unit is microseconds (``@usecs``); ``UTRACE_LATENCY_UNIT=ns`` (or ``FuncLatency(unit="ns")`` from
the API) counts nanoseconds. A timed call costs two ptrace stops (at the entry and at the return,
tens of microseconds together), and that cost is inside the measured durations: calls shorter than
that are dominated by it.
Recursive calls are each measured. Calls that have not returned when tracing ends are not counted;
neither are returns utrace could not see (longjmp, C++ exceptions), reported as missed.

Example (``samples/plug_latency.c``: ``slow()`` sleeps 1.5 ms five times, ``fast()`` runs 100 times)::

    $ utrace --handler handlers/func_latency.py slow fast -- ./plug_latency
    @usecs[slow]:
    [1K, 2K)               5 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|
    slow: count 5, avg 1759 us, min 1686 us, max 1911 us

    @usecs[fast]:
    [32, 64)               9 |@@@@@                                               |
    [64, 128)             79 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|
    [128, 256)            12 |@@@@@@@                                             |
    fast: count 100, avg 88 us, min 40 us, max 169 us

(``fast()`` itself takes nanoseconds: what shows is the two ptrace stops of a probed call.)

Written only against utrace's public API (``utrace.Tracer.add_probe(..., ret=True)``,
``utrace.handlers.Plugin``, ``Event.duration``); see handlers/README.md.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence

import utrace
from utrace.handlers import Plugin

if TYPE_CHECKING:
    from utrace import Event, Probe, Tracer

UNITS = {"us": ("usecs", 1e6), "ns": ("nsecs", 1e9)}  # unit -> (bpftrace-style map name, per second)
UNIT_VARIABLE = "UTRACE_LATENCY_UNIT"
BAR_WIDTH = 52  # bpftrace's
SUFFIXES = ((40, "T"), (30, "G"), (20, "M"), (10, "K"))


class Latencies:
    """The durations of one function: a log2 histogram plus count, total, min and max."""

    __slots__ = ("buckets", "count", "total", "low", "high")

    def __init__(self) -> None:
        self.buckets: Dict[int, int] = {}
        self.count = 0
        self.total = 0
        self.low = 0
        self.high = 0

    def add(self, value: int) -> None:
        k = bucket(value)
        self.buckets[k] = self.buckets.get(k, 0) + 1
        self.low = value if self.count == 0 else min(self.low, value)
        self.high = max(self.high, value)
        self.count += 1
        self.total += value


class FuncLatency(Plugin):
    """A duration histogram for each function given as PROBE."""

    def __init__(self, unit: Optional[str] = None) -> None:
        self.unit = unit if unit is not None else os.environ.get(UNIT_VARIABLE, "") or "us"
        if self.unit not in UNITS:
            raise utrace.UsageError(f"func_latency: the unit is 'us' or 'ns', not {self.unit!r}")
        self.map_name, self.per_second = UNITS[self.unit]
        self.stats: Dict[Probe, Latencies] = {}

    def install(self, tracer: Tracer, targets: Sequence[str]) -> None:
        if not targets:
            raise utrace.UsageError(
                "func_latency needs the functions to time as PROBEs: "
                "utrace --handler handlers/func_latency.py FUNCTION... -- COMMAND"
            )
        for target in dict.fromkeys(targets):  # each once, in the order given
            probe = tracer.add_probe(target, self, name=target, ret=True)
            self.stats[probe] = Latencies()

    def on_return(self, event: Event) -> None:
        duration = event.duration or 0.0
        self.stats[event.probe].add(int(duration * self.per_second))

    def finish(self) -> None:
        for n, (probe, stats) in enumerate(self.stats.items()):
            if n:
                self.output.line("")
            self.output.line(f"@{self.map_name}[{probe.name}]:")
            for line in draw_hist(stats.buckets):
                self.output.line(line)
            self.output.line(self.summary(probe, stats))

    def summary(self, probe: Probe, stats: Latencies) -> str:
        text = f"{probe.name}: count {stats.count}"
        if stats.count:
            u = self.unit
            text += f", avg {stats.total // stats.count} {u}, min {stats.low} {u}, max {stats.high} {u}"
        unfinished = probe.hits - probe.returns - probe.missed
        if probe.missed:
            text += f" ({probe.missed} returns missed)"
        if unfinished > 0:
            text += f" ({unfinished} calls still running)"
        return text


def bucket(value: int) -> int:
    """bpftrace's hist() bucket: -1 holds negatives, 0 holds 0, 1 holds 1, k holds [2^(k-1), 2^k)."""
    return -1 if value < 0 else value.bit_length()


def label(k: int) -> str:
    """``(..., 0)``, ``[0]``, ``[1]``, then ``[2, 4)``, ``[512, 1K)``, ``[1K, 2K)``... as bpftrace."""
    if k < 0:
        return "(..., 0)"
    if k <= 1:
        return f"[{k}]"
    return f"[{power_label(k - 1)}, {power_label(k)})"


def power_label(power: int) -> str:
    for shift, suffix in SUFFIXES:
        if power >= shift:
            return f"{1 << (power - shift)}{suffix}"
    return str(1 << power)


def draw_hist(buckets: Dict[int, int]) -> List[str]:
    """The histogram lines, from the lowest to the highest non-empty bucket (the empty ones between
    included), each ``LABEL COUNT |BAR|`` with the bar scaled to the largest count."""
    if not buckets:
        return []
    top = max(buckets.values())
    lines = []
    for k in range(min(buckets), max(buckets) + 1):
        count = buckets.get(k, 0)
        bar = "@" * int(count / top * BAR_WIDTH)
        lines.append(f"{label(k):<16}{count:>8} |{bar:<{BAR_WIDTH}}|")
    return lines
