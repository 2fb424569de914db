"""Probe definitions on the command line, filters, output formats, and the no-probe (ltrace) mode."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .test_core import hits, untraced

N = 40


def test_definition_with_fetch_args_and_filter(sample, utrace_cli, tmp_path):
    exe = sample("checksum")
    out = tmp_path / "trace"
    res = utrace_cli("-o", str(out), "p:grp/w work i=$arg1:u64 salt=$arg2:x8 if i < 10", "--", exe, str(N))
    assert res.returncode == 0, res.stderr
    assert res.stdout == untraced(exe, str(N)).stdout
    got = hits(out)
    assert [m["event"] for m in got] == ["w"] * 10
    assert [m["rest"].split()[0] for m in got] == [f"i={i}" for i in range(10)]
    assert all(re.fullmatch(r"i=\d+ salt=0x[0-9a-f]{1,2}", m["rest"]) for m in got)


def test_return_definition_with_retval_duration_and_entry(sample, utrace_cli, tmp_path):
    exe = sample("checksum")
    out = tmp_path / "trace"
    res = utrace_cli(
        "-o", str(out), "r:w work x=$arg1:u32 ret=$retval d=$duration e=$entry.x", "--", exe, "5"
    )
    assert res.returncode == 0, res.stderr
    got = hits(out)
    assert len(got) == 5
    for i, m in enumerate(got):
        assert re.fullmatch(r"checksum:main\+0x[0-9a-f]+ <- checksum:work", m["where"]), m["where"]
        fields = dict(kv.split("=", 1) for kv in m["rest"].split())
        assert fields["x"] == str(i) and fields["e"] == str(i)
        assert int(fields["d"]) > 0


def test_malformed_definition_is_a_usage_error_with_a_caret(sample, utrace_cli):
    res = utrace_cli("p work x=$arg1:u65", "--", sample("checksum"), "3")
    assert res.returncode == 2
    lines = res.stderr.rstrip("\n").splitlines()
    assert lines[0].startswith("utrace: bad probe spec")
    assert lines[2].index("^") == lines[1].index("u65")
    assert res.stdout == ""  # the program never started


def test_json_lines_have_the_documented_keys(sample, utrace_cli, tmp_path):
    exe = sample("checksum")
    out = tmp_path / "trace.json"
    res = utrace_cli("--json", "-o", str(out), "work", "r:ret work $retval", "--", exe, str(N))
    assert res.returncode == 0, res.stderr
    objs = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(objs) == 2 * N
    keys = {"time", "comm", "pid", "tid", "group", "event", "type", "location", "args"}
    for obj in objs:
        assert keys <= set(obj)
        assert isinstance(obj["time"], float) and isinstance(obj["tid"], int)
    entries = [o for o in objs if o["type"] == "entry"]
    returns = [o for o in objs if o["type"] == "return"]
    assert [o["args"]["arg1"] for o in entries] == list(range(N))  # typed: ints, not hex strings
    assert all(isinstance(o["duration_ns"], int) and o["duration_ns"] > 0 for o in returns)


def test_summary_counts_and_durations(sample, utrace_cli, tmp_path):
    exe = sample("checksum")
    out = tmp_path / "summary"
    res = utrace_cli("-c", "-o", str(out), "r:w work", "libc:free", "--", exe, str(N))
    assert res.returncode == 0, res.stderr
    text = out.read_text()
    w = re.search(r"^w\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$", text, re.M)
    assert w and int(w.group(1)) == N
    assert float(w.group(3)) <= float(w.group(4)) <= float(w.group(5))
    free = re.search(r"^free\s+(\d+)$", text, re.M)
    assert free and int(free.group(1)) >= N


def test_hist_of_a_fetched_value(sample, utrace_cli, tmp_path):
    exe = sample("checksum")
    out = tmp_path / "hist"
    res = utrace_cli("--hist", "i", "-o", str(out), "p:w work i=$arg1:u64", "--", exe, "100")
    assert res.returncode == 0, res.stderr
    rows = re.findall(r"^(\[[^\]\n]*[\])])[ \t]+(\d+) \|(@*)[ \t]*\|$", out.read_text(), re.M)
    counts = {label: int(n) for label, n, _ in rows}
    assert sum(counts.values()) == 100
    assert counts["[0]"] == 1 and counts["[1, 2)"] == 1 and counts["[64, 128)"] == 100 - 64


def test_chrome_trace_file(sample, utrace_cli, tmp_path):
    exe = sample("threads")
    out = tmp_path / "trace.json"
    res = utrace_cli("--format", "chrome", "-o", str(out), "r:t tick", "--", exe, "2", "10")
    assert res.returncode == 0, res.stderr
    trace = json.loads(out.read_text())
    complete = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert len(complete) == 20 and all(e["name"] == "t" and e["dur"] >= 0 for e in complete)
    tracks = {e["tid"] for e in complete}
    assert len(tracks) == 2
    named = {e["tid"] for e in trace["traceEvents"] if e["ph"] == "M"}
    assert tracks <= named


def test_folded_stacks(sample, utrace_cli, tmp_path):
    exe = sample("checksum")
    out = tmp_path / "folded"
    res = utrace_cli("--folded", "-H", "STACKTRACE", "-o", str(out), "work", "--", exe, str(N))
    assert res.returncode == 0, res.stderr
    lines = out.read_text().splitlines()
    assert sum(int(ln.rsplit(" ", 1)[1]) for ln in lines) == N
    assert all(ln.split(" ")[0].endswith(";main;work") for ln in lines)


def test_time_modes(sample, utrace_cli, tmp_path):
    exe = sample("checksum")
    for flag, check in (("-t", lambda ts: ts > 1e9), ("-r", lambda ts: ts < 10)):
        out = tmp_path / f"t{flag}"
        res = utrace_cli(flag, "-o", str(out), "work", "--", exe, "3")
        assert res.returncode == 0
        assert all(check(float(m["ts"])) for m in hits(out))


# --- no probe: the calls the executable makes into its libraries ------------------------------------------
@pytest.fixture
def bind_now_ibt(sample_dir, tmp_path):
    """checksum linked -z now with IBT PLTs (.plt.sec): there is no lazy PLT for ltrace to trap."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    exe = sample_dir / "checksum_now_ibt"
    src = Path(__file__).resolve().parent.parent / "samples" / "checksum.c"
    cmd = ["gcc", "-O1", "-fcf-protection=full", "-Wl,-z,now", "-Wl,-z,ibtplt", "-o", str(exe), str(src)]
    subprocess.run(cmd, check=True)
    sections = subprocess.run(["readelf", "-SW", str(exe)], capture_output=True, text=True).stdout
    if ".plt.sec" not in sections:
        pytest.skip("this gcc does not emit IBT PLTs (.plt.sec)")
    return str(exe)


def test_no_probe_traces_library_calls_on_bind_now_ibt(bind_now_ibt, utrace_cli, tmp_path):
    out = tmp_path / "calls"
    res = utrace_cli("-o", str(out), "--", bind_now_ibt, str(N))
    assert res.returncode == 0, res.stderr
    assert res.stdout == untraced(bind_now_ibt, str(N)).stdout
    calls = [re.match(r"^(\w+)\((.*)\) = (.+)$", ln) for ln in out.read_text().splitlines()]
    names = [m.group(1) for m in calls if m]
    assert names.count("malloc") == N and names.count("free") == N and names.count("strlen") == N
    assert names[0] == "strtoul"  # the first call main makes
    # shown by their prototypes, as ltrace shows them: main's malloc(16 + i % 64) and strlen(p) of a
    # buffer memset to i | 1 and cut at i % 16
    mallocs = [m.group(2) for m in calls if m and m.group(1) == "malloc"]
    assert mallocs == [str(16 + i % 64) for i in range(N)]
    strlens = [(m.group(2), m.group(3)) for m in calls if m and m.group(1) == "strlen"]
    assert [int(ret) for _, ret in strlens] == [i % 16 for i in range(N)]
    assert strlens[:3] == [('""', "0"), ('"\\001"', "1"), ('"\\003\\003"', "2")]  # ltrace's escapes
    assert all(m.group(3) == "<void>" for m in calls if m and m.group(1) == "free")


def test_no_probe_filter(bind_now_ibt, utrace_cli, tmp_path):
    out = tmp_path / "calls"
    res = utrace_cli(
        "-e", "mal*,str*,-strtoul", "-e", "!malloc_usable*", "-o", str(out), "--", bind_now_ibt, "7"
    )
    assert res.returncode == 0, res.stderr
    names = {ln.split("(")[0] for ln in out.read_text().splitlines()}
    assert names == {"malloc", "strlen"}


def test_no_probe_lines_are_ltraces(sample, utrace_cli, tmp_path):
    """The calls ltrace and utrace both decode print alike (addresses aside, which ASLR moves)."""
    if shutil.which("ltrace") is None:
        pytest.skip("ltrace is not installed (bench/ installs it for comparisons; the tests do not)")
    exe = sample("checksum")
    theirs_file, ours_file = tmp_path / "ltrace", tmp_path / "utrace"
    subprocess.run(["ltrace", "-o", str(theirs_file), exe, "5"], capture_output=True, check=True)
    res = utrace_cli("-o", str(ours_file), "--", exe, "5")
    assert res.returncode == 0, res.stderr

    def calls(text: str) -> list:
        lines = [re.sub(r"\s+= ", " = ", ln) for ln in text.splitlines()]
        lines = [re.sub(r"0x[0-9a-f]{6,}", "ADDR", ln) for ln in lines]
        return [ln for ln in lines if ln.split("(")[0] in ("puts", "malloc", "strlen", "free", "printf")]

    theirs = calls(theirs_file.read_text())
    assert len(theirs) == 17  # puts, 5 x (malloc, strlen, free), printf with its variable argument
    assert calls(ours_file.read_text()) == theirs


def test_prototype_file_changes_how_calls_show(bind_now_ibt, utrace_cli, tmp_path):
    """-F FILE in ltrace.conf syntax: its prototypes win over the built-in ones; comments and what
    the subset cannot read (structs, typedefs) are skipped."""
    protos = tmp_path / "protos.conf"
    protos.write_text(
        "; a comment\n"
        "typedef sizet = ulong;\n"
        "hex strlen(addr);\t\t; the result in hex this time\n"
        "int weird(struct(int, addr), array(char, arg1));\n"
    )
    out = tmp_path / "calls"
    res = utrace_cli("-F", str(protos), "-e", "strlen", "-o", str(out), "--", bind_now_ibt, "3")
    assert res.returncode == 0, res.stderr
    lines = out.read_text().splitlines()
    assert [re.sub(r"0x[0-9a-f]+\)", "P)", ln) for ln in lines] == [
        "strlen(P) = 0x0",
        "strlen(P) = 0x1",
        "strlen(P) = 0x2",
    ]
    res = utrace_cli("-F", str(tmp_path / "missing.conf"), "--", bind_now_ibt, "3")
    assert res.returncode == 2 and "missing.conf" in res.stderr and len(res.stderr.splitlines()) == 1


def test_prototype_enums_and_comments():
    from utrace.prototypes import parse

    protos = parse("int f(enum(A=1, B, C=7), octal);\t; a trailing comment\n; int g(int);\n")
    assert set(protos) == {"f"}
    shown = [arg.render(v, lambda a, n: b"") for arg, v in zip(protos["f"].args, (2, 0o644))]
    assert shown == ["B", "0644"]
    assert protos["f"].args[0].render(3, lambda a, n: b"") == "3"  # a value the enum does not name


def test_no_probe_calls_in_json_and_summary(bind_now_ibt, utrace_cli, tmp_path):
    """Regression: the library-call lines were text inside --json output, and -c counted nothing."""
    out = tmp_path / "calls.json"
    res = utrace_cli("--json", "-e", "malloc,strlen", "-o", str(out), "--", bind_now_ibt, "4")
    assert res.returncode == 0, res.stderr
    objs = [json.loads(ln) for ln in out.read_text().splitlines()]
    assert [(o["event"], o["type"], o["ret"]) for o in objs if o["event"] == "strlen"] == [
        ("strlen", "call", i % 16) for i in range(4)
    ]
    assert all(o["text"].startswith(o["event"] + "(") and o["duration_ns"] > 0 for o in objs)
    res = utrace_cli("-c", "-e", "malloc,strlen", "-o", str(out), "--", bind_now_ibt, "4")
    rows = {ln.split()[0]: ln.split()[1] for ln in out.read_text().splitlines() if ln[:1].isalpha()}
    rows = {name: int(count) for name, count in rows.items() if count.isdigit()}  # not the heading
    assert (rows["malloc"], rows["strlen"], rows["total"]) == (4, 4, 8)


def test_output_arguments_show_what_the_function_wrote(sample, utrace_cli, tmp_path):
    """+string[retval]: read()'s buffer at its return, as many bytes as it read; string[arg3]:
    write()'s buffer at its entry, as many as it was given (dd copying 8 bytes of a file)."""
    data = tmp_path / "in.txt"
    data.write_bytes(b"one\ntwo\x01\n")
    out = tmp_path / "calls"
    dd = ["/bin/dd", f"if={data}", "bs=8", "count=1", "status=none"]
    res = utrace_cli("-e", "read,write", "-o", str(out), "--", *dd)
    assert res.returncode == 0 and res.stdout == "one\ntwo\x01", res.stderr
    assert out.read_text().splitlines() == [
        'read(0, "one\\ntwo\\001", 8) = 8',
        'write(1, "one\\ntwo\\001", 8) = 8',
    ]
