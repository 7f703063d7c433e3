"""Running untrusted Python (model-written or tampered programs) in a child process that cannot do much.

``run_python`` writes the program into a fresh temporary folder (its working directory and home) and
starts three processes:

- the **launcher** (``python -I -B`` running ``_LAUNCHER`` below, in its own session, with an environment
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

import collections
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from functools import lru_cache

from referee.errors import RefereeError

NOBODY = 65534
GRACE_S = 1.0  # after the timeout, or after the launcher ended, before the pipes are closed regardless
CHUNK = 65536
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


_LAUNCHER = r'''
import ctypes, json, os, platform, resource, runpy, select, shutil, signal, struct, sys

spec = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
NEWNS, NEWIPC, NEWUSER, NEWPID, NEWNET = 0x20000, 0x08000000, 0x10000000, 0x20000000, 0x40000000
RDONLY, NOSUID, NODEV, NOEXEC, REMOUNT, BIND, REC, PRIVATE = 1, 2, 4, 8, 32, 4096, 16384, 1 << 18
ATIME = 1024 | 2048 | 4096  # noatime, nodiratime, relatime
PDEATHSIG, DUMPABLE, SECCOMP, NO_NEW_PRIVS = 1, 4, 22, 38
ROOT = os.getuid() == 0
init_pid = None


def prctl(option, *args):
    values = [ctypes.c_ulong(a) for a in args] + [ctypes.c_ulong(0)] * (4 - len(args))
    if libc.prctl(ctypes.c_int(option), *values) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}) failed")


def mount(source, target, fstype, flags, data=None):
    encode = lambda s: None if s is None else os.fsencode(s)
    if libc.mount(encode(source), encode(target), encode(fstype), flags, encode(data)) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount {target}: {os.strerror(errno)}")


def namespaces():
    """One namespace at a time, so the report says which the kernel refused. Not root: a user namespace
    first, which gives the rights to make the others."""
    got = {"userns": False}
    if not ROOT:
        uid, gid = os.getuid(), os.getgid()
        got["userns"] = libc.unshare(NEWUSER) == 0
        if got["userns"]:
            for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
                with open(f"/proc/self/{name}", "w") as f:
                    f.write(text)
    for name, flag in (("net", NEWNET), ("ipc", NEWIPC), ("pid", NEWPID)):
        got[name] = libc.unshare(flag) == 0
    return got


def caller_died(*_):
    """SIGTERM, sent when the caller dies: end the namespace and remove the folder (the caller cannot)."""
    if init_pid:
        os.kill(init_pid, signal.SIGKILL)
    shutil.rmtree(spec["dir"], ignore_errors=True)
    os._exit(1)


def launcher(report):
    """Outlive neither the caller nor the init: returns only in the init's process."""
    global init_pid
    signal.signal(signal.SIGTERM, caller_died)
    prctl(PDEATHSIG, signal.SIGTERM)
    if os.getppid() != spec["parent"]:
        caller_died()  # it died before the line above
    alive_r, alive_w = os.pipe()
    init_pid = os.fork()
    if init_pid == 0:
        os.close(alive_w)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        return alive_r
    os.close(alive_r)
    os.close(spec["report_fd"])
    _, status = os.waitpid(init_pid, 0)
    os._exit(os.waitstatus_to_exitcode(status) % 256)


def mount_points():
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        points = [p.replace(code, char) for p in points]
    return list(dict.fromkeys(points))


def remount(point, readonly, extra=0):
    """Make one mount read-only or writable, keeping its other flags (a user namespace locks them)."""
    try:
        kept = os.statvfs(point).f_flag & (NOSUID | NODEV | NOEXEC | ATIME)
        mount(None, point, None, REMOUNT | BIND | kept | extra | (RDONLY if readonly else 0))
        return True
    except OSError:
        return False


def fresh(fstype, path, flags, data=None):
    try:
        mount(fstype, path, fstype, flags, data)
        return True
    except OSError:
        return False


def filesystem(own_pids):
    """Only the folder writable; /tmp and /dev/shm fresh and private; /proc of this PID namespace."""
    if libc.unshare(NEWNS) != 0:
        return {"mount": False, "readonly": False, "tmp": False, "proc": False}
    mount(None, "/", None, REC | PRIVATE)  # nothing done below reaches the machine's mounts
    folder = os.open(spec["dir"], os.O_PATH | os.O_DIRECTORY)  # reachable after /tmp is covered
    readonly = all([remount(point, True) for point in mount_points()])
    size = f"mode=1777,size={spec['file_mb']}m,nr_inodes=4096"
    tmp = all([fresh("tmpfs", path, NOSUID | NODEV, size) for path in ("/tmp", "/dev/shm") if os.path.isdir(path)])
    os.umask(0o022)  # folders above it that the fresh /tmp lacks: nobody must be able to pass through
    os.makedirs(spec["dir"], exist_ok=True)  # a mount point in the fresh /tmp
    mount(f"/proc/self/fd/{folder}", spec["dir"], None, BIND)
    if not remount(spec["dir"], False, NOSUID | NODEV):
        raise OSError("sandbox: cannot make the folder writable again")
    os.close(folder)
    proc = own_pids and fresh("proc", "/proc", NOSUID | NODEV | NOEXEC)
    return {"mount": True, "readonly": readonly, "tmp": tmp, "proc": proc}


ARCHES = {"x86_64": (0xC000003E, 41), "aarch64": (0xC00000B7, 198)}  # audit arch, socket()
IO_URING_SETUP = 425


def only_ip_sockets(own_network):
    """A seccomp filter: socket() for IPv4 and IPv6 only (and not even those without a network namespace);
    io_uring refused (it makes sockets the filter cannot see), and so are other ABIs' system calls."""
    arch = ARCHES.get(platform.machine())
    if arch is None:
        return False
    families = (2, 10) if own_network else ()
    allow, deny, n = 0x7FFF0000, 0x00050000 | 13, len(families)  # deny: EACCES
    ld, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    code = [(ld, 0, 0, 4), (jeq, 1, 0, arch[0]), (ret, 0, 0, deny),
            (ld, 0, 0, 0), (jge, 0, 1, 0x40000000), (ret, 0, 0, deny),
            (jeq, 0, 1, IO_URING_SETUP), (ret, 0, 0, deny),
            (jeq, 0, 2 + n, arch[1]), (ld, 0, 0, 16),
            *[(jeq, n - i, 0, family) for i, family in enumerate(families)],
            (ret, 0, 0, deny), (ret, 0, 0, allow)]
    rules = ctypes.create_string_buffer(b"".join(struct.pack("=HBBI", *c) for c in code))
    fprog = ctypes.create_string_buffer(struct.pack("=HxxxxxxQ", len(code), ctypes.addressof(rules)))
    try:
        prctl(NO_NEW_PRIVS, 1)  # which a filter needs, and which the program keeps
        prctl(SECCOMP, 2, ctypes.addressof(fprog))
        return True
    except OSError:
        return False


def init(report, alive_r):
    """PID 1 of the namespace: when it ends, the kernel ends every process in it. Returns only in the
    program's process."""
    prctl(PDEATHSIG, signal.SIGKILL)
    if select.select([alive_r], [], [], 0)[0]:
        os._exit(1)  # the launcher died before the line above
    os.close(alive_r)
    prctl(DUMPABLE, 0)  # the program (the same user, when not root) may not ptrace it
    report.update(filesystem(report["pid"]))
    report.update(seccomp=only_ip_sockets(report["net"]), nobody=ROOT, limits=True)
    report["refused"] = [name for name in spec["require"] if not report.get(name)]
    os.write(spec["report_fd"], (json.dumps(report) + "\n").encode())
    os.close(spec["report_fd"])
    if report["refused"]:
        os._exit(125)
    pid = os.fork()
    if pid == 0:
        return
    while True:
        ended, status = os.waitpid(-1, 0)  # also reaps orphans
        if ended == pid:
            os._exit(os.waitstatus_to_exitcode(status) % 256)


def limit_resources():
    MB = 1024 * 1024
    for name, value in (("RLIMIT_CPU", spec["cpu_s"]), ("RLIMIT_AS", spec["memory_mb"] * MB),
                        ("RLIMIT_FSIZE", spec["file_mb"] * MB), ("RLIMIT_NOFILE", spec["open_files"]),
                        ("RLIMIT_CORE", 0), ("RLIMIT_NPROC", spec["processes"])):
        which = getattr(resource, name)
        hard = resource.getrlimit(which)[1]
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(which, (value, value))


def drop_privileges():
    """Root becomes nobody; another user gives up the capabilities it holds over its user namespace."""
    if ROOT:
        os.setgroups([])
        os.setgid(spec["nobody"])
        os.setuid(spec["nobody"])
    elif libc.capset(struct.pack("=Ii", 0x20080522, 0), bytes(24)) != 0:
        raise OSError(ctypes.get_errno(), "sandbox: cannot drop capabilities")
    prctl(NO_NEW_PRIVS, 1)
    prctl(DUMPABLE, 1)
    prctl(PDEATHSIG, signal.SIGKILL)  # some help where there is no PID namespace


def guard(event, args):
    if event == "open" and len(args) > 1 and args[0] is not None and not isinstance(args[0], int):
        mode, flags = args[1], args[2] if len(args) > 2 else 0
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (isinstance(flags, int) and flags & 3)
        if writing and not os.path.realpath(os.fsdecode(args[0])).startswith(root):
            raise PermissionError(f"sandbox: writing outside the sandbox folder: {args[0]}")
    elif event in ("socket.connect", "socket.bind", "socket.sendto"):
        raise PermissionError("sandbox: no network")


report = namespaces()
init(report, launcher(report))
limit_resources()
drop_privileges()
os.chdir(spec["dir"])
root = os.path.realpath(spec["dir"]) + os.sep
sys.addaudithook(guard)
sys.argv = [os.path.join(spec["dir"], "main.py")] + spec["args"]
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
                command, kept = [interpreter(), "-I", "-B", "-c", _LAUNCHER, json.dumps(spec)], (report_w,)
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
    out, err = _Capped(limits.output_kb * 1024), _Capped(limits.output_kb * 1024, keep_last=True)
    try:
        timed_out = _pump(proc, stdin.encode(), out, err, limits.timeout_s)
    finally:
        _kill_group(proc.pid)  # before the launcher is reaped, so its group id cannot be anyone else's yet
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            pipe.close()
        proc.wait()
    return RunResult(None if timed_out else proc.returncode, out.text(), err.text(), timed_out,
                     time.monotonic() - start, _read_report(report_r), out.truncated, err.truncated)


class _Capped:
    """At most ``cap`` bytes of a stream: the first ones (stdout: a program's answer comes first) or the last
    ones (stderr: the traceback that explains a failure comes last). Whatever else came is dropped."""

    def __init__(self, cap: int, keep_last: bool = False):
        self.cap, self.keep_last, self.truncated = cap, keep_last, False
        self.chunks: collections.deque[bytes] = collections.deque()
        self.size = 0

    def add(self, chunk: bytes) -> None:
        self.truncated |= self.size + len(chunk) > self.cap
        if not self.keep_last:
            chunk = chunk[:self.cap - self.size]
        if chunk:
            self.chunks.append(chunk)
            self.size += len(chunk)
        while self.keep_last and self.chunks and self.size - len(self.chunks[0]) >= self.cap:
            self.size -= len(self.chunks.popleft())

    def text(self) -> str:
        data = b"".join(self.chunks)
        if len(data) > self.cap:
            data = data[-self.cap:] if self.keep_last else data[:self.cap]
        return data.decode(errors="replace")


def _pump(proc: subprocess.Popen, data: bytes, out: _Capped, err: _Capped, timeout_s: float) -> bool:
    """Feed stdin, read stdout and stderr, until the launcher has ended and both pipes closed. At the timeout,
    kill the group; after the timeout or the launcher's end, give the pipes GRACE_S more and no longer: a
    process that escaped the kill (no PID namespace) may hold them forever. Returns whether it timed out."""
    sinks = {proc.stdout.fileno(): out, proc.stderr.fileno(): err}
    stop, timed_out, ended = time.monotonic() + timeout_s, False, False
    pending = memoryview(data)
    with selectors.DefaultSelector() as selector:
        for fd in sinks:
            selector.register(fd, selectors.EVENT_READ)
        if pending:
            os.set_blocking(proc.stdin.fileno(), False)
            selector.register(proc.stdin.fileno(), selectors.EVENT_WRITE)
        else:
            proc.stdin.close()
        while True:
            now = time.monotonic()
            if not ended and _has_ended(proc.pid):
                ended, stop = True, min(stop, now + GRACE_S)
            if ended and not selector.get_map():
                break
            if now >= stop:
                if ended or timed_out:
                    break
                timed_out, stop = True, now + GRACE_S
                _kill_group(proc.pid)
                continue
            if not selector.get_map():  # the program closed its pipes and goes on: wait for its end
                time.sleep(min(stop - now, 0.01))
                continue
            for key, _ in selector.select(min(stop - now, 0.1)):
                if key.fd in sinks:
                    chunk = os.read(key.fd, CHUNK)
                    if chunk:
                        sinks[key.fd].add(chunk)
                    else:
                        selector.unregister(key.fd)
                else:
                    pending = _feed(key.fd, pending)
                    if not pending:
                        selector.unregister(key.fd)
                        proc.stdin.close()
    return timed_out


def _feed(fd: int, pending: memoryview) -> memoryview:
    """Write what the pipe takes now; nothing more is sent once the program closed its stdin."""
    try:
        return pending[os.write(fd, pending[:CHUNK]):]
    except BlockingIOError:
        return pending
    except BrokenPipeError:
        return pending[:0]


def _has_ended(pid: int) -> bool:
    """Whether the launcher has ended, without reaping it (its process group id stays reserved)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _read_report(fd: int) -> dict:
    """The init's one line about the isolation it set up ({} for an external command, or a launcher that
    was killed before it got that far)."""
    os.set_blocking(fd, False)
    try:
        line = os.read(fd, CHUNK).split(b"\n")[0]
        return json.loads(line) if line else {}
    except (BlockingIOError, json.JSONDecodeError):
        return {}


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
