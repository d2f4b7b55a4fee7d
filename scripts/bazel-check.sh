#!/usr/bin/env bash
# precompyle under a real Bazel: a workspace (tests/bazel/) whose rule
# declares one PyCompile action per source with rules_python's precompiler
# command line, built over ≥ 2,000 real files (python3's stdlib and pip) in
# each strategy:
#   multiplex    precompyle as a JSON multiplex worker
#   singleplex   precompyle as JSON singleplex workers
#   sandboxed    singleplex workers in per-request sandboxes (--worker_sandboxing)
#   one-shot     no worker: one precompyle process per action (--strategy=local)
#   python       the yardstick: a minimal Python JSON worker calling py_compile
# For each: wall time of a clean build and of an incremental one after one
# source was edited (which must run exactly one action), the actions run,
# and the pycs compared byte for byte with py_compile.compile(src, pyc,
# dfile=src_name, optimize=0, invalidation_mode=CHECKED_HASH) run by the same
# interpreter with PYTHONHASHSEED=0. Then a source with a syntax error must
# fail its action with CPython's message.
#
# Usage: scripts/bazel-check.sh
# Environment:
#   PRECOMPYLE_BAZEL_BIN  the precompyle binary (default: cargo build --release)
#   PRECOMPYLE_BAZEL_DIR  scratch dir (default /tmp/precompyle-bazel)
# Needs Bazel (Debian's bazel-bootstrap 4.2.3 is installed with apt-get when
# missing; without it the check is skipped, saying so). Exit 1 on a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=${PRECOMPYLE_BAZEL_DIR:-/tmp/precompyle-bazel}
python=$(python3 -c 'import sys; print(sys.executable)')
version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
failures=0
pass() { printf 'PASS  %-11s %s\n' "$1" "$2"; }
fail() { printf 'FAIL  %-11s %s\n' "$1" "$2"; failures=$((failures + 1)); }

if ! command -v bazel >/dev/null; then
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bazel-bootstrap; } >/dev/null 2>&1; then
        echo "SKIP: no bazel, and bazel-bootstrap cannot be installed here"
        exit 0
    fi
fi

binary=${PRECOMPYLE_BAZEL_BIN:-}
if [[ -z $binary ]]; then
    cargo build --release --ignore-rust-version --locked -q
    binary=$root/target/release/precompyle
fi

# --- the workspace and its tree ---------------------------------------------
ws=$work/ws
rm -rf "$ws" "$work/reference"
mkdir -p "$ws" "$work/reference"
cp -r tests/bazel/. "$ws"/
cp "$binary" "$ws/tools/precompyle"
stdlib=$("$python" -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')
mkdir -p "$ws/tree"
(cd "$stdlib" && find . -name '*.py' -not -path './site-packages/*' -not -path '*/__pycache__/*' -print0 |
    tar --null -T - -cf -) | tar -xf - -C "$ws/tree"
cp -r "$stdlib/site-packages/pip" "$ws/tree/pip"
find "$ws/tree" -name __pycache__ -prune -exec rm -rf {} +
# Bazel labels cannot hold every file name; py_compile refuses a few files on
# purpose (lib2to3's test data): both kinds are left out of the tree.
"$python" - "$ws/tree" <<'EOF'
import os, re, sys, warnings
warnings.simplefilter("ignore")
for dirpath, dirnames, filenames in os.walk(sys.argv[1]):
    for name in filenames:
        path = os.path.join(dirpath, name)
        if not name.endswith(".py"):
            os.remove(path)
            continue
        try:
            with open(path, "rb") as f:
                compile(f.read(), path, "exec", dont_inherit=True)
            ok = re.fullmatch(r"[A-Za-z0-9_.+-]+", name) is not None
        except (SyntaxError, ValueError, UnicodeDecodeError):
            ok = False
        if not ok:
            os.remove(path)
EOF
sed "s/PYTHON_VERSION/$version/" tests/bazel/BUILD.tree >"$ws/tree/BUILD"
files=$(find "$ws/tree" -name '*.py' | wc -l)
echo "tree: $files sources from $stdlib (and pip), Python $version ($python)"

# --- the reference: py_compile with rules_python's arguments ----------------
# One fresh interpreter per file, as a one-shot precompiler action runs: in
# one long-lived process the bytes of a few files depend on what it compiled
# before (test/test_string_literals.py here).
(cd "$ws" && find tree -name '*.py' -print0 | PYTHONHASHSEED=0 xargs -0 -P "$(nproc)" -I{} "$python" -c '
import py_compile, sys
src, out = sys.argv[1], sys.argv[2]
py_compile.compile(src, out + "/" + src[:-3] + ".pyc", dfile=src, doraise=True, optimize=0,
                   invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)' {} "$work/reference" 2>/dev/null)

common=(--experimental_worker_allow_json_protocol --action_env=PYTHONHASHSEED=0 --action_env=PRECOMPYLE_BACKEND=cpython
    "--action_env=PRECOMPYLE_PYTHON=$python" "--action_env=PATH=$(dirname "$python"):$PATH" --color=no --curses=no)
declare -A strategy_flags=(
    [multiplex]="--strategy=PyCompile=worker --experimental_worker_multiplex"
    [singleplex]="--strategy=PyCompile=worker --noexperimental_worker_multiplex"
    [sandboxed]="--strategy=PyCompile=worker --noexperimental_worker_multiplex --worker_sandboxing"
    [one-shot]="--strategy=PyCompile=local"
    [python]="--strategy=PyCompile=worker --noexperimental_worker_multiplex --define=precompiler=python"
)

# "INFO: 2001 processes: 1 internal, 2000 worker." -> the non-internal count.
actions_run() {
    { grep -o 'INFO: [0-9,]* processes: .*' "$1" || true; } | tail -1 |
        { grep -o '[0-9,]* \(worker\|local\|linux-sandbox\|processwrapper-sandbox\)' || true; } |
        tr -d , | awk '{s+=$1} END {print s+0}'
}

build() { # $1 strategy, $2 log; prints the seconds taken, fails as bazel did
    local started status=0
    started=$(date +%s%N)
    # shellcheck disable=SC2086
    (cd "$ws" && bazel build "${common[@]}" ${strategy_flags[$1]} //tree:pycs) >"$2" 2>&1 || status=$?
    awk -v ns=$(($(date +%s%N) - started)) 'BEGIN { printf "%.1f", ns / 1e9 }'
    return "$status"
}

declare -A clean_time incremental_time
edit=$ws/tree/json/decoder.py
for strategy in multiplex singleplex sandboxed one-shot python; do
    (cd "$ws" && bazel clean >/dev/null 2>&1)
    log=$work/$strategy
    if ! seconds=$(build "$strategy" "$log.clean.log"); then
        fail "$strategy" "clean build failed: $(tail -5 "$log.clean.log")"
        continue
    fi
    clean_time[$strategy]=$seconds
    ran=$(actions_run "$log.clean.log")
    differing=$(cd "$ws/bazel-bin" && find tree -name '*.pyc' | while read -r pyc; do
        cmp -s "$pyc" "$work/reference/$pyc" || echo "$pyc"
    done)
    mismatch=$(grep -c . <<<"$differing" || true)
    pycs=$(cd "$ws/bazel-bin" && find tree -name '*.pyc' | wc -l)
    if ((pycs == files && mismatch == 0 && ran == files)); then
        pass "$strategy" "clean: ${seconds}s, $ran actions, $pycs pycs identical to py_compile's"
    elif [[ $strategy == python ]] && ((pycs == files && ran == files)); then
        # The yardstick is one long-lived interpreter per worker, as rules_python's
        # own precompiler: a few files' bytes depend on what it compiled before.
        echo "NOTE  python      clean: ${seconds}s, $ran actions; $mismatch of $pycs pycs differ from a fresh py_compile's (one long-lived interpreter)"
    else
        fail "$strategy" "clean: $ran actions, $pycs pycs of $files, $mismatch differ from py_compile's"
    fi
    head -5 <<<"$differing" | sed '/^$/d; s/^/      differs: /'
    cp "$edit" "$work/decoder.orig"
    echo "# edited for an incremental build ($strategy)" >>"$edit"
    if seconds=$(build "$strategy" "$log.incremental.log"); then
        incremental_time[$strategy]=$seconds
        ran=$(actions_run "$log.incremental.log")
        "$python" -c 'import py_compile, sys; py_compile.compile(sys.argv[1], sys.argv[2], dfile=sys.argv[3], doraise=True, optimize=0, invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)' \
            "$edit" "$work/decoder.pyc" tree/json/decoder.py
        if ((ran == 1)) && cmp -s "$work/decoder.pyc" "$ws/bazel-bin/tree/json/decoder.pyc"; then
            pass "$strategy" "incremental: ${seconds}s, 1 action, its pyc identical to py_compile's"
        elif [[ $strategy == python ]] && ((ran == 1)); then
            echo "NOTE  python      incremental: ${seconds}s, 1 action; its pyc differs from a fresh py_compile's"
        else
            fail "$strategy" "incremental: $ran actions (want 1), or its pyc differs"
        fi
    else
        fail "$strategy" "incremental build failed: $(tail -5 "$log.incremental.log")"
    fi
    cp "$work/decoder.orig" "$edit"
done

# --- a syntax error fails its action with CPython's message -----------------
printf 'def f(:\n    pass\n' >"$ws/tree/broken.py"
if build multiplex "$work/broken.log" >/dev/null; then
    fail syntax "the build with tree/broken.py succeeded"
elif grep -q 'File "tree/broken.py", line 1' "$work/broken.log" && grep -q 'SyntaxError: invalid syntax' "$work/broken.log"; then
    pass syntax "tree/broken.py fails its action with CPython's SyntaxError"
else
    fail syntax "no SyntaxError for tree/broken.py: $(tail -10 "$work/broken.log")"
fi
rm -f "$ws/tree/broken.py"
(cd "$ws" && bazel shutdown >/dev/null 2>&1) || true

echo
printf '%-11s %9s %13s\n' strategy "clean s" "incremental s"
for strategy in multiplex singleplex sandboxed one-shot python; do
    printf '%-11s %9s %13s\n' "$strategy" "${clean_time[$strategy]:--}" "${incremental_time[$strategy]:--}"
done
echo "bazel-check: $failures failure(s)"
((failures == 0))
