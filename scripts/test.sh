#!/usr/bin/env bash
# Run every test: install what they need (redis-server for the Redis tests, libclang-dev to
# build RocksDB, chromium for the status page, s3s-fs for the S3 tests, the Python/JS/C
# toolchains for operators in those languages), then the workspace's tests in release mode (wasmtime is too slow
# unoptimised) with the RocksDB store. The tests build the plugins themselves
# (tests/build.rs) and cargo builds the `cairn` binary the CLI tests run.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
need_apt "command -v redis-server" redis-server
need_apt "dpkg -s libclang-dev" libclang-dev
need_apt "command -v chromium" chromium
need_cargo_tool s3s-fs 0.14.1 --features binary
# Python, JavaScript and C toolchains for the operators in plugins/<lang>/ (pinned; see the file).
source scripts/toolchains.sh
need_guest_toolchains
need_nats_server
echo "==> pytest guest-sdk/python (the Python SDK under CPython)" >&2
python -m pytest -q guest-sdk/python/tests >&2
echo "==> node --test guest-sdk/js/tests (the JavaScript SDK under node)" >&2
node --test guest-sdk/js/tests/ >&2
echo "==> cargo test --release --workspace --features cairn/rocksdb" >&2
cargo test --release --workspace --features cairn/rocksdb "$@"
