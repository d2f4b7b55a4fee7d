#!/usr/bin/env bash
# A profile-guided release build of precompyle, as a binary or as wheels.
#
# Usage: scripts/build-pgo.sh [--out PATH] [--training DIR] [--profile FILE] [--bolt] [-- MATURIN-ARGS...]
#   --out       where the binary goes (default target/pgo/precompyle)
#   --bolt      then lay the binary's code out again by where it runs (step 4;
#               needs llvm-bolt and merge-fdata, e.g. Debian's bolt-22; for
#               wheels also python3 and strip)
#   --profile   use this merged profile (e.g. target/pgo/merged.profdata of an
#               earlier run) instead of steps 1 and 2
#   --training  the tree the instrumented binary compiles (default: a copy of
#               python3's stdlib, made under target/pgo)
#   -- ARGS     instead of a bare cargo build, run `maturin build ARGS` with the
#               profile (e.g. -- --release --zig --compatibility manylinux2014
#               --ignore-rust-version --locked --out dist); --out is then unused
#
# Four steps, each in its own target directory under target/pgo so the plain
# release build's cache is untouched:
#   1. build the release binary instrumented (-Cprofile-generate);
#   2. run it the ways users do: native compiles for 3.12, 3.13 and 3.14 in
#      one run, then the same tree all fresh, `--check`, and the CPython
#      backend on part of it when python3 is there;
#   3. merge the profiles with the toolchain's own llvm-profdata (rustup
#      component llvm-tools, added if missing: the system's llvm-profdata
#      reads another format) and build again with -Cprofile-use;
#   4. with --bolt: that build linked with its relocations kept, BOLT
#      instruments it, the training runs of step 2 run again, and BOLT
#      orders its functions and their blocks by the counts (docs/speed.md).
#      A wheel's binary has no relocations (zig, its linker, refuses
#      -Wl,--emit-relocs): a twin built the same way but linked with them
#      is trained instead, and only the blocks inside each function of the
#      wheel's binary are reordered; the binary is then stripped and put
#      back in the wheel.
# The profile names functions by symbol, and a symbol's hash comes from
# cargo's -C metadata, which depends on how cargo was run: with maturin's
# --zig, step 1 runs cargo as cargo-zigbuild does, or the profile would
# match nothing. Step 3 counts the functions the profile has no counts for
# and stops above 100 (docs/packaging.md).
# Two fat-LTO builds: about 20 minutes on 2 cores; step 4 adds ~5 (~15
# for wheels: the twin is a third build).
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
        -h | --help) sed -n '2,40s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) die "unknown argument: $1" ;;
    esac
done

# RUSTFLAGS is split at spaces: the instrumented build's profile directory
# lies under $work.
[[ $work != *[[:space:]]* ]] || die "the checkout's path has a space (RUSTFLAGS would split it): $work"
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
    if ((${#maturin_args[@]})); then
        command -v python3 >/dev/null && command -v strip >/dev/null ||
            die "--bolt for wheels: python3 and strip are needed"
    fi
fi

# maturin --zig builds through cargo-zigbuild, which gives cargo an explicit
# --target and, with cargo's unstable target-applies-to-host set to false,
# builds build scripts and proc-macros without the target's settings. Both
# change every crate's -C metadata, hence every symbol; the instrumented
# build must be run the same way (its linker may differ: it is not hashed).
# Options that change what cargo builds are not carried over to those
# builds, so the profile would not match: refused before an hour of builds.
zig=
release=
for ((i = 0; i < ${#maturin_args[@]}; i++)); do
    case "${maturin_args[i]}" in
        --zig) zig=1 ;;
        -r | --release) release=1 ;;
        --target) target_arg=${maturin_args[i + 1]:-} ;;
        --target=*) target_arg=${maturin_args[i]#--target=} ;;
        -F | --features* | --all-features | --no-default-features | --profile* | -m | --manifest-path*)
            die "maturin's ${maturin_args[i]} is not carried over to the instrumented build" ;;
    esac
done
if ((${#maturin_args[@]})) && [[ -z $release ]]; then
    die "maturin args need --release: the profile comes from a release build"
fi
if [[ -n ${target_arg:-} && $target_arg != "$host" ]]; then
    die "the training runs need a binary this machine runs: --target $target_arg is not $host"
fi
# With an explicit --target, cargo puts its output under the triple.
target_flags=()
release_dir=release
if [[ -n $zig || -n ${target_arg:-} ]]; then
    target_flags=(--target "$host")
    release_dir="$host/release"
fi

# cargo build as the final build runs it (as cargo-zigbuild does under
# maturin --zig), so that both name every symbol alike.
# Usage: cargo_build_like_final RUSTFLAGS TARGET_DIR [VAR=VALUE...]; the
# binary is then TARGET_DIR/$release_dir/precompyle.
cargo_build_like_final() {
    local env=("${@:3}")
    if [[ -n $zig ]]; then
        env+=(__CARGO_TEST_CHANNEL_OVERRIDE_DO_NOT_USE_THIS=nightly
            CARGO_UNSTABLE_TARGET_APPLIES_TO_HOST=true CARGO_TARGET_APPLIES_TO_HOST=false)
    fi
    env "${env[@]}" RUSTFLAGS="$1" CARGO_TARGET_DIR="$2" \
        cargo build --release --locked --ignore-rust-version --bin precompyle "${target_flags[@]}"
}

# 1. Instrumented.
instrumented_build() {
    profiles="$work/profiles"
    rm -rf "$profiles"
    mkdir -p "$profiles"
    echo "build-pgo.sh: instrumented build" >&2
    local dir="$work/generate"
    [[ -z $zig && -z ${target_arg:-} ]] || dir="$work/generate-$host${zig:+-zig}"
    cargo_build_like_final "-Cprofile-generate=$profiles" "$dir"
    instrumented="$dir/$release_dir/precompyle"
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
            rm -rf "$training.partial"
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

# 4. BOLT: instrument the optimised binary (linked with its relocations),
# train it the same way, and keep the merged counts in $work/merged.fdata.
bolt_profile() {
    local counts="$work/bolt-counts"
    rm -rf "$counts"
    mkdir -p "$counts"
    echo "build-pgo.sh: BOLT-instrumented binary" >&2
    "$llvm_bolt" "$1" -o "$work/precompyle.bolt-instrumented" -instrument \
        --instrumentation-file="$counts/run" --instrumentation-file-append-pid >/dev/null
    instrumented="$work/precompyle.bolt-instrumented"
    training_runs
    "$merge_fdata" "$counts"/run.*.fdata >"$work/merged.fdata" 2>"$work/merge-fdata.log" ||
        die "merge-fdata failed: see $work/merge-fdata.log"
}

# Write binary $1 again as $2 with its hot code together (fewer
# instruction-cache misses), from those counts; further llvm-bolt options
# follow. Prints BOLT's account of how much of the binary the counts cover.
bolt_write() {
    local input=$1 output=$2
    shift 2
    echo "build-pgo.sh: BOLT layout of $input" >&2
    "$llvm_bolt" "$input" -o "$output" -data="$work/merged.fdata" -reorder-blocks=ext-tsp \
        -split-functions -split-all-cold -split-eh -use-gnu-stack "$@" >"$work/bolt.log" 2>&1 ||
        die "llvm-bolt failed: see $work/bolt.log"
    grep -E 'functions in the binary .* have non-empty execution profile|stale' "$work/bolt.log" >&2 || true
}

# A wheel's binary keeps no relocations (zig refuses --emit-relocs), so it
# cannot be instrumented, and BOLT can only reorder the blocks inside each
# function (-relocs=0). The counts come from a twin: the same cargo build
# with the same C compiler (mimalloc is C: cargo-zigbuild compiles it with
# zig's clang), linked by rustc's default linker with relocations, so its
# functions have the wheel's names and code. The wheel's binary, built
# unstripped, is laid out, then stripped and put back into the wheel with
# its RECORD line renewed.
#
# The C compiler a wheel's build used, as VAR=VALUE for the twin's build
# (nothing when it used the default one): cc-rs logs it in build outputs.
wheel_c_compiler() {
    local var="CC_${host//-/_}"
    sed -n "s/^$var = Some(\(.*\))\$/$var=\1/p" "$work/use/$release_dir"/build/*/output |
        sort -u | head -n 1
}
bolt_wheel() {
    local wheel=$1 member
    member=$(python3 -c 'import sys, zipfile
names = [n for n in zipfile.ZipFile(sys.argv[1]).namelist() if n.endswith(".data/scripts/precompyle")]
print(names[0] if len(names) == 1 else "")' "$wheel")
    [[ -n $member ]] || die "no single precompyle binary in $wheel"
    rm -rf "$work/wheel-binary"
    mkdir -p "$work/wheel-binary"
    python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])' \
        "$wheel" "$member" "$work/wheel-binary"
    bolt_write "$work/wheel-binary/$member" "$work/wheel-binary/laid-out" -relocs=0
    strip "$work/wheel-binary/laid-out"
    python3 - "$wheel" "$member" "$work/wheel-binary/laid-out" <<'PY'
import base64, hashlib, os, sys, zipfile

wheel, member, replacement = sys.argv[1:]
data = open(replacement, "rb").read()
digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
partial = wheel + ".partial"
with zipfile.ZipFile(wheel) as old, zipfile.ZipFile(partial, "w") as new:
    for info in old.infolist():
        body = old.read(info)
        if info.filename == member:
            body = data
        elif info.filename.endswith(".dist-info/RECORD"):
            lines = body.decode().splitlines()
            renewed = [f"{member},sha256={digest},{len(data)}" if line.startswith(member + ",") else line
                       for line in lines]
            if sum(a != b for a, b in zip(lines, renewed)) != 1:
                sys.exit(f"{info.filename}: not one line for {member}")
            body = ("\n".join(renewed) + "\n").encode()
        new.writestr(info, body)
os.replace(partial, wheel)
PY
    echo "build-pgo.sh: laid out by BOLT: $wheel" >&2
}

if [[ -z $profile ]]; then
    instrumented_build
    training_runs
    "$profdata" merge -o "$work/merged.profdata" "$profiles"
    profile="$work/merged.profdata"
fi
[[ -f $profile ]] || die "no such profile: $profile"
profile=$(cd "$(dirname "$profile")" && pwd)/$(basename "$profile")
# RUSTFLAGS is split at spaces: a path with one would reach rustc in pieces.
[[ $profile != *[[:space:]]* ]] || die "the profile's path has a space: $profile"

# 3. Optimised with the profile. LLVM warns for each function of precompyle's
# own crates (cargo shows no dependency's warnings) that the profile has no
# counts for: none when the symbols match, thousands when they do not, which
# would otherwise go unnoticed (a mismatch of a function's control flow is
# left quiet: it is a function the profile covers, at another version).
use="-Cprofile-use=$profile -Cllvm-args=-no-pgo-warn-mismatch -Cllvm-args=-pgo-warn-missing-function"
# Usage: check_profile_reached LOG TARGET_DIR. The dep-info of the newest
# precompyle built there names the profile only if rustc was given it.
check_profile_reached() {
    local missing deps
    missing=$(grep -c 'no profile data available for function' "$1" || true)
    echo "build-pgo.sh: functions of precompyle the profile has no counts for: $missing" >&2
    ((missing <= 100)) || die "the profile does not match this build's symbols ($1)"
    deps="$2/$release_dir/deps"
    # shellcheck disable=SC2012 # names are cargo's: precompyle-HASH.d
    grep -qF "$profile" "$(ls -t "$deps"/precompyle-*.d | head -n 1)" ||
        die "the profile never reached rustc (RUSTFLAGS overridden?): see $deps"
}
log="$work/use.log"
if ((${#maturin_args[@]})); then
    # maturin strips with `cargo rustc -- -C strip=symbols`; RUSTFLAGS come after.
    wheel_flags=$use
    [[ -z $bolt ]] || wheel_flags="$use -Cstrip=none"
    echo "build-pgo.sh: maturin build ${maturin_args[*]}" >&2
    RUSTFLAGS="$wheel_flags" CARGO_TARGET_DIR="$work/use" maturin build "${maturin_args[@]}" 2>&1 |
        tee "$log"
    mapfile -t wheels < <(sed -n 's/^.*Built wheel to \(.*\.whl\)$/\1/p' "$log")
    ((${#wheels[@]})) || die "maturin named no wheel it built ($log)"
    # Until checked (and laid out), these wheels are not what was asked for.
    trap 'rm -f "${wheels[@]}"' EXIT
    check_profile_reached "$log" "$work/use"
    if [[ -n $bolt ]]; then
        echo "build-pgo.sh: optimised twin of the wheel's binary, with relocations" >&2
        mapfile -t c_compiler < <(wheel_c_compiler)
        cargo_build_like_final "$use -Clink-arg=-Wl,--emit-relocs" "$work/use-twin" \
            "${c_compiler[@]}" 2>&1 | tee "$work/use-twin.log"
        check_profile_reached "$work/use-twin.log" "$work/use-twin"
        bolt_profile "$work/use-twin/$release_dir/precompyle"
        for wheel in "${wheels[@]}"; do bolt_wheel "$wheel"; done
    fi
    trap - EXIT
else
    echo "build-pgo.sh: optimised build" >&2
    # BOLT moves functions only in a binary that kept its relocations.
    [[ -z $bolt ]] || use="$use -Clink-arg=-Wl,--emit-relocs"
    cargo_build_like_final "$use" "$work/use" 2>&1 | tee "$log"
    check_profile_reached "$log" "$work/use"
    built="$work/use/$release_dir/precompyle"
    mkdir -p "$(dirname "$out")"
    if [[ -n $bolt ]]; then
        bolt_profile "$built"
        bolt_write "$built" "$out" -reorder-functions=cdsort -icf=all
    else
        cp "$built" "$out"
    fi
    echo "$out"
fi
