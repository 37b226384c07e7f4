#!/usr/bin/env python3
"""Prints the module graph of a crate (which module uses which, from the
`crate::<module>` paths in its code, comments and #[cfg(test)] modules left
out) and its cycles; exits 1 when there is one.

Usage: scripts/module-cycles.py crates/service/src
"""
import pathlib
import re
import sys

src = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "crates/service/src")
modules = {}
for path in sorted(src.rglob("*.rs")):
    rel = path.relative_to(src).with_suffix("")
    parts = [p for p in rel.parts if p not in ("mod", "lib", "main")]
    name = parts[0] if parts else "lib"
    modules.setdefault(name, []).append(path)

graph = {}
for name, paths in modules.items():
    deps = set()
    for path in paths:
        code = path.read_text()
        # Unit tests may use anything of the crate.
        code = re.split(r"#\[cfg\(test\)\]\s*mod tests", code)[0]
        code = "\n".join(line.split("//")[0] for line in code.splitlines())
        # `use crate::{a, b::c}` and `crate::a::…` paths.
        for group in re.findall(r"crate::\{([^}]*)\}", code, re.S):
            deps.update(re.findall(r"(?:^|,)\s*(\w+)", group))
        deps.update(re.findall(r"crate::(\w+)", code))
    graph[name] = sorted(d for d in deps if d in modules and d != name)

# Tarjan's strongly connected components.
index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

def visit(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on.add(v)
    for w in graph[v]:
        if w not in index:
            visit(w)
            low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        scc = []
        while True:
            w = stack.pop()
            on.discard(w)
            scc.append(w)
            if w == v:
                break
        if len(scc) > 1:
            cycles.append(sorted(scc))

for v in graph:
    if v not in index:
        visit(v)

for name in sorted(graph):
    if name != "lib":
        print(f"{name} -> {', '.join(graph[name]) or '(nothing)'}")
for scc in cycles:
    print("CYCLE:", " <-> ".join(scc))
sys.exit(1 if cycles else 0)
