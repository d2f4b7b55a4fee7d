#!/usr/bin/env bash
# A profile-guided release build of precompyle: what the wheels ship.
#
# Usage: scripts/build-pgo.sh [--out PATH] [--training DIR] [--profile FILE] [--bolt] [-- MATURIN-ARGS...]
#   --out       where the binary goes (default target/pgo/precompyle)
#   --bolt      then lay the binary's code out again by where it runs (step 4;
#               needs llvm-bolt and merge-fdata, e.g. Debian's bolt-22, and
#               a binary this machine can run: with MATURIN-ARGS, each new
#               wheel's binary is replaced and its RECORD entry rewritten)
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
#      reads another format) and build again with -Cprofile-use;
#   4. with --bolt: BOLT instruments that build, the training runs of
#      step 2 run again, and BOLT lays out each function's blocks by the
#      counts, hot blocks first and cold ones split off (docs/speed.md).
#      Functions stay where the linker put them: moving them needs a binary
#      linked with -Wl,--emit-relocs, which zig (the wheels' linker) does
#      not take, and measured no faster on the corpus.
# Two fat-LTO builds: about 20 minutes on 2 cores; step 4 adds ~5.
set -euo pipefail

die() { echo "build-pgo.sh: $*" >&2; exit 2; }
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work="$repo/target/pgo"
out="$work/precompyle"
training=
profile=
bolt=
maturin_args=()
while (($#)); do
    case "$1" in
        --out) out=${2:?}; shift 2 ;;
        --training) training=${2:?}; shift 2 ;;
        --profile) profile=${2:?}; shift 2 ;;
        --bolt) bolt=1; shift ;;
        --) shift; maturin_args=("$@"); break ;;
        -h | --help) sed -n '2,30s/^# \{0,1\}//p' "$0"; exit 0 ;;
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
if [[ -n $bolt ]]; then
    for candidate in "${LLVM_BOLT:-}" llvm-bolt llvm-bolt-{22,21,20,19,18,17}; do
        [[ -n $candidate ]] && llvm_bolt=$(command -v "$candidate") && break
    done
    [[ -n ${llvm_bolt:-} ]] || die "--bolt: no llvm-bolt on PATH (Debian: apt-get install bolt-22)"
    merge_fdata="$(dirname "$(readlink -f "$llvm_bolt")")/merge-fdata"
    [[ -x $merge_fdata ]] || die "--bolt: no merge-fdata beside $llvm_bolt"
fi

cargo_build() {
    cargo build --release --locked --ignore-rust-version --bin precompyle "$@"
}

# 1. Instrumented.
instrumented_build() {
    profiles="$work/profiles"
    rm -rf "$profiles"
    mkdir -p "$profiles"
    echo "build-pgo.sh: instrumented build" >&2
    RUSTFLAGS="-Cprofile-generate=$profiles" CARGO_TARGET_DIR="$work/generate" cargo_build
    instrumented="$work/generate/release/precompyle"
}

# 2. Training runs of $instrumented, on a copy so the source tree is never
# written to.
run_training() {
    local rc=0
    "$instrumented" "$@" >/dev/null 2>&1 || rc=$?
    # 1: some files of a real tree do not compile; anything else is a failure.
    ((rc <= 1)) || die "training run failed (exit $rc): precompyle $*"
}
training_runs() {
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
    local prefix="$work/training-pycs"
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
}

# 4. BOLT: instrument the optimised binary, train it the same way, and
# write it again with its hot code together (fewer instruction-cache misses).
bolt_layout() {
    local input=$1 output=$2 counts="$work/bolt-counts"
    rm -rf "$counts"
    mkdir -p "$counts"
    echo "build-pgo.sh: BOLT-instrumented binary" >&2
    "$llvm_bolt" "$input" -o "$work/precompyle.bolt-instrumented" -instrument \
        --instrumentation-file="$counts/run" --instrumentation-file-append-pid >/dev/null
    instrumented="$work/precompyle.bolt-instrumented"
    training_runs
    "$merge_fdata" "$counts"/run.*.fdata >"$work/merged.fdata" 2>/dev/null
    echo "build-pgo.sh: BOLT layout" >&2
    "$llvm_bolt" "$input" -o "$output" -data="$work/merged.fdata" -relocs=0 \
        -reorder-blocks=ext-tsp -split-functions -split-all-cold -icf=all -use-gnu-stack >/dev/null
}

# Where maturin writes wheels: its --out, else "wheels" in its target directory.
maturin_out_dir() {
    local dir="$work/use/wheels" i
    for ((i = 0; i < ${#maturin_args[@]}; i++)); do
        case ${maturin_args[i]} in
            --out | -o) dir=${maturin_args[i + 1]:-$dir} ;;
            --out=*) dir=${maturin_args[i]#--out=} ;;
        esac
    done
    echo "$dir"
}

# Step 4 for a wheel: its binary taken out, laid out again, and put back
# with its RECORD line (hash, size) rewritten; every other entry is copied
# as it was, so the wheel keeps its name, tags and file modes.
# maturin built it unstripped (BOLT needs the symbols); it is stripped
# afterwards, as pyproject.toml's `strip = true` asks.
bolt_wheel() {
    local wheel=$1 binary="$work/precompyle.from-wheel"
    echo "build-pgo.sh: BOLT for $wheel" >&2
    python3 - extract "$wheel" "$binary" <<<"$wheel_edit" || die "cannot read $wheel"
    bolt_layout "$binary" "$binary.bolt"
    strip "$binary.bolt"
    python3 - replace "$wheel" "$binary.bolt" <<<"$wheel_edit" || die "cannot rewrite $wheel"
}
wheel_edit='
import base64, hashlib, os, sys, zipfile
verb, wheel, binary = sys.argv[1:]
with zipfile.ZipFile(wheel) as old:
    infos = old.infolist()
    [exe] = [i for i in infos if i.filename.endswith(".data/scripts/precompyle")]
    [record] = [i for i in infos if i.filename.endswith(".dist-info/RECORD")]
    if verb == "extract":
        with open(binary, "wb") as out:
            out.write(old.read(exe))
        os.chmod(binary, 0o755)
        sys.exit()
    data = open(binary, "rb").read()
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    entry = f"{exe.filename},sha256={digest},{len(data)}"
    lines = old.read(record).decode().splitlines()
    lines = [entry if line.split(",")[0] == exe.filename else line for line in lines]
    with zipfile.ZipFile(wheel + ".new", "w") as new:
        for info in infos:
            if info is exe:
                body = data
            elif info is record:
                body = ("\n".join(lines) + "\n").encode()
            else:
                body = old.read(info)
            new.writestr(info, body)
os.replace(wheel + ".new", wheel)
'

if [[ -z $profile ]]; then
    instrumented_build
    training_runs
    "$profdata" merge -o "$work/merged.profdata" "$profiles"
    profile="$work/merged.profdata"
fi
[[ -f $profile ]] || die "no such profile: $profile"
profile=$(cd "$(dirname "$profile")" && pwd)/$(basename "$profile")

# 3. Optimised with the profile. A function the profile does not cover is
# built as usual; say nothing about it.
use="-Cprofile-use=$profile -Cllvm-args=-no-pgo-warn-mismatch"
if ((${#maturin_args[@]})); then
    echo "build-pgo.sh: maturin build ${maturin_args[*]}" >&2
    stamp="$work/maturin-started"
    touch "$stamp"
    strip_later=()
    [[ -z $bolt ]] || strip_later=(--strip false)
    RUSTFLAGS="$use" CARGO_TARGET_DIR="$work/use" maturin build "${maturin_args[@]}" "${strip_later[@]}"
    if [[ -n $bolt ]]; then
        while IFS= read -r -d '' wheel; do
            bolt_wheel "$wheel"
        done < <(find "$(maturin_out_dir)" -maxdepth 1 -name 'precompyle-*.whl' -newer "$stamp" -print0)
    fi
else
    echo "build-pgo.sh: optimised build" >&2
    RUSTFLAGS="$use" CARGO_TARGET_DIR="$work/use" cargo_build
    mkdir -p "$(dirname "$out")"
    if [[ -n $bolt ]]; then
        bolt_layout "$work/use/release/precompyle" "$out"
    else
        cp "$work/use/release/precompyle" "$out"
    fi
    echo "$out"
fi
