"""The UtraceError hierarchy: every error a user can cause, with a message written for them.

The CLI prints ``str(err)`` as one line and exits with ``err.exit_code``.
"""

from __future__ import annotations

from typing import Sequence


class UtraceError(Exception):
    """Base of every error utrace reports to its user."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(UtraceError):
    """Bad command line or probe specification (exit status 2, like argparse)."""

    exit_code = 2


class ProcessGone(UtraceError):
    """The process or thread does not exist (any more)."""

    def __init__(self, pid: int, what: str = "process") -> None:
        super().__init__(f"no such {what}: {pid}")
        self.pid = pid


class PermissionDenied(UtraceError):
    """The kernel refused to let us trace the process."""

    def __init__(self, pid: int, hint: str) -> None:
        super().__init__(f"cannot trace process {pid}: {hint}")
        self.pid = pid
        self.hint = hint


class LaunchError(UtraceError):
    """The command could not be executed; exit codes follow the shell (127 not found, 126 not executable)."""

    def __init__(self, command: str, reason: str, exit_code: int) -> None:
        super().__init__(f"{command}: {reason}")
        self.command = command
        self.exit_code = exit_code


class SymbolNotFound(UsageError):
    """A probe target names a symbol that no loaded module defines."""

    def __init__(self, name: str, module: str | None, suggestions: Sequence[str] = ()) -> None:
        where = f" in {module}" if module else ""
        msg = f"symbol {name!r} not found{where}"
        if suggestions:
            msg += "; did you mean: " + ", ".join(suggestions) + "?"
        super().__init__(msg)
        self.name = name
        self.module = module
        self.suggestions = list(suggestions)


class ModuleNotFound(UsageError):
    """A probe target names a library that is not (yet) loaded."""

    def __init__(self, name: str, loaded: Sequence[str] = ()) -> None:
        msg = f"no module {name!r} is loaded in the process"
        if loaded:
            msg += " (loaded: " + ", ".join(loaded) + ")"
        super().__init__(msg)
        self.name = name


class BadProbeAddress(UsageError):
    """The probe address is not an instruction boundary, or not in executable code."""


class UnsupportedInstruction(UtraceError):
    """The instruction at the probe address cannot be run out of line."""

    def __init__(self, address: int, disassembly: str, reason: str) -> None:
        super().__init__(f"cannot probe {address:#x} ({disassembly}): {reason}")
        self.address = address
        self.disassembly = disassembly
        self.reason = reason


class TargetError(UtraceError):
    """Something failed on the target's side (a memory access, an injected call)."""
