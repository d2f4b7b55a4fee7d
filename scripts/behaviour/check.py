"""Behaviour check: does CPython behave the same on precompyle's pycs as on its own?

For each target version X.Y (a pyenv interpreter X.Y.*), driven by scripts/behaviour.sh:
  1. compile the interpreter's own stdlib twice, only reading it:
       P  = precompyle -q --backend native --target X.Y --prefix P STDLIB  (the subject)
       P0 = PYTHONPYCACHEPREFIX=P0 python -m compileall -q -j0 STDLIB     (the baseline)
  2. run the same regression-test modules twice, in one regrtest process each,
     with PYTHONPYCACHEPREFIX=P0 then =P, bytecode writing ENABLED;
  3. prove that the pycs in the prefix were used and none was rejected:
       * hook.py wraps importlib's _compile_bytecode (pyc accepted and used) and
         SourceLoader.source_to_code (source recompiled) inside the test process;
       * a `python -v` probe covers the modules imported at start-up, before hook.py;
       * every file under the prefix is hashed before and after the run: a pyc
         the import system rejected (bad magic/flags/mtime/size) in ANY process,
         test subprocesses included, is rewritten, and a missing one is created;
       * a control run first corrupts one pyc's mtime field and requires all
         three detectors to fire, so a silent detector cannot pass the check;
  4. require the same state for every test module, and the same failing test
     cases, in both runs.

The baseline is P0 rather than the interpreter's own __pycache__ because then
the two runs differ only in who wrote the pycs: same prefix mechanism, same
__cached__ shape that tests look at, same writable-bytecode setting; and the
interpreter's __pycache__ lacks pycs for some dirs (test data), which a run
with writing enabled would otherwise create inside the interpreter.

Nothing is written into the interpreter's tree: every interpreter process runs
in a private mount namespace with an overlay over the interpreter's root, so
whatever a test writes there lands in a scratch upper dir (reported), and the
real tree is audited before and after.
"""

import argparse
import ast
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time

from reports import count_states, failing_modules, outcomes, result_differences

HERE = os.path.dirname(os.path.abspath(__file__))
HOOK = os.path.join(HERE, "hook.py")
# A module whose pyc the control run corrupts: pure Python, in every version,
# not imported at start-up, imports little.
CONTROL_MODULE = "textwrap"
SEED = "20240101"


class CheckError(Exception):
    """The check could not run (as opposed to: it ran and found a difference)."""


def log(message):
    print(f"behaviour: {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- interpreters


def find_interpreter(version, pyenv_root):
    """The highest installed pyenv X.Y.* for version 'X.Y'."""
    candidates = []
    for path in glob.glob(os.path.join(pyenv_root, "versions", version + ".*")):
        patch = path.rsplit(".", 1)[1]
        if patch.isdigit() and os.path.exists(os.path.join(path, "bin", "python3")):
            candidates.append((int(patch), path))
    if not candidates:
        raise CheckError(f"no pyenv interpreter {version}.* under {pyenv_root}/versions")
    root = max(candidates)[1]
    return describe_interpreter(os.path.join(root, "bin", "python3"))


def describe_interpreter(python):
    probe = (
        "import json, os, sys, sysconfig; print(json.dumps({"
        "'executable': os.path.realpath(sys.executable),"
        "'root': os.path.realpath(sys.prefix),"
        "'stdlib': os.path.realpath(sysconfig.get_paths()['stdlib']),"
        "'version': '%d.%d.%d' % sys.version_info[:3],"
        "'tag': sys.implementation.cache_tag}))"
    )
    out = subprocess.run([python, "-c", probe], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


# ---------------------------------------------------------------- sandboxing


class Sandbox:
    """Runs commands so that writes into the interpreter's root go to a scratch
    overlay upper dir (falls back to a read-only bind mount, then to nothing:
    the tree audit still catches writes)."""

    def __init__(self, interp_root, scratch):
        self.root = interp_root
        self.scratch = scratch
        self.mode = self._probe()

    def _wrapper(self, mode, upper, work):
        mounts = {
            "overlay": 'mount -t overlay overlay -o "lowerdir=$1,upperdir=$2,workdir=$3" "$1"',
            "readonly": 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1"',
        }[mode]
        script = f'{mounts} || exit 97; shift 3; exec "$@"'
        return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sandbox",
                self.root, upper, work]

    def _dirs(self, name):
        upper = os.path.join(self.scratch, "overlay", name, "upper")
        work = os.path.join(self.scratch, "overlay", name, "work")
        for path in (upper, work):
            shutil.rmtree(path, ignore_errors=True)
            os.makedirs(path)
        return upper, work

    def _probe(self):
        if shutil.which("unshare") is None:
            return None
        for mode in ("overlay", "readonly"):
            upper, work = self._dirs("probe")
            if subprocess.run(self._wrapper(mode, upper, work) + ["true"]).returncode == 0:
                return mode
        return None

    def command(self, name, argv):
        """argv wrapped for the sandbox, and the upper dir that collects writes."""
        if self.mode is None:
            return argv, None
        upper, work = self._dirs(name)
        return self._wrapper(self.mode, upper, work) + argv, upper


def files_written_to_upper(upper):
    if upper is None:
        return []
    found = []
    for dirpath, _dirs, files in os.walk(upper):
        found.extend(os.path.relpath(os.path.join(dirpath, f), upper) for f in files)
    return sorted(found)


def tree_listing(root):
    """path -> (size, mtime_ns) for every file under root (the interpreter audit)."""
    listing = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            listing[path] = (st.st_size, st.st_mtime_ns)
    return listing


# ---------------------------------------------------------------- prefixes


def mirror_of(prefix, directory):
    """Where sys.pycache_prefix puts the pycs of sources in directory."""
    return os.path.join(prefix, directory.lstrip(os.sep))


def snapshot(prefix):
    """relpath -> (size, mtime_ns, sha256) of every file under prefix."""
    state = {}
    for dirpath, _dirs, files in os.walk(prefix):
        for name in files:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            with open(path, "rb") as stream:
                digest = hashlib.sha256(stream.read()).hexdigest()
            state[os.path.relpath(path, prefix)] = (st.st_size, st.st_mtime_ns, digest)
    return state


def snapshot_changes(before, after, stdlib_rel):
    changed = sorted(p for p in before if p in after and before[p] != after[p])
    deleted = sorted(p for p in before if p not in after)
    new = sorted(p for p in after if p not in before)
    new_stdlib = [p for p in new if p.startswith(stdlib_rel + os.sep)]
    new_other = [p for p in new if not p.startswith(stdlib_rel + os.sep)]
    return {"changed": changed, "deleted": deleted, "new_stdlib": new_stdlib,
            "new_other": new_other}


def stdlib_part(state, stdlib_rel):
    return {p: v for p, v in state.items() if p.startswith(stdlib_rel + os.sep)}


def compare_prefixes(subject, baseline):
    """Pyc sets and bytes of the subject prefix against the baseline's."""
    missing = sorted(p for p in baseline if p not in subject)
    extra = sorted(p for p in subject if p not in baseline)
    differing = sorted(p for p in subject if p in baseline and subject[p][2] != baseline[p][2])
    return {"missing": missing, "extra": extra, "differing": differing}


# ---------------------------------------------------------------- compiling


def test_environment(prefix, tmp):
    env = dict(os.environ)
    # Writing ENABLED on purpose: a rejected pyc is then rewritten and a
    # missing one created, which the prefix snapshot sees in every process.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = prefix
    env["TMPDIR"] = tmp
    return env


def compile_environment(prefix=None):
    env = dict(os.environ)
    # The compilers' own imports must not write pycs: P0 holds compileall's
    # output only (an imported module's pyc can differ in marshal refs).
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("PYTHONPYCACHEPREFIX", None)
    if prefix is not None:
        env["PYTHONPYCACHEPREFIX"] = prefix
    return env


def run_compiler(sandbox, name, argv, env, log_path):
    argv, upper = sandbox.command(name, argv)
    with open(log_path, "w") as out:
        code = subprocess.run(argv, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    # 1 = some sources failed to compile (test/badsyntax_*.py and friends are
    # meant to); anything else means the compiler itself failed.
    if code not in (0, 1):
        raise CheckError(f"{name} exited {code}; see {log_path}")
    return code, files_written_to_upper(upper)


def compile_prefixes(ctx):
    interp, args = ctx["interp"], ctx["args"]
    for prefix in (ctx["P"], ctx["P0"]):
        shutil.rmtree(prefix, ignore_errors=True)
    if args.backend == "native":
        backend = ["--backend", "native", "--target", ctx["version"]]
    else:
        backend = ["--python", interp["executable"]]
    subject = [args.precompyle, "-q", *backend, "--prefix", ctx["P"], interp["stdlib"]]
    baseline = [interp["executable"], "-m", "compileall", "-q", "-j0", interp["stdlib"]]
    log(f"{ctx['version']}: {' '.join(subject)}")
    ctx["subject_compile"] = run_compiler(ctx["sandbox"], "compile-subject", subject,
                                          compile_environment(),
                                          os.path.join(ctx["dir"], "compile-subject.log"))
    log(f"{ctx['version']}: PYTHONPYCACHEPREFIX=P0 {' '.join(baseline)}")
    ctx["baseline_compile"] = run_compiler(ctx["sandbox"], "compile-baseline", baseline,
                                           compile_environment(ctx["P0"]),
                                           os.path.join(ctx["dir"], "compile-baseline.log"))


# ---------------------------------------------------------------- running


def run_hook(ctx, prefix, name, hook_args):
    """Run hook.py in the sandbox with pycs from prefix; its report and writes."""
    tmp = ctx["tmp"]
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    report_path = os.path.join(ctx["dir"], f"{name}.json")
    if os.path.exists(report_path):
        os.remove(report_path)
    argv = [ctx["interp"]["executable"], "-X", "frozen_modules=off", HOOK,
            "--report", report_path, *hook_args]
    argv, upper = ctx["sandbox"].command(name, argv)
    log_path = os.path.join(ctx["dir"], f"{name}.log")
    with open(log_path, "w") as out:
        subprocess.run(argv, cwd=tmp, env=test_environment(prefix, tmp), stdout=out,
                       stderr=subprocess.STDOUT, timeout=ctx["args"].timeout)
    if not os.path.exists(report_path):
        raise CheckError(f"{name}: no report written (process killed?); see {log_path}")
    with open(report_path, encoding="utf-8") as stream:
        report = json.load(stream)
    report["log"] = log_path
    report["interpreter_writes"] = files_written_to_upper(upper)
    return report


def startup_probe(ctx, prefix):
    """Pycs and sources `python -v` reports for the modules imported at start-up
    (hook.py is not installed yet when those are imported)."""
    argv = [ctx["interp"]["executable"], "-X", "frozen_modules=off", "-v", "-c", "pass"]
    argv, _upper = ctx["sandbox"].command("probe", argv)
    out = subprocess.run(argv, env=test_environment(prefix, ctx["tmp"]),
                         capture_output=True, text=True, check=True)
    pycs, sources = [], []
    for line in out.stderr.splitlines():
        if not line.startswith("# code object from "):
            continue
        where = line[len("# code object from "):]
        # A pyc is printed with repr() quotes, a compiled source without.
        if where[:1] in "'\"":
            pycs.append(ast.literal_eval(where))
        else:
            sources.append(where)
    return {"pycs": pycs, "sources": sources}


def control_run(ctx, prefix, name):
    """Corrupt one used pyc's header and require every detector to see it:
    the hook counts a recompile and no use, and the import system rewrites it.
    The original bytes and mtime are put back afterwards."""
    interp = ctx["interp"]
    source = os.path.join(interp["stdlib"], CONTROL_MODULE + ".py")
    pyc = os.path.join(mirror_of(prefix, interp["stdlib"]),
                       f"{CONTROL_MODULE}.{interp['tag']}.pyc")
    with open(pyc, "rb") as stream:
        original = stream.read()
    st = os.stat(pyc)
    # Bytes 8..16 hold mtime+size (timestamp pyc) or the source hash
    # (checked-hash pyc): flipping one makes either kind stale.
    corrupted = original[:8] + bytes([original[8] ^ 0xFF]) + original[9:]
    try:
        with open(pyc, "wb") as stream:
            stream.write(corrupted)
        report = run_hook(ctx, prefix, name, ["--import", CONTROL_MODULE])
        with open(pyc, "rb") as stream:
            rewritten = stream.read() != corrupted
    finally:
        with open(pyc, "wb") as stream:
            stream.write(original)
        os.utime(pyc, ns=(st.st_atime_ns, st.st_mtime_ns))
    recompiled = any(path == source and ok for _n, path, ok in report["sources_compiled"])
    used = any(bc == pyc for _n, bc, _s in report["pycs_used"])
    return {"recompiled": recompiled, "used": used, "rewritten": rewritten,
            "detected": recompiled and rewritten and not used}


def under(path, directory):
    return bool(path) and path.startswith(directory + os.sep)


def prove_use(ctx, prefix, report, probe, changes):
    """The numbers of the proof for one run, and the list of its violations."""
    stdlib = ctx["interp"]["stdlib"]
    mirror = mirror_of(prefix, stdlib)
    used = {bc for _n, bc, src in report["pycs_used"] if under(src, stdlib)}
    used_elsewhere = sorted(p for p in used if not under(p, mirror))
    recompiled = sorted({p for _n, p, ok in report["sources_compiled"] if ok and under(p, stdlib)})
    failed_compiles = sorted({p for _n, p, ok in report["sources_compiled"]
                              if not ok and under(p, stdlib)})
    startup_pycs = {p for p in probe["pycs"] if under(p, mirror)}
    startup_cached = {c for c in report["modules_at_start"].values() if under(c, mirror)}
    startup_unproven = sorted(startup_cached - startup_pycs)
    startup_recompiled = sorted(p for p in probe["sources"] if under(p, stdlib))
    rewritten = changes["changed"] + changes["deleted"]
    numbers = {
        "used": len(used - set(used_elsewhere)),
        "startup": len(startup_pycs),
        "rewritten": len(rewritten),
        "new": len(changes["new_stdlib"]),
        "recompiled": len(recompiled) + len(startup_recompiled),
        "failed_compiles": failed_compiles,
        "new_other": len(changes["new_other"]),
        "interpreter_writes": report["interpreter_writes"],
    }
    violations = []
    for label, items in (
        ("stdlib pycs used from outside the prefix", used_elsewhere),
        ("stdlib sources recompiled in the test process", recompiled),
        ("stdlib sources recompiled at start-up (python -v)", startup_recompiled),
        ("start-up modules whose pyc python -v did not load", startup_unproven),
        ("prefix files rewritten or deleted during the run", rewritten),
        ("new pycs for stdlib sources during the run", changes["new_stdlib"]),
    ):
        if items:
            violations.append(f"{label} ({len(items)}): " + ", ".join(items[:8]))
    if numbers["used"] == 0:
        violations.append("no pyc under the prefix was used at all")
    return numbers, violations


# ---------------------------------------------------------------- one version


def select_tests(stdlib, wanted):
    test_dir = os.path.join(stdlib, "test")
    present, absent = [], []
    for name in wanted:
        module_path = os.path.join(test_dir, *name.split("."))
        if os.path.exists(module_path + ".py") or os.path.isdir(module_path):
            present.append(name)
        else:
            absent.append(name)
    return present, absent


def run_one_side(ctx, side, prefix):
    control = control_run(ctx, prefix, f"control-{side}")
    probe = startup_probe(ctx, prefix)
    before = snapshot(prefix)
    log(f"{ctx['version']}: {len(ctx['tests'])} test modules on {side} pycs")
    started = time.monotonic()
    regrtest = ["--", "--tempdir", ctx["tmp"], "--randseed", SEED, *ctx["tests"]]
    report = run_hook(ctx, prefix, f"tests-{side}", regrtest)
    elapsed = time.monotonic() - started
    stdlib_rel = ctx["interp"]["stdlib"].lstrip(os.sep)
    changes = snapshot_changes(before, snapshot(prefix), stdlib_rel)
    numbers, violations = prove_use(ctx, prefix, report, probe, changes)
    if not control["detected"]:
        violations.append(f"control run not detected: {control}")
    if not report["test_results"]:
        violations.append(f"regrtest recorded no test result; see {report['log']}")
    return {"report": report, "numbers": numbers, "violations": violations,
            "control": control, "elapsed": elapsed, "table": outcomes(report)}


def check_version(version, args):
    started = time.monotonic()
    interp = find_interpreter(version, args.pyenv_root)
    directory = os.path.join(args.scratch, version)
    os.makedirs(directory, exist_ok=True)
    ctx = {"version": version, "interp": interp, "args": args, "dir": directory,
           "P": os.path.join(directory, "P"), "P0": os.path.join(directory, "P0"),
           "tmp": os.path.join(directory, "tmp")}
    ctx["tests"], absent = select_tests(interp["stdlib"], args.tests)
    if absent:
        log(f"{version}: not in {interp['version']}, skipped: {' '.join(absent)}")
    audit_before = tree_listing(interp["root"])
    ctx["sandbox"] = Sandbox(interp["root"], directory)
    log(f"{version}: interpreter {interp['executable']} ({interp['version']}), "
        f"sandbox: {ctx['sandbox'].mode or 'none (tree audit only)'}")
    compile_prefixes(ctx)
    stdlib_rel = interp["stdlib"].lstrip(os.sep)
    prefixes = compare_prefixes(stdlib_part(snapshot(ctx["P"]), stdlib_rel),
                                stdlib_part(snapshot(ctx["P0"]), stdlib_rel))
    sides = {"baseline": run_one_side(ctx, "baseline", ctx["P0"]),
             "precompyle": run_one_side(ctx, "precompyle", ctx["P"])}
    audit_after = tree_listing(interp["root"])
    problems = []
    if prefixes["missing"]:
        problems.append(f"pycs compileall wrote but precompyle did not ({len(prefixes['missing'])}): "
                        + ", ".join(prefixes["missing"][:8]))
    for side, result in sides.items():
        problems.extend(f"{side}: {v}" for v in result["violations"])
    differences, explained = result_differences(sides["baseline"]["report"], sides["precompyle"]["report"],
                                                interp["version"])
    for line in explained:
        log(f"{version}: expected, upstream changed the test with the compiler: {line}")
    if differences:
        problems.append("test results differ:")
        problems.extend("  " + line for line in differences)
    touched = sorted(p for p in set(audit_before) | set(audit_after)
                     if audit_before.get(p) != audit_after.get(p))
    if touched:
        problems.append(f"the interpreter's own tree changed ({len(touched)}): "
                        + ", ".join(touched[:8]))
    return {"version": version, "interp": interp, "tests": ctx["tests"], "absent": absent,
            "explained": explained,
            "prefixes": prefixes, "sides": sides, "problems": problems,
            "elapsed": time.monotonic() - started,
            "compile_codes": (ctx["subject_compile"][0], ctx["baseline_compile"][0])}


# ---------------------------------------------------------------- reporting


COLUMNS = ("version", "pycs from", "modules", "cases run", "passed", "failed", "other",
           "pycs used", "start-up", "rewritten/new", "recompiled", "pycs != P0")


def table_rows(outcome, backend):
    rows = []
    differing = len(outcome["prefixes"]["differing"])
    for side, label in (("baseline", "compileall"), ("precompyle", f"precompyle:{backend}")):
        result = outcome["sides"][side]
        numbers = result["numbers"]
        passed, failed, other = count_states(result["table"])
        cases = sum(r["tests_run"] or 0 for r in result["report"]["test_results"])
        rows.append((outcome["interp"]["version"], label, str(len(result["table"])), str(cases),
                     str(passed), str(failed), str(other), str(numbers["used"]),
                     str(numbers["startup"]), f"{numbers['rewritten']}/{numbers['new']}",
                     str(numbers["recompiled"]),
                     "-" if side == "baseline" else str(differing)))
    return rows


def print_table(rows):
    widths = [max(len(row[i]) for row in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    for row in [COLUMNS, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def print_details(outcome):
    version = outcome["interp"]["version"]
    subject, base = outcome["sides"]["precompyle"], outcome["sides"]["baseline"]
    print(f"\n{version}: {len(outcome['tests'])} test modules, check took "
          f"{outcome['elapsed']:.0f} s (tests: baseline {base['elapsed']:.0f} s, "
          f"precompyle {subject['elapsed']:.0f} s)")
    print(f"  compile exit codes: precompyle {outcome['compile_codes'][0]}, "
          f"compileall {outcome['compile_codes'][1]}; pycs only precompyle wrote: "
          f"{len(outcome['prefixes']['extra'])}")
    for side, result in (("baseline", base), ("precompyle", subject)):
        numbers = result["numbers"]
        failing = failing_modules(result["report"])
        print(f"  {side}: failing modules: {' '.join(failing) or 'none'}")
        print(f"    control (corrupted {CONTROL_MODULE} pyc): recompiled={result['control']['recompiled']} "
              f"rewritten={result['control']['rewritten']} used={result['control']['used']}")
        print(f"    sources that failed to compile (imported on purpose): "
              f"{len(numbers['failed_compiles'])}; new pycs outside the stdlib: "
              f"{numbers['new_other']}; writes into the interpreter root (overlay): "
              f"{len(numbers['interpreter_writes'])}; log: {result['report']['log']}")
    for line in outcome["problems"]:
        print(f"  PROBLEM: {line}")
    for line in outcome["explained"]:
        print(f"  expected (test changed upstream with the compiler): {line}")
    print(f"  verdict {version}: {'OK' if not outcome['problems'] else 'FAIL'}")


# ---------------------------------------------------------------- main


DEFAULT_TESTS = (
    # syntax, compiler and bytecode-sensitive
    "test_grammar test_syntax test_compile test_dis test_peepholer test_code "
    "test_sys_settrace test_frame test_opcodes test_ast test_tokenize "
    "test_string_literals test_fstring test_patma test_type_params test_type_aliases "
    "test_named_expressions test_positional_only_arg test_keywordonlyarg "
    "test_unpack test_unpack_ex test_augassign test_scope test_decorators "
    "test_listcomps test_setcomps test_dictcomps test_genexps test_with "
    # exceptions, generators, coroutines
    "test_exceptions test_exception_group test_except_star test_raise test_traceback "
    "test_generators test_coroutines test_asyncgen test_contextlib test_contextlib_async "
    # object model
    "test_class test_descr test_super test_abc test_dataclasses test_enum test_typing "
    "test_inspect test_copy test_operator test_weakref test_builtin "
    # data types and the pure-Python stdlib
    "test_unicode test_str test_bytes test_format test_int test_float test_math "
    "test_fractions test_decimal test_statistics test_datetime test_json test_re "
    "test_collections test_functools test_itertools test_pickle test_pprint "
    "test_textwrap test_difflib test_argparse test_email test_unittest test_doctest"
).split()


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="behaviour.sh", description=__doc__.split("\n")[0])
    parser.add_argument("--precompyle", required=True)
    parser.add_argument("--backend", choices=("native", "cpython"), required=True)
    parser.add_argument("--versions", default="3.12,3.13")
    parser.add_argument("--tests", default=None,
                        help="space-separated regrtest module names (default: a built-in list)")
    parser.add_argument("--scratch", required=True)
    parser.add_argument("--pyenv-root", default=os.environ.get("PYENV_ROOT",
                                                               os.path.expanduser("~/.pyenv")))
    parser.add_argument("--timeout", type=int, default=1800,
                        help="seconds one regrtest run may take")
    args = parser.parse_args(argv)
    args.versions = [v for v in re.split(r"[,\s]+", args.versions) if v]
    args.tests = args.tests.split() if args.tests else list(DEFAULT_TESTS)
    args.scratch = os.path.abspath(args.scratch)
    args.precompyle = os.path.abspath(args.precompyle)
    return args


def main(argv):
    args = parse_args(argv)
    started = time.monotonic()
    outcomes_ = []
    try:
        for version in args.versions:
            outcomes_.append(check_version(version, args))
    except (CheckError, subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as error:
        log(f"could not run: {error}")
        return 2
    rows = [row for outcome in outcomes_ for row in table_rows(outcome, args.backend)]
    print()
    print_table(rows)
    for outcome in outcomes_:
        print_details(outcome)
    failed = [o["interp"]["version"] for o in outcomes_ if o["problems"]]
    print(f"\nbehaviour check: {'FAIL (' + ', '.join(failed) + ')' if failed else 'OK'} "
          f"in {time.monotonic() - started:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
