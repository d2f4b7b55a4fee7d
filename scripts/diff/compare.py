"""Compare two trees of .pyc files written for the same Python version.

Usage: compare.py [--names A,B] [--json OUT] ROOT_A ROOT_B

Pairs the pycs of ROOT_A and ROOT_B by relative path and reports, per pair: whether
the bytes are identical (else the first differing offset), whether the code objects
are equal after marshal.loads (`==`), and which code-object fields differ, recursing
into nested code objects in co_consts. Fields are read from the marshal stream itself,
so fields that Python does not expose (co_localsplusnames, co_localspluskinds) are
compared too. When all fields are equal but the bytes are not, the first difference
in the marshal encoding (reference flags, interned strings) is described.

Must run under the interpreter whose pycs these are (marshal formats differ between
versions); needs Python >= 3.12 and nothing else. Prints a one-line summary; writes
the per-file details as JSON to OUT. Exit status 0 unless it could not run.
"""

import argparse
import importlib.util
import json
import marshal
import os
import re
import struct
import sys

HEADER = 16
# The order in which marshal writes a code object's fields (CPython 3.11 to 3.14).
CODE_FIELDS = (
    "co_argcount", "co_posonlyargcount", "co_kwonlyargcount", "co_stacksize", "co_flags",
    "co_code", "co_consts", "co_names", "co_localsplusnames", "co_localspluskinds",
    "co_filename", "co_name", "co_qualname", "co_firstlineno", "co_linetable",
    "co_exceptiontable",
)
LONG_FIELDS = {"co_argcount", "co_posonlyargcount", "co_kwonlyargcount", "co_stacksize",
               "co_flags", "co_firstlineno"}
FLAG_REF = 0x80
STR_TYPES = "utaAzZ"  # UTF-8 (u, t = interned) and ASCII (a, A, short z, Z) strings
SINGLETONS = {"0": "NULL", "N": "None", "F": "False", "T": "True", ".": "Ellipsis",
              "S": "StopIteration"}
MAX_PATHS = 20


class LayoutError(Exception):
    """The code-object layout in this Python's marshal is not CODE_FIELDS."""


class Code(tuple):
    """A code object's marshalled fields, in CODE_FIELDS order."""

    def field(self, name):
        return self[CODE_FIELDS.index(name)]


class MarshalReader:
    """Decodes a marshal stream into plain values that keep what matters for equality
    (a str is a str, whether interned or short) and records each item's type byte, so
    two streams can be compared both by content and by encoding."""

    def __init__(self, data):
        self.data, self.pos, self.refs, self.tokens = data, 0, [], []

    def take(self, n):
        chunk = self.data[self.pos:self.pos + n]
        if len(chunk) != n:
            raise ValueError(f"marshal data truncated at {self.pos}")
        self.pos += n
        return chunk

    def long(self):
        return struct.unpack("<i", self.take(4))[0]

    def load(self):
        start, byte = self.pos, self.take(1)[0]
        kind = chr(byte & ~FLAG_REF)
        token = len(self.tokens)
        self.tokens.append(None)
        slot = None
        if byte & FLAG_REF:
            slot = len(self.refs)
            self.refs.append(None)
        value = self.value(kind)
        if slot is not None:
            self.refs[slot] = value
        self.tokens[token] = (start, byte, value)
        return value

    def value(self, kind):
        if kind in SINGLETONS:
            return (SINGLETONS[kind],)
        if kind == "r":
            return self.refs[self.long()]
        if kind == "i":
            return ("int", self.long())
        if kind == "l":
            n = self.long()
            digits = struct.unpack(f"<{abs(n)}H", self.take(2 * abs(n)))
            mag = sum(d << (15 * i) for i, d in enumerate(digits))
            return ("int", -mag if n < 0 else mag)
        if kind == "g":
            return ("float", self.take(8))
        if kind == "y":
            return ("complex", self.take(16))
        if kind == "s":
            return ("bytes", self.take(self.long()))
        if kind in STR_TYPES:
            size = self.take(1)[0] if kind in "zZ" else self.long()
            codec = "utf-8" if kind in "ut" else "latin-1"
            return ("str", self.take(size).decode(codec, "surrogatepass"))
        if kind in "()[<>":
            size = self.take(1)[0] if kind == ")" else self.long()
            items = tuple(self.load() for _ in range(size))
            if kind in "<>":  # the order of a set's items is no part of its value
                return ("set", frozenset(items))
            return ("list" if kind == "[" else "tuple", items)
        if kind == "{":
            return self.dict_items()
        if kind == ":":
            return ("slice", self.load(), self.load(), self.load())
        if kind == "c":
            return Code(self.long() if f in LONG_FIELDS else self.load() for f in CODE_FIELDS)
        raise ValueError(f"unknown marshal type {kind!r} at {self.pos - 1}")

    def dict_items(self):
        items = []
        while True:
            key = self.load()
            if key == ("NULL",):
                return ("dict", tuple(items))
            items.append((key, self.load()))


def code_consts(code):
    return [c for c in code.field("co_consts")[1] if isinstance(c, Code)]


def diff_code(a, b, out):
    """Append (path, field) for every field that differs, recursing into nested code
    objects paired by their position among the code constants."""
    where = a.field("co_qualname")[1]
    for name in CODE_FIELDS:
        fa, fb = a.field(name), b.field(name)
        if name == "co_consts":
            ca, cb = code_consts(a), code_consts(b)
            plain_a = [c for c in fa[1] if not isinstance(c, Code)]
            plain_b = [c for c in fb[1] if not isinstance(c, Code)]
            if len(ca) != len(cb) or plain_a != plain_b:
                out.append((where, name))
            for sub_a, sub_b in zip(ca, cb):
                diff_code(sub_a, sub_b, out)
        elif fa != fb:
            out.append((where, name))


def describe_token(token):
    _, byte, value = token
    ref = "+ref" if byte & FLAG_REF else ""
    shown = f"code {value.field('co_qualname')[1]}" if isinstance(value, Code) else repr(value)
    return f"{chr(byte & ~FLAG_REF)!r}{ref} {shown[:60]}"


def token_difference(ta, tb):
    ka, kb = ta[1] & ~FLAG_REF, tb[1] & ~FLAG_REF
    if ka == kb:
        return "reference flag"
    if chr(ka) == "r" or chr(kb) == "r":
        return "reference vs inline object"
    if chr(ka) in STR_TYPES and chr(kb) in STR_TYPES:
        return "string type (interned/short)"
    return "type code"


def encoding_difference(ra, rb):
    """Kinds of encoding difference between two streams that decode equal, with the first
    example of each. Items are compared pairwise while they sit at the same offsets: past
    a reference on one side and an inline copy on the other, the streams no longer align."""
    kinds = {}
    for ta, tb in zip(ra.tokens, rb.tokens):
        if ta[0] != tb[0]:
            break
        if ta[1] != tb[1]:
            kind = token_difference(ta, tb)
            if kind == "reference vs inline object" and kinds:
                break  # the back-reference to an object an earlier difference flagged
        elif ta[2] != tb[2]:
            kind = "set item order"  # the only place equal streams can hold other items
        else:
            continue
        kinds.setdefault(kind, f"byte {ta[0]}: {describe_token(ta)} vs {describe_token(tb)}")
    if not kinds:
        kinds["stream length"] = "one stream ends earlier"
    return " + ".join(sorted(kinds)), "; ".join(kinds[k] for k in sorted(kinds))


def check_layout(decoded, code):
    """Guards CODE_FIELDS against a marshal layout change in a newer Python."""
    expected = {"co_flags": code.co_flags, "co_firstlineno": code.co_firstlineno,
                "co_code": ("bytes", code.co_code), "co_qualname": ("str", code.co_qualname),
                "co_filename": ("str", code.co_filename)}
    if not isinstance(decoded, Code) or any(decoded.field(f) != v for f, v in expected.items()):
        raise LayoutError(f"marshal layout of code objects in Python {sys.version.split()[0]} is "
                          "not the one compare.py knows (CODE_FIELDS)")


def header_difference(a, b):
    names = (("magic", 0, 4), ("flags", 4, 8), ("mtime/hash", 8, 12), ("size/hash", 12, 16))
    return [name for name, lo, hi in names if a[lo:hi] != b[lo:hi]]


def compare_pair(a, b):
    """Per-file comparison record; None when the bytes are identical."""
    if importlib.util.MAGIC_NUMBER not in (a[:4], b[:4]):
        raise LayoutError(f"pycs with magic {a[:4]!r}, {b[:4]!r} are not for Python "
                          f"{sys.version.split()[0]} (magic {importlib.util.MAGIC_NUMBER!r})")
    if a == b:
        return None
    offset = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    rec = {"first_byte_offset": offset, "sizes": [len(a), len(b)],
           "header": header_difference(a, b)}
    try:
        code_a, code_b = marshal.loads(a[HEADER:]), marshal.loads(b[HEADER:])
        rec["eq"] = code_a == code_b
        ra, rb = MarshalReader(a[HEADER:]), MarshalReader(b[HEADER:])
        va, vb = ra.load(), rb.load()
        check_layout(va, code_a)
        check_layout(vb, code_b)
    except LayoutError:
        raise
    except Exception as exc:  # a broken pyc is a finding, not a crash
        rec.update(eq=False, error=f"{type(exc).__name__}: {exc}", fields=["unreadable"])
        return rec
    diffs = []
    diff_code(va, vb, diffs)
    rec["fields"] = sorted({field for _, field in diffs})
    rec["paths"] = [f"{where}: {field}" for where, field in diffs[:MAX_PATHS]]
    if not diffs and a[HEADER:] != b[HEADER:]:
        rec["marshal"], rec["marshal_detail"] = encoding_difference(ra, rb)
    return rec


def signature(rec):
    parts = []
    if rec["header"]:
        parts.append("header:" + ",".join(rec["header"]))
    if rec.get("fields"):
        parts.append("fields:" + ",".join(rec["fields"]))
    if "marshal" in rec:
        parts.append("marshal-only:" + rec["marshal"])
    return "; ".join(parts) or "bytes"


def pyc_files(root):
    found = set()
    for dirpath, _, files in os.walk(root):
        for name in files:
            if name.endswith(".pyc"):
                found.add(os.path.relpath(os.path.join(dirpath, name), root))
    return found


def source_of(root, rel):
    """The .py a pyc was compiled from: pycache_prefix mirrors the absolute source path
    (ROOT/abs/dir/name.TAG.pyc); otherwise it is DIR/__pycache__/name.TAG.pyc."""
    head, name = os.path.split(rel)
    source = re.sub(r"\.[^.]+(\.opt-\d+)?\.pyc$", ".py", name)  # drop the cache tag
    if os.path.basename(head) == "__pycache__":
        return os.path.join(root, os.path.dirname(head), source)
    return os.path.join("/", head, source)


def why_missing(root, rel):
    """How this interpreter ("here") fares on the source that one side did not compile."""
    src = source_of(root, rel)
    try:
        with open(src, "rb") as f:
            compile(f.read(), src, "exec", dont_inherit=True)
    except SyntaxError as exc:
        return {"source": src, "here": f"{type(exc).__name__}: {exc.msg} (line {exc.lineno})"}
    except Exception as exc:
        return {"source": src, "here": f"{type(exc).__name__}: {exc}"}
    return {"source": src, "here": "compiles"}


def compare_trees(root_a, root_b):
    files_a, files_b = pyc_files(root_a), pyc_files(root_b)
    both = sorted(files_a & files_b)
    counts = {"a_files": len(files_a), "b_files": len(files_b), "both": len(both),
              "only_a": len(files_a - files_b), "only_b": len(files_b - files_a),
              "eq": 0, "field_equal": 0, "bytes_identical": 0, "header_differs": 0}
    diffs, signatures = {}, {}
    for rel in both:
        with open(os.path.join(root_a, rel), "rb") as fa, open(os.path.join(root_b, rel), "rb") as fb:
            rec = compare_pair(fa.read(), fb.read())
        if rec is None:
            counts["bytes_identical"] += 1
            counts["eq"] += 1
            counts["field_equal"] += 1
            continue
        counts["eq"] += rec["eq"]
        counts["field_equal"] += not rec.get("fields")
        counts["header_differs"] += bool(rec["header"])
        rec["signature"] = signature(rec)
        signatures[rec["signature"]] = signatures.get(rec["signature"], 0) + 1
        diffs[rel] = rec
    only = {"only_a": {rel: why_missing(root_a, rel) for rel in sorted(files_a - files_b)},
            "only_b": {rel: why_missing(root_b, rel) for rel in sorted(files_b - files_a)}}
    return counts, signatures, diffs, only


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root_a")
    parser.add_argument("root_b")
    parser.add_argument("--names", default="a,b", help="labels for the two roots")
    parser.add_argument("--json", help="write the per-file details here")
    args = parser.parse_args(argv)
    for root in (args.root_a, args.root_b):
        if not os.path.isdir(root):
            parser.error(f"not a directory: {root}")
    counts, signatures, diffs, only = compare_trees(args.root_a, args.root_b)
    name_a, name_b = args.names.split(",")
    report = {"python": sys.version, "cache_tag": sys.implementation.cache_tag,
              "names": [name_a, name_b], "roots": [args.root_a, args.root_b],
              "counts": counts, "signatures": dict(sorted(signatures.items(),
                                                          key=lambda kv: -kv[1])),
              "differences": diffs, **only}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    print(" ".join(f"{k}={v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
