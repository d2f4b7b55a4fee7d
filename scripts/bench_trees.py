"""scripts/bench.py's trees: the corpus, its five-fold copy, the wheel tree (pinned wheels downloaded
once into the scratch dir), and serc's CLI installed into a venv there."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from bench_common import (
    QUICK_SUBSET,
    QUICK_WHEELS,
    SERC_CLI_VERSION,
    Tree,
    WHEELS,
    WHEEL_PLATFORM,
    X5_MIN_FILES,
    cannot_run,
    command_output,
    count_py,
    progress,
    remove_tree,
    shell,
)


# --- trees -------------------------------------------------------------------------------------------

def corpus_dirs(python: str) -> list[Path]:
    """python's stdlib and every site-packages outside it (pyenv keeps site-packages inside, Debian does not)."""
    probe = ("import json, site, sysconfig; p = sysconfig.get_paths(); "
             "print(json.dumps([p['stdlib'], *site.getsitepackages(), p['purelib'], p['platlib']]))")
    dirs: list[Path] = []
    for raw in json.loads(subprocess.run([python, "-c", probe], capture_output=True, text=True,
                                         check=True).stdout):
        path = Path(raw).resolve()
        if path.is_dir() and not any(path == d or d in path.parents for d in dirs):
            dirs = [d for d in dirs if path not in d.parents] + [path]
    return dirs


def prepare_corpus(dirs: list[Path], pristine: Path, quick: bool) -> Tree:
    """A copy of the corpus without its pycs (sources, data files and extension modules alike)."""
    remove_tree(pristine)
    if quick:
        pristine.mkdir(parents=True)
        shell("cp", "-a", "--", *(str(dirs[0] / name) for name in QUICK_SUBSET), str(pristine))
    elif len(dirs) == 1:
        shell("cp", "-a", "--", str(dirs[0]), str(pristine))
    else:
        pristine.mkdir(parents=True)
        for number, directory in enumerate(dirs):
            shell("cp", "-a", "--", str(directory), str(pristine / f"{number}-{directory.name}"))
    shell("find", str(pristine), "-name", "__pycache__", "-prune", "-exec", "rm", "-rf", "{}", "+")
    subset = f" (subset: {', '.join(QUICK_SUBSET)})" if quick else ""
    return Tree("corpus", pristine, count_py(pristine), f"{', '.join(map(str, dirs))}{subset}")


def prepare_multiple(corpus: Tree, pristine: Path, quick: bool) -> Tree:
    # --quick keeps five copies of its subset: a smoke test, not a 55,000-file run.
    copies = 5 if quick else max(5, math.ceil(X5_MIN_FILES / max(corpus.py_files, 1)))
    remove_tree(pristine)
    pristine.mkdir(parents=True)
    for number in range(1, copies + 1):
        shell("cp", "-al", "--", str(corpus.pristine), str(pristine / f"copy{number}"))
    return Tree("x5", pristine, count_py(pristine), f"the corpus x{copies}")


def canonical_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def cached_wheel(cache: Path, requirement: str) -> Path | None:
    name, version = requirement.split("==")
    for wheel in cache.glob("*.whl"):
        dist, wheel_version = wheel.name.split("-")[:2]
        if canonical_name(dist) == canonical_name(name) and wheel_version == version:
            return wheel
    return None


def download_wheels(python: str, cache: Path, requirements: list[str]) -> list[Path]:
    """The pinned wheels, from the cache or downloaded into it once."""
    cache.mkdir(parents=True, exist_ok=True)
    missing = [req for req in requirements if cached_wheel(cache, req) is None]
    if missing:
        progress(f"bench: pip download {' '.join(missing)} into {cache} ...")
        done = subprocess.run([python, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                               *WHEEL_PLATFORM, "-d", str(cache), *missing])
        if done.returncode != 0:
            cannot_run(f"bench: pip download failed (exit {done.returncode}); the wheels group needs PyPI")
    wheels = [cached_wheel(cache, req) for req in requirements]
    if None in wheels:
        cannot_run(f"bench: pip download left no wheel for {requirements[wheels.index(None)]} in {cache}")
    return wheels


def unpack_wheels(wheels: list[Path], pristine: Path) -> dict[str, int]:
    """All wheels unpacked into one site-packages-like tree; .py files per wheel."""
    remove_tree(pristine)
    pristine.mkdir(parents=True)
    counts = {}
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(pristine)
            # zipfile stamps files with the current time; a source modified in
            # the current second is read again by precompyle (it waits for the
            # second to pass), so give them the archive's (old) times instead.
            for info in archive.infolist():
                stamp = time.mktime(info.date_time + (0, 0, -1))
                os.utime(pristine / info.filename, (stamp, stamp))
            counts[wheel.name] = sum(name.endswith(".py") for name in archive.namelist())
    return counts


def prepare_wheels(python: str, cache: Path, pristine: Path, quick: bool) -> Tree:
    requirements = [req for req in WHEELS if not quick or canonical_name(req.split("==")[0]) in QUICK_WHEELS]
    counts = unpack_wheels(download_wheels(python, cache, requirements), pristine)
    return Tree("wheels", pristine, count_py(pristine), f"{len(requirements)} wheels: {' '.join(requirements)}",
                {"requirements": requirements, "py_files_per_wheel": counts})


# --- the serc CLI -----------------------------------------------------------------------------------

def install_serc(python: str, scratch: Path) -> str:
    """serc's CLI from PyPI in a venv of our own (reused while it has the pinned version)."""
    venv = scratch / f"serc-{SERC_CLI_VERSION}"
    serc = venv / "bin" / "serc"
    if serc.exists() and command_output([str(serc), "--version"]) == f"serc {SERC_CLI_VERSION}":
        return str(serc)
    remove_tree(venv)
    progress(f"bench: installing serc=={SERC_CLI_VERSION} into {venv} ...")
    pip_args = ["install", "-q", "--only-binary=:all:", f"serc=={SERC_CLI_VERSION}"]
    if subprocess.run([python, "-m", "venv", str(venv)], capture_output=True).returncode == 0:
        done = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", *pip_args])
    else:
        # No venv module (Debian without python3-venv): --target needs neither
        # venv nor a writable interpreter, and puts the CLI in bin/ all the same.
        remove_tree(venv)
        done = subprocess.run([python, "-m", "pip", *pip_args, "--target", str(venv)])
    if done.returncode != 0 or not serc.exists():
        cannot_run(f"bench: could not install serc=={SERC_CLI_VERSION} into {venv}; set PRECOMPYLE_BENCH_SERC")
    return str(serc)
