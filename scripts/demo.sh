#!/usr/bin/env bash
# The demo: build the host and the counter plugin (nothing else), run the counter over
# examples/sensors.jsonl, print the result.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
bash scripts/build-plugins.sh counter
echo "==> building the cairn host (release)" >&2
cargo build --quiet --release -p cairn
CAIRN="$CARGO_TARGET_DIR/release/cairn"
echo "==> cairn run --plugin dist/plugins/counter.wasm --input examples/sensors.jsonl --output -" >&2
"$CAIRN" run --plugin dist/plugins/counter.wasm --input examples/sensors.jsonl --output -
