# 3.13+: NOT a native difference. A nested class's qualname is written interned ('Z', as by a fresh
# process) unless the compiling process has such a class alive ('z'): precompyle's 3.13 CPython
# workers (here) and Pyodide's compileall (argparse, typing, inspect, weakref are loaded) do.
class HelpFormatter:
    class _Section:
        pass
