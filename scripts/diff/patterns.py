"""Name the codegen pattern behind each difference that compare.py found.

Usage: patterns.py [--json OUT] VERSION_DIR

Reads VERSION_DIR/diff.json and the pycs under VERSION_DIR/a and VERSION_DIR/b, and
tags every differing pair of code objects by what differs at the instruction level:
  code:+OP / code:-OP / code:OPS=>OPS   opcodes only side A (+) or only side B (-) has
  arg:OP                                same opcodes, different argument (jumps ignored)
  pos:B=>A                              same bytecode, some instructions have another
                                        source position: B's and A's span, each named by
                                        the AST node it covers (FIELD = a child of B's node)
  exc, stacksize, consts, names, ...    any other field that differs
Prints, per tag, the number of files and the smallest code objects that show it (the
easiest to turn into a reproducer). Must run under the pycs' own Python (uses dis).
"""

import argparse
import ast
import difflib
import dis
import json
import marshal
import os
import struct
import sys

EXAMPLES = 3
MAX_CODE_TAGS = 4
OTHER_FIELDS = {"co_exceptiontable": "exc", "co_stacksize": "stacksize", "co_names": "names",
                "co_flags": "flags", "co_varnames": "varnames", "co_cellvars": "cellvars",
                "co_freevars": "freevars", "co_firstlineno": "firstlineno",
                "co_qualname": "qualname", "co_argcount": "argcount",
                "co_kwonlyargcount": "kwonlyargcount"}


def const_key(value):
    """A key that tells constants apart exactly: -0.0 from 0.0, and a NaN equals itself."""
    if isinstance(value, float):
        return ("float", struct.pack("<d", value))
    if isinstance(value, complex):
        return ("complex", struct.pack("<dd", value.real, value.imag))
    if isinstance(value, (tuple, frozenset)):
        items = [const_key(v) for v in value]
        return (type(value).__name__, tuple(items if isinstance(value, tuple) else sorted(map(repr, items))))
    return (type(value).__name__, value)


def load(path):
    with open(path, "rb") as f:
        return marshal.loads(f.read()[16:])


def nested(code):
    return [c for c in code.co_consts if isinstance(c, type(code))]


def code_tags(ins_a, ins_b):
    ops_a, ops_b = [i.opname for i in ins_a], [i.opname for i in ins_b]
    tags = []
    if ops_a != ops_b:
        for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, ops_a, ops_b,
                                                          autojunk=False).get_opcodes():
            if op == "delete":
                tags.append("code:+" + "/".join(ops_a[i1:i2]))
            elif op == "insert":
                tags.append("code:-" + "/".join(ops_b[j1:j2]))
            elif op == "replace":
                tags.append(f"code:{'/'.join(ops_a[i1:i2])}=>{'/'.join(ops_b[j1:j2])}")
        return tags[:MAX_CODE_TAGS]
    for a, b in zip(ins_a, ins_b):
        if a.argrepr != b.argrepr and a.opcode not in dis.hasjrel + dis.hasjabs:
            tags.append("arg:" + a.opname)
    return sorted(set(tags)) or ["arg:jump"]


class Spans:
    """The AST nodes of one source file by source span, to name a span by its node."""

    def __init__(self, path):
        self.nodes, self.parents, self.relations = {}, {}, {}
        try:
            with open(path, "rb") as f:
                tree = ast.parse(f.read(), path)
        except (OSError, SyntaxError, ValueError):
            return
        for node in ast.walk(tree):  # breadth first: the outermost node of a span wins
            span = getattr(node, "end_col_offset", None) is not None and (
                node.lineno, node.end_lineno, node.col_offset, node.end_col_offset)
            if span:
                self.nodes.setdefault(span, node)
            for child in ast.iter_child_nodes(node):
                self.parents[child] = node

    def child_field(self, outer, inner):
        """The field of OUTER whose subtree holds INNER, found by climbing from INNER."""
        while inner is not None and self.parents.get(inner) is not outer:
            inner = self.parents.get(inner)
        if inner is None:
            return None
        for field, value in ast.iter_fields(outer):
            if inner is value or isinstance(value, list) and any(inner is v for v in value):
                return field
        return None

    def name(self, span):
        if span[0] is None:
            return "none"
        node = self.nodes.get(span)
        return type(node).__name__ if node else "line-only" if span[2:] == (0, 0) else "?"

    def relation(self, span_b, span_a):
        """'B=>A': A's span named as a child field of B's node where it is one."""
        key = (span_b, span_a)
        if key not in self.relations:
            self.relations[key] = self.find_relation(span_b, span_a)
        return self.relations[key]

    def find_relation(self, span_b, span_a):
        nb, na = self.nodes.get(span_b), self.nodes.get(span_a)
        field = nb and na and self.child_field(nb, na)
        if field:
            return f"{type(nb).__name__}=>{type(nb).__name__}.{field}"
        parent = na and self.parents.get(na)
        if parent:  # A's node has no tie to B's: name it by its place in its parent
            return f"{self.name(span_b)}=>{type(parent).__name__}.{self.child_field(parent, na)}"
        return f"{self.name(span_b)}=>{self.name(span_a)}"


def pair_tags(a, b, spans):
    """Tags for one pair of code objects (nested code objects are visited separately)."""
    tags = []
    ins_a, ins_b = list(dis.get_instructions(a)), list(dis.get_instructions(b))
    if a.co_code != b.co_code:
        tags += code_tags(ins_a, ins_b)
    elif a.co_linetable != b.co_linetable:
        tags += sorted({"pos:" + spans.relation(tuple(y.positions), tuple(x.positions))
                        for x, y in zip(ins_a, ins_b)
                        if tuple(x.positions) != tuple(y.positions)})
        tags = tags or ["pos:(line table bytes only)"]
    plain = [const_key(c) for c in a.co_consts if not isinstance(c, type(a))]
    if plain != [const_key(c) for c in b.co_consts if not isinstance(c, type(b))]:
        tags.append("consts")
    tags += [tag for field, tag in OTHER_FIELDS.items()
             if field != "co_exceptiontable" or a.co_code == b.co_code
             if getattr(a, field) != getattr(b, field)]
    return tags


def walk_pairs(a, b):
    yield a, b
    for sub_a, sub_b in zip(nested(a), nested(b)):
        yield from walk_pairs(sub_a, sub_b)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("version_dir")
    parser.add_argument("--json", help="write tag -> count, examples here")
    args = parser.parse_args()
    with open(os.path.join(args.version_dir, "diff.json")) as f:
        report = json.load(f)
    files, examples = {}, {}
    for rel, rec in report["differences"].items():
        if not rec.get("fields"):
            continue  # header or marshal encoding only: nothing at the code level
        a = load(os.path.join(args.version_dir, "a", rel))
        b = load(os.path.join(args.version_dir, "b", rel))
        # Fields Python does not expose are tagged from compare.py's findings.
        for field in {"co_localsplusnames", "co_localspluskinds"} & set(rec["fields"]):
            files.setdefault(field[3:], set()).add(rel)
            examples.setdefault(field[3:], set()).add((len(a.co_code), rel))
        spans = Spans(a.co_filename)
        for ca, cb in walk_pairs(a, b):
            for tag in pair_tags(ca, cb, spans):
                files.setdefault(tag, set()).add(rel)
                examples.setdefault(tag, set()).add(
                    (len(ca.co_code), f"{ca.co_filename}:{ca.co_firstlineno} {ca.co_qualname}"))
    result = {tag: {"files": len(files[tag]),
                    "examples": [e for _, e in sorted(examples[tag])[:EXAMPLES]]}
              for tag in sorted(files, key=lambda t: -len(files[t]))}
    print(f"patterns under Python {sys.version.split()[0]} (files per tag; a file can have several)")
    for tag, info in result.items():
        print(f"{info['files']:6d}  {tag}")
        for example in info["examples"]:
            print(f"          {example}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
