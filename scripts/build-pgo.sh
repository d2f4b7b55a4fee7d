#!/usr/bin/env bash
# A profile-guided release build of precompyle: what the wheels ship.
#
# Usage: scripts/build-pgo.sh [--out PATH] [--training DIR] [--profile FILE] [-- MATURIN-ARGS...]
#   --out       where the binary goes (default target/pgo/precompyle)
#   --profile   use this merged profile (e.g. target/pgo/merged.profdata of an
#               earlier run) instead of steps 1 and 2
#   --training  the tree the instrumented binary compiles (default: a copy of
#               python3's stdlib + site-packages, made under target/pgo)
#   -- ARGS     instead of a bare cargo build, run `maturin build ARGS` with the
#               profile (e.g. -- --release --zig --compatibility manylinux2014
#               --ignore-rust-version --locked --out dist); --out is then unused
#
# Three steps, each in its own target directory under target/pgo so the plain
# release build's cache is untouched:
#   1. build the release binary instrumented (-Cprofile-generate);
#   2. run it the ways users do: native compiles for 3.12, 3.13 and 3.14 in
#      one run, then the same tree all fresh, `--check`, and the CPython
#      backend on part of it when python3 is there;
#   3. merge the profiles with the toolchain's own llvm-profdata (rustup
#      component llvm-tools, added if missing: the system's llvm-profdata
#      reads another format) and build again with -Cprofile-use.
# Two fat-LTO builds: about 20 minutes on 2 cores.
set -euo pipefail

die() { echo "build-pgo.sh: $*" >&2; exit 2; }
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work="$repo/target/pgo"
out="$work/precompyle"
training=
profile=
maturin_args=()
while (($#)); do
    case "$1" in
        --out) out=${2:?}; shift 2 ;;
        --training) training=${2:?}; shift 2 ;;
        --profile) profile=${2:?}; shift 2 ;;
        --) shift; maturin_args=("$@"); break ;;
        -h | --help) sed -n '2,22s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) die "unknown argument: $1" ;;
    esac
done

host=$(rustc -vV | sed -n 's/^host: //p')
profdata="$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata"
if [[ ! -x $profdata ]]; then
    echo "build-pgo.sh: adding rustup component llvm-tools" >&2
    rustup component add llvm-tools >&2 || die "no llvm-profdata for this toolchain"
fi
[[ -x $profdata ]] || die "no llvm-profdata at $profdata"

cargo_build() {
    cargo build --release --locked --ignore-rust-version --bin precompyle "$@"
}

train() {
# 1. Instrumented.
profiles="$work/profiles"
rm -rf "$profiles"
mkdir -p "$profiles"
echo "build-pgo.sh: instrumented build" >&2
RUSTFLAGS="-Cprofile-generate=$profiles" CARGO_TARGET_DIR="$work/generate" cargo_build
instrumented="$work/generate/release/precompyle"

# 2. Training runs, on a copy so the source tree is never written to.
if [[ -z $training ]]; then
    stdlib=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
    training="$work/training"
    if [[ ! -d $training ]]; then
        echo "build-pgo.sh: copying $stdlib to $training" >&2
        cp -a "$stdlib" "$training.partial"
        find "$training.partial" -name __pycache__ -type d -prune -exec rm -rf {} +
        mv "$training.partial" "$training"
    fi
fi
[[ -d $training ]] || die "no such tree: $training"
run_training() {
    local rc=0
    "$instrumented" "$@" >/dev/null 2>&1 || rc=$?
    # 1: some files of a real tree do not compile; anything else is a failure.
    ((rc <= 1)) || die "training run failed (exit $rc): precompyle $*"
}
prefix="$work/training-pycs"
rm -rf "$prefix"
echo "build-pgo.sh: training on $training" >&2
run_training -q --backend native --target 3.12,3.13,3.14 --prefix "$prefix" "$training"
run_training -q --backend native --target 3.12,3.13,3.14 --prefix "$prefix" "$training"
run_training -q --check --backend native --target 3.12 --prefix "$prefix" "$training"
run_training -q --backend native --target 3.13 --invalidation-mode checked-hash \
    --prefix "$prefix-hash" "$training/json" "$training/email"
if command -v python3 >/dev/null; then
    run_training -q --backend cpython --python python3 --prefix "$prefix-cpython" \
        "$training/asyncio" "$training/email" "$training/json"
fi
rm -rf "$prefix" "$prefix-hash" "$prefix-cpython"
"$profdata" merge -o "$work/merged.profdata" "$profiles"
}
if [[ -z $profile ]]; then
    train
    profile="$work/merged.profdata"
fi
[[ -f $profile ]] || die "no such profile: $profile"
profile=$(cd "$(dirname "$profile")" && pwd)/$(basename "$profile")

# 3. Optimised with the profile. A function the profile does not cover is
# built as usual; say nothing about it.
use="-Cprofile-use=$profile -Cllvm-args=-no-pgo-warn-mismatch"
if ((${#maturin_args[@]})); then
    echo "build-pgo.sh: maturin build ${maturin_args[*]}" >&2
    RUSTFLAGS="$use" CARGO_TARGET_DIR="$work/use" maturin build "${maturin_args[@]}"
else
    echo "build-pgo.sh: optimised build" >&2
    RUSTFLAGS="$use" CARGO_TARGET_DIR="$work/use" cargo_build
    mkdir -p "$(dirname "$out")"
    cp "$work/use/release/precompyle" "$out"
    echo "$out"
fi
