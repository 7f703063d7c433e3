"""Running untrusted Python (model-written or tampered programs) in a child process that cannot do much.

What ``run_python`` does, in order:

- writes the program into a fresh temporary folder, the child's working directory and home;
- starts ``python -I -B`` (isolated mode: no PYTHON* variables, no user site, no current folder on the
  path) with an environment of PATH, HOME, TMPDIR and LANG only: no key or token of the parent's reaches
  it; in its own session (process group), so a timeout kills the whole group;
- the child first runs a trusted launcher (``_LAUNCHER`` below), which
  1. sets resource limits: CPU seconds, address space (memory), file size, open files, no core dumps,
     and the number of processes;
  2. unshares a network namespace (no network at all: not even loopback is up) and a PID namespace,
     then forks: the program runs as PID 1 of its namespace, so when it ends or is killed the kernel
     kills every process it started, including ones that left its process group. As root this needs
     nothing more; as another user, a user namespace is unshared first where the kernel allows it;
  3. as root, drops to the unprivileged user ``nobody`` (the temp folder is handed to it), so files the
     machine's users own cannot be written, and the process limit is counted for that user (the kernel
     does not enforce RLIMIT_NPROC for root);
  4. installs an audit hook that refuses to open files for writing outside the temp folder and refuses
     sockets (a second line behind the namespaces, inside the program's own interpreter);
  5. runs the program as ``__main__``.
- The parent waits up to the wall-clock timeout, then kills the process group; the folder is removed.

What it does not protect against (so the README says it too): kernel exploits; reading files that are
readable by everyone (the program can read the source tree and /etc, never keys in the environment);
writing to world-writable folders (/tmp, /dev/shm) when the namespaces could not be made and the audit
hook was bypassed (ctypes can bypass an audit hook); exhausting the disk below the file-size limit per
file. Where the kernel refuses namespaces, ``features()`` says so and the run goes on with the rest.
For stronger isolation give an external command (a container runtime: ``docker run --rm -i
--network=none -v {dir}:/sandbox ...``) and the program is run through it instead.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache

NOBODY = 65534


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 10.0  # wall clock, for the whole run
    cpu_s: int = 10
    memory_mb: int = 512  # address space; Python itself needs about 30 MB
    processes: int = 16
    file_mb: int = 16
    open_files: int = 64


@dataclass
class RunResult:
    returncode: int | None  # None when killed at the timeout
    stdout: str
    stderr: str
    timed_out: bool
    seconds: float
    isolation: dict = field(default_factory=dict)  # what the launcher managed to set up

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def to_record(self) -> dict:
        return asdict(self)


_LAUNCHER = r'''
import ctypes, json, os, resource, runpy, sys
spec = json.loads(sys.argv[1])
work = spec["dir"]
report = {}
libc = ctypes.CDLL(None, use_errno=True)
NEWNET, NEWPID, NEWUSER = 0x40000000, 0x20000000, 0x10000000
uid, gid = os.getuid(), os.getgid()
flags = NEWNET | NEWPID
if uid != 0:
    flags |= NEWUSER
report["namespaces"] = libc.unshare(flags) == 0
if report["namespaces"] and uid != 0:
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)
MB = 1024 * 1024
for name, value in (("RLIMIT_CPU", spec["cpu_s"]), ("RLIMIT_AS", spec["memory_mb"] * MB),
                    ("RLIMIT_FSIZE", spec["file_mb"] * MB), ("RLIMIT_NOFILE", spec["open_files"]),
                    ("RLIMIT_CORE", 0), ("RLIMIT_NPROC", spec["processes"])):
    resource.setrlimit(getattr(resource, name), (value, value))
report["limits"] = True
sys.stderr.write("\x00isolation " + json.dumps(report) + "\n")
sys.stderr.flush()
pid = os.fork() if report["namespaces"] else 0
if pid:
    _, status = os.waitpid(pid, 0)
    os._exit(os.waitstatus_to_exitcode(status) % 256)
if uid == 0:
    os.setgroups([])
    os.setgid(spec["nobody"])
    os.setuid(spec["nobody"])
os.chdir(work)
root = os.path.realpath(work) + os.sep

def guard(event, args):
    if event == "open" and len(args) > 1 and args[0] is not None and not isinstance(args[0], int):
        mode, flags = args[1], args[2] if len(args) > 2 else 0
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (isinstance(flags, int) and flags & 3)
        if writing and not os.path.realpath(os.fsdecode(args[0])).startswith(root):
            raise PermissionError(f"sandbox: writing outside the sandbox folder: {args[0]}")
    elif event in ("socket.connect", "socket.bind", "socket.sendto"):
        raise PermissionError("sandbox: no network")

sys.addaudithook(guard)
sys.argv = [os.path.join(work, "main.py")] + spec["args"]
runpy.run_path(sys.argv[0], run_name="__main__")
'''


def _readable_by_all(path: str) -> bool:
    """Whether any user can read ``path`` and enter every folder above it."""
    path = os.path.realpath(path)
    if not os.stat(path).st_mode & 0o004:
        return False
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    while True:
        if os.stat(folder).st_mode & 0o005 != 0o005:
            return False
        if os.path.dirname(folder) == folder:
            return True
        folder = os.path.dirname(folder)


@lru_cache(maxsize=1)
def interpreter() -> str:
    """The Python that runs programs: $REFEREE_SANDBOX_PYTHON, else this one where the user ``nobody`` can
    read it and its standard library (not when it lives under /root, as pyenv's does), else the system's."""
    chosen = os.environ.get("REFEREE_SANDBOX_PYTHON")
    if chosen:
        return chosen
    if os.getuid() != 0:
        return sys.executable
    import sysconfig

    if _readable_by_all(sys.executable) and _readable_by_all(sysconfig.get_paths()["stdlib"]):
        return sys.executable
    for candidate in ("/usr/bin/python3", shutil.which("python3")):
        if candidate and os.path.exists(candidate) and _readable_by_all(candidate):
            return candidate
    return sys.executable  # the run will say what it cannot import


def _environment(folder: str) -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": folder, "TMPDIR": folder, "LANG": "C.UTF-8"}


def run_python(source: str, limits: Limits = Limits(), stdin: str = "", args: list[str] | None = None,
               files: dict[str, str] | None = None, external: list[str] | None = None) -> RunResult:
    """Run ``source`` as a program in the sandbox (module doc) and return what it printed and how it ended.

    ``files``: more files to put beside it (name -> text). ``external``: a command to run it through
    instead of the launcher, ``{dir}`` standing for the folder (which holds ``main.py``).
    """
    folder = tempfile.mkdtemp(prefix="referee-sandbox-")
    try:
        for name, text in {"main.py": source, **(files or {})}.items():
            path = os.path.join(folder, name)
            if os.path.dirname(os.path.realpath(path)) != os.path.realpath(folder):
                raise ValueError(f"sandbox: file name {name!r} must be a plain name")
            with open(path, "w") as f:
                f.write(text)
        if os.getuid() == 0:
            os.chmod(folder, 0o700)
            for path in [folder, *(os.path.join(folder, n) for n in os.listdir(folder))]:
                os.chown(path, NOBODY, NOBODY)
        if external:
            command = [part.replace("{dir}", folder) for part in external]
        else:
            spec = {"dir": folder, "args": list(args or []), "nobody": NOBODY, **asdict(limits)}
            command = [interpreter(), "-I", "-B", "-c", _LAUNCHER, json.dumps(spec)]
        return _wait(command, folder, stdin, limits.timeout_s)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _wait(command: list[str], folder: str, stdin: str, timeout_s: float) -> RunResult:
    start = time.monotonic()
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=folder, env=_environment(folder), start_new_session=True)
    timed_out = False
    try:
        out, err = proc.communicate(stdin.encode(), timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc.pid)
        out, err = proc.communicate()
    _kill_group(proc.pid)  # children left behind in the group (the PID namespace has already ended them)
    stderr, isolation = _split_report(err.decode(errors="replace"))
    return RunResult(None if timed_out else proc.returncode, out.decode(errors="replace"), stderr, timed_out,
                     time.monotonic() - start, isolation)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _split_report(stderr: str) -> tuple[str, dict]:
    """The launcher's one line about its isolation, taken out of the program's stderr."""
    marker = "\x00isolation "
    if stderr.startswith(marker):
        line, _, rest = stderr.partition("\n")
        try:
            return rest, json.loads(line[len(marker):])
        except json.JSONDecodeError:
            pass
    return stderr, {}


@lru_cache(maxsize=1)
def features() -> dict:
    """What the sandbox can set up on this machine (namespaces, dropping to nobody), from one tiny run."""
    result = run_python("print('ok')", Limits(timeout_s=30))
    return {**result.isolation, "runs": result.ok, "drops_to_nobody": os.getuid() == 0, "python": interpreter(),
            "stderr": result.stderr[-500:] if not result.ok else ""}
