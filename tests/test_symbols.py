"""utrace.symbols against oracles nobody here wrote: nm, readelf, addr2line, gdb and the kernel itself
(/proc/PID/maps, /proc/PID/mem).

Live tests run ``sleep 30`` and the checksum sample (PIE and non-PIE); every process has a cleanup.
"""

from __future__ import annotations

import io
import os
import re
import select
import shutil
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Iterator

import pytest

import utrace
from utrace import symbols
from utrace.errors import (
    BadProbeAddress,
    ModuleNotFound,
    ProcessGone,
    SymbolNotFound,
    UsageError,
    UtraceError,
)
from utrace.output import Output
from utrace.symbols import AddressSpace, ElfFile, _name_matches, clear_cache, load_elf, read_maps

LIBC = "/lib/x86_64-linux-gnu/libc.so.6"
LD_SO = "/lib64/ld-linux-x86-64.so.2"
SYS_clock_nanosleep = 230


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed: it is the oracle for this test")
    return path


def run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def nm_defined(path: str, dynamic: bool) -> list[tuple[int, str, str]]:
    """(value, type letter, name as nm prints it, with @VERSION/@@VERSION) of every defined symbol."""
    out = run(need("nm"), *(["-D"] if dynamic else []), "--defined-only", path)
    symbols = []
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[1] not in "aAN":  # absolute and debugging symbols are no addresses
            symbols.append((int(fields[0], 16), fields[1], fields[2]))
    return symbols


def nm_value(path: str, name: str, dynamic: bool = False) -> int:
    return next(v for v, _, n in nm_defined(path, dynamic) if n == name)


def readelf_loads(path: str) -> list[tuple[int, int, int]]:
    """(file offset, vaddr, file size) of every PT_LOAD, from ``readelf -lW``."""
    loads = []
    for line in run(need("readelf"), "-lW", path).splitlines():
        fields = line.split()
        if fields and fields[0] == "LOAD":
            loads.append((int(fields[1], 16), int(fields[2], 16), int(fields[4], 16)))
    return loads


def file_offset(path: str, vaddr: int) -> int:
    """A vaddr's file offset by the PT_LOAD maths, on readelf's numbers."""
    for offset, start, size in readelf_loads(path):
        if start <= vaddr < start + size:
            return offset + vaddr - start
    raise AssertionError(f"{vaddr:#x} is in no PT_LOAD of {path}")


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def in_nanosleep(pid: int) -> bool:
    """True once ``sleep`` blocks in clock_nanosleep: the dynamic linker has finished mapping libraries."""
    try:
        return Path(f"/proc/{pid}/syscall").read_text().split()[0] == str(SYS_clock_nanosleep)
    except (OSError, IndexError):
        return False


def read_line(proc: subprocess.Popen, timeout: float = 10.0) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise AssertionError(f"process {proc.pid} printed nothing within {timeout} s")
    return proc.stdout.readline()


def stop(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


# --------------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def libc_path() -> str:
    if not os.path.exists(LIBC):
        pytest.skip(f"{LIBC} does not exist (not a Debian-style x86-64 system)")
    return LIBC


@pytest.fixture(scope="module")
def sleeper(libc_path: str) -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen(["sleep", "30"])
    try:
        wait_until(lambda: in_nanosleep(proc.pid), "sleep to reach clock_nanosleep")
        yield proc
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def space(sleeper: subprocess.Popen) -> AddressSpace:
    return AddressSpace.from_pid(sleeper.pid)


@pytest.fixture(scope="module")
def checksum_procs(sample: Callable[[str], str]) -> Iterator[dict[str, tuple[str, subprocess.Popen]]]:
    """The checksum sample, PIE and non-PIE, running (slowly) until killed."""
    procs: dict[str, tuple[str, subprocess.Popen]] = {}
    try:
        for name in ("checksum", "checksum_nopie"):
            path = sample(name)
            proc = subprocess.Popen([path, "100000000", "100000"], stdout=subprocess.PIPE, text=True)
            procs[name] = (path, proc)
            assert read_line(proc) == "start\n"
        yield procs
    finally:
        for _, proc in procs.values():
            stop(proc)


@pytest.fixture(params=["checksum", "checksum_nopie"])
def target(request: pytest.FixtureRequest, checksum_procs: dict) -> tuple[str, int, AddressSpace]:
    path, proc = checksum_procs[request.param]
    return path, proc.pid, AddressSpace.from_pid(proc.pid)


@pytest.fixture(scope="module")
def gdb_answers(space: AddressSpace, sleeper: subprocess.Popen) -> dict[str, str]:
    """gdb attached once to the sleeping process; answers keyed by the command asked."""
    gdb = need("gdb")
    malloc = space.resolve("libc:malloc").address
    commands = ["info address malloc", f"info symbol {malloc + 16:#x}"]
    argv = [gdb, "-nx", "-batch", "-iex", "set debuginfod enabled off", "-p", str(sleeper.pid)]
    for command in commands:
        argv += ["-ex", f"echo <<<{command}>>>\\n", "-ex", command]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60).stdout
    answers = {}
    for command in commands:
        match = re.search(re.escape(f"<<<{command}>>>") + r"\n(.*)", out)
        if match is None:
            pytest.skip(f"gdb could not attach or answer {command!r}: {out[-300:]}")
        answers[command] = match.group(1)
    return answers


# --------------------------------------------------------------------------------------------------
# ElfFile against nm and readelf


def test_lookup_matches_nm_dynamic_on_libc(libc_path: str) -> None:
    """Every defined dynamic symbol nm lists (with its version) is found, with nm's value and kind."""
    elf = load_elf(libc_path)
    listed = nm_defined(libc_path, dynamic=True)
    assert len(listed) > 2000
    for value, letter, name in listed:
        found = [s for s in elf.lookup(name) if s.value == value]
        assert found, f"{name} at {value:#x}"
        sym = found[0]
        assert (sym.type == "IFUNC") == (letter == "i"), name
        if letter in "VW":
            assert sym.bind == "WEAK", name
        base = name.split("@")[0]
        assert any(s.value == value for s in elf.lookup(base)), name


def test_versioned_symbols_are_exactly_nms(libc_path: str) -> None:
    """The other direction: every .dynsym entry the ElfFile reports with a version is one nm -D reports."""
    listed = {(name, value) for value, _, name in nm_defined(libc_path, dynamic=True)}
    ours = {
        (f"{s.name}{'@' if s.hidden else '@@'}{s.version}", s.value)
        for s in load_elf(libc_path).symbols()
        if s.version is not None
    }
    assert ours <= listed
    assert len(ours) == len([n for n, _ in listed if "@" in n])


def test_default_version_wins(libc_path: str) -> None:
    """memcpy has two versions in libc: a plain lookup returns the default (@@) one first."""
    elf = load_elf(libc_path)
    default = nm_value(libc_path, "memcpy@@GLIBC_2.14", dynamic=True)
    old = nm_value(libc_path, "memcpy@GLIBC_2.2.5", dynamic=True)
    assert [s.value for s in elf.lookup("memcpy")][:1] == [default]
    assert [s.value for s in elf.lookup("memcpy@GLIBC_2.2.5")] == [old]
    assert [s.value for s in elf.lookup("memcpy@@GLIBC_2.14")] == [default]
    assert elf.lookup("memcpy@@GLIBC_2.2.5") == []  # that version exists only as a hidden one


def test_lookup_matches_nm_on_sample(sample: Callable[[str], str]) -> None:
    """A binary with .symtab: every defined symbol nm lists, locals included, with nm's value."""
    path = sample("checksum")
    elf = load_elf(path)
    listed = nm_defined(path, dynamic=False)
    assert any(name == "work" for _, _, name in listed)
    for value, _, name in listed:
        assert any(s.value == value for s in elf.lookup(name)), f"{name} at {value:#x}"
    assert {"work", "main", "never_called"} <= set(elf.names())


def test_undefined_symbols_are_skipped(sample: Callable[[str], str]) -> None:
    """The executable's .dynsym lists malloc as UND: lookup must not return it."""
    assert "malloc" in run(need("nm"), "-D", "--undefined-only", sample("checksum"))
    assert load_elf(sample("checksum")).lookup("malloc") == []


def test_build_id_and_soname_match_readelf(libc_path: str, sample: Callable[[str], str]) -> None:
    for path in (libc_path, sample("checksum")):
        notes = run(need("readelf"), "-n", path)
        expected = re.search(r"Build ID: ([0-9a-f]+)", notes)
        assert load_elf(path).build_id == (expected.group(1) if expected else None)
    soname = re.search(r"Library soname: \[(.*)\]", run(need("readelf"), "-d", libc_path))
    assert soname is not None and load_elf(libc_path).soname == soname.group(1)
    assert load_elf(sample("checksum")).soname is None


@pytest.mark.parametrize("name", ["checksum", "checksum_nopie"])
def test_file_offsets_match_readelf(sample: Callable[[str], str], name: str) -> None:
    path = sample(name)
    elf = load_elf(path)
    work = nm_value(path, "work")
    offset = file_offset(path, work)
    assert elf.vaddr_to_offset(work) == offset
    assert elf.offset_to_vaddr(offset) == work
    with open(path, "rb") as f:
        f.seek(offset)
        assert elf.read(work, 16) == f.read(16)
    assert elf.is_pie_or_dyn == (name == "checksum")
    with pytest.raises(BadProbeAddress):
        elf.offset_to_vaddr(os.path.getsize(path) + 0x1000)


def test_symbolize_matches_addr2line(sample: Callable[[str], str]) -> None:
    path = sample("checksum")
    elf = load_elf(path)
    probes = [nm_value(path, "work"), nm_value(path, "work") + 4, nm_value(path, "main") + 8]
    out = run(need("addr2line"), "-f", "-e", path, *(f"{a:#x}" for a in probes)).splitlines()
    for address, function in zip(probes, out[0::2]):
        found = elf.symbolize(address)
        assert found is not None
        assert found[0].name == function
        assert found[1] == address - nm_value(path, function)


def test_parse_errors_become_utrace_errors(tmp_path: Path, libc_path: str) -> None:
    """pyelftools' exceptions never escape: a UtraceError naming the file does."""
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"not an ELF file at all")
    truncated = tmp_path / "truncated.so"
    truncated.write_bytes(Path(libc_path).read_bytes()[:128])
    for path in (garbage, truncated, tmp_path / "missing"):
        with pytest.raises(UtraceError) as info:
            load_elf(str(path)).lookup("malloc")
        assert type(info.value) is UtraceError and str(path) in str(info.value)


def test_parsed_once_per_file(libc_path: str) -> None:
    """The cache is keyed by the file's identity: a symlinked path shares the parsed file."""
    elf = load_elf(libc_path)
    assert load_elf(libc_path) is elf
    assert load_elf(os.path.realpath(libc_path)) is elf
    assert isinstance(elf, ElfFile)


# --------------------------------------------------------------------------------------------------
# a live process: sleep


def test_maps_and_modules(space: AddressSpace, sleeper: subprocess.Popen) -> None:
    maps = read_maps(sleeper.pid)
    assert maps == space.mappings
    names = [m.name for m in space.modules]
    assert names[0] == "sleep" and space.executable is space.modules[0]
    assert names[-1].startswith("ld-linux") and "libc.so.6" in names
    libc = space.module_named("libc")
    libc_maps = [m for m in maps if m.path == libc.path]
    assert libc.start == min(m.start for m in libc_maps)
    assert libc.bias == min(m.start for m in libc_maps if m.offset == 0)  # first PT_LOAD: vaddr 0, offset 0
    assert space.module_at(libc.start) is libc and space.module_at(0x10) is None


def test_malloc_matches_gdb(space: AddressSpace, gdb_answers: dict[str, str]) -> None:
    loc = space.resolve("libc:malloc")
    assert f"{loc.address:#x}" in gdb_answers["info address malloc"]
    assert gdb_answers[f"info symbol {loc.address + 16:#x}"].startswith("malloc + 16 in section .text")
    assert space.symbolize(loc.address + 16) == (loc.module, "malloc", 16)
    assert space.describe(loc.address + 16) == "libc.so.6:malloc+0x10"


def test_malloc_matches_maps_and_nm(space: AddressSpace, libc_path: str) -> None:
    """Second oracle: the load address of libc's first mapping plus nm's value."""
    libc = space.module_named("libc.so.6")
    base = next(m.start for m in space.mappings if m.path == libc.path and m.offset == 0)
    loc = space.resolve("libc:malloc")
    assert loc.address == base + nm_value(libc_path, "malloc@@GLIBC_2.2.5", dynamic=True)
    assert (loc.symbol, loc.offset, loc.sym_start, loc.ifunc) == ("malloc", 0, loc.address, False)
    assert loc.describe() == "libc.so.6:malloc+0x0"
    assert space.resolve("malloc") == loc  # not defined in sleep: the search reaches libc


def test_ifunc_detection(space: AddressSpace, libc_path: str) -> None:
    libc = space.module_named("libc")
    for name, nm_name in (("strlen", "strlen@@GLIBC_2.2.5"), ("memcpy", "memcpy@@GLIBC_2.14")):
        loc = space.resolve(f"libc:{name}")
        assert loc.ifunc, name
        assert loc.address == libc.bias + nm_value(libc_path, nm_name, dynamic=True)
    old = space.resolve("libc:memcpy@GLIBC_2.2.5")
    assert not old.ifunc
    assert old.address == libc.bias + nm_value(libc_path, "memcpy@GLIBC_2.2.5", dynamic=True)
    strlen = space.resolve("strlen")
    raw = space.resolve(f"{strlen.address:#x}")  # an address is probed as given: the resolver itself
    assert (raw.symbol, raw.ifunc) == ("strlen", False)
    with pytest.raises(BadProbeAddress, match="IFUNC"):
        space.resolve("strlen+4")  # would be inside the resolver, which never runs again


def test_file_offset_target(space: AddressSpace, libc_path: str) -> None:
    malloc = nm_value(libc_path, "malloc@@GLIBC_2.2.5", dynamic=True)
    offset = file_offset(libc_path, malloc)
    for spec in (f"{libc_path}:{offset:#x}", f"libc:{offset:#x}"):
        loc = space.resolve(spec)
        assert (loc.address, loc.symbol, loc.offset) == (space.resolve("libc:malloc").address, "malloc", 0)


def test_module_named(space: AddressSpace, libc_path: str) -> None:
    libc = space.module_named("libc.so.6")
    assert space.module_named("libc") is libc
    assert space.module_named(libc_path) is libc  # /lib/... is /usr/lib/... through a symlink
    assert space.module_named(os.path.realpath(libc_path)) is libc
    assert space.module_named("sleep") is space.executable
    with pytest.raises(ModuleNotFound) as info:
        space.module_named("libcap")
    assert "libc.so.6" in str(info.value)


@pytest.mark.parametrize(
    ("file_name", "soname", "matches"),
    [
        ("libc.so.6", "libc.so.6", True),
        ("libc-2.36.so", "libc.so.6", True),
        ("libcap.so.2", "libcap.so.2", False),
        ("libc_malloc_debug.so.0", "libc_malloc_debug.so.0", False),
        ("libcrypt.so.1", None, False),
    ],
)
def test_prefix_rule(file_name: str, soname: str | None, matches: bool) -> None:
    module = SimpleNamespace(name=file_name, elf=SimpleNamespace(soname=soname))
    assert (_name_matches("libc", module) is not None) == matches  # type: ignore[arg-type]


def test_exe_path(sleeper: subprocess.Popen) -> None:
    """exe_path names the executable; one that is not mapped (a script) falls back to /proc/PID/exe."""
    for exe_path in (shutil.which("sleep"), __file__):
        executable = AddressSpace.from_pid(sleeper.pid, exe_path=exe_path).executable
        assert executable is not None and executable.name == "sleep"


def test_load_order_decides_between_libraries(sleeper: subprocess.Popen, libc_path: str) -> None:
    """_dl_catch_exception is defined by libc and by ld.so: the first in search order wins."""
    default = AddressSpace.from_pid(sleeper.pid)
    assert default.resolve("_dl_catch_exception").module.name == "libc.so.6"
    ld_first = AddressSpace.from_pid(sleeper.pid, load_order=["", LD_SO, libc_path])
    assert [m.name for m in ld_first.modules][:2] == ["sleep", os.path.basename(os.path.realpath(LD_SO))]
    loc = ld_first.resolve("_dl_catch_exception")
    ld_value = nm_value(LD_SO, "_dl_catch_exception@@GLIBC_PRIVATE", dynamic=True)
    assert loc.address == loc.module.bias + ld_value and loc.module.name.startswith("ld-linux")


def test_errors_and_suggestions(space: AddressSpace) -> None:
    with pytest.raises(SymbolNotFound) as info:
        space.resolve("mallocc")
    assert "malloc" in info.value.suggestions and len(info.value.suggestions) <= 5
    assert info.value.module is None
    with pytest.raises(SymbolNotFound) as info:
        space.resolve("libc:mallocc")
    assert info.value.module == "libc.so.6" and "malloc" in info.value.suggestions
    with pytest.raises(ModuleNotFound):
        space.resolve("libcap:malloc")
    for spec in ("", "libc:", ":malloc", "malloc+", "malloc+zz", "0xzz", "a b", "libc:123", "malloc-4"):
        with pytest.raises(UsageError) as usage:
            space.resolve(spec)
        assert type(usage.value) is UsageError and "0xADDRESS" in str(usage.value), spec
    with pytest.raises(BadProbeAddress):
        space.resolve("libc:malloc+0x100000")  # beyond the end of malloc
    with pytest.raises(BadProbeAddress):
        space.resolve("0x10")  # in no module


def test_vdso_is_symbolized_not_searched(space: AddressSpace) -> None:
    vdso = space.vdso
    if vdso is None:
        pytest.skip("no [vdso] in this process")
    assert vdso not in space.modules
    assert vdso.start == next(m.start for m in space.mappings if m.path == "[vdso]")
    sym = vdso.elf.lookup("__vdso_clock_gettime")[0]
    found = space.symbolize(vdso.bias + sym.value + 1)
    assert found is not None and found[0] is vdso and found[2] == 1
    assert found[1] in ("clock_gettime", "__vdso_clock_gettime")


def test_cold_resolve_is_fast(sleeper: subprocess.Popen) -> None:
    clear_cache()
    start = time.perf_counter()
    AddressSpace.from_pid(sleeper.pid).resolve("libc:malloc")
    assert time.perf_counter() - start < 1.0


def test_process_gone() -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()
    with pytest.raises(ProcessGone):
        read_maps(proc.pid)
    with pytest.raises(ProcessGone):
        AddressSpace.from_pid(proc.pid)


# --------------------------------------------------------------------------------------------------
# live samples: PIE and non-PIE executables with .symtab


def test_work_in_executable(target: tuple[str, int, AddressSpace]) -> None:
    path, pid, space = target
    loc = space.resolve("work")
    exe = space.executable
    assert exe is not None and loc.module is exe
    base = next(m.start for m in space.mappings if m.path == exe.path and m.offset == 0)
    first_load_vaddr = min(vaddr for _, vaddr, _ in readelf_loads(path))
    assert loc.address == base - first_load_vaddr + nm_value(path, "work")
    if not exe.elf.is_pie_or_dyn:
        assert loc.address == nm_value(path, "work")  # non-PIE: nm's value is the address
    # the kernel mapped the file: the process's bytes are the file's bytes
    with open(f"/proc/{pid}/mem", "rb") as mem:
        mem.seek(loc.address)
        assert mem.read(16) == exe.elf.read(nm_value(path, "work"), 16)
    assert loc.describe() == f"{exe.name}:work+0x0"


def test_offsets_addresses_and_file_offsets(target: tuple[str, int, AddressSpace]) -> None:
    path, _, space = target
    work = space.resolve("work")
    plus4 = space.resolve("work+4")
    assert (plus4.address, plus4.offset, plus4.sym_start) == (work.address + 4, 4, work.address)
    assert space.resolve(f"{os.path.basename(path)}:work+0x4") == plus4
    assert plus4.describe() == f"{os.path.basename(path)}:work+0x4"
    absolute = space.resolve(f"{work.address + 4:#x}")
    assert (absolute.symbol, absolute.offset, absolute.sym_start) == ("work", 4, work.address)
    by_offset = space.resolve(f"{path}:{file_offset(path, nm_value(path, 'work')):#x}")
    assert (by_offset.address, by_offset.symbol) == (work.address, "work")
    header = space.executable.start  # type: ignore[union-attr]
    raw = space.resolve(f"{header:#x}")  # the ELF header: inside the module, in no symbol
    assert (raw.symbol, raw.offset, raw.sym_start) == (None, 0, header)
    assert raw.describe() == f"{header:#x}"
    assert space.symbolize(header) == (space.executable, None, 0)


def test_list_shows_what_readelf_shows_and_never_runs_the_program(sample, utrace_cli) -> None:
    """-l 'MODULE:GLOB' -- COMMAND: the program's functions (readelf's defined FUNC and IFUNC
    symbols), each a probe target; the program is stopped before its own code runs, then killed."""
    exe = sample("checksum")
    res = utrace_cli("-l", "checksum:*", "--", exe, "3")
    assert res.returncode == 0, res.stderr
    listed = res.stdout.splitlines()  # "start" would be here had main() run
    readelf = subprocess.run(["readelf", "-sW", exe], capture_output=True, text=True, check=True).stdout
    expected = sorted({
        f[7].split("@")[0] for f in (line.split() for line in readelf.splitlines())
        if len(f) >= 8 and f[3] in ("FUNC", "IFUNC") and f[6] != "UND"
    })  # fmt: skip
    assert listed == [f"checksum:{name}" for name in expected] and "checksum:work" in listed
    res = utrace_cli("-l", "libc:mem*", "str*cmp", "--", exe, "3")
    assert res.returncode == 0 and "libc.so.6:memcpy" in res.stdout and "libc.so.6:strcmp" in res.stdout
    res = utrace_cli("-l", "no_such_function_*", "--", exe, "3")
    assert (res.returncode, res.stdout) == (1, "") and "no function matches" in res.stderr


# --- functions named as in C++ ---------------------------------------------------------------------
CXX_TARGETS = [
    "app::scale(int)",
    "app::scale(double)",
    "app::Square::area",
    "app::Square::area() const",
    "app::twice<int>",
    "cxx_names:app::twice<double>(double)",
    "app::(anonymous namespace)::hidden",
    "plain",  # a C++ function of the global namespace by its plain name, as gdb takes it
]


def _nm_demangled(exe: str) -> dict:
    """binutils' view: demangled name (without return type and spaces) -> address."""
    nm = subprocess.run(["nm", "-C", "--defined-only", exe], capture_output=True, text=True, check=True)
    out = nm.stdout
    found = {}
    for line in out.splitlines():
        value, kind, name = line.split(" ", 2)
        if kind.lower() in ("t", "w"):
            found[symbols.without_return_type(name).replace(" ", "")] = int(value, 16)
    return found


@pytest.mark.parametrize("target", CXX_TARGETS)
def test_cxx_names_resolve_where_nm_demangles_them(sample, utrace_cli, target) -> None:
    """A target written as in C++ is the function nm -C shows under that name, and a probe on it
    sees every call (cxx_names calls each function N times)."""
    exe = sample("cxx_names")
    nm = _nm_demangled(exe)
    with utrace.launch([exe, "5"], output=Output(io.StringIO())) as t:
        loc = t.procs[t.leader].address_space().resolve(target)
        t.run()
    name = target.split(":", 1)[1] if target.startswith("cxx_names:") else target
    function, signature = symbols.cxx_signature(name)
    with_parameters = signature != function
    wanted = [
        addr for text, addr in nm.items()
        if (text if with_parameters else symbols.cxx_function_name(text)) == signature
    ]  # fmt: skip
    assert wanted == [loc.address - loc.module.bias]
    res = utrace_cli(target, "--", exe, "5")
    plain = subprocess.run([exe, "5"], capture_output=True, text=True)
    assert (res.returncode, res.stdout) == (plain.returncode, plain.stdout)
    assert len([ln for ln in res.stderr.splitlines() if "(cxx_names:" in ln]) == 5, res.stderr


def test_cxx_names_in_definitions_errors_listing_and_stacks(sample, utrace_cli) -> None:
    exe = sample("cxx_names")
    res = utrace_cli("p app::scale(int) x=$arg1:s32", "--", exe, "4")
    assert res.returncode == 0, res.stderr
    assert [ln.split("x=")[1] for ln in res.stderr.splitlines() if "x=" in ln] == ["0", "1", "2", "3"]
    res = utrace_cli("app::scale", "--", exe, "4")  # two overloads: which one?
    assert res.returncode == 2 and len(res.stderr.splitlines()) == 1
    assert "'app::scale(int)'" in res.stderr and "'app::scale(double)'" in res.stderr
    res = utrace_cli("app::scael(int)", "--", exe, "4")
    assert res.returncode == 2 and "did you mean: app::scale" in res.stderr
    res = utrace_cli("(anonymous namespace)::hidden", "--", exe, "4")  # suggested as demangled
    assert res.returncode == 2 and "did you mean: app::(anonymous namespace)::hidden?" in res.stderr
    res = utrace_cli("-l", "cxx_names:app::*", "--", exe)
    assert res.stdout.splitlines() == [
        "cxx_names:app::(anonymous namespace)::hidden(long)",
        "cxx_names:app::Square::area() const",
        "cxx_names:app::Square::~Square()",
        "cxx_names:app::scale(double)",
        "cxx_names:app::scale(int)",
        "cxx_names:app::twice<double>(double)",
        "cxx_names:app::twice<int>(int)",
    ]
    res = utrace_cli("-H", "STACKTRACE", "app::Square::area", "--", exe, "1")
    frames = [ln.strip() for ln in res.stderr.splitlines() if ln.lstrip().startswith("#")]
    # demangled as gdb's bt shows them ("#0  app::Square::area (this=...) at ...")
    assert " app::Square::area() const+0x0 (cxx_names) " in frames[0] and " main+" in frames[1]
