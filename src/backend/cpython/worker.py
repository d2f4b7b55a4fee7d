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
# 4. Before 3.13, one-character strings U+0080-U+00FF are process-wide
#    singletons that stay interned once an identifier made them so (`ä = 1`),
#    and marshal then writes an equal string constant of a later file as
#    interned (found in html/entities.py, test_string_literals.py, idna's
#    uts46data.py after test_unicode_identifiers.py). A worker retires
#    after a file with such a name (RETIRE).
# Nothing else may change the state: no class, closure or lambda in this
# file (their qualnames would be interned here but not in py_compile).
# 3.8-3.10 write a marshal reference for an interned string used once in a
# file exactly when something else in the process holds that string, so
# every name this file introduces is one no real code uses: `_pcw_…`
# (measured: with plain names, `payload`, `source`, … changed 6-7 of 60
# stdlib files against a fresh py_compile).
#
import marshal
import os
import sys

# Warnings raised while compiling (a DeprecationWarning from constant
# folding, `~True` on 3.12) are attributed to the module calling compile():
# as `python -c` that would be __main__, whose DeprecationWarnings Python
# shows by default. py_compile calls it from importlib, where they are
# ignored: so must we.
__name__ = "_pcw_worker"

_pcw_OK = 0
_pcw_COMPILE_ERROR = 1
_pcw_MARSHAL_ERROR = 2
_pcw_READY = 3
_pcw_REDO = 4
_pcw_RETIRE = 0x80
_pcw_READY_MARKER = b"\0precompyle-worker\0"

_pcw_REQUEST_HEADER = 32


def _pcw_take_protocol_fds():
    """Move the protocol pipes off fds 0 and 1.

    Stray writes to fd 1 (a print in sitecustomize, a C library) then land on
    stderr instead of corrupting frames, and nothing can read our requests.
    """
    _pcw_requests = os.dup(0)
    _pcw_responses = os.dup(1)
    _pcw_devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(_pcw_devnull, 0)
    os.close(_pcw_devnull)
    os.dup2(2, 1)
    # Warnings go to stderr, which workers share: written in pieces (the C
    # fallback of `warnings` writes file, line and message separately), two
    # workers' warnings would mix within a line. Buffered here and flushed
    # after each file, each file's warnings leave in one write.
    sys.stderr = open(2, "w", 1 << 16, sys.stderr.encoding, sys.stderr.errors, closefd=False)
    sys.stdout = sys.stderr
    # A request (header, file name, source) arrives in one writev(2); a
    # 64 KiB buffer takes all of it in one read(2) for ~97% of sources.
    return open(_pcw_requests, "rb", 1 << 16), open(_pcw_responses, "wb")


def _pcw_pycompile_message(_pcw_err, _pcw_filename):
    """The text compileall prints after `*** ` for this PyCompileError.

    Mirrors py_compile.PyCompileError.__init__ (unchanged 3.7-3.14), then
    compileall's re-encoding for a UTF-8 stdout.
    """
    if type(_pcw_err) is SyntaxError:
        import traceback

        _pcw_text = "".join(traceback.format_exception_only(SyntaxError, _pcw_err))
        _pcw_msg = _pcw_text.replace('File "<string>"', 'File "%s"' % _pcw_filename)
    else:
        _pcw_msg = "Sorry: %s: %s" % (type(_pcw_err).__name__, _pcw_err)
    return _pcw_msg.encode("utf-8", "backslashreplace")


def _pcw_compile_one(_pcw_source, _pcw_filename, _pcw_optimize, _pcw_distrust):
    """What py_compile.compile does between reading the source and writing.

    `distrust(code)` true means this process's history may have changed the
    bytes: answer REDO instead.
    """
    if sys.version_info < (3, 11) and hasattr(sys, "_clear_type_cache"):  # not PyPy
        # A name held only by the type attribute cache (e.g. "_m" from
        # types.py) gets a marshal reference or not depending on which cache
        # slots the process happened to reuse (ASLR); drop them all so the
        # bytes are the same in every worker and every run.
        sys._clear_type_cache()
    try:
        _pcw_code = compile(_pcw_source, _pcw_filename, "exec", dont_inherit=True, optimize=_pcw_optimize)
    except Exception as _pcw_err:  # py_compile wraps every Exception
        return _pcw_COMPILE_ERROR, _pcw_pycompile_message(_pcw_err, _pcw_filename)
    if _pcw_distrust is not None and _pcw_distrust(_pcw_code):
        return _pcw_REDO, b""
    try:
        return _pcw_OK, marshal.dumps(_pcw_code)
    except Exception as _pcw_err:
        _pcw_text = "%s: %s" % (type(_pcw_err).__name__, _pcw_err)
        return _pcw_MARSHAL_ERROR, _pcw_text.encode("utf-8", "backslashreplace")


def _pcw_is_immortal(_pcw_obj):
    if hasattr(sys, "_is_immortal"):  # 3.14+
        return sys._is_immortal(_pcw_obj)
    # 3.13 reports immortal objects with refcount 2**32 - 1 on 64-bit builds
    # (2**30 - 1 on 32-bit); no live mortal string comes near 2**29.
    return sys.getrefcount(_pcw_obj) >= 1 << 29


def _pcw_shared_frozenset_may_differ(_pcw_code):
    """Whether `code` has an equal frozenset constant in two places with a
    string in it that is immortal here but need not be in a fresh process.

    Fresh, equal frozensets of several code objects are one shared object
    (written once, then referenced); that sharing is lost when one of their
    strings was made immortal by an identifier of an earlier file. A string
    that is a name in this file was made immortal by this file itself, as it
    would be in a fresh process; other immortal strings may come from loaded
    modules (then the redo is wasted, not wrong).
    """
    _pcw_names, _pcw_constants = _pcw_names_and_constants(_pcw_code)
    _pcw_counts = {}
    for _pcw_obj in _pcw_constants:
        if type(_pcw_obj) is frozenset:
            _pcw_counts[_pcw_obj] = _pcw_counts.get(_pcw_obj, 0) + 1
    for _pcw_value, _pcw_count in _pcw_counts.items():
        if _pcw_count < 2:
            continue
        _pcw_items = list(_pcw_value)
        while _pcw_items:
            _pcw_item = _pcw_items.pop()
            if type(_pcw_item) is tuple:
                _pcw_items.extend(_pcw_item)
            elif type(_pcw_item) is str and _pcw_item not in _pcw_names and _pcw_is_immortal(_pcw_item):
                return True
    return False


def _pcw_names_and_constants(_pcw_code):
    """Every name the code objects in `code` use, and their constants other
    than code objects, tuples opened (frozensets are kept whole)."""
    _pcw_code_type = type(_pcw_code)
    _pcw_names = set()
    _pcw_constants = []
    _pcw_pending = [_pcw_code]
    while _pcw_pending:
        _pcw_obj = _pcw_pending.pop()
        if type(_pcw_obj) is _pcw_code_type:
            _pcw_names.update(_pcw_obj.co_names, _pcw_obj.co_varnames, _pcw_obj.co_cellvars, _pcw_obj.co_freevars)
            _pcw_pending.extend(_pcw_obj.co_consts)
        elif type(_pcw_obj) is tuple:
            _pcw_pending.extend(_pcw_obj)
        else:
            _pcw_constants.append(_pcw_obj)
    return _pcw_names, _pcw_constants


def _pcw_latin1_names(_pcw_code):
    """Whether `code` uses a one-character U+0080-U+00FF string as a name."""
    for _pcw_name in _pcw_names_and_constants(_pcw_code)[0]:
        if len(_pcw_name) == 1 and 0x80 <= ord(_pcw_name) <= 0xFF:
            return True
    return False


def _pcw_send(_pcw_responses, _pcw_job, _pcw_status, _pcw_payload, _pcw_marker=b""):
    # One bytes object, so one write(2) whatever its size (two writes would
    # cost a second call whenever the payload outgrows the buffer); copying
    # the payload costs less than that call.
    _pcw_head = _pcw_marker + _pcw_job.to_bytes(8, "little") + bytes((_pcw_status,))
    _pcw_responses.write(_pcw_head + len(_pcw_payload).to_bytes(8, "little") + _pcw_payload)
    _pcw_responses.flush()


def _pcw_become_py_compile_main():
    """Load what `python -m py_compile FILE` has loaded when it compiles.

    Running its main() with "-" (file names from stdin, which is /dev/null by
    now) executes the same imports and argparse set-up without compiling.
    """
    import runpy  # noqa: F401 (`python -m` imports it)
    import py_compile

    _pcw_argv = sys.argv
    sys.argv = [py_compile.__file__, "-"]
    try:
        py_compile.main()
    except BaseException:  # argparse exits through SystemExit
        pass
    sys.argv = _pcw_argv


def _pcw_serve(_pcw_requests, _pcw_responses, _pcw_state_matters):
    _pcw_loaded = len(sys.modules)
    _pcw_distrust = None  # the first job runs in the fresh state: trust it
    _pcw_latin1_matters = hasattr(sys, "getrefcount") and sys.version_info < (3, 13)
    while True:
        _pcw_head = _pcw_requests.read(_pcw_REQUEST_HEADER)
        if len(_pcw_head) < _pcw_REQUEST_HEADER:
            return  # the pool closed our stdin: normal shutdown
        _pcw_job = int.from_bytes(_pcw_head[0:8], "little")
        _pcw_optimize = int.from_bytes(_pcw_head[8:16], "little", signed=True)
        _pcw_filename = os.fsdecode(_pcw_requests.read(int.from_bytes(_pcw_head[16:24], "little")))
        _pcw_source = _pcw_requests.read(int.from_bytes(_pcw_head[24:32], "little"))
        if _pcw_job >> 63:  # test hook: a file that takes `filename` seconds
            import time

            time.sleep(float(_pcw_filename))
        _pcw_status, _pcw_payload = _pcw_compile_one(_pcw_source, _pcw_filename, _pcw_optimize, _pcw_distrust)
        sys.stderr.flush()
        if _pcw_latin1_matters and _pcw_status == _pcw_OK and not _pcw_source.isascii():
            # An identifier outside ASCII needs a non-ASCII source.
            if _pcw_latin1_names(marshal.loads(_pcw_payload)):
                _pcw_send(_pcw_responses, _pcw_job, _pcw_status | _pcw_RETIRE, _pcw_payload)
                return
        if _pcw_state_matters:
            _pcw_distrust = _pcw_shared_frozenset_may_differ
            if _pcw_status == _pcw_REDO or len(sys.modules) != _pcw_loaded:
                _pcw_send(_pcw_responses, _pcw_job, _pcw_status | _pcw_RETIRE, _pcw_payload)
                return
        _pcw_send(_pcw_responses, _pcw_job, _pcw_status, _pcw_payload)


def _pcw_main():
    # Ctrl-C reaches the whole process group; the pool decides when we stop
    # (it closes our stdin), so a KeyboardInterrupt traceback here is noise.
    import _signal

    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
    if sys.path and sys.path[0] == "":
        del sys.path[0]  # never import from the cwd of the run
    _pcw_requests, _pcw_responses = _pcw_take_protocol_fds()
    # CPython's refcounts and interning; PyPy has neither sys.getrefcount nor
    # a marshal that depends on them.
    _pcw_state_matters = hasattr(sys, "getrefcount") and (sys.version_info >= (3, 13) or sys.version_info < (3, 11))
    if _pcw_state_matters:
        _pcw_become_py_compile_main()
    _pcw_version = "%d.%d.%d %d" % (sys.version_info[:3] + (os.getpid(),))
    try:
        _pcw_send(_pcw_responses, 0, _pcw_READY, _pcw_version.encode("ascii"), _pcw_READY_MARKER)
        _pcw_serve(_pcw_requests, _pcw_responses, _pcw_state_matters)
    except BrokenPipeError:
        pass  # the pool went away; nobody is left to answer
    try:
        sys.stderr.flush()
    except OSError:
        pass
    os._exit(0)


_pcw_main()
