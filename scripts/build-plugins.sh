#!/usr/bin/env bash
# Build plugin crates under plugins/ for wasm32-wasip2 and copy each to
# dist/plugins/<crate-name>.wasm: the crates named as arguments, or every one.
# (The tests do not need this: they build the plugins themselves, see tests/build.rs.)
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
if [ "$#" -gt 0 ]; then
  CRATES=("$@")
else
  mapfile -t CRATES < <(for d in plugins/*/; do sed -n 's/^name *= *"\(.*\)"/\1/p' "$d/Cargo.toml" | head -1; done)
fi
ARGS=()
for c in "${CRATES[@]}"; do ARGS+=(-p "$c"); done
echo "==> building plugins: ${CRATES[*]}" >&2
cargo build --quiet --profile plugin --target wasm32-wasip2 "${ARGS[@]}"
mkdir -p dist/plugins
for c in "${CRATES[@]}"; do
  f="${c//-/_}.wasm"
  cp "$CARGO_TARGET_DIR/wasm32-wasip2/plugin/$f" "dist/plugins/$c.wasm"
done
echo "==> plugins in dist/plugins/: $(cd dist/plugins && ls | tr '\n' ' ')" >&2
