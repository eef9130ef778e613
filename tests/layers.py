#!/usr/bin/env python3
"""The server's module layers: a top-level module of server/src (the first
segment of a `crate::` path: `api`, `app`, `plans`...) imports only modules
of its own layer or of lower ones, and never in a circle. Test code (a
`#[cfg(test)]` item or module file) may reach higher: a test of storage may
make a user the way `users` does.

Run by tests/run. It first checks itself on made-up trees (a circle of two
modules and an upward import must be refused, a clean tree passed), then
checks server/src. A new top-level module must be given a layer here.
"""

import os
import re
import sys
import tempfile

# Lowest first. A module may import its own layer and those before it.
LAYERS = [
    # Vocabulary and plumbing: the peers, errors, files, limits, the
    # database connection, what every OpenAPI document shares.
    ["db", "error", "files", "tally", "limits", "peers", "privacy", "forwarded", "openapi",
     "environment", "blocking"],
    # The node's settings (their value types sit below or in `config`).
    ["config"],
    # What stops a node or the hub at start.
    ["start_error"],
    # Storage, secrets and tokens, the cluster's leader election.
    ["store", "auth", "cluster"],
    ["users"],
    # The audit trail's vocabulary and its one row builder.
    ["audit"],
    # The plan service: documents, sync, consent (no HTTP).
    ["plans"],
    # The change feeds, the metrics, the access log.
    ["streams"],
    ["metrics", "observe"],
    # Node to node: identity, signing, the outbound worker, transfers.
    ["federation"],
    # The shared state of a running node.
    ["app"],
    # What works over the whole node: reports, backups, HTTP handlers.
    ["report", "backup"],
    ["api"],
    # Serving the node, the state hub, and what drives them from outside
    # (`cli` is the binary's: it reaches the library as `wrapsync_server`).
    ["serve", "hub", "demo", "fuzz", "cli"],
]

ROOT_FILES = {"lib.rs", "main.rs"}


def strip(text):
    """The text with comments, strings and char literals blanked out (so a
    `crate::x` in a doc comment or a message is no import)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        nxt = text[i + 1] if i + 1 < n else ""
        if c == "/" and nxt == "/":
            while i < n and text[i] != "\n":
                i += 1
        elif c == "/" and nxt == "*":
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
            out.append(" ")
        elif c == "r" and re.match(r'r#*"', text[i:]) and not (i and (text[i - 1].isalnum() or text[i - 1] == "_")):
            hashes = len(re.match(r"r(#*)", text[i:]).group(1))
            end = text.find('"' + "#" * hashes, i + 2 + hashes)
            i = n if end < 0 else end + 1 + hashes
            out.append('""')
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            out.append('""')
        elif c == "'":
            # A char literal ('x', '\n', '\u{1F600}'), else a lifetime.
            m = re.match(r"'(\\[^']*|[^\\'])'", text[i:])
            if m:
                i += len(m.group(0))
                out.append("' '")
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def matching(text, open_at):
    """The index just past the bracket that closes the one at `open_at`."""
    pairs = {"{": "}", "(": ")", "[": "]"}
    close = pairs[text[open_at]]
    depth = 0
    for j in range(open_at, len(text)):
        if text[j] == text[open_at]:
            depth += 1
        elif text[j] == close:
            depth -= 1
            if depth == 0:
                return j + 1
    return len(text)


TEST_CFG = re.compile(r"#\[cfg\((test|all\(test\b[^\]]*\))\)\]")


def without_tests(text):
    """`text` without its `#[cfg(test)]` items; also the names (and `#[path]`)
    of the test-only module files it declares."""
    test_mods = []
    while True:
        m = TEST_CFG.search(text)
        if not m:
            return text, test_mods
        j = m.end()
        # Further attributes of the same item (`#[path = ...]`, `#[allow]`).
        path = None
        while True:
            rest = text[j:]
            a = re.match(r"\s*#\[", rest)
            if not a:
                break
            start = j + a.end() - 2
            end = matching(text, start + 1)
            p = re.match(r'#\[path\s*=\s*"([^"]*)"\]', text[start:end])
            if p:
                path = p.group(1)
            j = end
        decl = re.match(r"\s*(pub(\([^)]*\))?\s+)?mod\s+(\w+)\s*;", text[j:])
        if decl:
            test_mods.append((decl.group(3), path))
            end = j + decl.end()
        else:
            brace, semi = text.find("{", j), text.find(";", j)
            end = semi + 1 if semi >= 0 and (brace < 0 or semi < brace) else matching(text, brace)
        text = text[: m.start()] + text[end:]


def group_heads(group):
    """The first segment of each path in a `{a, b::{c, d}, e as f}` group."""
    heads, depth, token = [], 0, ""
    for ch in group[1:-1] + ",":
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if depth == 0 and ch == ",":
            m = re.match(r"\s*(\w+)", token)
            if m:
                heads.append(m.group(1))
            token = ""
        else:
            token += ch
    return heads


def imports(text, depth):
    """The top-level modules a source names: `crate::x`, `$crate::x`, and
    `super::...` chains that climb to the crate root (`depth` is how deep
    the file's module is: 1 for `app.rs` or `api/mod.rs`)."""
    found = set()
    for m in re.finditer(r"\b(crate|(?:super\s*::\s*)+)\s*(::\s*)?(\{|\w+)", text):
        if m.group(1) == "crate":
            if not m.group(2):
                continue
        elif m.group(1).count("super") != depth:
            continue
        if m.group(3) == "{":
            start = m.start(3)
            found.update(group_heads(text[start : matching(text, start)]))
        else:
            found.add(m.group(3))
    return found


def module_graph(src):
    """Top-level module -> {imported top-level module: [files]}, from the
    production code of every file under `src`."""
    modules = set()
    for entry in os.listdir(src):
        if entry in ROOT_FILES:
            continue
        if entry.endswith(".rs"):
            modules.add(entry[:-3])
        elif os.path.isdir(os.path.join(src, entry)):
            modules.add(entry)
    sources = {}
    for dirpath, _, files in os.walk(src):
        for name in files:
            if name.endswith(".rs"):
                path = os.path.join(dirpath, name)
                with open(path, encoding="utf-8") as f:
                    sources[os.path.relpath(path, src)] = f.read()
    test_files = set()
    kept = {}
    for rel, text in sources.items():
        code, test_mods = without_tests(strip(text))
        kept[rel] = code
        here = os.path.dirname(rel)
        stem = os.path.basename(rel)[:-3]
        # A file's child modules sit beside it (`x/mod.rs`, `lib.rs`) or in
        # the folder of its name (`x.rs` -> `x/child.rs`).
        base = here if stem in ("mod", "lib", "main") else os.path.join(here, stem)
        for name, path in test_mods:
            if path:
                test_files.add(os.path.normpath(os.path.join(here, path)))
            else:
                test_files.add(os.path.normpath(os.path.join(base, name + ".rs")))
                test_files.add(os.path.normpath(os.path.join(base, name, "mod.rs")))
    graph = {m: {} for m in modules}
    for rel, code in kept.items():
        parts = rel[:-3].split(os.sep)
        top = parts[0]
        if rel in ROOT_FILES or rel in test_files or top not in modules:
            continue
        # A file under a test-only folder is test code too.
        if any(os.path.join(*parts[:k]) + ".rs" in test_files for k in range(1, len(parts))):
            continue
        depth = len(parts) - (1 if parts[-1] == "mod" else 0)
        for used in imports(code, depth):
            if used in modules and used != top:
                graph[top].setdefault(used, []).append(rel)
    return graph


def circles(graph):
    """The strongly connected parts of more than one module (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, {})):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                on.discard(w)
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                found.append(sorted(part))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def problems(graph, layers):
    """Everything wrong with `graph` held against `layers`, one line each."""
    rank = {m: i for i, layer in enumerate(layers) for m in layer}
    lines = [
        f"{m}: a top-level module with no layer (give it one in tests/layers.py)"
        for m in sorted(graph)
        if m not in rank
    ]
    for a in sorted(graph):
        for b, files in sorted(graph[a].items()):
            if a in rank and b in rank and rank[b] > rank[a]:
                lines.append(
                    f"{a} (layer {rank[a] + 1}) imports {b} (layer {rank[b] + 1}, higher): "
                    + ", ".join(sorted(set(files)))
                )
    for part in circles(graph):
        ties = [
            f"{a} -> {b} ({', '.join(sorted(set(graph[a][b])))})"
            for a in part
            for b in sorted(graph[a])
            if b in part
        ]
        lines.append(f"an import circle: {', '.join(part)}: " + "; ".join(ties))
    return lines


def self_check():
    """The checker refuses a circle and an upward import, and passes a clean tree."""
    trees = {
        "circle": ({"a.rs": "use crate::b::B;\n", "b.rs": "pub fn f() { crate::a::g() }\n"}, [["a", "b"]]),
        "upward": ({"low.rs": "use crate::{high::{self, X}};\n", "high.rs": ""}, [["low"], ["high"]]),
        "clean": (
            {
                "low.rs": '// crate::high::X in a comment\nconst S: &str = "crate::high";\n'
                "#[cfg(test)]\nmod tests { use crate::high::X; }\n",
                "high/mod.rs": "use super::low;\nmod inner;\n#[cfg(test)]\nmod tests;\n",
                "high/inner.rs": "use super::super::low::L;\n",
                "high/tests.rs": "use crate::top::T;\n",
                "top.rs": "use crate::high;\n",
            },
            [["low"], ["high"], ["top"]],
        ),
    }
    verdicts = {}
    for name, (files, layers) in trees.items():
        with tempfile.TemporaryDirectory() as src:
            for rel, text in files.items():
                os.makedirs(os.path.dirname(os.path.join(src, rel)), exist_ok=True)
                with open(os.path.join(src, rel), "w", encoding="utf-8") as f:
                    f.write(text)
            verdicts[name] = problems(module_graph(src), layers)
    assert any("circle: a, b" in p for p in verdicts["circle"]), verdicts["circle"]
    assert any("low (layer 1) imports high" in p for p in verdicts["upward"]), verdicts["upward"]
    assert verdicts["clean"] == [], verdicts["clean"]


def main():
    self_check()
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "server", "src")
    graph = module_graph(src)
    if "--graph" in sys.argv:
        for a in sorted(graph):
            print(f"{a} -> {', '.join(sorted(graph[a]))}")
    found = problems(graph, LAYERS)
    for line in found:
        print(line, file=sys.stderr)
    if found:
        sys.exit(1)
    print(f"{len(graph)} top-level modules in {len(LAYERS)} layers: no upward import, no circle")


if __name__ == "__main__":
    main()
