"""scripts/bench.py's shared parts: targets and constants, the samples, the runner that reads a
tool's own peak RSS through ptrace, and the tree helpers (copies at a fixed path, digests)."""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn



# Issue 10 acceptance targets. Time ratios are slower / faster, of medians.
TARGET_NATIVE_VS_SERC = 1.05            # serc CLI / native, cold, on every tree
TARGET_CPYTHON_VS_J0 = {"corpus": 1.3, "x5": 1.8}   # compileall -j0 / CPython backend, cold
TARGET_CPU_OVER_FLOOR = 1.05            # CPython backend CPU / the floor's CPU
TARGET_FRESH_VS_SERC = 1.5              # serc CLI / native, all-fresh
TARGET_RSS_MB = 100.0                   # own peak RSS of either backend on the x5 tree
# Issue 12 (group `cache`): a cold tree with a warm compile cache, and the
# cost of filling an empty one.
TARGET_WARM_VS_J0 = 8.0                 # compileall -j0 / a cold tree with a warm cache
TARGET_WARM_VS_SERC = 3.0               # serc CLI / a cold tree with a warm cache
TARGET_EMPTY_OVER_NONE = 1.10           # with an empty cache / without a cache
TARGET_FRESH_CACHE_OVER_NONE = 1.10     # all-fresh with --cache-dir / without (noise allowance)
# Issues 1 and 3 (group `earlier`).
TARGET_FRESH_VS_J0 = 25.0
TARGET_FRESH_VS_SEQ = 3.0
TARGET_NATIVE_COLD_VS_J0T = 3.0

GROUPS = ("corpus", "wheels", "x5", "fresh", "syscalls", "cache", "earlier")
DEFAULT_GROUPS = GROUPS[:-1]
# The x5 tree has at least this many files, whatever the corpus's size.
X5_MIN_FILES = 55_000

# All-fresh runs take a fraction of a second, so one sample per repetition is
# mostly noise: the fresh tools alternate this many times per repetition.
FRESH_ROUNDS = 5

# serc's CLI as published on PyPI (the crate precompyle links may be newer).
SERC_CLI_VERSION = "0.1.8"

# Popular packages, pinned so every run compiles the same 6,050 .py files.
# Wheels for CPython 3.12 on manylinux x86_64 whatever the host: only their
# .py files are used, and a fixed platform gives the same tree everywhere.
WHEELS = (
    "Django==5.1.4", "numpy==2.2.1", "pandas==2.2.3", "scipy==1.14.1", "SQLAlchemy==2.0.36",
    "matplotlib==3.10.0", "scikit-learn==1.6.0", "twisted==24.11.0", "pytest==8.3.4",
    "setuptools==75.6.0", "tornado==6.4.2", "requests==2.32.3",
)
WHEEL_PLATFORM = ("--python-version", "3.12", "--implementation", "cp", "--abi", "cp312",
                  "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux2014_x86_64")
# The strace runs use this top-level package of the wheel tree (885 files in
# issue 10's measurement), or the whole wheel tree when it is absent (--quick).
SYSCALL_PACKAGE = "django"
# Syscalls always shown in the breakdown, besides the most frequent ones.
SYSCALLS_OF_INTEREST = ("openat", "mkdir", "mkdirat", "write", "read", "close", "statx", "newfstatat", "fstat",
                        "lseek", "getpid", "futex", "rename", "renameat", "renameat2", "unlink", "unlinkat",
                        "getdents64", "clone", "clone3", "mmap", "munmap")
SYSCALLS_TOP = 12
# Column heads of the syscall table (the full labels are too wide for three columns).
SYSCALL_COLUMNS = {"nat": "native", "pc": "CPython backend", "serc": f"serc {SERC_CLI_VERSION} CLI"}

QUICK_SUBSET = ("email", "json", "asyncio")
QUICK_WHEELS = ("requests", "pytest", "tornado")

# Above this share of CPU taken by unrelated processes, say the timings are suspect.
BUSY_MACHINE = 0.05

# The floor: CPython's compiler alone, as py_compile calls it, over the files a
# compileall of the tree would compile (it does not descend symlinked dirs).
FLOOR_SOURCE = r"""
import marshal, os, sys
compiled = failed = 0
for top, dirs, files in os.walk(sys.argv[1]):
    dirs.sort()
    for name in sorted(files):
        if not name.endswith('.py'):
            continue
        path = os.path.join(top, name)
        try:
            with open(path, 'rb') as f:
                source = f.read()
            marshal.dumps(compile(source, path, 'exec', dont_inherit=True))
            compiled += 1
        except Exception:
            failed += 1
print(f'compiled {compiled} failed {failed}')
"""

# Linux ptrace constants (<linux/ptrace.h>).
PTRACE_CONT = 7
PTRACE_SEIZE = 0x4206
PTRACE_O_TRACEEXIT = 0x40
PTRACE_EVENT_EXIT = 6
# <linux/prctl.h>: orphaned descendants are re-parented to us instead of init.
PR_SET_CHILD_SUBREAPER = 36
# How long to wait for orphans (a forkserver winding down) after a tool exits.
ORPHAN_WAIT_SECONDS = 30.0


@dataclass
class Sample:
    group: str
    tool: str
    phase: str
    rep: int
    seconds: float
    returncode: int
    # VmHWM of the process itself, read at its exit stop (None without ptrace).
    own_peak_kb: int | None
    # wait4's ru_maxrss: the largest single process among it and every descendant reaped.
    tree_peak_kb: int
    # user + system CPU of the process and its descendants (see ExitPeakReader).
    cpu_seconds: float
    # Share of the machine's CPU capacity used by *other* processes meanwhile.
    background: float
    # Cold runs: pycs in the tree afterwards (the floor: files it compiled).
    pyc_count: int | None = None
    # Fresh runs: pycs the run rewrote (should be 0).
    rewritten: int | None = None


@dataclass(frozen=True)
class Usage:
    cpu_seconds: float
    maxrss_kb: int

    @staticmethod
    def of(rusage: os.struct_rusage) -> Usage:
        return Usage(rusage.ru_utime + rusage.ru_stime, rusage.ru_maxrss)

    def plus(self, other: Usage) -> Usage:
        return Usage(self.cpu_seconds + other.cpu_seconds, max(self.maxrss_kb, other.maxrss_kb))


@dataclass(frozen=True)
class Tool:
    key: str
    label: str
    argv: tuple[str, ...]
    # How to ask for one compile job at a time (the strace runs).
    one_job: tuple[str, ...] = ("-j", "1")


@dataclass
class Tree:
    """A pristine tree with no pycs, which every cold run of it is linked from."""
    name: str
    pristine: Path
    py_files: int
    note: str = ""
    details: dict = field(default_factory=dict)


class ExitPeakReader:
    """Runs a command and reads its own peak RSS just before it dies.

    GNU time's %M (and wait4's ru_maxrss) is the max over the child *and* every
    descendant it waited for, grandchildren included (the kernel folds each
    reaped child's maxrss into the parent's cmaxrss): `/usr/bin/time -f %M sh -c
    'python3 -c "bytearray(300<<20)"; true'` prints ~320000 although sh itself
    peaks at ~1600 kB. precompyle reaps its Python workers, so %M would report
    a worker whenever a worker is bigger. Instead we PTRACE_SEIZE the child with
    PTRACE_O_TRACEEXIT: the kernel stops it at exit while its memory map still
    exists, and /proc/PID/status VmHWM is then exactly its own peak. No syscall
    tracing is involved, so the run is not slowed.

    CPU time has a similar blind spot: 3.12+ compileall -j0 starts its workers
    from a multiprocessing forkserver that nobody waits for, so the workers'
    CPU never reaches wait4. As a child subreaper we adopt that orphaned
    forkserver and reap it (with its reaped workers' times) after the tool exits.
    """

    def __init__(self) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.ptrace.argtypes = [ctypes.c_long] * 2 + [ctypes.c_void_p] * 2
        self.libc.ptrace.restype = ctypes.c_long
        self.usable = True
        self.warning: str | None = None
        self.libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
        self.subreaper = self.libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
        self.orphan_warning: str | None = None if self.subreaper else "no subreaper: orphaned workers' CPU not counted"

    def run(self, argv: list[str], log_stem: Path) -> tuple[float, int, int | None, Usage, float]:
        with open(f"{log_stem}.out", "wb") as out, open(f"{log_stem}.err", "wb") as err:
            busy_before = machine_busy_seconds()
            start = time.perf_counter()
            child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=tool_env())
            traced = self.usable and self._seize(child.pid)
            own_peak, status, rusage = self._wait(child.pid, traced)
            seconds = time.perf_counter() - start
            usage = Usage.of(rusage).plus(self._reap_orphans())
            busy = machine_busy_seconds() - busy_before
        # We reaped the child ourselves; tell Popen so it never waits again.
        child.returncode = os.waitstatus_to_exitcode(status)
        others = max(0.0, busy - usage.cpu_seconds)
        return seconds, child.returncode, own_peak, usage, others / (seconds * (os.cpu_count() or 1))

    def _reap_orphans(self) -> Usage:
        """Waits for every adopted descendant still running; all our own children are reaped already."""
        total = Usage(0.0, 0)
        deadline = time.monotonic() + ORPHAN_WAIT_SECONDS
        while self.subreaper:
            try:
                pid, _, rusage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid:
                total = total.plus(Usage.of(rusage))
            elif time.monotonic() > deadline:
                self.orphan_warning = "orphaned processes outlived a tool: some CPU may be counted late"
                break
            else:
                time.sleep(0.005)
        return total

    def _seize(self, pid: int) -> bool:
        if self.libc.ptrace(PTRACE_SEIZE, pid, None, ctypes.c_void_p(PTRACE_O_TRACEEXIT)) == 0:
            return True
        self.usable = False
        self.warning = f"ptrace unavailable ({os.strerror(ctypes.get_errno())}): own peak RSS not measured"
        return False

    def _wait(self, pid: int, traced: bool):
        own_peak = None
        while True:
            _, status, usage = os.wait4(pid, 0)
            if not os.WIFSTOPPED(status):
                return own_peak, status, usage
            event = (status >> 16) & 0xFF
            if event == PTRACE_EVENT_EXIT:
                own_peak = read_status_kb(pid, "VmHWM")
            # A plain signal-delivery stop must pass the signal on; event stops must not.
            resend = 0 if event else os.WSTOPSIG(status)
            self.libc.ptrace(PTRACE_CONT, pid, None, ctypes.c_void_p(resend))


# Settings that would silently change what the tools do (pyc locations, the
# invalidation mode, precompyle's backend): every tool runs without them.
NEUTRALISED_ENV = ("PYTHONPYCACHEPREFIX", "SOURCE_DATE_EPOCH", "PRECOMPYLE_BACKEND", "PRECOMPYLE_PYTHON",
                   "PRECOMPYLE_TARGET", "PRECOMPYLE_TIMEOUT")


def tool_env() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if name not in NEUTRALISED_ENV}


def machine_busy_seconds() -> float:
    """CPU time spent by everything on the machine so far (first line of /proc/stat)."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal: idle and iowait are not busy.
    busy = sum(fields[:3]) + sum(fields[5:8])
    return busy / os.sysconf("SC_CLK_TCK")


def read_status_kb(pid: int, field_name: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def cannot_run(message: str) -> NoReturn:
    """Leaves with status 2, "the benchmark could not run": the scripts keep
    1 for "a target failed" (bench.py) or "a pyc differs" (bench_targets.py),
    so a caller never mistakes a broken set-up for a measured failure."""
    print(message, file=sys.stderr, flush=True)
    sys.exit(2)


def run_main(main) -> NoReturn:
    """`sys.exit(main())`, with an unexpected exception (a traceback, which
    Python would end with status 1) turned into status 2 as well."""
    try:
        status = main()
    except Exception:
        traceback.print_exc()
        sys.exit(2)
    sys.exit(status)


def shell(*argv: str) -> None:
    subprocess.run(argv, check=True)


# ext4 skips the inodes freed in the last 5-300 s when it allocates new ones
# (`recently_deleted`, below): after a bench deleted its trees, the next
# bench's first runs spent 11.5% of their samples in that scan (perf, the
# corpus, minutes after a bench ended), slowing whichever tool ran first.
SETTLE_SECONDS = 300
DELETED_AT = ".deleted-at"


def remove_tree(path: Path) -> None:
    """Delete `path`, noting the time in its directory for `settle`."""
    if path.exists():
        shell("rm", "-rf", "--", str(path))
        (path.parent / DELETED_AT).write_text(f"{time.time()}\n")


def settle(scratch: Path) -> None:
    """Wait until `SETTLE_SECONDS` have passed since the last `remove_tree`
    in `scratch`, so no timed run pays for an earlier bench's deletions."""
    try:
        deleted_at = float((scratch / DELETED_AT).read_text())
    except (OSError, ValueError):
        return
    wait = deleted_at + SETTLE_SECONDS - time.time()
    if wait > 0:
        progress(f"bench: waiting {wait:.0f} s: trees deleted {SETTLE_SECONDS - wait:.0f} s ago still slow "
                 "ext4's inode allocation (recently_deleted)")
        time.sleep(wait)


# Disk taken by one cold run's pycs and `__pycache__` directories, per byte
# of source: 1.55 measured on the corpus (198 MB of blocks for 128 MB of
# sources, native, 3.12), rounded up.
PYC_DISK_PER_SOURCE_BYTE = 2


def source_bytes(tree: Path) -> int:
    return sum(os.lstat(os.path.join(top, name)).st_size
               for top, _, files in os.walk(tree) for name in files if name.endswith(".py"))


def make_room(scratch: Path, need: int, wait: bool = True) -> None:
    """Ensure `need` bytes are free in `scratch` before a repetition: retired
    trees are kept (see `retire`) until they would fill the disk; then they
    are deleted and (if `wait`) `settle` waits out ext4's scan before the
    next timed run. Exits with 2, "the bench could not run", if still short."""
    free = shutil.disk_usage(scratch).free
    if free >= need:
        return
    progress(f"bench: {free / 1e9:.1f} GB free, the next repetition may write {need / 1e9:.1f} GB: "
             "deleting the retired trees")
    remove_tree(scratch / "retired")
    free = shutil.disk_usage(scratch).free
    if free < need:
        cannot_run(f"bench: {scratch} has {free / 1e9:.1f} GB free; one repetition writes up to "
                   f"{need / 1e9:.1f} GB of pycs. Free some space or use fewer groups (--only).")
    if wait:
        settle(scratch)


def count_py(tree: Path) -> int:
    # os.walk does not descend symlinked dirs, like compileall.
    return sum(name.endswith(".py") for _, _, files in os.walk(tree) for name in files)


def count_pycs(tree: Path) -> int:
    return sum(name.endswith(".pyc") for _, _, files in os.walk(tree) for name in files)


def retire(path: Path) -> None:
    """Move `path` out of the way into the scratch dir's `retired/`, emptied only
    when the bench ends (or when the disk fills up, `make_room`): ext4 skips
    inodes freed in the last 60-300 s when it allocates new ones
    (`recently_deleted`), so deleting a compiled tree before each run made
    every later run's file creation slower (the same warm-cache run took
    1.1 s, then 3.2 s, then 4.3 s, all in system time).
    Nobody compiling a fresh checkout or image layer pays that."""
    if path.exists() or path.is_symlink():
        graveyard = path.parent / "retired"
        graveyard.mkdir(exist_ok=True)
        path.rename(graveyard / f"{path.name}.{time.monotonic_ns()}")


def link_copy(pristine: Path, tree: Path) -> None:
    """A fresh tree at `tree`: new directories, sources hard-linked from the pristine copy."""
    retire(tree)
    shell("cp", "-al", "--", str(pristine), str(tree))
    # Flush the new directories now, not during the timed run.
    os.sync()


def pyc_digests(tree: Path) -> dict[str, str]:
    """Every pyc under tree by relative path, as a digest of its bytes.

    Digests instead of kept copies: every tree is compiled at the same path,
    so equal co_filenames, and keeping the x5 trees would take gigabytes.
    """
    return {str(p.relative_to(tree)): hashlib.sha256(p.read_bytes()).hexdigest() for p in tree.rglob("*.pyc")}


def compare_digests(ref: dict[str, str], cand: dict[str, str]) -> dict:
    common = ref.keys() & cand.keys()
    differing = sorted(k for k in common if ref[k] != cand[k])
    return {
        "reference": len(ref),
        "candidate": len(cand),
        "only_reference": sorted(ref.keys() - cand.keys()),
        "only_candidate": sorted(cand.keys() - ref.keys()),
        "differing": len(differing),
        "differing_examples": differing[:5],
    }


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def command_output(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, env=tool_env())
    except OSError as error:
        return f"unavailable ({error})"
    return (done.stdout + done.stderr).strip()


def python_version(python: str) -> str:
    return command_output([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"])


def supports_native(precompyle: str) -> bool:
    """Whether this precompyle build has the native backend (issue 3) yet."""
    return "--backend" in command_output([precompyle, "--help"])


def rotated(items: list, rep: int) -> list:
    shift = (rep - 1) % len(items)
    return items[shift:] + items[:shift]
