"""Hit counts checked against the kernel's own uprobes (perf probe + perf stat), an oracle nobody
here wrote. Needs root, perf and uprobe support; skipped with the reason otherwise."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .test_core import hits

LIBC = "/lib/x86_64-linux-gnu/libc.so.6"


@pytest.fixture(scope="module")
def perf() -> str:
    perf = shutil.which("perf")
    if perf is None:
        pytest.skip("perf (linux-perf) is not installed: it is the kernel uprobe oracle")
    if os.geteuid() != 0:
        pytest.skip("perf probe needs root to create uprobe events")
    tracefs = Path("/sys/kernel/tracing")
    if not (tracefs / "uprobe_events").exists():
        subprocess.run(["mount", "-t", "tracefs", "nodev", str(tracefs)], capture_output=True)
    if not (tracefs / "uprobe_events").exists():
        pytest.skip("tracefs with uprobe_events is not available (kernel without CONFIG_UPROBE_EVENTS?)")
    return perf


def kernel_count(perf: str, binary: str, symbol: str, cmd: list[str]) -> int:
    """The number of times the kernel's uprobe on BINARY:SYMBOL fired while CMD ran."""
    event = f"ut_{symbol}"
    group = "probe_" + re.sub(r"[^A-Za-z0-9_]", "_", Path(binary).name.split(".")[0])
    add = subprocess.run(
        [perf, "probe", "-q", "-x", binary, f"{event}={symbol}"], capture_output=True, text=True
    )
    if add.returncode != 0:
        pytest.skip(f"perf probe could not add a uprobe on {binary}:{symbol}: {add.stderr.strip()}")
    try:
        stat = subprocess.run(
            [perf, "stat", "-x,", "-e", f"{group}:{event}", *cmd], capture_output=True, text=True, timeout=120
        )
        assert stat.returncode == 0, stat.stderr
        line = next(ln for ln in stat.stderr.splitlines() if f"{group}:{event}" in ln)
        return int(line.split(",")[0])
    finally:
        subprocess.run([perf, "probe", "-q", "-d", f"{group}:{event}"], capture_output=True)


@pytest.mark.parametrize("variant", ["checksum", "checksum_nopie", "threads"])
def test_executable_probe_counts_match_kernel_uprobes(perf, sample, utrace_cli, tmp_path, variant):
    exe = sample(variant)
    symbol, args = ("tick", ["4", "3000"]) if variant == "threads" else ("work", ["777"])
    expected = kernel_count(perf, exe, symbol, [exe, *args])
    out = tmp_path / "trace"
    res = utrace_cli("-o", str(out), symbol, "--", exe, *args)
    assert res.returncode == 0, res.stderr
    assert len(hits(out)) == expected


@pytest.mark.parametrize("symbol", ["malloc", "free"])
def test_libc_probe_counts_match_kernel_uprobes(perf, sample, utrace_cli, tmp_path, symbol):
    exe = sample("checksum")
    expected = kernel_count(perf, LIBC, symbol, [exe, "321"])
    out = tmp_path / "trace"
    res = utrace_cli("-o", str(out), f"libc:{symbol}", "--", exe, "321")
    assert res.returncode == 0, res.stderr
    assert len(hits(out)) == expected


def test_system_binary_counts_match_kernel_uprobes(perf, utrace_cli, tmp_path):
    cmd = ["ls", "-l", "/usr/bin"]
    expected = kernel_count(perf, LIBC, "malloc", cmd)
    out = tmp_path / "trace"
    res = utrace_cli("-o", str(out), "libc:malloc", "--", *cmd)
    assert res.returncode == 0, res.stderr
    assert len(hits(out)) == expected
