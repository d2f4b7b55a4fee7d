#!/usr/bin/env bash
# Differential check (issue 3): compile one tree with precompyle's native backend and
# with real CPython, then compare the pycs per version: files compiled by each, code
# objects equal after marshal.loads (==), equal field by field, and bytes identical.
#
# Usage: scripts/diffcheck.sh [--versions 3.12,3.13,3.14] [--tree DIR] [--out DIR]
#                             [--side-a native|compileall] [--side-b cpython|compileall]
#                             [--precompyle PATH]
#   --versions  any of 3.12, 3.13, 3.14, and xcheck-3.12 (CPython 3.12.1 under Pyodide
#               0.26.4 against the native pyenv 3.12.1: shows what Pyodide itself changes)
#   --tree      tree to compile (default: a fresh copy of python3's stdlib + site-packages
#               in the scratch dir, without its __pycache__ dirs); it is never written to:
#               every run writes its pycs under --out with --prefix / pycache_prefix
#   --out       results dir (default: $SCRATCH/out); per version V: V/{a,b}/ pyc roots,
#               V/*.log, V/diff.json; plus summary.txt and diffcheck.json
#   --side-a    what side A is: precompyle --backend native --target V (default), or
#               CPython's own compileall (a sanity run that should show no differences)
#   --side-b    the reference for 3.12 and 3.13: precompyle's CPython backend with pyenv's
#               3.12.1 / 3.13.0 (cpython, default), or their own sequential compileall.
#               3.14 is CPython 3.14.2 under Node (npm `pyodide`, pinned in
#               scripts/diff/package-lock.json) running its own compileall, sequentially,
#               unless PRECOMPYLE_DIFF_PY314 names a real 3.14, which is then used like
#               3.12's and 3.13's.
# Environment:
#   PRECOMPYLE_DIFF_DIR     scratch dir (default /tmp/precompyle-diff; the corpus copy
#                           needs ~700 MB, the pycs ~250 MB per version)
#   PRECOMPYLE_DIFF_CACHE   where npm installs pyodide (default ~/.cache/precompyle-diff)
#   PRECOMPYLE_DIFF_PY312, PRECOMPYLE_DIFF_PY313   interpreters (default pyenv 3.12.1, 3.13.0)
#   PRECOMPYLE_DIFF_PY314   a real CPython 3.14 instead of Pyodide's, e.g. Debian's:
#                           PRECOMPYLE_DIFF_PY314=$(scripts/debian-python.sh 3.14)
#   PRECOMPYLE_BIN          precompyle binary (default target/release/precompyle)
# Needs: bash, python3, the pyenv interpreters, node + npm (for 3.14), a built precompyle.
# Exit status: 0 when the check ran (the counts are the result), 2 when it could not.
set -euo pipefail

usage() { sed -n '2,33s/^# \{0,1\}//p' "$0"; }
die() { echo "diffcheck.sh: $*" >&2; exit 2; }

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
diffdir="$repo/scripts/diff"
scratch=${PRECOMPYLE_DIFF_DIR:-/tmp/precompyle-diff}
cache=${PRECOMPYLE_DIFF_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/precompyle-diff}
py312=${PRECOMPYLE_DIFF_PY312:-$HOME/.pyenv/versions/3.12.1/bin/python3}
py313=${PRECOMPYLE_DIFF_PY313:-$HOME/.pyenv/versions/3.13.0/bin/python3}
py314=${PRECOMPYLE_DIFF_PY314:-}
precompyle=${PRECOMPYLE_BIN:-$repo/target/release/precompyle}
versions=3.12,3.13,3.14
tree=
out=
side_a=native
side_b=cpython

while (($#)); do
    case "$1" in
        --versions) versions=${2:?}; shift 2 ;;
        --tree) tree=${2:?}; shift 2 ;;
        --out) out=${2:?}; shift 2 ;;
        --side-a) side_a=${2:?}; shift 2 ;;
        --side-b) side_b=${2:?}; shift 2 ;;
        --precompyle) precompyle=${2:?}; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
[[ $side_a = native || $side_a = compileall ]] || die "--side-a must be native or compileall"
[[ $side_b = cpython || $side_b = compileall ]] || die "--side-b must be cpython or compileall"
# The pycs must never land in the tree: SOURCE_DATE_EPOCH would switch both sides to
# hash-based pycs, which is fine, but it must be the same for all, so clear it.
unset SOURCE_DATE_EPOCH PYTHONPYCACHEPREFIX PYTHONOPTIMIZE PYTHONHASHSEED

# --- the tree --------------------------------------------------------------------------
if [[ -z $tree ]]; then
    corpus=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
    tree="$scratch/corpus"
    echo "diffcheck.sh: copying $corpus to $tree" >&2
    rm -rf "$tree"
    mkdir -p "$scratch"
    cp -a "$corpus" "$tree"
    find "$tree" -name __pycache__ -type d -prune -exec rm -rf {} +
fi
[[ -d $tree ]] || die "no such tree: $tree"
tree=$(cd "$tree" && pwd)
out=${out:-$scratch/out}
mkdir -p "$out"
out=$(cd "$out" && pwd)
case "$out/" in "$tree"/*) die "--out must not be inside the tree" ;; esac

# --- tools -----------------------------------------------------------------------------
need_pyodide() {
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        die "node and npm are needed for $1"
    fi
    local lock="$diffdir/package-lock.json"
    if ! cmp -s "$lock" "$cache/package-lock.json" || [[ ! -d $cache/node_modules/pyodide ]]; then
        echo "diffcheck.sh: npm ci in $cache" >&2
        mkdir -p "$cache"
        cp "$diffdir/package.json" "$lock" "$cache/"
        (cd "$cache" && npm ci --no-audit --no-fund --loglevel=error) >&2 || die "npm ci failed"
    fi
}
# pyodide PACKAGE SCRIPT-OR--m ARGS...: run Python under that Pyodide, tree and out mounted.
pyodide() {
    local pkg=$1
    shift
    node "$diffdir/pyodide-run.mjs" --pyodide "$cache/node_modules/$pkg" \
        --mount "$tree" --mount "$out" "$@"
}
if [[ $side_a = native || $versions = *3.1[23]* ]]; then
    [[ -x $precompyle ]] || die "no precompyle binary at $precompyle (cargo build --release, or --precompyle PATH)"
fi
if [[ $side_a = native ]] && ! "$precompyle" --help | grep -q -- --backend; then
    die "$precompyle has no --backend (no native backend yet); try --side-a compileall"
fi
backend_cpython=()
"$precompyle" --help 2>/dev/null | grep -q -- --backend && backend_cpython=(--backend cpython)

# --- one version -------------------------------------------------------------------------
# Run "$@" with its output in LOG; exit status 0 or 1 (some files failed) means it ran.
run_logged() {
    local log=$1
    shift
    echo "+ $*" >"$log"
    local rc=0
    "$@" >>"$log" 2>&1 || rc=$?
    ((rc <= 1)) || die "failed (exit $rc), see $log: $*"
}

interpreter_for() {
    case "$1" in
        3.12) echo "$py312" ;;
        3.13) echo "$py313" ;;
        3.14) [[ -n $py314 ]] && echo "$py314" ;;
        *) return 1 ;;
    esac
}

# side_b_pycs V DIR: CPython's pycs for version V under prefix DIR.
side_b_pycs() {
    local v=$1 dir=$2
    if [[ $v = 3.14 && -z $py314 ]]; then
        PYTHONPYCACHEPREFIX=$dir run_logged "$out/$v/b.log" \
            pyodide pyodide -m compileall -q -f "$tree"
    elif [[ $side_b = compileall ]]; then
        run_logged "$out/$v/b.log" "$(interpreter_for "$v")" \
            -X pycache_prefix="$dir" -m compileall -q -f "$tree"
    else
        run_logged "$out/$v/b.log" "$precompyle" -q "${backend_cpython[@]}" \
            --python "$(interpreter_for "$v")" --prefix "$dir" -f "$tree"
    fi
}

side_a_pycs() {
    local v=$1 dir=$2
    if [[ $side_a = native ]]; then
        run_logged "$out/$v/a.log" "$precompyle" -q --backend native --target "$v" \
            --prefix "$dir" -f "$tree"
    elif [[ $v = 3.14 && -z $py314 ]]; then
        PYTHONPYCACHEPREFIX=$dir run_logged "$out/$v/a.log" \
            pyodide pyodide -m compileall -q -f "$tree"
    else
        run_logged "$out/$v/a.log" "$(interpreter_for "$v")" \
            -X pycache_prefix="$dir" -m compileall -q -f "$tree"
    fi
}

check_version() {
    local v=$1 names="$side_a,$side_b"
    rm -rf "${out:?}/$v"
    mkdir -p "$out/$v"
    echo "diffcheck.sh: $v: compiling" >&2
    case "$v" in
        3.12 | 3.13 | 3.14)
            [[ $v != 3.14 || -n $py314 ]] || need_pyodide 3.14
            side_a_pycs "$v" "$out/$v/a"
            side_b_pycs "$v" "$out/$v/b"
            ;;
        xcheck-3.12)
            need_pyodide "$v"
            names=pyodide-3.12.1,native-3.12.1
            PYTHONPYCACHEPREFIX="$out/$v/a" run_logged "$out/$v/a.log" \
                pyodide pyodide-0.26 -m compileall -q -f "$tree"
            run_logged "$out/$v/b.log" "$py312" -X pycache_prefix="$out/$v/b" \
                -m compileall -q -f "$tree"
            ;;
        *) die "unknown version $v (3.12, 3.13, 3.14, xcheck-3.12)" ;;
    esac
    echo "diffcheck.sh: $v: comparing" >&2
    local compare=("$diffdir/compare.py" --names "$names" --json "$out/$v/diff.json"
        "$out/$v/a" "$out/$v/b")
    case "$v" in
        3.14) if [[ -n $py314 ]]; then "$py314" "${compare[@]}"; else pyodide pyodide "${compare[@]}"; fi ;;
        3.13) "$py313" "${compare[@]}" ;;
        *) "$py312" "${compare[@]}" ;;
    esac >"$out/$v/compare.txt" || die "compare.py failed for $v, see $out/$v/compare.txt"
}

IFS=, read -ra selected <<<"$versions"
for v in "${selected[@]}"; do check_version "$v"; done
python3 "$diffdir/summary.py" --tree "$tree" --json "$out/diffcheck.json" \
    "${selected[@]/#/$out/}" | tee "$out/summary.txt"
echo "diffcheck.sh: done in ${SECONDS}s; details in $out/diffcheck.json and $out/*/diff.json" >&2
