#!/usr/bin/env python3
"""The docs/*.md pages are read both as rustdoc (through include_str!) and on a code host.
rustdoc resolves a bare intra-doc link such as [`Principal`]; a code host shows it as literal
brackets. Every link here must therefore be inline ([text](target)) or reference-style with
its definition on the same page ([text] or [text][label], and `[label]: target` below), which
both renderers understand. Exit 1 naming each page, line and link that is neither."""
import re
import sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
pages = sorted((root / "docs").glob("*.md")) + [root / "README.md"]
problems = []
for page in pages:
    text = page.read_text()
    lines = text.split("\n")
    # Reference definitions: `[label]: target` at the start of a line (outside code).
    defined = set()
    in_code = False
    for line in lines:
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        m = re.match(r"^ {0,3}\[([^\]]+)\]:\s*\S", line)
        if not in_code and m:
            defined.add(m.group(1).lower())
    in_code = False
    for n, line in enumerate(lines, 1):
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        if in_code or line.startswith("    ") and not line.strip().startswith(("-", "*", "|")):
            continue
        if re.match(r"^ {0,3}\[([^\]]+)\]:\s*\S", line):
            continue
        # Drop inline code spans that are not link text, then find [text] links.
        for m in re.finditer(r"\[((?:[^\[\]]|\[[^\]]*\])+)\](\(|\[([^\]]*)\])?", line):
            inner, follow, label = m.group(1), m.group(2), m.group(3)
            if follow == "(":
                continue
            start = m.start()
            # Inside an inline code span (odd number of backticks before it): not a link.
            if line[:start].count("`") % 2 == 1:
                continue
            # Task-list boxes, footnote-like or plain bracketed prose with no code: only
            # `[`Item`]`-shaped texts are intra-doc links.
            if "`" not in inner and follow is None:
                continue
            key = (label if label else inner).lower()
            if key not in defined:
                problems.append(f"{page.relative_to(root)}:{n}: [{inner}] has no definition on the page")
if problems:
    print("\n".join(problems))
    print(f"{len(problems)} links a code host would show as literal brackets: "
          "write them inline or define them at the end of the page")
    sys.exit(1)
print(f"doc links: {len(pages)} pages, every link inline or defined on its page")
