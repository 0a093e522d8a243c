# Shared setup for the scripts: toolchain check, wasm target, target dir.
# Sourced, not run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo not found; install Rust with rustup (https://rustup.rs) and run again" >&2
  exit 1
fi
# rust-toolchain.toml pins the toolchain; make sure it and the wasm target are installed.
if command -v rustup >/dev/null 2>&1; then
  TOOLCHAIN="$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)"
  if ! rustup target list --installed --toolchain "$TOOLCHAIN" 2>/dev/null | grep -qx wasm32-wasip2; then
    echo "==> installing Rust $TOOLCHAIN with the wasm32-wasip2 target" >&2
    rustup toolchain install "$TOOLCHAIN" --profile minimal --component rustfmt,clippy >&2
    rustup target add wasm32-wasip2 --toolchain "$TOOLCHAIN" >&2
  fi
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

# Install a Debian package if `check` (a command) fails. Uses sudo when not root.
need_apt() {
  local check="$1"; shift
  if eval "$check" >/dev/null 2>&1; then return 0; fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: $* is needed and apt-get is not available; install it with your package manager" >&2
    exit 1
  fi
  local SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  echo "==> installing $* (apt-get)" >&2
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

# Tools the tests run, installed by cargo into a cache outside the clone, pinned.
TOOLS="${CAIRN_TOOLS:-$HOME/.cache/cairn/tools}"
export PATH="$TOOLS/bin:$PATH"
need_cargo_tool() {
  local name="$1" version="$2"; shift 2
  if "$TOOLS/bin/$name" --version 2>/dev/null | grep -qF "$version"; then return 0; fi
  echo "==> installing $name $version (cargo install, once)" >&2
  env -u CARGO_TARGET_DIR cargo install --locked --quiet --root "$TOOLS" "$name" --version "$version" "$@" >&2
}
