#!/usr/bin/env bash
# Build precompyle's wheel the way it ships (manylinux2014, through zig) and
# install it the ways Python users do, into a fresh venv of every
# interpreter here: python3 and pyenv's 3.8-3.13. For each one:
#   install       pip install of the wheel, offline
#   version       `precompyle --version` names this release and serc's
#   python -m     `python -m precompyle -q TREE` on a copy of the
#                 interpreter's own json/email/importlib packages
#   parity        those pycs, byte for byte, equal to what the interpreter's
#                 `python -m compileall -q TREE` writes at the same paths
#                 (3.11, 3.12), or a fresh `py_compile` of each file where
#                 compileall's own bytes vary (3.8-3.10, 3.13)
#   check         `precompyle --check TREE` exits 0 afterwards
#   uninstall     `pip uninstall` leaves no file named *precompyle* behind
#   --target      `pip install --target DIR`: `python -m precompyle` finds
#                 DIR/bin/precompyle and compiles
# plus, once: the wheel's tag, auditwheel's verdict, and `uvx --from WHEEL`.
#
# Usage: scripts/wheel-check.sh [--sdist]
#   --sdist   also `pip install` the sdist (a full release build from source)
# Environment:
#   PRECOMPYLE_WHEEL_PROFILE  cargo profile of the wheel [release]; .ci/run
#                             uses `quick`, which packages the same files
#                             with less optimisation, ~4x faster to build.
#   PRECOMPYLE_WHEEL_DIR      work directory [target/wheel-check]
# Prints one PASS/FAIL line per check and exits 1 if any failed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=${PRECOMPYLE_WHEEL_DIR:-$root/target/wheel-check}
profile=${PRECOMPYLE_WHEEL_PROFILE:-release}
with_sdist=0
[[ ${1:-} == --sdist ]] && with_sdist=1

# Pinned so the check is the same everywhere: maturin builds, ziglang links
# against glibc 2.17, auditwheel gives PyPA's verdict on the tag, uv is the
# uvx check.
tools_pins=(maturin==1.16.0 ziglang==0.17.1 auditwheel==6.8.2 uv==0.13.9)

failures=0
log=/dev/null
pass() { printf 'PASS  %-10s %s\n' "$1" "$2"; }
fail() { printf 'FAIL  %-10s %s\n' "$1" "$2"; failures=$((failures + 1)); }
started=$SECONDS

mkdir -p "$work"
rm -rf "$work/dist" "$work/envs" "$work/trees"
mkdir -p "$work/dist" "$work/envs" "$work/trees"

if [[ ! -x $work/tools/bin/maturin ]]; then
    python3 -m venv "$work/tools"
fi
"$work/tools/bin/pip" install -q --disable-pip-version-check "${tools_pins[@]}"
export PATH=$work/tools/bin:$PATH

# --- build ----------------------------------------------------------------
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
build_started=$SECONDS
# Rust 1.95 builds serc although it declares 1.96 (README, "Toolchain").
if ! maturin build --profile "$profile" --zig --compatibility manylinux2014 \
    --ignore-rust-version --locked --out "$work/dist" >"$work/build.log" 2>&1 ||
    ! maturin sdist --out "$work/dist" >>"$work/build.log" 2>&1; then
    cat "$work/build.log"
fi
build_time=$((SECONDS - build_started))
wheel=$(ls "$work"/dist/precompyle-"$version"-*.whl 2>/dev/null | head -1)
sdist=$(ls "$work"/dist/precompyle-"$version".tar.gz 2>/dev/null | head -1)
if [[ -z $wheel || -z $sdist ]]; then
    fail build "no wheel or sdist for $version in $work/dist"
    exit 1
fi
pass build "$(basename "$wheel") ($(du -k "$wheel" | cut -f1) KiB, ${build_time}s, profile $profile), $(basename "$sdist")"

# The tag: manylinux2014, and no symbol from a glibc newer than 2.17.
case $wheel in
*-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl | *-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl)
    pass tag "py3-none, manylinux2014 / manylinux_2_17 x86_64"
    ;;
*) fail tag "unexpected tag: $(basename "$wheel")" ;;
esac
verdict=$(auditwheel show "$wheel" 2>&1)
if grep -q 'consistent with the following platform tag' <<<"$verdict" &&
    grep -q '"manylinux_2_17_x86_64"' <<<"$verdict"; then
    newest=$(grep -o "GLIBC_[0-9.]*" <<<"$verdict" | sort -t. -k2,2n -u | tail -1)
    pass auditwheel "consistent with manylinux_2_17_x86_64 (newest symbol $newest)"
else
    fail auditwheel "$verdict"
fi

# --- one interpreter ------------------------------------------------------
# sha256 of every pyc under $1, by path.
pyc_sums() { (cd "$1" && find . -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum); }

# Write the reference pycs for TREE with PYTHON and say which reference it
# is. compileall is deterministic on 3.11 and 3.12; elsewhere its bytes
# depend on the compiling process's history, and the reference is a fresh
# py_compile per file, PYTHONHASHSEED=0, with the type attribute cache
# emptied before 3.11 (docs/exactness.md, "Determinism"; tests/it/parity.rs
# does the same).
fresh_py_compile='import sys, runpy
sys.argv[0] = "py_compile"
if sys.version_info < (3, 11):
    sys._clear_type_cache()
runpy.run_module("py_compile", run_name="__main__", alter_sys=True)'
write_reference() {
    local python=$1 tree=$2 minor
    minor=$("$python" -c 'import sys; print(sys.version_info[1])')
    if ((minor == 11 || minor == 12)); then
        "$python" -m compileall -q "$tree" >/dev/null
        echo compileall
    else
        find "$tree" -name '*.py' -print0 | while IFS= read -r -d '' source; do
            PYTHONHASHSEED=0 "$python" -c "$fresh_py_compile" "$source"
        done
        echo 'fresh py_compile'
    fi
}

check_interpreter() {
    local name=$1 python=$2
    local env=$work/envs/$name tree=$work/trees/$name
    # precompyle's own stderr (its summary lines), shown for failures only.
    log=$work/envs/$name.log
    "$python" -m venv "$env"
    local py=$env/bin/python
    if "$py" -m pip install -q --disable-pip-version-check --no-index "$wheel"; then
        pass install "$name"
    else
        fail install "$name"
        return
    fi
    local shown
    shown=$("$env/bin/precompyle" --version)
    if [[ $shown == "precompyle $version (serc "*": CPython "* ]]; then
        pass version "$name: $shown"
    else
        fail version "$name: '$shown'"
    fi

    # A small real tree: this interpreter's own packages.
    local stdlib
    stdlib=$("$py" -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')
    mkdir -p "$tree"
    cp -r "$stdlib"/json "$stdlib"/email "$stdlib"/importlib "$tree"/
    find "$tree" -name __pycache__ -prune -exec rm -rf {} +
    local files
    files=$(find "$tree" -name '*.py' | wc -l)
    if "$py" -m precompyle -q "$tree" 2>>"$log"; then
        pass 'python -m' "$name: $files files, $(grep -o 'cpython-3[0-9]*, [a-z]* backend' "$log" | tail -1)"
    else
        fail 'python -m' "$name: exit $?, $(cat "$log")"
    fi
    local ours theirs
    ours=$(pyc_sums "$tree")
    if "$env/bin/precompyle" --python "$py" -q --check "$tree" 2>>"$log"; then
        pass check "$name"
    else
        fail check "$name: exit $?, $(tail -3 "$log")"
    fi
    find "$tree" -name __pycache__ -prune -exec rm -rf {} +
    local reference
    reference=$(write_reference "$py" "$tree")
    theirs=$(pyc_sums "$tree")
    if [[ -n $ours && $ours == "$theirs" ]]; then
        pass parity "$name: $(wc -l <<<"$ours") pycs identical to $reference's"
    else
        fail parity "$name: $(diff <(echo "$ours") <(echo "$theirs") | grep -c '^<') pycs differ from $reference's"
    fi

    "$py" -m pip uninstall -q -y --disable-pip-version-check precompyle
    local left
    left=$(find "$env" -iname '*precompyle*' | head -5)
    if [[ -z $left ]]; then
        pass uninstall "$name"
    else
        fail uninstall "$name: left $left"
    fi

    # pip install --target DIR: package in DIR, binary in DIR/bin.
    local into=$work/envs/$name-target
    "$py" -m pip install -q --disable-pip-version-check --no-index --target "$into" "$wheel"
    find "$tree" -name __pycache__ -prune -exec rm -rf {} +
    if PYTHONPATH=$into "$py" -m precompyle -q "$tree" 2>>"$log" && [[ $(pyc_sums "$tree") == "$theirs" ]]; then
        pass --target "$name: $into/bin/precompyle found, same bytes"
    else
        fail --target "$name"
    fi
}

interpreters=(python3:"$(command -v python3)")
for minor in 8 9 10 11 12 13; do
    found=$(ls -d "$HOME"/.pyenv/versions/3."$minor".*/bin/python3 2>/dev/null | tail -1)
    if [[ -n $found ]]; then
        interpreters+=("3.$minor:$found")
    else
        echo "SKIP  3.$minor       no pyenv interpreter at ~/.pyenv/versions/3.$minor.*"
    fi
done
for entry in "${interpreters[@]}"; do
    check_interpreter "${entry%%:*}" "${entry#*:}"
done

# --- uvx: the tool's own environment is the default target ----------------
tree=$work/trees/uvx
mkdir -p "$tree" && cp -r "$work/trees/python3/json" "$tree/"
find "$tree" -name __pycache__ -prune -exec rm -rf {} +
uv_python=$(command -v python3)
if UV_CACHE_DIR=$work/uv-cache uvx -q --offline --python "$uv_python" --from "$wheel" \
    precompyle -q "$tree" 2>"$work/envs/uvx.log" &&
    tag=$("$uv_python" -c 'import sys; print(sys.implementation.cache_tag)') &&
    [[ -n $(find "$tree" -name "*.$tag.pyc") ]]; then
    pass uvx "uvx --from WHEEL compiled for the tool environment's $tag"
else
    fail uvx "uvx --from WHEEL precompyle"
fi

# --- the sdist, built by pip as a user without a wheel would --------------
if ((with_sdist)); then
    env=$work/envs/sdist
    python3 -m venv "$env"
    sdist_started=$SECONDS
    if MATURIN_PEP517_ARGS=--ignore-rust-version PIP_FIND_LINKS=$work/dist \
        "$env/bin/pip" install -q --disable-pip-version-check "$sdist" &&
        "$env/bin/precompyle" --version >/dev/null; then
        pass sdist "pip install $(basename "$sdist"): $((SECONDS - sdist_started))s"
    else
        fail sdist "pip install $(basename "$sdist")"
    fi
fi

echo "wheel-check: $failures failure(s), $((SECONDS - started))s"
((failures == 0))
