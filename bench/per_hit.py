"""Per-hit cost of utrace against ltrace, gdb and perf's kernel uprobe, measured in one run.

    python3 bench/per_hit.py [--calls N] [--repeat R]

Builds bench/loop.c into a temporary directory, then times every tool on the same binary on this
machine, in four groups of rows:

- a bare hit on ``hot(i)`` (``./loop N`` calls it N times):
  untraced ``./loop N``, the baseline; utrace ``python3 -m utrace -o /dev/null hot -- ./loop N``
  (the working tree's package); utrace --single-step (the two-stop path); ltrace ``ltrace -x hot``
  (installed with apt-get when missing and root); gdb, a breakpoint whose commands are ``silent``
  and ``continue``; perf uprobe, the kernel's uprobe counted by ``perf stat`` (when it works);
- GETDATA, 64 bytes per hit (``./loop N buf`` calls ``hot_buf(p)``, p pointing to a 64-byte buffer):
  untraced; utrace ``-H GETDATA:arg1:64 hot_buf``; ltrace with a prototype that prints hot_buf's
  argument as an array of 64 bytes (``-F``, ``-A 64``); gdb ``x/64xb $rdi`` in the commands;
- a return probe (two stops per call): utrace ``'r:ret hot $retval'``; ltrace (its ``-x hot`` row
  above already stops at entry and at return, and prints the return value); gdb ``finish``;
- STACKTRACE: utrace ``-H STACKTRACE hot``; gdb ``bt`` in the commands (with ``backtrace past-main``,
  so that both show the same 5 frames); ltrace ``-w`` when this ltrace was built with it.

Each time is the best of R runs, taken round-robin so that drift in the machine hits every tool
alike. Every run is pinned to one CPU (--cpu, --no-pin): a ptrace stop that wakes the other side on
another CPU costs several times more on a VM, and varies from run to run. Two costs per hit:

- ``µs/hit``: (traced run - untraced run) / N, the tool's start-up included;
- ``net µs/hit``: (traced run with N calls - traced run with 1 call) / (N - 1), the tool's start-up
  (Python imports, ELF parsing, gdb reading symbols) and what it does once at the first hit (utrace's
  STACKTRACE loads the unwind and line tables then) left out; the ratios use this one.

utrace's bare-hit rows and perf run N calls; ltrace, gdb and utrace's GETDATA, return-probe and
STACKTRACE rows run N / 5 (--slow-calls); gdb's rows that print at every hit (x/64xb, finish, bt:
about 0.5 ms a hit) run N / 40 (--slower-calls). The figures are per hit all the same. Before timing,
one extra run of each tool writes its trace to a file and the script checks that it saw N hits and
that the program printed the right checksum; it warns, and never fails, when a check does not
hold. This is a benchmark, not a test: CI does not run it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import common
from common import REPO, log

TARGET = 0.25  # the project's goal: utrace's cost per hit is at most this share of ltrace's
RUN_TIMEOUT = 120.0  # seconds for one run of one tool; a run that takes longer is dropped
MULTIPLIER = 2654435761  # hot(i) = i * MULTIPLIER, as in loop.c
BUF_LEN = 64  # the bytes hot_buf(p) reads and GETDATA dumps, as in loop.c
LOW = 1  # the calls of the low run: net µs/hit = (T(N) - T(LOW)) / (N - LOW)

Command = Callable[[int, str], List[str]]  # (calls, trace file) -> argv
Counter = Callable[[str], Optional[int]]  # (trace file text + tool output) -> hits seen
Notes = Dict[Tuple[str, str], str]  # (group, role) -> why that group has no row for that tool


@dataclass(frozen=True)
class Group:
    """A block of rows that do the same work per hit, compared with each other."""

    key: str
    title: str
    label: str  # the comparison lines' prefix


GROUPS = (
    Group("hit", "a bare hit on hot(i)", "bare hit"),
    Group("getdata", f"GETDATA: the {BUF_LEN} bytes at hot_buf(p)'s p, dumped at every hit", "GETDATA 64 B"),
    Group("return", "a return probe on hot(i): entry and return (two stops), its value", "return probe"),
    Group("stack", "STACKTRACE at every hit of hot(i): 5 frames, hot down to _start", "STACKTRACE"),
)


@dataclass
class Tool:
    """One row of the table: how to run it on N calls and how to count the hits it saw."""

    name: str
    command: Command
    count: Optional[Counter] = None
    group: str = "hit"
    role: str = ""  # "base" (untraced), "utrace", "ltrace" or "gdb": what the comparisons pick
    calls_opt: str = "calls"  # the option giving its N: calls, slow_calls or slower_calls
    workload: str = "hot"  # "hot": ./loop N; "buf": ./loop N buf
    also: Tuple[Tuple[str, str], ...] = ()  # (group, name): the same row shown again in that group
    env: Optional[Dict[str, str]] = None
    cwd: Optional[Path] = None
    times: Dict[int, float] = field(default_factory=dict)  # calls -> best wall seconds


def checksum(calls: int, workload: str = "hot") -> int:
    """What loop.c prints for ``calls``, modulo 2**64: the sum of hot(i), or of hot_buf(buf)."""
    if workload == "hot":
        return (MULTIPLIER * (calls * (calls - 1) // 2)) % 2**64
    buf = list(range(BUF_LEN))
    current, total = sum(buf), 0
    for i in range(calls):
        current += i % 256 - buf[i % BUF_LEN]
        buf[i % BUF_LEN] = i % 256
        total += current
    return total % 2**64


def target(loop: Path, calls: int, workload: str = "hot") -> List[str]:
    """The traced command: ``./loop N`` or ``./loop N buf``."""
    return [str(loop), str(calls)] + (["buf"] if workload == "buf" else [])


# --- the tools ------------------------------------------------------------------------------------


def untraced(loop: Path, workload: str) -> Tool:
    group, name = ("hit", "untraced") if workload == "hot" else ("getdata", "untraced")
    return Tool(
        name, lambda n, _trace: target(loop, n, workload), group=group, role="base", workload=workload
    )


def count_lines(pattern: str) -> Counter:
    """A counter: the lines of the text that match ``pattern``."""
    regex = re.compile(pattern, re.MULTILINE)
    return lambda text: len(regex.findall(text))


def count_all(*counters: Counter) -> Counter:
    """A counter that holds only as many hits as every one of ``counters`` saw."""
    return lambda text: min((c(text) or 0) for c in counters)


count_utrace = count_lines(r": hot: \(")


def utrace_tool(loop: Path, name: str, args: Sequence[str], count: Counter, **kw: Any) -> Tool:
    """``python3 -m utrace -o TRACE ARGS -- ./loop N``, the working tree's package."""
    env = common.utrace_env()
    workload = kw.get("workload", "hot")

    def command(n: int, trace: str) -> List[str]:
        return [sys.executable, "-m", "utrace", "-o", trace, *args, "--", *target(loop, n, workload)]

    return Tool(name, command, count, env=env, cwd=REPO, **kw)


def utrace_tools(loop: Path) -> List[Tool]:
    getdata = f"GETDATA:arg1:{BUF_LEN}"
    # a STACKTRACE hit: the event line, then #0 hot ... #1 main ...
    stack = count_all(count_utrace, count_lines(r"^\s+#1\s.*\bmain\+"))
    feature: Dict[str, Any] = {"role": "utrace", "calls_opt": "slow_calls"}
    return [
        utrace_tool(loop, "utrace", ["hot"], count_utrace, role="utrace"),
        utrace_tool(loop, "utrace --single-step", ["--single-step", "hot"], count_utrace),
        utrace_tool(
            loop,
            f"utrace -H {getdata}",
            ["-H", getdata, "hot_buf"],
            count_lines(rf": hot_buf: \(.* len={BUF_LEN} data="),
            group="getdata",
            workload="buf",
            **feature,
        ),
        utrace_tool(
            loop,
            "utrace 'r:ret hot $retval'",
            ["r:ret hot $retval"],
            count_lines(r": ret: \(.*<- loop:hot\) arg1=0x"),
            group="return",
            **feature,
        ),
        utrace_tool(
            loop, "utrace -H STACKTRACE", ["-H", "STACKTRACE", "hot"], stack, group="stack", **feature
        ),
    ]


def ensure_ltrace() -> Optional[str]:
    """The path of ltrace, installing the Debian package first when missing and running as root."""
    found = shutil.which("ltrace")
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
    log("installing ltrace with apt-get ...")
    if subprocess.run(["apt-get", "install", "-y", "-q", "ltrace"], **quiet).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], **quiet)
        subprocess.run(["apt-get", "install", "-y", "-q", "ltrace"], **quiet)
    return shutil.which("ltrace")


def count_ltrace(text: str) -> int:
    """Entries of hot: ``hot(...) = ...`` or ``hot(... <unfinished ...>``, not the ``resumed`` lines."""
    return sum(1 for line in text.splitlines() if re.search(r"\bhot\(", line) and "resumed>" not in line)


def count_ltrace_buf(text: str) -> int:
    """Entries of hot_buf that show all 64 bytes: ``hot_buf([ 0, 0x1, ... ]) = ...``."""
    hits = 0
    for match in re.finditer(r"\bhot_buf\(\[([^\]]*)\]", text):
        hits += len(match.group(1).split(",")) == BUF_LEN
    return hits


# ltrace.conf(5): hot_buf's argument is a pointer to an array of 64 chars, each shown in hex
LTRACE_CONF = f"ulong hot_buf(array(hex(char),{BUF_LEN})*);\n"
LTRACE_DEPTH = 64  # ltrace -w: frames per hit (the stack has 5)


def ltrace_tools(loop: Path, tmp: Path, notes: Notes) -> List[Tool]:
    """ltrace's rows; ``notes`` gets why a group has none."""
    ltrace = ensure_ltrace()
    if ltrace is None:
        log("ltrace is missing (install it: apt-get install ltrace); its rows are skipped")
        for group in GROUPS:
            notes[(group.key, "ltrace")] = "ltrace is not installed"
        return []
    conf = tmp / "hot_buf.conf"
    conf.write_text(LTRACE_CONF)

    def command(opts: Sequence[str], workload: str = "hot") -> Command:
        return lambda n, trace: [ltrace, *opts, "-o", trace, *target(loop, n, workload)]

    slow: Dict[str, Any] = {"role": "ltrace", "calls_opt": "slow_calls"}
    tools = [
        Tool(
            "ltrace",
            command(["-x", "hot"]),
            count_ltrace,
            also=(("return", "ltrace -x hot (row above)"),),
            **slow,
        ),
        Tool(
            "ltrace -F (64-byte array)",
            command(["-F", str(conf), "-A", str(BUF_LEN), "-x", "hot_buf"], "buf"),
            count_ltrace_buf,
            group="getdata",
            workload="buf",
            **slow,
        ),
    ]
    usage = subprocess.run([ltrace, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if "--where" in usage.stdout.decode(errors="replace"):
        name = f"ltrace -w {LTRACE_DEPTH}"
        tools.append(
            Tool(name, command(["-w", str(LTRACE_DEPTH), "-x", "hot"]), count_ltrace, group="stack", **slow)
        )
    else:
        notes[("stack", "ltrace")] = "this ltrace was built without -w/--where (libunwind or elfutils)"
    return tools


GDB_SETUP = """\
set pagination off
set confirm off
set debuginfod enabled off
set startup-with-shell off
"""

# ``set logging file TRACE`` comes before the script, on the command line (-ex); the output of the
# commands goes there, not to the terminal; ``info breakpoints`` goes to stdout, for the check.
GDB_LOGGING = "set logging redirect on\nset logging enabled on\n"
GDB_END = "set logging enabled off\ninfo breakpoints\n"

GDB_SCRIPTS = {
    "plain": "break hot\ncommands 1\nsilent\ncontinue\nend\nrun\ninfo breakpoints\n",
    "getdata": f"break hot_buf\ncommands 1\nsilent\nx/{BUF_LEN}xb $rdi\ncontinue\nend\nrun\n" + GDB_END,
    # commands after a ``finish`` in a breakpoint's command list are never run, so the loop is in the
    # script: stop silently at hot, finish (it prints "Value returned is $N = ..."), continue, until
    # the program has exited ($_exitcode is set).
    "finish": "break hot\ncommands 1\nsilent\nend\nrun\n"
    + "while $_isvoid($_exitcode)\nfinish\ncontinue\nend\n"
    + GDB_END,
    # past-main: down to _start, the 5 frames utrace's STACKTRACE shows
    "bt": "set backtrace past-main on\nbreak hot\ncommands 1\nsilent\nbt\ncontinue\nend\nrun\n" + GDB_END,
}


def count_gdb(text: str) -> Optional[int]:
    """Hits from ``info breakpoints`` (``breakpoint already hit N times``); none at all prints nothing."""
    match = re.search(r"already hit (\d+) time", text)
    return int(match.group(1)) if match else 0


def count_gdb_dumps(text: str) -> int:
    """Complete dumps of x/64xb: 8 lines of 8 bytes, ``0x7ffe...:\\t0x00\\t0x01 ...``."""
    return len(re.findall(r"^0x[0-9a-f]+(?: <[^>]*>)?:(?:\s+0x[0-9a-f]{2}){8}\s*$", text, re.MULTILINE)) // 8


def gdb_tools(loop: Path, tmp: Path) -> List[Tool]:
    gdb = shutil.which("gdb")
    if gdb is None:
        log("gdb is missing; its rows are skipped")
        return []
    for variant, text in GDB_SCRIPTS.items():
        (tmp / f"{variant}.gdb").write_text(GDB_SETUP + ("" if variant == "plain" else GDB_LOGGING) + text)

    def command(variant: str, workload: str) -> Command:
        script = str(tmp / f"{variant}.gdb")
        logging = [] if variant == "plain" else ["-ex", "set logging file {trace}"]

        def argv(n: int, trace: str) -> List[str]:
            pre = [arg.format(trace=trace) for arg in logging]
            return [gdb, "-batch", "-nx", *pre, "-x", script, "--args", *target(loop, n, workload)]

        return argv

    printing: Dict[str, Any] = {"role": "gdb", "calls_opt": "slower_calls"}
    return [
        Tool("gdb", command("plain", "hot"), count_gdb, role="gdb", calls_opt="slow_calls"),
        Tool(
            f"gdb x/{BUF_LEN}xb $rdi",
            command("getdata", "buf"),
            count_all(count_gdb, count_gdb_dumps),
            group="getdata",
            workload="buf",
            **printing,
        ),
        Tool(
            "gdb finish",
            command("finish", "hot"),
            count_all(count_gdb, count_lines(r"^Value returned is ")),
            group="return",
            **printing,
        ),
        Tool(
            "gdb bt",
            command("bt", "hot"),
            count_all(count_gdb, count_lines(r"^#1\s.*\bmain \(")),
            group="stack",
            **printing,
        ),
    ]


def count_perf(text: str) -> Optional[int]:
    """The count from ``perf stat -x,`` output: ``N,,GROUP:hot,...``."""
    match = re.search(r"^(\d+),[^,]*,\w+:hot,", text, re.MULTILINE)
    return int(match.group(1)) if match else None


@contextlib.contextmanager
def perf_probe(loop: Path) -> Iterator[Optional[str]]:
    """A kernel uprobe on hot for the duration of the block, or None when perf cannot make one."""
    perf = shutil.which("perf")
    event = f"utbench{os.getpid()}:hot"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    try:
        made = perf and subprocess.run([perf, "probe", "-x", str(loop), "-a", f"{event}=hot"], **quiet)
    except OSError:
        made = None
    if not made or made.returncode != 0:
        yield None
        return
    try:
        yield event
    finally:
        subprocess.run([perf, "probe", "-d", event], **quiet)


def perf_tool(loop: Path, event: Optional[str]) -> Optional[Tool]:
    if event is None:
        return None
    perf = shutil.which("perf") or "perf"

    def command(n: int, trace: str) -> List[str]:
        return [perf, "stat", "-x", ",", "-o", trace, "-e", event, *target(loop, n, "hot")]

    return Tool("perf uprobe", command, count_perf)


# --- measuring ------------------------------------------------------------------------------------


def calls_for(tool: Tool, args: argparse.Namespace) -> int:
    return int(getattr(args, tool.calls_opt))


def verify(tool: Tool, calls: int, tmp: Path) -> bool:
    """One run with the trace in a file: warn unless it saw every hit and the checksum is right."""
    slug = re.sub(r"\W+", "-", tool.name).strip("-")
    trace = tmp / f"trace-{tool.group}-{slug}.txt"
    run = common.checked_run(tool, calls, trace, RUN_TIMEOUT)
    if run is None:
        return False
    text = (trace.read_text(errors="replace") if trace.exists() else "") + run.output
    expected = checksum(calls, tool.workload)
    if str(expected) not in run.output.split():
        log(f"warning: {tool.name}: the program did not print the expected checksum {expected}")
    hits = tool.count(text) if tool.count else calls
    if hits != calls:
        log(f"warning: {tool.name} saw {hits} hits, not {calls}")
    return True


def measure(tools: Sequence[Tool], args: argparse.Namespace) -> List[Tool]:
    """Best wall time of each tool at its N and at LOW calls, round-robin; returns the tools that ran.

    The untraced baselines run at LOW and at every N the tools of their workload run."""
    needed: Dict[str, set] = {}
    for tool in tools:
        needed.setdefault(tool.workload, {LOW}).add(calls_for(tool, args))
    jobs = []
    for tool in tools:
        points = needed[tool.workload] if tool.role == "base" else {LOW, calls_for(tool, args)}
        jobs += [(tool, n) for n in sorted(points)]
    dropped = common.best_of(jobs, args.repeat, RUN_TIMEOUT, warn=True)
    return [tool for tool in tools if id(tool) not in dropped]


# --- the table ------------------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    group: str
    role: str
    calls: int
    total: float
    startup: Optional[float]  # traced - untraced, at LOW calls
    gross_us: Optional[float]  # (traced - untraced) / N
    net_us: float  # (traced at N - traced at LOW) / (N - LOW)


def make_rows(tool: Tool, base: Optional[Tool], calls: int) -> List[Row]:
    total, idle = tool.times[calls], tool.times[LOW]
    net = (total - idle) / (calls - LOW) * 1e6
    startup = gross = None
    if base is not None and tool is not base:
        startup = idle - base.times[LOW]
        gross = (total - base.times[calls]) / calls * 1e6
    row = Row(tool.name, tool.group, tool.role, calls, total, startup, gross, net)
    return [row] + [replace(row, group=group, name=name) for group, name in tool.also]


def ratio(num: Optional[float], den: Optional[float]) -> str:
    if num is None or den is None or den <= 0:
        return "n/a"
    return f"{num / den:.2f}"


def fmt(value: Optional[float], spec: str) -> str:
    return "-" if value is None else format(value, spec)


NAME_WIDTH = 30


def print_table(rows: Sequence[Row], notes: Notes) -> None:
    head = ("tool", "calls", "total s", "startup s", "µs/hit", "net µs/hit", "× utrace")
    print(
        f"{head[0]:<{NAME_WIDTH}}{head[1]:>8}{head[2]:>10}{head[3]:>11}{head[4]:>9}{head[5]:>12}{head[6]:>10}"
    )
    for group in GROUPS:
        # the baseline, then utrace's row, then the others in the order they were made
        rank = {"base": 0, "utrace": 1}
        members = sorted((r for r in rows if r.group == group.key), key=lambda r: rank.get(r.role, 2))
        if not members:
            continue
        print(f"-- {group.title}")
        ref = next((r.net_us for r in members if r.role == "utrace"), None)
        for r in members:
            if r.role == "base":  # the baseline: its own per-call cost is noise-level
                dash = "-"
                print(
                    f"{r.name:<{NAME_WIDTH}}{r.calls:>8}{r.total:>10.3f}{dash:>11}{dash:>9}{dash:>12}{dash:>10}"
                )
                continue
            print(
                f"{r.name:<{NAME_WIDTH}}{r.calls:>8}{r.total:>10.3f}{fmt(r.startup, '.3f'):>11}"
                f"{fmt(r.gross_us, '.1f'):>9}{r.net_us:>12.1f}{ratio(r.net_us, ref):>10}"
            )
        for (key, role), why in notes.items():
            if key == group.key and not any(r.role == role for r in members):
                print(f"{role:<{NAME_WIDTH}}{'n/a':>8}  {why}")


def comparison(rows: Sequence[Row], notes: Notes, group: str, role: str) -> str:
    """``utrace / ROLE per hit: X net (Y with start-up)`` for one group, or why not."""
    ours = next((r for r in rows if r.group == group and r.role == "utrace"), None)
    theirs = next((r for r in rows if r.group == group and r.role == role), None)
    if ours is None or theirs is None:
        return f"n/a ({notes.get((group, role), 'a row is missing')})"
    return f"{ratio(ours.net_us, theirs.net_us)} net ({ratio(ours.gross_us, theirs.gross_us)} with start-up)"


def print_headline(rows: Sequence[Row], notes: Notes) -> None:
    ours = next((r for r in rows if r.group == "hit" and r.role == "utrace"), None)
    theirs = next((r for r in rows if r.group == "hit" and r.role == "ltrace"), None)
    print()
    if ours is None or theirs is None:
        print("utrace / ltrace per hit: n/a (a row is missing)")
    else:
        net = ratio(ours.net_us, theirs.net_us)
        met = net != "n/a" and float(net) <= TARGET
        print(
            f"utrace / ltrace per hit: {comparison(rows, notes, 'hit', 'ltrace')}; target <= {TARGET}: "
            f"{'met' if met else 'NOT met'}"
        )
    for group in GROUPS[1:]:
        for role in ("ltrace", "gdb"):
            print(f"{group.label}: utrace / {role} per hit: {comparison(rows, notes, group.key, role)}")


# --- main -----------------------------------------------------------------------------------------


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=40000, help="calls per run of utrace's bare-hit rows (40000)")
    p.add_argument(
        "--slow-calls", type=int, help="calls for ltrace, gdb and utrace's other rows (default: calls / 5)"
    )
    p.add_argument(
        "--slower-calls", type=int, help="calls for gdb's x/64xb, finish and bt rows (default: calls / 40)"
    )
    p.add_argument("--repeat", type=int, default=5, help="runs per tool; the best is kept (default 5)")
    common.add_pin_options(p)
    args = p.parse_args(argv)
    if args.slow_calls is None:
        args.slow_calls = max(LOW + 1, args.calls // 5)
    if args.slower_calls is None:
        args.slower_calls = max(LOW + 1, args.calls // 40)
    if min(args.calls, args.slow_calls, args.slower_calls) <= LOW or args.repeat < 1:
        p.error(f"--calls, --slow-calls and --slower-calls must be more than {LOW}, --repeat positive")
    return args


def collect_tools(loop: Path, tmp: Path, perf_event: Optional[str], notes: Notes) -> List[Tool]:
    tools = [untraced(loop, "hot"), untraced(loop, "buf"), *utrace_tools(loop)]
    tools += ltrace_tools(loop, tmp, notes)
    gdb = gdb_tools(loop, tmp)
    if not gdb:
        notes.update({(group.key, "gdb"): "gdb is not installed" for group in GROUPS})
    tools += gdb
    perf = perf_tool(loop, perf_event)
    tools += [perf] if perf else []
    order = [group.key for group in GROUPS]
    return sorted(tools, key=lambda tool: order.index(tool.group))  # stable: the order above within a group


def benchmark(args: argparse.Namespace, tmp: Path, notes: Notes) -> List[Row]:
    loop = common.build_loop(tmp, "loop")
    with perf_probe(loop) as event:
        tools = collect_tools(loop, tmp, event, notes)
        log("checking that every tool sees every hit ...")
        tools = [t for t in tools if t.role == "base" or verify(t, calls_for(t, args), tmp)]
        tools = measure(tools, args)
    bases = {t.workload: t for t in tools if t.role == "base"}
    if "hot" not in bases:
        return []
    rows: List[Row] = []
    for tool in tools:
        rows += make_rows(tool, bases.get(tool.workload), calls_for(tool, args))
    return rows


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if not common.have_gcc("loop.c"):
        return 1
    placement = common.pin(args.no_pin, args.cpu)
    notes: Notes = {}
    started = time.perf_counter()
    with common.temp_dir() as tmp:
        rows = benchmark(args, tmp, notes)
    if not rows:
        log("the untraced baseline did not run; no table")
        return 1
    machine = common.machine(placement)
    print(f"per-hit cost of a probe, best of {args.repeat} runs each; {machine}\n")
    print_table(rows, notes)
    print_headline(rows, notes)
    log(f"\n(the benchmark took {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
