# precompyle compile worker, run as `python -c <this file>` by the Rust pool
# (src/backend/cpython/). Keep it runnable by CPython 3.7+.
#
# On 3.13+ marshal output depends on the compiling process's state
# (pyc-format.md §1.6); we match a fresh `python -m py_compile FILE`, found
# by measurement (see the pool's report) to depend on three things:
# 1. Loaded modules: their interned strings (e.g. the qualname
#    "HelpFormatter._Section" once argparse is loaded) change how a source
#    defining the same nested class is written. The worker loads what that
#    process has loaded (become_py_compile_main).
# 2. Imports done by a job (a codec for a coding cookie, unicodedata for
#    \N{...}): the worker answers, then retires (RETIRE).
# 3. Earlier compiles: every identifier the parser sees becomes immortal, and
#    an equal frozenset constant in several code objects is then no longer
#    shared when a string in it was an identifier of an earlier file. A worker
#    that has compiled before asks for such a file to be redone by a fresh
#    worker (REDO) instead of answering; about 0.1-0.2% of files.
# Nothing else may change the state: no class, closure or lambda in this
# file (their qualnames would be interned here but not in py_compile).
#
import marshal
import os
import sys

OK = 0
COMPILE_ERROR = 1
MARSHAL_ERROR = 2
READY = 3
REDO = 4
RETIRE = 0x80
READY_MARKER = b"\0precompyle-worker\0"

REQUEST_HEADER = 32


def take_protocol_fds():
    """Move the protocol pipes off fds 0 and 1.

    Stray writes to fd 1 (a print in sitecustomize, a C library) then land on
    stderr instead of corrupting frames, and nothing can read our requests.
    """
    requests = os.dup(0)
    responses = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return open(requests, "rb"), open(responses, "wb")


def pycompile_message(err, filename):
    """The text compileall prints after `*** ` for this PyCompileError.

    Mirrors py_compile.PyCompileError.__init__ (unchanged 3.7-3.14), then
    compileall's re-encoding for a UTF-8 stdout.
    """
    if type(err) is SyntaxError:
        import traceback

        text = "".join(traceback.format_exception_only(SyntaxError, err))
        msg = text.replace('File "<string>"', 'File "%s"' % filename)
    else:
        msg = "Sorry: %s: %s" % (type(err).__name__, err)
    return msg.encode("utf-8", "backslashreplace")


def compile_one(source, filename, optimize, distrust):
    """What py_compile.compile does between reading the source and writing.

    `distrust(code)` true means this process's history may have changed the
    bytes: answer REDO instead.
    """
    try:
        code = compile(source, filename, "exec", dont_inherit=True, optimize=optimize)
    except Exception as err:  # py_compile wraps every Exception
        return COMPILE_ERROR, pycompile_message(err, filename)
    if distrust is not None and distrust(code):
        return REDO, b""
    try:
        return OK, marshal.dumps(code)
    except Exception as err:
        text = "%s: %s" % (type(err).__name__, err)
        return MARSHAL_ERROR, text.encode("utf-8", "backslashreplace")


def is_immortal(obj):
    if hasattr(sys, "_is_immortal"):  # 3.14+
        return sys._is_immortal(obj)
    # 3.13 reports immortal objects with refcount 2**32 - 1 on 64-bit builds
    # (2**30 - 1 on 32-bit); no live mortal string comes near 2**29.
    return sys.getrefcount(obj) >= 1 << 29


def shared_frozenset_may_differ(code):
    """Whether `code` has an equal frozenset constant in two places with a
    string in it that is immortal here but need not be in a fresh process.

    Fresh, equal frozensets of several code objects are one shared object
    (written once, then referenced); that sharing is lost when one of their
    strings was made immortal by an identifier of an earlier file. A string
    that is a name in this file was made immortal by this file itself, as it
    would be in a fresh process; other immortal strings may come from loaded
    modules (then the redo is wasted, not wrong).
    """
    code_type = type(code)
    names = set()
    counts = {}
    pending = [code]
    while pending:
        obj = pending.pop()
        if type(obj) is code_type:
            names.update(obj.co_names, obj.co_varnames, obj.co_cellvars, obj.co_freevars)
            pending.extend(obj.co_consts)
        elif type(obj) is tuple:
            pending.extend(obj)
        elif type(obj) is frozenset:
            counts[obj] = counts.get(obj, 0) + 1
    for value, count in counts.items():
        if count < 2:
            continue
        items = list(value)
        while items:
            item = items.pop()
            if type(item) is tuple:
                items.extend(item)
            elif type(item) is str and item not in names and is_immortal(item):
                return True
    return False


def send(responses, job, status, payload, marker=b""):
    head = marker + job.to_bytes(8, "little") + bytes((status,))
    responses.write(head + len(payload).to_bytes(8, "little"))
    responses.write(payload)
    responses.flush()


def become_py_compile_main():
    """Load what `python -m py_compile FILE` has loaded when it compiles.

    Running its main() with "-" (file names from stdin, which is /dev/null by
    now) executes the same imports and argparse set-up without compiling.
    """
    import runpy  # noqa: F401 (`python -m` imports it)
    import py_compile

    argv = sys.argv
    sys.argv = [py_compile.__file__, "-"]
    try:
        py_compile.main()
    except BaseException:  # argparse exits through SystemExit
        pass
    sys.argv = argv


def serve(requests, responses, state_matters):
    loaded = len(sys.modules)
    distrust = None  # the first job runs in the fresh state: trust it
    while True:
        head = requests.read(REQUEST_HEADER)
        if len(head) < REQUEST_HEADER:
            return  # the pool closed our stdin: normal shutdown
        job = int.from_bytes(head[0:8], "little")
        optimize = int.from_bytes(head[8:16], "little", signed=True)
        filename = os.fsdecode(requests.read(int.from_bytes(head[16:24], "little")))
        source = requests.read(int.from_bytes(head[24:32], "little"))
        if job >> 63:  # test hook: a file that takes `filename` seconds
            import time

            time.sleep(float(filename))
        status, payload = compile_one(source, filename, optimize, distrust)
        if state_matters:
            distrust = shared_frozenset_may_differ
            if status == REDO or len(sys.modules) != loaded:
                send(responses, job, status | RETIRE, payload)
                return
        send(responses, job, status, payload)


def main():
    # Ctrl-C reaches the whole process group; the pool decides when we stop
    # (it closes our stdin), so a KeyboardInterrupt traceback here is noise.
    import _signal

    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
    if sys.path and sys.path[0] == "":
        del sys.path[0]  # never import from the cwd of the run
    requests, responses = take_protocol_fds()
    state_matters = sys.version_info >= (3, 13)
    if state_matters:
        become_py_compile_main()
    version = "%d.%d.%d %d" % (sys.version_info[:3] + (os.getpid(),))
    try:
        send(responses, 0, READY, version.encode("ascii"), READY_MARKER)
        serve(requests, responses, state_matters)
    except BrokenPipeError:
        pass  # the pool went away; nobody is left to answer
    os._exit(0)


main()
