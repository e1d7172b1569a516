#!/usr/bin/env python3
"""Finds import cycles between sibling modules of Rust crates.

Reads every `crate::a::b` and `super::x` path outside comments and `#[cfg(test)] mod tests`,
maps each file to its module path, keeps the first DEPTH segments of both ends, and prints
every strongly connected group of two or more modules with the edges inside it. A parent
module re-exporting its children is not a cycle (bare child paths are not read).

    python3 scripts/import_cycles.py [--depth N] CRATE_SRC_DIR...

Exits 1 when a cycle is found.
"""

import argparse
import collections
import os
import re
import sys

PATH = re.compile(r"\b(crate|super)::((?:[a-z_][a-z_0-9]*::)*[a-z_][a-z_0-9]*)")


def module_of(root, path):
    parts = os.path.relpath(path, root)[:-3].split(os.sep)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return parts


def edges_of(root, depth):
    edges = collections.defaultdict(set)
    for directory, _, files in os.walk(root):
        for name in files:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(directory, name)
            module = module_of(root, path)
            # super:: from a mod.rs/lib.rs names its parent; from x.rs, x's parent.
            parent = module[:-1]
            with open(path, encoding="utf-8") as f:
                text = re.split(r"#\[cfg\(test\)\]\s*mod tests", f.read())[0]
            code = "\n".join(l for l in text.split("\n") if not l.strip().startswith("//"))
            for kind, target in PATH.findall(code):
                target = target.split("::")
                full = target if kind == "crate" else parent + target
                a, b = tuple(module[:depth]), tuple(full[:depth])
                if a and b and a != b:
                    edges[a].add(b)
    return edges


def cycles(edges):
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(group)

    for v in list(edges):
        if v not in index:
            visit(v)
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--depth", type=int, default=2, help="module path segments compared")
    parser.add_argument("roots", nargs="+", help="crate source directories (e.g. gearman-core/src)")
    args = parser.parse_args()
    bad = False
    for root in args.roots:
        edges = edges_of(root, args.depth)
        for group in cycles(edges):
            bad = True
            names = sorted("::".join(m) for m in group)
            print(f"{root}: cycle between {', '.join(names)}")
            for a in group:
                for b in sorted(edges[a]):
                    if b in group:
                        print(f"    {'::'.join(a)} -> {'::'.join(b)}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
