"""The handler plugins of handlers/ on real programs under real ptrace, through the CLI as the README
shows them (``utrace --handler handlers/NAME.py ...``) and through the API.

- malloc_leaks: samples/plug_leaky.c leaves a known set of blocks live (sizes, counts, allocating
  functions); the report must list exactly those, largest first, and the program must behave as
  untraced (output, exit status).
- func_latency: samples/plug_latency.c calls slow() (1.5 ms) 5 times and fast() 100 times; the
  histograms must count every call, in bpftrace's layout, slow calls at 1 ms and more.
- file_opens: samples/plug_files.c and cat, with strace's openat lines as the oracle.
"""

from __future__ import annotations

import ast
import importlib.util
import io
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Callable, Dict, List, NamedTuple, Tuple

import pytest

import utrace
from utrace.handlers import Event, Handler, Plugin
from utrace.output import Output

from .conftest import ROOT

HANDLERS = ROOT / "handlers"
PLUGIN_FILES = ("malloc_leaks.py", "func_latency.py", "file_opens.py")
Cli = Callable[..., subprocess.CompletedProcess]


def load(name: str) -> ModuleType:
    """A handlers/ file as a module, for the API tests."""
    module_name = f"handlers_{name}"
    spec = importlib.util.spec_from_file_location(module_name, HANDLERS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def untraced(argv: List[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, **kwargs)


# --------------------------------------------------------------------------------------------------
# Every plugin: a documented module, one Plugin class, only the public API


@pytest.mark.parametrize("filename", PLUGIN_FILES)
def test_plugin_file_is_documented_and_uses_only_the_public_api(filename: str) -> None:
    tree = ast.parse((HANDLERS / filename).read_text())
    doc = ast.get_docstring(tree)
    assert doc and "Run it::" in doc and "utrace --handler handlers/" + filename in doc
    assert "Example" in doc or "::\n\n    " in doc
    plugins = [
        node.name for node in tree.body
        if isinstance(node, ast.ClassDef) and any(getattr(b, "id", "") == "Plugin" for b in node.bases)
    ]  # fmt: skip
    assert len(plugins) == 1
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("utrace"):
            assert node.module in ("utrace", "utrace.handlers"), f"{filename} imports {node.module}"
        if isinstance(node, ast.Import):
            assert all(a.name == "utrace" or not a.name.startswith("utrace") for a in node.names)


def test_readme_template_plugin_runs(sample: Callable[[str], str], utrace_cli: Cli, tmp_path: Path) -> None:
    """The complete plugin in handlers/README.md works as shown."""
    text = (HANDLERS / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S)
    assert code is not None
    plugin = tmp_path / "write_bytes.py"
    plugin.write_text(code.group(1))
    exe = sample("plug_leaky")
    res = utrace_cli("--handler", str(plugin), "--", exe)
    assert res.returncode == 3
    assert res.stdout == "plug_leaky: done\n"
    assert re.fullmatch(rf"thread \d+: {len(res.stdout)} bytes written\n", res.stderr)


# --------------------------------------------------------------------------------------------------
# malloc_leaks


class LeakGroup(NamedTuple):
    count: int
    size: int
    functions: List[str]  # the frames' symbols, innermost first


def parse_leaks(report: str) -> Tuple[str, List[LeakGroup]]:
    """The summary line and the groups of a malloc_leaks report."""
    lines = report.splitlines()
    summary = next(line for line in lines if line.startswith("malloc_leaks: "))
    groups: List[LeakGroup] = []
    for line in lines:
        m = re.fullmatch(r"(\d+) blocks?, (\d+) bytes, allocated at:", line)
        if m:
            groups.append(LeakGroup(int(m[1]), int(m[2]), []))
            continue
        m = re.match(r"  #\d+\s+0x[0-9a-f]+ (\S+?)\+0x[0-9a-f]+ ", line)
        if m and groups:
            groups[-1].functions.append(m[1])
    return summary, groups


def check_plug_leaky_groups(groups: List[LeakGroup]) -> None:
    """samples/plug_leaky.c: 4000 bytes from grow()'s realloc, 3 x 100 from leak_a(), 2 x 7 from
    leak_b()'s calloc, in that order, and nothing else."""
    assert [(g.count, g.size) for g in groups] == [(1, 4000), (3, 300), (2, 14)]
    grow, leak_a, leak_b = (g.functions for g in groups)
    assert grow[:2] == ["realloc", "grow"]
    assert leak_a[:2] == ["malloc", "leak_a"]
    assert leak_b[0].endswith("calloc") and leak_b[1] == "leak_b"  # glibc names it __libc_calloc
    for functions in (grow, leak_a, leak_b):
        assert "main" in functions or "sequence" in functions
    assert not {"temp"} & {f for g in groups for f in g.functions}


def test_malloc_leaks_as_documented(sample: Callable[[str], str], utrace_cli: Cli) -> None:
    """``utrace --handler handlers/malloc_leaks.py -- ./app`` from the checkout, as the README says:
    exactly the live blocks, grouped by stack, largest first; the program unchanged."""
    exe = sample("plug_leaky")
    plain = untraced([exe])
    res = utrace_cli("--handler", "handlers/malloc_leaks.py", "--", exe, cwd=ROOT)
    assert (res.returncode, res.stdout) == (plain.returncode, plain.stdout) == (3, "plug_leaky: done\n")
    summary, groups = parse_leaks(res.stderr)
    assert summary.startswith("malloc_leaks: 6 blocks, 4314 bytes still allocated at exit, from 3 stacks")
    check_plug_leaky_groups(groups)
    depths = [len(g.functions) for g in groups]
    assert all(d <= 8 for d in depths) and max(depths) >= 4


def test_malloc_leaks_depth_and_output_file(
    sample: Callable[[str], str], utrace_cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exe = sample("plug_leaky")
    out = tmp_path / "leaks.txt"
    monkeypatch.setenv("UTRACE_LEAKS_DEPTH", "2")
    res = utrace_cli("--handler", str(HANDLERS / "malloc_leaks.py"), "-o", str(out), "--", exe)
    assert res.returncode == 3 and res.stderr == ""
    _, groups = parse_leaks(out.read_text())
    assert [len(g.functions) for g in groups] == [2, 2, 2]
    assert [g.functions[1] for g in groups] == ["grow", "leak_a", "leak_b"]


def test_malloc_leaks_rejects_probes_and_bad_depth(
    sample: Callable[[str], str], utrace_cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    exe = sample("plug_leaky")
    res = utrace_cli("--handler", str(HANDLERS / "malloc_leaks.py"), "malloc", "--", exe)
    assert res.returncode == 2 and "takes no PROBE" in res.stderr
    monkeypatch.setenv("UTRACE_LEAKS_DEPTH", "many")
    res = utrace_cli("--handler", str(HANDLERS / "malloc_leaks.py"), "--", exe)
    assert res.returncode == 2 and "UTRACE_LEAKS_DEPTH" in res.stderr


class StopAt(Handler):
    def __init__(self, tracer: utrace.Tracer) -> None:
        self.tracer = tracer

    def on_entry(self, event: Event) -> None:
        self.tracer.stop()


def test_malloc_leaks_api_attach_and_detach(sample: Callable[[str], str]) -> None:
    """Through the API on a running process: the blocks allocated while attached and still live at
    detach; the program carries on untouched afterwards."""
    leaks = load("malloc_leaks")
    proc = subprocess.Popen(
        [sample("plug_leaky"), "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline() == "ready\n"
        report = io.StringIO()
        plugin = leaks.MallocLeaks(depth=6)
        tracer = utrace.attach(proc.pid, output=Output(report))
        with tracer:
            plugin.attach_output(tracer.output)
            plugin.install(tracer, [])
            checkpoint = tracer.add_probe("checkpoint", StopAt(tracer))
            proc.stdin.write("\n")  # one leak sequence, read once the tracer resumes the program
            proc.stdin.flush()
            assert tracer.run(duration=60) is None  # detached at checkpoint() (60 s: a safety net)
            assert checkpoint.hits == 1
        plugin.finish()
        summary, groups = parse_leaks(report.getvalue())
        assert "4314 bytes still allocated at detach (the program runs on), from 3 stacks" in summary
        check_plug_leaky_groups(groups)
        assert all(len(g.functions) <= 6 for g in groups)
        assert proc.stdout.readline() == "done\n"
        proc.stdin.write("\n")  # untraced now
        proc.stdin.close()
        assert proc.stdout.read() == "done\n"
        assert proc.wait(timeout=30) == 3
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None and not stream.closed:
                stream.close()


# --------------------------------------------------------------------------------------------------
# func_latency

HIST_LINE = re.compile(r"(\(\.\.\., 0\)|\[\d+[KMGT]?\]|\[(\d+)([KMGT]?), \d+[KMGT]?\))\s*$")
SCALE = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class Histogram(NamedTuple):
    buckets: List[Tuple[int, int]]  # (low bound, count)
    summary: str


def parse_histograms(report: str) -> Dict[str, Histogram]:
    """``@usecs[NAME]:`` blocks: bucket lines checked against bpftrace's layout, then the summary."""
    result: Dict[str, Histogram] = {}
    name = ""
    for line in report.splitlines():
        m = re.fullmatch(r"@[un]secs\[(.+)\]:", line)
        if m:
            name = m[1]
            result[name] = Histogram([], "")
        elif name and line.startswith(f"{name}: count"):
            result[name] = result[name]._replace(summary=line)
            name = ""
        elif name:
            label, count, bar = line[:16], line[16:24], line[24:]
            m = HIST_LINE.fullmatch(label)
            assert m, line
            assert re.fullmatch(r" \|@*\s*\|", bar) and len(bar) == 2 + 52 + 1, line
            if m[2]:
                low = int(m[2]) * SCALE[m[3]]
            else:
                low = -1 if label.startswith("(") else int(label.strip()[1:-1])
            result[name].buckets.append((low, int(count)))
    return result


def test_func_latency_histograms(sample: Callable[[str], str], utrace_cli: Cli) -> None:
    exe = sample("plug_latency")
    res = utrace_cli("--handler", "handlers/func_latency.py", "slow", "fast", "--", exe, cwd=ROOT)
    assert res.returncode == 0 and res.stdout == ""
    hists = parse_histograms(res.stderr)
    assert list(hists) == ["slow", "fast"]
    slow, fast = hists["slow"], hists["fast"]
    assert sum(c for _, c in slow.buckets) == 5
    assert sum(c for _, c in fast.buckets) == 100
    assert all(low >= 1000 for low, count in slow.buckets if count)  # usleep(1500): >= 1 ms buckets
    assert slow.buckets[0][1] and slow.buckets[-1][1] and fast.buckets[0][1] and fast.buckets[-1][1]
    # most of them; a loaded VM delays some by a millisecond or more (86 of 100 fast once, in a full run)
    assert sum(c for low, c in fast.buckets if low < 1000) >= 75
    m = re.fullmatch(r"slow: count 5, avg (\d+) us, min (\d+) us, max (\d+) us", slow.summary)
    assert m and 1500 <= int(m[2]) <= int(m[1]) <= int(m[3])
    assert re.fullmatch(r"fast: count 100, avg \d+ us, min \d+ us, max \d+ us", fast.summary)
    bars = [line for line in res.stderr.splitlines() if line.endswith("|")]
    assert max(line.count("@") for line in bars) == 52


def test_func_latency_ns_and_usage(
    sample: Callable[[str], str], utrace_cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    exe = sample("plug_latency")
    monkeypatch.setenv("UTRACE_LATENCY_UNIT", "ns")
    res = utrace_cli("--handler", str(HANDLERS / "func_latency.py"), "slow", "--", exe, "3", "0")
    assert res.returncode == 0
    assert res.stderr.startswith("@nsecs[slow]:\n")
    slow = parse_histograms(res.stderr)["slow"]
    assert sum(c for _, c in slow.buckets) == 3 and all(low >= 1 << 20 for low, c in slow.buckets if c)
    res = utrace_cli("--handler", str(HANDLERS / "func_latency.py"), "--", exe)
    assert res.returncode == 2 and "needs the functions to time" in res.stderr
    monkeypatch.setenv("UTRACE_LATENCY_UNIT", "ms")
    res = utrace_cli("--handler", str(HANDLERS / "func_latency.py"), "slow", "--", exe)
    assert res.returncode == 2 and "not 'ms'" in res.stderr


def test_bpftrace_hist_layout() -> None:
    """Labels and lines exactly as bpftrace's hist() prints them (src/output.cpp)."""
    lat = load("func_latency")
    assert [lat.label(k) for k in (-1, 0, 1, 2, 3, 10, 11, 21)] == [
        "(..., 0)", "[0]", "[1]", "[2, 4)", "[4, 8)", "[512, 1K)", "[1K, 2K)", "[1M, 2M)",
    ]  # fmt: skip
    assert [lat.bucket(v) for v in (-5, 0, 1, 2, 3, 4, 1023, 1024)] == [-1, 0, 1, 2, 2, 3, 10, 11]
    assert lat.draw_hist({2: 4, 4: 1}) == [
        "[2, 4)                 4 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|",
        "[4, 8)                 0 |                                                    |",
        "[8, 16)                1 |@@@@@@@@@@@@@                                       |",
    ]


# --------------------------------------------------------------------------------------------------
# file_opens, with strace as the oracle

needs_strace = pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
TRACE_LINE = re.compile(
    r"(?P<comm>\S+)-(?P<tid>\d+) (?P<call>(?P<func>\w+)\((?P<args>.*)\)) = (?P<result>.*)"
)


def strace_opens(argv: List[str], tmp_path: Path) -> Tuple[subprocess.CompletedProcess, List[str]]:
    log = tmp_path / "strace.txt"
    res = untraced(["strace", "-qq", "-e", "trace=openat,open", "-o", str(log), *argv])
    return res, [line for line in log.read_text().splitlines() if not line.startswith("+++")]


def as_strace(line: str) -> str:
    """Our open/openat line as strace shows the system call glibc makes for it."""
    m = TRACE_LINE.fullmatch(line)
    assert m, line
    if m["func"] == "open":
        return f"openat(AT_FDCWD, {m['args']}) = {m['result']}"
    return f"{m['call']} = {m['result']}"


def fopen_as_strace(line: str) -> Tuple[str, str]:
    """(path, result) of our fopen line, with the result as strace shows fopen's openat."""
    m = re.fullmatch(r'\S+-\d+ fopen\((".*"), ".*"\) = (?:0x[0-9a-f]+ \(fd (\d+)\)|NULL (.*))', line)
    assert m, line
    return m[1], m[2] if m[2] else "-1 " + m[3]


def strace_path_result(line: str) -> Tuple[str, str]:
    m = re.fullmatch(r'openat\(\w+, (".*"), .*\) = (.*)', line)
    assert m, line
    return m[1], m[2]


@needs_strace
def test_file_opens_against_strace(sample: Callable[[str], str], utrace_cli: Cli, tmp_path: Path) -> None:
    exe = sample("plug_files")
    work = tmp_path / "d"
    work.mkdir()
    plain, expected = strace_opens([exe, str(work)], tmp_path)
    assert plain.returncode == 0
    expected = expected[next(i for i, line in enumerate(expected) if '"/dev/null"' in line) :]
    assert list(work.iterdir()) == []
    out = tmp_path / "opens.txt"
    res = utrace_cli("--handler", "handlers/file_opens.py", "-o", str(out), "--", exe, str(work), cwd=ROOT)
    assert (res.returncode, res.stdout, res.stderr) == (0, plain.stdout, "")
    ours = out.read_text().splitlines()
    assert len(ours) == len(expected) == 10
    for line in ours:
        m = TRACE_LINE.fullmatch(line)
        assert m and m["comm"] == "plug_files", line
    for mine, theirs in zip(ours, expected):
        if " fopen(" in mine:
            assert fopen_as_strace(mine) == strace_path_result(theirs)
        else:
            assert as_strace(mine) == theirs
    # the failures carry errno, the creations their mode, the odd name strace's escapes
    text = "\n".join(ours)
    assert 'open("/nonexistent-utrace/missing", O_RDONLY) = -1 ENOENT (No such file or directory)' in text
    assert ", O_WRONLY|O_CREAT|O_EXCL, 0600) = -1 EEXIST (File exists)" in text
    assert r'"we\"ird\tna\0017m\303\251", O_RDONLY|O_CREAT|O_NONBLOCK, 000) = ' in text
    assert re.search(r'fopen\(".*/missing", "r"\) = NULL ENOENT \(No such file or directory\)', text)


@needs_strace
def test_file_opens_cat(utrace_cli: Cli, tmp_path: Path) -> None:
    """A program nobody built for the test: cat of a file and of a missing one."""
    cat = shutil.which("cat")
    assert cat is not None
    data = tmp_path / "data.txt"
    data.write_text("hello\n")
    missing = tmp_path / "missing"
    argv = [cat, str(data), str(missing)]
    plain, traced_by_strace = strace_opens(argv, tmp_path)
    res = utrace_cli("--handler", str(HANDLERS / "file_opens.py"), "--", *argv)
    assert (res.returncode, res.stdout) == (plain.returncode, plain.stdout) == (1, "hello\n")
    ours = [as_strace(line) for line in res.stderr.splitlines() if re.match(r"cat-\d+ open(at)?\(", line)]
    theirs = [line for line in traced_by_strace if str(tmp_path) in line]
    assert ours == theirs and len(ours) == 2
    assert theirs[1].endswith("= -1 ENOENT (No such file or directory)")


def test_file_opens_subset_and_usage(sample: Callable[[str], str], utrace_cli: Cli, tmp_path: Path) -> None:
    exe = sample("plug_files")
    work = tmp_path / "d"
    work.mkdir()
    res = utrace_cli("--handler", str(HANDLERS / "file_opens.py"), "fopen", "--", exe, str(work))
    assert res.returncode == 0
    assert [TRACE_LINE.fullmatch(line)["func"] for line in res.stderr.splitlines()] == ["fopen"] * 3
    res = utrace_cli("--handler", str(HANDLERS / "file_opens.py"), "creat", "--", exe, str(work))
    assert res.returncode == 2 and "creat is not one of them" in res.stderr


def test_file_opens_decoding() -> None:
    opens = load("file_opens")
    assert opens.open_flags(0o2000000) == "O_RDONLY|O_CLOEXEC"
    assert opens.open_flags(0o20200002) == "O_RDWR|O_TMPFILE"
    assert opens.open_flags(0o4010101 | 0x80000000) == "O_WRONLY|O_CREAT|O_SYNC|0x80000000"
    assert opens.open_flags_and_mode(0o1101, 0o644) == "O_WRONLY|O_CREAT|O_TRUNC, 0644"
    assert opens.open_flags_and_mode(0o101, 0) == "O_WRONLY|O_CREAT, 000"
    assert opens.open_flags_and_mode(0, 0o777) == "O_RDONLY"
    assert opens.dirfd_text(2**32 - 100) == "AT_FDCWD"
    assert opens.escape(b'a"\\\n\x01\x027\xff') == r"a\"\\\n\1\0027\377"
    assert issubclass(opens.FileOpens, Plugin)


def test_file_opens_call_in_progress_at_detach(tmp_path: Path) -> None:
    """A detach while an open is under way (here: at its entry) lists the call with ``= ?``; the
    program, untraced again, completes that open and exits normally."""
    opens = load("file_opens")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    # cat's open of the FIFO blocks until a writer opens it: started once cat is about to open it
    writer = threading.Thread(target=lambda: open(fifo, "w").close())
    cat = shutil.which("cat")
    assert cat is not None
    report = io.StringIO()
    tracer = utrace.launch([cat, str(fifo)], output=Output(report))

    class DetachAtFifo(opens.FileOpens):  # type: ignore[misc]
        def on_entry(self, event: Event) -> None:
            super().on_entry(event)
            if str(fifo) in self.active.get(event.tid, (0, ""))[1]:
                tracer.stop()
                writer.start()

    plugin = DetachAtFifo()
    plugin.attach_output(tracer.output)
    plugin.install(tracer, ["open", "openat"])  # not fopen: cat may read locale.alias
    with tracer:
        assert tracer.run(duration=60) == 0  # detached at the open, then cat's exit awaited
    writer.join(timeout=30)
    plugin.finish()
    assert re.fullmatch(rf'cat-\d+ open\("{fifo}", O_RDONLY\) = \? \(had not returned\)\n', report.getvalue())


def test_plugin_file_may_use_dataclasses_with_postponed_annotations(utrace_cli, tmp_path):
    """Regression: the plugin module was not in sys.modules, which @dataclass needs."""
    plugin = tmp_path / "dc_plugin.py"
    plugin.write_text(
        "from __future__ import annotations\n"
        "from dataclasses import dataclass\n"
        "import utrace\n\n"
        "@dataclass\nclass Seen:\n    n: int = 0\n\n"
        "class P(utrace.Plugin):\n"
        "    def install(self, tracer, probes):\n        self.seen = Seen()\n"
    )
    res = utrace_cli("--handler", str(plugin), "--", "true")
    assert res.returncode == 0, res.stderr


def test_handler_file_registering_a_name_for_dash_h(sample, utrace_cli, tmp_path):
    """register_handler from a file loaded with --handler makes -H NAME work in that same command."""
    lib = tmp_path / "myhandlers.py"
    lib.write_text(
        "import utrace\n\n"
        "class Twice(utrace.Handler):\n"
        "    def on_entry(self, ev):\n"
        "        self.output.line(f'twice {ev.args[0] * 2}')\n\n"
        "utrace.register_handler('TWICE', Twice)\n"
    )
    out = tmp_path / "trace"
    res = utrace_cli(
        "--handler", str(lib), "-H", "TWICE", "-o", str(out), "work", "--", sample("checksum"), "3"
    )
    assert res.returncode == 0, res.stderr
    assert out.read_text().splitlines() == ["twice 0", "twice 2", "twice 4"]
