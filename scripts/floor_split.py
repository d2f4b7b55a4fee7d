#!/usr/bin/env python3
"""What the floor costs when it runs as a parallel tool must.

bench.sh compares the CPython backend's CPU with the floor: CPython's own
compile() + marshal.dumps of the same files, one process, nothing written.
A tool on 2 cores also splits the work and writes the pycs. This runs, in
alternating rounds on fresh hard-linked copies of TREE (copies are moved
aside, and removed only at the end: ext4 makes file creation dearer right
after many deletions):

  floor-1   the floor, one process
  floor-2   the floor split over two processes at once (file i to i % 2)
  write-1   floor-1 that also writes each pyc into __pycache__ (a plain
            open + write: no temp file, no rename, no checks)
  write-2   write-1 split over two processes
  backend   precompyle --backend cpython (default -j)
  cj0       python -m compileall -q -j0

and prints each mode's median wall and CPU (user + system, children
included), and the median over rounds of each mode's CPU over floor-1's in
the same round (noise on a shared machine moves whole rounds together).
Every mode runs in bench.sh's environment (no SOURCE_DATE_EPOCH, no
PRECOMPYLE_*); the modes that write must leave as many pycs as each other.
The floor modes get their file list made before the clock starts (the
walk is ~1% of the floor); backend and cj0 walk on the clock.

usage: scripts/floor_split.py ROUNDS TREE PRECOMPYLE [MODE,...] [--scratch DIR]
"""

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time

from bench_common import tool_env

# One compiling process: the files of a NUL-separated list, every STEP-th
# from START, compiled as py_compile does, optionally written.
COMPILER = r"""
import importlib.util, marshal, os, sys
write = sys.argv[1] == "write"
paths = open(sys.argv[2]).read().split("\0")[int(sys.argv[3])::int(sys.argv[4])]
for path in paths:
    try:
        with open(path, "rb") as f:
            source = f.read()
        data = marshal.dumps(compile(source, path, "exec", dont_inherit=True))
    except Exception:
        continue
    if write:
        cfile = importlib.util.cache_from_source(path)
        os.makedirs(os.path.dirname(cfile), exist_ok=True)
        st = os.stat(path)
        header = (importlib.util.MAGIC_NUMBER + bytes(4) + int(st.st_mtime).to_bytes(4, "little")
                  + (st.st_size & 0xFFFFFFFF).to_bytes(4, "little"))
        with open(cfile, "wb") as f:
            f.write(header + data)
"""

MODES = ("floor-1", "floor-2", "write-1", "write-2", "backend", "cj0")


def sources(tree):
    found = []
    for top, dirs, names in os.walk(tree):
        dirs.sort()
        found += [os.path.join(top, n) for n in sorted(names) if n.endswith(".py")]
    return found


def commands(mode, python, precompyle, tree, listing):
    def compilers(action, processes):
        return [[python, "-c", COMPILER, action, listing, str(i), str(processes)] for i in range(processes)]

    return {
        "floor-1": lambda: compilers("read", 1),
        "floor-2": lambda: compilers("read", 2),
        "write-1": lambda: compilers("write", 1),
        "write-2": lambda: compilers("write", 2),
        "backend": lambda: [[precompyle, "-q", "--backend", "cpython", "--python", python, tree]],
        "cj0": lambda: [[python, "-m", "compileall", "-q", "-j0", tree]],
    }[mode]()


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmds):
    env = tool_env()
    cpu, start = children_cpu(), time.perf_counter()
    processes = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env) for c in cmds]
    for p in processes:
        p.wait()
    return time.perf_counter() - start, children_cpu() - cpu


def pycs_in(tree):
    return sum(n.endswith(".pyc") for _, _, names in os.walk(tree) for n in names)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rounds", type=int)
    parser.add_argument("tree")
    parser.add_argument("precompyle")
    parser.add_argument("modes", nargs="?", default=",".join(MODES))
    parser.add_argument("--scratch", default="target/floor-split")
    parser.add_argument("--python", default=os.path.realpath(sys.executable))
    a = parser.parse_args()
    modes = a.modes.split(",")
    if unknown := set(modes) - set(MODES):
        parser.error(f"unknown modes: {sorted(unknown)}")
    if pycs_in(a.tree):
        parser.error(f"{a.tree} holds pycs: the copies would share them (hard links)")
    for path in sources(a.tree):  # the first mode of round 0 starts warm too
        with open(path, "rb") as f:
            f.read()
    shutil.rmtree(a.scratch, ignore_errors=True)
    os.makedirs(a.scratch)
    results = {m: [] for m in modes}
    for r in range(a.rounds):
        written = {}
        for m in modes if r % 2 == 0 else modes[::-1]:
            copy = os.path.abspath(f"{a.scratch}/r{r}-{m}")
            subprocess.run(["cp", "-al", a.tree, copy], check=True)
            listing = f"{copy}.list"
            with open(listing, "w") as f:
                f.write("\0".join(sources(copy)))
            time.sleep(1)
            wall, cpu = timed(commands(m, a.python, os.path.abspath(a.precompyle), copy, listing))
            results[m].append((wall, cpu))
            if not m.startswith("floor"):
                written[m] = pycs_in(copy)
            print(f"round {r} {m:8} wall {wall:7.2f} s  cpu {cpu:7.2f} s", flush=True)
        if len(set(written.values())) > 1:
            sys.exit(f"round {r}: the modes wrote different numbers of pycs: {written}")
    print(f"\n{'mode':8} {'wall s':>8} {'cpu s':>8}  cpu / floor-1 (median of rounds)")
    for m, runs in results.items():
        line = f"{m:8} {statistics.median(w for w, _ in runs):8.2f} {statistics.median(c for _, c in runs):8.2f}"
        if "floor-1" in results:
            ratios = [c / base for (_, c), (_, base) in zip(runs, results["floor-1"])]
            line += f"  {statistics.median(ratios):.3f}  ({', '.join(f'{x:.2f}' for x in ratios)})"
        print(line)
    shutil.rmtree(a.scratch, ignore_errors=True)


main()
