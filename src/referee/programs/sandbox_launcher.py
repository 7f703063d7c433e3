"""The program that sets the sandbox up, run as ``python -I -B -c LAUNCHER SPEC`` (``referee.programs.sandbox``).

It runs in a fresh interpreter that imports nothing of referee, so it is kept here as text: the launcher
unshares the namespaces and forks the init; the init (PID 1 of the new PID namespace) makes the mount
namespace, installs the seccomp filter, reports what it set up on ``report_fd`` and forks the program; the
program limits its resources, drops its privileges, adds an audit hook and runs ``main.py``. SPEC is the
JSON of ``Limits`` plus the folder, the program's arguments, the uid of ``nobody``, the caller's pid and
the report's file descriptor. What each step protects against: the module doc of ``referee.programs.sandbox``.
"""

LAUNCHER = r'''
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
