"""The predefined handlers from the command line: GETDATA (hex dump and C string), STACKTRACE
(against gdb's ``bt``, in the program and inside libc), and bad handler arguments, which are usage
errors caught before anything starts."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .test_api import nm_address, running
from .test_core import code_differs_from_file, untraced

PATTERN = bytes((i * 7 + 3) & 0xFF for i in range(64))  # api_events fills `pattern` with this
# an event line; a STACKTRACE event has no fields after the location
HEAD = re.compile(
    r"^(?P<comm>\S+)-(?P<tid>\d+) (?P<ts>\d+\.\d{6}): (?P<event>\S+): \((?P<where>[^)]*)\)(?: (?P<rest>.*))?$"
)
DUMP_LINE = re.compile(r"^    (?P<addr>[0-9a-f]{16})  (?P<hex>(?:[0-9a-f]{2} ?)+?)\s+\|(?P<text>.*)\|$")
FRAME = re.compile(
    r"^  #(?P<n>\d+)\s+0x(?P<pc>[0-9a-f]{16}) (?:(?P<sym>\S+)\+0x[0-9a-f]+ \((?P<mod>[^)]+)\)|\?\?.*?)"
    r"(?: (?P<file>\S+):(?P<line>\d+))?$"
)


def events(text: str) -> list[tuple[re.Match, list[str]]]:
    """Trace lines with the indented lines (dump or stack) that follow each."""
    out: list[tuple[re.Match, list[str]]] = []
    for line in text.splitlines():
        m = HEAD.match(line)
        if m:
            out.append((m, []))
        elif out and line.startswith("  "):
            out[-1][1].append(line)
    return out


def stacks(text: str, event: str) -> list[list[re.Match]]:
    result = []
    for head, lines in events(text):
        if head["event"] == event:
            frames = [FRAME.match(line) for line in lines]
            assert all(frames), lines
            result.append(frames)
    return result


def hexdump_ascii(data: bytes) -> list[str]:
    """The |ascii| column of ``hexdump -C`` (the oracle), or computed the same way without it."""
    if shutil.which("hexdump") is None:
        return [
            "".join(chr(b) if 32 <= b < 127 else "." for b in data[i : i + 16])
            for i in range(0, len(data), 16)
        ]
    out = subprocess.run(["hexdump", "-C"], input=data, capture_output=True).stdout.decode()
    return [line.split("|")[1] for line in out.splitlines() if "|" in line]


# --- GETDATA ---------------------------------------------------------------------------------------
def test_getdata_hex_dump_of_a_known_buffer(sample, utrace_cli, tmp_path):
    exe = sample("api_events_nopie")  # no PIE: nm's address is the address in the process
    trace = tmp_path / "trace"
    res = utrace_cli("-o", str(trace), "-H", "GETDATA:arg1:64", "use_buf", "--", exe, "args")
    assert res.returncode == 0, res.stderr
    assert res.stdout == untraced(exe, "args").stdout
    ((head, lines),) = events(trace.read_text())
    addr = nm_address(exe, "pattern")
    assert head["event"] == "use_buf" and head["where"] == "api_events_nopie:use_buf+0x0"
    assert head["rest"] == f"arg1={addr:#x} len=64 data="
    dump = [DUMP_LINE.match(line) for line in lines]
    assert all(dump) and len(dump) == 4, lines
    assert [int(m["addr"], 16) for m in dump] == [addr + 16 * i for i in range(4)]
    assert bytes.fromhex("".join(m["hex"] for m in dump)) == PATTERN
    assert [m["text"] for m in dump] == hexdump_ascii(PATTERN)


@pytest.mark.parametrize("source", ["arg1", "rdi", "%di", "edi", "ABSOLUTE"])
def test_getdata_address_sources_agree(sample, utrace_cli, tmp_path, source):
    exe = sample("api_events_nopie")
    addr = nm_address(exe, "pattern")
    if source == "ABSOLUTE":
        source = f"{addr:#x}"  # 0xADDRESS, as `nm` prints it (lower-case hex)
    trace = tmp_path / "trace"
    res = utrace_cli("-o", str(trace), "--json", "-H", f"GETDATA:{source}:16", "use_buf", "--", exe, "args")
    assert res.returncode == 0, res.stderr
    (record,) = [json.loads(line) for line in trace.read_text().splitlines()]
    assert record["args"] == {source: addr, "len": 16, "data": PATTERN[:16].hex()}


def test_getdata_str_escapes_like_strace(sample, utrace_cli, tmp_path):
    exe = sample("api_events_nopie")
    trace = tmp_path / "trace"
    res = utrace_cli("-o", str(trace), "-H", "GETDATA:arg1:str", "show", "--", exe, "args")
    assert res.returncode == 0, res.stderr
    assert res.stdout == untraced(exe, "args").stdout
    got = [head["rest"] for head, _ in events(trace.read_text())]
    greeting, quoted = nm_address(exe, "greeting"), nm_address(exe, "quoted")
    # `char quoted[] = "say \"hi\"\tnow\n\001"`: printed as strace prints a C string
    assert got == [
        f'arg1={greeting:#x} string="hello from api_events"',
        f'arg1={quoted:#x} string="say \\"hi\\"\\tnow\\n\\1"',
    ]
    trace.unlink()
    res = utrace_cli("-o", str(trace), "-H", "GETDATA:arg1:str:5", "show", "--", exe, "args")
    assert res.returncode == 0, res.stderr
    assert [head["rest"].split(" ", 1)[1] for head, _ in events(trace.read_text())] == [
        'string="hello"...',  # cut at 5 bytes: marked as strace marks a cut string
        'string="say \\""...',
    ]
    trace.unlink()  # exactly as long as the limit: whole, no mark
    res = utrace_cli("-o", str(trace), "-H", "GETDATA:arg1:str:21", "show", "--", exe, "args")
    assert [head["rest"].split(" ", 1)[1] for head, _ in events(trace.read_text())] == [
        'string="hello from api_events"',
        'string="say \\"hi\\"\\tnow\\n\\1"',
    ]


# --- STACKTRACE --------------------------------------------------------------------------------------
GDB_BT = re.compile(
    r"^#(?P<n>\d+)\s+(?:0x[0-9a-f]+ in )?(?P<name>\S+) \(.*\)(?: at (?P<file>\S+):(?P<line>\d+))?"
)


def gdb_bt(exe: str, *commands: str) -> list[tuple[str, str, int]]:
    """gdb's ``bt`` (name, source file name, line) after COMMANDS, for the frames of the sample's own
    source (gdb adds inlined and tail-call frames inside libc that are not on the machine stack)."""
    gdb = shutil.which("gdb")
    if gdb is None:
        pytest.skip("gdb is not installed: its bt is the oracle of the stack traces")
    argv = [gdb, "-batch", "-nx", "-ex", "set startup-with-shell off"]
    for command in (*commands, "bt"):
        argv += ["-ex", command]
    proc = subprocess.run([*argv, exe], capture_output=True, text=True, timeout=120)
    frames = []
    for line in proc.stdout.splitlines():
        m = GDB_BT.match(line)
        if m and m["file"] and Path(m["file"]).name == "api_stack.c":
            frames.append((m["name"], "api_stack.c", int(m["line"])))
    if not frames:
        pytest.fail(f"no frames from gdb:\n{proc.stdout}\n{proc.stderr}")
    assert frames[-1][0] == "main"
    return frames


def own_frames(frames: list[re.Match]) -> list[tuple[str, str, int]]:
    return [
        (f["sym"], Path(f["file"]).name, int(f["line"]))
        for f in frames
        if f["mod"] == "api_stack" and f["file"]
    ]


def stacktrace(utrace_cli, tmp_path: Path, exe: str, probe: str, handler: str = "STACKTRACE") -> list:
    trace = tmp_path / f"trace-{probe.replace(':', '_')}"
    res = utrace_cli("-o", str(trace), "-H", handler, probe, "--", exe)
    assert res.returncode == 0, res.stderr
    assert res.stdout == untraced(exe).stdout == "stack done 1\n"
    return stacks(trace.read_text(), probe.split(":")[-1])


def test_stacktrace_matches_gdb_bt_without_frame_pointers(sample, utrace_cli, tmp_path):
    exe = sample("api_stack")  # -O2 -fomit-frame-pointer -g
    expected = gdb_bt(exe, "break leaf", "run")
    assert [name for name, _, _ in expected] == ["leaf", "middle", "outer", "main"]
    (frames,) = stacktrace(utrace_cli, tmp_path, exe, "leaf")
    names = [f["sym"] for f in frames]
    assert names[: len(expected)] == [name for name, _, _ in expected]
    # the callers' lines are the lines of their calls, as gdb shows them (frame 0: gdb stops after
    # the prologue, utrace at the entry)
    assert own_frames(frames)[1:4] == expected[1:]
    assert names[-1] == "_start"  # gdb stops at main; utrace goes on into libc to _start


def test_stacktrace_depth_limit(sample, utrace_cli, tmp_path):
    exe = sample("api_stack")
    (frames,) = stacktrace(utrace_cli, tmp_path, exe, "leaf", "STACKTRACE:2")
    assert [f["sym"] for f in frames] == ["leaf", "middle"]


def test_stacktrace_of_libc_free_called_by_the_program(sample, utrace_cli, tmp_path):
    exe = sample("api_stack")
    expected = gdb_bt(exe, "break api_stack.c:30", "run")  # leaf's free(kept) line
    assert expected[0][:2] == ("leaf", "api_stack.c")
    all_stacks = stacktrace(utrace_cli, tmp_path, exe, "libc:free")
    from_leaf = [s for s in all_stacks if len(s) > 1 and s[1]["sym"] == "leaf"]
    assert len(from_leaf) == 1, [[f["sym"] for f in s] for s in all_stacks]
    frames = from_leaf[0]
    assert frames[0]["mod"] == "libc.so.6" and frames[0]["sym"] in ("free", "__libc_free", "cfree")
    assert own_frames(frames)[:4] == expected


def test_stacktrace_from_a_comparator_called_inside_libc_qsort(sample, utrace_cli, tmp_path):
    exe = sample("api_stack")
    expected = gdb_bt(exe, "break cmp", "run")  # cmp, then (past libc's frames) leaf .. main
    assert [name for name, _, _ in expected] == ["cmp", "leaf", "middle", "outer", "main"]
    all_stacks = stacktrace(utrace_cli, tmp_path, exe, "cmp")
    assert len(all_stacks) >= 5  # qsort of six ints
    for frames in all_stacks:
        names = [f["sym"] for f in frames]
        leaf = names.index("leaf")
        inside = frames[1:leaf]
        assert inside and all(f["mod"] == "libc.so.6" and f["sym"] for f in inside), names
        assert any("qsort" in f["sym"] for f in inside), names
        assert [name for name, _, _ in own_frames(frames)][:5] == [name for name, _, _ in expected]
        assert own_frames(frames)[1:5] == expected[1:]


# --- bad handler arguments ---------------------------------------------------------------------------
BAD_SPECS = [
    "GETDATA:bogus:1",
    "STACKTRACE:x",
    "NOPE",
    "GETDATA",
    "GETDATA:arg1:0",
    "GETDATA:arg1:lots",
    "GETDATA:arg0:8",
    "GETDATA:arg1:8:16:32",
    "STACKTRACE:0",
]


@pytest.mark.parametrize("spec", BAD_SPECS)
def test_bad_handler_arguments_are_usage_errors_before_launch(utrace_cli, tmp_path, spec):
    marker = tmp_path / "started"
    res = utrace_cli("-H", spec, "main", "--", "touch", str(marker))
    assert res.returncode == 2
    assert res.stderr.startswith("utrace: ") and len(res.stderr.splitlines()) == 1, res.stderr
    assert not marker.exists(), "the program was started"


@pytest.mark.parametrize("spec", ["GETDATA:bogus:1", "STACKTRACE:x", "NOPE"])
def test_bad_handler_arguments_leave_an_attach_target_untouched(sample, utrace_cli, spec):
    exe = sample("api_events")
    with running([exe, "calls", "100000", "0", "1000"]) as target:  # runs for minutes: killed after
        res = utrace_cli("-p", str(target.pid), "-H", spec, "step")
        assert res.returncode == 2
        assert target.poll() is None
        with open(f"/proc/{target.pid}/status") as f:
            assert "TracerPid:\t0\n" in f.read()
        assert not code_differs_from_file(target.pid, "step")
