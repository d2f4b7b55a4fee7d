#!/usr/bin/env python3
"""Benchmark driver behind scripts/bench.sh: precompyle vs `python -m compileall` and serc.

Each cold run gets a fresh copy of the corpus at the same path (the path is
compiled into co_filename, so it must not vary); the tools take turns, the
order rotating each repetition so none always runs on the warmest cache.
Fresh ("everything already compiled") runs reuse the tree a compileall -j0
just compiled, so they don't depend on precompyle having compiled it correctly.

Two groups of rows, measured in the same run:
- classic: precompyle (CPython backend) against the corpus's own interpreter.
- native:  precompyle --backend native --target T against the target
  interpreter's compileall and serc's own CLI, plus the CPython backend driving
  the target interpreter for the all-fresh comparison. The corpus interpreter
  may be older than any target serc supports (3.11 vs 3.12+), so the target
  interpreter compiles the same 3.11 sources; files that are syntax errors for
  one compiler only show up as differing pyc counts.

Only the standard library is used, and the driver runs under the benchmarked
interpreter itself, so nothing needs installing.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

# Classic targets from the project brief; medians are compared, RSS is the worst run.
TARGET_COLD_VS_J0 = 1.6
TARGET_FRESH_VS_J0 = 25.0
TARGET_FRESH_VS_SEQ = 3.0
TARGET_RSS_MB = 100.0
# Issue 3 (native backend) targets.
TARGET_NATIVE_COLD_VS_J0 = 3.0
# native time / serc CLI time, and native fresh / CPython-backend fresh.
TARGET_NATIVE_VS_SERC = 1.10
TARGET_NATIVE_FRESH_VS_CPYTHON = 1.10
# All-fresh runs take a fraction of a second, so one sample per repetition is
# mostly noise: the native fresh rows alternate this many times per repetition.
NATIVE_FRESH_ROUNDS = 3

# Above this share of CPU taken by unrelated processes, say the timings are suspect.
BUSY_MACHINE = 0.05

QUICK_SUBSET = ("email", "json", "asyncio")

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
    tool: str
    phase: str
    rep: int
    seconds: float
    returncode: int
    # VmHWM of the process itself, read at its exit stop (None without ptrace).
    own_peak_kb: int | None
    # wait4's ru_maxrss: max over the process and every descendant it (or we) reaped.
    tree_peak_kb: int
    # user + system CPU of the process and its descendants (see ExitPeakReader).
    cpu_seconds: float
    # Share of the machine's CPU capacity used by *other* processes meanwhile.
    background: float
    pyc_count: int | None = None


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
                   "PRECOMPYLE_TARGET")


def tool_env() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if name not in NEUTRALISED_ENV}


def machine_busy_seconds() -> float:
    """CPU time spent by everything on the machine so far (first line of /proc/stat)."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal: idle and iowait are not busy.
    busy = sum(fields[:3]) + sum(fields[5:8])
    return busy / os.sysconf("SC_CLK_TCK")


def read_status_kb(pid: int, field: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def shell(*argv: str) -> None:
    subprocess.run(argv, check=True)


def remove_tree(path: Path) -> None:
    if path.exists():
        shell("rm", "-rf", "--", str(path))


def prepare_pristine(corpus: Path, pristine: Path, subset: tuple[str, ...] | None) -> int:
    """A source-only copy of the corpus that every run is copied from."""
    remove_tree(pristine)
    if subset is None:
        shell("cp", "-a", "--", str(corpus), str(pristine))
    else:
        pristine.mkdir(parents=True)
        shell("cp", "-a", "--", *(str(corpus / name) for name in subset), str(pristine))
    shell("find", str(pristine), "-name", "__pycache__", "-prune", "-exec", "rm", "-rf", "{}", "+")
    return sum(1 for _ in pristine.rglob("*.py"))


def fresh_copy(pristine: Path, tree: Path) -> None:
    remove_tree(tree)
    shell("cp", "-a", "--", str(pristine), str(tree))
    # Flush the copy's dirty pages now, not during the timed run.
    os.sync()


def pyc_digests(tree: Path) -> dict[str, str]:
    """Every pyc under tree by relative path, as a digest of its bytes.

    Digests instead of kept copies: five compiled trees of the corpus would need
    ~3 GB, and every tree is compiled at the same path, so equal co_filenames.
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


def supports_native(precompyle: str) -> bool:
    """Whether this precompyle build has the native backend (issue 3) yet."""
    return "--backend" in command_output([precompyle, "--help"])


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.scratch: Path = args.scratch
        self.tree = self.scratch / "tree"
        self.logs = self.scratch / "logs"
        self.runner = ExitPeakReader()
        self.samples: list[Sample] = []
        # Byte digests of run 1's cold output, per tool key, for the identity checks.
        self.digests: dict[str, dict[str, str]] = {}
        self.native_ok = supports_native(args.precompyle)
        self.classic = [] if args.native_only else self.classic_tools()
        self.native = self.native_tools()
        self.keys = {tool.key: tool for tool in self.classic + self.native}

    def classic_tools(self) -> list[Tool]:
        py = self.args.python
        return [
            Tool("cj0", "python3 -m compileall -q -j0", (py, "-m", "compileall", "-q", "-j0")),
            Tool("pc", "precompyle -q", (self.args.precompyle, "-q", "--python", py)),
            Tool("seq", "python3 -m compileall -q", (py, "-m", "compileall", "-q")),
        ]

    def native_tools(self) -> list[Tool]:
        a, target = self.args, self.args.target
        tools = [Tool("cjT", f"python{target} -m compileall -q -j0", (a.target_python, "-m", "compileall", "-q", "-j0"))]
        # Without --backend the CPython workers are the only backend anyway.
        backend = ("--backend", "cpython") if self.native_ok else ()
        tools.append(Tool("pcT", f"precompyle -q --backend cpython ({target})",
                          (a.precompyle, "-q", *backend, "--python", a.target_python)))
        if self.native_ok:
            tools.append(Tool("nat", f"precompyle -q --backend native --target {target}",
                              (a.precompyle, "-q", "--backend", "native", "--target", target)))
        if a.serc:
            tools.append(Tool("serc", f"serc compile -q --python-version {target}",
                              (a.serc, "compile", "-q", "--python-version", target)))
            # Compiles every file and writes nothing: the floor of any tool
            # built on serc, so it bounds what native can reach.
            tools.append(Tool("sercchk", f"serc compile -q --check (no writes) {target}",
                              (a.serc, "compile", "-q", "--check", "--python-version", target)))
        return tools

    def measure(self, tool: Tool, phase: str, rep: int, suffix: str = "") -> Sample:
        stem = self.logs / f"{phase}-{tool.key}-{rep}{suffix}"
        seconds, rc, own, usage, background = self.runner.run([*tool.argv, str(self.tree)], stem)
        cpu = usage.cpu_seconds
        sample = Sample(tool.key, phase, rep, seconds, rc, own, usage.maxrss_kb, cpu, background)
        # Exit 1 is expected: the corpus has files with deliberate syntax errors.
        if rc not in (0, 1):
            tail = Path(f"{stem}.err").read_text(errors="replace")[-2000:]
            sys.exit(f"bench: {tool.label} exited with {rc}; stderr ({stem}.err) ends:\n{tail}")
        self.samples.append(sample)
        progress(f"  {phase:5} {tool.label:46} {seconds:8.2f} s  cpu {cpu:7.2f} s  others {background:4.0%}  rc={rc}")
        return sample

    def cold_tools(self) -> list[Tool]:
        # The CPython backend on the target interpreter only matters for all-fresh runs.
        return self.classic + [tool for tool in self.native if tool.key != "pcT"]

    def repetition(self, rep: int) -> None:
        order = rotated(self.cold_tools(), rep)
        for tool in order:
            fresh_copy(self.pristine, self.tree)
            sample = self.measure(tool, "cold", rep)
            sample.pyc_count = len(list(self.tree.rglob("*.pyc")))
            if rep == 1:
                self.digests[tool.key] = pyc_digests(self.tree)
            if tool.key == "cj0":
                self.classic_fresh_runs(rep)
            elif tool.key == "cjT":
                self.native_fresh_runs(rep)

    def classic_fresh_runs(self, rep: int) -> None:
        for key in rotated(["cj0", "seq", "pc"], rep):
            self.measure(self.keys[key], "fresh", rep)

    def native_fresh_runs(self, rep: int) -> None:
        tools = [self.keys[key] for key in ("nat", "pcT", "serc") if key in self.keys]
        for round_ in range(1, NATIVE_FRESH_ROUNDS + 1):
            for tool in rotated(tools, rep + round_ - 1):
                self.measure(tool, "fresh", rep, f".{round_}")

    def run(self) -> dict:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.pristine = self.scratch / "pristine"
        subset = QUICK_SUBSET if self.args.quick else None
        progress(f"bench: copying {self.args.corpus} to {self.pristine} ...")
        py_count = prepare_pristine(self.args.corpus, self.pristine, subset)
        for rep in range(1, self.args.runs + 1):
            progress(f"bench: repetition {rep}/{self.args.runs}")
            self.repetition(rep)
        if not self.args.keep:
            remove_tree(self.tree)
            remove_tree(self.pristine)
        return {"py_files": py_count, "identity": self.identities()}

    def identities(self) -> list[dict]:
        # (reference, candidate): both compiled at self.tree, so co_filename matches.
        pairs = [("cj0", "pc"), ("serc", "nat"), ("cjT", "nat")]
        return [{"reference_tool": ref, "candidate_tool": cand} | compare_digests(self.digests[ref], self.digests[cand])
                for ref, cand in pairs if ref in self.digests and cand in self.digests]


def rotated(items: list, rep: int) -> list:
    shift = (rep - 1) % len(items)
    return items[shift:] + items[:shift]


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def command_output(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, env=tool_env())
    except OSError as error:
        return f"unavailable ({error})"
    return (done.stdout + done.stderr).strip()


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def startup_seconds(python: str) -> float:
    """Bare interpreter start-up: the floor under any run that starts Python."""
    times = []
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run([python, "-c", "pass"], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def machine_info(args: argparse.Namespace) -> dict:
    serc = command_output([args.serc, "--version"]) if args.serc else "not found"
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "kernel": platform.release(),
        "python": f"{command_output([args.python, '--version'])} ({args.python})",
        "python_startup_s": startup_seconds(args.python),
        "target_python": f"{command_output([args.target_python, '--version'])} ({args.target_python})",
        "target_python_startup_s": startup_seconds(args.target_python),
        "precompyle": f"{command_output([args.precompyle, '--version'])} ({args.precompyle})",
        "serc_cli": f"{serc} ({args.serc})" if args.serc else serc,
        "serc_crate": args.serc_crate or "unknown",
    }


LABELS = {
    "cj0": "python3 -m compileall -q -j0",
    "seq": "python3 -m compileall -q",
    "pc": "precompyle -q",
}
ROWS = {"cold": ("cj0", "seq", "pc", "cjT", "nat", "serc", "sercchk"), "fresh": ("cj0", "seq", "pc", "nat", "pcT", "serc")}


def times_of(samples: list[Sample], tool: str, phase: str) -> list[float]:
    return [s.seconds for s in samples if s.tool == tool and s.phase == phase]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_header(info: dict, corpus: dict, args: argparse.Namespace) -> None:
    runs = f"{args.runs} run{'s' if args.runs > 1 else ''}"
    mode = f"QUICK smoke test (subset, {runs}: ratios not meaningful)" if args.quick else runs
    print(f"machine:    nproc={info['nproc']}, CPU: {info['cpu']}, Linux {info['kernel']}")
    print(f"python:     {info['python']}, bare start-up {info['python_startup_s']:.3f} s")
    print(f"target:     {args.target}: {info['target_python']}, bare start-up {info['target_python_startup_s']:.3f} s")
    print(f"precompyle: {info['precompyle']}")
    print(f"serc CLI:   {info['serc_cli']}; precompyle's serc crate: {info['serc_crate']}")
    subset = f" (subset: {', '.join(QUICK_SUBSET)})" if args.quick else ""
    print(f"corpus:     {args.corpus}{subset}: {corpus['py_files']} .py files, compiled at {args.scratch / 'tree'}")
    print(f"mode:       {mode}, tool order rotated each run")


def print_table(samples: list[Sample], labels: dict[str, str]) -> None:
    print(f"{'phase':6} {'command':46} {'median s':>9} {'min s':>8} {'cpu s':>8} {'others':>6}  {'rc':>3}  "
          f"{'pycs':>6} {'own MB':>7}")
    for phase, tools in ROWS.items():
        for tool in tools:
            mine = [s for s in samples if s.tool == tool and s.phase == phase]
            if not mine:
                continue
            secs = [s.seconds for s in mine]
            rcs = ",".join(sorted({str(s.returncode) for s in mine}))
            pycs = ",".join(sorted({str(s.pyc_count) for s in mine if s.pyc_count is not None})) or "-"
            cpu = statistics.median(s.cpu_seconds for s in mine)
            others = max(s.background for s in mine)
            owns = [s.own_peak_kb for s in mine if s.own_peak_kb is not None]
            own = f"{max(owns) / 1024:7.1f}" if owns else f"{'-':>7}"
            print(f"{phase:6} {labels[tool]:46} {statistics.median(secs):9.3f} {min(secs):8.3f} "
                  f"{cpu:8.2f} {others:6.0%}  {rcs:>3}  {pycs:>6} {own}")
    print("(cpu s: median user+system CPU incl. workers; others: worst share of the machine's CPU used by")
    print(" unrelated processes during a run, above ~5% the timings are disturbed; own MB: the process's")
    print(" own peak RSS, workers excluded)")


def print_report(info: dict, corpus: dict, bench: Bench) -> bool:
    args, samples = bench.args, bench.samples
    labels = LABELS | {tool.key: tool.label for tool in bench.native}
    print_header(info, corpus, args)
    print()
    print_table(samples, labels)
    print()
    oks: list[bool] = []
    if bench.classic:
        print("classic targets (precompyle on the corpus's own interpreter):")
        oks += print_classic_targets(samples, bench.runner.warning)
        print()
    print(f"native targets (issue 3, target {args.target}):")
    oks += print_native_targets(bench, corpus["py_files"])
    identities = corpus["identity"]
    if identities:
        print()
    for identity in identities:
        print_identity(identity, labels)
    if bench.runner.orphan_warning:
        print(f"WARNING: {bench.runner.orphan_warning}")
    busiest = max(s.background for s in samples)
    if busiest > BUSY_MACHINE:
        print(f"WARNING: other processes used up to {busiest:.0%} of the CPU during a run: timings are unreliable")
    return all(oks)


def ratio_line(name: str, num: list[float], den: list[float], *, at_least: float | None = None,
               at_most: float | None = None) -> bool:
    """Median ratio num/den against a bound; with neither bound, informational (always True)."""
    if not num or not den:
        print(f"{name:52} not measured  FAIL")
        return False
    median_ratio = statistics.median(num) / statistics.median(den)
    min_ratio = min(num) / min(den)
    head = f"{name:52} {median_ratio:7.2f}x  (mins {min_ratio:6.2f}x)"
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


def print_classic_targets(samples: list[Sample], warning: str | None) -> list[bool]:
    def t(tool: str, phase: str) -> list[float]:
        return times_of(samples, tool, phase)

    oks = [
        ratio_line("cold:  compileall -j0 / precompyle", t("cj0", "cold"), t("pc", "cold"), at_least=TARGET_COLD_VS_J0),
        ratio_line("fresh: compileall -j0 / precompyle", t("cj0", "fresh"), t("pc", "fresh"),
                   at_least=TARGET_FRESH_VS_J0),
        ratio_line("fresh: compileall (sequential) / precompyle", t("seq", "fresh"), t("pc", "fresh"),
                   at_least=TARGET_FRESH_VS_SEQ),
    ]
    print_cpu_ratio(samples, "cold", "cj0", "pc", "compileall -j0 / precompyle")
    print_cpu_ratio(samples, "fresh", "cj0", "pc", "compileall -j0 / precompyle")
    cold_pc = [s for s in samples if s.tool == "pc" and s.phase == "cold"]
    oks.append(print_own_peak("precompyle peak RSS (own process, cold, max)", cold_pc, warning))
    print_worker_peak(cold_pc)
    return oks


def print_native_targets(bench: Bench, py_files: int) -> list[bool]:
    samples = bench.samples

    def t(tool: str, phase: str) -> list[float]:
        return times_of(samples, tool, phase)

    if not bench.native_ok:
        print("  precompyle has no --backend yet: native rows not measured")
    if not bench.args.serc:
        print("  serc CLI not found (pip install serc; PRECOMPYLE_BENCH_SERC=PATH): serc rows not measured")
    oks = [
        ratio_line(f"cold:  python{bench.args.target} compileall -j0 / native", t("cjT", "cold"), t("nat", "cold"),
                   at_least=TARGET_NATIVE_COLD_VS_J0),
        ratio_line("cold:  native / serc CLI", t("nat", "cold"), t("serc", "cold"), at_most=TARGET_NATIVE_VS_SERC),
        ratio_line("fresh: native / CPython backend", t("nat", "fresh"), t("pcT", "fresh"),
                   at_most=TARGET_NATIVE_FRESH_VS_CPYTHON),
    ]
    if bench.classic and t("nat", "cold"):
        ratio_line("cold:  python3 compileall -j0 / native (reference)", t("cj0", "cold"), t("nat", "cold"))
    if t("nat", "cold"):
        print_cpu_ratio(samples, "cold", "cjT", "nat", f"python{bench.args.target} compileall -j0 / native")
    if t("nat", "cold") and t("serc", "cold"):
        print_cpu_ratio(samples, "cold", "serc", "nat", "serc CLI / native")
    if t("sercchk", "cold"):
        ratio_line(f"bound: python{bench.args.target} compileall -j0 / serc compile only", t("cjT", "cold"),
                   t("sercchk", "cold"))
    cold_nat = [s for s in samples if s.tool == "nat" and s.phase == "cold"]
    if bench.native_ok:
        oks.append(print_own_peak("native peak RSS (own process, cold, max)", cold_nat, bench.runner.warning))
    print_uncompiled(samples, py_files)
    return oks


def print_cpu_ratio(samples: list[Sample], phase: str, num: str, den: str, what: str) -> None:
    # CPU time barely moves when other processes compete for the cores, so on a
    # busy machine these say more than the wall-clock ratios (no target: info).
    def cpu(tool: str) -> float:
        return statistics.median(s.cpu_seconds for s in samples if s.tool == tool and s.phase == phase)

    name = f"{phase + ':':6} CPU time, {what}"
    print(f"{name:52} {cpu(num) / cpu(den):7.2f}x  (info)")


def print_own_peak(label: str, cold: list[Sample], warning: str | None) -> bool:
    own = [s.own_peak_kb for s in cold if s.own_peak_kb is not None]
    if not own:
        print(f"{label}: not measured ({warning or 'no run'})  FAIL")
        return False
    peak_mb = max(own) / 1024
    ok = peak_mb < TARGET_RSS_MB
    print(f"{label:52} {peak_mb:7.1f} MB{'':15}target < {TARGET_RSS_MB:g} MB  {verdict(ok)}")
    return ok


def print_worker_peak(cold_pc: list[Sample]) -> None:
    # wait4's maxrss is max(own, every reaped worker): when it exceeds the own
    # peak it can only be a worker's; otherwise workers were no bigger.
    measured = [s for s in cold_pc if s.own_peak_kb is not None]
    if not measured:
        return
    label = "largest Python worker peak RSS (cold, max)"
    workers = [s.tree_peak_kb for s in measured if s.tree_peak_kb > s.own_peak_kb]
    if workers:
        print(f"{label:52} {max(workers) / 1024:7.1f} MB")
    else:
        own = max(s.own_peak_kb for s in measured)
        print(f"{label:52} <= {own / 1024:.1f} MB (never above precompyle's own)")


def print_uncompiled(samples: list[Sample], py_files: int) -> None:
    """How many sources each native-group compiler left without a pyc (errors, unsupported)."""
    parts = []
    for tool in ("cjT", "nat", "serc"):
        counts = {s.pyc_count for s in samples if s.tool == tool and s.phase == "cold" and s.pyc_count is not None}
        if counts:
            parts.append(f"{tool} {','.join(str(py_files - c) for c in sorted(counts))}")
    if parts:
        print(f"{'.py files left without a pyc (cold)':52} {'; '.join(parts)}")


def print_identity(identity: dict, labels: dict[str, str]) -> None:
    ref, cand = identity["reference_tool"], identity["candidate_tool"]
    same = (identity["differing"] == 0 and not identity["only_reference"] and not identity["only_candidate"])
    if ref == "cjT":
        # Not a target: serc reproduces the newest patch release it pins, which
        # may compile differently from an older interpreter of the same minor version.
        print("(info, target interpreter vs the patch release serc pins:)")
    print(f"pyc bytes, {labels[cand]} vs {labels[ref]} (run 1): {identity['candidate']} vs "
          f"{identity['reference']} files, {'byte-identical' if same else 'DIFFERENT'}")
    if not same:
        print(f"  differing: {identity['differing']} e.g. {identity['differing_examples']}")
        print(f"  only in {ref}: {len(identity['only_reference'])} {identity['only_reference'][:5]}")
        print(f"  only in {cand}: {len(identity['only_candidate'])} {identity['only_candidate'][:5]}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precompyle", required=True)
    parser.add_argument("--python", required=True, help="the interpreter itself, not a shim")
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--scratch", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the copied trees")
    parser.add_argument("--target", default="3.12", help="native backend / serc target version")
    parser.add_argument("--target-python", required=True, help="interpreter of --target's version, not a shim")
    parser.add_argument("--serc", help="serc's CLI (pip install serc); without it serc rows are skipped")
    parser.add_argument("--serc-crate", help="serc crate version precompyle is built with (for the report)")
    parser.add_argument("--native-only", action="store_true", help="skip the classic (issue 1) rows")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    return args


def check_target_python(args: argparse.Namespace) -> None:
    """The target interpreter must be of --target's version: it is the yardstick for that target."""
    probe = "import sys; print('%d.%d' % sys.version_info[:2])"
    version = command_output([args.target_python, "-c", probe])
    if version != args.target:
        sys.exit(f"bench: {args.target_python} is Python {version!r}, not the target {args.target}; "
                 f"set PRECOMPYLE_BENCH_TARGET_PYTHON")


def check_scratch(args: argparse.Namespace) -> None:
    """Refuse any scratch dir that overlaps the corpus or an interpreter: we delete inside it."""
    scratch = args.scratch.resolve()
    # bin/python3 -> the installation prefix, which holds the corpus.
    installs = [Path(py).resolve().parent.parent for py in (args.python, args.target_python)]
    for protected in (args.corpus.resolve(), *installs):
        if scratch == protected or protected in scratch.parents or scratch in protected.parents:
            sys.exit(f"bench: scratch dir {scratch} overlaps {protected}; choose another PRECOMPYLE_BENCH_DIR")
    args.scratch = scratch
    scratch.mkdir(parents=True, exist_ok=True)


def main() -> int:
    args = parse_args()
    check_target_python(args)
    check_scratch(args)
    info = machine_info(args)
    bench = Bench(args)
    corpus = bench.run()
    results = {"machine": info, "corpus": corpus, "samples": [asdict(s) for s in bench.samples]}
    (args.scratch / "results.json").write_text(json.dumps(results, indent=2))
    print()
    all_pass = print_report(info, corpus, bench)
    print(f"\nraw samples and logs: {args.scratch / 'results.json'}, {bench.logs}/")
    if args.quick:
        return 0
    return 0 if all_pass else 1


if __name__ == "__main__":
    sys.exit(main())
