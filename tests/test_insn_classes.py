"""End to end: a probe on each instruction class of samples/insn_classes.S, through the CLI.

For every class, with the default one-stop slots and with --single-step: the traced program prints
exactly what it prints untraced (its checksums cover every probed instruction's effect), exits
with the same status, and the trace has one line per execution of the probed instruction (the
sample prints how many times each one runs).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Callable

import pytest

# The t_<class> labels of samples/insn_classes.S, in the order the sample prints them.
CLASSES = [
    "t_plain",
    "t_riprel_load",
    "t_riprel_store",
    "t_riprel_imm",
    "t_lock_rip",
    "t_lea_rip",
    "t_sse_rip",
    "t_avx_rip",
    "t_vex3_rip",
    "t_evex_rip",
    "t_jmp8",
    "t_jmp32",
    "t_jcc8",
    "t_jcc32",
    "t_loop",
    "t_loopne",
    "t_loope",
    "t_jrcxz",
    "t_jecxz",
    "t_call_rel",
    "t_call_reg",
    "t_call_mem",
    "t_call_rip",
    "t_call_rsp",
    "t_ret",
    "t_ret_imm",
    "t_jmp_reg",
    "t_jmp_mem",
    "t_jmp_rip",
    "t_push",
    "t_pop",
    "t_push_rip",
    "t_pop_rip",
    "t_endbr",
    "t_nop",
    "t_nopl",
    "t_rep_movsb",
    "t_syscall",
]

MODES = {"slot": [], "single-step": ["--single-step"]}


class Untraced:
    def __init__(self, path: str, stdout: str, returncode: int, hits: dict[str, int]) -> None:
        self.path = path
        self.stdout = stdout
        self.returncode = returncode
        self.hits = hits


@pytest.fixture(scope="module")
def untraced(sample: Callable[[str], str]) -> Untraced:
    path = sample("insn_classes")
    proc = subprocess.run([path], capture_output=True, text=True, timeout=60)
    hits = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(t_\w+) hits=(\d+) ", proc.stdout, re.M)}
    return Untraced(path, proc.stdout, proc.returncode, hits)


def hit_counts(trace: Path) -> dict[str, int]:
    """Hit lines per probe name: the third whitespace-separated field is ``NAME:``."""
    counts: dict[str, int] = {}
    for line in trace.read_text().splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2].endswith(":"):
            name = fields[2][:-1]
            counts[name] = counts.get(name, 0) + 1
    return counts


def test_sample_runs_every_class(untraced: Untraced) -> None:
    assert untraced.returncode == 0
    assert list(untraced.hits) == CLASSES
    assert untraced.hits["t_loop"] > 1000 and untraced.hits["t_plain"] == 1000


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("probe", CLASSES)
def test_probe_on_each_class(
    untraced: Untraced,
    utrace_cli: Callable[..., subprocess.CompletedProcess],
    tmp_path: Path,
    probe: str,
    mode: str,
) -> None:
    trace = tmp_path / "trace.txt"
    proc = utrace_cli("-o", str(trace), *MODES[mode], probe, "--", untraced.path, timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == untraced.returncode, proc.stderr
    assert proc.stdout == untraced.stdout
    assert hit_counts(trace).get(probe, 0) == untraced.hits[probe], trace.read_text()[-2000:]


@pytest.mark.parametrize("mode", list(MODES))
def test_every_class_at_once(
    untraced: Untraced, utrace_cli: Callable[..., subprocess.CompletedProcess], tmp_path: Path, mode: str
) -> None:
    """All probes in one run: many slots side by side in the same executable areas."""
    trace = tmp_path / "trace.txt"
    proc = utrace_cli("-o", str(trace), *MODES[mode], *CLASSES, "--", untraced.path, timeout=600)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == untraced.returncode, proc.stderr
    assert proc.stdout == untraced.stdout
    counts = hit_counts(trace)
    assert {name: counts.get(name, 0) for name in CLASSES} == untraced.hits
