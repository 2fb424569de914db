"""The command line: a thin layer over the public API (utrace.Tracer)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import IO, List, Optional, Sequence

from .engine import Tracer
from .errors import UsageError, UtraceError
from .handlers import GetRegs, Handler, make_handler
from .output import Output

EPILOG = """\
examples:
  utrace malloc -- ls /                  every malloc call of ls, with its arguments
  utrace -p 1234 libc:free               attach to a running process; Ctrl-C detaches
  utrace -o trace.txt work+4 -- ./app    an instruction inside work(), trace to a file
  utrace --regs 0x401136 -- ./app        every register at an absolute address
  utrace -p 1234 --duration 5 malloc     trace for five seconds, then detach
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="utrace",
        usage="utrace [OPTIONS] PROBE... -- COMMAND [ARGS...]\n       utrace [OPTIONS] -p PID PROBE...",
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
        "--handler",
        metavar="NAME[:ARGS]",
        action="append",
        default=[],
        help="handler for every probe (default GETREGS); may be repeated",
    )
    p.add_argument("--regs", action="store_true", help="print every general-purpose register at each hit")
    p.add_argument("--duration", type=float, metavar="SECONDS", help="detach after SECONDS")
    p.add_argument(
        "--single-step",
        action="store_true",
        help="run every displaced instruction by single-stepping its out-of-line copy (slower; "
        "for comparing with the default one-stop path)",
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
    if not args.probes:
        parser.error("give at least one PROBE (e.g. malloc, libc:free, work+4, 0x401136)")
    if args.duration is not None and args.duration <= 0:
        parser.error("--duration takes a positive number of seconds")
    handler_specs = make_handlers(args)  # usage errors before anything is started
    stream: Optional[IO[str]] = None
    if args.output:
        try:
            stream = open(args.output, "w", buffering=1 << 16)
        except OSError as err:
            raise UsageError(f"cannot write the trace to {args.output}: {err.strerror}") from err
    output = Output(stream)
    if args.pid is not None:
        tracer = Tracer.attach(
            args.pid, output=output, single_step=args.single_step, follow_forks=args.follow_forks
        )
    else:
        tracer = Tracer.launch(
            command, output=output, single_step=args.single_step, follow_forks=args.follow_forks
        )
    try:
        for target in args.probes:
            for handler in handler_specs:
                tracer.add_probe(target, handler)
    except BaseException:
        _abandon(tracer)
        raise
    status = tracer.run(duration=args.duration)
    if stream is not None:
        stream.close()
    if args.pid is not None:
        return 0
    return status if status is not None else 0


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
