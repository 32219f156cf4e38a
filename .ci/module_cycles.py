"""Fails when the modules of a crate import each other in a cycle (`use crate::a` in b and back).

Usage: python3 .ci/module_cycles.py sre-core/src
Only `use crate::…` / `pub use crate::…` lines and `crate::module::` paths in code count; doc links
(lines starting with `//`) do not.
"""

import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1])
modules = {p.stem: p for p in root.glob("*.rs") if p.stem not in ("lib", "main")}
deps = {}
for name, path in modules.items():
    found = set()
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("//"):
            continue
        for m in re.finditer(r"\bcrate::([a-z_][a-z0-9_]*)", line):
            if m.group(1) in modules and m.group(1) != name:
                found.add(m.group(1))
    deps[name] = found

cycles = []
state = {}


def visit(node, stack):
    state[node] = "open"
    stack.append(node)
    for d in sorted(deps[node]):
        if state.get(d) == "open":
            cycles.append(stack[stack.index(d):] + [d])
        elif d not in state:
            visit(d, stack)
    stack.pop()
    state[node] = "done"


for n in sorted(deps):
    if n not in state:
        visit(n, [])
if cycles:
    for c in cycles:
        print("import cycle: " + " -> ".join(c))
    sys.exit(1)
print(f"{root}: {len(deps)} modules, no import cycles")
