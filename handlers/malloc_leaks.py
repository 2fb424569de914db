"""malloc_leaks: heap blocks still allocated when tracing ends, grouped by the stack that allocated them.

Like bcc's ``memleak``, for one program and without root: utrace probes ``malloc``, ``calloc`` and
``realloc`` (entry and return) and ``free`` (entry), in the definition the program binds to (libc's,
or an allocator linked into the executable or preloaded, as ld.so would choose). At each allocation
it takes the stack (``Event.stack``, symbolized frames) and, at the return, files the block under
the pointer returned; ``free`` forgets it (``free(NULL)`` and blocks allocated before tracing began
are ignored); ``realloc`` forgets the old block and files the new one (``realloc(NULL, n)`` is a
malloc, ``realloc(p, 0)`` a free, a failed ``realloc`` keeps the old block). When the program exits,
or utrace detaches (``-p PID`` with Ctrl-C or ``--duration``), the blocks still live are printed per
allocation stack, the largest total first: the number of blocks, their bytes, then the frames.

Run it::

    utrace --handler handlers/malloc_leaks.py -- ./app [ARGS]
    utrace --handler handlers/malloc_leaks.py -p 1234 --duration 10
    UTRACE_LEAKS_DEPTH=16 utrace --handler handlers/malloc_leaks.py -o leaks.txt -- ./app

The stack depth (frames kept per allocation, the allocator's own frame #0 included) is 8; set
``UTRACE_LEAKS_DEPTH`` or pass ``MallocLeaks(depth=...)`` from the API. Each allocation costs two
ptrace stops and one stack unwind (roughly 50 to 100 µs), so a program that allocates millions of
blocks runs visibly slower. Other allocators (``posix_memalign``, ``aligned_alloc``, ``mmap``, C++
``new`` when it does not end in ``malloc``) are not followed.

Example (``samples/plug_leaky.c``; its output, then the report on stderr)::

    plug_leaky: done
    malloc_leaks: 6 blocks, 4314 bytes still allocated at exit, from 3 stacks (60 allocations, 54 frees)

    1 block, 4000 bytes, allocated at:
      #0  0x00007f59714c7130 realloc+0x0 (libc.so.6) ./malloc/malloc.c:3400
      #1  0x000055931f7ec25f grow+0x35 (plug_leaky) samples/plug_leaky.c:41
      #2  0x000055931f7ec33e sequence+0x8c (plug_leaky) samples/plug_leaky.c:63
      #3  0x000055931f7ec478 main+0x92 (plug_leaky) samples/plug_leaky.c:89
      #4  0x00007f597145524a __libc_start_call_main+0x7a (libc.so.6) ../sysdeps/nptl/libc_start_call_main.h:58
      #5  0x00007f5971455305 __libc_start_main+0x85 (libc.so.6) ../csu/libc-start.c:360
      #6  0x000055931f7ec101 _start+0x21 (plug_leaky)

    3 blocks, 300 bytes, allocated at:
      #0  0x00007f59714c6930 malloc+0x0 (libc.so.6) ./malloc/malloc.c:3288
      #1  0x000055931f7ec1db leak_a+0x12 (plug_leaky) samples/plug_leaky.c:22
      #2  0x000055931f7ec2d9 sequence+0x27 (plug_leaky) samples/plug_leaky.c:60
      ...

    2 blocks, 14 bytes, allocated at:
      #0  0x00007f59714c76e0 __libc_calloc+0x0 (libc.so.6) ./malloc/malloc.c:3629
      #1  0x000055931f7ec20e leak_b+0x13 (plug_leaky) samples/plug_leaky.c:29
      ...

Written only against utrace's public API (``utrace.Tracer.add_probe``, ``utrace.handlers.Plugin``,
``utrace.Event``); see handlers/README.md.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import utrace
from utrace.handlers import Plugin

if TYPE_CHECKING:
    from utrace import Event, Probe, Tracer

DEFAULT_DEPTH = 8
DEPTH_VARIABLE = "UTRACE_LEAKS_DEPTH"

StackKey = Tuple[int, ...]  # the frames' pcs: equal keys, equal stacks (in one program)


# (Not dataclasses: utrace --handler does not register the plugin's module in sys.modules,
# which @dataclass needs.)
class Block(NamedTuple):
    """A live allocation: its size and the stack that allocated it."""

    size: int
    stack: StackKey


class Group:
    """The live blocks allocated by one stack."""

    __slots__ = ("stack", "count", "size")

    def __init__(self, stack: StackKey) -> None:
        self.stack = stack
        self.count = 0
        self.size = 0


class MallocLeaks(Plugin):
    """Live heap blocks at exit or detach, grouped by allocation stack, largest total first."""

    def __init__(self, depth: Optional[int] = None) -> None:
        self.depth = depth if depth is not None else depth_from_environment()
        if self.depth < 1:
            raise utrace.UsageError(f"malloc_leaks: the stack depth must be at least 1, not {self.depth}")
        self.live: Dict[Tuple[int, int], Block] = {}  # (pid, address) -> block
        self.frames: Dict[StackKey, List[str]] = {}  # each distinct stack, formatted once
        self.allocations = 0
        self.frees = 0
        self.probes: List[Probe] = []
        self.tracer: Optional[Tracer] = None
        self._entry: Dict[str, Callable[[Event], None]] = {
            "malloc": self._malloc,
            "calloc": self._calloc,
            "realloc": self._realloc,
            "free": self._free,
        }

    def install(self, tracer: Tracer, targets: Sequence[str]) -> None:
        if targets:
            raise utrace.UsageError(
                f"malloc_leaks takes no PROBE (got {' '.join(targets)}): it probes malloc, calloc, realloc "
                "and free itself"
            )
        self.tracer = tracer
        for name in ("malloc", "calloc", "realloc"):
            self.probes.append(tracer.add_probe(name, self, name=name, ret=True))
        self.probes.append(tracer.add_probe("free", self, name="free"))

    # --- hits ---------------------------------------------------------------------------------------
    def on_entry(self, event: Event) -> None:
        self._entry[event.probe.name](event)

    def _malloc(self, event: Event) -> None:
        self._allocating(event, event.arg(1))

    def _calloc(self, event: Event) -> None:
        self._allocating(event, event.arg(1) * event.arg(2))

    def _realloc(self, event: Event) -> None:
        old = event.arg(1)
        # Forget the old block now: once realloc has freed it, another thread may get the same
        # address from malloc before this call's return is seen. A failed realloc puts it back.
        event.data["old"] = (old, self.live.pop((event.pid, old), None)) if old else None
        self._allocating(event, event.arg(2))

    def _free(self, event: Event) -> None:
        address = event.arg(1)
        if address and self.live.pop((event.pid, address), None) is not None:
            self.frees += 1

    def _allocating(self, event: Event, size: int) -> None:
        event.data["size"] = size
        event.data["stack"] = self._stack_key(event)

    def on_return(self, event: Event) -> None:
        address = event.retval or 0
        size = event.data["size"]
        old = event.data.get("old")
        if address:
            key = (event.pid, address)
            if key not in self.live:  # else a nested call's block: realloc(NULL, n) jumps to malloc
                self.allocations += 1
            self.live[key] = Block(size, event.data["stack"])
            if old is not None and old[1] is not None:
                self.frees += 1
        elif old is not None and old[1] is not None:
            if size == 0:
                self.frees += 1  # realloc(p, 0) freed p
            else:
                self.live[(event.pid, old[0])] = old[1]  # realloc failed: p is still allocated

    def _stack_key(self, event: Event) -> StackKey:
        try:
            frames = event.stack(self.depth)
        except (utrace.UtraceError, OSError):
            frames = []
        key = tuple(frame.pc for frame in frames) or (event.address,)
        if key not in self.frames:
            self.frames[key] = [frame.format(i) for i, frame in enumerate(frames)] or [
                f"#0  {event.address:#018x} {event.symbol} (stack not available)"
            ]
        return key

    # --- the report ---------------------------------------------------------------------------------
    def groups(self) -> List[Group]:
        """The live blocks per allocation stack, the most bytes first (then the most blocks)."""
        by_stack: Dict[StackKey, Group] = {}
        for block in self.live.values():
            group = by_stack.setdefault(block.stack, Group(block.stack))
            group.count += 1
            group.size += block.size
        return sorted(by_stack.values(), key=lambda g: (-g.size, -g.count))

    def finish(self) -> None:
        groups = self.groups()
        count = sum(g.count for g in groups)
        size = sum(g.size for g in groups)
        detached = self.tracer is not None and self.tracer.detached
        when = "at detach (the program runs on)" if detached else "at exit"
        self.output.line(
            f"malloc_leaks: {plural(count, 'block')}, {size} bytes still allocated {when}, from "
            f"{plural(len(groups), 'stack')} ({plural(self.allocations, 'allocation')}, "
            f"{plural(self.frees, 'free')})"
        )
        missed = sum(p.missed for p in self.probes)
        if missed:
            self.output.line(
                f"malloc_leaks: {plural(missed, 'allocator return')} not seen (longjmp, deep nesting or "
                "detach): those blocks are not counted"
            )
        for group in groups:
            self.output.line("")
            self.output.line(f"{plural(group.count, 'block')}, {group.size} bytes, allocated at:")
            for frame in self.frames[group.stack]:
                self.output.line("  " + frame)


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def depth_from_environment() -> int:
    text = os.environ.get(DEPTH_VARIABLE, "")
    if not text:
        return DEFAULT_DEPTH
    try:
        return int(text)
    except ValueError:
        raise utrace.UsageError(f"{DEPTH_VARIABLE} must be a number of frames, not {text!r}") from None
