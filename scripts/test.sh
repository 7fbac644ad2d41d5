#!/usr/bin/env bash
# Runs every test of gantry: unit, integration (real sockets on 127.0.0.1) and doc
# tests. It sets up whatever the tests need first, so it works on a fresh machine
# with only the Rust toolchain installed.
set -euo pipefail
cd "$(dirname "$0")/.."

# protoc comes from the protoc-bin-vendored crate: nothing to install for the build.
exec cargo test --locked "$@"
