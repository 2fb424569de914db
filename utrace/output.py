"""Trace output: event records and the formats that print them.

Handlers describe a hit as a ``Record`` (who, when, which event, the fetched values as
(name, json value, text) triples, a stack) and hand it to ``Output.emit``; the format chosen on
the command line decides what becomes of it:

- ``text``: the kernel probe tracer's line, ``COMM-TID SECONDS: EVENT: (LOCATION) name=value ...``
  (time since start; ``-t`` absolute, ``-r`` since the previous event);
- ``json``: one JSON object a line (keys documented in the README);
- ``summary`` (``-c``): per event the count and, for returns, total/min/avg/max duration, at the end;
- ``hist`` (``--hist NAME``): a log2 histogram per event of a fetched number or the duration;
- ``chrome`` (``--format chrome``): a Chrome trace-event file (Perfetto opens it): complete events for
  return-probed calls, instant events otherwise, one track per thread;
- ``folded`` (``--folded``): collapsed stacks with counts, the input of flame-graph tools.

Lines are written through one buffered text stream. When it is a terminal the stream is flushed
after every line; otherwise the event loop flushes it at most FLUSH_INTERVAL after a line is
written, and always before utrace exits.
"""

from __future__ import annotations

import collections
import json
import sys
import time
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from .symbols import display_name

if TYPE_CHECKING:
    from .handlers import Event

Field = Tuple[str, Any, str]  # name, JSON value, text as the kernel prints it


@dataclass
class Record:
    comm: str
    pid: int
    tid: int
    timestamp: float  # time.monotonic()
    event: str
    where: str  # "libc.so.6:malloc+0x0", or "CALLER <- FUNCTION" for returns
    is_return: bool = False
    fields: List[Field] = field(default_factory=list)
    duration: Optional[float] = None  # seconds, returns only
    stack: Optional[List[str]] = None  # formatted frames, innermost first
    stack_names: Optional[List[str]] = None  # function names, innermost first (for --folded)
    group: str = "utrace"
    kind: Optional[str] = None  # the JSON "type" when not entry/return ("syscall", "signal", "exit")
    extra: Optional[Dict[str, Any]] = None  # more JSON keys (a system call's nr, ret, text, ...)


class Output:
    """Where records and plain lines go, in the format asked for."""

    def __init__(
        self,
        stream: Optional[IO[str]] = None,
        t0: Optional[float] = None,
        fmt: str = "text",
        time_mode: str = "start",
        hist: Optional[str] = None,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.t0 = time.monotonic() if t0 is None else t0
        self.wall0 = time.time() - (time.monotonic() - self.t0)
        try:
            self.interactive = self.stream.isatty()
        except (AttributeError, ValueError):
            self.interactive = False
        self.pending = False
        self.fmt = fmt
        self.time_mode = time_mode  # "start", "absolute" (-t) or "delta" (-r)
        self.hist = hist
        self._last_ts: Optional[float] = None
        self._counts: Dict[str, List[float]] = collections.OrderedDict()
        self._n: Dict[str, int] = collections.Counter()
        self._hists: Dict[str, Dict[int, int]] = collections.OrderedDict()
        self._chrome: List[Dict[str, Any]] = []
        self._folded: Dict[str, int] = collections.Counter()

    # --- plain lines ----------------------------------------------------------------------------
    def line(self, text: str) -> None:
        self.stream.write(text + "\n")
        if self.interactive:
            self.stream.flush()
        else:
            self.pending = True

    def message(self, text: str) -> None:
        """A note from utrace itself (pending probes, detach), always shown promptly, on stderr
        when the trace is a machine-readable format."""
        stream = self.stream if self.fmt == "text" else sys.stderr
        stream.write(f"utrace: {text}\n")
        stream.flush()

    def flush(self) -> None:
        if self.pending:
            try:
                self.stream.flush()
            except BrokenPipeError:
                pass
            self.pending = False

    # --- records --------------------------------------------------------------------------------
    def record(self, event: Event, fields: List[Field], stack: Any = None) -> Record:
        """A Record of a handler's event (``stack``: a list of unwind.Frame)."""
        where = event.probe.where
        if event.is_return:
            caller = event.thread.process.address_space().describe(event.regs.rip)
            where = f"{caller} <- {where.rsplit('+', 1)[0]}"
        rec = Record(event.comm, event.pid, event.tid, event.timestamp, event.probe.name, where,
                     event.is_return, fields, event.duration)  # fmt: skip
        if stack is not None:
            rec.stack = [f.format(i) for i, f in enumerate(stack)]
            rec.stack_names = [_frame_name(f) for f in stack]
        group = getattr(event.probe, "group", None)
        if group:
            rec.group = group
        return rec

    def event_line(self, event: Event, fields: str) -> None:
        """A text-only event line (kept for handlers that format their own fields)."""
        self.emit(self.record(event, [("", None, fields)] if fields else []))

    def emit(self, rec: Record) -> None:
        self._emitter(rec)

    @property
    def fmt(self) -> str:
        return self._fmt

    @fmt.setter
    def fmt(self, value: str) -> None:
        self._fmt = value
        self._emitter = getattr(self, "_emit_" + value)  # looked up once, not per event

    def _stamp(self, ts: float) -> str:
        if self.time_mode == "absolute":
            value = self.wall0 + (ts - self.t0)
        elif self.time_mode == "delta":
            value = 0.0 if self._last_ts is None else ts - self._last_ts
            self._last_ts = ts
        else:
            value = ts - self.t0
        return f"{value:.6f}"

    def _emit_text(self, rec: Record) -> None:
        parts = [f"{name}={text}" if name else text for name, _, text in rec.fields]
        head = f"{rec.comm}-{rec.tid} {self._stamp(rec.timestamp)}: {rec.event}: ({rec.where})"
        text = " ".join([head, *parts]) if parts else head
        if rec.stack is not None:
            text += "\n" + "\n".join("  " + frame for frame in rec.stack)
        self.line(text)

    def _emit_json(self, rec: Record) -> None:
        obj: Dict[str, Any] = {
            "time": round(rec.timestamp - self.t0, 6),
            "comm": rec.comm,
            "pid": rec.pid,
            "tid": rec.tid,
            "group": rec.group,
            "event": rec.event,
            "type": rec.kind or ("return" if rec.is_return else "entry"),
            "location": rec.where,
            "args": {name: value for name, value, text in rec.fields if name},
        }
        if rec.duration is not None:
            obj["duration_ns"] = int(rec.duration * 1e9)
        if rec.stack is not None:
            obj["stack"] = rec.stack
        if rec.extra:
            obj.update(rec.extra)
        self.line(json.dumps(obj, separators=(",", ":")))

    def _emit_summary(self, rec: Record) -> None:
        self._n[rec.event] += 1
        if rec.is_return and rec.duration is not None:
            self._counts.setdefault(rec.event, []).append(rec.duration)

    def _emit_hist(self, rec: Record) -> None:
        value: Optional[float] = None
        if self.hist in ("$duration", "duration"):
            if rec.duration is not None:
                value = rec.duration * 1e9  # nanoseconds
        else:
            for name, val, _ in rec.fields:
                if name == self.hist and isinstance(val, (int, float)):
                    value = val
        if value is None:
            return
        buckets = self._hists.setdefault(rec.event, collections.Counter())
        buckets[_log2_bucket(int(value))] += 1

    def _emit_chrome(self, rec: Record) -> None:
        ts_us = (rec.timestamp - self.t0) * 1e6
        args = {name: value for name, value, _ in rec.fields if name}
        common = {"name": rec.event, "cat": rec.group, "pid": rec.pid, "tid": rec.tid, "args": args}
        if rec.is_return and rec.duration is not None:
            dur = rec.duration * 1e6
            self._chrome.append({**common, "ph": "X", "ts": ts_us - dur, "dur": dur})
        else:
            self._chrome.append({**common, "ph": "i", "s": "t", "ts": ts_us})

    def _emit_folded(self, rec: Record) -> None:
        if rec.stack_names:
            self._folded[";".join(reversed(rec.stack_names))] += 1

    # --- the end --------------------------------------------------------------------------------
    def finish(self) -> None:
        """Print what the aggregating formats gathered (at exit or detach)."""
        if self.fmt == "summary":
            self._print_summary()
        elif self.fmt == "hist":
            for event, buckets in self._hists.items():
                self.line(f"@{event}:")
                for line in draw_hist(buckets, unit="ns" if self.hist in ("$duration", "duration") else ""):
                    self.line(line)
                self.line("")
        elif self.fmt == "chrome":
            threads = {(e["pid"], e["tid"]) for e in self._chrome}
            meta = [{"name": "thread_name", "ph": "M", "pid": p, "tid": t, "args": {"name": f"tid {t}"}}
                    for p, t in sorted(threads)]  # fmt: skip
            json.dump({"traceEvents": meta + self._chrome, "displayTimeUnit": "ns"}, self.stream)
            self.stream.write("\n")
        elif self.fmt == "folded":
            for stack, count in sorted(self._folded.items()):
                self.line(f"{stack} {count}")
        self.pending = True
        self.flush()

    def _print_summary(self) -> None:
        self.line(f"{'event':<24} {'count':>10} {'total s':>12} {'min us':>10} {'avg us':>10} {'max us':>10}")
        self.line("-" * 81)
        for event, n in sorted(self._n.items(), key=lambda kv: -kv[1]):
            durations = self._counts.get(event)
            if durations:
                total = sum(durations)
                self.line(
                    f"{event:<24} {n:>10} {total:>12.6f} {min(durations) * 1e6:>10.1f} "
                    f"{total / len(durations) * 1e6:>10.1f} {max(durations) * 1e6:>10.1f}"
                )
            else:
                self.line(f"{event:<24} {n:>10}")
        self.line("-" * 81)
        self.line(f"{'total':<24} {sum(self._n.values()):>10}")


def _frame_name(frame: Any) -> str:
    """A frame of a folded stack: its function (C++ demangled), else module+offset, else the pc."""
    if frame.symbol:
        return display_name(frame.symbol)
    return f"{frame.module}+{frame.pc:#x}" if frame.module else f"{frame.pc:#x}"


def _log2_bucket(value: int) -> int:
    """bpftrace's hist(): bucket -1 holds negatives, 0 holds 0, k holds [2^(k-1), 2^k)."""
    if value < 0:
        return -1
    return value.bit_length()


def _bucket_label(k: int) -> str:
    if k < 0:
        return "(..., 0)"
    if k == 0:
        return "[0]"
    lo, hi = 1 << (k - 1), 1 << k
    return f"[{_human(lo)}, {_human(hi)})"


def _human(n: int) -> str:
    for unit, size in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size}{unit}"
    return str(n)


def draw_hist(buckets: Dict[int, int], unit: str = "", width: int = 52) -> List[str]:
    """The histogram as bpftrace prints ``hist()``: ``[lo, hi)  count |@@@@      |``."""
    if not buckets:
        return []
    top = max(buckets.values())
    lines = []
    for k in range(min(buckets), max(buckets) + 1):
        count = buckets.get(k, 0)
        bar = "@" * (count * width // top if top else 0)
        label = _bucket_label(k) + (f" {unit}" if unit and k >= 0 else "")
        lines.append(f"{label:<20}{count:>8} |{bar:<{width}}|")
    return lines
