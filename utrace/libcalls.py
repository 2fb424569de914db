"""``utrace -- ./app`` with no probe: the calls the executable makes into shared libraries, as
ltrace shows them by default, one line per call: ``name(arg1, arg2, arg3) = retval``.

Arguments and results are shown by the function's prototype (``prototypes.py``: a built-in table of
common libc functions in ltrace.conf syntax, and ``-F FILE``), as ltrace does: ``strlen("abc") = 3``;
a function without one shows four arguments and its result as ltrace does, small values in decimal
and the others in hex.

ltrace puts its breakpoints on the executable's PLT entries, so it sees nothing in binaries linked
with ``-z now`` (no lazy PLT to trap) or with IBT PLTs (``.plt.sec``). utrace instead probes each
imported function at its definition in the library that provides it, and keeps a hit only when the
return address lies in the executable, which is true for exactly the calls the executable makes,
however it reaches the function (PLT, GOT call, function pointer).
"""

from __future__ import annotations

import fnmatch
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence

from .errors import UsageError, UtraceError
from .handlers import Event, Plugin
from .prototypes import Prototype, format_arguments, load, sized_string
from .syscalls.fmt import s64

if TYPE_CHECKING:
    from .engine import Tracer


def select(names: Sequence[str], patterns: Sequence[str]) -> List[str]:
    """``-e`` filters: comma-separated globs; ``-GLOB`` or ``!GLOB`` excludes. With no positive glob, all
    is selected before the exclusions apply."""
    include: List[str] = []
    exclude: List[str] = []
    for spec in patterns:
        for part in spec.split(","):
            part = part.strip()
            if not part:
                continue
            if part.startswith(("-", "!")):
                exclude.append(part[1:])
            else:
                include.append(part.lstrip("+"))
    chosen = [n for n in names if not include or any(fnmatch.fnmatchcase(n, g) for g in include)]
    return [n for n in chosen if not any(fnmatch.fnmatchcase(n, g) for g in exclude)]


def guess(value: int) -> str:
    """A value of unknown type, as ltrace shows one: decimal when small, else hex."""
    return str(value) if value < 0x10000 else f"{value:#x}"


class LibraryCalls(Plugin):
    """Calls from the executable into its libraries, with three arguments and the return value."""

    NO_RETURN = frozenset({"exit", "_exit", "_Exit", "abort", "quick_exit", "longjmp", "siglongjmp"})

    def __init__(
        self,
        patterns: Sequence[str] = (),
        prototypes: Optional[Dict[str, Prototype]] = None,
        strsize: int = 32,
    ) -> None:
        self.patterns = list(patterns)
        self.names: List[str] = []
        self.prototypes = load([]) if prototypes is None else prototypes
        self.strsize = strsize

    def install(self, tracer: Tracer, targets: Sequence[str] = ()) -> None:
        proc = tracer.procs[tracer.leader]
        exe = proc.address_space().executable
        if exe is None:
            raise UsageError("cannot tell which file is the executable, so no library calls can be traced")
        imported = exe.elf.imported_functions()
        self.names = select(imported, self.patterns)
        if not self.names:
            raise UsageError(
                f"-e {' '.join(self.patterns)} selects none of the {len(imported)} functions "
                f"{exe.name} imports"
            )
        for name in self.names:
            try:
                tracer.add_probe(name, self, name=name, ret=True)
            except UtraceError:
                continue  # weak imports nothing defines (__gmon_start__), refused instructions

    def on_entry(self, event: Event) -> None:
        exe = event.thread.process.address_space().executable
        ret = event.read_u64(event.regs.rsp)
        if exe is None or not exe.contains(ret):
            event.want_return = False  # a call from inside a library: not the executable's
            return
        name = event.probe.name
        proto = self.prototypes.get(name)
        if proto is None:
            regs = event.regs
            args = ", ".join(map(guess, (regs.rdi, regs.rsi, regs.rdx, regs.rcx)))
        else:
            read = event.read_string
            raw = [event.arg(i + 1) for i in range(len(proto.args))]
            texts = [self._entry_text(event, proto, raw, i) for i in range(len(raw))]
            if proto.format_at >= 0:  # printf's variable arguments, as its format announces them
                fmt = read(raw[proto.format_at], 4096)
                texts += format_arguments(fmt, event.arg, len(proto.args) + 1, read, self.strsize)
            if proto.at_return:
                event.data["raw"], event.data["texts"] = raw, texts
            args = ", ".join(t or "" for t in texts)
        if name in self.NO_RETURN:
            event.want_return = False
            self._emit(event, f"{name}({args} <no return ...>", None)
            return
        event.data["args"] = args

    def on_return(self, event: Event) -> None:
        name = event.probe.name
        value = event.retval or 0
        proto = self.prototypes.get(name)
        args = event.data["args"]
        if proto is None:
            result = guess(value)
        else:
            result = "<void>" if proto.ret is None else proto.ret(value, event.read_string)
            if proto.at_return:  # the arguments the function wrote
                args = ", ".join(self._return_texts(event, proto, value))
        self._emit(event, f"{name}({args}) = {result}", value)

    def _entry_text(self, event: Event, proto: Prototype, raw: List[int], i: int) -> Optional[str]:
        """Argument ``i`` as shown at the entry, or None when it is known only at the return."""
        arg = proto.args[i]
        if arg.output or arg.size_from == "retval":
            return None
        return self._render(event, proto, raw, i, None)

    def _return_texts(self, event: Event, proto: Prototype, retval: int) -> List[str]:
        raw, texts = event.data["raw"], event.data["texts"]
        return [self._render(event, proto, raw, i, retval) if t is None else t for i, t in enumerate(texts)]

    def _render(self, event: Event, proto: Prototype, raw: List[int], i: int, retval: Optional[int]) -> str:
        arg = proto.args[i]
        if arg.size_from is None:
            return arg.render(raw[i], event.read_string)
        if arg.size_from == "retval":
            length = s64(retval or 0)
        else:  # argN
            n = int(arg.size_from[3:])
            length = s64(raw[n - 1]) if 0 < n <= len(raw) else 0
        return sized_string(raw[i], length, event.read, self.strsize)

    def _emit(self, event: Event, line: str, value: Optional[int]) -> None:
        """The ltrace line; with --json, -c, --hist or chrome, a record of the call (its line in
        ``text``, ``ret``, the duration of a returned call), so -c counts calls as ltrace -c does."""
        out = self.output
        if out.fmt == "text":
            out.line(line)
            return
        rec = out.record(event, [])
        rec.kind, rec.extra = "call", {"text": line, "ret": value}
        out.emit(rec)
