# precompyle compile worker, run as `python -c <this file>` by the Rust pool
# (src/backend/cpython/). Keep it importable by CPython 3.7+ and keep imports
# to what the interpreter has loaded at start-up anyway: on 3.13+ the state
# of the process can change the marshal bytes.
#
# Protocol (all integers little-endian), over the stdin/stdout pipes the pool
# gave us; everything else this process writes goes to stderr.
#   request:  job u64 | optimize i64 | len(filename) u64 | len(source) u64
#             | filename bytes | source bytes
#   response: job u64 | status u8 | len(payload) u64 | payload
# Status READY (job 0) is sent once at start-up, after READY_MARKER (the pool
# skips anything a .pth file or sitecustomize printed to stdout before this
# script ran); its payload is "major.minor.micro pid".

import marshal
import os
import sys

OK = 0
COMPILE_ERROR = 1
MARSHAL_ERROR = 2
READY = 3
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


def compile_one(source, filename, optimize):
    """What py_compile.compile does between reading the source and writing."""
    try:
        code = compile(source, filename, "exec", dont_inherit=True, optimize=optimize)
    except Exception as err:  # py_compile wraps every Exception
        return COMPILE_ERROR, pycompile_message(err, filename)
    try:
        return OK, marshal.dumps(code)
    except Exception as err:
        text = "%s: %s" % (type(err).__name__, err)
        return MARSHAL_ERROR, text.encode("utf-8", "backslashreplace")


def send(responses, job, status, payload, marker=b""):
    head = marker + job.to_bytes(8, "little") + bytes((status,))
    responses.write(head + len(payload).to_bytes(8, "little"))
    responses.write(payload)
    responses.flush()


def serve(requests, responses):
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
        status, payload = compile_one(source, filename, optimize)
        send(responses, job, status, payload)


def main():
    # Ctrl-C reaches the whole process group; the pool decides when we stop
    # (it closes our stdin), so a KeyboardInterrupt traceback here is noise.
    import _signal

    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
    if sys.path and sys.path[0] == "":
        del sys.path[0]  # never import from the cwd of the run
    requests, responses = take_protocol_fds()
    version = "%d.%d.%d %d" % (sys.version_info[:3] + (os.getpid(),))
    try:
        send(responses, 0, READY, version.encode("ascii"), READY_MARKER)
        serve(requests, responses)
    except BrokenPipeError:
        pass  # the pool went away; nobody is left to answer
    os._exit(0)


main()
