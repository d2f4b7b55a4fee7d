#!/usr/bin/env bash
# Benchmark precompyle against `python3 -m compileall` on the interpreter's own
# stdlib + site-packages, copied to a scratch dir (the interpreter's tree is
# never written to). Prints a table of seconds, ratios and PASS/FAIL targets.
#
# Usage: scripts/bench.sh [--quick] [--keep]
#   --quick   1 run on a small subset (stdlib email/ json/ asyncio/): a smoke test
#   --keep    keep the copied trees in the scratch dir afterwards
# Environment:
#   PRECOMPYLE_BENCH_RUNS    repetitions (default 3; --quick forces 1)
#   PRECOMPYLE_BENCH_DIR     scratch dir (default /tmp/precompyle-bench); needs ~2 GB free
#   PRECOMPYLE_BENCH_PYTHON  interpreter to compare with and whose lib is the corpus
#                            (default: python3 on PATH)
# Needs: cargo, the interpreter, cp/find/rm. Nothing else (no hyperfine, no
# GNU time: peak RSS is read via ptrace, see scripts/bench.py).
# Exit status: 0 all targets pass (always 0 with --quick), 1 a target failed,
# 2 or other: the benchmark itself could not run.
set -euo pipefail

usage() { sed -n '2,18s/^# \{0,1\}//p' "$0"; }

quick=()
keep=()
for arg in "$@"; do
    case "$arg" in
        --quick) quick=(--quick) ;;
        --keep) keep=(--keep) ;;
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

echo "bench.sh: cargo build --release in $repo" >&2
(cd "$repo" && cargo build --release --quiet)
target_dir=${CARGO_TARGET_DIR:-target}
[[ $target_dir = /* ]] || target_dir="$repo/$target_dir"
precompyle="$target_dir/release/precompyle"

# bench.py creates the scratch dir only after checking it is outside the interpreter.
exec "$python" "$repo/scripts/bench.py" \
    --precompyle "$precompyle" --python "$python" --corpus "$corpus" \
    --scratch "$scratch" --runs "$runs" "${quick[@]}" "${keep[@]}"
