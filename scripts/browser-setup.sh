#!/usr/bin/env bash
# Sets up what the dashboard browser test (tests/browser/dashboard.mjs) needs:
# - Debian's chromium at /usr/bin/chromium, with fonts-liberation (apt-get; sudo only
#   when not root),
# - node and npm,
# - tests/browser/node_modules from package-lock.json (`npm ci`), reinstalled only when
#   node_modules is missing or package-lock.json changed since the last install
#   (sha256 stamp in node_modules/.lock-sha).
# Idempotent and quiet: prints one line saying what it did.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=tests/browser
lock="$dir/package-lock.json"
stamp="$dir/node_modules/.lock-sha"
did=()

die() {
    echo "browser-setup.sh: $*" >&2
    exit 1
}

if [[ ! -x /usr/bin/chromium ]]; then
    command -v apt-get >/dev/null 2>&1 || die "/usr/bin/chromium is missing and there is no apt-get to install it"
    sudo=()
    if [[ "$(id -u)" -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || die "/usr/bin/chromium is missing; installing it needs root or sudo"
        sudo=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    log="$(mktemp)"
    trap 'rm -f "$log"' EXIT
    # Update the package lists only when they are missing or do not know chromium.
    if [[ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -print -quit 2>/dev/null)" ]] \
        || ! apt-cache show chromium >/dev/null 2>&1; then
        "${sudo[@]}" apt-get update -q >"$log" 2>&1 || { cat "$log" >&2; die "apt-get update failed"; }
    fi
    # Recommends (udev, upower, a printer tool...) are not needed headless; fonts are.
    "${sudo[@]}" apt-get install -y -q --no-install-recommends chromium fonts-liberation >"$log" 2>&1 || {
        cat "$log" >&2
        die "apt-get install chromium failed"
    }
    [[ -x /usr/bin/chromium ]] || die "apt-get installed chromium but /usr/bin/chromium is still missing"
    did+=("installed chromium")
fi

command -v node >/dev/null 2>&1 || die "node is missing (install Node.js 20 or newer, e.g. apt-get install nodejs npm)"
command -v npm >/dev/null 2>&1 || die "npm is missing (install it, e.g. apt-get install npm)"
[[ -f "$lock" ]] || die "$lock is missing"

wanted="$(sha256sum "$lock" | cut -d' ' -f1)"
if [[ ! -d "$dir/node_modules" || "$(cat "$stamp" 2>/dev/null || true)" != "$wanted" ]]; then
    log="$(mktemp)"
    trap 'rm -f "$log"' EXIT
    (cd "$dir" && npm ci --no-audit --no-fund) >"$log" 2>&1 || {
        cat "$log" >&2
        die "npm ci in $dir failed"
    }
    echo "$wanted" >"$stamp"
    did+=("installed $dir/node_modules (npm ci)")
fi

if [[ ${#did[@]} -eq 0 ]]; then
    echo "browser-setup.sh: chromium and $dir/node_modules are already up to date"
else
    msg="${did[0]}"
    [[ ${#did[@]} -gt 1 ]] && msg="$msg; ${did[1]}"
    echo "browser-setup.sh: $msg"
fi
