// Run a Python script (or -m module) under Pyodide's CPython, like `python SCRIPT ARGS...`.
//
// Usage: node pyodide-run.mjs [--pyodide DIR] [--mount DIR]... (SCRIPT | -m MODULE) [ARGS...]
//   --pyodide DIR  the installed `pyodide` npm package (default: $PYODIDE_DIR, else the
//                  package resolved from this file's location)
//   --mount DIR    host directory to mount via NODEFS at the same absolute path, so paths
//                  (co_filename, pycache prefixes) are the same as for a native interpreter;
//                  repeatable. The script's own directory is always mounted.
// Environment variables are passed on to Python (PYTHONPYCACHEPREFIX works, as for CPython),
// except those that would point Python at the host's own installation.
// Exit status: the script's (SystemExit code; 1 on an uncaught exception).
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

function parseArgs(argv) {
    const opts = { pyodideDir: process.env.PYODIDE_DIR || null, mounts: [] };
    let i = 0;
    for (; i < argv.length; i++) {
        const a = argv[i];
        if (a === "--pyodide") opts.pyodideDir = argv[++i];
        else if (a === "--mount") opts.mounts.push(path.resolve(argv[++i]));
        else break;
    }
    if (argv[i] === "-m") {
        opts.module = argv[i + 1];
        opts.argv = [opts.module, ...argv.slice(i + 2)];
    } else {
        opts.script = argv[i] && path.resolve(argv[i]);
        opts.argv = [opts.script, ...argv.slice(i + 1)];
        if (opts.script) opts.mounts.push(path.dirname(opts.script));
    }
    if (!opts.module && !opts.script) {
        console.error("usage: pyodide-run.mjs [--pyodide DIR] [--mount DIR]... (SCRIPT | -m MODULE) [ARGS...]");
        process.exit(2);
    }
    return opts;
}

// Mount each host dir once; a dir inside an already mounted one needs no mount of its own
// (NODEFS shows the whole subtree) and mounting it again would fail.
function outermost(dirs) {
    const sorted = [...new Set(dirs)].sort();
    return sorted.filter((d, i) => !sorted.slice(0, i).some((p) => d === p || d.startsWith(p + "/")));
}

// Host variables such as PYTHONHOME or HOME describe the host's Python, not Pyodide's.
function pythonEnv() {
    const skip = new Set(["HOME", "PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONUSERBASE"]);
    const env = { HOME: "/home/pyodide" };
    for (const [k, v] of Object.entries(process.env)) if (!skip.has(k)) env[k] = v;
    return env;
}

const RUN = `
import os, runpy, sys, traceback
def _run(argv, module, cwd):
    sys.argv = list(argv)
    try:
        os.chdir(cwd)
    except OSError:
        pass
    try:
        if module:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        else:
            sys.path.insert(0, os.path.dirname(argv[0]))
            runpy.run_path(argv[0], run_name="__main__")
        rc = 0
    except SystemExit as e:
        if e.code is None:
            rc = 0
        elif isinstance(e.code, int):
            rc = e.code
        else:
            print(e.code, file=sys.stderr)
            rc = 1
    except BaseException:
        traceback.print_exc()
        rc = 1
    sys.stdout.flush()
    sys.stderr.flush()
    return rc
_run
`;

async function main() {
    const opts = parseArgs(process.argv.slice(2));
    const entry = opts.pyodideDir
        ? pathToFileURL(path.join(opts.pyodideDir, "pyodide.mjs")).href
        : "pyodide";
    const { loadPyodide } = await import(entry);
    // Unbuffered byte writes keep Python's output exact and in order with the exit.
    const write = (fd) => ({ write: (buf) => fs.writeSync(fd, buf) });
    const py = await loadPyodide({ env: pythonEnv() });
    py.setStdout(write(1));
    py.setStderr(write(2));
    for (const dir of outermost(opts.mounts)) {
        py.FS.mkdirTree(dir);
        py.FS.mount(py.FS.filesystems.NODEFS, { root: dir }, dir);
    }
    const run = py.runPython(RUN);
    const rc = run(py.toPy(opts.argv), opts.module || null, process.cwd());
    process.exitCode = rc & 0xff;
}

main().catch((err) => {
    console.error(err);
    process.exitCode = 1;
});
