"""precompyle: precompile Python trees into .pyc files, byte-identical to CPython's own.

The package is a launcher: the work is done by the `precompyle` binary that
the wheel installs into the environment's scripts directory. Run it as
`precompyle ARGS` or `python -m precompyle ARGS`; `find_precompyle_bin()`
says where it is.
"""

from precompyle._find import find_precompyle_bin

__all__ = ["find_precompyle_bin"]
