"""`python -m precompyle ARGS`: run the installed binary with ARGS.

The interpreter running this module becomes the default target: it is
passed as PRECOMPYLE_DEFAULT_PYTHON, which the binary tries before
`python3.X`/`python3` when neither --python nor PRECOMPYLE_PYTHON names an
interpreter. So `python3.12 -m precompyle DIR` compiles DIR for that very
python3.12, and with no DIR compiles its sys.path.
"""

import os
import subprocess
import sys

from precompyle._find import find_precompyle_bin


def main():
    try:
        binary = find_precompyle_bin()
    except FileNotFoundError as error:
        print("precompyle: {}".format(error), file=sys.stderr)
        return 2
    env = dict(os.environ)
    if sys.executable:
        env["PRECOMPYLE_DEFAULT_PYTHON"] = sys.executable
    argv = [binary] + sys.argv[1:]
    if os.name == "posix":
        os.execve(binary, argv, env)  # does not return
    return subprocess.call(argv, env=env)


if __name__ == "__main__":
    sys.exit(main())
