"""The sandbox holds each limit it claims: time, memory, processes, files outside its folder, secrets,
network. Every hostile program here is bounded itself (a fixed number of children, a fixed allocation),
so a broken sandbox fails the test without harming the machine."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid

import pytest

from referee.programs.sandbox import Limits, features, run_python


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


def test_children_are_limited_in_number_and_do_not_outlive_the_program():
    marker = f"referee-sandbox-test-{uuid.uuid4().hex}"
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
    result = run_python(program, Limits(processes=8, timeout_s=20))
    made, refused = map(int, result.stdout.split())
    assert made < 8 and refused > 0
    time.sleep(0.5)
    left = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.split()
    assert left == []  # every child ended with the program (PID namespace, or the group kill)


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
