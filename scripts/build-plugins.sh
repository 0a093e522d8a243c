#!/usr/bin/env bash
# Build the plugins into dist/plugins/: the Rust crates under plugins/ (the examples) and
# tests/programs/ (test fixtures) for wasm32-wasip2
# (dist/plugins/<crate-name>.wasm) and, with no arguments, also the Python, JavaScript and C
# operators under plugins/<lang>/ with `cairn build` (dist/plugins/<name>.wasm, e.g.
# counter-python.wasm; installs their pinned toolchains, see scripts/toolchains.sh).
# Arguments name Rust crates to build instead of everything.
# (The tests do not need this: they build the plugins themselves, see tests/build.rs.)
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
if [ "$#" -gt 0 ]; then
  CRATES=("$@")
else
  mapfile -t CRATES < <(for d in plugins/*/ tests/programs/*/; do [ -f "$d/Cargo.toml" ] && sed -n 's/^name *= *"\(.*\)"/\1/p' "$d/Cargo.toml" | head -1; done)
fi
# A crate that is also an rlib (linked natively by the host's benches) is built on its own as a
# cdylib (`cargo rustc --crate-type cdylib`): cargo does not apply LTO to a crate with an rlib
# among its crate types (tests/build.rs does the same).
ARGS=()
RLIBS=()
for c in "${CRATES[@]}"; do
  manifest="$(grep -l "^name = \"$c\"" plugins/*/Cargo.toml tests/programs/*/Cargo.toml | head -1)"
  if grep -q '"rlib"' "$manifest"; then RLIBS+=("$c"); else ARGS+=(-p "$c"); fi
done
echo "==> building plugins: ${CRATES[*]}" >&2
if [ "${#ARGS[@]}" -gt 0 ]; then
  cargo build --quiet --profile plugin --target wasm32-wasip2 "${ARGS[@]}"
fi
for c in "${RLIBS[@]}"; do
  cargo rustc --quiet --profile plugin --target wasm32-wasip2 -p "$c" --crate-type cdylib
done
mkdir -p dist/plugins
for c in "${CRATES[@]}"; do
  f="${c//-/_}.wasm"
  cp "$CARGO_TARGET_DIR/wasm32-wasip2/plugin/$f" "dist/plugins/$c.wasm"
done
if [ "$#" -eq 0 ]; then
  source scripts/toolchains.sh
  need_guest_toolchains
  cargo build --quiet --release -p cairn
  for d in plugins/python/*/ plugins/js/*/ plugins/c/*/; do
    name="$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$d/cairn.toml" | head -1)"
    echo "==> cairn build $d" >&2
    "$CARGO_TARGET_DIR/release/cairn" build "$d" --out "dist/plugins/$name.wasm" >/dev/null
  done
fi
echo "==> plugins in dist/plugins/: $(cd dist/plugins && ls | tr '\n' ' ')" >&2
