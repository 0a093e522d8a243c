#!/usr/bin/env bash
# Run every test: build the plugins (the tests load the real .wasm files), then the
# workspace's tests in release mode (wasmtime is too slow unoptimised).
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
bash scripts/build-plugins.sh
echo "==> building the cairn binary (the end-to-end tests run it)" >&2
cargo build --quiet --release -p cairn
echo "==> cargo test --release --workspace" >&2
cargo test --release --workspace "$@"
