"""Run CPython's regression tests (or plain imports) while recording, from
inside the import system, which pycs were used and which sources were
compiled instead.

Run by the TARGET interpreter (3.12 / 3.13), never imported:

    python -X frozen_modules=off hook.py --report R.json -- REGRTEST-ARGS...
    python -X frozen_modules=off hook.py --report R.json --import a,b,c

Two functions of importlib._bootstrap_external are wrapped before anything
else is imported:
  * _compile_bytecode(data, name, bytecode_path, source_path): SourceLoader.get_code
    calls it only after the pyc at bytecode_path passed the magic, flags and
    mtime/size (or hash) checks, i.e. exactly when a pyc is USED.
  * SourceLoader.source_to_code(data, path): get_code calls it only when no
    acceptable pyc was found, i.e. when the source is RECOMPILED.
get_code looks _compile_bytecode up in the module's globals at call time, so
replacing the module attribute is enough. Modules imported before this file
runs (interpreter start-up) are listed from sys.modules; check.py proves them
with a separate `python -v` probe.

regrtest's TestResults.accumulate_result is wrapped too, to record each test
module's final state and the ids and tracebacks of its failing cases.
The report is written even when regrtest ends with SystemExit.
"""

import sys

import _frozen_importlib_external as bootstrap_external

pycs_used = []
sources_compiled = []
modules_at_start = {
    name: getattr(module, "__cached__", None)
    for name, module in list(sys.modules.items())
}
test_results = []


def install_import_probes():
    original_compile_bytecode = bootstrap_external._compile_bytecode
    original_source_to_code = bootstrap_external.SourceLoader.source_to_code

    def compile_bytecode(data, name=None, bytecode_path=None, source_path=None):
        # SourcelessFileLoader also lands here (no source_path): record it too,
        # check.py only counts pycs that have a source under the stdlib.
        pycs_used.append([name, bytecode_path, source_path])
        return original_compile_bytecode(data, name, bytecode_path, source_path)

    def source_to_code(self, data, path, *args, **kwargs):
        try:
            code = original_source_to_code(self, data, path, *args, **kwargs)
        except BaseException:
            # A source that does not compile (test/badsyntax_*.py imported on
            # purpose by a test) has no pyc in either prefix: not a rejection.
            sources_compiled.append([getattr(self, "name", None), str(path), False])
            raise
        sources_compiled.append([getattr(self, "name", None), str(path), True])
        return code

    bootstrap_external._compile_bytecode = compile_bytecode
    bootstrap_external.SourceLoader.source_to_code = source_to_code


def install_result_probe():
    from test.libregrtest import results

    original_accumulate = results.TestResults.accumulate_result

    def accumulate_result(self, result, runtests):
        stats = getattr(result, "stats", None)
        test_results.append(
            {
                "module": result.test_name,
                "state": result.state,
                "tests_run": getattr(stats, "tests_run", None),
                "skipped": getattr(stats, "skipped", None),
                "errors": [list(item) for item in (result.errors or [])],
                "failures": [list(item) for item in (result.failures or [])],
            }
        )
        return original_accumulate(self, result, runtests)

    results.TestResults.accumulate_result = accumulate_result


def write_report(path, exit_code):
    import json  # imported late so that modules_at_start is only start-up

    report = {
        "python": sys.version,
        "pycache_prefix": sys.pycache_prefix,
        "dont_write_bytecode": sys.dont_write_bytecode,
        "exit_code": exit_code,
        "modules_at_start": modules_at_start,
        "pycs_used": pycs_used,
        "sources_compiled": sources_compiled,
        "test_results": test_results,
    }
    with open(path, "w", encoding="utf-8") as stream:
        json.dump(report, stream)


def run_regrtest(regrtest_args):
    install_result_probe()
    from test.libregrtest.main import main

    sys.argv = ["-m test", *regrtest_args]
    main()
    return 0


def run_imports(module_names):
    import importlib

    for name in module_names:
        importlib.import_module(name)
    return 0


def exit_code_of(stop):
    if stop.code is None:
        return 0
    return stop.code if isinstance(stop.code, int) else 1


def main(argv):
    if len(argv) < 3 or argv[0] != "--report":
        sys.exit("usage: hook.py --report FILE (-- REGRTEST-ARGS... | --import A,B)")
    report_path, mode, rest = argv[1], argv[2], argv[3:]
    install_import_probes()
    exit_code = 1
    try:
        if mode == "--":
            exit_code = run_regrtest(rest)
        elif mode == "--import" and len(rest) == 1:
            exit_code = run_imports([name for name in rest[0].split(",") if name])
        else:
            sys.exit(f"hook.py: unknown mode {mode!r}")
    except SystemExit as stop:
        exit_code = exit_code_of(stop)
    finally:
        write_report(report_path, exit_code)
    sys.exit(exit_code)


if __name__ == "__main__":
    main(sys.argv[1:])
