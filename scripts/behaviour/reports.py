"""Reading regrtest's JSON reports for the behaviour check (check.py): each
test module's state and failing cases, and what differs between the baseline's
run and precompyle's, with the differences known upstream changes explain."""

import re

# Module states of test.libregrtest.result.State counted as failures.
FAILED_STATES = {"FAILED", "UNCAUGHT_EXC", "REFLEAK", "WORKER_FAILED", "WORKER_BUG", "TIMEOUT"}


def outcomes(report):
    """module -> (state, sorted failing case ids)."""
    table = {}
    for result in report["test_results"]:
        cases = sorted({case for case, _tb in result["errors"] + result["failures"]})
        table[result["module"]] = (result["state"], cases)
    return table


def tracebacks(report, module):
    for result in report["test_results"]:
        if result["module"] == module:
            return result["errors"] + result["failures"]
    return []


def count_states(table):
    passed = sum(1 for state, _c in table.values() if state == "PASSED")
    failed = sum(1 for state, _c in table.values() if state in FAILED_STATES)
    return passed, failed, len(table) - passed - failed


def traceback_excerpt(text, limit=12):
    """The test's own frame, the exception line and the assertion's diff lines
    (unittest prints ndiff lines starting '- ', '+ ', '? '); else the tail."""
    lines = [line for line in text.rstrip().splitlines() if line.strip()]
    frames = [i for i, line in enumerate(lines) if line.lstrip().startswith('File "')]
    excerpt = lines[frames[-1]:frames[-1] + 2] if frames else []
    errors = [line for line in lines if re.match(r"^[A-Za-z_.]*(Error|Exception)\b", line)]
    excerpt += [errors[0][:240]] if errors else []
    diff = [line for line in lines if line[:2] in ("- ", "+ ", "? ")]
    excerpt += diff[:limit]
    return excerpt if diff or errors else lines[-limit:]


# Test cases that assert the exact bytecode or line events of CPython's own
# compiler and were changed upstream together with that compiler, between the
# pyenv interpreter's release and the release serc pins (3.12.14, 3.13.15).
# They fail on native pycs because the interpreter runs its OLD test against
# NEWER code; the newer test passes (checked with Debian's CPython 3.13.15 and
# the Cloud SDK's 3.12.10). (minor version, module, test method) -> change.
KNOWN_PATCH_RELEASE_CHANGES = {
    ("3.12", "test_compile", "test_line_number_genexp"):
        "gh-123142 (3.12.6): FOR_ITER/END_FOR of a genexpr located at the iterable",
    ("3.12", "test_sys_settrace", "test_no_line_event_after_creating_generator"):
        "gh-93691 (3.12.5): for-loop instructions located at the iterable",
    ("3.13", "test_dis", "test_disassemble_recursive"):
        "gh-125038 (3.13.1): GET_ITER in generator expression bodies",
}


def known_change(version, module, case):
    """The upstream change that explains `case` failing on native pycs, or None."""
    for (minor, known_module, method), change in KNOWN_PATCH_RELEASE_CHANGES.items():
        if version.startswith(minor + ".") and module == known_module and method in case:
            return change
    return None


def result_differences(baseline, subject, version=""):
    """Lines describing every difference in test outcomes, and lines for the
    differences KNOWN_PATCH_RELEASE_CHANGES explains (not counted)."""
    base, subj = outcomes(baseline), outcomes(subject)
    lines, explained = [], []
    for module in sorted(set(base) | set(subj)):
        if base.get(module) == subj.get(module):
            continue
        b_state, b_cases = base.get(module, ("MISSING", []))
        s_state, s_cases = subj.get(module, ("MISSING", []))
        only_subject = sorted(set(s_cases) - set(b_cases))
        changes = [known_change(version, module, case) for case in only_subject]
        if (only_subject and all(changes) and not set(b_cases) - set(s_cases)
                and b_state not in FAILED_STATES | {"MISSING"}):
            explained.extend(f"{module}: {case}: {change}" for case, change in zip(only_subject, changes))
            continue
        lines.append(f"{module}: baseline {b_state}, precompyle {s_state}")
        for case in sorted(set(s_cases) - set(b_cases)):
            lines.append(f"  fails only on precompyle's pycs: {case}")
        for case in sorted(set(b_cases) - set(s_cases)):
            lines.append(f"  fails only on the baseline's pycs: {case}")
        # One excerpt per distinct traceback: the same test method inherited
        # by several TestCase classes fails the same way in each.
        shown = set()
        for case, text in tracebacks(subject, module):
            excerpt = traceback_excerpt(text)
            if case in b_cases or tuple(excerpt) in shown:
                continue
            shown.add(tuple(excerpt))
            lines.extend("    | " + line for line in excerpt)
    return lines, explained


def failing_modules(report):
    return sorted(m for m, (state, _c) in outcomes(report).items() if state in FAILED_STATES)
