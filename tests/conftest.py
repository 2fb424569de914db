"""Shared fixtures: samples/ compiled with gcc once per session, and a runner for the CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"

# name -> (sources relative to samples/, extra compiler flags). Every binary a test traces is built
# from these sources; nothing compiled is committed.
SAMPLE_BUILDS: dict[str, tuple[list[str], list[str]]] = {
    "checksum": (["checksum.c"], ["-O1", "-g"]),
    "checksum_nopie": (["checksum.c"], ["-O1", "-g", "-no-pie", "-fno-pie"]),
    "threads": (["threads.c"], ["-O1", "-g", "-pthread"]),
    "insn_classes": (["insn_classes.S", "insn_classes_main.c"], ["-O1", "-g"]),
    "forker": (["forker.c"], ["-O1", "-g"]),
    "execer": (["execer.c"], ["-O1", "-g", "-pthread"]),
    "signals": (["signals.c"], ["-O1", "-g"]),
    "dl_main": (["dl_main.c"], ["-O1", "-g", "-ldl"]),
    "libplugin.so": (["dl_plugin.c"], ["-O1", "-g", "-shared", "-fPIC"]),
    "sys_files": (["sys_files.c"], ["-O1", "-g"]),
    "sys_net": (["sys_net.c"], ["-O1", "-g"]),
    "sys_proc": (["sys_proc.c"], ["-O1", "-g"]),
    "sys_i386": (["sys_i386.c"], ["-O1", "-g", "-no-pie", "-fno-pie"]),  # int $0x80 wants data below 4 GiB
    # handlers/ plugins (tests/test_plugins.py); -O0 keeps plug_leaky's malloc/free pairs as written
    "plug_leaky": (["plug_leaky.c"], ["-O0", "-g"]),
    "plug_latency": (["plug_latency.c"], ["-O1", "-g"]),
    "plug_files": (["plug_files.c"], ["-O1", "-g"]),
    "lang_fetch": (["lang_fetch.c"], ["-O1", "-g"]),
    # the unwinder's stacks: no frame pointers, a lazily bound classic PLT (no IBT .plt.sec)
    "unwind_deep": (
        ["unwind_deep.c"],
        ["-O2", "-fomit-frame-pointer", "-g", "-fcf-protection=none", "-Wl,-z,lazy"],
    ),
    # the Python API, return probes and the predefined handlers (test_api, test_retprobes,
    # test_handlers_builtin); a .cc source is built with g++
    "api_events": (["api_events.c"], ["-O1", "-g"]),
    "api_events_nopie": (["api_events.c"], ["-O1", "-g", "-no-pie", "-fno-pie"]),
    "api_returns": (["api_returns.c"], ["-O1", "-g", "-pthread"]),
    "api_exc": (["api_exc.cc"], ["-O1", "-g"]),
    "cxx_names": (["cxx_names.cc"], ["-O1", "-g"]),
    "api_stack": (["api_stack.c"], ["-O2", "-fomit-frame-pointer", "-g"]),
}


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """A directory every user can read and execute (the unprivileged tests run binaries from it)."""
    path = Path(tempfile.mkdtemp(prefix="utrace-samples-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def sample(sample_dir: Path) -> Callable[[str], str]:
    """``sample(name)`` compiles samples/ sources for ``name`` (once) and returns the binary's path."""
    cc = shutil.which("gcc")
    if cc is None:
        pytest.skip("gcc is not installed: the samples traced by the tests cannot be built")
    built: dict[str, str] = {}

    def build(name: str) -> str:
        if name not in built:
            sources, flags = SAMPLE_BUILDS[name]
            out = sample_dir / name
            compiler = cc
            if any(s.endswith(".cc") for s in sources):
                compiler = shutil.which("g++")
                if compiler is None:
                    pytest.skip(f"g++ is not installed: the C++ sample {name} cannot be built")
            cmd = [compiler, *flags, "-o", str(out), *(str(SAMPLES / s) for s in sources)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"building sample {name} failed:\n{' '.join(cmd)}\n{proc.stderr}")
            out.chmod(0o755)
            built[name] = str(out)
        return built[name]

    return build


def run_utrace(*args: str, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
    """Run the CLI as a user would (``python -m utrace ARGS``), capturing both streams."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [sys.executable, "-m", "utrace", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        **kwargs,
    )


@pytest.fixture
def utrace_cli() -> Callable[..., subprocess.CompletedProcess]:
    return run_utrace
