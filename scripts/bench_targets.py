#!/usr/bin/env python3
"""Several targets in one run against one run per target (issue 14).

Usage: scripts/bench_targets.py [--runs N] [--precompyle BIN] [--scratch DIR] [--quick]

On a copy of python3's stdlib + site-packages (the bench's corpus), cold:
- the CPython backend for 3.12 (pyenv 3.12.x), 3.13 (pyenv 3.13.x) and 3.14
  (Debian's, scripts/debian-python.sh): each alone, and all three in one run
  (`--python A --python B --python C`);
- native for --target 3.12, 3.13, 3.14 alone, and `--target 3.12,3.13,3.14`.
Each run starts from a fresh hard-linked copy of the pristine tree at the same
path; the tools take turns, the order rotating each repetition; medians.

Prints, per backend: the one-run wall time and CPU against the single runs
added up, and the bytes of the one run against the single runs' (run 1),
per cache tag. Exit status 1 when any pyc differs or is missing, 2 when the
benchmark could not run (an interpreter missing, a tool failing).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

from bench_common import (
    ExitPeakReader,
    Tool,
    cannot_run,
    compare_digests,
    link_copy,
    progress,
    pyc_digests,
    remove_tree,
    rotated,
    run_main,
    settle,
)
from bench_trees import corpus_dirs, prepare_corpus

ROOT = Path(__file__).resolve().parent.parent
VERSIONS = ("3.12", "3.13", "3.14")


def interpreter(version: str) -> str:
    """pyenv's newest `version`.x, else Debian's (3.14 here)."""
    found = sorted(Path.home().glob(f".pyenv/versions/{version}.*/bin/python3"))
    if found:
        return str(found[-1])
    done = subprocess.run([str(ROOT / "scripts/debian-python.sh"), version], capture_output=True, text=True)
    if done.returncode != 0:
        cannot_run(f"bench_targets: no Python {version}: {done.stderr.strip()}")
    return done.stdout.strip()


def tools(precompyle: str) -> dict[str, list[Tool]]:
    """Per backend: the single-target tools, then the one with every target."""
    pythons = [interpreter(v) for v in VERSIONS]
    cpython = [Tool(f"cpy{v}", f"precompyle --backend cpython --python {v}",
                    (precompyle, "-q", "--backend", "cpython", "--python", p)) for v, p in zip(VERSIONS, pythons)]
    cpython.append(Tool("cpyAll", "precompyle --backend cpython, 3 x --python",
                        (precompyle, "-q", "--backend", "cpython", *(a for p in pythons for a in ("--python", p)))))
    native = [Tool(f"nat{v}", f"precompyle --backend native --target {v}",
                   (precompyle, "-q", "--backend", "native", "--target", v)) for v in VERSIONS]
    native.append(Tool("natAll", f"precompyle --backend native --target {','.join(VERSIONS)}",
                       (precompyle, "-q", "--backend", "native", "--target", ",".join(VERSIONS))))
    return {"cpython": cpython, "native": native}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--precompyle", default=str(ROOT / "target/release/precompyle"))
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/precompyle-bench-targets"))
    parser.add_argument("--quick", action="store_true", help="3 stdlib packages instead of the corpus")
    args = parser.parse_args()
    scratch, logs = args.scratch, args.scratch / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    remove_tree(scratch / "retired")
    corpus = prepare_corpus(corpus_dirs("python3"), scratch / "pristine", args.quick)
    if not args.quick:
        settle(scratch)
    by_backend = tools(args.precompyle)
    every = [tool for group in by_backend.values() for tool in group]
    runner = ExitPeakReader()
    seconds: dict[str, list[float]] = {tool.key: [] for tool in every}
    cpu: dict[str, list[float]] = {tool.key: [] for tool in every}
    digests: dict[str, dict[str, str]] = {}
    tree = scratch / "tree"
    for rep in range(1, args.runs + 1):
        progress(f"bench_targets: repetition {rep}/{args.runs} ({corpus.py_files} files)")
        for tool in rotated(every, rep):
            link_copy(corpus.pristine, tree)
            wall, rc, _, usage, others = runner.run([*tool.argv, str(tree)], logs / f"{tool.key}-{rep}")
            if rc not in (0, 1):  # 1: the corpus has files with syntax errors
                cannot_run(f"bench_targets: {tool.label} exited with {rc}; see {logs}/{tool.key}-{rep}.err")
            seconds[tool.key].append(wall)
            cpu[tool.key].append(usage.cpu_seconds)
            progress(f"  {tool.label:56} {wall:7.2f} s  cpu {usage.cpu_seconds:7.2f} s  others {others:4.0%}")
            if rep == 1:
                digests[tool.key] = pyc_digests(tree)
    remove_tree(scratch / "retired")
    remove_tree(tree)

    failed = False
    print(f"\n{corpus.py_files} files; {args.runs} runs, medians; {args.precompyle}\n")
    print("| backend | one run, 3 targets: s (CPU s) | single runs added up: s (CPU s) | one / sum | pycs identical |")
    print("| --- | ---: | ---: | ---: | --- |")
    for backend, group in by_backend.items():
        *singles, together = group
        med = {t.key: statistics.median(seconds[t.key]) for t in group}
        med_cpu = {t.key: statistics.median(cpu[t.key]) for t in group}
        sum_wall = sum(med[t.key] for t in singles)
        sum_cpu = sum(med_cpu[t.key] for t in singles)
        reference: dict[str, str] = {}
        for single in singles:
            reference |= digests[single.key]
        same = compare_digests(reference, digests[together.key])
        bad = same["differing"] + len(same["only_reference"]) + len(same["only_candidate"])
        failed |= bad > 0
        verdict = f"{same['reference'] - bad} of {same['reference']}" + (f" ({bad} NOT)" if bad else "")
        print(f"| {backend} | {med[together.key]:.2f} ({med_cpu[together.key]:.1f}) | {sum_wall:.2f} ({sum_cpu:.1f}) "
              f"| {med[together.key] / sum_wall:.2f} | {verdict} |")
    print("\nsingle runs:")
    for tool in every:
        print(f"  {tool.label:56} median {statistics.median(seconds[tool.key]):7.2f} s, "
              f"CPU {statistics.median(cpu[tool.key]):7.2f} s, pycs (run 1) {len(digests[tool.key])}")
    return 1 if failed else 0


if __name__ == "__main__":
    run_main(main)
