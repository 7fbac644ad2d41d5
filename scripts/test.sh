#!/usr/bin/env bash
# Runs every test of gantry: unit, integration (real sockets on 127.0.0.1) and doc
# tests. It sets up whatever the tests need first, so it works on a fresh machine
# with only the Rust toolchain and python3 installed:
# - .venv/ (git-ignored): a Python virtualenv with moto's server, from
#   tests/moto/requirements.txt, for the ECS integration tests (tests/support/moto.rs
#   runs tests/moto/gantry_moto.py with .venv/bin/python). It is created if missing
#   and reinstalled only when requirements.txt changed since the last install.
# Arguments are passed to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
requirements=tests/moto/requirements.txt
stamp="$venv/.requirements.sha256"

if [[ ! -x "$venv/bin/python" ]]; then
    echo "test.sh: creating $venv" >&2
    python3 -m venv "$venv" || {
        echo "test.sh: python3 -m venv failed (is python3 with venv installed?)" >&2
        exit 1
    }
fi
wanted="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [[ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]]; then
    echo "test.sh: installing $requirements into $venv" >&2
    rm -f "$stamp"
    "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$requirements" || {
        echo "test.sh: pip install -r $requirements failed" >&2
        exit 1
    }
    echo "$wanted" >"$stamp"
fi

./scripts/browser-setup.sh

# protoc comes from the protoc-bin-vendored crate: nothing to install for the build.
exec cargo test --locked "$@"
