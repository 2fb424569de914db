"""utrace as an ordinary user: tracing one's own processes works; another user's is refused clearly.

The tests fork and drop to uid/gid 65534 (nobody) in the child, then use the already-imported
package (the interpreter's own files may not be readable by nobody, e.g. under /root), so the code
path is exactly the one an unprivileged user runs. Root is needed to switch users.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess

import pytest

import utrace
from utrace import cli

NOBODY = 65534

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="switching to an unprivileged user needs root")


class Count(utrace.Handler):
    def __init__(self) -> None:
        self.hits = 0

    def on_entry(self, ev: utrace.Event) -> None:
        self.hits += 1


def as_nobody(fn) -> str:
    """Run ``fn()`` in a child with uid/gid nobody; return what it returned (a str) or its error."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(r)
        try:
            os.setgroups([])
            os.setresgid(NOBODY, NOBODY, NOBODY)
            os.setresuid(NOBODY, NOBODY, NOBODY)
            result = str(fn())
        except BaseException as err:  # noqa: BLE001 - report anything to the parent
            result = f"ERROR {type(err).__name__}: {err}"
        os.write(w, result.encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        out = f.read()
    os.waitpid(pid, 0)
    return out


@pytest.fixture(scope="module")
def warm(sample):
    """Trace once as root first so every lazily imported module is loaded before the uid switch."""
    exe = sample("checksum")
    with utrace.launch([exe, "3"], output=utrace.engine.Output(io.StringIO())) as t:
        t.add_probe("work", Count())
        t.add_probe("libc:malloc", Count())
        t.run()
    return exe


def test_nobody_launches_and_traces_its_own_program(warm):
    def trace() -> int:
        counter = Count()
        with utrace.launch([warm, "250"], output=utrace.engine.Output(io.StringIO())) as t:
            t.add_probe("work", counter)
            status = t.run()
        return counter.hits * 1000 + status

    assert as_nobody(trace) == str(250 * 1000 + 0)


def test_nobody_traces_system_calls_one_stop_each(warm):
    """The seccomp launch and the result ring as an ordinary user: the filter needs NO_NEW_PRIVS
    (set in the child), the area an ordinary mmap."""
    from utrace.systrace import SysOptions

    def trace() -> str:
        opts = SysOptions(quiet=True)
        with utrace.launch(
            [warm, "50"], syscalls=opts, probes=False, output=utrace.engine.Output(io.StringIO())
        ) as t:
            status = t.run()
            st = t.systrace
            assert st is not None
            writes = [r for r in st.records if r.name == "write"]
        return (
            f"{status} {st.one_stop_calls > 10} {bool(writes) and all(r.ret and r.ret > 0 for r in writes)}"
        )

    assert as_nobody(trace) == "0 True True"


def test_nobody_attaches_to_its_own_process(warm):
    def trace() -> str:
        target = subprocess.Popen([warm, "100000", "200"], stdout=subprocess.PIPE)
        try:
            target.stdout.readline()
            counter = Count()
            with utrace.attach(target.pid, output=utrace.engine.Output(io.StringIO())) as t:
                t.add_probe("work", counter)
                t.run(duration=0.5)
            alive = target.poll() is None
            return f"{counter.hits > 0} {alive}"
        finally:
            target.kill()
            target.wait()
            target.stdout.close()

    assert as_nobody(trace) == "True True"


def test_nobody_cannot_trace_another_users_process(warm):
    victim = subprocess.Popen(["sleep", "30"])
    try:

        def attach() -> str:
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                code = cli.main(["-p", str(victim.pid), "malloc"])
            return f"{code} {err.getvalue()}"

        out = as_nobody(attach)
        code, message = out.split(" ", 1)
        assert code == "1"
        assert message.startswith(f"utrace: cannot trace process {victim.pid}: ")
        assert "another user" in message and "CAP_SYS_PTRACE" in message
        assert len(message.strip().splitlines()) == 1
        # nothing changed in the victim: not traced, still running
        with open(f"/proc/{victim.pid}/status") as f:
            assert "TracerPid:\t0\n" in f.read()
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


def test_nobody_lists_its_own_functions_not_another_users(warm):
    """-l -p PID only reads /proc/PID/maps and the mapped files: allowed for one's own process, a
    clear one-line refusal (exit 1) for another user's."""
    victim = subprocess.Popen(["sleep", "30"])
    try:

        def listing() -> str:
            own = subprocess.Popen(["sleep", "30"])
            try:
                out, err = io.StringIO(), io.StringIO()
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                    mine = cli.main(["-l", "-p", str(own.pid), "libc:nanosleep"])
                    theirs = cli.main(["-l", "-p", str(victim.pid), "libc:nanosleep"])
                return f"{mine} {theirs} {out.getvalue().split()} {err.getvalue().strip()}"
            finally:
                own.kill()
                own.wait()

        mine, theirs, listed, message = as_nobody(listing).split(" ", 3)
        assert (mine, theirs, listed) == ("0", "1", "['libc.so.6:nanosleep']")
        assert (
            message == f"utrace: cannot trace process {victim.pid}: cannot read /proc/{victim.pid}/maps "
            "(Permission denied)"
        )
    finally:
        victim.kill()
        victim.wait()
