#!/usr/bin/env bash
# Behaviour check (issue 3): compile pyenv CPython X.Y's own stdlib with
# precompyle into a prefix P, run a few dozen of that interpreter's regression
# test modules on those pycs (PYTHONPYCACHEPREFIX=P), prove the pycs were used
# and none was recompiled or rewritten, and compare every test module's result
# with a run on pycs from the interpreter's own `python -m compileall` (prefix P0).
#
# Usage: scripts/behaviour.sh [--versions 3.12,3.13] [--tests "test_a test_b"]
#                             [--backend native|cpython]
#   --versions  X.Y list; each uses the highest installed ~/.pyenv/versions/X.Y.*
#   --tests     regrtest module names (default: ~75 modules, see scripts/behaviour/check.py);
#               names missing in a version are skipped with a note
#   --backend   native (default when `precompyle --help` lists --backend):
#               --backend native --target X.Y; cpython: --python <that interpreter>
# Environment:
#   PRECOMPYLE                 precompyle binary to test (default: cargo build --release here)
#   PRECOMPYLE_BEHAVIOUR_DIR   scratch dir (default /tmp/precompyle-behaviour, ~150 MB/version)
#   PYENV_ROOT                 where the interpreters live (default ~/.pyenv)
# The interpreters' trees are only read: each interpreter process runs in a
# private mount namespace with an overlay over the interpreter (needs unshare
# and root; without them the tree is only audited).
# Exit status: 0 every version matched its baseline with the proof of use
# holding, 1 a difference or a failed proof (printed), 2 the check could not run.
set -euo pipefail

usage() { sed -n '2,23s/^# \{0,1\}//p' "$0"; }

versions=3.12,3.13
tests=
backend=
while (($#)); do
    case "$1" in
        --versions) versions=${2:?--versions needs a value}; shift 2 ;;
        --tests) tests=${2:?--tests needs a value}; shift 2 ;;
        --backend) backend=${2:?--backend needs a value}; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "behaviour.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
scratch=${PRECOMPYLE_BEHAVIOUR_DIR:-/tmp/precompyle-behaviour}

if [[ -n ${PRECOMPYLE:-} ]]; then
    precompyle=$PRECOMPYLE
else
    echo "behaviour.sh: cargo build --release in $repo" >&2
    # serc declares a newer rust-version than this machine's stable toolchain.
    (cd "$repo" && cargo build --release --quiet --ignore-rust-version) || exit 2
    target_dir=${CARGO_TARGET_DIR:-target}
    [[ $target_dir = /* ]] || target_dir="$repo/$target_dir"
    precompyle="$target_dir/release/precompyle"
fi
if [[ ! -x $precompyle ]]; then
    echo "behaviour.sh: no precompyle binary at $precompyle" >&2
    exit 2
fi

if [[ -z $backend ]]; then
    if "$precompyle" --help | grep -q -- '--backend'; then
        backend=native
    else
        backend=cpython
        echo "behaviour.sh: WARNING: $precompyle has no --backend option;" \
            "checking the CPython-worker backend instead of the native one" >&2
    fi
fi
case "$backend" in
    native | cpython) ;;
    *) echo "behaviour.sh: --backend must be native or cpython, got '$backend'" >&2; exit 2 ;;
esac

# The driver only orchestrates; every compile and test runs on the target
# interpreters themselves. Any python3 >= 3.8 will do.
driver=(python3 "$repo/scripts/behaviour/check.py" --precompyle "$precompyle"
    --backend "$backend" --versions "$versions" --scratch "$scratch")
if [[ -n $tests ]]; then driver+=(--tests "$tests"); fi
exec "${driver[@]}"
