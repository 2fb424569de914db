"""Per-syscall cost of utrace's system call tracer against strace, measured in one run.

    python3 bench/per_syscall.py [--calls N] [--repeat R] [--no-pin]

Builds bench/syscall_loop.c (N iterations of getppid() and one write() to /dev/null) into a
temporary directory, then times every tool on the same binary on this machine:

- untraced: ``./syscall_loop N`` alone, the baseline;
- strace, all calls: ``strace -f -o /dev/null ./syscall_loop N``;
- strace, write only: ``strace -o /dev/null -e trace=write ./syscall_loop N``: still a stop pair at
  every call (getppid too), strace drops the unselected ones itself;
- strace --seccomp-bpf, write only: the same with a seccomp filter, so getppid costs no stop
  (strace disables --seccomp-bpf without -f, so the row has -f);
- utrace, all calls: ``python3 -m utrace -S -o /dev/null -- ./syscall_loop N``: a seccomp filter
  stops every call at its entry, and getppid and write, which copy nothing out, return through
  utrace's result ring without an exit stop (one stop per call; utrace/sysring.py);
- utrace -S --no-seccomp: the same with PTRACE_SYSCALL, two stops per call as strace;
- utrace, write only: ``python3 -m utrace --syscalls=write -o /dev/null -- ./syscall_loop N``: a
  seccomp filter selects write, the other calls cost nothing.

Each time is the best of R runs, taken round-robin so that drift in the machine hits every tool
alike, every run pinned to one CPU unless --no-pin (a ptrace stop that wakes the other side on
another CPU costs several times more on a VM). The cost per traced call is net of start-up:
(run with N iterations - run with 0) / traced calls, where traced calls are 2N for the all-calls
rows and N (the writes) for the write-only rows. The headline ratios, against the targets:

- utrace, all calls / strace, all calls: at most 1.0;
- utrace, write only / strace, write only (without seccomp): at most 0.6.

Before timing, one extra run of each tool writes its trace to a file and the script checks the
lines (getppid and write(3, ...) calls) and the program's output; it warns, and never fails, when a
check does not hold. This is a benchmark, not a test: CI does not run it.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import common
from common import REPO, log

TARGET_ALL = 1.0  # utrace -S per traced call, against strace -f
TARGET_ONE = 0.6  # utrace --syscalls=write per traced write, against strace -e trace=write (no seccomp)
RUN_TIMEOUT = 300.0  # seconds for one run of one tool; a run that takes longer is dropped

Command = Callable[[int, str], List[str]]  # (iterations, trace file) -> argv
LINE = re.compile(r"^(?:\d+ +)?(getppid|write)\((3,)?", re.MULTILINE)  # strace -f prefixes the pid


@dataclass
class Tool:
    """One row: how to run it on N iterations, what it traces ("all", "write" or nothing) and how."""

    name: str
    command: Command
    traces: str = ""  # "all": getppid and write; "write": only write; "": untraced
    reference: str = ""  # the row this one is compared with
    env: Optional[Dict[str, str]] = None
    cwd: Optional[Path] = None
    times: Dict[int, float] = field(default_factory=dict)  # iterations -> best wall seconds

    def traced_calls(self, iterations: int) -> int:
        """The loop's calls this row records: both per iteration, or only the write."""
        return iterations if self.traces == "write" else 2 * iterations


def expected_output(iterations: int) -> str:
    """What syscall_loop prints: the bytes written (1 + i % 8 per iteration) and N getppid calls."""
    return f"{sum(1 + i % 8 for i in range(iterations))} {iterations}"


# --- the tools ------------------------------------------------------------------------------------


def collect_tools(loop: Path) -> List[Tool]:
    exe = str(loop)
    tools = [Tool("untraced", lambda n, _trace: [exe, str(n)])]
    strace = shutil.which("strace")
    if strace is None:
        log("strace is missing (install it: apt-get install strace); its rows are skipped")
    else:
        tools += [
            Tool("strace -f", lambda n, t: [strace, "-f", "-o", t, exe, str(n)], "all"),
            Tool(
                "strace -e trace=write",
                lambda n, t: [strace, "-o", t, "-e", "trace=write", exe, str(n)],
                "write",
            ),
            Tool(
                "strace --seccomp-bpf",
                lambda n, t: [strace, "-f", "--seccomp-bpf", "-o", t, "-e", "trace=write", exe, str(n)],
                "write",
                reference="strace -e trace=write",
            ),
        ]
    env = common.utrace_env()

    def utrace(*options: str) -> Command:
        return lambda n, t: [sys.executable, "-m", "utrace", *options, "-o", t, "--", exe, str(n)]

    tools += [
        Tool("utrace -S", utrace("-S"), "all", "strace -f", env, REPO),
        Tool("utrace -S --no-seccomp", utrace("-S", "--no-seccomp"), "all", "strace -f", env, REPO),
        Tool(
            "utrace --syscalls=write", utrace("--syscalls=write"), "write", "strace -e trace=write", env, REPO
        ),
    ]
    return tools


# --- measuring ------------------------------------------------------------------------------------


def count_lines(text: str) -> Tuple[int, int]:
    """(getppid calls, writes to fd 3) in an strace-style trace."""
    getppid = writes = 0
    for match in LINE.finditer(text):
        if match.group(1) == "getppid":
            getppid += 1
        elif match.group(2):
            writes += 1
    return getppid, writes


def verify(tool: Tool, iterations: int, tmp: Path) -> bool:
    """One run with the trace in a file: warn unless it saw the loop's calls and the output is right."""
    trace = tmp / ("trace-" + re.sub(r"\W+", "-", tool.name) + ".txt")
    run = common.checked_run(tool, iterations, trace, RUN_TIMEOUT)
    if run is None:
        return False
    if expected_output(iterations) not in run.output:
        log(f"warning: {tool.name}: the program did not print {expected_output(iterations)!r}")
    if tool.traces:
        seen = count_lines(trace.read_text(errors="replace") if trace.exists() else "")
        # the loop's getppid calls and one more before it, when getppid is traced; N writes to fd 3
        wanted = (iterations + 1 if tool.traces == "all" else 0, iterations)
        if seen != wanted:
            got, exp = f"{seen[0]} getppid and {seen[1]} writes", f"{wanted[0]} and {wanted[1]}"
            log(f"warning: {tool.name} traced {got}, not {exp}")
    return True


def measure(tools: Sequence[Tool], iterations: int, repeat: int) -> List[Tool]:
    """Best wall time of each tool at N and at 0 iterations, round-robin; returns the tools that ran."""
    jobs = [(tool, n) for tool in tools for n in (0, iterations)]
    dropped = common.best_of(jobs, repeat, RUN_TIMEOUT, warn=False)
    return [tool for tool in tools if id(tool) not in dropped]


# --- the table ------------------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    traced: int  # calls of the loop the tool records
    total: float
    startup: float  # the tool at 0 iterations - the untraced program at 0
    per_iteration: float  # µs: (run at N - run at 0) / N
    per_call: float  # µs: (run at N - run at 0) / traced calls
    reference: str


def make_row(tool: Tool, base: Tool, iterations: int) -> Row:
    total, idle = tool.times[iterations], tool.times[0]
    net = (total - idle) * 1e6
    traced = tool.traced_calls(iterations)
    return Row(tool.name, traced, total, idle - base.times[0], net / iterations, net / traced, tool.reference)


def ratio(num: Optional[Row], den: Optional[Row]) -> Optional[float]:
    if num is None or den is None or den.per_call <= 0:
        return None
    return num.per_call / den.per_call


def print_table(rows: Sequence[Row], iterations: int) -> None:
    by_name = {r.name: r for r in rows}
    head = ("tool", "traced", "total s", "startup s", "net µs/iter", "net µs/call", "× ref", "ref")
    print(
        f"{head[0]:<26}{head[1]:>8}{head[2]:>9}{head[3]:>11}{head[4]:>13}{head[5]:>13}{head[6]:>7}  {head[7]}"
    )
    for r in rows:
        if r.name == "untraced":  # the calls' own cost: both of them, per iteration and per call
            print(
                f"{r.name:<26}{2 * iterations:>8}{r.total:>9.3f}{'-':>11}"
                f"{r.per_iteration:>13.2f}{r.per_call:>13.2f}{'-':>7}"
            )
            continue
        rel = ratio(r, by_name.get(r.reference)) if r.reference else None
        shown = "-" if rel is None else f"{rel:.2f}"
        print(
            f"{r.name:<26}{r.traced:>8}{r.total:>9.3f}{r.startup:>11.3f}"
            f"{r.per_iteration:>13.2f}{r.per_call:>13.2f}{shown:>7}  {r.reference}".rstrip()
        )


def print_headline(rows: Sequence[Row]) -> None:
    by_name = {r.name: r for r in rows}
    print()
    for ours, theirs, target, what in (
        ("utrace -S", "strace -f", TARGET_ALL, "all calls"),
        ("utrace --syscalls=write", "strace -e trace=write", TARGET_ONE, "one call selected"),
    ):
        rel = ratio(by_name.get(ours), by_name.get(theirs))
        if rel is None:
            print(f"{ours} / {theirs} per traced call ({what}): n/a (a row is missing)")
            continue
        met = "met" if rel <= target else "NOT met"
        print(f"{ours} / {theirs} per traced call ({what}): {rel:.2f}; target <= {target}: {met}")
    rel = ratio(by_name.get("utrace --syscalls=write"), by_name.get("strace --seccomp-bpf"))
    if rel is not None:
        print(f"utrace --syscalls=write / strace --seccomp-bpf per traced call: {rel:.2f} (no target)")


# --- main -----------------------------------------------------------------------------------------


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=20000, help="loop iterations per run (default 20000)")
    p.add_argument("--repeat", type=int, default=5, help="runs per tool; the best is kept (default 5)")
    common.add_pin_options(p)
    args = p.parse_args(argv)
    if args.calls < 1 or args.repeat < 1:
        p.error("--calls and --repeat must be positive")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if not common.have_gcc("syscall_loop.c"):
        return 1
    placement = common.pin(args.no_pin, args.cpu)
    with common.temp_dir() as tmp:
        loop = common.build_loop(tmp, "syscall_loop")
        tools = collect_tools(loop)
        log("checking that every tool traces the loop's calls ...")
        tools = [tools[0]] + [t for t in tools[1:] if verify(t, args.calls, tmp)]
        tools = measure(tools, args.calls, args.repeat)
    if not tools or tools[0].name != "untraced":
        log("the untraced baseline did not run; no table")
        return 1
    rows = [make_row(t, tools[0], args.calls) for t in tools]
    machine = common.machine(placement)
    print(
        f"per-syscall cost, {args.calls} iterations of getppid() + write(), "
        f"best of {args.repeat} runs each; {machine}\n"
    )
    print_table(rows, args.calls)
    print_headline(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
