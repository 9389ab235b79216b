#!/usr/bin/env python3
"""The examples of docs/reference.md are the output of pg_test/sql/33_reference_examples.sql.

Each `-- @example NAME` section of that scenario's expected output (pg_test/expected/, what
pg_regress checks the servers against) is the block between `<!-- example NAME -->` and
`<!-- /example -->` in docs/reference.md.

    python3 docs/examples.py          # check: every block equals its section (exit 1 if not)
    python3 docs/examples.py --write  # write the sections into the reference
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXPECTED = ROOT / "pg_test/expected/33_reference_examples.out"
REFERENCE = ROOT / "docs/reference.md"
BLOCK = re.compile(r"(<!-- example (\S+) -->\n)(.*?)(<!-- /example -->)", re.S)


def sections():
    """NAME -> the output from its marker to the next comment line."""
    out, name, lines = {}, None, []
    for line in EXPECTED.read_text().splitlines():
        m = re.match(r"-- @example (\S+)$", line)
        if m:
            if name:
                out[name] = lines
            name, lines = m.group(1), []
        elif name is not None:
            if line.startswith("-- "):
                # a comment line ends the example (the set-up of the next one follows)
                out[name], name, lines = lines, None, []
            else:
                lines.append(line)
    if name:
        out[name] = lines
    return {k: "\n".join(v).strip("\n") for k, v in out.items()}


def block(text):
    return f"```psql\n{text}\n```\n"


def main():
    write = "--write" in sys.argv[1:]
    have = sections()
    doc = REFERENCE.read_text()
    problems, seen = [], set()

    def replace(m):
        name = m.group(2)
        seen.add(name)
        if name not in have:
            problems.append(f"docs/reference.md: example {name} is not in {EXPECTED.name}")
            return m.group(0)
        want = block(have[name])
        if m.group(3) != want:
            problems.append(f"docs/reference.md: example {name} differs from {EXPECTED.name}")
        return m.group(1) + want + m.group(4)

    new = BLOCK.sub(replace, doc)
    for name in sorted(set(have) - seen):
        problems.append(f"docs/reference.md shows no example {name} (<!-- example {name} -->)")
    if write:
        REFERENCE.write_text(new)
        problems = [p for p in problems if "differs" not in p]
    for p in problems:
        print(p)
    if not problems:
        print(f"docs/reference.md: {len(seen)} examples, each the output pg_regress checks")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
