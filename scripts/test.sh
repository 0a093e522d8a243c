#!/usr/bin/env bash
# Run every test: install what they need (redis-server for the Redis tests, libclang-dev to
# build RocksDB, chromium for the status page, s3s-fs for the S3 tests), then the workspace's tests in release mode (wasmtime is too slow
# unoptimised) with the RocksDB store. The tests build the plugins themselves
# (tests/build.rs) and cargo builds the `cairn` binary the CLI tests run.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
need_apt "command -v redis-server" redis-server
need_apt "dpkg -s libclang-dev" libclang-dev
need_apt "command -v chromium" chromium
need_cargo_tool s3s-fs 0.14.1 --features binary
echo "==> cargo test --release --workspace --features cairn/rocksdb" >&2
cargo test --release --workspace --features cairn/rocksdb "$@"
