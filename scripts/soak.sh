#!/usr/bin/env bash
# Soak test: 1,000,000 gRPC calls (unary, server-, client- and bidi streaming) through
# gantry while the tasks file its file provider watches is rewritten every 100 ms and
# backends are killed and restarted; reports failed calls (only calls in flight on a
# killed backend may fail) and gantry's resident memory over time (no growth after the
# warm-up). The driver is examples/soak/; it runs the Echo backends itself.
#
#   scripts/soak.sh                          # the full soak (a few minutes here)
#   SOAK_CALLS=100000 scripts/soak.sh        # shorter
#
# Bounded: at most SOAK_CALLS calls (default 1,000,000) and SOAK_MAX_SECONDS of load
# (default 900; the build comes before and is not counted). Other knobs: SOAK_BACKENDS
# (4), SOAK_CONCURRENCY (48 calls in flight), SOAK_CONNS (4 HTTP/2 connections),
# SOAK_SWAP_MS (100), SOAK_RESTART_MS (3000: a backend killed this often),
# SOAK_DOWN_MS (500: how long it stays down), SOAK_KEEP=1 (keep the work directory).
#
# Loopback only. Every process it starts is killed by PID on exit, nothing else.
# Exit status: 0 pass, 1 fail (unexplained failures, memory growth, ...), 2 setup error.
set -euo pipefail

CALLS=${SOAK_CALLS:-1000000}
MAX_SECONDS=${SOAK_MAX_SECONDS:-900}
BACKENDS=${SOAK_BACKENDS:-4}
CONCURRENCY=${SOAK_CONCURRENCY:-48}
CONNS=${SOAK_CONNS:-4}
SWAP_MS=${SOAK_SWAP_MS:-100}
RESTART_MS=${SOAK_RESTART_MS:-3000}
DOWN_MS=${SOAK_DOWN_MS:-500}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/gantry-soak.XXXXXX)
PIDS=()
STATUS=2

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "$STATUS" -eq 0 ] && [ "${SOAK_KEEP:-0}" != 1 ]; then
    rm -rf "$WORK"
  else
    echo "soak: logs and files kept in $WORK" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "soak: building gantry and the driver (release)..." >&2
(cd "$ROOT" && cargo build --release --locked -q --bin gantry --example soak)
GANTRY=$ROOT/target/release/gantry
DRIVER=$ROOT/target/release/examples/soak

# Two free loopback ports, chosen by the kernel: gantry's entrypoint and API.
read -r PORT API_PORT < <(python3 - <<'EOF'
import socket
socks = []
for _ in range(2):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
)

cat >"$WORK/gantry.toml" <<EOF
[entrypoints.web]
address = "127.0.0.1:$PORT"
[api]
address = "127.0.0.1:$API_PORT"
[log]
level = "info"
[providers]
# throttle_ms = 100 (the default): at most one routing-table rebuild per 100 ms
[providers.file]
path = "tasks.toml"
watch = true
EOF
# The driver writes the real tasks once its backends listen.
echo 'task = []' >"$WORK/tasks.toml"

NO_COLOR=1 "$GANTRY" --config "$WORK/gantry.toml" >"$WORK/gantry.log" 2>&1 &
GANTRY_PID=$!
PIDS+=("$GANTRY_PID")
for _ in $(seq 1 250); do
  (exec 3<>/dev/tcp/127.0.0.1/"$API_PORT") 2>/dev/null && break
  kill -0 "$GANTRY_PID" 2>/dev/null || { echo "soak: gantry exited:" >&2; tail -20 "$WORK/gantry.log" >&2; exit 2; }
  sleep 0.02
done

echo "soak: gantry (pid $GANTRY_PID) on 127.0.0.1:$PORT, API 127.0.0.1:$API_PORT; $CALLS calls, at most $MAX_SECONDS s" >&2
set +e
# A hard stop in case the driver hangs: its own limit plus time to settle and report.
timeout --signal=KILL $((MAX_SECONDS + 120)) "$DRIVER" \
  --url "http://127.0.0.1:$PORT" --api "127.0.0.1:$API_PORT" --tasks "$WORK/tasks.toml" \
  --gantry-pid "$GANTRY_PID" --calls "$CALLS" --max-seconds "$MAX_SECONDS" \
  --backends "$BACKENDS" --concurrency "$CONCURRENCY" --conns "$CONNS" \
  --swap-ms "$SWAP_MS" --restart-ms "$RESTART_MS" --down-ms "$DOWN_MS" \
  | tee "$WORK/report.txt"
STATUS=${PIPESTATUS[0]}
set -e
[ "$STATUS" -eq 137 ] && echo "soak: the driver did not finish within $((MAX_SECONDS + 120)) s" >&2

if ! kill -0 "$GANTRY_PID" 2>/dev/null; then
  echo "soak: FAIL: gantry died during the soak:" >&2
  tail -30 "$WORK/gantry.log" >&2
  STATUS=1
fi
if grep -q "panicked" "$WORK/gantry.log"; then
  echo "soak: FAIL: gantry logged a panic:" >&2
  grep -m5 -A3 "panicked" "$WORK/gantry.log" >&2
  STATUS=1
fi
# What gantry logged, colours or not.
LOG=$(sed 's/\x1b\[[0-9;]*m//g' "$WORK/gantry.log")
count() { grep -c -- "$1" <<<"$LOG" || true; }
echo "soak: gantry logged $(count 'routing table updated') table updates, $(count ' WARN ') warnings" \
  "($(count 'outlier ejected') outlier ejections, $(count 'tasks file rejected') tasks files rejected" \
  "as read mid-write), $(count ' ERROR ') errors" >&2
exit "$STATUS"
