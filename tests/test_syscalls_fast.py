"""The fast paths of utrace.syscalls: exact lines for common records, and has_exit_capture.

The formatter caches a plan per call and prints most arguments without a RenderCtx; these lines are
what it printed before (and what strace prints), byte for byte. test_syscall_decode checks the same
code against strace itself on real programs.
"""

from __future__ import annotations

import random
from typing import Optional

import pytest

from utrace.syscalls import (
    SYSCALL_NAMES,
    SYSCALL_NUMBERS,
    SyscallRecord,
    capture_entry,
    capture_exit,
    fmt,
    format_call,
    format_entry,
    format_resumed,
    has_exit_capture,
)
from utrace.syscalls.capture import EXIT_RULES
from utrace.syscalls.kinds import DYNAMIC_EXIT_KINDS, EXIT_KINDS
from utrace.syscalls.signatures import prototype

ADDR = 0x7FFC1000
AT_FDCWD = 2**64 - 100
BINARY = b'a\tb\nc\\d"e\x00\x01\x7f\x80\xe9\xff\x001end'
PASSWD = b"root:x:0:0:root:/root:/bin/bash\n" * 4
STAT = bytes(24) + (0o100644).to_bytes(4, "little") + bytes(20) + (1234).to_bytes(8, "little") + bytes(88)


def rec(name, args, ret, cfu=(), ctu=(), injected=None) -> SyscallRecord:
    args = tuple(args) + (0,) * (6 - len(args))
    return SyscallRecord(1, 1, SYSCALL_NUMBERS[name], name, args, 0.0, list(cfu), list(ctu), ret, injected)


@pytest.mark.parametrize(
    "record, strsize, expected",
    [
        (
            rec("write", (1, ADDR, len(BINARY)), len(BINARY), cfu=[(ADDR, BINARY)]),
            32,
            r'write(1, "a\tb\nc\\d\"e\0\1\177\200\351\377\0001end", 20) = 20',
        ),
        (
            rec("write", (1, ADDR, len(BINARY)), len(BINARY), cfu=[(ADDR, BINARY)]),
            8,
            r'write(1, "a\tb\nc\\d\""..., 20) = 20',
        ),
        (
            rec("write", (3, ADDR, 50), 50, cfu=[(ADDR, b"0123456789" * 5)]),
            32,
            'write(3, "01234567890123456789012345678901"..., 50) = 50',
        ),
        (rec("write", (3, ADDR, 7), 7, cfu=[(ADDR, b"utrace\n")]), 32, r'write(3, "utrace\n", 7) = 7'),
        (rec("getppid", (), 1234), 32, "getppid() = 1234"),
        (
            rec("openat", (AT_FDCWD, ADDR, 0o2001101, 0o644), 3, cfu=[(ADDR, b"/tmp/x.log\0")]),
            32,
            'openat(AT_FDCWD, "/tmp/x.log", O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0644) = 3',
        ),
        (
            rec("openat", (AT_FDCWD, ADDR, 0o2000000), -2, cfu=[(ADDR, b"/nonexistent\0")]),
            32,
            'openat(AT_FDCWD, "/nonexistent", O_RDONLY|O_CLOEXEC) = -1 ENOENT (No such file or directory)',
        ),
        (
            rec("read", (3, ADDR, 4096), 128, ctu=[(ADDR, PASSWD)]),
            32,
            r'read(3, "root:x:0:0:root:/root:/bin/bash\n"..., 4096) = 128',
        ),
        (rec("read", (3, ADDR, 4096), -14), 32, "read(3, 0x7ffc1000, 4096) = -1 EFAULT (Bad address)"),
        (
            rec("fstat", (3, ADDR), 0, ctu=[(ADDR, STAT)]),
            32,
            "fstat(3, {st_mode=S_IFREG|0644, st_size=1234, ...}) = 0",
        ),
        (
            rec("mmap", (0, 8192, 3, 0x22, 2**64 - 1, 0), 0x7F0000000000),
            32,
            "mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000",
        ),
        (rec("close", (3,), -9, injected="deny"), 32, "close(3) = -1 EBADF (Bad file descriptor) (INJECTED)"),
        (rec("close", (3,), None), 32, "close(3) = ?"),
    ],
)
def test_lines(record, strsize, expected):
    assert format_call(record, strsize) == expected
    assert format_call(record, strsize) == expected  # the second time from the cached plan and texts


def test_descriptor_paths():
    r = rec("read", (3, ADDR, 4096), 128, ctu=[(ADDR, PASSWD)])
    line = format_call(r, 32, lambda fd: "/etc/passwd")
    assert line == r'read(3</etc/passwd>, "root:x:0:0:root:/root:/bin/bash\n"..., 4096) = 128'
    r = rec("close", (3,), 0)
    assert format_call(r, 32, lambda fd: None, lambda fd: "/dev/null") == "close(3</dev/null>) = 0"


def test_unfinished_halves():
    pending = rec("read", (3, ADDR, 4096), None)
    done = rec("read", (3, ADDR, 4096), 128, ctu=[(ADDR, PASSWD)])
    assert format_entry(pending) == "read(3, "
    assert format_resumed(done) == r'<... read resumed>"root:x:0:0:root:/root:/bin/bash\n"..., 4096) = 128'
    assert format_entry(rec("getppid", (), None)) == "getppid("
    assert format_resumed(rec("getppid", (), 7)) == "<... getppid resumed>) = 7"


def reference_escape(data: bytes) -> str:
    """strace's string_quote, byte by byte: what fmt.escape computes with str.translate."""
    simple = {ord('"'): '\\"', ord("\\"): "\\\\", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v"}
    out = []
    for i, c in enumerate(data):
        after: Optional[int] = data[i + 1] if i + 1 < len(data) else None
        if c in simple:
            out.append(simple[c])
        elif 0x20 <= c < 0x7F:
            out.append(chr(c))
        elif after is not None and 0x30 <= after <= 0x37:
            out.append(f"\\{c:03o}")
        else:
            out.append(f"\\{c:o}")
    return "".join(out)


def test_escape_matches_the_byte_by_byte_rules():
    rng = random.Random(7)
    samples = [bytes([a, b]) for a in range(256) for b in (0, 0x30, 0x37, 0x38, 0x41, 0x5C, 0x80)]
    samples += [
        bytes(rng.choice(b'\0\1\t\n"\\0178a \x7f\x80\xff') for _ in range(rng.randrange(40)))
        for _ in range(2000)
    ]
    for data in samples:
        assert fmt.escape(data) == reference_escape(data), data
        assert fmt.escape(data, force_hex=True) == "".join(f"\\x{c:02x}" for c in data)


def numbers(*names: str):
    return [SYSCALL_NUMBERS[n] for n in names]


@pytest.mark.parametrize(
    "nr",
    numbers(
        "read", "fstat", "pipe2", "wait4", "ioctl", "recvmsg", "getsockopt", "nanosleep", "fcntl", "prctl",
        "recvfrom", "ptrace", "bpf", "io_uring_enter", "io_uring_setup", "io_uring_register", "futex",
    ),
)  # fmt: skip
def test_calls_that_copy_out_have_an_exit_capture(nr):
    assert has_exit_capture(nr), SYSCALL_NAMES[nr]


@pytest.mark.parametrize(
    "nr", numbers("write", "getppid", "close", "openat", "mmap", "munmap", "lseek", "kill")
)
def test_calls_that_copy_nothing_out_have_none(nr):
    assert not has_exit_capture(nr), SYSCALL_NAMES[nr]


def test_unknown_numbers_have_an_exit_capture():
    assert has_exit_capture(999) and has_exit_capture(-1) and has_exit_capture(0x40000000)


def test_has_exit_capture_covers_every_exit_rule_and_decoder():
    """Whatever capture_exit captures or the formatter decodes from copy_to_user makes it True."""
    out_kinds = set(EXIT_RULES) | EXIT_KINDS | DYNAMIC_EXIT_KINDS | {"clone", "prctl", "pollfds", "fdset"}
    assert EXIT_KINDS | DYNAMIC_EXIT_KINDS <= set(EXIT_RULES)
    for nr, name in SYSCALL_NAMES.items():
        specs = prototype(name) or ()
        if any(spec.kind in out_kinds for spec in specs):
            assert has_exit_capture(nr), name


@pytest.mark.parametrize("seed", range(2))
def test_calls_without_exit_capture_capture_nothing_at_exit(seed):
    rng = random.Random(seed)

    def read(addr: int, n: int) -> bytes:
        return bytes(rng.randrange(256) for _ in range(min(n, 64))) + bytes(max(0, n - 64))

    for nr in SYSCALL_NAMES:
        if has_exit_capture(nr):
            continue
        for _ in range(5):
            args = tuple(
                rng.choice([0, 1, 3, 5, 16, 0x7FFC1000, 2**64 - 1, rng.randrange(2**64)]) for _ in range(6)
            )
            assert capture_exit(nr, args, rng.choice([0, 1, 4096, -4]), read, read) == []
            capture_entry(nr, args, read, read)
