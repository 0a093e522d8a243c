#!/usr/bin/env bash
# Fuzz a target for a bounded time: bash scripts/fuzz.sh <target> [seconds]
# Targets (fuzz/fuzz_targets/): checkpoint_decode jsonl_parse codec_decode pickle_decode marshal_json
# Runs on the pinned stable toolchain (a fresh machine has no nightly): cargo-fuzz (pinned,
# installed into the tools cache) drives libFuzzer with RUSTC_BOOTSTRAP=1 for its coverage
# options, without a sanitizer (safe Rust needs none to find panics, overflows and bad indexing).
# Prints libFuzzer's final statistics (executions, crashes); a crash leaves its input under
# fuzz/artifacts/<target>/ and the script fails.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
TARGETS="checkpoint_decode jsonl_parse codec_decode pickle_decode marshal_json"
TARGET="${1:?usage: scripts/fuzz.sh <$(echo "$TARGETS" | tr ' ' '|')> [seconds]}"
SECS="${2:-600}"
need_cargo_tool cargo-fuzz 0.13.2
cd fuzz
# The fuzz crate has its own target dir (fuzzing builds do not mix with the others).
RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="${CARGO_TARGET_DIR}/fuzz" \
  cargo fuzz run --sanitizer none -O "$TARGET" -- -max_total_time="$SECS" -rss_limit_mb=4096 -print_final_stats=1
