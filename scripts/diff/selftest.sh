#!/usr/bin/env bash
# Self-test of compare.py against real interpreters: it must find no difference where
# there is none, and find each kind of difference where CPython itself makes one.
#   1. 3.12.1 compileall run twice on the same tree: all bytes identical
#   2. 3.12.1 compileall -o 0 vs -o 1 (renamed to the same pyc names): assert statements
#      vanish, so code objects differ (co_code among the fields), and files without
#      asserts or docstrings stay equal
#   3. 3.13.0 py_compile in a fresh process vs in one that has imported argparse: equal
#      code objects, different bytes, reported as a marshal-only string-type difference
# Usage: scripts/diff/selftest.sh   (needs pyenv's 3.12.1 and 3.13.0; exit 0 = all passed)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
py312=${PRECOMPYLE_DIFF_PY312:-$HOME/.pyenv/versions/3.12.1/bin/python3}
py313=${PRECOMPYLE_DIFF_PY313:-$HOME/.pyenv/versions/3.13.0/bin/python3}
for py in "$py312" "$py313"; do
    [[ -x $py ]] || { echo "selftest.sh: missing interpreter $py" >&2; exit 2; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
unset SOURCE_DATE_EPOCH PYTHONPYCACHEPREFIX PYTHONOPTIMIZE

mkdir "$work/tree"
printf 'def f(a):\n    assert a, "m"\n    return a\n' >"$work/tree/with_assert.py"
printf 'def f(a):\n    return a + 1\n' >"$work/tree/plain.py"
cp "$here/repros/refside_class_qualname.py" "$work/tree/"

passed=0
failed=0
# expect NAME JSON PYTHON-EXPRESSION: the expression sees the report as r and must be true.
expect() {
    if python3 -c "import json, sys; r = json.load(open(sys.argv[1])); sys.exit(0 if ($3) else 1)" "$2"; then
        passed=$((passed + 1)); echo "ok: $1"
    else
        failed=$((failed + 1)); echo "FAILED: $1 (report: $2)"
    fi
}
compare() { "$1" "$here/compare.py" --json "$work/$2.json" "$work/$3" "$work/$4" >/dev/null; }

# 1. the same compiler twice
for run in x y; do "$py312" -X pycache_prefix="$work/$run" -m compileall -q "$work/tree" >/dev/null; done
compare "$py312" same x y
expect "same output: every pair byte-identical" "$work/same.json" \
    'r["counts"]["both"] == 3 and r["counts"]["bytes_identical"] == 3 and not r["differences"]'

# 2. -o 0 vs -o 1, with the opt-1 pycs renamed to the plain pyc names
"$py312" -X pycache_prefix="$work/o1" -m compileall -q -o 1 "$work/tree" >/dev/null
find "$work/o1" -name '*.opt-1.pyc' -exec sh -c 'mv "$1" "${1%.opt-1.pyc}.pyc"' _ {} \;
compare "$py312" opt x o1
expect "-o 1 drops the assert: co_code differs, == is false" "$work/opt.json" \
    'any(not d["eq"] and "co_code" in d["fields"] for k, d in r["differences"].items() if "with_assert" in k)'
expect "-o 1 leaves plain.py identical" "$work/opt.json" \
    'not any("plain" in k for k in r["differences"]) and r["counts"]["both"] == 3'

# 3. marshal encoding only, from process state (pyc-format.md 1.6)
src="$work/tree/refside_class_qualname.py"
mkdir "$work/fresh" "$work/argparse"
"$py313" -c 'import py_compile, sys; py_compile.compile(sys.argv[1], sys.argv[2])' "$src" "$work/fresh/q.pyc"
"$py313" -c 'import argparse, py_compile, sys; py_compile.compile(sys.argv[1], sys.argv[2])' "$src" "$work/argparse/q.pyc"
compare "$py313" refs fresh argparse
expect "marshal-only difference: equal fields, different bytes" "$work/refs.json" \
    'r["counts"]["field_equal"] == 1 and r["counts"]["eq"] == 1 and r["counts"]["bytes_identical"] == 0 and r["differences"]["q.pyc"]["signature"] == "marshal-only:string type (interned/short)"'

echo "$passed passed, $failed failed"
((failed == 0))
