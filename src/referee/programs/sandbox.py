"""Running untrusted Python (model-written or tampered programs) in a child process that cannot do much.

``run_python`` writes the program into a fresh temporary folder (its working directory and home) and
starts three processes:

- the **launcher** (``python -I -B`` running ``LAUNCHER`` below, in its own session, with an environment
  of PATH, HOME, TMPDIR and LANG only: no key or token of the parent's reaches it). It unshares a network,
  an IPC and a PID namespace (as a user other than root, a user namespace first, where the kernel allows
  it) and forks the init. If the caller dies, the kernel sends it SIGTERM (``PR_SET_PDEATHSIG``): it kills
  the init and removes the folder;
- the **init**, PID 1 of the new PID namespace: when it ends, the kernel kills every process in the
  namespace, whatever they did with sessions, process groups or signals. It dies with the launcher
  (``PR_SET_PDEATHSIG``, SIGKILL), which is how a timeout ends everything. It makes a mount namespace
  (propagation private; every mount read-only; fresh tmpfs on /tmp and /dev/shm, ``file_mb`` each; the
  folder bind-mounted back writable, nosuid, nodev; a fresh /proc of the namespace), installs a seccomp
  filter (``socket()`` only for IPv4 and IPv6, which reach nothing in the empty network namespace, and none
  at all without one; no io_uring, which could make sockets the filter does not see; no system calls of
  another ABI), reports what it managed to set up, and forks the program;
- the **program**: resource limits (CPU seconds, address space, file size, open files, no core dumps,
  processes), then, as root, it becomes ``nobody`` (so the process limit holds: the kernel does not enforce
  it for root); as another user it gives up the capabilities it holds over its user namespace; no new
  privileges (a setuid binary gives it nothing); an audit hook refusing writes outside the folder and
  sockets (a second line inside its own interpreter, which ctypes bypasses); then ``main.py`` runs as
  ``__main__``.

The parent feeds stdin and reads stdout and stderr as they come, keeping at most ``Limits.output_kb`` of
each: the first ones of stdout (a program's answer comes first), the last ones of stderr (the traceback
that explains a failure comes last). The rest is read and dropped, so a program that prints much is
neither blocked nor killed for it; ``RunResult.stdout_truncated`` and ``stderr_truncated`` say so. At the
wall-clock timeout the parent kills the launcher's process group (so the init, so the namespace), and
after the timeout or the launcher's end it reads the pipes for ``GRACE_S`` more at most, so ``run_python``
returns within about timeout + 1 s even if some process still holds them. Then the folder is removed.

Protected where the kernel gives it (``features()`` names each; each can be required, below):
``pid``: nothing the program starts outlives the run or the caller, and it cannot signal or trace the
machine's processes; ``proc``: it does not see them or their command lines either; ``net``: no network,
not even loopback, and no abstract Unix socket of the machine's (they belong to a network namespace);
``ipc``: no System V or POSIX IPC object of the machine's, none left behind; ``mount``, ``readonly``,
``tmp``: it writes nowhere but its folder, through ctypes neither (the kernel refuses), and gets a private
empty /tmp and /dev/shm that end with the run, so no Unix socket in the machine's /tmp either;
``seccomp``: no Unix socket at all (a read-only mount does not stop a connect to one under /run), no vsock,
netlink or packet socket; ``nobody`` (as root): no file of the machine's users is the program's;
``limits``: the resource limits above. The output cap and the clean environment hold everywhere.

Not protected: kernel exploits (the program may make nearly every system call, and its own user namespaces
where the kernel allows unprivileged ones); reading what everyone may read (the source tree, /etc, /sys,
the launcher's command line), and as a user other than root, whatever that user may read (the program runs
with that uid, without capabilities); filling the disk under the folder (``file_mb`` bounds each file, not
their number); memory in the private /tmp and /dev/shm, outside the address-space limit; the process limit
counts every process of the user ``nobody`` on the machine, so sandboxes running at once share it.

Where the kernel refuses a namespace (a user other than root without user namespaces, a container that
forbids them), its protections are missing: without ``pid`` a child that leaves the process group outlives
the run (the parent still returns on time), and the machine's processes are visible; without ``mount``,
world-writable folders (/tmp, /dev/shm, /var/tmp) are guarded only by the audit hook, and Unix sockets in
them only by the seccomp filter; without ``net`` the seccomp filter (no sockets at all) is what keeps the
network out. Before the first run in a process, ``features()`` (one tiny run) finds what this machine gives
and a warning names what is missing, once, in one line; ``Limits.require`` makes ``run_python`` raise a
``RefereeError`` naming what is missing instead of running the program (the critics protocol's
``sandbox_require``). For stronger isolation give an external command (a container runtime: ``docker run
--rm -i --network=none -v {dir}:/sandbox ...``) and the program runs through it instead: then only the
timeout, the output cap and the environment are this module's.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from functools import lru_cache

from referee.errors import RefereeError
from referee.programs.sandbox_launcher import LAUNCHER
from referee.programs.sandbox_pipes import GRACE_S, CappedStream, kill_group, pump, read_report  # noqa: F401

NOBODY = 65534
# What the launcher reports, each True or False; ``Limits.require`` names some of them.
PROTECTIONS = ("pid", "net", "ipc", "mount", "readonly", "tmp", "proc", "seccomp", "nobody", "limits")


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 10.0  # wall clock, for the whole run
    cpu_s: int = 10
    memory_mb: int = 512  # address space; Python itself needs about 30 MB
    processes: int = 16
    file_mb: int = 16  # per file; also the size of the private /tmp and /dev/shm
    open_files: int = 64
    output_kb: int = 1024  # kept of stdout and of stderr each; the rest is read and dropped
    require: tuple[str, ...] = ()  # protections (PROTECTIONS) without which the run raises instead


@dataclass
class RunResult:
    returncode: int | None  # None when killed at the timeout
    stdout: str
    stderr: str
    timed_out: bool
    seconds: float
    isolation: dict = field(default_factory=dict)  # what the launcher managed to set up
    stdout_truncated: bool = False  # more than Limits.output_kb was printed; the rest was dropped
    stderr_truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def to_record(self) -> dict:
        return asdict(self)




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
    instead of the launcher, ``{dir}`` standing for the folder (which holds ``main.py``). Raises
    ``RefereeError`` when a protection ``limits.require`` names could not be set up (the program does not run).
    """
    if not external:
        _check_required_names(limits.require)
        _warn_once_about_missing()
    result = _execute(source, limits, stdin, args, files, external)
    if result.isolation.get("refused"):
        raise RefereeError(f"sandbox: this machine did not give the required protection(s) "
                           f"{', '.join(result.isolation['refused'])}, so the program was not run "
                           f"(see referee.programs.sandbox.features(); run as root or allow user namespaces)")
    return result


def _execute(source: str, limits: Limits, stdin: str, args: list[str] | None, files: dict[str, str] | None,
             external: list[str] | None) -> RunResult:
    folder = tempfile.mkdtemp(prefix="referee-sandbox-")
    report_r, report_w = os.pipe()  # the init writes what it set up here
    try:
        try:
            _write_files(folder, {"main.py": source, **(files or {})})
            if external:
                command, kept = [part.replace("{dir}", folder) for part in external], ()
            else:
                spec = {"dir": folder, "args": list(args or []), "nobody": NOBODY, "parent": os.getpid(),
                        "report_fd": report_w, **asdict(limits)}
                command, kept = [interpreter(), "-I", "-B", "-c", LAUNCHER, json.dumps(spec)], (report_w,)
            start = time.monotonic()
            proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    cwd=folder, env=_environment(folder), start_new_session=True, pass_fds=kept)
        finally:
            os.close(report_w)  # the launcher has its own copy: once it and the init are gone, the report ends
        return _wait(proc, start, stdin, limits, report_r)
    finally:
        os.close(report_r)
        shutil.rmtree(folder, ignore_errors=True)


def _write_files(folder: str, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = os.path.join(folder, name)
        if os.path.dirname(os.path.realpath(path)) != os.path.realpath(folder):
            raise ValueError(f"sandbox: file name {name!r} must be a plain name")
        with open(path, "w") as f:
            f.write(text)
    if os.getuid() == 0:
        os.chmod(folder, 0o700)
        for path in [folder, *(os.path.join(folder, n) for n in os.listdir(folder))]:
            os.chown(path, NOBODY, NOBODY)


def _wait(proc: subprocess.Popen, start: float, stdin: str, limits: Limits, report_r: int) -> RunResult:
    out, err = CappedStream(limits.output_kb * 1024), CappedStream(limits.output_kb * 1024, keep_last=True)
    try:
        timed_out = pump(proc, stdin.encode(), out, err, limits.timeout_s)
    finally:
        kill_group(proc.pid)  # before the launcher is reaped, so its group id cannot be anyone else's yet
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            pipe.close()
        proc.wait()
    return RunResult(None if timed_out else proc.returncode, out.text(), err.text(), timed_out,
                     time.monotonic() - start, read_report(report_r), out.truncated, err.truncated)


def _check_required_names(required: tuple[str, ...]) -> None:
    unknown = sorted(set(required) - set(PROTECTIONS))
    if unknown:
        raise RefereeError(f"sandbox: unknown protection(s) {unknown} in 'require'; known: {', '.join(PROTECTIONS)}")


_warned = False


def _warn_once_about_missing() -> None:
    """Before the first program of this process runs: one line naming what the sandbox lacks here."""
    global _warned
    if _warned:
        return
    _warned = True
    missing = features()["missing"]
    if missing:
        warnings.warn(f"referee sandbox: untrusted programs run here without the {', '.join(missing)} "
                      f"protection(s) (the kernel refused namespaces; see referee.programs.sandbox.features()); "
                      f"Limits.require makes such runs fail instead", RuntimeWarning, stacklevel=3)


@lru_cache(maxsize=1)
def features() -> dict:
    """What the sandbox can set up on this machine, protection by protection (module doc), from one tiny run.
    ``missing`` lists the ones it lacks; ``nobody`` is not listed when not root (there is no one to drop
    from; the read-only mounts keep the user's files safe)."""
    result = _execute("print('ok')", Limits(timeout_s=30), "", None, None, None)
    got = {name: bool(result.isolation.get(name)) for name in PROTECTIONS}
    missing = [name for name, ok in got.items() if not ok and (name != "nobody" or os.getuid() == 0)]
    return {**got, "output_cap": True, "userns": bool(result.isolation.get("userns")), "missing": missing,
            "runs": result.ok, "python": interpreter(), "stderr": result.stderr[-500:] if not result.ok else ""}


def summary() -> dict:
    """``features()`` without the probe's stderr: what a run's record keeps."""
    return {k: v for k, v in features().items() if k != "stderr"}
