#!/usr/bin/env bash
# Instructions per event of a whole `cairn run` (host and plugin), counted by valgrind's
# cachegrind: deterministic, unlike wall time on a shared machine (docs/development.md).
#   bash scripts/instructions.sh <cairn binary> <plugin.wasm> <input.jsonl> [more run flags]
# Counts a run over the first 100,000 lines of the input minus a run over its first line
# (batch size 1024; the extra flags are added to both runs).
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
need_apt "command -v valgrind" valgrind
if [ $# -lt 3 ]; then
  echo "usage: $0 <cairn binary> <plugin.wasm> <input.jsonl> [more run flags]" >&2
  exit 2
fi
CAIRN="$1"; PLUGIN="$2"; INPUT="$3"; shift 3
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
head -n 100000 "$INPUT" > "$TMP/many.jsonl"
head -n 1 "$INPUT" > "$TMP/one.jsonl"
N="$(wc -l < "$TMP/many.jsonl")"
count() {
  local input="$1"; shift
  valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null --smc-check=all-non-file \
    "$CAIRN" run --plugin "$PLUGIN" --input "$input" --output - --batch-size 1024 "$@" 2>&1 >/dev/null \
    | sed -n 's/.*I *refs: *\([0-9,]*\).*/\1/p' | tr -d ,
}
# Once without counting, under valgrind too: the first run of a binary or plugin compiles the
# component, and an artifact compiled outside valgrind does not load inside it (valgrind's CPU
# reports other features), so it would be compiled again inside the first counted run.
valgrind -q --tool=none --smc-check=all-non-file \
  "$CAIRN" run --plugin "$PLUGIN" --input "$TMP/one.jsonl" --output - --batch-size 1024 "$@" >/dev/null 2>&1
MANY="$(count "$TMP/many.jsonl" "$@")"
ONE="$(count "$TMP/one.jsonl" "$@")"
echo "$(( (MANY - ONE) / (N - 1) )) instructions per event ($PLUGIN, $N events)"
