#!/usr/bin/env python3
"""Fails when any crate's modules import each other in a circle.

For every crate (a directory with Cargo.toml and src/), each .rs file is a module; an edge A -> B
is any `crate::B...` or `super::...` path in A's non-test code that names module B (the longest
module path that exists). Declaring a child (`mod x;`) is not an import. Test modules
(`#[cfg(test)]` and everything after it in a file) are left out: tests may reach anywhere.
Prints each cycle found and exits 1, or prints the module count and exits 0.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def modules(src):
    """Maps module path tuples to files: lib.rs/main.rs is (), a/b.rs and a/b/mod.rs are (a, b)."""
    out = {}
    for d, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(d, f), src)[:-3].split(os.sep)
            if rel in (["lib"], ["main"]):
                key = ()
            elif rel[-1] == "mod":
                key = tuple(rel[:-1])
            elif rel[0] == "bin" or rel[0] == "benches":
                continue
            else:
                key = tuple(rel)
            out[key] = os.path.join(d, f)
    return out


def code_without_tests(path):
    text = open(path, encoding="utf-8").read()
    cut = text.find("#[cfg(test)]")
    text = text if cut < 0 else text[:cut]
    text = re.sub(r"//[^\n]*", "", text)  # comments and docs
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', text)  # strings


def resolve(mods, here, path):
    """The module a `crate::...` / `super::...` / `self::...` path names, or None."""
    parts = path.split("::")
    if parts[0] == "crate":
        base, rest = (), parts[1:]
    else:
        base = here
        while parts and parts[0] in ("super", "self"):
            if parts[0] == "super":
                base = base[:-1]
            parts = parts[1:]
        rest = parts
    best = None
    for i in range(len(rest) + 1):
        cand = base + tuple(rest[:i])
        if cand in mods:
            best = cand
    return best


def cycles(graph):
    found, state, stack = [], {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                found.append(stack[stack.index(m):] + [m])
            elif m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n)
    return found


def main():
    bad = 0
    total = 0
    for crate in sorted(os.listdir(ROOT)) + ["."]:
        src = os.path.join(ROOT, crate, "src")
        if not (os.path.isdir(src) and os.path.exists(os.path.join(ROOT, crate, "Cargo.toml"))):
            continue
        mods = modules(src)
        total += len(mods)
        graph = {}
        path_re = re.compile(r"\b((?:crate|super|self)(?:::[A-Za-z_][A-Za-z0-9_]*)+)")
        group_re = re.compile(r"\b((?:crate|super|self)(?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{([^}]*)\}")
        for key, f in mods.items():
            text = code_without_tests(f)
            paths = path_re.findall(text)
            for prefix, inner in group_re.findall(text):
                for item in inner.split(","):
                    item = item.strip().split(" as ")[0].split("::{")[0]
                    if item and item != "self":
                        paths.append(prefix + "::" + item)
            for p in paths:
                target = resolve(mods, key, p)
                if target is not None and target != key and target != ():
                    graph.setdefault(key, set()).add(target)
        for c in cycles(graph):
            bad += 1
            name = os.path.basename(crate) if crate != "." else "pushwise (src/)"
            print(f"{name}: " + " -> ".join("::".join(m) for m in c))
    if bad:
        print(f"{bad} import cycle(s) between modules")
        return 1
    print(f"no import cycles among {total} modules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
