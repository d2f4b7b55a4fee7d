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
repetition so none always runs on the warmest cache (or pays for the
first run after setting up): five repetitions put each of the corpus's
and x5's five tools first once. Medians are compared.

Native is compared with serc's CLI (the same compiler, no interpreter) and the
CPython backend with compileall and the floor (the same interpreter): like with
like. The other pairings are printed for information.

Only the standard library is used, and the driver runs under the benchmarked
interpreter itself.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from bench_common import (
    DEFAULT_GROUPS,
    ExitPeakReader,
    FLOOR_SOURCE,
    FRESH_ROUNDS,
    GROUPS,
    PYC_DISK_PER_SOURCE_BYTE,
    SERC_CLI_VERSION,
    SYSCALL_PACKAGE,
    Sample,
    Tool,
    Tree,
    cannot_run,
    compare_digests,
    count_py,
    count_pycs,
    link_copy,
    make_room,
    progress,
    pyc_digests,
    python_version,
    remove_tree,
    retire,
    rotated,
    run_main,
    settle,
    source_bytes,
    supports_native,
    tool_env,
)
from bench_trees import (
    corpus_dirs,
    install_serc,
    prepare_corpus,
    prepare_multiple,
    prepare_wheels,
)
from bench_report import machine_info, print_report


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
            cannot_run(f"bench: {tool.label} exited with {rc}; stderr ({stem}.err) ends:\n{tail}")
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
                # Only pycs that were there before count: a file the setup's
                # tools could not compile (serc cannot decode cp1252, which
                # precompyle can) is rightly compiled by the first fresh run.
                existing = list(self.fresh_tree.rglob("*.pyc"))
                before = time.time_ns()
                sample = self.measure("fresh", self.tools[key], "fresh", rep, self.fresh_tree, f".{round_}")
                sample.rewritten = sum(1 for p in existing if p.stat().st_mtime_ns >= before)

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
        if not a.quick:
            settle(self.scratch)
        need = self.repetition_bytes()
        for rep in range(1, a.runs + 1):
            make_room(self.scratch, need, wait=not a.quick)
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

    def repetition_bytes(self) -> int:
        """Disk one repetition's cold runs may take: a tree of pycs per tool that
        writes them, and as much again in the cache of each cache tool."""
        sizes = {name: source_bytes(tree.pristine) for name, tree in self.trees.items()}

        def trees(key: str) -> int:
            return 0 if key in ("floor", "sercchk") else 2 if key[-1] in "EW" else 1

        return sum(PYC_DISK_PER_SOURCE_BYTE * sizes["corpus" if group == "cache" else group]
                   * sum(map(trees, keys)) for group, keys in self.cold.items())

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
    parser.add_argument("--runs", type=int, default=5)
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
        cannot_run(f"bench: {args.target_python} is Python {python_version(args.target_python)!r}, "
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
            cannot_run(f"bench: scratch dir {scratch} overlaps {path}; choose another PRECOMPYLE_BENCH_DIR")
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
    run_main(main)
