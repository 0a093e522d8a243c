#!/usr/bin/env bash
# Fuzz a target for a bounded time: bash scripts/fuzz.sh <checkpoint_decode|jsonl_parse|codec_decode> [seconds]
# Needs the nightly toolchain; installs cargo-fuzz if missing.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
TARGET="${1:?usage: scripts/fuzz.sh <checkpoint_decode|jsonl_parse|codec_decode> [seconds]}"
SECS="${2:-600}"
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz" >&2
  cargo +nightly install cargo-fuzz --locked
fi
cd fuzz
# The fuzz crate has its own target dir (sanitizer builds do not mix with the others).
CARGO_TARGET_DIR="${CARGO_TARGET_DIR}/fuzz" cargo +nightly fuzz run "$TARGET" -- -max_total_time="$SECS" -rss_limit_mb=4096
