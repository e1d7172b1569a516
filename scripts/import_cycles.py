#!/usr/bin/env python3
"""Finds import cycles between sibling modules of Rust crates.

Reads every `crate::` and `super::` path outside comments and `#[cfg(test)] mod tests`,
`use` groups included (`use crate::{a, b::C};`), maps each file to its module path, and
follows a name a module imports or re-exports (`pub use child::Item;` and `use
child::Item;` alike, globs too) to the module that defines it: `super::Item` depends on
the module Item comes from, not on the parent that re-exports it. Both ends are cut to
their first DEPTH segments; every strongly connected group of two or more modules is
printed with the edges inside it. A parent naming its own children is not read (bare
child paths), so a parent re-exporting its children is not a cycle.

    python3 scripts/import_cycles.py [--depth N]... CRATE_SRC_DIR...

`--depth` may be repeated (`--depth 1 --depth 2 --depth 3`); the default is 2. Prints
nothing and exits 0 when there is no cycle; exits 1 when a cycle is found, 2 when a
directory holds no `.rs` file (a wrong path must not pass as "no cycles").
"""

import argparse
import collections
import os
import re
import sys

IDENT = r"[A-Za-z_][A-Za-z_0-9]*"
# An inline path: `crate::a::b::Item` or `super::super::x::y`.
INLINE = re.compile(rf"\b(crate|super)((?:::{IDENT})+)")
# A `use` declaration, up to its semicolon (groups may span lines).
USE = re.compile(r"\buse\s+([A-Za-z_0-9:{},*\s]*);")
# An item a module defines, for glob imports (`pub use child::*`).
ITEM = re.compile(
    rf"^\s*pub(?:\([^)]*\))?\s+(?:async\s+|const\s+|unsafe\s+)*"
    rf"(?:struct|enum|fn|const|static|type|trait|mod|union)\s+({IDENT})",
    re.M,
)


def module_of(root, path):
    parts = os.path.relpath(path, root)[:-3].split(os.sep)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple(parts)


def strip(text):
    """The code outside comments and the test module."""
    text = re.split(r"#\[cfg\(test\)\]\s*mod tests\b", text)[0]
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return "\n".join(l for l in text.split("\n") if not l.strip().startswith("//"))


def parse_use(tree):
    """The (path, name) pairs a use tree brings in: `a::{b, c::D as E, f::*}` gives
    ([a, b], b), ([a, c, D], E), ([a, f, *], *)."""
    # `X as Y` becomes one token `X@Y` before whitespace goes.
    tree = re.sub(r"\s+as\s+", "@", tree)
    tree = re.sub(r"\s+", "", tree)
    out = []

    def walk(prefix, text):
        depth, start, parts = 0, 0, []
        for i, ch in enumerate(text):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                parts.append(text[start:i])
                start = i + 1
        parts.append(text[start:])
        for part in filter(None, parts):
            if "{" in part:
                head, _, rest = part.partition("{")
                if "}" not in rest:
                    continue  # not a use tree after all
                walk(prefix + [s for s in head.split("::") if s], rest[: rest.rindex("}")])
                continue
            segs = prefix + [s for s in part.split("::") if s]
            real, _, alias = segs[-1].partition("@")
            segs[-1] = real
            if segs[-1] == "self":
                segs.pop()
            if segs:
                out.append((segs, alias or segs[-1]))

    walk([], tree)
    return out


class Crate:
    def __init__(self, root):
        self.root = root
        self.code = {}
        for directory, _, files in os.walk(root):
            for name in files:
                if name.endswith(".rs"):
                    path = os.path.join(directory, name)
                    with open(path, encoding="utf-8") as f:
                        self.code[module_of(root, path)] = strip(f.read())
        self.imports = {m: self.imports_of(m) for m in self.code}

    def absolute(self, module, segs):
        """The crate-absolute form of a path written in `module`; None if external."""
        segs = list(segs)
        if not segs:
            return None
        if segs[0] == "crate":
            return segs[1:]
        if segs[0] in ("super", "self"):
            base = list(module)
            while segs and segs[0] in ("super", "self"):
                if segs.pop(0) == "super":
                    base = base[:-1]
            return base + segs
        if tuple(module) + (segs[0],) in self.code:
            return list(module) + segs
        return None

    def imports_of(self, module):
        """Name -> crate-absolute path of every name `module`'s `use`s bring in."""
        names = {}
        for m in USE.finditer(self.code[module]):
            for segs, name in parse_use(m.group(1)):
                full = self.absolute(module, segs)
                if full is None:
                    continue
                if name == "*":
                    source = self.module_prefix(full[:-1])
                    for item in ITEM.findall(self.code.get(source, "")):
                        names.setdefault(item, full[:-1] + [item])
                else:
                    names[name] = full
        return names

    def module_prefix(self, full):
        """The longest prefix of `full` that is a module with a file."""
        for n in range(len(full), -1, -1):
            if tuple(full[:n]) in self.code:
                return tuple(full[:n])
        return ()

    def resolve(self, full, seen=()):
        """The module that defines what `full` names, following imports."""
        module = self.module_prefix(full)
        rest = full[len(module) :]
        if rest and rest[0] in self.imports.get(module, {}) and (module, rest[0]) not in seen:
            target = self.imports[module][rest[0]] + rest[1:]
            return self.resolve(target, seen + ((module, rest[0]),))
        return module

    def edges(self, depth):
        edges = collections.defaultdict(set)
        for module, code in self.code.items():
            paths = [m.group(1) + m.group(2) for m in INLINE.finditer(code)]
            for m in USE.finditer(code):
                paths += ["::".join(s) for s, _ in parse_use(m.group(1))]
            for path in paths:
                segs = path.split("::")
                if segs[0] not in ("crate", "super"):
                    continue
                a = module[:depth]
                b = self.resolve(self.absolute(module, segs))[:depth]
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
    parser.add_argument(
        "--depth", type=int, action="append", help="module path segments compared (repeatable)"
    )
    parser.add_argument("roots", nargs="+", help="crate source directories (e.g. gearman-core/src)")
    args = parser.parse_args()
    sys.setrecursionlimit(10000)
    status = 0
    for root in args.roots:
        crate = Crate(root)
        if not crate.code:
            print(f"{root}: no .rs file here", file=sys.stderr)
            status = 2
            continue
        for depth in args.depth or [2]:
            edges = crate.edges(depth)
            for group in sorted(cycles(edges), key=sorted):
                status = status or 1
                names = sorted("::".join(m) for m in group)
                print(f"{root} (depth {depth}): cycle between {', '.join(names)}")
                for a in sorted(group):
                    for b in sorted(edges[a]):
                        if b in group:
                            print(f"    {'::'.join(a)} -> {'::'.join(b)}")
    sys.exit(status)


if __name__ == "__main__":
    main()
