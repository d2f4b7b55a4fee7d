"""One PyCompile action per source, with rules_python's precompiler command
line, runnable by a JSON persistent worker (singleplex or multiplex) or as a
plain process.

The compiler is `--define=precompiler=precompyle` (default) or
`--define=precompiler=python`: tools/py_worker.py (run by the `python3` on
PATH), for timing precompyle against a Python worker that calls py_compile.
"""

def _pyc_files_impl(ctx):
    python_worker = ctx.var.get("precompiler", "precompyle") == "python"
    tool = ctx.executable._py_worker if python_worker else ctx.executable._precompyle
    outputs = []
    for src in ctx.files.srcs:
        # tree/pkg/mod.py -> tree/pkg/mod.pyc next to it in bazel-bin.
        pyc = ctx.actions.declare_file(src.basename[:-len(".py")] + ".pyc", sibling = src)
        args = ctx.actions.args()
        args.add("--invalidation_mode", ctx.attr.invalidation_mode)
        args.add("--optimize", "0")
        args.add("--python_version", ctx.attr.python_version)
        args.add("--src", src)
        args.add("--src_name", src.short_path)
        args.add("--pyc", pyc)

        # Workers get their arguments from a flagfile, one per line.
        args.use_param_file("@%s", use_always = True)
        args.set_param_file_format("multiline")
        ctx.actions.run(
            executable = tool,
            arguments = [args],
            inputs = [src],
            outputs = [pyc],
            mnemonic = "PyCompile",
            progress_message = "Compiling %s" % src.short_path,
            execution_requirements = {
                "supports-workers": "1",
                "supports-multiplex-workers": "0" if python_worker else "1",
                "requires-worker-protocol": "json",
            },
            use_default_shell_env = True,
        )
        outputs.append(pyc)
    return [DefaultInfo(files = depset(outputs))]

pyc_files = rule(
    implementation = _pyc_files_impl,
    attrs = {
        "srcs": attr.label_list(allow_files = [".py"]),
        "invalidation_mode": attr.string(default = "checked_hash"),
        "python_version": attr.string(mandatory = True),
        "_precompyle": attr.label(
            default = "//tools:precompyle",
            executable = True,
            cfg = "exec",
            allow_single_file = True,
        ),
        "_py_worker": attr.label(
            default = "//tools:py_worker.py",
            executable = True,
            cfg = "exec",
            allow_single_file = True,
        ),
    },
)
