"""What the benchmark scripts share: running a tool once, best-of-R timing, CPU pinning, building the C loop.

A plain module next to the scripts: they are run as ``python3 bench/X.py``, so ``sys.path[0]`` is
bench/ and ``import common`` finds it, from any working directory.

The functions that run a tool take the script's own Tool record: anything with ``name``,
``command`` ((calls, trace file) -> argv), ``env``, ``cwd`` and ``times`` (calls -> best wall seconds).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Sequence, Tuple

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


@dataclass
class Run:
    seconds: float
    status: int
    output: str


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@contextlib.contextmanager
def temp_dir() -> Iterator[Path]:
    """A temporary directory for the built loop and the trace files, removed at the end."""
    with tempfile.TemporaryDirectory(prefix="utrace-bench-") as tmp:
        yield Path(tmp)


def have_gcc(source: str) -> bool:
    """Whether gcc is there; says so when it is not (it builds bench/``source``)."""
    if shutil.which("gcc") is None:
        log(f"gcc is missing: it builds bench/{source}")
        return False
    return True


def build_loop(tmp: Path, name: str) -> Path:
    """Compile bench/``name``.c into ``tmp``/``name``."""
    exe = tmp / name
    subprocess.run(["gcc", "-O2", "-g", "-o", str(exe), str(HERE / f"{name}.c")], check=True)
    return exe


def utrace_env() -> Dict[str, str]:
    """This environment with the working tree's package first on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def run_once(tool: Any, calls: int, trace: str, timeout: float) -> Optional[Run]:
    """Run ``tool`` once on ``calls`` calls; None when it does not finish within ``timeout`` seconds."""
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
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        log(f"warning: {tool.name}: no result within {timeout:.0f} s; row dropped")
        return None
    elapsed = time.perf_counter() - start
    return Run(elapsed, proc.returncode, proc.stdout.decode(errors="replace"))


def checked_run(tool: Any, calls: int, trace: Path, timeout: float) -> Optional[Run]:
    """One run with the trace in a file; None, with a warning, when it timed out or failed."""
    run = run_once(tool, calls, str(trace), timeout)
    if run is None:
        return None
    if run.status != 0:
        log(f"warning: {tool.name} exited with status {run.status}; row dropped:\n{run.output[-2000:]}")
        return None
    return run


def best_of(jobs: Sequence[Tuple[Any, int]], repeat: int, timeout: float, warn: bool) -> set:
    """Run every (tool, calls) job ``repeat`` times round-robin, keeping each tool's best time per calls.

    A tool whose run times out or fails is dropped (with a warning when ``warn``); returns the ids
    of the dropped tools."""
    dropped: set = set()
    for rnd in range(repeat):
        log(f"round {rnd + 1}/{repeat} ...")
        for tool, n in jobs:
            if id(tool) in dropped:
                continue
            run = run_once(tool, n, os.devnull, timeout)
            if run is None or run.status != 0:
                if warn:
                    log(f"warning: {tool.name} failed on {n} calls; row dropped")
                dropped.add(id(tool))
                continue
            tool.times[n] = min(tool.times.get(n, float("inf")), run.seconds)
    return dropped


def add_pin_options(p: argparse.ArgumentParser, cpu: bool = True) -> None:
    """--cpu (when ``cpu``) and --no-pin."""
    if cpu:
        p.add_argument(
            "--cpu", type=int, help="the CPU every run is pinned to (default: the last one allowed)"
        )
    p.add_argument("--no-pin", action="store_true", help="let the scheduler place the tracer and the target")


def pin(no_pin: bool, cpu: Optional[int] = None) -> str:
    """Pin this process, so every run it starts, to ``cpu`` (default: the last CPU it may use); say
    where things run."""
    if no_pin:
        return "not pinned"
    allowed = os.sched_getaffinity(0)
    cpu = max(allowed) if cpu is None else cpu
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError as err:
        log(f"warning: cannot pin to CPU {cpu} ({err.strerror}); not pinned")
        return "not pinned"
    return f"every run pinned to CPU {cpu}"


def machine(placement: str) -> str:
    """The table's machine line: kernel, CPUs, where the runs were pinned."""
    return f"Linux {os.uname().release}, {os.cpu_count()} CPUs, {placement}"
