#!/usr/bin/env python3
"""How deep each chain may nest before an interpreter refuses to compile it.

    scripts/nesting-limits.py [--compileall] PYTHON [CHAIN...]

For each chain (N links of one construct, see CHAINS), a binary search on
N in 1..100,000 for the most links PYTHON compiles, and what it raises with
one more. By default `compile()` is called from `python -c`, the fewest
frames below it that Python code can have; `--compileall` runs
`python -m compileall -q -f FILE` instead (more frames, so a few links
less). The native backend's guard (src/backend/native/guard.rs) holds the
numbers of 3.12.1 and 3.13.0 in its unit tests.
"""
import os
import subprocess
import sys
import tempfile

CHAINS = {
    "elif": lambda n: "if a: pass\n" + "elif a: pass\n" * n,
    "lambda": lambda n: "x = " + "lambda: " * n + "1\n",
    "not": lambda n: "x = " + "not " * n + "a\n",
    "minus": lambda n: "x = " + "-" * n + "1\n",
    "invert": lambda n: "x = " + "~" * n + "1\n",
    "ternary": lambda n: "x = " + "a if b else " * n + "c\n",
    "power": lambda n: "x = a" + " ** a" * n + "\n",
    "add": lambda n: "x = a" + " + a" * n + "\n",
    "bitor": lambda n: "x = a" + " | a" * n + "\n",
    "subscript": lambda n: "x = a" + "[0]" * n + "\n",
    "attribute": lambda n: "x = a" + ".b" * n + "\n",
    "call": lambda n: "x = f" + "()" * n + "\n",
    "and": lambda n: "x = a" + " and a" * n + "\n",
    "compare": lambda n: "x = a" + " < a" * n + "\n",
    "strings": lambda n: "x = 'a'" + " 'a'" * n + "\n",
    "parens": lambda n: "x = " + "(" * n + "1" + ")" * n + "\n",
    "list": lambda n: "x = " + "[" * n + "]" * n + "\n",
    "not-statement": lambda n: "not " * n + "a\n",
    "not-in-if": lambda n: "if " + "not " * n + "a: pass\n",
}

COMPILE = (
    "import sys\n"
    "try:\n"
    "    compile(open(sys.argv[1], 'rb').read(), sys.argv[1], 'exec')\n"
    "except BaseException as e:\n"
    "    print(type(e).__name__ + ': ' + str(e))\n"
)


def verdict(python, path, compileall):
    """'OK', or the first line of what the interpreter raised."""
    if compileall:
        command = [python, "-m", "compileall", "-q", "-f", path]
    else:
        command = [python, "-c", COMPILE, path]
    try:
        run = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return "timeout"
    lines = [line for line in run.stdout.splitlines() if not line.startswith("***")]
    if run.returncode == 0 and not lines:
        return "OK"
    return (lines or run.stderr.splitlines() or ["exit %d" % run.returncode])[0]


def main():
    args = sys.argv[1:]
    compileall = "--compileall" in args
    args = [a for a in args if a != "--compileall"]
    if not args:
        sys.exit(__doc__)
    python, names = args[0], args[1:] or list(CHAINS)
    with tempfile.TemporaryDirectory() as work:
        for name in names:
            path = os.path.join(work, "chain.py")

            def at(n):
                with open(path, "w") as f:
                    f.write(CHAINS[name](n))
                return verdict(python, path, compileall)

            top = at(100_000)
            if top == "OK":
                print(f"{name}: compiles 100,000")
                continue
            good, bad = 0, 100_000
            while bad - good > 1:
                mid = (good + bad) // 2
                if at(mid) == "OK":
                    good = mid
                else:
                    bad = mid
            print(f"{name}: compiles {good}; {bad}: {at(bad)}; 100,000: {top}", flush=True)


if __name__ == "__main__":
    main()
