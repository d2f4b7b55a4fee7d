"""Where the installed `precompyle` binary is.

pip puts a wheel's binaries in the scripts directory of the scheme it
installs into, and the package itself in that scheme's purelib/platlib. So
the binary is looked for, in order:

1. the scripts directory of the running interpreter's default scheme (a venv,
   a system or a conda install);
2. the user scheme's scripts directory (`pip install --user`);
3. the scripts directory of the tree this package was installed into, found
   from this file's own location: `pip install --target DIR` puts the package
   in DIR and the binary in DIR/bin; `pip install --prefix P` puts it in
   P/lib/pythonX.Y/site-packages and the binary in P/bin.
"""

import os
import sys
import sysconfig

_EXE = "precompyle" + (sysconfig.get_config_var("EXE") or "")


def _user_scripts():
    scheme = {"nt": "nt_user", "posix": "posix_user"}.get(os.name)
    if sys.platform == "darwin" and getattr(sys, "_framework", None):
        scheme = "osx_framework_user"
    if scheme is None or scheme not in sysconfig.get_scheme_names():
        return None
    return sysconfig.get_path("scripts", scheme=scheme)


def _installed_alongside():
    """Scripts directories implied by where this package lives."""
    package = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(package)  # the directory pip installed into
    scripts = "Scripts" if os.name == "nt" else "bin"
    # --target DIR: DIR/precompyle and DIR/bin.
    yield os.path.join(root, scripts)
    # --prefix P (or --root): P/lib/pythonX.Y/site-packages/precompyle, P/bin;
    # on Windows P/Lib/site-packages/precompyle, P/Scripts.
    depth = 2 if os.name == "nt" else 3
    prefix = root
    for _ in range(depth):
        prefix = os.path.dirname(prefix)
    yield os.path.join(prefix, scripts)


def candidates():
    """Every place the binary may be, most likely first."""
    yield sysconfig.get_path("scripts")
    user = _user_scripts()
    if user:
        yield user
    yield from _installed_alongside()


def find_precompyle_bin():
    """The path of the installed precompyle binary.

    Raises FileNotFoundError naming every directory searched.
    """
    searched = []
    for directory in candidates():
        path = os.path.join(directory, _EXE)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
        searched.append(directory)
    raise FileNotFoundError(
        "the precompyle binary is not in any of: " + ", ".join(searched)
    )
