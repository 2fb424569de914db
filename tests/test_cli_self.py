"""``utrace --self``: a Python script's own system calls, intercepted in-process, from the CLI."""

from __future__ import annotations


def test_self_trace_prints_strace_lines_and_injects(utrace_cli, tmp_path):
    script = tmp_path / "s.py"
    script.write_text(
        "import os, sys\n"
        "print('ppid', os.getppid())\n"
        "try:\n    open('/etc/hostname').read()\nexcept PermissionError:\n    print('denied')\n"
        "sys.exit(3)\n"
    )
    out = tmp_path / "trace"
    res = utrace_cli("--self", "--syscalls=getppid,openat", "--inject=getppid:retval=7",
                     "--inject=openat:error=EACCES", "-o", str(out), "--", str(script))  # fmt: skip
    assert res.returncode == 3, res.stderr
    assert res.stdout == "ppid 7\ndenied\n"
    lines = out.read_text().splitlines()
    assert "getppid() = 7 (INJECTED)" in lines
    assert (
        'openat(AT_FDCWD, "/etc/hostname", O_RDONLY|O_CLOEXEC) = -1 EACCES (Permission denied) (INJECTED)'
        in lines
    )


def test_self_trace_missing_script(utrace_cli, tmp_path):
    res = utrace_cli("--self", "-S", "--", str(tmp_path / "nope.py"))
    assert res.returncode == 127
    assert "No such file or directory" in res.stderr
