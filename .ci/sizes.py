#!/usr/bin/env python3
"""Sizes: no source file over FILE_MAX lines and no function over FN_MAX lines.

Lines are counted up to a file's unit-test module (`#[cfg(test)] mod tests` to the end of the
file, as this crate writes them); tests have their own files when they grow. A function is
counted from its `fn` line to its closing brace. Comments and blank lines count: a long
function is long to read whatever it holds.

Usage: python3 .ci/sizes.py [SRC_DIR]   (exit 1 and one line per file or function over a limit)
"""
import pathlib
import re
import sys

FILE_MAX = 520
FN_MAX = 80
FN = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:const\s+)?(?:async\s+)?(?:unsafe\s+)?fn\s+(\w+)")


def checked_lines(path: pathlib.Path) -> list:
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^#\[cfg\((?:all\()?test\b", line) and i + 1 < len(lines) and lines[i + 1].startswith("mod tests"):
            return lines[:i]
    return lines


def functions(lines):
    """(name, first line, length) of each function with a body."""
    i = 0
    while i < len(lines):
        m = FN.match(lines[i])
        if not m:
            i += 1
            continue
        depth, opened, j = 0, False, i
        while j < len(lines):
            code = re.sub(r'"(?:\\.|[^"\\])*"', '""', lines[j].split("//")[0])
            code = re.sub(r"'(?:\\.|[^'\\])'", "''", code)
            for ch in code:
                if ch == "{":
                    depth += 1
                    opened = True
                elif ch == "}":
                    depth -= 1
            if not opened and code.rstrip().endswith(";"):
                break  # a declaration without a body
            if opened and depth <= 0:
                yield m.group(1), i + 1, j - i + 1
                break
            j += 1
        i += 1


def main() -> int:
    src = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "src")
    problems = []
    for path in sorted(src.rglob("*.rs")):
        if path.name == "tests.rs" or "tests" in path.relative_to(src).parts[:-1]:
            continue
        lines = checked_lines(path)
        if len(lines) > FILE_MAX:
            problems.append(f"{path}: {len(lines)} lines (limit {FILE_MAX}; split it by role)")
        for name, line, length in functions(lines):
            if length > FN_MAX:
                problems.append(f"{path}:{line}: fn {name} is {length} lines (limit {FN_MAX})")
    for p in problems:
        print(p)
    if not problems:
        print(f"sizes: every file within {FILE_MAX} lines, every function within {FN_MAX}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
