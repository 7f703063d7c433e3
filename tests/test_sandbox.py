"""The sandbox holds each limit it claims: time, memory, processes, files outside its folder, secrets,
network. Every hostile program here is bounded itself (a fixed number of children, a fixed allocation),
so a broken sandbox fails the test without harming the machine."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path

import pytest

import referee
from referee.errors import RefereeError
from referee.programs import sandbox
from referee.programs.sandbox import Limits, features, run_python


def _marked(marker: str) -> list[int]:
    """Processes whose command line holds ``marker`` (``run_python``'s args are in the launcher's)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{entry}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(entry))
    return found


def _gone(marker: str, within_s: float = 5.0) -> bool:
    deadline = time.monotonic() + within_s
    while _marked(marker):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _needs(*names: str) -> None:
    """Skip where the kernel refused what the test checks (the warning and ``features()`` say so)."""
    missing = [name for name in names if not features()[name]]
    if missing:
        pytest.skip(f"this machine gives the sandbox no {', '.join(missing)} protection")


@pytest.fixture
def marker():
    """A unique word to find a run's processes by; whatever a broken sandbox left running is killed after."""
    word = f"referee-sandbox-test-{uuid.uuid4().hex}"
    yield word
    for pid in _marked(word):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def test_a_plain_program_runs_and_reports_its_isolation():
    result = run_python("import sys, math\nprint(sum(int(x) for x in sys.stdin.read().split()), math.pi > 3)",
                        stdin="1 2 3")
    assert result.ok and result.stdout == "6 True\n"
    found = features()
    assert found["runs"] and found["limits"]
    if os.getuid() == 0:
        assert run_python("import os; print(os.getuid())").stdout.strip() == "65534"  # dropped to nobody


def test_an_infinite_loop_is_stopped_at_the_timeout():
    start = time.monotonic()
    result = run_python("while True:\n    pass\n", Limits(timeout_s=2, cpu_s=30))
    assert result.timed_out and result.returncode is None and not result.ok
    assert time.monotonic() - start < 10


def test_the_cpu_limit_ends_a_busy_program_before_a_long_timeout():
    result = run_python("while True:\n    pass\n", Limits(timeout_s=30, cpu_s=1))
    assert not result.timed_out and result.returncode != 0 and result.seconds < 15


def test_a_memory_hog_fails_inside_its_limit():
    result = run_python("blob = bytearray(2 * 1024 ** 3)\nprint('allocated')", Limits(memory_mb=256))
    assert not result.ok and "allocated" not in result.stdout and "MemoryError" in result.stderr


def test_children_are_limited_in_number_and_do_not_outlive_the_program(marker):
    program = f"""
import os, time
made, refused = 0, 0
for _ in range(40):  # bounded: never an open-ended fork bomb
    try:
        pid = os.fork()
    except OSError:
        refused += 1
        continue
    if pid == 0:
        os.setsid()  # try to leave the process group
        time.sleep(60)  # {marker}
        os._exit(0)
    made += 1
print(made, refused)
"""
    result = run_python(program, Limits(processes=8, timeout_s=20), args=[marker])  # the marker: in argv
    made, refused = map(int, result.stdout.split())
    assert made < 8 and refused > 0
    assert _gone(marker)  # every child ended with the program (PID namespace, or the group kill)


def test_files_outside_the_sandbox_folder_cannot_be_written(tmp_path):
    outside = tmp_path / "outside.txt"
    program = f"""
for path in [{str(outside)!r}, "/etc/referee-sandbox-test", "/tmp/referee-sandbox-escape-test"]:
    try:
        open(path, "w").write("escaped")
        print("wrote", path)
    except OSError as e:
        print("refused", type(e).__name__)
open("inside.txt", "w").write("fine")
print(open("inside.txt").read())
"""
    result = run_python(program)
    assert result.ok and "wrote" not in result.stdout and result.stdout.strip().endswith("fine")
    assert not outside.exists() and not os.path.exists("/etc/referee-sandbox-test")
    assert not os.path.exists("/tmp/referee-sandbox-escape-test")


def test_secrets_in_the_environment_do_not_reach_the_program(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-must-not-leak")
    monkeypatch.setenv("REFEREE_API_KEY", "also-secret")
    result = run_python("import os\nprint(sorted(os.environ))\nprint(os.environ.get('OPENAI_API_KEY'))")
    assert "sk-test-must-not-leak" not in result.stdout and "also-secret" not in result.stdout
    assert result.stdout.splitlines()[-1] == "None"


def test_no_network_even_to_this_machine():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        program = f"""
import socket
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=2)
    print("connected")
except OSError as e:
    print("refused", type(e).__name__)
"""
        result = run_python(program)
    assert result.ok and result.stdout.startswith("refused")


def test_an_external_command_can_run_the_program_instead(tmp_path):
    result = run_python("print('through the external command')",
                        external=["/bin/sh", "-c", "cd {dir} && exec python3 -I main.py"])
    assert result.ok and result.stdout == "through the external command\n" and result.isolation == {}


def test_file_names_stay_inside_the_folder():
    with pytest.raises(ValueError, match="plain name"):
        run_python("print(1)", files={"../escape.py": "x"})


def test_a_program_that_leaves_its_session_is_ended_at_the_timeout(marker):
    _needs("pid")
    program = "import os, time\nos.setsid()\ntime.sleep(20)\nprint('outlived the timeout')"
    start = time.monotonic()
    result = run_python(program, Limits(timeout_s=2), args=[marker])
    assert result.timed_out and "outlived" not in result.stdout
    assert time.monotonic() - start < 2 + 3  # the kernel ended the PID namespace; nothing held the pipes
    assert _gone(marker, within_s=1)


def test_killing_the_caller_ends_the_program_and_removes_its_folder(marker):
    _needs("pid")
    parent = tempfile.mkdtemp(prefix="referee-sandbox-test-")  # the caller's TMPDIR, to find the folder in
    os.chmod(parent, 0o755)
    caller = ("import os\nfrom referee.programs.sandbox import Limits, run_python\n"
              "run_python(\"import os, time\\nos.setsid()\\nopen('started', 'w').close()\\ntime.sleep(30)\", "
              "Limits(timeout_s=30), args=[os.environ['MARK']])")
    proc = subprocess.Popen([sys.executable, "-c", caller], env={**os.environ, "TMPDIR": parent, "MARK": marker})
    try:
        deadline = time.monotonic() + 20
        while not glob.glob(os.path.join(parent, "referee-sandbox-*", "started")) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _marked(marker), "the program did not start"
        proc.kill()
        proc.wait(5)
        assert _gone(marker)  # the launcher is told (PR_SET_PDEATHSIG), and so is the namespace's init
        deadline = time.monotonic() + 5
        while os.listdir(parent) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert os.listdir(parent) == []
    finally:
        proc.kill()
        proc.wait(5)
        shutil.rmtree(parent, ignore_errors=True)


def _leftovers(marker: str) -> list[str]:
    return [p for base in ("/tmp", "/dev/shm", "/var/tmp") for p in glob.glob(f"{base}/{marker}*")]


def test_writes_outside_the_folder_fail_even_through_links_renames_and_ctypes(marker):
    _needs("mount", "readonly", "tmp")
    visible = Path("/tmp") / f"{marker}-host-file"
    visible.write_text("the machine's /tmp")
    program = f"""
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
print("host /tmp visible:", os.path.exists({str(visible)!r}))
open("mine", "w").write("x")
for base in ["/tmp", "/dev/shm", "/var/tmp"]:
    target = os.path.join(base, {marker!r})
    for how, attempt in [("mkdir", lambda: os.mkdir(target + "-dir")),
                         ("symlink", lambda: os.symlink("/etc/passwd", target + "-link")),
                         ("rename", lambda: os.rename("mine", target + "-renamed")),
                         ("link", lambda: os.link("mine", target + "-hardlink"))]:
        try:
            attempt()
            print(how, base, "done")
        except OSError as e:
            print(how, base, "refused", e.errno)
    fd = libc.open((target + "-ctypes").encode(), os.O_WRONLY | os.O_CREAT, 0o644)
    print("ctypes open", base, "refused" if fd < 0 else "done")
"""
    try:
        result = run_python(program)
        assert result.ok, result.stderr
        assert "host /tmp visible: False" in result.stdout
        assert _leftovers(marker) == [str(visible)]
    finally:
        for path in _leftovers(marker):
            if os.path.isdir(path) and not os.path.islink(path):
                os.rmdir(path)
            else:
                os.unlink(path)


def _unix_listener(address: str) -> socket.socket:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(address)
    if not address.startswith("\0"):
        os.chmod(address, 0o777)  # anyone on the machine may connect, nobody included
    server.listen(1)
    server.setblocking(False)
    return server


def test_unix_sockets_of_the_machine_cannot_be_reached(marker):
    """A socket file in the world-writable /tmp (hidden by the private /tmp), one in /var/tmp (read-only, which
    does not stop a connect: the seccomp filter does), and an abstract one (per network namespace)."""
    _needs("seccomp")
    addresses = [f"/tmp/{marker}.sock", f"/var/tmp/{marker}.sock", f"\0{marker}"]
    program = f"""
import ctypes, struct
libc = ctypes.CDLL(None, use_errno=True)
for address in {addresses!r}:
    raw = address.encode() + (b"" if address.startswith("\\0") else b"\\0")
    fd = libc.socket(1, 1, 0)  # AF_UNIX, SOCK_STREAM, through ctypes: no audit hook sees it
    if fd < 0:
        print("no socket", ctypes.get_errno())
        continue
    here = struct.pack("H", 1) + raw
    print("connected" if libc.connect(fd, here, len(here)) == 0 else f"refused {{ctypes.get_errno()}}")
"""
    servers = [_unix_listener(a) for a in addresses]
    try:
        result = run_python(program)
        assert result.ok and len(result.stdout.splitlines()) == 3, result.stderr
        assert "connected" not in result.stdout
        for server in servers:
            with pytest.raises(BlockingIOError):
                server.accept()
    finally:
        for server in servers:
            server.close()
        for address in addresses[:2]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(address)


def test_only_ip_sockets_can_be_made_and_socketpairs_still_work():
    _needs("net", "seccomp")
    program = """
import socket
made = []
for name, family in [("unix", 1), ("inet", 2), ("inet6", 10), ("netlink", 16), ("packet", 17), ("vsock", 40)]:
    try:
        socket.socket(family, socket.SOCK_DGRAM if family in (16, 17, 40) else socket.SOCK_STREAM).close()
        made.append(name)
    except OSError:
        pass
a, b = socket.socketpair()
a.sendall(b"pair")
print(made, b.recv(4).decode())
"""
    result = run_python(program)
    assert result.ok, result.stderr
    assert result.stdout.strip() == "['inet', 'inet6'] pair"


def test_output_is_capped_and_read_as_it_comes():
    grown_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    program = ("import sys\nchunk = 'x' * 2 ** 20\nfor _ in range(200):\n    sys.stdout.write(chunk)\n"
               "sys.stderr.write('e' * 100_000)\nprint('finished', file=sys.stderr)")
    result = run_python(program, Limits(output_kb=64, timeout_s=30))
    assert result.ok  # the rest was read and dropped: the program was neither blocked nor killed
    assert result.stdout == "x" * 65536 and result.stdout_truncated
    assert result.stderr == "e" * (65536 - 9) + "finished\n" and result.stderr_truncated  # its end: the traceback
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - grown_before) < 100 * 1024  # KB: not 200 MB
    small = run_python("print('short')")
    assert small.stdout == "short\n" and not small.stdout_truncated and not small.stderr_truncated


def test_a_program_that_closes_its_output_still_runs_to_its_end():
    result = run_python("import os, time\nos.close(1)\nos.close(2)\ntime.sleep(1)\nraise SystemExit(3)")
    assert result.returncode == 3 and not result.timed_out and result.seconds >= 1


def test_proc_shows_only_the_sandbox_processes(marker):
    _needs("proc")
    witness = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", marker])
    program = f"""
import os
pids = [p for p in os.listdir("/proc") if p.isdigit()]
seen = False
for p in pids:
    try:
        seen = seen or {marker!r}.encode() in open(f"/proc/{{p}}/cmdline", "rb").read()
    except OSError:
        pass
print(len(pids), seen)
"""
    try:
        result = run_python(program)
    finally:
        witness.kill()
        witness.wait(5)
    count, seen = result.stdout.split()
    assert seen == "False" and int(count) <= 3  # the init and the program


def test_features_names_each_protection_and_require_is_checked():
    found = features()
    for name in ("pid", "net", "ipc", "mount", "readonly", "tmp", "proc", "seccomp", "nobody", "limits", "output_cap"):
        assert isinstance(found[name], bool), name
    assert found["output_cap"] and all(not found[name] for name in found["missing"])
    with pytest.raises(RefereeError, match="unknown protection"):
        run_python("print(1)", Limits(require=("pid", "telepathy")))
    available = tuple(name for name in sandbox.PROTECTIONS if found[name])
    assert run_python("print(1)", Limits(require=available)).stdout == "1\n"


def test_missing_protections_are_named_in_one_warning_per_process(monkeypatch):
    monkeypatch.setattr(sandbox, "_warned", False)
    monkeypatch.setattr(sandbox, "features", lambda: {"missing": ["pid", "mount"]})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_python("print(1)")
        run_python("print(2)")
    assert len(caught) == 1 and "pid, mount" in str(caught[0].message) and "\n" not in str(caught[0].message)


# A kernel (or container) that refuses namespaces, made here by a seccomp filter failing unshare() with EPERM.
_NO_UNSHARE = """
import ctypes, platform, struct
arch, nr = {"x86_64": (0xC000003E, 272), "aarch64": (0xC00000B7, 97)}[platform.machine()]
code = [(0x20, 0, 0, 4), (0x15, 1, 0, arch), (0x06, 0, 0, 0x7FFF0000), (0x20, 0, 0, 0),
        (0x15, 0, 1, nr), (0x06, 0, 0, 0x00050001), (0x06, 0, 0, 0x7FFF0000)]
rules = ctypes.create_string_buffer(b"".join(struct.pack("=HBBI", *c) for c in code))
fprog = ctypes.create_string_buffer(struct.pack("=HxxxxxxQ", len(code), ctypes.addressof(rules)))
libc, word = ctypes.CDLL(None, use_errno=True), ctypes.c_ulong
assert libc.prctl(38, word(1), word(0), word(0), word(0)) == 0
assert libc.prctl(22, word(2), word(ctypes.addressof(fprog)), word(0), word(0)) == 0
"""


@pytest.mark.skipif(platform.machine() not in ("x86_64", "aarch64"), reason="the test's filter knows these two")
def test_without_namespaces_it_warns_returns_on_time_and_refuses_what_is_required(marker):
    code = _NO_UNSHARE + """
import json, os, time, warnings
from referee.errors import RefereeError
from referee.programs.sandbox import Limits, features, run_python
escape = "import os, time\\nif os.fork() == 0:\\n    os.setsid()\\n    time.sleep(30)\\ntime.sleep(30)"
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    plain = run_python("print(1)")
    start = time.monotonic()
    result = run_python(escape, Limits(timeout_s=2), args=[os.environ["MARK"]])
    took = time.monotonic() - start
try:
    run_python("print(1)", Limits(require=("pid", "mount")))
    refused = ""
except RefereeError as e:
    refused = str(e)
print(json.dumps({"warnings": [str(w.message) for w in caught], "missing": features()["missing"],
                  "plain": plain.stdout, "took": took, "timed_out": result.timed_out, "refused": refused}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "MARK": marker})
    got = json.loads(done.stdout.splitlines()[-1])
    assert got["plain"] == "1\n"
    assert {"pid", "net", "ipc", "mount", "tmp", "proc"} <= set(got["missing"]) and "seccomp" not in got["missing"]
    assert len(got["warnings"]) == 1 and "pid" in got["warnings"][0]
    assert got["timed_out"] and got["took"] < 2 + 3  # an escaped child holds the pipes; the parent stops anyway
    assert "pid" in got["refused"] and "mount" in got["refused"]


def _readable_by_nobody(path: Path) -> bool:
    return all(p.stat().st_mode & 0o005 == 0o005 for p in [path, *path.parents])


@pytest.mark.skipif(os.getuid() != 0 or not shutil.which("setpriv"), reason="needs root to become another user")
def test_as_another_user_the_namespaces_hold_and_nobody_can_be_required():
    src, python = Path(referee.__file__).resolve().parents[1], sandbox.interpreter()
    if not _readable_by_nobody(src):
        pytest.skip("the source tree is not readable by nobody")
    outside = tempfile.mkdtemp(prefix="referee-sandbox-test-", dir="/var/tmp")
    os.chown(outside, sandbox.NOBODY, sandbox.NOBODY)  # its user may write here, but not from inside
    program = f"""
import os
for line in open("/proc/self/status"):
    if line.startswith("CapEff"):
        print(line.split()[1])
try:
    open({outside!r} + "/escaped", "w").write("x")
    print("wrote")
except OSError as e:
    print("refused", e.errno)
print(len([p for p in os.listdir("/proc") if p.isdigit()]))
"""
    code = f"""
import json
from referee.errors import RefereeError
from referee.programs.sandbox import Limits, features, run_python
result = run_python({program!r})
try:
    run_python("print(1)", Limits(require=("nobody",)))
    refused = ""
except RefereeError as e:
    refused = str(e)
print(json.dumps({{"features": features(), "stdout": result.stdout, "stderr": result.stderr, "refused": refused}}))
"""
    try:
        done = subprocess.run(["setpriv", f"--reuid={sandbox.NOBODY}", f"--regid={sandbox.NOBODY}", "--clear-groups",
                               python, "-c", code], capture_output=True, text=True, timeout=60, cwd="/",
                              env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(src), "HOME": "/"})
        assert done.returncode == 0, done.stderr
        got = json.loads(done.stdout.splitlines()[-1])
        assert "nobody" in got["refused"] and not got["features"]["nobody"]
        if not got["features"]["userns"]:
            pytest.skip("this kernel gives no user namespace to a user other than root")
        assert got["features"]["missing"] == [], got["features"]
        caps, wrote, pids = got["stdout"].splitlines()
        assert int(caps, 16) == 0 and wrote.startswith("refused") and int(pids) <= 3
        assert os.listdir(outside) == []
    finally:
        shutil.rmtree(outside, ignore_errors=True)


def test_the_critics_protocol_can_require_protections():
    from referee.config import validate
    from referee.protocols import critics

    cfg = validate(critics.CriticsConfig, {"protocol": "critics", "sandbox_require": ["pid", "mount", "net"]}, "t")
    assert critics._limits(cfg).require == ("pid", "mount", "net")
    assert critics._limits(validate(critics.CriticsConfig, {"protocol": "critics"}, "t")) is None  # the usual
    with pytest.raises(RefereeError, match="sandbox_require"):
        validate(critics.CriticsConfig, {"protocol": "critics", "sandbox_require": ["telepathy"]}, "t")
