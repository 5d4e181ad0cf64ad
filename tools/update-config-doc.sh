#!/bin/sh
# Regenerates the key table of docs/config.md from the key table in
# src/io/config.c (through `btrm config --doc-markdown`). Run after adding or
# changing a key; tests/config-errors.sh fails while the two differ.
set -e
cd "$(dirname "$0")/.."
BTRM=${BTRM:-src/btrm}
table=$(mktemp)
trap 'rm -f "$table" "$table.md"' EXIT
"$BTRM" config --doc-markdown > "$table"
awk -v table="$table" '
    /^<!-- BEGIN KEY TABLE/ { print; while ((getline line < table) > 0) print line; skip = 1; next }
    /^<!-- END KEY TABLE/ { skip = 0 }
    !skip { print }
' docs/config.md > "$table.md"
mv "$table.md" docs/config.md
echo "docs/config.md: key table regenerated"
