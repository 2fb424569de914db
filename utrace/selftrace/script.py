"""``utrace --self``: run a Python script under self-trace, printing strace-style lines.

The CLI calls ``run_script(path, argv, syscalls, handler_or_inject, output)``; it returns the
script's exit status, as ``python3 path argv...`` would.
"""

from __future__ import annotations

import builtins
import errno
import os
import pkgutil  # noqa: F401 - runpy imports it lazily: keep that import out of the trace
import sys
import traceback
import types
from typing import Dict, Iterable, List, Optional, TextIO, Tuple, Union

from ..errors import UsageError
from ..syscalls import parse_syscall_set
from .session import Decision, Handler, SelfTrace, SyscallCall, SyscallSpec, high_fd, resolve_selection

InjectSpec = Union[str, Iterable[str]]


def parse_inject(specs: InjectSpec) -> Tuple[Handler, frozenset[int]]:
    """A handler for strace-style injections, and the calls it needs to see.

    Each spec is ``SET:error=ERRNO`` (the call fails with ERRNO, a name or a number) or
    ``SET:retval=VALUE`` (it returns VALUE without running), SET in ``trace=`` syntax:
    ``openat:error=EACCES``, ``getppid,getpid:retval=1``.
    """
    rules: Dict[int, Decision] = {}
    for spec in [specs] if isinstance(specs, str) else list(specs):
        names, sep, options = spec.partition(":")
        if not sep or not names:
            raise UsageError(f"bad injection {spec!r}: expected SET:error=ERRNO or SET:retval=VALUE")
        decision = _inject_decision(spec, options)
        for nr in parse_syscall_set(names):
            rules[nr] = decision

    def inject(call: SyscallCall) -> Optional[Decision]:
        return rules.get(call.nr)

    return inject, frozenset(rules)


def _inject_decision(spec: str, options: str) -> Decision:
    key, sep, value = options.partition("=")
    if not sep or ":" in value:
        raise UsageError(f"bad injection {spec!r}: one option, error=ERRNO or retval=VALUE")
    if key == "error":
        code = getattr(errno, value, None) if not value.isdigit() else int(value)
        if not isinstance(code, int) or not 0 < code < 4096:
            raise UsageError(f"bad injection {spec!r}: {value!r} is not an errno name or number")
        return Decision("deny", code)
    if key == "retval":
        try:
            return Decision("emulate", int(value, 0))
        except ValueError:
            raise UsageError(f"bad injection {spec!r}: {value!r} is not a number") from None
    raise UsageError(f"bad injection {spec!r}: unknown option {key!r} (error= or retval=)")


class LineSink:
    """Trace lines to ``stream`` without going through its buffer: os.write on a duplicate fd.

    The traced script may be writing to the same stream when a call traps (holding its lock); a
    stream without a file descriptor (StringIO) gets its lines when the script is over.
    """

    def __init__(self, stream: Optional[TextIO]) -> None:
        self.stream = stream
        self.fd = -1
        self.held: List[str] = []
        self.broken = False
        if stream is None:
            return
        try:
            stream.flush()
            self.fd = high_fd(os.dup(stream.fileno()))
        except (AttributeError, OSError, ValueError):
            self.fd = -1

    def __call__(self, line: str) -> None:
        if self.stream is None or self.broken:
            return
        if self.fd < 0:
            self.held.append(line)
            return
        data = (line + "\n").encode("utf-8", "backslashreplace")
        try:
            while data:
                data = data[os.write(self.fd, data) :]
        except BrokenPipeError:
            self.broken = True  # `| head`: stop printing, let the script run on

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self.held and self.stream is not None:
            self.stream.write("".join(line + "\n" for line in self.held))
            self.stream.flush()
            self.held = []


def run_script(
    path: str,
    argv: List[str],
    syscalls: SyscallSpec = None,
    handler_or_inject: Union[None, Handler, InjectSpec] = None,
    output: Optional[TextIO] = None,
    *,
    strsize: int = 32,
    mechanism: Optional[str] = None,
) -> int:
    """Run the Python script ``path`` with ``argv`` under self-trace; return its exit status.

    ``handler_or_inject`` is a handler (``handler(call) -> Decision``) or injection specs (see
    ``parse_inject``). Trace lines (strace's format) go to ``output``; handler failures are listed
    there at the end. The script runs as ``__main__`` with sys.argv and sys.path[0] set as python
    would set them; its exceptions print a traceback and give status 1, like python's.
    """
    handler, selection = _handler_and_selection(syscalls, handler_or_inject)
    sink = LineSink(output)
    session = SelfTrace(
        selection, handler, output=sink, strsize=strsize, mechanism=mechanism, capture_limit=strsize
    )
    saved_argv, saved_path0 = sys.argv, sys.path[0] if sys.path else None
    sys.argv = [path, *argv]
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    try:
        status = _run_main(session, path)
    finally:
        sys.argv = saved_argv
        if sys.path and sys.path[0] != saved_path0:
            del sys.path[0]
        for failure in session.failures:
            sink(f"utrace: {failure}")
        if session.lost:
            sink(f"utrace: {session.lost} calls handled by the SIGSYS stub were not recorded (ring overflow)")
        sink.close()
    return status


def _handler_and_selection(
    syscalls: SyscallSpec, handler_or_inject: Union[None, Handler, InjectSpec]
) -> Tuple[Optional[Handler], frozenset[int]]:
    selection = resolve_selection(syscalls)
    if handler_or_inject is None or callable(handler_or_inject):
        return handler_or_inject, selection
    handler, injected = parse_inject(handler_or_inject)
    return handler, selection | resolve_selection(injected)


def _run_main(session: SelfTrace, path: str) -> int:
    # Read and compile the script before the mode is on: the trace is of what the script does, not of
    # utrace loading it (an --inject on openat must not make the script itself unreadable).
    with open(path, "rb") as f:
        code = compile(f.read(), path, "exec")

    def main() -> None:
        module = types.ModuleType("__main__")
        module.__file__ = path
        module.__dict__["__builtins__"] = builtins
        saved = sys.modules.get("__main__")
        sys.modules["__main__"] = module
        try:
            exec(code, module.__dict__)  # noqa: S102 - running the user's script is the point
        finally:
            if saved is not None:
                sys.modules["__main__"] = saved

    try:
        session.run(main)
    except SystemExit as exc:
        return _exit_status(exc.code)
    except Exception as exc:  # noqa: BLE001 - the script's own error: report it as python would
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != path:
            tb = tb.tb_next  # leave out utrace's and runpy's frames, as python shows none of its own
        traceback.print_exception(type(exc), exc, tb or exc.__traceback__)
        return 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
    return 0


def _exit_status(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


__all__ = ["run_script", "parse_inject", "LineSink"]
