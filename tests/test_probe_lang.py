"""The probe definition language (utrace.probes): the grammar, errors with a caret at the right column,
value formatting, filters, and every fetch type evaluated against samples/lang_fetch.c, whose globals
and call arguments are known."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union

import pytest

import utrace
from utrace.errors import UsageError
from utrace.handlers import Event, Handler
from utrace.probes import (
    ENTRY_KEY,
    FetchType,
    ProbeSpec,
    SpecError,
    Value,
    format_value,
    json_value,
    parse_spec,
    parse_type,
)

# ------------------------------------------------------------------------------------------ grammar
VALID = [
    # spec, (kind, group, event, target), [(name, source, type)], filter text
    ("malloc", ("p", "utrace", "malloc", "malloc"), [], None),
    ("libc.so.6:malloc+0", ("p", "utrace", "malloc", "libc.so.6:malloc+0"), [], None),
    (
        "p:grp/ev libc:malloc size=%di:u64 %si",
        ("p", "grp", "ev", "libc:malloc"),
        [("size", "%di", "u64"), ("arg2", "%si", "x64")],
        None,
    ),
    (
        "r:myret take_ints $retval:s32 d=$duration",
        ("r", "utrace", "myret", "take_ints"),
        [("arg1", "$retval", "s32"), ("d", "$duration", "u64")],
        None,
    ),
    ("p foo%return $retval", ("r", "utrace", "foo", "foo"), [("arg1", "$retval", "x64")], None),
    ("p:grp/ foo", ("p", "grp", "foo", "foo"), [], None),
    ("p foo+0x10 %ip:symbol", ("p", "utrace", "foo", "foo+0x10"), [("arg1", "%ip", "symbol")], None),
    ("p 0x401136 %ax", ("p", "utrace", "0x401136", "0x401136"), [("arg1", "%ax", "x64")], None),
    ("-:grp/ev", ("-", "grp", "ev", ""), [], None),
    (
        "p foo +0(+8(%di)):string @g:s32 @lib.so:var+8 @0x1000:u8[4] $stack3 $stack $comm $tid",
        ("p", "utrace", "foo", "foo"),
        [
            ("arg1", "+0(+8(%di))", "string"),
            ("arg2", "@g", "s32"),
            ("arg3", "@lib.so:var+8", "x64"),
            ("arg4", "@0x1000", "u8[4]"),
            ("arg5", "$stack3", "x64"),
            ("arg6", "$stack", "x64"),
            ("arg7", "$comm", "string"),
            ("arg8", "$tid", "u32"),
        ],
        None,
    ),
    (
        "p foo %xmm3 $farg2 %xmm0:f32[4] x=%di:b3@2/8 -16(%sp):ustring @+0x1040:s32 @lib:sym:u32",
        ("p", "utrace", "foo", "foo"),
        [
            ("arg1", "%xmm3", "x64"),
            ("arg2", "$farg2", "f64"),
            ("arg3", "%xmm0", "f32[4]"),
            ("x", "%di", "b3@2/8"),
            ("arg5", "-16(%sp)", "ustring"),
            ("arg6", "@+0x1040", "s32"),
            ("arg7", "@lib:sym", "u32"),
        ],
        None,
    ),
    (
        'p foo v=%di:s32 if v >= 5 && (v & 0x40 || $comm ~ "ba*")',
        ("p", "utrace", "foo", "foo"),
        [("v", "%di", "s32")],
        'v >= 5 && (v & 0x40 || $comm ~ "ba*")',
    ),
    (
        "r fill s=+0($arg1):string before=$entry.s if $retval < 0",
        ("r", "utrace", "fill", "fill"),
        [("s", "+0($arg1)", "string"), ("before", "$entry.s", "string")],
        "$retval < 0",
    ),
]


@pytest.mark.parametrize("text,head,args,filter_text", VALID, ids=[v[0] for v in VALID])
def test_valid_specs(text: str, head: tuple, args: list, filter_text: Optional[str]) -> None:
    spec = parse_spec(text)
    assert isinstance(spec, ProbeSpec)
    assert (spec.kind, spec.group, spec.event, spec.target) == head
    assert [(a.name, a.source, a.type.name) for a in spec.args] == args
    assert (spec.filter.text if spec.filter else None) == filter_text
    assert spec.text == text


def test_parsed_structure_details() -> None:
    spec = parse_spec("p foo +0(+8(%di)):string @lib:sym-8:u32 @0x10 %rdi $arg7")
    deref = spec.args[0].node
    assert type(deref).__name__ == "Deref" and deref.offset == 0
    assert type(deref.inner).__name__ == "Deref" and deref.inner.offset == 8
    assert type(deref.inner.inner).__name__ == "Reg" and deref.inner.inner.reg == "rdi"
    glob = spec.args[1].node
    assert (glob.target, glob.offset, glob.memory) == ("lib:sym", -8, True)
    assert spec.args[2].node.addr == 0x10
    assert spec.args[3].node.reg == "rdi"  # %di and %rdi are the same register
    assert spec.args[4].node.n == 7
    assert not spec.needs_entry_fetch  # a p probe fetches everything at the hit

    ret = parse_spec("r fill s=+0($arg1):string before=$entry.s n=$arg2 $retval")
    assert ret.needs_entry_fetch
    assert not parse_spec("r fill $retval").needs_entry_fetch

    flt = parse_spec('p f v=%di:s32 if !(v < 3) || $comm ~ "a*" && v != -2').filter
    assert flt is not None and flt.names == ["v", "$comm"]


def test_parse_type() -> None:
    assert parse_type("u16") == FetchType("u16", "u", 2)
    assert parse_type("s32[4]") == FetchType("s32[4]", "s", 4, 4)
    assert parse_type("b3@5/16") == FetchType("b3@5/16", "bitfield", 2, None, 3, 5)
    assert parse_type("ustring").kind == "string"
    assert parse_type("string[3]").element.name == "string"


MALFORMED = [
    # spec, anchor (the caret is under its first occurrence, or at that column; None: at the end), reason
    ("", None, "empty probe definition"),
    ("p", None, "no probe target"),
    ("p:", None, "empty event name"),
    ("p:bad-name foo", "-name", "bad event name"),
    ("p:1grp/ev foo", "1grp", "bad group name"),
    ("r10:x foo", "10", "MAXACTIVE"),
    ("-:ev foo", "foo", "nothing may follow"),
    ("r foo+8", "+8", "function's entry"),
    ("p foo %zz", "zz", "unknown register %zz"),
    ("p foo +8(%di", None, "missing ')'"),
    ("p foo +8%di", "%di", "expected '('"),
    ("p foo 12", "12", "expected %REG"),
    ("p foo $stack x", "x", "bad fetch argument 'x'"),
    ("p foo $bogus", "bogus", "unknown variable $bogus"),
    ("p foo $farg9", "9", "$farg1 to $farg8"),
    ("p foo $retval", "$retval", "only for return probes"),
    ("p foo $entry.x", "$entry", "only for return probes"),
    ("p foo+4 $arg1", "$arg1", "only available at a function's entry"),
    ("p foo %di:u33", "u33", "unknown type 'u33'"),
    ("p foo %di:u8[4]", "[4]", "array type needs a memory argument"),
    ("p foo @0x10:s32[65]", "65", "array length must be 1 to 64"),
    ("p foo %di:b9@30/32", "9@", "does not fit in 32 bits"),
    ("p foo %di:b3@0/24", "24", "container is 8, 16, 32 or 64"),
    ("p foo $comm:u32", "u32", "$comm is a string"),
    ("p foo a=%di a=%si", "a=%si", "used twice"),
    ("r bar x=%di $entry.zz", "zz", "no argument named 'zz'"),
    ("r bar x=$retval y=$entry.x", 25, "has no value at entry"),
    ("p foo if", None, "empty filter"),
    ("p foo x=%di if y == 1", "y ==", "no field 'y'"),
    ("p foo x=%di if x ==", None, "expected a number"),
    ("p foo x=%di if x == 1 )", ")", "expected && or ||"),
    ("p foo x=%di if (x == 1", None, "expected ')'"),
    ('p foo x=%di if x == "abc', '"', "unterminated string"),
    ("p foo x=%di if x ~ 1", "~", "glob) is for strings"),
    ("p foo x=%di if x & 1.5", "1.5", "& tests the bits of integers"),
    ("p foo s=+0(%di):string if s > 3", "3", 'compare it with a "string"'),
    ("p foo x=%di if x = 1", "= 1", "unexpected '='"),
    ("p foo a=@0:u8[4] if a == 1", "a ==", "cannot be compared"),
]


@pytest.mark.parametrize("text,anchor,reason", MALFORMED, ids=[m[0] or "<empty>" for m in MALFORMED])
def test_malformed_specs_show_a_caret(text: str, anchor: Union[str, int, None], reason: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(text)
    err = info.value
    assert isinstance(err, UsageError) and err.exit_code == 2
    column = len(text) if anchor is None else anchor if isinstance(anchor, int) else text.index(anchor)
    lines = str(err).split("\n")
    assert len(lines) == 3, str(err)
    assert lines[0].startswith("bad probe spec: ") and reason in lines[0], lines[0]
    assert lines[1] == "  " + text
    assert lines[2] == "  " + " " * column + "^", f"caret at {len(lines[2]) - 3}, expected {column}\n{err}"
    assert (err.column, err.spec) == (column, text)


# ------------------------------------------------------------------------------------------- values
def _v(type_name: str, data: Any, symbol: Optional[str] = None) -> Value:
    return Value(parse_type(type_name), data, symbol)


@pytest.mark.parametrize(
    "value,text,as_json",
    [
        (_v("u32", 5), "5", 5),
        (_v("s16", -3), "-3", -3),
        (_v("x8", 255), "0xff", 255),
        (_v("x64", 0), "0x0", 0),
        (_v("b3@2/32", 6), "6", 6),
        (_v("string", b'a"b\n'), '"a\\"b\\n"', 'a"b\n'),
        (_v("string", b"\xff"), '"\\377"', "\\xff"),
        (_v("f64", 0.1), "0.1", 0.1),
        (_v("f64", 3.0), "3", 3.0),
        (_v("f64", 1e300), "1e+300", 1e300),
        (_v("f32", 0.10000000149011612), "0.1", 0.10000000149011612),
        (_v("symbol", 0x401136, "main+0x10"), "main+0x10", "main+0x10"),
        (_v("symbol", 0x1234), "0x1234", "0x1234"),
        (_v("char", 65), "'A'", "'A'"),
        (_v("u32", None), "(fault)", None),
        (_v("s32[3]", tuple(_v("s32", n) for n in (1, -2, 3))), "{1,-2,3}", [1, -2, 3]),
        (_v("string[2]", (_v("string", b"a"), _v("string", None))), '{"a",(fault)}', ["a", None]),
    ],
)
def test_format_and_json(value: Value, text: str, as_json: Any) -> None:
    assert format_value(value) == text
    assert json_value(value) == as_json


# ------------------------------------------------------------------------------------------ filters
@pytest.mark.parametrize(
    "flt,data,expected",
    [
        ("x == 5", 5, True),
        ("x != 5", 5, False),
        ("x <= -1", 0xFFFFFFFFFFFFFFFF, True),  # a negative literal: the x64 field is compared as signed
        ("x == -1", 0xFFFFFFFFFFFFFFFF, True),
        ("x > 5", 0xFFFFFFFFFFFFFFFF, True),  # unsigned otherwise
        ("x < 0", 0xFFFFFFFFFFFFFFFF, False),
        ("x == 0x40", 64, True),
        ("x & 0x40", 0x41, True),
        ("x & 0x40", 0x01, False),
        ("!(x & 0x40)", 0x01, True),
        ("x >= 3 && x <= 4", 4, True),
        ("x < 3 || x > 4", 4, False),
        ("x == 1 || x == 2 && x == 3", 1, True),  # && binds tighter
        ("(x == 1 || x == 2) && x == 3", 1, False),
        ("x == 5", None, False),  # a faulted value compares false
        ("!(x == 5)", None, True),
    ],
)
def test_filter_on_numbers(flt: str, data: Optional[int], expected: bool) -> None:
    spec = parse_spec(f"p f x=%di if {flt}")
    assert spec.matches({"x": _v("x64", data)}) is expected


def test_filter_on_strings_floats_and_narrow_types() -> None:
    spec = parse_spec('p f s=+0(%di):string if s ~ "ba*" && s !~ "*z" && s != "bar"')
    assert spec.matches({"s": _v("string", b"bad")})
    assert not spec.matches({"s": _v("string", b"bar")})
    assert not spec.matches({"s": _v("string", b"baz")})
    assert not spec.matches({"s": _v("string", b"foo")})
    spec = parse_spec('p f s=+0(%di):string if s == "a b\\"c"')
    assert spec.matches({"s": _v("string", b'a b"c')})
    spec = parse_spec("p f d=%xmm0:f64 if d > 2.25 && d < 1e3")
    assert spec.matches({"d": _v("f64", 2.5)}) and not spec.matches({"d": _v("f64", 2.0)})
    spec = parse_spec("p f b=%di:u8 if b == -1")
    assert spec.matches({"b": _v("u8", 255)})
    assert parse_spec("p f x=%di").matches({"x": _v("x64", 1)})  # no filter: everything matches


# ------------------------------------------------------------------------------- against a real run
@dataclass
class Hit:
    values: Dict[str, str]  # formatted
    json: Dict[str, Any]
    matched: bool
    tid: int
    resolved: Dict[str, int] = field(default_factory=dict)


class Recorder(Handler):
    """What the CLI does with a spec: fetch at the hit (p) or at the return (r, after fetch_entry)."""

    def __init__(self, spec: ProbeSpec, resolve: List[str]) -> None:
        self.spec = spec
        self.resolve = resolve
        self.hits: List[Hit] = []

    def on_entry(self, event: Event) -> None:
        if self.spec.needs_entry_fetch:
            self.spec.fetch_entry(event)
        if self.spec.kind == "p":
            self.record(event)

    def on_return(self, event: Event) -> None:
        self.record(event)

    def record(self, event: Event) -> None:
        values = self.spec.fetch(event)
        space = event.thread.process.address_space()
        self.hits.append(
            Hit(
                {k: format_value(v) for k, v in values.items()},
                {k: json_value(v) for k, v in values.items()},
                self.spec.matches(values),
                event.tid,
                {name: space.resolve(name).address for name in self.resolve},
            )
        )


SPECS = {
    "regs": "take_ints %di:s32 %rdi:s32 %si:u32 %dx $arg1:s32 $arg3:x64 %ip:symbol $stack0:symbol",
    "task": "p:lang/task take_ints $comm $tid c=$comm:string sp=%sp st=$stack",
    "widths": (
        "take_ints @g_int:s32 @g_bytes:u8 @g_bytes:s8 @g_bytes:x8 @g_bytes:u16 @g_bytes:s16 @g_bytes:x16"
        " @g_bytes+2:s16 @g_bytes+2:u16 @g_bytes+4:x32 @g_bytes:u32 @g_bytes:s32 @g_bytes:u64"
        " @g_bytes:x64 @g_bytes:s64 @g_bytes+4:char"
    ),
    "struct": (
        "take_ints tag=@g_outer child=@g_outer+8 id=+0(@g_outer+8):s32 label=+0(+8(@g_outer+8)):string"
        " name=+0(@g_outer+16):ustring ratio=@g_outer+24:f64"
        " prev=-4(@g_array_mid):s32 next=+4(@g_array_mid):s32"
    ),
    "scalars": "take_ints d=@g_double:f64 f=@g_float:f32 dx=@g_double",
    "arrays": (
        "take_ints a=@g_array:s32[5] third=@g_array+8:s32 hex=@g_array:x32[2] s=@g_strings:string[3]"
        " u=@g_array:u8[4]"
    ),
    "bits": "take_ints a=@g_flags:b3@0/32 b=@g_flags:b5@3/32 c=@g_flags:b12@8/32 d=@g_flags:b1@20/32 "
    "b8=@g_flags:b5@3/8 all=@g_flags:x32",
    "symbols": "take_ints fn=@g_fnptr:symbol mid=@g_fnptr_mid:symbol",
    "faults": "take_ints n=+0(@g_null):string lo=@0x10:u32 arr=@0x10:u8[2] missing=@no_such_var:s32",
    "floats": "take_doubles %xmm0 %xmm0:f64 $farg1 $farg2:f32 %xmm1:f32 $farg3 lanes=%xmm0:x64[2]",
    "stack_args": "take_eight $arg7:s64 $arg8 $stack1:u64 $arg6:u64 $arg1:u8",
    "retval": "r take_eight $retval $retval:u64 $retval:s16 d=$duration",
    "retval_signed": "r:neg take_ints $retval:s32 a=$arg1:s32",
    "nested": (
        "use_outer id=+0(+8(%di)):s32 label=+0(+8(+8(%di))):string name=+0(+16(%di)):string r=+24(%di):f64"
    ),
    "entry": "r fill s=+0($arg1):string before=$entry.s n=$arg2:s32 ret=$retval:s32 now=+0(%di):string",
    # filters over classify(i, i odd ? 0x41 : 0x1, i < 5 ? "small" : "big") for i = 0..9
    "all": "p classify v=%di:s32",
    "ge5": "p classify v=%di:s32 if v >= 5",
    "bit": "p classify v=%di:s32 f=%si:x32 if f & 0x40",
    "comm": 'p classify v=%di:s32 if $comm ~ "lang*"',
    "notcomm": 'p classify v=%di:s32 if $comm !~ "lang*"',
    "tag": 'p classify v=%di:s32 tag=+0(%dx):string if tag == "small" && v != 2',
    "paren": "p classify v=%di:s32 if !(v < 3) || v == 0",
    "ret": "r classify v=$arg1:s32 if $retval > 5 && $duration > 0",
    "tid": "p classify v=%di:s32 if $tid == 0",
}
RESOLVE = {"struct": ["g_inner"], "task": ["g_int"]}


@pytest.fixture(scope="module")
def run(sample) -> Dict[str, List[Hit]]:
    """One run of lang_fetch with every spec of SPECS inserted; the hits of each."""
    exe = sample("lang_fetch")
    recorders = {}
    with utrace.launch([exe]) as t:
        for key, text in SPECS.items():
            spec = parse_spec(text)
            recorders[key] = Recorder(spec, RESOLVE.get(key, []))
            t.add_probe(spec.target, recorders[key], name=spec.event, ret=spec.kind == "r")
        status = t.run()
    assert status == 0
    return {key: rec.hits for key, rec in recorders.items()}


EXPECTED = {
    "regs": {
        "arg1": "-5", "arg2": "-5", "arg3": "4000000000", "arg4": "0x123456789", "arg5": "-5",
        "arg6": "0x123456789", "arg7": "take_ints+0x0",
    },
    "widths": {
        "arg1": "-42", "arg2": "255", "arg3": "-1", "arg4": "0xff", "arg5": "65535", "arg6": "-1",
        "arg7": "0xffff", "arg8": "-32768", "arg9": "32768", "arg10": "0x12345678", "arg11": "2147549183",
        "arg12": "-2147418113", "arg13": str(0x123456788000FFFF), "arg14": "0x123456788000ffff",
        "arg15": str(0x123456788000FFFF), "arg16": "'x'",
    },
    "struct": {
        "tag": "0x1122334455667788", "id": "7", "label": '"inner-label"', "name": '"outer-name"',
        "ratio": "2.5", "prev": "20", "next": "40",
    },
    "scalars": {"d": "3.140625", "f": "-0.75", "dx": "0x4009200000000000"},
    "arrays": {
        "a": "{10,20,-30,40,50}", "third": "-30", "hex": "{0xa,0x14}", "s": '{"alpha","beta","gamma"}',
        "u": "{10,0,0,0}",
    },
    "bits": {"a": "5", "b": "19", "c": "1234", "d": "1", "b8": "19", "all": "0x14d29d"},
    "symbols": {"fn": "take_ints+0x0", "mid": "take_ints+0x4"},
    "faults": {"n": "(fault)", "lo": "(fault)", "arr": "(fault)", "missing": "(fault)"},
    "floats": {
        "arg1": "0x4004000000000000", "arg2": "2.5", "arg3": "2.5", "arg4": "1.5", "arg5": "1.5",
        "arg6": "-0.125", "lanes": "{0x4004000000000000,0x0}",
    },
    "stack_args": {"arg1": "77", "arg2": "0x58", "arg3": "77", "arg4": "66", "arg5": "11"},
    "retval_signed": {"arg1": "-10", "a": "-5"},
    "entry": {"s": '"filled"', "before": '"empty"', "n": "16", "ret": "6"},
}  # fmt: skip


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_fetch_types(run: Dict[str, List[Hit]], key: str) -> None:
    hits = run[key]
    assert len(hits) == 1, hits
    got = {name: hits[0].values[name] for name in EXPECTED[key]}
    assert got == EXPECTED[key]


def test_fetch_order_and_default_names(run: Dict[str, List[Hit]]) -> None:
    assert list(run["regs"][0].values) == [f"arg{i}" for i in range(1, 9)]
    assert list(run["struct"][0].values) == ["tag", "child", "id", "label", "name", "ratio", "prev", "next"]


def test_fetch_task_and_stack(run: Dict[str, List[Hit]]) -> None:
    (hit,) = run["task"]
    assert hit.values["arg1"] == hit.values["c"] == '"lang_fetch"'
    assert hit.values["arg2"] == str(hit.tid)
    assert hit.values["sp"] == hit.values["st"]
    assert int(hit.values["sp"], 16) % 16 == 8  # at a function's entry, after the call pushed 8 bytes
    assert run["regs"][0].values["arg8"].startswith("main+0x")  # $stack0: the return address


def test_fetch_struct_pointer_matches_the_symbol_table(run: Dict[str, List[Hit]]) -> None:
    (hit,) = run["struct"]
    assert int(hit.values["child"], 16) == hit.resolved["g_inner"]
    assert hit.json["child"] == hit.resolved["g_inner"]  # json: ints as ints


def test_fetch_nested_pointers_and_faults(run: Dict[str, List[Hit]]) -> None:
    good, null = run["nested"]  # use_outer(&g_outer), then use_outer(NULL)
    assert good.values == {"id": "7", "label": '"inner-label"', "name": '"outer-name"', "r": "2.5"}
    assert null.values == dict.fromkeys(good.values, "(fault)")
    assert null.json == dict.fromkeys(good.values)


def test_return_values(run: Dict[str, List[Hit]]) -> None:
    (hit,) = run["retval"]
    assert hit.values["arg1"] == "0x18c"  # 11 + 22 + ... + 88 = 396
    assert hit.values["arg2"] == "396"
    assert hit.values["arg3"] == "396"
    assert hit.json["d"] > 0 and hit.values["d"] == str(hit.json["d"])  # nanoseconds, decimal


def test_return_probe_reads_entry_arguments_at_return(run: Dict[str, List[Hit]]) -> None:
    (hit,) = run["entry"]
    # +0($arg1): $arg1 captured at the entry, dereferenced at the return: the buffer as fill() left it;
    # $entry.s: the whole argument s evaluated at the entry; %di at the return is whatever fill left there
    assert (hit.values["s"], hit.values["before"]) == ('"filled"', '"empty"')
    assert hit.json["before"] == "empty"


FILTER_COUNTS = {
    "all": 10, "ge5": 5, "bit": 5, "comm": 10, "notcomm": 0, "tag": 4, "paren": 8, "ret": 8, "tid": 0,
}  # fmt: skip


@pytest.mark.parametrize("key", sorted(FILTER_COUNTS))
def test_filter_counts(run: Dict[str, List[Hit]], key: str) -> None:
    hits = run[key]
    assert len(hits) == 10  # every call is fetched; the filter decides which are shown and counted
    matched = [int(h.values["v"]) for h in hits if h.matched]
    assert len(matched) == FILTER_COUNTS[key], matched
    if key == "ge5":
        assert matched == [5, 6, 7, 8, 9]
    if key == "tag":
        assert matched == [0, 1, 3, 4]
    if key == "ret":  # classify returns v + flags + (tag[0] == 's'): 2 67 4 69 6 ...
        assert matched == [1, 3, 4, 5, 6, 7, 8, 9]


def test_fetch_at_return_without_entry_faults_instead_of_raising() -> None:
    spec = parse_spec("r fill s=+0($arg1):string x=$entry.s")

    class FakeEvent:
        data: Dict[str, Any] = {}

    values = spec.fetch(FakeEvent())  # type: ignore[arg-type]
    assert [format_value(v) for v in values.values()] == ["(fault)", "(fault)"]
    assert ENTRY_KEY not in FakeEvent.data
