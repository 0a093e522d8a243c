#!/usr/bin/env bash
# Run the criterion benches (release) and print their summary tables with ratios:
#   runtime    — WASM vs native per event, state call cost, empty call, cold start (cache vs compile)
#   checkpoint — delta vs full at 1M keys / 1% dirty, processing-thread pause, restore time
# The plugins are built by the cairn-tests crate's build script, like for the tests.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
for b in runtime checkpoint; do
  echo "==> cargo bench -p cairn --bench $b" >&2
  cargo bench -p cairn --bench "$b" -- "$@"
done
