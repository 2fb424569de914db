"""The command line: a thin layer over the public API (utrace.Tracer)."""

from __future__ import annotations

import argparse
import importlib.util
import io
import os
import signal
import sys
from typing import IO, List, Optional, Sequence, TextIO

from .engine import Tracer, is_spec
from .errors import LaunchError, UsageError, UtraceError
from .handlers import GetRegs, Handler, Plugin, make_handler
from .libcalls import LibraryCalls
from .output import Output
from .probes import parse_spec
from .prototypes import load as load_prototypes
from .symbols import AddressSpace
from .syscalls import parse_syscall_set
from .systrace import SysOptions, parse_inject

EPILOG = """\
examples:
  utrace malloc -- ls /                  every malloc call of ls, with its arguments
  utrace -- ls /                         every call ls makes into its libraries (like ltrace)
  utrace -p 1234 libc:free               attach to a running process; Ctrl-C detaches
  utrace -o trace.txt work+4 -- ./app    an instruction inside work(), trace to a file
  utrace --regs 0x401136 -- ./app        every register at an absolute address
  utrace -p 1234 --duration 5 malloc     trace for five seconds, then detach
  utrace -H STACKTRACE libc:free -- ./app           the stack at every free()
  utrace -H GETDATA:arg2:64 libc:write -- ./app     64 bytes of every write() buffer
  utrace --handler handlers/malloc_leaks.py -- ./app   allocations never freed, by stack
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="utrace",
        usage="utrace [OPTIONS] [PROBE...] -- COMMAND [ARGS...]\n       utrace [OPTIONS] -p PID [PROBE...]",
        description="Dynamic tracer for Linux x86-64 programs: probes at symbols, addresses and offsets, "
        "one ptrace stop per hit, no root or kernel support needed.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "probes",
        nargs="*",
        metavar="PROBE",
        help="SYMBOL, LIB:SYMBOL, SYMBOL+OFFSET, 0xADDRESS or PATH:0xFILEOFFSET",
    )
    p.add_argument("-p", "--pid", type=int, help="attach to this running process (all its threads)")
    p.add_argument("-o", "--output", metavar="FILE", help="write the trace to FILE instead of stderr")
    p.add_argument(
        "-f",
        "--follow-forks",
        action="store_true",
        help="trace child processes (fork, vfork, clone) with the same probes",
    )
    p.add_argument(
        "-H",
        dest="handler",
        metavar="NAME[:ARGS]",
        action="append",
        default=[],
        help="handler for every probe: GETREGS (default), GETDATA:SRC:LEN, STACKTRACE[:DEPTH] or a "
        "registered name; may be repeated",
    )
    p.add_argument(
        "--handler",
        metavar="PATH.py[:CLASS]",
        dest="plugin",
        help="run a handler plugin (e.g. handlers/malloc_leaks.py): it adds the probes it needs; "
        "PROBEs given are passed to it",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="a handler that raises makes utrace detach and exit 1 (default: the probe is disabled)",
    )
    p.add_argument("--regs", action="store_true", help="print every general-purpose register at each hit")
    p.add_argument(
        "-e",
        dest="calls_filter",
        metavar="PATTERN",
        action="append",
        default=[],
        help="with no PROBE: only the library calls matching these globs (comma-separated; "
        "-GLOB or !GLOB excludes), e.g. -e 'mem*,str*,!strlen'; strace's -e trace=SET, -e status=failed "
        "and -e inject=SPEC are --syscalls, --syscall-status and --inject",
    )
    p.add_argument(
        "-F",
        dest="prototypes",
        metavar="FILE",
        action="append",
        default=[],
        help="with no PROBE: library-call prototypes in ltrace.conf syntax, besides the built-in ones "
        "(e.g. -F /etc/ltrace.conf)",
    )
    p.add_argument(
        "-l",
        "--list",
        action="store_true",
        help="list the functions PROBEs can name, as LIB:NAME, instead of tracing; PROBEs are globs "
        "(e.g. -l 'libc:mem*'); a command is started and killed before its own code runs",
    )
    p.add_argument("--duration", type=float, metavar="SECONDS", help="detach after SECONDS")
    p.add_argument(
        "--single-step",
        action="store_true",
        help="run every displaced instruction by single-stepping its out-of-line copy (slower; "
        "for comparing with the default one-stop path)",
    )
    sc = p.add_argument_group("system calls")
    sc.add_argument("-S", dest="syscalls", action="store_const", const="all", help="trace every system call")
    sc.add_argument(
        "--syscalls",
        dest="syscalls",
        metavar="SET",
        nargs="?",
        const="all",
        help="trace these system calls: names and classes (%%file %%network %%process %%memory "
        "%%signal %%desc ...), ! to negate, as strace -e trace=",
    )
    sc.add_argument(
        "--self",
        dest="self_trace",
        action="store_true",
        help="run the Python script given as COMMAND inside utrace's own interpreter, its system calls "
        "intercepted in-process (SIGSYS): no tracer task switch per call",
    )
    sc.add_argument(
        "--no-seccomp",
        dest="seccomp",
        action="store_false",
        help="a launched program gets no seccomp filter: two ptrace stops per call instead of one, but "
        "setuid/file-capability programs keep their privileges and children without -f run untraced",
    )
    sc.add_argument(
        "--raw-syscalls",
        action="store_true",
        help="print the raw record stream (entry, copy from/to user, exit)",
    )
    sc.add_argument(
        "-s",
        dest="strsize",
        type=int,
        default=32,
        metavar="SIZE",
        help="string and data bytes shown per argument (default 32)",
    )
    sc.add_argument("-y", dest="decode_fds", action="store_true", help="show file descriptor paths")
    sc.add_argument(
        "--syscall-status",
        choices=["failed", "all"],
        default="all",
        help="failed: only calls that returned an error",
    )
    sc.add_argument(
        "--inject",
        action="append",
        default=[],
        metavar="SET:error=E|retval=N[:when=...]",
        help="tamper with calls as strace --inject: the call is NOT executed, the value is returned",
    )
    fmt = p.add_argument_group("output formats")
    fmt.add_argument("--json", action="store_true", help="one JSON object per event (keys in the README)")
    fmt.add_argument(
        "-c",
        "--summary",
        action="store_true",
        help="a summary at the end instead of events: count, and total/min/avg/max duration of "
        "return-probed calls",
    )
    fmt.add_argument(
        "--hist", metavar="NAME", help="a log2 histogram per event of a fetched value or $duration"
    )
    fmt.add_argument(
        "--format",
        choices=["text", "json", "chrome"],
        default=None,
        help="chrome: a Chrome trace-event JSON file (opens in Perfetto) written at the end",
    )
    fmt.add_argument(
        "--folded",
        action="store_true",
        help="with -H STACKTRACE: collapsed stacks with counts, for flame graph tools",
    )
    fmt.add_argument(
        "-t",
        dest="time_mode",
        action="store_const",
        const="absolute",
        default="start",
        help="absolute timestamps (seconds since the epoch)",
    )
    fmt.add_argument(
        "-r",
        dest="time_mode",
        action="store_const",
        const="delta",
        help="timestamps relative to the previous event",
    )
    p.add_argument("--traceback", action="store_true", help="show Python tracebacks for errors (debugging)")
    return p


def split_command(argv: Sequence[str]) -> tuple[List[str], List[str]]:
    """Everything after the first ``--`` is the command to launch."""
    argv = list(argv)
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1 :]
    return argv, []


def run_self_trace(args: argparse.Namespace, command: List[str], parser: argparse.ArgumentParser) -> int:
    """--self: the script runs in this interpreter with the SIGSYS mode on."""
    from .selftrace import run_script

    if not command or args.pid is not None or args.probes:
        parser.error("--self runs a Python script: utrace --self [-S SET] [--inject ...] -- script.py ARGS")
    if not os.path.isfile(command[0]):
        raise LaunchError(command[0], "No such file or directory", 127)
    spec = None if args.syscalls in (None, "all") else args.syscalls
    stream: Optional[TextIO] = open(args.output, "w") if args.output else None
    try:
        return run_script(command[0], command[1:], spec, args.inject or None, stream or sys.stderr,
                          strsize=args.strsize)  # fmt: skip
    finally:
        if stream is not None:
            stream.close()


# strace's -e qualifiers that utrace has no equivalent for (trace=, status= and inject= it has)
_OTHER_STRACE_QUALIFIERS = frozenset(
    "abbrev a verbose v raw x signal signals s read reads r write writes w fault quiet silent silence q "
    "decode-fds decode-pids kvm".split()
)


def strace_qualifiers(args: argparse.Namespace) -> None:
    """strace's ``-e trace=SET``, ``-e status=failed|all`` and ``-e inject=SPEC``: the same as
    --syscalls, --syscall-status and --inject. Other values of -e are ltrace's library-call globs."""
    globs = []
    for value in args.calls_filter:
        key, equals, rest = value.partition("=")
        if not equals or not key.isidentifier() and key not in _OTHER_STRACE_QUALIFIERS:
            globs.append(value)
        elif key in ("trace", "t"):
            args.syscalls = rest or "all"
        elif key == "status":
            if rest not in ("failed", "all"):
                raise UsageError(f"-e status={rest}: utrace shows all calls or only the failed ones: "
                                 "-e status=failed or -e status=all")  # fmt: skip
            args.syscall_status = rest
        elif key == "inject":
            args.inject.append(rest)
        else:
            raise UsageError(f"-e {key}=: of strace's -e qualifiers utrace has trace=SET, status=failed and "
                             "inject=SPEC; -e GLOB selects library calls")  # fmt: skip
    args.calls_filter = globs


def syscall_options(args: argparse.Namespace) -> Optional[SysOptions]:
    """The -S/--syscalls family, checked before the target starts (usage errors list the choices)."""
    rules = [parse_inject(spec) for spec in args.inject]
    if args.syscalls is None and not rules:
        if args.raw_syscalls or args.decode_fds or args.syscall_status != "all" or not args.seccomp:
            raise UsageError(
                "--raw-syscalls, -y, --syscall-status and --no-seccomp need -S or --syscalls=SET"
            )
        return None
    numbers = None if args.syscalls in (None, "all") else parse_syscall_set(args.syscalls)
    if numbers is not None and rules:
        numbers = frozenset(numbers.union(*(r.numbers for r in rules)))
    if args.strsize < 0:
        raise UsageError("-s takes a non-negative number of bytes")
    return SysOptions(
        numbers=numbers,
        strsize=args.strsize,
        raw=args.raw_syscalls,
        decode_fds=args.decode_fds,
        failed_only=args.syscall_status == "failed",
        inject=rules,
        quiet=args.syscalls is None,
        seccomp=args.seccomp,
    )


def output_format(args: argparse.Namespace) -> str:
    chosen = [name for name, on in (("json", args.json or args.format == "json"), ("summary", args.summary),
                                     ("hist", bool(args.hist)), ("chrome", args.format == "chrome"),
                                     ("folded", args.folded)) if on]  # fmt: skip
    if len(chosen) > 1:
        raise UsageError(f"choose one output format, not {' and '.join(chosen)}")
    if args.folded and not any(spec.upper().startswith("STACKTRACE") for spec in args.handler):
        raise UsageError("--folded needs stacks: add -H STACKTRACE")
    return chosen[0] if chosen else "text"


def make_handlers(args: argparse.Namespace) -> List[Handler]:
    if args.regs and args.handler:
        raise UsageError("--regs and -H cannot be combined; use -H GETREGS:1 for every register")
    if args.regs:
        return [GetRegs(all_regs=True)]
    return [make_handler(spec) for spec in args.handler] or [GetRegs()]


def run(argv: Sequence[str]) -> int:
    own, command = split_command(argv)
    parser = build_parser()
    args = parser.parse_args(own)
    if args.pid is None and not command:
        parser.error("give a command after '--' to launch, or -p PID to attach")
    if args.pid is not None and command:
        parser.error("-p PID and a command to launch cannot be combined")
    strace_qualifiers(args)
    if args.calls_filter and (args.syscalls is not None or args.inject):
        parser.error("-e GLOB selects library calls when neither PROBEs nor system calls are traced")
    if args.prototypes and (args.probes or args.plugin or args.syscalls is not None):
        parser.error("-F gives library-call prototypes, for the no-probe mode (no PROBE, no -S)")
    if args.calls_filter and (args.probes or args.plugin):
        parser.error("-e selects library calls when no PROBE is given; it cannot be combined with probes")
    if args.duration is not None and args.duration <= 0:
        parser.error("--duration takes a positive number of seconds")
    if args.list:
        return list_functions(args, command)
    # usage errors before anything starts
    plugin = load_plugin(args.plugin) if args.plugin else None
    if args.self_trace:
        return run_self_trace(args, command, parser)
    for probe in args.probes:  # a malformed definition is a usage error before anything starts
        if is_spec(probe):
            spec = parse_spec(probe)
            if spec.kind == "-":
                raise UsageError(
                    f"{probe!r}: removing an event (-:EVENT) is for the API, not the command line"
                )
            if (spec.args or spec.filter is not None) and args.handler:
                raise UsageError(f"{probe!r}: fetch arguments and -H handlers cannot be combined")
    sys_options = syscall_options(args)
    if plugin is None and not args.probes and sys_options is None and not args.plugin:
        # no probe: the ltrace default
        plugin = LibraryCalls(args.calls_filter, load_prototypes(args.prototypes, args.strsize), args.strsize)
    handler_specs = [] if plugin else make_handlers(args)
    stream: Optional[IO[str]] = None
    if args.output:
        try:
            stream = open(args.output, "w", buffering=1 << 16)
        except OSError as err:
            raise UsageError(f"cannot write the trace to {args.output}: {err.strerror}") from err
    output = Output(stream, fmt=output_format(args), time_mode=args.time_mode, hist=args.hist)
    options = dict(
        output=output,
        single_step=args.single_step,
        follow_forks=args.follow_forks,
        strict=args.strict,
        syscalls=sys_options,
        probes=bool(args.probes or plugin),
    )
    if args.pid is not None:
        tracer = Tracer.attach(args.pid, **options)
    else:
        tracer = Tracer.launch(command, **options)
    try:
        if plugin is not None:
            plugin.attach_output(output)
            plugin.install(tracer, args.probes)
        for target in args.probes if plugin is None else ():
            if is_spec(target) and not args.handler and not args.regs:
                tracer.add_probe(target)  # a definition prints its own fetch arguments
                continue
            for handler in handler_specs:
                tracer.add_probe(target, handler)
    except BaseException:
        _abandon(tracer)
        raise
    status = tracer.run(duration=args.duration)
    if plugin is not None:
        plugin.finish()
    output.finish()
    if stream is not None:
        stream.close()
    if tracer.handler_failed:
        return 1
    if args.pid is not None:
        return 0
    return status if status is not None else 0


def list_functions(args: argparse.Namespace, command: List[str]) -> int:
    """-l: the functions matching the PROBE globs, one LIB:NAME a line on stdout (bpftrace -l, perf
    probe -F). A launched command is stopped before its code runs (its libraries mapped), then
    killed; an attached process is only read (/proc/PID/maps and its files), never stopped."""
    patterns = args.probes or ["*"]
    if args.pid is not None:
        space = AddressSpace.from_pid(args.pid)  # ProcessGone, PermissionDenied
        names = [name for pattern in patterns for name in space.functions(pattern)]
    else:
        tracer = Tracer.launch(command, output=Output(io.StringIO()))
        try:
            names = [name for pattern in patterns for name in tracer.functions(pattern)]
        finally:
            _abandon(tracer)
    if not names:
        print(f"utrace: no function matches {' '.join(map(repr, patterns))}", file=sys.stderr)
        return 1
    sys.stdout.write("".join(name + "\n" for name in dict.fromkeys(names)))
    return 0


def _registered() -> List[str]:
    from .handlers import _REGISTRY

    return list(_REGISTRY)


def load_plugin(spec: str) -> Optional[Plugin]:
    """``PATH.py[:CLASS]``: import the file and instantiate its Plugin class (the only one, or CLASS)."""
    path, _, class_name = spec.partition(".py:")
    path = path if path.endswith(".py") else path + ".py"
    if not os.path.isfile(path):
        raise UsageError(f"--handler {spec}: no such file {path}")
    name = "utrace_plugin_" + os.path.basename(path)[:-3].replace("-", "_")
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise UsageError(f"--handler {spec}: {path} is not a Python module")
    module = importlib.util.module_from_spec(module_spec)
    registered_before = len(_registered())
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    try:
        module_spec.loader.exec_module(module)
    except Exception as err:  # noqa: BLE001 - any error in the user's file is a usage error
        sys.modules.pop(name, None)
        raise UsageError(f"--handler {spec}: importing {path} failed: {type(err).__name__}: {err}") from err
    found = [
        obj for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, Plugin) and obj is not Plugin and obj.__module__ == name
    ]  # fmt: skip
    if class_name:
        found = [cls for cls in found if cls.__name__ == class_name]
    if not found and not class_name and len(_registered()) > registered_before:
        return None  # a file of handlers: it registered them (utrace.register_handler) for -H NAME
    if len(found) != 1:
        names = ", ".join(cls.__name__ for cls in found) or "none"
        raise UsageError(
            f"--handler {spec}: expected one utrace.Plugin class in {path} (found: {names}), or a file "
            "that registers handlers with utrace.register_handler for -H NAME"
        )
    try:
        return found[0]()
    except UtraceError:
        raise
    except Exception as err:  # noqa: BLE001
        raise UsageError(f"--handler {spec}: {found[0].__name__}() failed: {err}") from err


def _abandon(tracer: Tracer) -> None:
    """A probe could not be set: leave nothing behind (kill a launched target, detach an attached one)."""
    if tracer.launched:
        try:
            os.kill(tracer.leader, signal.SIGKILL)
            os.waitpid(tracer.leader, 0)
        except (OSError, ChildProcessError):
            pass
    else:
        tracer.detach()


def main(argv: Optional[Sequence[str]] = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    traceback = "--traceback" in split_command(argv)[0]
    try:
        return run(argv)
    except UtraceError as err:
        if traceback:
            raise
        print(f"utrace: {err}", file=sys.stderr)
        return err.exit_code
    except BrokenPipeError:
        # the reader of our output went away (| head): exit quietly, like the C tools
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stderr.fileno())
        return 1
    except KeyboardInterrupt:
        return 130
