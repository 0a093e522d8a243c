#!/usr/bin/env bash
# Run the benches (release) and print their summary tables with ratios:
#   runtime    — WASM vs native per event, state call cost, empty call, cold start (cache vs compile)
#   checkpoint — delta vs full at 1M keys / 1% dirty, processing-thread pause, restore time
#   end to end — whole `cairn run`s of counter, window and dedup vs the same jobs as plain native
#                programs (tests/src/bin/native-*.rs), with and without a file checkpoint store
# The plugins are built by the cairn-tests crate's build script, like for the tests.
#   languages  — the counter in Rust, Python, JavaScript and C: events/s, cold and warm start
#                (tests/src/bin/lang-bench.rs; needs the toolchains of scripts/toolchains.sh)
#   streams    — the counter NATS -> NATS, exactly-once and at-least-once, beside file -> file:
#                events/s and publish-to-visible latency (tests/src/bin/stream-bench.rs; needs nats-server)
#   cluster    — a sharded job (16 shards) run by 1, 2 and 3 workers beside `cairn run` NATS -> NATS:
#                events/s, CPU per event, commit latency, failover time (tests/src/bin/cluster-bench.rs)
#   parallel   — counter, window and dedup end to end at --parallelism 1, 2 and 4: events/s,
#                N ÷ 1, CPU time per thread (part of the end-to-end bench)
# `bash scripts/bench.sh e2e` runs only the end-to-end bench, `bash scripts/bench.sh langs` only
# the languages bench, `bash scripts/bench.sh streams` only the streams bench,
# `bash scripts/bench.sh parallel` only the parallel table, `bash scripts/bench.sh cluster` only
# the sharded-job bench.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
source "$ROOT/scripts/toolchains.sh"
if [ "${1:-}" = "langs" ]; then
  need_guest_toolchains
  cargo build --release -p cairn -p cairn-tests --bins >&2
  exec "$CARGO_TARGET_DIR/release/lang-bench" "${@:2}"
fi
if [ "${1:-}" = "streams" ]; then
  need_nats_server
  cargo build --release -p cairn -p cairn-tests --bins >&2
  exec "$CARGO_TARGET_DIR/release/stream-bench" "${@:2}"
fi
if [ "${1:-}" = "cluster" ]; then
  need_nats_server
  cargo build --release -p cairn -p cairn-tests --bins >&2
  exec "$CARGO_TARGET_DIR/release/cluster-bench" "${@:2}"
fi
if [ "${1:-}" = "parallel" ]; then
  cargo build --release -p cairn -p cairn-tests --bins >&2
  exec "$CARGO_TARGET_DIR/release/e2e-bench" --only parallel "${@:2}"
fi
if [ "${1:-}" != "e2e" ]; then
  for b in runtime checkpoint; do
    echo "==> cargo bench -p cairn --bench $b" >&2
    cargo bench -p cairn --bench "$b" -- "$@"
  done
fi
echo "==> end to end: cargo build --release -p cairn -p cairn-tests --bins" >&2
cargo build --release -p cairn -p cairn-tests --bins >&2
"$CARGO_TARGET_DIR/release/e2e-bench"
need_guest_toolchains
"$CARGO_TARGET_DIR/release/lang-bench"
need_nats_server
"$CARGO_TARGET_DIR/release/stream-bench"
"$CARGO_TARGET_DIR/release/cluster-bench"
