#!/usr/bin/env python3
"""The yardstick for precompyle's worker: a minimal JSON persistent worker in
Python that calls py_compile for each request, as a Python precompiler
would. Singleplex; reads requests whether Bazel separates them with
newlines (5+) or not (4.x). Without --persistent_worker, compiles its
arguments once.
"""
import json
import os
import py_compile
import sys
import traceback


def expand(args):
    out = []
    for arg in args:
        if arg.startswith("@"):
            with open(arg[1:]) as f:
                out.extend(expand(f.read().splitlines()))
        else:
            out.append(arg)
    return out


def compile_all(args):
    args = expand(args)
    mode, optimize, srcs, names, pycs = "TIMESTAMP", -1, [], [], []
    pairs = iter(args)
    for flag in pairs:
        if flag == "--persistent_worker":
            continue
        value = next(pairs)
        if flag == "--invalidation_mode":
            mode = value
        elif flag == "--optimize":
            optimize = int(value)
        elif flag == "--src":
            srcs.append(value)
        elif flag == "--src_name":
            names.append(value)
        elif flag == "--pyc":
            pycs.append(value)
    for src, name, pyc in zip(srcs, names, pycs):
        py_compile.compile(src, pyc, dfile=name, doraise=True, optimize=optimize,
                           invalidation_mode=py_compile.PycInvalidationMode[mode.upper()])


def requests(fd):
    # os.read returns what has arrived: Bazel 4 ends a request without a
    # newline and waits for its response.
    decoder, buffer = json.JSONDecoder(), ""
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return
        buffer += chunk.decode()
        while True:
            buffer = buffer.lstrip()
            try:
                value, end = decoder.raw_decode(buffer)
            except ValueError:
                break
            buffer = buffer[end:]
            yield value


def serve():
    for request in requests(sys.stdin.fileno()):
        if request.get("cancel"):
            continue
        try:
            compile_all(request.get("arguments", []))
            response = {"exitCode": 0, "output": ""}
        except Exception:
            response = {"exitCode": 1, "output": traceback.format_exc()}
        response["requestId"] = request.get("requestId", 0)
        sys.stdout.write(json.dumps(response) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    if "--persistent_worker" in sys.argv:
        serve()
    else:
        compile_all(sys.argv[1:])
