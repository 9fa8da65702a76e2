#!/usr/bin/env python3
"""Layering: a layer imports only the core, never another layer; the core imports no layer.

The layers are the directories src/{authn,authz,quota,validate,audit}. The assemblers
(src/lib.rs, src/stack.rs, src/config.rs and the files under src/config/) compose them and
may import any of them. Every other
file directly under src/ is the core. Unit-test modules (from `#[cfg(test)] mod tests` to the end of a
file, as this crate writes them) are not checked: a test may build a whole stack.

Usage: python3 .ci/layers.py [SRC_DIR]   (exit 1 and one line per violation when violated)
"""
import pathlib
import re
import sys

LAYERS = ["authn", "authz", "quota", "validate", "audit"]
ASSEMBLERS = {"lib.rs", "stack.rs", "config.rs"}
ASSEMBLER_DIRS = {"config", "stack"}
# `crate::authz::…`, `crate::authz;`, `crate::{authz, …}` and `use crate::authz as x`.
NAMES = "|".join(LAYERS + ["config", "stack"])
PATTERN = re.compile(r"crate::(?:\{[^}]*?\b(%s)\b[^}]*\}|(%s)\b)" % (NAMES, NAMES))


def checked_text(path: pathlib.Path) -> str:
    text = path.read_text()
    cut = re.search(r"^#\[cfg\((?:all\()?test\b.*\]\nmod tests", text, re.M)
    return text if cut is None else text[: cut.start()]


def main() -> int:
    src = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "src")
    problems = []
    for path in sorted(src.rglob("*.rs")):
        rel = path.relative_to(src)
        owner = rel.parts[0] if len(rel.parts) > 1 else None
        if (owner is None and rel.name in ASSEMBLERS) or owner in ASSEMBLER_DIRS:
            continue
        if owner is not None and owner not in LAYERS:
            owner = None  # another directory of the core
        for lineno, line in enumerate(checked_text(path).splitlines(), 1):
            for m in PATTERN.finditer(line):
                target = m.group(1) or m.group(2)
                if target == owner:
                    continue
                who = f"layer {owner}" if owner else "the core"
                what = "an assembler" if target in ("config", "stack") else f"layer {target}"
                problems.append(f"src/{rel}:{lineno}: {who} imports {what}: {line.strip()}")
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} layering violation(s): a layer imports only the core "
              "(principal, rejection, route, outcome, client_ip, clock, error, ...).")
        return 1
    print("layering: every layer imports only the core; the core imports no layer")
    return 0


if __name__ == "__main__":
    sys.exit(main())
