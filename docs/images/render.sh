#!/usr/bin/env bash
# Renders the pictures of the documentation: every docs/images/*.dot into the .svg beside it
# (Graphviz, Debian's package graphviz). pg_test/run-all checks that the checked-in SVGs are current.
set -euo pipefail
cd "$(dirname "$0")"
for f in *.dot; do
    dot -Tsvg "$f" -o "${f%.dot}.svg"
done
