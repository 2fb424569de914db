"""Trace output: the line formats and where they go.

Lines are written through one buffered text stream. When it is a terminal the stream is flushed
after every line; otherwise the event loop flushes it when it has been idle or at most every
0.2 s (``Output.tick``), and always before utrace exits.
"""

from __future__ import annotations

import sys
import time
from typing import IO, TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from .handlers import Event


class Output:
    def __init__(self, stream: Optional[IO[str]] = None, t0: Optional[float] = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.t0 = time.monotonic() if t0 is None else t0
        try:
            self.interactive = self.stream.isatty()
        except (AttributeError, ValueError):
            self.interactive = False
        self.pending = False

    def line(self, text: str) -> None:
        self.stream.write(text + "\n")
        if self.interactive:
            self.stream.flush()
        else:
            self.pending = True

    def event_line(self, event: Event, fields: str) -> None:
        """``COMM-TID SECONDS: EVENT: (LOCATION) FIELDS``, the kernel probe tracer's layout; for a
        return, the location is ``(CALLER <- FUNCTION)``."""
        where = event.probe.where
        if event.is_return:
            caller = event.thread.process.address_space().describe(event.regs.rip)
            where = f"{caller} <- {where.rsplit('+', 1)[0]}"
        self.line(
            f"{event.comm}-{event.tid} {event.timestamp - self.t0:.6f}: {event.probe.name}: ({where}) {fields}"
        )

    def message(self, text: str) -> None:
        """A note from utrace itself (pending probes, detach), always shown promptly."""
        self.stream.write(f"utrace: {text}\n")
        self.stream.flush()

    def flush(self) -> None:
        if self.pending:
            try:
                self.stream.flush()
            except BrokenPipeError:
                pass
            self.pending = False
