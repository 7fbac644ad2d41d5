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

need() { command -v "$1" >/dev/null 2>&1; }
if ! need h2load || ! need haproxy || ! need taskset || ! need openssl; then
  echo "installing nghttp2-client (h2load), haproxy and openssl from Debian..." >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -q \
    nghttp2-client haproxy openssl util-linux >/dev/null
fi

echo "building gantry and the backend (release)..." >&2
(cd "$ROOT" && cargo build --release --locked -q --bin gantry --example bench_backend)
GANTRY=$ROOT/target/release/gantry
BACKEND=$ROOT/target/release/examples/bench_backend

# One ECDSA P-256 certificate for both proxies.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
cat "$WORK/cert.pem" "$WORK/key.pem" >"$WORK/haproxy.pem"

ports=($(python3 - <<'EOF'
import socket
socks = []
for _ in range(4):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
))
B1=${ports[0]} B2=${ports[1]} PG=${ports[2]} PH=${ports[3]}

wait_port() {
  for _ in $(seq 1 500); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.02
  done
  echo "nothing listens on 127.0.0.1:$1" >&2; exit 1
}

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
task() {
  cat <<EOF
[[task]]
id = "$1"
ip = "127.0.0.1"
ports = [$2]
[task.labels]
"traefik.enable" = "true"
"traefik.http.routers.echo.rule" = "GRPCService(\`gantry.test.Echo\`)"
"traefik.http.routers.echo.tls" = "true"
"traefik.http.services.echo.loadbalancer.server.scheme" = "h2c"
EOF
}
{ task b1 $B1; task b2 $B2; } >"$WORK/tasks.toml"
taskset -c "$PROXY_CPU" "$GANTRY" --config "$WORK/gantry.toml" & PIDS+=($!); GANTRY_PID=$!

cat >"$WORK/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 20000
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

python3 - "$WORK" <<'EOF'
import struct, sys
msg = b"\x0a\x0a" + b"x" * 10
open(f"{sys.argv[1]}/body", "wb").write(b"\x00" + struct.pack(">I", len(msg)) + msg)
EOF

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK_US=$((1000000 / $(getconf CLK_TCK)))

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

median() { sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

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
echo
echo "TLS 1.3 termination, 10 B unary, saturated ($CONNS connections x $STREAMS streams), medians of $ROUNDS"
printf '%-8s %10s %8s %8s %12s\n' proxy calls/s p50_ms p99_ms cpu_us/call
for c in "${ORDER[@]}"; do
  printf '%-8s %10.0f %8.2f %8.2f %12.2f\n' "$c" "$(col "$WORK/calls-$c" 1)" \
    "$(col "$WORK/calls-$c" 2)" "$(col "$WORK/calls-$c" 3)" "$(col "$WORK/calls-$c" 4)"
done
echo
echo "new TLS connections, one call each ($HANDSHAKES per run, all at once)"
printf '%-8s %10s %8s %8s %12s\n' proxy conns/s p50_ms p99_ms cpu_us/conn
for c in "${ORDER[@]}"; do
  printf '%-8s %10.0f %8.2f %8.2f %12.2f\n' "$c" "$(col "$WORK/conns-$c" 1)" \
    "$(col "$WORK/conns-$c" 2)" "$(col "$WORK/conns-$c" 3)" "$(col "$WORK/conns-$c" 4)"
done
