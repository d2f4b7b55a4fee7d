#!/usr/bin/env bash
# The CPython backend against an interpreter's own compileall on the whole
# corpus (python3's stdlib + site-packages, ~11,650 files), for any
# interpreter: pyenv's, Debian's 3.14/3.15 (scripts/debian-python.sh), PyPy.
#
# Usage: scripts/corpus-parity.sh PYTHON [WORKDIR]
#   PYTHON   the interpreter (its compileall is the reference)
#   WORKDIR  scratch directory (default: a new one under /tmp), removed at the end
#
# Both tools compile identical copies at the same path with -q -j0. Pycs that
# differ are compiled again by a fresh `PYTHON -m py_compile FILE` (where
# compileall's bytes depend on what it compiled before, 3.8-3.10 and 3.13+,
# that is the reference precompyle matches) and each is reported as equal to
# one, the other or neither. Also compares the set of stdout error blocks and
# stderr warning lines (compileall's -j0 workers print in their own order).
# Exit status: 0 when every pyc equals compileall's or the fresh py_compile's
# and the output agrees; 1 otherwise.
set -euo pipefail

python=${1:?usage: scripts/corpus-parity.sh PYTHON [WORKDIR]}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${PRECOMPYLE_BIN:-$root/target/release/precompyle}
work=${2:-$(mktemp -d /tmp/corpus-parity.XXXXXX)}
trap 'rm -rf "$work"' EXIT
[[ -x $bin ]] || (cd "$root" && cargo build --release --locked --ignore-rust-version)

corpus=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
mkdir -p "$work"
cp -a "$corpus" "$work/pristine"
find "$work/pristine" -name __pycache__ -prune -exec rm -rf {} +
cd "$work"

cp -al pristine tree
start=$(date +%s.%N)
"$python" -m compileall -q -j0 tree >compileall.out 2>compileall.err || true
echo "compileall: $(echo "$(date +%s.%N) - $start" | bc) s"
mv tree compileall-tree

cp -al pristine tree
start=$(date +%s.%N)
env -u PYTHONPYCACHEPREFIX -u SOURCE_DATE_EPOCH "$bin" --python "$python" -q -j0 tree >precompyle.out 2>precompyle.err || true
echo "precompyle: $(echo "$(date +%s.%N) - $start" | bc) s; $(tail -1 precompyle.err)"

"$python" - "$work" <<'EOF'
import os, subprocess, sys, tempfile
from pathlib import Path

work = Path(sys.argv[1])
ours = {p.relative_to(work / "tree"): p for p in (work / "tree").rglob("*.pyc")}
theirs = {p.relative_to(work / "compileall-tree"): p for p in (work / "compileall-tree").rglob("*.pyc")}
problems = 0
print(f"pycs: compileall {len(theirs)}, precompyle {len(ours)}")
for only, name in ((theirs.keys() - ours.keys(), "compileall"), (ours.keys() - theirs.keys(), "precompyle")):
    problems += len(only)
    for path in sorted(only)[:10]:
        print(f"  only {name} wrote {path}")
differing = sorted(k for k in ours.keys() & theirs.keys() if ours[k].read_bytes() != theirs[k].read_bytes())
print(f"identical to compileall: {len(ours.keys() & theirs.keys()) - len(differing)}")
for rel in differing:
    # The source of a __pycache__/NAME.TAG.pyc, compiled alone at the same path.
    source = rel.parent.parent / (rel.name.split(".")[0] + ".py")
    fresh_root = Path(tempfile.mkdtemp(dir=work))
    (fresh_root / "tree" / source.parent).mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-p", work / "pristine" / source, fresh_root / "tree" / source], check=True)
    # The workers' hash seed (frozenset order before 3.11).
    subprocess.run([sys.executable, "-m", "py_compile", str(Path("tree") / source)], cwd=fresh_root, check=True,
                   env=dict(os.environ, PYTHONHASHSEED="0"))
    fresh = (fresh_root / "tree" / rel).read_bytes()
    verdict = ("= fresh py_compile" if fresh == ours[rel].read_bytes() else "DIFFERS from fresh py_compile")
    if fresh == theirs[rel].read_bytes():
        verdict += " (compileall's = fresh py_compile too)"
    problems += fresh != ours[rel].read_bytes()
    print(f"  {rel}: {verdict}")

def blocks(name):
    return sorted(b.strip() for b in (work / name).read_text(errors="replace").split("*** ") if b.strip())

def warnings(name):
    return sorted(l for l in (work / name).read_text(errors="replace").splitlines() if not l.startswith("precompyle:"))

for what, a, b in (("stdout error blocks", blocks("compileall.out"), blocks("precompyle.out")),
                   ("stderr lines", warnings("compileall.err"), warnings("precompyle.err"))):
    same = a == b
    problems += not same
    print(f"{what}: compileall {len(a)}, precompyle {len(b)}: {'the same' if same else 'DIFFERENT'}")
print("corpus-parity:", "PASS" if problems == 0 else f"{problems} problem(s)")
sys.exit(1 if problems else 0)
EOF
