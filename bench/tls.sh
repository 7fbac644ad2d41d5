#!/usr/bin/env bash
# The cost of TLS termination: gantry (rustls, ring) against HAProxy (OpenSSL), both
# terminating h2 over TLS in front of two h2c gRPC backends, one interleaved run.
#
#   bench/tls.sh                          # 3 rounds
#   ROUNDS=5 CALLS=200000 HANDSHAKES=2000 bench/tls.sh
#
# Cases, per contestant:
# - saturated unary 10-byte calls over 16 TLS connections x 32 streams (connections
#   made once): calls/s, p50/p99, the proxy's CPU per call (TLS record work included);
# - HANDSHAKES new TLS connections with one call each, all opened at once: connections/s
#   and the proxy's CPU per connection (TLS 1.3 handshake with an ECDSA P-256
#   certificate, ALPN h2, the call, the close).
# Layout as bench/compare.sh: proxy on core 1, h2load and the backends on core 0.
# Loopback only; every process started here is killed by PID on exit.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
CALLS=${CALLS:-100000}
HANDSHAKES=${HANDSHAKES:-2000}
CONNS=${CONNS:-16}
STREAMS=${STREAMS:-32}
LOAD_CPU=${LOAD_CPU:-0}
PROXY_CPU=${PROXY_CPU:-1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/gantry-tls-bench.XXXXXX)
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
need_all h2load:nghttp2-client haproxy:haproxy openssl:openssl taskset:util-linux

echo "building gantry and the backend (release)..." >&2
(cd "$ROOT" && cargo build --release --locked -q --bin gantry --example bench_backend)
GANTRY=$ROOT/target/release/gantry
BACKEND=$ROOT/target/release/examples/bench_backend

# One ECDSA P-256 certificate for both proxies.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
cat "$WORK/cert.pem" "$WORK/key.pem" >"$WORK/haproxy.pem"

# Every handshake connection is open at once: a descriptor each, in each process.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

ports=($(free_ports 4))
B1=${ports[0]} B2=${ports[1]} PG=${ports[2]} PH=${ports[3]}

taskset -c "$LOAD_CPU" "$BACKEND" --name b1 --addr 127.0.0.1:$B1 >/dev/null & PIDS+=($!)
taskset -c "$LOAD_CPU" "$BACKEND" --name b2 --addr 127.0.0.1:$B2 >/dev/null & PIDS+=($!)
wait_port $B1; wait_port $B2

cat >"$WORK/gantry.toml" <<EOF
[entrypoints.websecure]
address = "127.0.0.1:$PG"
[entrypoints.websecure.tls]
certificates = [{ cert = "cert.pem", key = "key.pem" }]
[runtime]
worker_threads = 1
[log]
level = "warn"
[providers.file]
path = "tasks.toml"
watch = false
EOF
{ bench_task b1 $B1 routers.echo.tls=true; bench_task b2 $B2 routers.echo.tls=true; } >"$WORK/tasks.toml"
taskset -c "$PROXY_CPU" "$GANTRY" --config "$WORK/gantry.toml" & PIDS+=($!); GANTRY_PID=$!

cat >"$WORK/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 5000
  ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend fe
  bind 127.0.0.1:$PH ssl crt $WORK/haproxy.pem alpn h2,http/1.1
  option forwardfor
  default_backend be
backend be
  balance roundrobin
  http-reuse always
  server b1 127.0.0.1:$B1 proto h2
  server b2 127.0.0.1:$B2 proto h2
EOF
taskset -c "$PROXY_CPU" haproxy -db -f "$WORK/haproxy.cfg" & PIDS+=($!); HAPROXY_PID=$!
wait_port $PG; wait_port $PH

echo_body "$WORK/body" 10


# One run: prints "per_second p50_ms p99_ms cpu_us_per_unit".
run() { # name port pid calls conns streams
  local name=$1 port=$2 pid=$3 n=$4 c=$5 m=$6 log="$WORK/log-$1"
  local before after out
  before=$(cpu_ticks "$pid")
  rm -f "$log"
  out=$(taskset -c "$LOAD_CPU" h2load -n "$n" -c "$c" -m "$m" -t 1 \
    -H 'content-type: application/grpc' -H 'te: trailers' \
    -d "$WORK/body" --log-file="$log" \
    "https://127.0.0.1:$port/gantry.test.Echo/Unary" 2>&1)
  after=$(cpu_ticks "$pid")
  local done rps
  done=$(echo "$out" | awk '/^requests:/ {print $8}')
  rps=$(echo "$out" | awk '/^finished in/ {print $4}')
  if [ -z "$done" ] || [ "$done" = 0 ]; then
    echo "$name: no call succeeded:" >&2; echo "$out" >&2; exit 1
  fi
  if ! echo "$out" | grep -q 'TLS Protocol: TLSv1.3'; then
    echo "$name: not TLS 1.3:" >&2; echo "$out" | grep -i tls >&2 || true
  fi
  local pct cpu
  pct=$(sort -n -k3 "$log" | awk '{t[NR]=$3} END {printf "%.3f %.3f", t[int(NR*0.5)]/1000, t[int(NR*0.99)]/1000}')
  cpu=$(awk -v d=$((after - before)) -v n="$done" -v t=$TICK_US 'BEGIN {printf "%.2f", d * t / n}')
  echo "$rps $pct $cpu"
}

declare -A PORT=([gantry]=$PG [haproxy]=$PH)
declare -A PID=([gantry]=$GANTRY_PID [haproxy]=$HAPROXY_PID)
ORDER=(gantry haproxy)

for c in "${ORDER[@]}"; do run "$c" "${PORT[$c]}" "${PID[$c]}" 20000 "$CONNS" "$STREAMS" >/dev/null; done
for r in $(seq 1 "$ROUNDS"); do
  for c in "${ORDER[@]}"; do
    run "$c" "${PORT[$c]}" "${PID[$c]}" "$CALLS" "$CONNS" "$STREAMS" >>"$WORK/calls-$c"
    # Each of HANDSHAKES connections makes one call: the handshake dominates.
    run "$c" "${PORT[$c]}" "${PID[$c]}" "$HANDSHAKES" "$HANDSHAKES" 1 >>"$WORK/conns-$c"
    echo "  round $r/$ROUNDS, $c done" >&2
  done
done

col() { awk -v k="$2" '{print $k}' "$1" | median; }
table() { # title unit file-prefix
  echo
  echo "$1"
  printf '%-8s %10s %8s %8s %12s\n' proxy "$2s/s" p50_ms p99_ms "cpu_us/$2"
  for c in "${ORDER[@]}"; do
    printf '%-8s %10.0f %8.2f %8.2f %12.2f\n' "$c" "$(col "$WORK/$3-$c" 1)" \
      "$(col "$WORK/$3-$c" 2)" "$(col "$WORK/$3-$c" 3)" "$(col "$WORK/$3-$c" 4)"
  done
}
table "TLS 1.3 termination, 10 B unary, saturated ($CONNS connections x $STREAMS streams), medians of $ROUNDS" call calls
table "new TLS connections, one call each ($HANDSHAKES per run, all at once), medians of $ROUNDS" conn conns
