#!/usr/bin/env bash
# Benchmark precompyle against serc's own CLI, `python3 -m compileall -j0` and
# CPython's bare compiler, in one run, on copies in a scratch dir (no
# interpreter's tree is ever written to). Prints a table of seconds, CPU,
# peak RSS and syscalls, ratios, and PASS/FAIL against issues 10 and 12's targets.
#
# Usage: scripts/bench.sh [--quick] [--keep] [--only GROUP[,GROUP...]]
#   --quick        1 run on subsets of every tree (3 stdlib packages, 3 small wheels): a smoke test
#   --keep         keep the copied trees in the scratch dir afterwards
#   --only GROUPS  run only these groups (default: all but earlier):
#     corpus    python3's stdlib + site-packages: native vs serc CLI; CPython backend vs
#               compileall -j0 and vs the floor (compile()+marshal of the same files, one process)
#     wheels    native vs serc CLI on 12 pinned wheels of popular packages (6,050 files),
#               downloaded once with pip into the scratch dir
#     x5        the corpus copied 5 times (>= 55,000 files): the corpus rows, peak RSS targets
#     fresh     all-fresh runs on the compiled corpus: native, CPython backend, serc CLI
#     syscalls  strace -f -c of one -j1 cold run on Django (from the wheels): syscalls per pyc
#     cache     issue 12, on the corpus: the CPython backend and native with an empty and with a
#               warm --cache-dir, against compileall -j0, serc's CLI and themselves without one;
#               with fresh: all-fresh runs with --cache-dir (which must never open it)
#     earlier   issues 1 and 3: sequential compileall, pythonT's compileall -j0, serc --check,
#               compileall's all-fresh runs (implies corpus and fresh)
# Environment:
#   PRECOMPYLE_BENCH_RUNS    repetitions (default 5: corpus's and x5's five tools each first once; --quick forces 1)
#   PRECOMPYLE_BENCH_DIR     scratch dir (default /tmp/precompyle-bench); each run's tree is kept until the end: ~10 GB
#                            (~42 GB with x5); with less, they are deleted between repetitions (one needs ~4 GB, ~9 with x5).
#                            The wheel downloads and serc's venv stay there as a cache.
#   PRECOMPYLE_BENCH_PYTHON  interpreter of the CPython rows, whose lib is the corpus
#                            (default: python3 on PATH)
#   PRECOMPYLE_BENCH_TARGET  target of native and serc, 3.12..3.15 (default 3.12)
#   PRECOMPYLE_BENCH_TARGET_PYTHON  interpreter of that version, group earlier only (default:
#                            pythonT on PATH, else the newest pyenv T.x; without one its rows are skipped)
#   PRECOMPYLE_BENCH_SERC    serc's CLI (default: pip install serc==0.1.8 into a venv in the scratch dir)
#   PRECOMPYLE_BENCH_BIN     a precompyle binary to benchmark as is (default: build
#                            target/release/precompyle with cargo build --release)
#   PRECOMPYLE_BENCH_CARGO_FLAGS  flags for that build (default --ignore-rust-version, as the README)
# The tools run without PYTHONPYCACHEPREFIX, SOURCE_DATE_EPOCH and PRECOMPYLE_{BACKEND,
# PYTHON,TARGET,TIMEOUT}, which would change where pycs go, their invalidation mode or the backend.
# Needs: cargo (unless PRECOMPYLE_BENCH_BIN), python3 with pip, cp/find/rm, strace (installed
# with apt-get when missing and the syscalls group runs). Peak RSS is read via ptrace.
# A full run takes about 75 minutes on 2 cores.
# Exit status: 0 all targets pass (always 0 with --quick), 1 a target failed,
# 2 or other: the benchmark itself could not run.
set -euo pipefail

usage() { sed -n '2,43s/^# \{0,1\}//p' "$0"; }

forward=()
groups=corpus,wheels,x5,fresh,syscalls,cache
quick=false
while (($#)); do
    case "$1" in
        --quick) quick=true; forward+=(--quick) ;;
        --keep) forward+=(--keep) ;;
        --only) (($# > 1)) || { echo "bench.sh: --only needs a list of groups" >&2; exit 2; }
            groups=$2; forward+=(--only "$2"); shift ;;
        --only=*) groups=${1#--only=}; forward+=(--only "$groups") ;;
        -h | --help) usage; exit 0 ;;
        *) echo "bench.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=${PRECOMPYLE_BENCH_RUNS:-5}
scratch=${PRECOMPYLE_BENCH_DIR:-/tmp/precompyle-bench}
if $quick; then runs=1; fi
if ! [[ $runs =~ ^[1-9][0-9]*$ ]]; then
    echo "bench.sh: PRECOMPYLE_BENCH_RUNS must be a positive integer, got '$runs'" >&2
    exit 2
fi

# Resolve to the real executable: a pyenv shim is a bash script costing ~0.3 s
# per start, which would swamp the fresh-run timings (and compileall's own
# workers start sys.executable, not the shim).
python=$("${PRECOMPYLE_BENCH_PYTHON:-python3}" -c 'import sys; print(sys.executable)')

# The real executable of an interpreter, or nothing when it does not run.
real_python() { "$1" -c 'import sys; print(sys.executable)' 2>/dev/null || true; }

target=${PRECOMPYLE_BENCH_TARGET:-3.12}
target_python=()
if [[ ,$groups, == *,earlier,* ]]; then
    if [[ -n ${PRECOMPYLE_BENCH_TARGET_PYTHON:-} ]]; then
        found=$(real_python "$PRECOMPYLE_BENCH_TARGET_PYTHON")
    else
        found=$(real_python "python$target")
        if [[ -z $found ]]; then
            # pyenv shims fail unless the version is selected; the install itself works.
            installs=("${PYENV_ROOT:-$HOME/.pyenv}/versions/$target".*)
            newest=$(printf '%s\n' "${installs[@]}" | sort -V | tail -n 1)
            [[ ! -x $newest/bin/python3 ]] || found=$(real_python "$newest/bin/python3")
        fi
    fi
    if [[ -n $found ]]; then
        target_python=(--target-python "$found")
    else
        echo "bench.sh: no Python $target interpreter (PRECOMPYLE_BENCH_TARGET_PYTHON): its rows are skipped" >&2
    fi
fi

serc=()
if [[ -n ${PRECOMPYLE_BENCH_SERC:-} ]]; then
    if ! [[ -x $PRECOMPYLE_BENCH_SERC ]]; then
        echo "bench.sh: PRECOMPYLE_BENCH_SERC=$PRECOMPYLE_BENCH_SERC is not an executable" >&2
        exit 2
    fi
    serc=(--serc "$(realpath -- "$PRECOMPYLE_BENCH_SERC")")
fi
# The serc crate version precompyle is built with, for the report (`serc = "=0.1.10"`).
serc_crate=$(sed -n 's/^serc = "=\{0,1\}\([^"]*\)".*/\1/p' "$repo/Cargo.toml")

strace=()
if [[ ,$groups, == *,syscalls,* ]]; then
    if ! command -v strace >/dev/null && command -v apt-get >/dev/null && ((EUID == 0)); then
        echo "bench.sh: installing strace with apt-get" >&2
        apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strace >&2 || true
    fi
    if command -v strace >/dev/null; then
        strace=(--strace "$(command -v strace)")
    else
        echo "bench.sh: strace not found: the syscalls group is not measured" >&2
    fi
fi

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
    --precompyle "$precompyle" --python "$python" --scratch "$scratch" --runs "$runs" \
    --target "$target" "${target_python[@]}" "${serc[@]}" "${strace[@]}" --serc-crate "${serc_crate:-unknown}" \
    "${forward[@]}"
