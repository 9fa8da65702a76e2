#!/usr/bin/env python3
"""Dependency policy check for palisade: licenses, duplicate versions and sources.

Stands in for `cargo deny check licenses bans` (plus the source check of
`cargo deny check sources`) without installing cargo-deny, which CI would have
to compile from source. It needs only python3 (3.11+, for tomllib) and cargo.

It runs `cargo metadata --format-version 1 --all-features --locked` and walks
`resolve.nodes` from the workspace members, following every edge: normal, build
and dev dependencies, for every target platform. All of them either ship in
palisade's users' binaries or build and test our artifacts, so all are checked.

Checks, with the policy in .ci/deps.toml:

* licenses: each `license` SPDX expression must be satisfiable by `[licenses]
  allow`: every id is true iff allowed (compared case-insensitively), then OR,
  AND, WITH and parentheses are evaluated (WITH binds tightest, then AND); the
  legacy `/` means OR. `X WITH Y` passes if `X WITH Y` or X alone is allowed, as
  an exception only adds permissions to X; the deprecated `X+` ("or later")
  passes if `X+` or X is. A package with only a `license_file` fails unless
  `[exceptions]` names it with a reason.
* duplicates: a crate resolved in several versions fails unless it is in
  `[duplicates] allow`.
* sources: packages come from crates.io or are local paths (source null); git
  dependencies and other registries fail.

Exit status: 0 clean, 1 a check failed, 2 cargo or the config could not be read.
Stale config entries are printed as notes and do not fail.

Usage: python3 .ci/deps.py [--config PATH] [--manifest-path PATH] [--metadata FILE]
"""

import argparse
import collections
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

CRATES_IO = "registry+https://github.com/rust-lang/crates.io-index"
ROOT = Path(__file__).resolve().parent.parent


def tokens(expr):
    """Split an SPDX expression into ids, operators and parentheses."""
    return re.findall(r"\(|\)|[^\s()]+", expr.replace("/", " OR "))


def satisfiable(expr, allowed):
    """Evaluate an SPDX expression; `allowed` holds lower-cased ids and `X with y` terms."""
    toks = tokens(expr)
    pos = 0

    def at(op):
        return pos < len(toks) and toks[pos].upper() == op

    def take():
        nonlocal pos
        if pos >= len(toks):
            raise ValueError("unexpected end")
        pos += 1
        return toks[pos - 1]

    def term():
        tok = take()
        if tok == "(":
            value = disjunction()
            if take() != ")":
                raise ValueError("missing ')'")
            return value
        if tok == ")" or tok.upper() in ("AND", "OR", "WITH"):
            raise ValueError(f"unexpected {tok!r}")
        lic = tok.lower()
        ok = lic in allowed or (lic.endswith("+") and lic[:-1] in allowed)
        if at("WITH"):
            take()
            exception = take().lower()
            if exception in ("(", ")"):
                raise ValueError("WITH needs an exception id")
            ok = ok or f"{lic} with {exception}" in allowed
        return ok

    def conjunction():
        value = term()
        while at("AND"):
            take()
            value = term() and value  # parse the right side even if the left failed
        return value

    def disjunction():
        value = conjunction()
        while at("OR"):
            take()
            value = conjunction() or value
        return value

    result = disjunction()
    if pos != len(toks):
        raise ValueError(f"unexpected {toks[pos]!r}")
    return result


def license_ids(expr):
    """The license ids named in an expression (for the unused-entry notes)."""
    ids, toks = set(), tokens(expr)
    for i, tok in enumerate(toks):
        if tok in ("(", ")") or tok.upper() in ("AND", "OR", "WITH"):
            continue
        if i > 0 and toks[i - 1].upper() == "WITH":
            ids.add(f"{toks[i - 2]} with {tok}".lower())
        else:
            ids.update({tok.lower(), tok.lower().rstrip("+")})
    return ids


def version_key(version):
    """Sort 0.9.0 before 0.10.0; good enough for display."""
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[.+-]", version)]


def fail(message):
    """Exit with status 2: the check could not run (as opposed to 1, the check failed)."""
    print(f"deps: {message}", file=sys.stderr)
    sys.exit(2)


def load_metadata(args):
    if args.metadata:
        return json.loads(Path(args.metadata).read_text())
    cmd = ["cargo", "metadata", "--format-version", "1", "--all-features", "--locked"]
    if args.manifest_path:
        cmd += ["--manifest-path", args.manifest_path]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if run.returncode != 0:
        fail(f"`{' '.join(cmd)}` failed:\n{run.stderr}")
    return json.loads(run.stdout)


def reachable(meta):
    """Package ids reachable from the workspace members through every dependency edge."""
    edges = {node["id"]: [dep["pkg"] for dep in node["deps"]] for node in meta["resolve"]["nodes"]}
    seen, stack = set(meta["workspace_members"]), list(meta["workspace_members"])
    while stack:
        for dep in edges.get(stack.pop(), []):
            if dep not in seen:
                seen.add(dep)
                stack.append(dep)
    return seen


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=ROOT / ".ci" / "deps.toml", help="policy file (TOML)")
    parser.add_argument("--manifest-path", help="passed to cargo metadata")
    parser.add_argument("--metadata", help="read cargo metadata JSON from this file instead")
    args = parser.parse_args()

    try:
        config = tomllib.loads(Path(args.config).read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        fail(f"cannot read config {args.config}: {err}")
    allowed = {" ".join(lic.split()).lower() for lic in config.get("licenses", {}).get("allow", [])}
    exceptions = config.get("exceptions", {})
    dup_allow = set(config.get("duplicates", {}).get("allow", []))

    meta = load_metadata(args)
    ids = reachable(meta)
    packages = sorted(
        (p for p in meta["packages"] if p["id"] in ids),
        key=lambda p: (p["name"], version_key(p["version"])),
    )
    problems, notes, seen_ids = [], [], set()

    for pkg in packages:
        name, version, expr = pkg["name"], pkg["version"], pkg.get("license")
        if pkg["source"] is not None and pkg["source"] != CRATES_IO:
            problems.append(f"source: {name} {version}: {pkg['source']}")
        if not expr:
            if name not in exceptions:
                problems.append(f"license: {name} {version}: (no license field; "
                                f"license_file = {pkg.get('license_file')}) not in [exceptions]")
            continue
        seen_ids |= license_ids(expr)
        try:
            ok = satisfiable(expr, allowed)
        except ValueError as err:
            problems.append(f"license: {name} {version}: {expr} (cannot parse: {err})")
            continue
        if not ok:
            problems.append(f"license: {name} {version}: {expr}")

    versions = collections.defaultdict(list)
    for pkg in packages:
        versions[pkg["name"]].append(pkg["version"])
    duplicates = {name: vs for name, vs in versions.items() if len(vs) > 1}
    for name, vs in duplicates.items():
        if name not in dup_allow:
            problems.append(f"duplicate: {name} {', '.join(vs)}")

    no_license = {p["name"] for p in packages if not p.get("license")}
    notes += [f"note: [licenses] allow {lic!r} matches no package" for lic in sorted(allowed - seen_ids)]
    notes += [f"note: [duplicates] allow {n!r} is not duplicated" for n in sorted(dup_allow - duplicates.keys())]
    notes += [f"note: [exceptions] {n!r} is not needed" for n in sorted(exceptions.keys() - no_license)]

    for line in problems + notes:
        print(line)
    allowed_dups = len(duplicates.keys() & dup_allow)
    print(f"deps: {len(packages)} packages, {allowed_dups} duplicate names allowed, "
          f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
