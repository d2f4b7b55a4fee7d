#!/usr/bin/env python3
"""Benchmark driver behind scripts/bench.sh: precompyle vs `python -m compileall`.

Each cold run gets a fresh copy of the corpus at the same path (the path is
compiled into co_filename, so it must not vary); the three tools take turns,
the order rotating each repetition so none always runs on the warmest cache.
Fresh ("everything already compiled") runs reuse the tree compileall -j0 just
compiled, so they don't depend on precompyle having compiled it correctly.

Only the standard library is used, and the driver runs under the benchmarked
interpreter itself, so nothing needs installing.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

# Targets from the project brief; medians are compared, RSS is the worst run.
TARGET_COLD_VS_J0 = 1.6
TARGET_FRESH_VS_J0 = 25.0
TARGET_FRESH_VS_SEQ = 3.0
TARGET_RSS_MB = 100.0

# Above this share of CPU taken by unrelated processes, say the timings are suspect.
BUSY_MACHINE = 0.05

QUICK_SUBSET = ("email", "json", "asyncio")

# Linux ptrace constants (<linux/ptrace.h>).
PTRACE_CONT = 7
PTRACE_SEIZE = 0x4206
PTRACE_O_TRACEEXIT = 0x40
PTRACE_EVENT_EXIT = 6


@dataclass
class Sample:
    tool: str
    phase: str
    rep: int
    seconds: float
    returncode: int
    # VmHWM of the process itself, read at its exit stop (None without ptrace).
    own_peak_kb: int | None
    # wait4's ru_maxrss: max over the process and every descendant it reaped.
    tree_peak_kb: int
    # user + system CPU of the process and its reaped descendants.
    cpu_seconds: float
    # Share of the machine's CPU capacity used by *other* processes meanwhile.
    background: float
    pyc_count: int | None = None


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
    """

    def __init__(self) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.ptrace.argtypes = [ctypes.c_long] * 2 + [ctypes.c_void_p] * 2
        self.libc.ptrace.restype = ctypes.c_long
        self.usable = True
        self.warning: str | None = None

    def run(self, argv: list[str], log_stem: Path) -> tuple[float, int, int | None, os.struct_rusage, float]:
        with open(f"{log_stem}.out", "wb") as out, open(f"{log_stem}.err", "wb") as err:
            busy_before = machine_busy_seconds()
            start = time.perf_counter()
            child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
            traced = self.usable and self._seize(child.pid)
            own_peak, status, usage = self._wait(child.pid, traced)
            seconds = time.perf_counter() - start
            busy = machine_busy_seconds() - busy_before
        # We reaped the child ourselves; tell Popen so it never waits again.
        child.returncode = os.waitstatus_to_exitcode(status)
        others = max(0.0, busy - usage.ru_utime - usage.ru_stime)
        return seconds, child.returncode, own_peak, usage, others / (seconds * (os.cpu_count() or 1))

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


def pyc_files(tree: Path) -> dict[str, Path]:
    return {str(p.relative_to(tree)): p for p in tree.rglob("*.pyc")}


def compare_trees(reference: Path, candidate: Path) -> dict:
    ref, cand = pyc_files(reference), pyc_files(candidate)
    common = ref.keys() & cand.keys()
    differing = sorted(k for k in common if ref[k].read_bytes() != cand[k].read_bytes())
    return {
        "reference": len(ref),
        "candidate": len(cand),
        "only_reference": sorted(ref.keys() - cand.keys())[:5],
        "only_candidate": sorted(cand.keys() - ref.keys())[:5],
        "differing": len(differing),
        "differing_examples": differing[:5],
    }


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.scratch: Path = args.scratch
        self.tree = self.scratch / "tree"
        self.logs = self.scratch / "logs"
        self.runner = ExitPeakReader()
        self.samples: list[Sample] = []
        py = args.python
        self.cj0 = Tool("cj0", "python3 -m compileall -q -j0", (py, "-m", "compileall", "-q", "-j0"))
        self.seq = Tool("seq", "python3 -m compileall -q", (py, "-m", "compileall", "-q"))
        self.pc = Tool("pc", "precompyle -q", (args.precompyle, "-q", "--python", py))

    def measure(self, tool: Tool, phase: str, rep: int) -> Sample:
        stem = self.logs / f"{phase}-{tool.key}-{rep}"
        seconds, rc, own, usage, background = self.runner.run([*tool.argv, str(self.tree)], stem)
        cpu = usage.ru_utime + usage.ru_stime
        sample = Sample(tool.key, phase, rep, seconds, rc, own, usage.ru_maxrss, cpu, background)
        # compileall exits 1 here: the corpus has files with deliberate syntax errors.
        if rc not in (0, 1):
            tail = Path(f"{stem}.err").read_text(errors="replace")[-2000:]
            sys.exit(f"bench: {tool.label} exited with {rc}; stderr ({stem}.err) ends:\n{tail}")
        self.samples.append(sample)
        progress(f"  {phase:5} {tool.label:30} {seconds:8.2f} s  cpu {cpu:7.2f} s  others {background:4.0%}  rc={rc}")
        return sample

    def repetition(self, rep: int) -> dict | None:
        order = [self.cj0, self.pc, self.seq]
        shift = (rep - 1) % len(order)
        order = order[shift:] + order[:shift]
        kept: dict[str, Path] = {}
        for tool in order:
            fresh_copy(self.pristine, self.tree)
            sample = self.measure(tool, "cold", rep)
            sample.pyc_count = len(pyc_files(self.tree))
            if tool is self.cj0:
                self.fresh_runs(rep)
            if rep == 1 and tool in (self.cj0, self.pc):
                kept[tool.key] = self.tree.with_name(f"tree.{tool.key}")
                remove_tree(kept[tool.key])
                self.tree.rename(kept[tool.key])
        if rep != 1:
            return None
        # Both were compiled at self.tree, so co_filename matches and bytes must too.
        verdict = compare_trees(kept["cj0"], kept["pc"])
        for path in kept.values():
            remove_tree(path)
        return verdict

    def fresh_runs(self, rep: int) -> None:
        order = [self.cj0, self.seq, self.pc]
        shift = (rep - 1) % len(order)
        for tool in order[shift:] + order[:shift]:
            self.measure(tool, "fresh", rep)

    def run(self) -> dict:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.pristine = self.scratch / "pristine"
        subset = QUICK_SUBSET if self.args.quick else None
        progress(f"bench: copying {self.args.corpus} to {self.pristine} ...")
        py_count = prepare_pristine(self.args.corpus, self.pristine, subset)
        verdict = None
        for rep in range(1, self.args.runs + 1):
            progress(f"bench: repetition {rep}/{self.args.runs}")
            verdict = self.repetition(rep) or verdict
        if not self.args.keep:
            remove_tree(self.tree)
            remove_tree(self.pristine)
        return {"py_files": py_count, "identity": verdict}


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def command_output(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
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
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "kernel": platform.release(),
        "python": f"{command_output([args.python, '--version'])} ({args.python})",
        "python_startup_s": startup_seconds(args.python),
        "precompyle": f"{command_output([args.precompyle, '--version'])} ({args.precompyle})",
    }


def times_of(samples: list[Sample], tool: str, phase: str) -> list[float]:
    return [s.seconds for s in samples if s.tool == tool and s.phase == phase]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_report(info: dict, corpus: dict, samples: list[Sample], args: argparse.Namespace, warning: str | None) -> bool:
    labels = {"cj0": "python3 -m compileall -q -j0", "seq": "python3 -m compileall -q", "pc": "precompyle -q"}
    runs = f"{args.runs} run{'s' if args.runs > 1 else ''}"
    mode = f"QUICK smoke test (subset, {runs}: ratios not meaningful)" if args.quick else runs
    print(f"machine:    nproc={info['nproc']}, CPU: {info['cpu']}, Linux {info['kernel']}")
    print(f"python:     {info['python']}, bare start-up {info['python_startup_s']:.3f} s")
    print(f"precompyle: {info['precompyle']}")
    subset = f" (subset: {', '.join(QUICK_SUBSET)})" if args.quick else ""
    print(f"corpus:     {args.corpus}{subset}: {corpus['py_files']} .py files, compiled at {args.scratch / 'tree'}")
    print(f"mode:       {mode}, tool order rotated each run")
    print()
    print(f"{'phase':6} {'command':30} {'median s':>9} {'min s':>8} {'cpu s':>8} {'others':>6}  {'rc':>3}  {'pycs':>6}")
    for phase in ("cold", "fresh"):
        for tool in ("cj0", "seq", "pc"):
            mine = [s for s in samples if s.tool == tool and s.phase == phase]
            secs = [s.seconds for s in mine]
            rcs = ",".join(sorted({str(s.returncode) for s in mine}))
            pycs = ",".join(sorted({str(s.pyc_count) for s in mine if s.pyc_count is not None})) or "-"
            cpu = statistics.median(s.cpu_seconds for s in mine)
            others = max(s.background for s in mine)
            print(f"{phase:6} {labels[tool]:30} {statistics.median(secs):9.3f} {min(secs):8.3f} "
                  f"{cpu:8.2f} {others:6.0%}  {rcs:>3}  {pycs:>6}")
    print("(cpu s: median user+system CPU incl. workers; others: worst share of the machine's CPU")
    print(" used by unrelated processes during a run; above ~5% the timings are disturbed)")
    print()
    return print_targets(samples, corpus["identity"], warning)


def ratio_line(name: str, num: list[float], den: list[float], target: float) -> bool:
    median_ratio = statistics.median(num) / statistics.median(den)
    min_ratio = min(num) / min(den)
    ok = median_ratio >= target
    print(f"{name:44} {median_ratio:7.2f}x  (mins {min_ratio:6.2f}x)  target >= {target:g}x  {verdict(ok)}")
    return ok


def print_targets(samples: list[Sample], identity: dict | None, warning: str | None) -> bool:
    def t(tool: str, phase: str) -> list[float]:
        return times_of(samples, tool, phase)

    oks = [
        ratio_line("cold:  compileall -j0 / precompyle", t("cj0", "cold"), t("pc", "cold"), TARGET_COLD_VS_J0),
        ratio_line("fresh: compileall -j0 / precompyle", t("cj0", "fresh"), t("pc", "fresh"), TARGET_FRESH_VS_J0),
        ratio_line("fresh: compileall (sequential) / precompyle", t("seq", "fresh"), t("pc", "fresh"), TARGET_FRESH_VS_SEQ),
    ]
    print_cpu_ratios(samples)
    cold_pc = [s for s in samples if s.tool == "pc" and s.phase == "cold"]
    own = [s.own_peak_kb for s in cold_pc if s.own_peak_kb is not None]
    if own:
        peak_mb = max(own) / 1024
        oks.append(peak_mb < TARGET_RSS_MB)
        print(f"{'precompyle peak RSS (own process, cold, max)':44} {peak_mb:7.1f} MB"
              f"{'':15}target < {TARGET_RSS_MB:g} MB  {verdict(oks[-1])}")
    else:
        oks.append(False)
        print(f"precompyle peak RSS: not measured ({warning})  FAIL")
    print_worker_peak(cold_pc)
    if identity is not None:
        print_identity(identity)
    busiest = max(s.background for s in samples)
    if busiest > BUSY_MACHINE:
        print(f"WARNING: other processes used up to {busiest:.0%} of the CPU during a run: timings are unreliable")
    return all(oks)


def print_cpu_ratios(samples: list[Sample]) -> None:
    # CPU time barely moves when other processes compete for the cores, so on a
    # busy machine these say more than the wall-clock ratios (no target: info).
    def cpu(tool: str, phase: str) -> float:
        return statistics.median(s.cpu_seconds for s in samples if s.tool == tool and s.phase == phase)

    for phase in ("cold", "fresh"):
        ratio = cpu("cj0", phase) / cpu("pc", phase)
        name = f"{phase + ':':6} CPU time, compileall -j0 / precompyle"
        print(f"{name:44} {ratio:7.2f}x  (info)")


def print_worker_peak(cold_pc: list[Sample]) -> None:
    # wait4's maxrss is max(own, every reaped worker): when it exceeds the own
    # peak it can only be a worker's; otherwise workers were no bigger.
    measured = [s for s in cold_pc if s.own_peak_kb is not None]
    if not measured:
        return
    label = "largest Python worker peak RSS (cold, max)"
    workers = [s.tree_peak_kb for s in measured if s.tree_peak_kb > s.own_peak_kb]
    if workers:
        print(f"{label:44} {max(workers) / 1024:7.1f} MB")
    else:
        own = max(s.own_peak_kb for s in measured)
        print(f"{label:44} <= {own / 1024:.1f} MB (never above precompyle's own)")


def print_identity(identity: dict) -> None:
    same = (identity["differing"] == 0 and identity["reference"] == identity["candidate"]
            and not identity["only_reference"] and not identity["only_candidate"])
    print(f"pyc output vs compileall -j0 (run 1): {identity['candidate']} vs {identity['reference']} files, "
          f"{'byte-identical' if same else 'DIFFERENT'}")
    if not same:
        print(f"  differing: {identity['differing']} e.g. {identity['differing_examples']}")
        print(f"  only in compileall: {identity['only_reference']}; only in precompyle: {identity['only_candidate']}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precompyle", required=True)
    parser.add_argument("--python", required=True, help="the interpreter itself, not a shim")
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--scratch", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the copied trees")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    return args


def check_scratch(args: argparse.Namespace) -> None:
    """Refuse any scratch dir that overlaps the corpus: we delete inside it."""
    scratch = args.scratch.resolve()
    # bin/python3 -> the installation prefix, which holds the corpus.
    install = Path(args.python).resolve().parent.parent
    for protected in (args.corpus.resolve(), install):
        if scratch == protected or protected in scratch.parents or scratch in protected.parents:
            sys.exit(f"bench: scratch dir {scratch} overlaps {protected}; choose another PRECOMPYLE_BENCH_DIR")
    args.scratch = scratch
    scratch.mkdir(parents=True, exist_ok=True)


def main() -> int:
    args = parse_args()
    check_scratch(args)
    info = machine_info(args)
    bench = Bench(args)
    corpus = bench.run()
    results = {"machine": info, "corpus": corpus, "samples": [asdict(s) for s in bench.samples]}
    (args.scratch / "results.json").write_text(json.dumps(results, indent=2))
    print()
    all_pass = print_report(info, corpus, bench.samples, args, bench.runner.warning)
    print(f"\nraw samples and logs: {args.scratch / 'results.json'}, {bench.logs}/")
    if args.quick:
        return 0
    return 0 if all_pass else 1


if __name__ == "__main__":
    sys.exit(main())
