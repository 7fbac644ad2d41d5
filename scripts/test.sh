#!/usr/bin/env bash
# Runs every test of gantry: unit, integration (real sockets on 127.0.0.1) and doc
# tests. It sets up whatever the tests need first, so it works on a fresh machine
# with only the Rust toolchain and python3 installed:
# - .venv/ (git-ignored): a Python virtualenv with moto's server, from
#   tests/moto/requirements.txt, for the ECS integration tests (tests/support/moto.rs
#   runs tests/moto/gantry_moto.py with .venv/bin/python), and grpcio, from
#   tests/interop/python/requirements.txt, for the gRPC interop matrix
#   (tests/interop.rs). It is created if missing and reinstalled only when one of
#   the requirements files changed since the last install.
# - tests/interop/node/node_modules: @grpc/grpc-js for the interop matrix, from its
#   package-lock.json (`npm ci`), reinstalled only when it is missing or the lock
#   changed since the last install.
# - what scripts/browser-setup.sh installs for the dashboard test.
# Arguments are passed to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
requirements=(tests/moto/requirements.txt tests/interop/python/requirements.txt)
stamp="$venv/.requirements.sha256"

if [[ ! -x "$venv/bin/python" ]]; then
    echo "test.sh: creating $venv" >&2
    python3 -m venv "$venv" || {
        echo "test.sh: python3 -m venv failed (is python3 with venv installed?)" >&2
        exit 1
    }
fi
wanted="$(cat "${requirements[@]}" | sha256sum | cut -d' ' -f1)"
if [[ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]]; then
    echo "test.sh: installing ${requirements[*]} into $venv" >&2
    rm -f "$stamp"
    "$venv/bin/python" -m pip install --disable-pip-version-check -q \
        "${requirements[@]/#/--requirement=}" || {
        echo "test.sh: pip install of ${requirements[*]} failed" >&2
        exit 1
    }
    echo "$wanted" >"$stamp"
fi

./scripts/browser-setup.sh

# browser-setup.sh has checked that node and npm are installed.
node_dir=tests/interop/node
node_stamp="$node_dir/node_modules/.lock-sha"
wanted="$(sha256sum "$node_dir/package-lock.json" | cut -d' ' -f1)"
if [[ ! -d "$node_dir/node_modules" || "$(cat "$node_stamp" 2>/dev/null)" != "$wanted" ]]; then
    echo "test.sh: installing $node_dir/node_modules (npm ci)" >&2
    log="$(mktemp)"
    (cd "$node_dir" && npm ci --no-audit --no-fund) >"$log" 2>&1 || {
        cat "$log" >&2
        rm -f "$log"
        echo "test.sh: npm ci in $node_dir failed" >&2
        exit 1
    }
    rm -f "$log"
    echo "$wanted" >"$node_stamp"
fi

# protoc comes from the protoc-bin-vendored crate: nothing to install for the build.
exec cargo test --locked "$@"
