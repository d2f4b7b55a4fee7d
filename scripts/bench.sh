#!/usr/bin/env bash
# Benchmark precompyle against `python -m compileall` and serc's own CLI on the
# interpreter's own stdlib + site-packages, copied to a scratch dir (no
# interpreter's tree is ever written to). Prints a table of seconds, ratios and
# PASS/FAIL targets: the classic rows (CPython backend vs python3's compileall)
# and the native rows (--backend native --target T vs pythonT's compileall,
# serc's CLI and the CPython backend driving pythonT), all in the same run.
#
# Usage: scripts/bench.sh [--quick] [--keep] [--native-only]
#   --quick        1 run on a small subset (stdlib email/ json/ asyncio/): a smoke test
#   --keep         keep the copied trees in the scratch dir afterwards
#   --native-only  only the native rows (skip python3's compileall and classic precompyle)
# Environment:
#   PRECOMPYLE_BENCH_RUNS    repetitions (default 3; --quick forces 1)
#   PRECOMPYLE_BENCH_DIR     scratch dir (default /tmp/precompyle-bench); needs ~2 GB free
#   PRECOMPYLE_BENCH_PYTHON  interpreter to compare with and whose lib is the corpus
#                            (default: python3 on PATH)
#   PRECOMPYLE_BENCH_TARGET  target of the native rows, 3.12..3.15 (default 3.12)
#   PRECOMPYLE_BENCH_TARGET_PYTHON  interpreter of that version (default: pythonT on
#                            PATH, else the newest pyenv T.x under $PYENV_ROOT or ~/.pyenv)
#   PRECOMPYLE_BENCH_SERC    serc's CLI, `pip install serc` (default: serc on PATH;
#                            without it the serc rows are skipped and their target fails)
#   PRECOMPYLE_BENCH_BIN     a precompyle binary to benchmark as is (default: build
#                            target/release/precompyle with cargo build --release)
#   PRECOMPYLE_BENCH_CARGO_FLAGS  flags for that build (default --ignore-rust-version, as the README)
#                            on a toolchain older than serc's rust-version
# The tools run without PYTHONPYCACHEPREFIX, SOURCE_DATE_EPOCH and PRECOMPYLE_{BACKEND,
# PYTHON,TARGET}, which would change where pycs go, their invalidation mode or the backend.
# Needs: cargo, the interpreters, cp/find/rm. Nothing else (no hyperfine, no
# GNU time: peak RSS is read via ptrace, see scripts/bench.py).
# Exit status: 0 all targets pass (always 0 with --quick), 1 a target failed,
# 2 or other: the benchmark itself could not run.
set -euo pipefail

usage() { sed -n '2,35s/^# \{0,1\}//p' "$0"; }

quick=()
keep=()
native_only=()
for arg in "$@"; do
    case "$arg" in
        --quick) quick=(--quick) ;;
        --keep) keep=(--keep) ;;
        --native-only) native_only=(--native-only) ;;
        -h | --help) usage; exit 0 ;;
        *) echo "bench.sh: unknown argument: $arg" >&2; usage >&2; exit 2 ;;
    esac
done

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=${PRECOMPYLE_BENCH_RUNS:-3}
scratch=${PRECOMPYLE_BENCH_DIR:-/tmp/precompyle-bench}
if ((${#quick[@]})); then runs=1; fi
if ! [[ $runs =~ ^[1-9][0-9]*$ ]]; then
    echo "bench.sh: PRECOMPYLE_BENCH_RUNS must be a positive integer, got '$runs'" >&2
    exit 2
fi

# Resolve to the real executable: a pyenv shim is a bash script costing ~0.3 s
# per start, which would swamp the fresh-run timings (and compileall's own
# workers start sys.executable, not the shim).
python=$("${PRECOMPYLE_BENCH_PYTHON:-python3}" -c 'import sys; print(sys.executable)')
# For pyenv/python.org layouts the stdlib dir also holds site-packages.
corpus=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')

# The real executable of an interpreter, or nothing when it does not run.
real_python() { "$1" -c 'import sys; print(sys.executable)' 2>/dev/null || true; }

target=${PRECOMPYLE_BENCH_TARGET:-3.12}
if [[ -n ${PRECOMPYLE_BENCH_TARGET_PYTHON:-} ]]; then
    target_python=$(real_python "$PRECOMPYLE_BENCH_TARGET_PYTHON")
else
    target_python=$(real_python "python$target")
    if [[ -z $target_python ]]; then
        # pyenv shims fail unless the version is selected; the install itself works.
        installs=("${PYENV_ROOT:-$HOME/.pyenv}/versions/$target".*)
        newest=$(printf '%s\n' "${installs[@]}" | sort -V | tail -n 1)
        [[ ! -x $newest/bin/python3 ]] || target_python=$(real_python "$newest/bin/python3")
    fi
fi
if [[ -z $target_python ]]; then
    echo "bench.sh: no working Python $target interpreter; set PRECOMPYLE_BENCH_TARGET_PYTHON" >&2
    exit 2
fi

serc=()
if [[ -n ${PRECOMPYLE_BENCH_SERC:-} ]]; then
    if ! [[ -x $PRECOMPYLE_BENCH_SERC ]]; then
        echo "bench.sh: PRECOMPYLE_BENCH_SERC=$PRECOMPYLE_BENCH_SERC is not an executable" >&2
        exit 2
    fi
    serc=(--serc "$PRECOMPYLE_BENCH_SERC")
elif command -v serc >/dev/null; then
    serc=(--serc "$(command -v serc)")
else
    echo "bench.sh: serc CLI not found (pip install serc, or set PRECOMPYLE_BENCH_SERC): serc rows skipped" >&2
fi
# The serc crate version precompyle is built with, for the report (`serc = "=0.1.10"`).
serc_crate=$(sed -n 's/^serc = "=\{0,1\}\([^"]*\)".*/\1/p' "$repo/Cargo.toml")

if [[ -n ${PRECOMPYLE_BENCH_BIN:-} ]]; then
    precompyle=$(realpath -- "$PRECOMPYLE_BENCH_BIN")
else
    read -r -a cargo_flags <<<"${PRECOMPYLE_BENCH_CARGO_FLAGS---ignore-rust-version}"
    echo "bench.sh: cargo build --release ${cargo_flags[*]} in $repo" >&2
    if ! (cd "$repo" && cargo build --release --quiet "${cargo_flags[@]}"); then
        echo "bench.sh: build failed (older toolchain? PRECOMPYLE_BENCH_CARGO_FLAGS=--ignore-rust-version)" >&2
        exit 2
    fi
    target_dir=${CARGO_TARGET_DIR:-target}
    [[ $target_dir = /* ]] || target_dir="$repo/$target_dir"
    precompyle="$target_dir/release/precompyle"
fi

# bench.py creates the scratch dir only after checking it is outside the interpreter.
exec "$python" "$repo/scripts/bench.py" \
    --precompyle "$precompyle" --python "$python" --corpus "$corpus" \
    --scratch "$scratch" --runs "$runs" "${quick[@]}" "${keep[@]}" "${native_only[@]}" \
    --target "$target" --target-python "$target_python" "${serc[@]}" --serc-crate "${serc_crate:-unknown}"
