"""Summarise diffcheck.sh's per-version diff.json files (written by compare.py).

Usage: summary.py [--tree DIR] [--json OUT] VERSION_DIR...

Prints one table row per version and, per version, the differences grouped by
signature (which fields differ, or which marshal encoding detail) with examples,
and the files only one side compiled. OUT gets all reports in one JSON document.
"""

import argparse
import json
import os

COLUMNS = (("a_files", "A files"), ("b_files", "B files"), ("only_a", "only A"),
           ("only_b", "only B"), ("both", "both"), ("eq", "=="), ("field_equal", "fields ="),
           ("bytes_identical", "bytes ="))
EXAMPLES = 3


def short(rel, tree):
    prefix = tree.strip("/") + "/" if tree else ""
    return rel[len(prefix):] if prefix and rel.startswith(prefix) else rel


def compile_errors(log_path):
    """Source path -> last line of its '*** Error compiling' block in a compile log."""
    errors, current = {}, None
    try:
        with open(log_path, errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return errors
    for line in lines:
        if line.startswith("*** Error compiling '"):
            current = line[len("*** Error compiling '"):].rsplit("'", 1)[0]
        elif current and line.strip():
            errors[current] = line.strip()
    return errors


def clusters(report):
    """Signature -> count and example files (the smallest pycs first: easiest to read)."""
    groups = {}
    for rel, rec in report["differences"].items():
        groups.setdefault(rec["signature"], []).append((rec["sizes"][1], rel))
    return {sig: {"count": len(files), "examples": [rel for _, rel in sorted(files)[:EXAMPLES]]}
            for sig, files in sorted(groups.items(), key=lambda kv: -len(kv[1]))}


def table(rows):
    header = ["version", "A vs B"] + [title for _, title in COLUMNS]
    body = [[version, " vs ".join(report["names"])] +
            [str(report["counts"][key]) for key, _ in COLUMNS] for version, report in rows]
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]
    return "\n".join("  ".join(cell.rjust(w) if i > 1 else cell.ljust(w)
                               for i, (cell, w) in enumerate(zip(r, widths)))
                     for r in [header] + body)


def details(version, report, tree):
    lines = [f"\n{version}: {report['names'][0]} (A) vs {report['names'][1]} (B), "
             f"compared under Python {report['python'].split()[0]}"]
    for sig, cluster in report["clusters"].items():
        lines.append(f"  {cluster['count']:6d}  {sig}")
        for rel in cluster["examples"]:
            rec = report["differences"][rel]
            where = rec.get("paths", [])[:1] or [rec.get("marshal_detail", "")]
            lines.append(f"          {short(rel, tree)}  [{where[0]}]")
    for side in ("only_a", "only_b"):
        for rel, info in list(report[side].items())[:10]:
            other = "B" if side == "only_a" else "A"
            said = report["errors"][other].get(info["source"], "no message in its log")
            lines.append(f"  only {side[-1].upper()}: {short(rel, tree)}  ({other} said: {said}; "
                         f"Python {report['python'].split()[0]} here: {info['here']})")
        if len(report[side]) > 10:
            lines.append(f"  only {side[-1].upper()}: ... {len(report[side]) - 10} more")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("version_dirs", nargs="+")
    parser.add_argument("--tree", default="")
    parser.add_argument("--json")
    args = parser.parse_args()
    rows = []
    for vdir in args.version_dirs:
        with open(os.path.join(vdir, "diff.json")) as f:
            report = json.load(f)
        report["clusters"] = clusters(report)
        report["errors"] = {side: compile_errors(os.path.join(vdir, side.lower() + ".log"))
                            for side in "AB"}
        rows.append((os.path.basename(vdir.rstrip("/")), report))
    print(table(rows))
    for version, report in rows:
        print(details(version, report, args.tree))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(rows), f, indent=1)


if __name__ == "__main__":
    main()
