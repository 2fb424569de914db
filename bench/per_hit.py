"""Per-hit cost of utrace against ltrace, gdb and perf's kernel uprobe, measured in one run.

    python3 bench/per_hit.py [--calls N] [--repeat R]

Builds bench/loop.c (a loop calling the noinline function ``hot(i)`` N times) into a temporary
directory, then times every tool probing ``hot`` on the same binary on this machine:

- untraced: ``./loop N`` alone, the baseline;
- utrace: ``python3 -m utrace -o /dev/null hot -- ./loop N`` (the working tree's package);
- utrace --single-step: the same with the two-stop path;
- ltrace: ``ltrace -x hot -o /dev/null ./loop N`` (installed with apt-get when missing and root);
- gdb: a breakpoint on hot whose commands are ``silent`` and ``continue``;
- perf uprobe: the kernel's uprobe counted by ``perf stat`` (only when ``perf probe`` works).

Each time is the best of R runs, taken round-robin so that drift in the machine hits every tool
alike. Every run is pinned to one CPU (--cpu, --no-pin): a ptrace stop that wakes the other side on
another CPU costs several times more on a VM, and varies from run to run. Two costs per hit:

- ``µs/hit``: (traced run - untraced run) / N, the tool's start-up included;
- ``net µs/hit``: (traced run with N calls - traced run with 0 calls) / N, the tool's start-up
  (Python imports, ELF parsing, gdb reading symbols) left out; the ratios use this one.

Slow tools (ltrace, gdb) run a smaller N (N / 5 unless --slow-calls); the figures are still per
hit. Before timing, one extra run of each tool writes its trace to a file and the script checks
that it saw N hits and that the program printed the right checksum; it warns, and never fails,
when a check does not hold. This is a benchmark, not a test: CI does not run it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TARGET = 0.25  # the project's goal: utrace's cost per hit is at most this share of ltrace's
RUN_TIMEOUT = 120.0  # seconds for one run of one tool; a run that takes longer is dropped
MULTIPLIER = 2654435761  # hot(i) = i * MULTIPLIER, as in loop.c

Command = Callable[[int, str], List[str]]  # (calls, trace file) -> argv
Counter = Callable[[str], Optional[int]]  # (trace file text + tool output) -> hits seen


@dataclass
class Tool:
    """One row of the table: how to run it on N calls and how to count the hits it saw."""

    name: str
    command: Command
    count: Optional[Counter] = None
    slow: bool = False
    env: Optional[Dict[str, str]] = None
    cwd: Optional[Path] = None
    times: Dict[int, float] = field(default_factory=dict)  # calls -> best wall seconds


@dataclass
class Run:
    seconds: float
    status: int
    output: str


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def checksum(calls: int) -> int:
    """What loop.c prints for ``calls``: the sum of hot(i), modulo 2**64."""
    return (MULTIPLIER * (calls * (calls - 1) // 2)) % 2**64


def build_loop(tmp: Path) -> Path:
    exe = tmp / "loop"
    subprocess.run(["gcc", "-O2", "-g", "-o", str(exe), str(HERE / "loop.c")], check=True)
    return exe


def run_once(tool: Tool, calls: int, trace: str = "/dev/null") -> Optional[Run]:
    """Run ``tool`` once on ``calls`` calls; None when it does not finish in time."""
    argv = tool.command(calls, trace)
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=tool.env,
            cwd=tool.cwd,
            timeout=RUN_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        log(f"warning: {tool.name}: no result within {RUN_TIMEOUT:.0f} s; row dropped")
        return None
    elapsed = time.perf_counter() - start
    return Run(elapsed, proc.returncode, proc.stdout.decode(errors="replace"))


# --- the tools ------------------------------------------------------------------------------------


def untraced(loop: Path) -> Tool:
    return Tool("untraced", lambda n, _trace: [str(loop), str(n)])


def count_utrace(text: str) -> int:
    return sum(1 for line in text.splitlines() if ": hot: (" in line)


def utrace_tool(loop: Path, single_step: bool) -> Tool:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    extra = ["--single-step"] if single_step else []

    def command(n: int, trace: str) -> List[str]:
        return [sys.executable, "-m", "utrace", "-o", trace, *extra, "hot", "--", str(loop), str(n)]

    name = "utrace --single-step" if single_step else "utrace"
    return Tool(name, command, count_utrace, env=env, cwd=REPO)


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


def ltrace_tool(loop: Path) -> Optional[Tool]:
    ltrace = ensure_ltrace()
    if ltrace is None:
        log("ltrace is missing (install it: apt-get install ltrace); its row is skipped")
        return None
    return Tool(
        "ltrace",
        lambda n, trace: [ltrace, "-x", "hot", "-o", trace, str(loop), str(n)],
        count_ltrace,
        slow=True,
    )


GDB_SCRIPT = """\
set pagination off
set confirm off
set debuginfod enabled off
set startup-with-shell off
break hot
commands 1
silent
continue
end
run
info breakpoints
"""


def count_gdb(text: str) -> Optional[int]:
    """Hits from ``info breakpoints`` (``breakpoint already hit N times``); none at all prints nothing."""
    match = re.search(r"already hit (\d+) time", text)
    return int(match.group(1)) if match else 0


def gdb_tool(loop: Path, tmp: Path) -> Optional[Tool]:
    gdb = shutil.which("gdb")
    if gdb is None:
        log("gdb is missing; its row is skipped")
        return None
    script = tmp / "commands.gdb"
    script.write_text(GDB_SCRIPT)
    argv = [gdb, "-batch", "-nx", "-x", str(script), "--args", str(loop)]
    return Tool("gdb", lambda n, _trace: [*argv, str(n)], count_gdb, slow=True)


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
        return [perf, "stat", "-x", ",", "-o", trace, "-e", event, str(loop), str(n)]

    return Tool("perf uprobe", command, count_perf)


# --- measuring ------------------------------------------------------------------------------------


def calls_for(tool: Tool, calls: int, slow_calls: int) -> int:
    return slow_calls if tool.slow else calls


def verify(tool: Tool, calls: int, tmp: Path) -> bool:
    """One run with the trace in a file: warn unless it saw every hit and the checksum is right."""
    slug = re.sub(r"\W+", "-", tool.name)
    trace = tmp / f"trace-{slug}.txt"
    run = run_once(tool, calls, str(trace))
    if run is None:
        return False
    if run.status != 0:
        log(f"warning: {tool.name} exited with status {run.status}; row dropped:\n{run.output[-2000:]}")
        return False
    text = (trace.read_text(errors="replace") if trace.exists() else "") + run.output
    if str(checksum(calls)) not in run.output.split():
        log(f"warning: {tool.name}: the program did not print the expected checksum {checksum(calls)}")
    hits = tool.count(text) if tool.count else calls
    if hits != calls:
        log(f"warning: {tool.name} saw {hits} hits, not {calls}")
    return True


def measure(tools: Sequence[Tool], calls: int, slow_calls: int, repeat: int) -> List[Tool]:
    """Best wall time of each tool at its N and at 0 calls, round-robin; returns the tools that ran."""
    jobs = [(tool, n) for tool in tools for n in sorted({0, calls_for(tool, calls, slow_calls)})]
    jobs += [(tools[0], slow_calls)]  # the untraced baseline at the slow tools' N too
    dropped: set = set()
    for rnd in range(repeat):
        log(f"round {rnd + 1}/{repeat} ...")
        for tool, n in jobs:
            if tool.name in dropped:
                continue
            run = run_once(tool, n)
            if run is None or run.status != 0:
                dropped.add(tool.name)
                continue
            tool.times[n] = min(tool.times.get(n, float("inf")), run.seconds)
    return [tool for tool in tools if tool.name not in dropped]


# --- the table ------------------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    calls: int
    total: float
    startup: float
    gross_us: float  # (traced - untraced) / N
    net_us: float  # (traced at N - traced at 0) / N


def make_row(tool: Tool, base: Tool, calls: int) -> Row:
    total, idle = tool.times[calls], tool.times[0]
    gross = (total - base.times[calls]) / calls * 1e6 if calls else 0.0
    net = (total - idle) / calls * 1e6 if calls else 0.0
    return Row(tool.name, calls, total, idle - base.times[0], gross, net)


def ratio(num: Optional[float], den: Optional[float]) -> str:
    if num is None or den is None or den <= 0:
        return "n/a"
    return f"{num / den:.2f}"


def print_table(rows: Sequence[Row]) -> None:
    ref = next((r.net_us for r in rows if r.name == "utrace"), None)
    head = ("tool", "calls", "total s", "startup s", "µs/hit", "net µs/hit", "× utrace")
    print(f"{head[0]:<22}{head[1]:>8}{head[2]:>10}{head[3]:>11}{head[4]:>9}{head[5]:>12}{head[6]:>10}")
    for r in rows:
        if r.name == "untraced":  # the baseline: its own per-call cost is noise-level
            print(f"{r.name:<22}{r.calls:>8}{r.total:>10.3f}{'-':>11}{'-':>9}{'-':>12}{'-':>10}")
            continue
        print(
            f"{r.name:<22}{r.calls:>8}{r.total:>10.3f}{r.startup:>11.3f}"
            f"{r.gross_us:>9.1f}{r.net_us:>12.1f}{ratio(r.net_us, ref):>10}"
        )


def print_headline(rows: Sequence[Row]) -> None:
    by_name = {r.name: r for r in rows}
    ours, theirs = by_name.get("utrace"), by_name.get("ltrace")
    if ours is None or theirs is None:
        print("\nutrace / ltrace per hit: n/a (a row is missing)")
        return
    net = ratio(ours.net_us, theirs.net_us)
    gross = ratio(ours.gross_us, theirs.gross_us)
    met = net != "n/a" and float(net) <= TARGET
    print(
        f"\nutrace / ltrace per hit: {net} net ({gross} with start-up); target <= {TARGET}: "
        f"{'met' if met else 'NOT met'}"
    )


# --- main -----------------------------------------------------------------------------------------


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=40000, help="calls of hot() per run (default 40000)")
    p.add_argument("--slow-calls", type=int, help="calls for ltrace and gdb (default: calls / 5)")
    p.add_argument("--repeat", type=int, default=5, help="runs per tool; the best is kept (default 5)")
    p.add_argument("--cpu", type=int, help="the CPU every run is pinned to (default: the last one allowed)")
    p.add_argument("--no-pin", action="store_true", help="let the scheduler place the tracer and the target")
    args = p.parse_args(argv)
    if args.calls < 1 or args.repeat < 1 or (args.slow_calls is not None and args.slow_calls < 1):
        p.error("--calls, --slow-calls and --repeat must be positive")
    if args.slow_calls is None:
        args.slow_calls = max(1, args.calls // 5)
    return args


def pin(args: argparse.Namespace) -> str:
    """Pin this process, so every run it starts, to one CPU; say where things run."""
    if args.no_pin:
        return "not pinned"
    allowed = os.sched_getaffinity(0)
    cpu = max(allowed) if args.cpu is None else args.cpu
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError as err:
        log(f"warning: cannot pin to CPU {cpu} ({err.strerror}); not pinned")
        return "not pinned"
    return f"every run pinned to CPU {cpu}"


def collect_tools(loop: Path, tmp: Path, perf_event: Optional[str]) -> List[Tool]:
    tools = [
        untraced(loop),
        utrace_tool(loop, single_step=False),
        utrace_tool(loop, single_step=True),
        ltrace_tool(loop),
        gdb_tool(loop, tmp),
        perf_tool(loop, perf_event),
    ]
    return [tool for tool in tools if tool is not None]


def benchmark(args: argparse.Namespace, tmp: Path) -> List[Row]:
    loop = build_loop(tmp)
    with perf_probe(loop) as event:
        tools = collect_tools(loop, tmp, event)
        log("checking that every tool sees every hit ...")
        tools = [tools[0]] + [
            t for t in tools[1:] if verify(t, calls_for(t, args.calls, args.slow_calls), tmp)
        ]
        tools = measure(tools, args.calls, args.slow_calls, args.repeat)
    if not tools or tools[0].name != "untraced":
        return []
    return [make_row(t, tools[0], calls_for(t, args.calls, args.slow_calls)) for t in tools]


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if shutil.which("gcc") is None:
        log("gcc is missing: it builds bench/loop.c")
        return 1
    placement = pin(args)
    with tempfile.TemporaryDirectory(prefix="utrace-bench-") as tmp:
        rows = benchmark(args, Path(tmp))
    if not rows:
        log("the untraced baseline did not run; no table")
        return 1
    machine = f"Linux {os.uname().release}, {os.cpu_count()} CPUs, {placement}"
    print(f"per-hit cost of a probe on hot(), best of {args.repeat} runs each; {machine}\n")
    print_table(rows)
    print_headline(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
