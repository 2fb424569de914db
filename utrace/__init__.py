"""utrace: a user-space dynamic tracer for Linux x86-64 (ptrace, one stop per breakpoint hit).

import utrace

with utrace.launch(["./app"]) as t:     # or utrace.attach(pid)
    t.add_probe("libc:malloc", MyHandler())
    t.run()
"""

from __future__ import annotations

from typing import Any, List

from .engine import Probe, Tracer
from .errors import (
    BadProbeAddress,
    LaunchError,
    ModuleNotFound,
    PermissionDenied,
    ProcessGone,
    SymbolNotFound,
    TargetError,
    UnsupportedInstruction,
    UsageError,
    UtraceError,
)
from .handlers import Event, GetRegs, Handler, Plugin, register_handler
from .syscalls import open_flags  # strace's rendering of open(2) flags, for plugins

__version__ = "0.1.0"


def launch(argv: List[str], **kwargs: Any) -> Tracer:
    """Start ``argv`` traced, stopped at its entry point; add probes, then ``run()``."""
    return Tracer.launch(argv, **kwargs)


def attach(pid: int, **kwargs: Any) -> Tracer:
    """Seize every thread of process ``pid``; add probes, then ``run()``. Detach with ``stop()``."""
    return Tracer.attach(pid, **kwargs)


__all__ = [
    "launch",
    "attach",
    "Tracer",
    "Probe",
    "Handler",
    "Plugin",
    "Event",
    "GetRegs",
    "register_handler",
    "open_flags",
    "UtraceError",
    "UsageError",
    "ProcessGone",
    "PermissionDenied",
    "LaunchError",
    "SymbolNotFound",
    "ModuleNotFound",
    "BadProbeAddress",
    "UnsupportedInstruction",
    "TargetError",
]
