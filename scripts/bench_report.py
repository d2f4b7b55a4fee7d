"""scripts/bench.py's report: the table, ratios against the issues' targets, syscalls, identities."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
from typing import TYPE_CHECKING

from bench_common import (
    BUSY_MACHINE,
    FRESH_ROUNDS,
    GROUPS,
    SERC_CLI_VERSION,
    SYSCALLS_OF_INTEREST,
    SYSCALLS_TOP,
    SYSCALL_COLUMNS,
    Sample,
    TARGET_CPU_OVER_FLOOR,
    TARGET_CPYTHON_VS_J0,
    TARGET_EMPTY_OVER_NONE,
    TARGET_FRESH_CACHE_OVER_NONE,
    TARGET_FRESH_VS_J0,
    TARGET_FRESH_VS_SEQ,
    TARGET_FRESH_VS_SERC,
    TARGET_NATIVE_COLD_VS_J0T,
    TARGET_NATIVE_VS_SERC,
    TARGET_RSS_MB,
    TARGET_WARM_VS_J0,
    TARGET_WARM_VS_SERC,
    command_output,
)

if TYPE_CHECKING:
    from bench import Bench


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
    print("  cold run (floor: files compiled), for fresh runs +N = most existing pycs one run rewrote (should be +0);")
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
    head = f"{name:58} {median_ratio:7.2f}x  (mins {min_ratio:5.2f}x{by_run(num, den)})"
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


def by_run(num: list[float], den: list[float]) -> str:
    """Each repetition's own ratio: the two tools ran minutes apart at most,
    while the machine's speed drifts by more than the targets' margins
    between repetitions (informational; the verdict stays on the medians)."""
    if len(num) != len(den) or len(num) > 5:
        return ""
    return "; by run " + " ".join(f"{n / d:.2f}" for n, d in zip(num, den))


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
        # The most any tool that compiles with CPython could gain over compileall -j0
        # in this run: the floor's CPU split perfectly over the cores, with nothing
        # read, piped or written. A target above it was out of reach in that run.
        cores = os.cpu_count() or 1
        ratio_line(f"  bound: compileall -j0 / (floor CPU / {cores} cores)", secs(samples, group, "cj0"),
                   [cpu / cores for cpu in cpus(samples, group, "floor")])
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
