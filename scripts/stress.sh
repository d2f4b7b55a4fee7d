#!/usr/bin/env bash
# The long fault and stress suite (issue 4); CI runs the bounded versions
# through `cargo test`. This one:
#   1. the SIGKILL test with many more kills (PRECOMPYLE_FAULT_KILLS, default 50),
#      plus the other fault, change and destination tests;
#   2. hostile inputs, on both backends: a 50 MB source, a 200,000-file tree,
#      1,000-level-deep directories, non-UTF-8 names, 100,000-deep nesting of
#      each kind, code too deep for marshal, the corpus with its own broken
#      files; prints exit code, the first message line and precompyle's peak
#      RSS (GNU time %M) for each, and per file of the nesting tree its error;
#   3. scripts/fuzz.sh, when present, for FUZZ_SECONDS per target (default 60).
# Usage: scripts/stress.sh [--hostile-only]
# Needs: cargo, python3, GNU time (/usr/bin/time); root for the tmpfs test.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
profile=${PRECOMPYLE_STRESS_PROFILE:-release}
target_dir=${CARGO_TARGET_DIR:-$repo/target}
bin="$target_dir/$profile/precompyle"
kills=${PRECOMPYLE_FAULT_KILLS:-50}

hostile_only=${1:-}
if [[ $hostile_only != --hostile-only ]]; then
    echo "== 1. fault tests, $kills kills"
    PRECOMPYLE_FAULT_KILLS=$kills cargo test --profile "$profile" --ignore-rust-version --test it \
        -- faults:: changing:: destinations:: --nocapture 2>&1 | grep -E "^(REPORT|round|test |test result)"
fi
[[ -x $bin ]] || { echo "stress.sh: no binary at $bin" >&2; exit 2; }

echo "== 2. hostile inputs"
scratch=$(mktemp -d /tmp/precompyle-stress.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
python3 - "$scratch" "$repo/scripts" <<'EOF'
import importlib.util, os, sys
base, scripts = sys.argv[1], sys.argv[2]
big = os.path.join(base, "big"); os.makedirs(big)
with open(os.path.join(big, "huge.py"), "w") as f:        # ~50 MB of simple statements
    line = "x_%d = [%s]\n" % (0, ", ".join(str(i) for i in range(40)))
    for i in range(50_000_000 // len(line)):
        f.write("x_%d = [%s]\n" % (i, ", ".join(str(i + k) for k in range(40))))
many = os.path.join(base, "many")
for d in range(400):                                       # 200,000 files in 400 dirs
    sub = os.path.join(many, "d%03d" % d); os.makedirs(sub)
    for i in range(500):
        with open(os.path.join(sub, "m%03d.py" % i), "w") as f:
            f.write("v = %d\n" % i)
os.makedirs(os.path.join(base, "deep"))                   # 1,000-level-deep directories
os.chdir(os.path.join(base, "deep"))                       # (relative steps: paths outgrow PATH_MAX)
for level in range(1000):
    os.mkdir("d")
    os.chdir("d")
with open("leaf.py", "w") as f:
    f.write("leaf = 1\n")
os.chdir(base)
names = os.fsencode(os.path.join(base, "names"))           # names that are not UTF-8
os.makedirs(names)
for raw in [b"caf\xe9.py", b"\xff\xfe.py", b"ok.py", b"sub\x80dir"]:
    p = os.path.join(names, raw)
    if raw.endswith(b"dir"):
        os.makedirs(p); p = os.path.join(p, b"x.py")
    with open(p, "wb") as f:
        f.write(b"n = 1\n")
nest = os.path.join(base, "nest"); os.makedirs(nest)     # 100,000 links of each chain
spec = importlib.util.spec_from_file_location("nesting_limits", os.path.join(scripts, "nesting-limits.py"))
limits = importlib.util.module_from_spec(spec); spec.loader.exec_module(limits)
names = ["elif", "not", "minus", "ternary", "lambda", "power", "add", "subscript", "call", "and", "parens", "list"]
for name in names:
    with open(os.path.join(nest, name + ".py"), "w") as f:
        f.write(limits.CHAINS[name](100_000))
with open(os.path.join(nest, "indent.py"), "w") as f:       # 1,000 indentation levels
    f.write("".join(" " * i + "if a:\n" for i in range(1000)) + " " * 1000 + "pass\n")
with open(os.path.join(nest, "marshal_lambda.py"), "w") as f:  # fine for compile(), too deep for marshal
    f.write("x = " + "lambda: " * 1000 + "1\n")
with open(os.path.join(nest, "fine.py"), "w") as f:
    f.write("fine = 1\n")
EOF
corpus_src=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
mkdir "$scratch/corpus"
cp -a "$corpus_src" "$scratch/corpus/lib"
find "$scratch/corpus" -name __pycache__ -prune -exec rm -rf {} +
measure() {
    local label=$1; shift
    local out="$scratch/out.txt" rss="$scratch/rss.txt"
    local start end code
    start=$(date +%s.%N)
    set +e
    /usr/bin/time -o "$rss" -f '%U %S %M' "$@" >"$out" 2>"$scratch/err.txt"
    code=$?
    set -e
    end=$(date +%s.%N)
    local user sys kb
    read -r user sys kb < <(tail -n 1 "$rss")
    printf '%-16s exit %s  %6.1f s (user %5.1f, sys %5.1f)  peak RSS %7.1f MB  %s\n' "$label" "$code" \
        "$(echo "$end - $start" | bc)" "$user" "$sys" "$(echo "$kb / 1024" | bc -l)" \
        "$( (grep -m 1 -A 1 '^\*\*\* ' "$out" | tail -n 1; grep -m 1 '^precompyle: ' "$scratch/err.txt") | head -n 1 | cut -c 1-100)"
}
# Each failed file of a --format json run: name, kind, last line of its message.
errors_of() {
    python3 -c 'import json, sys
for e in json.load(open(sys.argv[1]))["errors"]:
    print("    %-20s %-9s %s" % (e["path"].rsplit("/", 1)[-1], e["kind"], e["message"].strip().splitlines()[-1][:100]))' "$1"
}
for backend in cpython native; do
    args=(-q --no-progress -j 2)
    [[ $backend == native ]] && args+=(--backend native --target 3.12)
    for tree in big many deep names; do
        find "$scratch/$tree" -name __pycache__ -prune -exec rm -rf {} +
        measure "$backend $tree" "$bin" "${args[@]}" "$scratch/$tree"
    done
    # These list every failed file.
    for tree in nest corpus; do
        find "$scratch/$tree" -name __pycache__ -prune -exec rm -rf {} +
        measure "$backend $tree" "$bin" "${args[@]}" --format json "$scratch/$tree"
        python3 -c 'import json, sys; print("    %(compiled)d compiled, %(failed)d failed" % json.load(open(sys.argv[1]))["counts"])' "$scratch/out.txt"
        errors_of "$scratch/out.txt"
    done
done

if [[ $hostile_only != --hostile-only && -x scripts/fuzz.sh ]]; then
    echo "== 3. fuzzing"
    scripts/fuzz.sh "${FUZZ_SECONDS:-60}"
fi
