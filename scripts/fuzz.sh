#!/usr/bin/env bash
# The long fuzz suite (issue 4, point 7): run each cargo-fuzz target in fuzz/
# for SECONDS (default 60) and print, per target, the executions and crashes.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
#   SECONDS  time per target (libFuzzer's -max_total_time)
#   TARGET   any of header, layout, dfile (default: all three, one after another)
# The targets check the same properties as the proptest suite
# (src/{pyc,layout,dfile}/properties.rs). Corpora stay in fuzz/corpus/TARGET, so
# every run goes on from the last; a crash leaves its input in
# fuzz/artifacts/TARGET/ (replay: cargo +nightly fuzz run TARGET FILE).
# Environment:
#   PRECOMPYLE_FUZZ_TARGET_DIR   the fuzz build's target dir (default fuzz/target; it
#                                is never the main one: other compiler, other flags)
# Needs: a nightly toolchain (`cargo +nightly`) and `cargo install cargo-fuzz`.
# Exit status: 0 no crash, 1 a crash (or timeout, OOM) in some target, 2 could not run.
set -euo pipefail

usage() { sed -n '2,18s/^# \{0,1\}//p' "$0"; }
die() { echo "fuzz.sh: $*" >&2; exit 2; }

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds=60
if [[ $# -gt 0 && $1 =~ ^[0-9]+$ ]]; then
    seconds=$1
    shift
elif [[ $# -gt 0 && ($1 == -h || $1 == --help) ]]; then
    usage
    exit 0
fi
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(header layout dfile)
target_dir=${PRECOMPYLE_FUZZ_TARGET_DIR:-$repo/fuzz/target}

cargo +nightly --version >/dev/null 2>&1 || die "no nightly toolchain (rustup toolchain install nightly)"
cargo +nightly fuzz --version >/dev/null 2>&1 || die "no cargo-fuzz (cargo install cargo-fuzz)"

# No sanitizer: the code under test is safe Rust, where ASan finds nothing a
# panic would not, at about half the executions. Debug assertions and
# overflow checks stay on (cargo-fuzz's default), so the preconditions the
# code asserts are checked too.
fuzz=(cargo +nightly fuzz)
# 16 codegen units: serc's instrumented build takes minutes instead of tens of them.
flags=(--fuzz-dir "$repo/fuzz" --sanitizer none --codegen-units 16 --target-dir "$target_dir")
# A fuzz build must not pick up the shared CARGO_TARGET_DIR of the main build.
unset CARGO_TARGET_DIR
# Logs, and the header target's files (it writes under TMPDIR).
scratch=$(mktemp -d "${TMPDIR:-/tmp}/precompyle-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
"${fuzz[@]}" build "${flags[@]}" >"$scratch/build.log" 2>&1 \
    || { tail -20 "$scratch/build.log" >&2; die "fuzz build failed"; }

crashed=0
printf '%-8s %14s %8s  %s\n' target executions crashes "artifacts (fuzz/artifacts/TARGET)"
for target in "${targets[@]}"; do
    corpus="$repo/fuzz/corpus/$target"
    artifacts="$repo/fuzz/artifacts/$target"
    mkdir -p "$corpus" "$artifacts" "$scratch/$target"
    log="$scratch/$target.log"
    touch "$scratch/$target.start"
    # -timeout: an input running 10 s counts as a hang; libFuzzer stops at the
    # first crash, so a target reports at most one per run.
    TMPDIR="$scratch/$target" "${fuzz[@]}" run "${flags[@]}" "$target" "$corpus" -- \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" >"$log" 2>&1 || true
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    [[ -n $execs ]] || execs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
    [[ -n $execs ]] || { tail -20 "$log" >&2; die "$target: no libFuzzer statistics in its output"; }
    # What this run left: crash-*, timeout-*, oom-* files newer than its start.
    new=$(find "$artifacts" -type f -newer "$scratch/$target.start" -printf '%f ')
    crashes=$(wc -w <<<"$new")
    printf '%-8s %14s %8s  %s\n' "$target" "$execs" "$crashes" "$new"
    if (( crashes > 0 )); then
        crashed=1
        grep -m1 -A3 "panicked at" "$log" >&2 || tail -5 "$log" >&2
    fi
done
exit "$crashed"
