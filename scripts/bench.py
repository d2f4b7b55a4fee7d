#!/usr/bin/env python3
"""Benchmark driver behind scripts/bench.sh: precompyle vs serc's CLI, `python -m compileall` and CPython's compiler.

Groups (--only; all but `earlier` by default), measured in the same run:
- corpus:   cold runs on a copy of python3's stdlib + site-packages: native vs
            serc's CLI; the CPython backend vs `python3 -m compileall -q -j0`
            and vs the floor (CPython's own compile()+marshal.dumps of the same
            files in one process: CPU seconds).
- wheels:   cold runs, native vs serc's CLI, on a tree unpacked from pinned
            wheels of popular packages (downloaded once, cached in the scratch dir).
- x5:       the corpus copied five times (more if that is under 55,000 files;
            --quick: its subset, five times): every corpus row, plus the peak
            RSS targets.
- fresh:    all-fresh runs on a compiled copy of the corpus: native and the
            CPython backend vs serc's CLI.
- syscalls: `strace -f -c` of one -j1 cold run of each of native, the CPython
            backend and serc's CLI on Django from the wheel tree: syscalls per pyc.
- earlier:  the rows of issues 1 and 3 (sequential compileall, pythonT's
            compileall -j0, serc's compile-only `--check`, compileall's all-fresh
            runs); implies corpus and fresh.

Each cold run gets a fresh copy of its tree at the same path (the path is
compiled into co_filename, so it must not vary); copies are hard links of a
pristine tree with no pycs (tools only read sources and create __pycache__
directories, which are new in every copy), so a 58,000-file tree is copied
in seconds and writes no data. The tools take turns, the order rotating each
repetition so none always runs on the warmest cache. Medians are compared.

Native is compared with serc's CLI (the same compiler, no interpreter) and the
CPython backend with compileall and the floor (the same interpreter): like with
like. The other pairings are printed for information.

Only the standard library is used, and the driver runs under the benchmarked
interpreter itself.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

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


def shell(*argv: str) -> None:
    subprocess.run(argv, check=True)


def remove_tree(path: Path) -> None:
    if path.exists():
        shell("rm", "-rf", "--", str(path))


def count_py(tree: Path) -> int:
    # os.walk does not descend symlinked dirs, like compileall.
    return sum(name.endswith(".py") for _, _, files in os.walk(tree) for name in files)


def count_pycs(tree: Path) -> int:
    return sum(name.endswith(".pyc") for _, _, files in os.walk(tree) for name in files)


def retire(path: Path) -> None:
    """Move `path` out of the way into the scratch dir's `retired/`, emptied only
    when the bench ends: ext4 skips inodes freed in the last 60-300 s when it
    allocates new ones (`recently_deleted`), so deleting a compiled tree
    before each run made every later run's file creation slower (the same
    warm-cache run took 1.1 s, then 3.2 s, then 4.3 s, all in system time).
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


# --- trees -------------------------------------------------------------------------------------------

def corpus_dirs(python: str) -> list[Path]:
    """python's stdlib and every site-packages outside it (pyenv keeps site-packages inside, Debian does not)."""
    probe = ("import json, site, sysconfig; p = sysconfig.get_paths(); "
             "print(json.dumps([p['stdlib'], *site.getsitepackages(), p['purelib'], p['platlib']]))")
    dirs: list[Path] = []
    for raw in json.loads(subprocess.run([python, "-c", probe], capture_output=True, text=True,
                                         check=True).stdout):
        path = Path(raw).resolve()
        if path.is_dir() and not any(path == d or d in path.parents for d in dirs):
            dirs = [d for d in dirs if path not in d.parents] + [path]
    return dirs


def prepare_corpus(dirs: list[Path], pristine: Path, quick: bool) -> Tree:
    """A copy of the corpus without its pycs (sources, data files and extension modules alike)."""
    remove_tree(pristine)
    if quick:
        pristine.mkdir(parents=True)
        shell("cp", "-a", "--", *(str(dirs[0] / name) for name in QUICK_SUBSET), str(pristine))
    elif len(dirs) == 1:
        shell("cp", "-a", "--", str(dirs[0]), str(pristine))
    else:
        pristine.mkdir(parents=True)
        for number, directory in enumerate(dirs):
            shell("cp", "-a", "--", str(directory), str(pristine / f"{number}-{directory.name}"))
    shell("find", str(pristine), "-name", "__pycache__", "-prune", "-exec", "rm", "-rf", "{}", "+")
    subset = f" (subset: {', '.join(QUICK_SUBSET)})" if quick else ""
    return Tree("corpus", pristine, count_py(pristine), f"{', '.join(map(str, dirs))}{subset}")


def prepare_multiple(corpus: Tree, pristine: Path, quick: bool) -> Tree:
    # --quick keeps five copies of its subset: a smoke test, not a 55,000-file run.
    copies = 5 if quick else max(5, math.ceil(X5_MIN_FILES / max(corpus.py_files, 1)))
    remove_tree(pristine)
    pristine.mkdir(parents=True)
    for number in range(1, copies + 1):
        shell("cp", "-al", "--", str(corpus.pristine), str(pristine / f"copy{number}"))
    return Tree("x5", pristine, count_py(pristine), f"the corpus x{copies}")


def canonical_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def cached_wheel(cache: Path, requirement: str) -> Path | None:
    name, version = requirement.split("==")
    for wheel in cache.glob("*.whl"):
        dist, wheel_version = wheel.name.split("-")[:2]
        if canonical_name(dist) == canonical_name(name) and wheel_version == version:
            return wheel
    return None


def download_wheels(python: str, cache: Path, requirements: list[str]) -> list[Path]:
    """The pinned wheels, from the cache or downloaded into it once."""
    cache.mkdir(parents=True, exist_ok=True)
    missing = [req for req in requirements if cached_wheel(cache, req) is None]
    if missing:
        progress(f"bench: pip download {' '.join(missing)} into {cache} ...")
        done = subprocess.run([python, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                               *WHEEL_PLATFORM, "-d", str(cache), *missing])
        if done.returncode != 0:
            sys.exit(f"bench: pip download failed (exit {done.returncode}); the wheels group needs PyPI")
    wheels = [cached_wheel(cache, req) for req in requirements]
    if None in wheels:
        sys.exit(f"bench: pip download left no wheel for {requirements[wheels.index(None)]} in {cache}")
    return wheels


def unpack_wheels(wheels: list[Path], pristine: Path) -> dict[str, int]:
    """All wheels unpacked into one site-packages-like tree; .py files per wheel."""
    remove_tree(pristine)
    pristine.mkdir(parents=True)
    counts = {}
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(pristine)
            # zipfile stamps files with the current time; a source modified in
            # the current second is read again by precompyle (it waits for the
            # second to pass), so give them the archive's (old) times instead.
            for info in archive.infolist():
                stamp = time.mktime(info.date_time + (0, 0, -1))
                os.utime(pristine / info.filename, (stamp, stamp))
            counts[wheel.name] = sum(name.endswith(".py") for name in archive.namelist())
    return counts


def prepare_wheels(python: str, cache: Path, pristine: Path, quick: bool) -> Tree:
    requirements = [req for req in WHEELS if not quick or canonical_name(req.split("==")[0]) in QUICK_WHEELS]
    counts = unpack_wheels(download_wheels(python, cache, requirements), pristine)
    return Tree("wheels", pristine, count_py(pristine), f"{len(requirements)} wheels: {' '.join(requirements)}",
                {"requirements": requirements, "py_files_per_wheel": counts})


# --- the serc CLI -----------------------------------------------------------------------------------

def install_serc(python: str, scratch: Path) -> str:
    """serc's CLI from PyPI in a venv of our own (reused while it has the pinned version)."""
    venv = scratch / f"serc-{SERC_CLI_VERSION}"
    serc = venv / "bin" / "serc"
    if serc.exists() and command_output([str(serc), "--version"]) == f"serc {SERC_CLI_VERSION}":
        return str(serc)
    remove_tree(venv)
    progress(f"bench: installing serc=={SERC_CLI_VERSION} into {venv} ...")
    pip_args = ["install", "-q", "--only-binary=:all:", f"serc=={SERC_CLI_VERSION}"]
    if subprocess.run([python, "-m", "venv", str(venv)], capture_output=True).returncode == 0:
        done = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", *pip_args])
    else:
        # No venv module (Debian without python3-venv): --target needs neither
        # venv nor a writable interpreter, and puts the CLI in bin/ all the same.
        remove_tree(venv)
        done = subprocess.run([python, "-m", "pip", *pip_args, "--target", str(venv)])
    if done.returncode != 0 or not serc.exists():
        sys.exit(f"bench: could not install serc=={SERC_CLI_VERSION} into {venv}; set PRECOMPYLE_BENCH_SERC")
    return str(serc)


# --- the run -----------------------------------------------------------------------------------------

class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.scratch: Path = args.scratch
        self.tree = self.scratch / "tree"
        self.fresh_tree = self.scratch / "fresh-tree"
        self.logs = self.scratch / "logs"
        self.runner = ExitPeakReader()
        self.samples: list[Sample] = []
        self.trees: dict[str, Tree] = {}
        self.syscalls: dict[str, dict] = {}
        self.group_seconds: dict[str, float] = {}
        # Byte digests of run 1's cold output, per (tree, tool key), for the identity checks.
        self.digests: dict[tuple[str, str], dict[str, str]] = {}
        self.native_ok = supports_native(args.precompyle)
        self.pyver = python_version(args.python)
        self.tools = self.make_tools()
        # A group's cold tools, in their first repetition's order.
        self.cold: dict[str, list[str]] = {
            "corpus": ["serc", "nat", "pc", "cj0", "floor"],
            "wheels": ["serc", "nat"],
            "x5": ["serc", "nat", "pc", "cj0", "floor"],
            # Each E (empty cache) and W (warm cache) tool next to the same tool without one.
            "cache": ["serc", "natW", "pc", "pcE", "cj0", "nat", "pcW", "natE"],
        }
        if "earlier" in args.only:
            self.cold["corpus"] += ["seq", "cjT", "sercchk"]
        self.cold = {g: [k for k in keys if k in self.tools] for g, keys in self.cold.items() if g in args.only}
        self.fresh = [k for k in ("nat", "pc", "serc") + (("cj0", "seq") if "earlier" in args.only else ())
                      + (("pcC", "natC") if "cache" in args.only else ()) if k in self.tools]

    def make_tools(self) -> dict[str, Tool]:
        a, target, pyver = self.args, self.args.target, self.pyver
        # Without --backend (a build before issue 3) the CPython workers are the only backend anyway.
        backend = ("--backend", "cpython") if self.native_ok else ()
        tools = [
            Tool("pc", f"precompyle -q --backend cpython ({pyver})", (a.precompyle, "-q", *backend, "--python", a.python)),
            Tool("cj0", f"python{pyver} -m compileall -q -j0", (a.python, "-m", "compileall", "-q", "-j0")),
            Tool("floor", f"floor: compile()+marshal, one python{pyver}", (a.python, "-c", FLOOR_SOURCE)),
            Tool("seq", f"python{pyver} -m compileall -q", (a.python, "-m", "compileall", "-q")),
            Tool("serc", f"serc {SERC_CLI_VERSION} compile -q --python-version {target}",
                 (a.serc, "compile", "-q", "--python-version", target)),
            # Compiles every file and writes nothing: the floor of any tool built on serc.
            Tool("sercchk", f"serc compile -q --check (no writes) {target}",
                 (a.serc, "compile", "-q", "--check", "--python-version", target)),
        ]
        if self.native_ok:
            tools.append(Tool("nat", f"precompyle -q --backend native --target {target}",
                              (a.precompyle, "-q", "--backend", "native", "--target", target)))
        # The compile cache: E tools run with it emptied first, W tools with it filled
        # (untimed, at the same path) when empty; C tools run all-fresh with one that
        # should never be opened.
        by_key = {tool.key: tool for tool in tools}
        for key, tool in ((k, by_key[k]) for k in ("pc", "nat") if k in by_key):
            cache = str(self.scratch / f"cache-{key}")
            for suffix, what in (("E", "empty cache"), ("W", "warm cache")):
                tools.append(Tool(key + suffix, f"{tool.label}, {what}", (*tool.argv, "--cache-dir", cache)))
            tools.append(Tool(key + "C", f"{tool.label}, --cache-dir",
                              (*tool.argv, "--cache-dir", str(self.scratch / f"cache-never-{key}"))))
        if a.target_python:
            tools.append(Tool("cjT", f"python{target} -m compileall -q -j0",
                              (a.target_python, "-m", "compileall", "-q", "-j0")))
        return {tool.key: tool for tool in tools}

    def measure(self, group: str, tool: Tool, phase: str, rep: int, tree: Path, suffix: str = "") -> Sample:
        stem = self.logs / f"{group}-{phase}-{tool.key}-{rep}{suffix}"
        seconds, rc, own, usage, background = self.runner.run([*tool.argv, str(tree)], stem)
        sample = Sample(group, tool.key, phase, rep, seconds, rc, own, usage.maxrss_kb, usage.cpu_seconds, background)
        # Exit 1 is expected: the corpus has files with deliberate syntax errors.
        if rc not in (0, 1):
            tail = Path(f"{stem}.err").read_text(errors="replace")[-2000:]
            sys.exit(f"bench: {tool.label} exited with {rc}; stderr ({stem}.err) ends:\n{tail}")
        self.samples.append(sample)
        progress(f"  {group:6} {phase:5} {tool.label:48} {seconds:8.2f} s  cpu {usage.cpu_seconds:7.2f} s  "
                 f"others {background:4.0%}  rc={rc}")
        return sample

    def cold_run(self, group: str, key: str, rep: int) -> None:
        tool, tree = self.tools[key], self.trees["corpus" if group == "cache" else group]
        cache = self.scratch / f"cache-{key[:-1]}"
        if key.endswith("E"):
            retire(cache)
        if key.endswith("W") and not cache.exists():
            link_copy(tree.pristine, self.tree)
            self.measure(group, tool, "setup", rep, self.tree)
        link_copy(tree.pristine, self.tree)
        sample = self.measure(group, tool, "cold", rep, self.tree)
        if key == "floor":
            found = re.search(r"compiled (\d+)", Path(f"{self.logs}/{group}-cold-floor-{rep}.out").read_text())
            sample.pyc_count = int(found.group(1)) if found else None
        else:
            sample.pyc_count = count_pycs(self.tree)
        if rep == 1 and key in ("nat", "serc", "pc", "cj0", "pcE", "pcW", "natE", "natW"):
            self.digests[(group, key)] = pyc_digests(self.tree)

    def prepare_fresh(self) -> None:
        """The corpus compiled (untimed) by every tool whose pycs the fresh tools look for."""
        link_copy(self.trees["corpus"].pristine, self.fresh_tree)
        # serc and compileall: neither is the tool under test, so a precompyle
        # that took good pycs for stale would show as rewrites, not be hidden.
        for key in ("serc", "cj0"):
            self.measure("fresh", self.tools[key], "setup", 0, self.fresh_tree)

    def fresh_rounds(self, rep: int) -> None:
        for round_ in range(1, FRESH_ROUNDS + 1):
            for key in rotated(self.fresh, rep + round_ - 1):
                before = time.time_ns()
                sample = self.measure("fresh", self.tools[key], "fresh", rep, self.fresh_tree, f".{round_}")
                sample.rewritten = sum(1 for p in self.fresh_tree.rglob("*.pyc") if p.stat().st_mtime_ns >= before)

    def run(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        remove_tree(self.scratch / "retired")  # left by an interrupted bench
        a, only = self.args, self.args.only
        start = time.monotonic()
        if only & {"corpus", "x5", "fresh", "cache", "earlier"}:
            progress(f"bench: copying the corpus to {self.scratch / 'pristine'} ...")
            self.trees["corpus"] = prepare_corpus(corpus_dirs(a.python), self.scratch / "pristine", a.quick)
        if "x5" in only:
            self.trees["x5"] = prepare_multiple(self.trees["corpus"], self.scratch / "pristine-x5", a.quick)
        if only & {"wheels", "syscalls"}:
            self.trees["wheels"] = prepare_wheels(a.python, self.scratch / "wheels-cache",
                                                  self.scratch / "pristine-wheels", a.quick)
        if "fresh" in only:
            self.prepare_fresh()
        self.group_seconds["setup"] = time.monotonic() - start
        for rep in range(1, a.runs + 1):
            progress(f"bench: repetition {rep}/{a.runs}")
            for group, keys in self.cold.items():
                start = time.monotonic()
                for key in rotated(keys, rep):
                    self.cold_run(group, key, rep)
                self.group_seconds[group] = self.group_seconds.get(group, 0.0) + time.monotonic() - start
            if "fresh" in only:
                start = time.monotonic()
                self.fresh_rounds(rep)
                self.group_seconds["fresh"] = self.group_seconds.get("fresh", 0.0) + time.monotonic() - start
        if "syscalls" in only:
            start = time.monotonic()
            self.count_syscalls()
            self.group_seconds["syscalls"] = time.monotonic() - start
        remove_tree(self.scratch / "retired")
        if not a.keep:
            for path in (self.tree, self.fresh_tree, *(tree.pristine for tree in self.trees.values()),
                         *self.scratch.glob("cache-*")):
                remove_tree(path)

    def count_syscalls(self) -> None:
        if not self.args.strace:
            return
        wheels = self.trees["wheels"].pristine
        source = wheels / SYSCALL_PACKAGE if (wheels / SYSCALL_PACKAGE).is_dir() else wheels
        self.trees["syscalls"] = Tree("syscalls", source, count_py(source), str(source.relative_to(self.scratch)))
        for key in ("nat", "pc", "serc"):
            if key not in self.tools:
                continue
            tool = self.tools[key]
            link_copy(source, self.tree)
            summary = self.logs / f"syscalls-{key}.strace"
            argv = [self.args.strace, "-f", "-c", "-o", str(summary), "--", *tool.argv, *tool.one_job, str(self.tree)]
            with open(self.logs / f"syscalls-{key}.out", "wb") as out, \
                    open(self.logs / f"syscalls-{key}.err", "wb") as err:
                rc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=tool_env()).returncode
            counts = parse_strace_summary(summary.read_text()) if summary.exists() else {}
            pycs = count_pycs(self.tree)
            self.syscalls[key] = {"returncode": rc, "pycs": pycs, "counts": counts}
            total = counts.get("total", (0, 0))[0]
            progress(f"  strace {tool.label:48} rc={rc} {total} syscalls, {pycs} pycs")

    def identities(self) -> list[dict]:
        # (reference, candidate): both compiled at self.tree, so co_filename matches.
        found = []
        for group in self.cold:
            for ref, cand in (("cj0", "pc"), ("serc", "nat"), ("cj0", "pcE"), ("cj0", "pcW"), ("serc", "natE"),
                              ("serc", "natW")):
                if (group, ref) in self.digests and (group, cand) in self.digests:
                    found.append({"group": group, "reference_tool": ref, "candidate_tool": cand}
                                 | compare_digests(self.digests[(group, ref)], self.digests[(group, cand)]))
        return found


def parse_strace_summary(text: str) -> dict[str, tuple[int, int]]:
    """`strace -c` rows: % time, seconds, usecs/call, calls, [errors,] syscall; the last row is `total`."""
    counts = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 5 or not fields[0][0].isdigit():
            continue
        numbers = fields[:-1]
        counts[fields[-1]] = (int(numbers[3]), int(numbers[4]) if len(numbers) > 4 else 0)
    return counts


# --- the report --------------------------------------------------------------------------------------

def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info(args: argparse.Namespace) -> dict:
    target = args.target_python
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "kernel": platform.release(),
        "python": f"{command_output([args.python, '--version'])} ({args.python})",
        "target_python": f"{command_output([target, '--version'])} ({target})" if target else "none",
        "precompyle": f"{command_output([args.precompyle, '--version'])} ({args.precompyle})",
        "serc_cli": f"{command_output([args.serc, '--version'])} ({args.serc})",
        "serc_crate": args.serc_crate or "unknown",
        "strace": command_output([args.strace, "-V"]).splitlines()[0] if args.strace
        else "none" if "syscalls" in args.only else "not needed",
    }


def duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def of(samples: list[Sample], group: str, tool: str, phase: str = "cold") -> list[Sample]:
    return [s for s in samples if s.group == group and s.tool == tool and s.phase == phase]


def print_header(info: dict, bench: Bench) -> None:
    args = bench.args
    runs = f"{args.runs} run{'s' if args.runs > 1 else ''}"
    mode = f"QUICK smoke test (subsets, {runs}: ratios not meaningful)" if args.quick else runs
    print(f"machine:    nproc={info['nproc']}, CPU: {info['cpu']}, Linux {info['kernel']}")
    print(f"python:     {info['python']}; pythonT for `earlier`: {info['target_python']}")
    print(f"precompyle: {info['precompyle']}; native target {args.target}")
    print(f"serc CLI:   {info['serc_cli']}; precompyle's serc crate: {info['serc_crate']}")
    print(f"strace:     {info['strace']}")
    for tree in bench.trees.values():
        print(f"{tree.name + ':':11} {tree.py_files:,} .py files, {tree.note}")
    print(f"groups:     {', '.join(g for g in GROUPS if g in args.only)}")
    print(f"mode:       {mode}, tool order rotated each run; fresh: {FRESH_ROUNDS} rounds per run")


def print_table(bench: Bench) -> None:
    labels = {key: tool.label for key, tool in bench.tools.items()}
    print(f"{'tree':7} {'phase':5} {'command':48} {'median s':>9} {'min s':>8} {'cpu s':>8} {'others':>6} "
          f"{'rc':>3} {'pycs':>7} {'own MB':>7} {'tree MB':>7}")
    seen = []
    for s in bench.samples:
        if s.phase != "setup" and (s.group, s.phase, s.tool) not in seen:
            seen.append((s.group, s.phase, s.tool))
    for group, phase, tool in sorted(seen, key=lambda k: (GROUPS.index(k[0]), k[1] != "cold")):
        mine = of(bench.samples, group, tool, phase)
        secs = [s.seconds for s in mine]
        rcs = ",".join(sorted({str(s.returncode) for s in mine}))
        if phase == "fresh":
            pycs = f"+{max(s.rewritten or 0 for s in mine)}"
        else:
            pycs = ",".join(sorted({str(s.pyc_count) for s in mine if s.pyc_count is not None})) or "-"
        owns = [s.own_peak_kb for s in mine if s.own_peak_kb is not None]
        own = f"{max(owns) / 1024:7.1f}" if owns else f"{'-':>7}"
        print(f"{group:7} {phase:5} {labels[tool]:48} {statistics.median(secs):9.3f} {min(secs):8.3f} "
              f"{statistics.median(s.cpu_seconds for s in mine):8.2f} {max(s.background for s in mine):6.0%} "
              f"{rcs:>3} {pycs:>7} {own} {max(s.tree_peak_kb for s in mine) / 1024:7.1f}")
    print("cpu s: median user+system CPU, workers included; others: worst share of the machine's CPU used by")
    print("  unrelated processes during a run (above ~5% the timings are disturbed); pycs: in the tree after a")
    print("  cold run (floor: files compiled), for fresh runs +N = most pycs one run rewrote (should be +0);")
    print("  own MB: the process's own peak RSS (ptrace, at exit); tree MB: the largest single process among it")
    print("  and every descendant (wait4's maxrss, not a sum): Python workers for the CPython backend and")
    print("  compileall -j0; serc, native and the floor are one process, so there own = tree")


def ratio_line(name: str, num: list[float], den: list[float], *, at_least: float | None = None,
               at_most: float | None = None) -> bool:
    """Median ratio num/den against a bound; with neither bound, informational (always True)."""
    if not num or not den:
        print(f"{name:58} not measured{'  FAIL' if at_least or at_most else ''}")
        return not (at_least or at_most)
    median_ratio = statistics.median(num) / statistics.median(den)
    min_ratio = min(num) / min(den)
    head = f"{name:58} {median_ratio:7.2f}x  (mins {min_ratio:5.2f}x)"
    if at_least is not None:
        ok = median_ratio >= at_least
        print(f"{head}  target >= {at_least:g}x  {verdict(ok)}")
    elif at_most is not None:
        ok = median_ratio <= at_most
        print(f"{head}  target <= {at_most:g}x  {verdict(ok)}")
    else:
        ok = True
        print(f"{head}  (info)")
    return ok


def secs(samples: list[Sample], group: str, tool: str, phase: str = "cold") -> list[float]:
    return [s.seconds for s in of(samples, group, tool, phase)]


def cpus(samples: list[Sample], group: str, tool: str) -> list[float]:
    return [s.cpu_seconds for s in of(samples, group, tool)]


def print_cold_targets(bench: Bench, group: str) -> list[bool]:
    samples, oks = bench.samples, []
    print(f"{group} (cold):")
    keys = bench.cold[group]
    if "serc" in keys:
        oks.append(ratio_line("  serc CLI / native", secs(samples, group, "serc"), secs(samples, group, "nat"),
                              at_least=TARGET_NATIVE_VS_SERC))
        ratio_line("  CPU time, serc CLI / native", cpus(samples, group, "serc"), cpus(samples, group, "nat"))
    if "cj0" in keys:
        oks.append(ratio_line("  compileall -j0 / CPython backend", secs(samples, group, "cj0"),
                              secs(samples, group, "pc"), at_least=TARGET_CPYTHON_VS_J0[group]))
        ratio_line("  CPU time, compileall -j0 / CPython backend", cpus(samples, group, "cj0"),
                   cpus(samples, group, "pc"))
        oks.append(ratio_line("  CPU time, CPython backend / floor", cpus(samples, group, "pc"),
                              cpus(samples, group, "floor"), at_most=TARGET_CPU_OVER_FLOOR))
        ratio_line("  CPython backend / native", secs(samples, group, "pc"), secs(samples, group, "nat"))
    if group == "x5":
        for key in ("nat", "pc"):
            oks.append(print_own_peak(f"  {bench.tools[key].label} own peak RSS", of(samples, group, key),
                                      bench.runner.warning))
    return oks


def print_cache_targets(bench: Bench) -> list[bool]:
    samples, oks = bench.samples, []
    print("cache (cold corpus; W = warm cache, E = empty cache):")
    for key, name in (("pc", "CPython backend"), ("nat", "native")):
        if key not in bench.tools:
            continue
        warm = secs(samples, "cache", key + "W")
        oks.append(ratio_line(f"  compileall -j0 / {name}, warm cache", secs(samples, "cache", "cj0"), warm,
                              at_least=TARGET_WARM_VS_J0))
        oks.append(ratio_line(f"  serc CLI / {name}, warm cache", secs(samples, "cache", "serc"), warm,
                              at_least=TARGET_WARM_VS_SERC))
        ratio_line(f"  {name} without cache / with a warm one", secs(samples, "cache", key), warm)
        oks.append(ratio_line(f"  {name}: empty cache / no cache", secs(samples, "cache", key + "E"),
                              secs(samples, "cache", key), at_most=TARGET_EMPTY_OVER_NONE))
        if "fresh" in bench.args.only:
            oks.append(ratio_line(f"  {name} all-fresh: --cache-dir / none", secs(samples, "fresh", key + "C", "fresh"),
                                  secs(samples, "fresh", key, "fresh"), at_most=TARGET_FRESH_CACHE_OVER_NONE))
            opened = (bench.scratch / f"cache-never-{key}").exists()
            oks.append(not opened)
            print(f"  {name} all-fresh runs opened the cache: {'yes  FAIL' if opened else 'no  PASS'}")
    return oks


def print_own_peak(label: str, cold: list[Sample], warning: str | None) -> bool:
    own = [s.own_peak_kb for s in cold if s.own_peak_kb is not None]
    if not own:
        print(f"{label:58} not measured ({warning or 'no run'})  FAIL")
        return False
    peak_mb = max(own) / 1024
    ok = peak_mb < TARGET_RSS_MB
    print(f"{label:58} {peak_mb:7.1f} MB{'':14}target < {TARGET_RSS_MB:g} MB  {verdict(ok)}")
    return ok


def print_fresh_targets(bench: Bench) -> list[bool]:
    samples = bench.samples
    print("fresh (the corpus, compiled):")
    oks = [ratio_line("  serc CLI / native", secs(samples, "fresh", "serc", "fresh"),
                      secs(samples, "fresh", "nat", "fresh"), at_least=TARGET_FRESH_VS_SERC)]
    ratio_line("  serc CLI / CPython backend", secs(samples, "fresh", "serc", "fresh"),
               secs(samples, "fresh", "pc", "fresh"))
    rewritten = {s.tool for s in samples if s.phase == "fresh" and s.rewritten}
    if rewritten:
        print(f"  WARNING: runs of {', '.join(sorted(rewritten))} rewrote pycs of the compiled tree")
    return oks


def print_earlier_targets(bench: Bench) -> list[bool]:
    samples, target = bench.samples, bench.args.target
    print("earlier (issues 1 and 3):")
    oks = [
        ratio_line("  fresh: compileall -j0 / CPython backend", secs(samples, "fresh", "cj0", "fresh"),
                   secs(samples, "fresh", "pc", "fresh"), at_least=TARGET_FRESH_VS_J0),
        ratio_line("  fresh: compileall (sequential) / CPython backend", secs(samples, "fresh", "seq", "fresh"),
                   secs(samples, "fresh", "pc", "fresh"), at_least=TARGET_FRESH_VS_SEQ),
        ratio_line(f"  cold: python{target} compileall -j0 / native", secs(samples, "corpus", "cjT"),
                   secs(samples, "corpus", "nat"), at_least=TARGET_NATIVE_COLD_VS_J0T),
    ]
    ratio_line("  cold: compileall (sequential) / CPython backend", secs(samples, "corpus", "seq"),
               secs(samples, "corpus", "pc"))
    ratio_line(f"  bound: python{target} compileall -j0 / serc compile only", secs(samples, "corpus", "cjT"),
               secs(samples, "corpus", "sercchk"))
    if not bench.args.target_python:
        print(f"  no Python {target} interpreter (PRECOMPYLE_BENCH_TARGET_PYTHON): its rows not measured")
    return oks


def print_syscalls(bench: Bench) -> list[bool]:
    tree = bench.trees.get("syscalls")
    if not bench.args.strace or tree is None:
        print("syscalls: strace not available: not measured  FAIL")
        return [False]
    results = {key: r for key, r in bench.syscalls.items() if r["pycs"]}
    print(f"syscalls (strace -f -c, one -j1 cold run on {tree.note}, {tree.py_files} .py files; "
          "processes of a tool included):")
    keys = list(results)
    names = sorted((n for r in results.values() for n in r["counts"] if n != "total"),
                   key=lambda n: -max(r["counts"].get(n, (0, 0))[0] for r in results.values()))
    shown = [n for n in dict.fromkeys(names[:SYSCALLS_TOP] + [n for n in SYSCALLS_OF_INTEREST if n in names])]
    print(f"  {'syscall':14}" + "".join(f" {SYSCALL_COLUMNS[k]:>34}" for k in keys))
    print(f"  {'':14}" + "".join(f" {'calls (errors) per pyc':>34}" for _ in keys))
    for name in ["total", *shown]:
        cells = []
        for key in keys:
            calls, errors = results[key]["counts"].get(name, (0, 0))
            cells.append(f" {f'{calls} ({errors})':>20} {calls / results[key]['pycs']:>13.2f}")
        print(f"  {name:14}" + "".join(cells))
    print(f"  {'pycs written':14}" + "".join(f" {results[k]['pycs']:>34}" for k in keys))

    def per_pyc(key: str) -> float | None:
        return results[key]["counts"].get("total", (0, 0))[0] / results[key]["pycs"] if key in results else None

    native, cpython, serc = per_pyc("nat"), per_pyc("pc"), per_pyc("serc")
    if native is None or serc is None:
        print(f"  {'native <= serc CLI, syscalls per pyc':56} not measured  FAIL")
        return [False]
    ok = native <= serc
    print(f"  {'native / serc CLI, syscalls per pyc':56} {native:7.1f} / {serc:.1f}  target <= 1x  {verdict(ok)}")
    if cpython is not None:
        # Info only: the worker pipes add syscalls per file serc cannot have.
        print(f"  {'CPython backend / serc CLI, syscalls per pyc':56} {cpython:7.1f} / {serc:.1f}  (info)")
    return [ok]


def print_identity(identity: dict, labels: dict[str, str], serc_crate: str) -> None:
    ref, cand = identity["reference_tool"], identity["candidate_tool"]
    same = identity["differing"] == 0 and not identity["only_reference"] and not identity["only_candidate"]
    print(f"{identity['group']}: pyc bytes, {labels[cand]} vs {labels[ref]} (run 1): {identity['candidate']} vs "
          f"{identity['reference']} files, {'byte-identical' if same else 'DIFFERENT'}")
    if not same:
        print(f"  differing: {identity['differing']} e.g. {identity['differing_examples']}")
        print(f"  only in {ref}: {len(identity['only_reference'])} {identity['only_reference'][:5]}")
        print(f"  only in {cand}: {len(identity['only_candidate'])} {identity['only_candidate'][:5]}")
        if ref == "serc" and serc_crate != SERC_CLI_VERSION:
            # Info, not a target: the bytes may differ because the compilers do.
            print(f"  (serc's CLI is {SERC_CLI_VERSION}, native links the serc crate {serc_crate})")


def print_report(info: dict, bench: Bench, identities: list[dict]) -> bool:
    print_header(info, bench)
    print()
    if bench.samples:
        print_table(bench)
        print()
    oks: list[bool] = []
    print("targets (issues 10 and 12; time ratios are medians, slower / faster):")
    for group in bench.cold:
        if group != "cache":
            oks += print_cold_targets(bench, group)
    if "cache" in bench.args.only:
        oks += print_cache_targets(bench)
    if "fresh" in bench.args.only:
        oks += print_fresh_targets(bench)
    if "earlier" in bench.args.only:
        oks += print_earlier_targets(bench)
    if "syscalls" in bench.args.only:
        oks += print_syscalls(bench)
    if not bench.native_ok:
        print("precompyle has no --backend yet: native rows not measured")
    if identities:
        print()
    labels = {key: tool.label for key, tool in bench.tools.items()}
    for identity in identities:
        print_identity(identity, labels, bench.args.serc_crate or "unknown")
    print()
    print("wall time per group (copies included): "
          + ", ".join(f"{g} {duration(s)}" for g, s in bench.group_seconds.items()))
    if bench.runner.orphan_warning:
        print(f"WARNING: {bench.runner.orphan_warning}")
    busiest = max((s.background for s in bench.samples), default=0.0)
    if busiest > BUSY_MACHINE:
        print(f"WARNING: other processes used up to {busiest:.0%} of the CPU during a run: timings are unreliable")
    print(f"{'all targets pass' if all(oks) else 'SOME TARGETS FAIL'} ({sum(oks)}/{len(oks)})")
    return all(oks)


# --- main --------------------------------------------------------------------------------------------

def parse_groups(text: str) -> set[str]:
    groups = {g.strip() for g in text.split(",") if g.strip()}
    unknown = groups - set(GROUPS)
    if unknown or not groups:
        raise argparse.ArgumentTypeError(f"unknown group(s) {sorted(unknown)}; choose from {', '.join(GROUPS)}")
    return groups | ({"corpus", "fresh"} if "earlier" in groups else set())


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precompyle", required=True)
    parser.add_argument("--python", required=True, help="the interpreter itself, not a shim")
    parser.add_argument("--scratch", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="subsets of every tree (a smoke test)")
    parser.add_argument("--keep", action="store_true", help="keep the copied trees")
    parser.add_argument("--only", type=parse_groups, default=set(DEFAULT_GROUPS),
                        help=f"comma-separated groups: {', '.join(GROUPS)} (default: all but earlier)")
    parser.add_argument("--target", default="3.12", help="native backend / serc target version")
    parser.add_argument("--target-python", help="interpreter of --target's version (group earlier only)")
    parser.add_argument("--serc", help=f"serc's CLI (default: serc=={SERC_CLI_VERSION} installed in the scratch dir)")
    parser.add_argument("--serc-crate", help="serc crate version precompyle is built with (for the report)")
    parser.add_argument("--strace", help="strace binary (without it the syscalls group is not measured)")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    return args


def check_target_python(args: argparse.Namespace) -> None:
    """The target interpreter must be of --target's version: it is the yardstick for that target."""
    if args.target_python and python_version(args.target_python) != args.target:
        sys.exit(f"bench: {args.target_python} is Python {python_version(args.target_python)!r}, "
                 f"not the target {args.target}; set PRECOMPYLE_BENCH_TARGET_PYTHON")


def check_scratch(args: argparse.Namespace) -> None:
    """Refuse any scratch dir that overlaps the corpus or an interpreter: we delete inside it."""
    scratch = args.scratch.resolve()
    # bin/python3 -> the installation prefix, which holds the corpus (pyenv, python.org);
    # on Debian the prefix is /usr, and its lib dirs are the corpus.
    pythons = [py for py in (args.python, args.target_python) if py]
    protected = [Path(py).resolve().parent.parent for py in pythons] + corpus_dirs(args.python)
    for path in protected:
        if scratch == path or path in scratch.parents or scratch in path.parents:
            sys.exit(f"bench: scratch dir {scratch} overlaps {path}; choose another PRECOMPYLE_BENCH_DIR")
    args.scratch = scratch
    scratch.mkdir(parents=True, exist_ok=True)


def main() -> int:
    args = parse_args()
    check_target_python(args)
    check_scratch(args)
    if not args.serc:
        args.serc = install_serc(args.python, args.scratch)
    info = machine_info(args)
    bench = Bench(args)
    bench.run()
    identities = bench.identities()
    results = {"machine": info, "trees": {name: asdict(tree) | {"pristine": str(tree.pristine)}
                                          for name, tree in bench.trees.items()},
               "samples": [asdict(s) for s in bench.samples], "syscalls": bench.syscalls,
               "identity": identities, "group_seconds": bench.group_seconds}
    (args.scratch / "results.json").write_text(json.dumps(results, indent=2))
    print()
    all_pass = print_report(info, bench, identities)
    print(f"\nraw samples and logs: {args.scratch / 'results.json'}, {bench.logs}/")
    if args.quick:
        return 0
    return 0 if all_pass else 1


if __name__ == "__main__":
    sys.exit(main())
