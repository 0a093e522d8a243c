#!/usr/bin/env bash
# Run every test: install what they need (redis-server for the Redis tests, libclang-dev to
# build RocksDB), build the plugins (the tests load the real .wasm files) and the cairn binary
# with RocksDB, then the workspace's tests in release mode (wasmtime is too slow unoptimised).
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
need_apt "command -v redis-server" redis-server
need_apt "dpkg -s libclang-dev" libclang-dev
bash scripts/build-plugins.sh
echo "==> building the cairn binary with RocksDB (the end-to-end tests run it)" >&2
cargo build --quiet --release -p cairn --features rocksdb
echo "==> cargo test --release --workspace" >&2
cargo test --release --workspace "$@"
