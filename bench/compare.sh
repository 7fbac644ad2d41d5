#!/usr/bin/env bash
# Compares the cost of a proxied unary gRPC call through gantry, HAProxy and nginx,
# against calling a backend directly, in one interleaved run on this machine.
#
#   bench/compare.sh                 # 5 rounds of 200,000 calls per contestant and size
#   ROUNDS=3 CALLS=100000 bench/compare.sh
#
# Layout: each proxy runs one worker/thread pinned to core 1 (PROXY_CPU); h2load
# (one thread) and two single-threaded h2c gRPC backends (examples/bench_backend.rs:
# tonic, answering with the payload and nothing else) share core 0 (LOAD_CPU).
# Every proxy adds X-Forwarded-For (HAProxy `option forwardfor`, nginx
# `grpc_set_header`), as gantry always does. Load: 16 connections x 32 streams of unary Echo calls with a
# 10-byte and a 4 KiB message. Contestants are interleaved (direct, gantry, haproxy,
# nginx, direct, ...) so drift on a shared machine hits them alike.
#
# With examples/loadgen.rs (a small tonic load generator, also on core 0):
# - unary 10-byte calls at a fixed moderate rate, evenly paced (RATE calls/s, default
#   2,000, for RUN_SECONDS=10 s per run, over 4 connections): the latency each proxy adds
#   over direct calls when nothing queues;
# - one bidi stream with 32 messages in flight, and 64 bidi streams over 4 connections
#   with one message in flight each (RUN_SECONDS per run): messages/s, per-message round
#   trip p50/p99, proxy CPU per message;
# - 10,000 idle HTTP/2 client connections (IDLE_CONNS) opened to each proxy once,
#   after the rest: the proxy's resident memory per connection.
#
# Per contestant: calls/s, p50/p99 latency (from h2load's per-request log), the
# proxy's own CPU time per call (user+sys from /proc/PID/stat over the run, divided
# by the calls completed), and ratios. Loopback only; every process this script
# starts is killed by PID on exit, nothing else.
set -euo pipefail

ROUNDS=${ROUNDS:-5}
CALLS=${CALLS:-200000}
CONNS=${CONNS:-16}
RATE=${RATE:-2000}
SECONDS_EACH=${RUN_SECONDS:-10}
IDLE_CONNS=${IDLE_CONNS:-10000}
STREAMS=${STREAMS:-32}
LOAD_CPU=${LOAD_CPU:-0}
PROXY_CPU=${PROXY_CPU:-1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/gantry-bench.XXXXXX)
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
need_all h2load:nghttp2-client haproxy:haproxy nginx:nginx taskset:util-linux

echo "building gantry and the backend (release)..." >&2
(cd "$ROOT" && cargo build --release --locked -q --bin gantry --example bench_backend --example loadgen)
GANTRY=$ROOT/target/release/gantry
BACKEND=$ROOT/target/release/examples/bench_backend
LOADGEN=$ROOT/target/release/examples/loadgen

# The idle-connection case needs a descriptor per connection in each process.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((IDLE_CONNS + 500)) ]; then
  echo "note: ulimit -n is $(ulimit -n): fewer idle connections than $IDLE_CONNS" >&2
  IDLE_CONNS=$(( $(ulimit -n) - 500 ))
fi

ports=($(free_ports 5))
B1=${ports[0]} B2=${ports[1]} PG=${ports[2]} PH=${ports[3]} PN=${ports[4]}

taskset -c "$LOAD_CPU" "$BACKEND" --name b1 --addr 127.0.0.1:$B1 >/dev/null & PIDS+=($!)
taskset -c "$LOAD_CPU" "$BACKEND" --name b2 --addr 127.0.0.1:$B2 >/dev/null & PIDS+=($!)
wait_port $B1; wait_port $B2

# gantry: one worker thread, the two backends as one h2c service.
cat >"$WORK/gantry.toml" <<EOF
[entrypoints.web]
address = "127.0.0.1:$PG"
[runtime]
worker_threads = 1
[log]
level = "warn"
[providers.file]
path = "tasks.toml"
watch = false
EOF
{ bench_task b1 $B1; bench_task b2 $B2; } >"$WORK/tasks.toml"
taskset -c "$PROXY_CPU" "$GANTRY" --config "$WORK/gantry.toml" & PIDS+=($!); GANTRY_PID=$!

# HAProxy reserves two descriptors per maxconn and will not start beyond the limit:
# its share of the idle-connection case may be smaller.
HAPROXY_MAXCONN=$(( IDLE_CONNS + 100 ))
if [ "$(ulimit -n)" != unlimited ] && [ $(( HAPROXY_MAXCONN * 2 + 400 )) -gt "$(ulimit -n)" ]; then
  HAPROXY_MAXCONN=$(( ($(ulimit -n) - 400) / 2 ))
fi
declare -A IDLE=([gantry]=$IDLE_CONNS [haproxy]=$(( HAPROXY_MAXCONN - 100 < IDLE_CONNS ? HAPROXY_MAXCONN - 100 : IDLE_CONNS )) [nginx]=$IDLE_CONNS)

# HAProxy: one thread, h2 both sides, connections to the backends reused.
cat >"$WORK/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn $HAPROXY_MAXCONN
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend fe
  bind 127.0.0.1:$PH proto h2
  option forwardfor
  default_backend be
backend be
  balance roundrobin
  http-reuse always
  server b1 127.0.0.1:$B1 proto h2
  server b2 127.0.0.1:$B2 proto h2
EOF
taskset -c "$PROXY_CPU" haproxy -db -f "$WORK/haproxy.cfg" & PIDS+=($!); HAPROXY_PID=$!

# nginx: one worker, no master, grpc_pass with upstream keepalive.
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile $((IDLE_CONNS * 2 + 1000));
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections $((IDLE_CONNS * 2 + 1000)); }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/body;
  upstream backends {
    server 127.0.0.1:$B1;
    server 127.0.0.1:$B2;
    keepalive 64;
  }
  server {
    listen 127.0.0.1:$PN http2;
    http2_max_concurrent_streams 128;
    location / {
      grpc_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      grpc_pass grpc://backends;
    }
  }
}
EOF
taskset -c "$PROXY_CPU" nginx -p "$WORK/nginx" -c "$WORK/nginx.conf" & PIDS+=($!); NGINX_PID=$!
wait_port $PG; wait_port $PH; wait_port $PN

# Request bodies: one gRPC frame holding EchoRequest{payload: N bytes}.
echo_body "$WORK/body-10" 10
echo_body "$WORK/body-4k" 4096


# One run: prints "calls/s p50_ms p99_ms cpu_us_per_call".
run() { # name port pid body
  local name=$1 port=$2 pid=$3 body=$4 before after log="$WORK/log-$1"
  before=$([ "$pid" = - ] && echo 0 || cpu_ticks "$pid")
  rm -f "$log" # h2load appends to its log file
  local out
  out=$(taskset -c "$LOAD_CPU" h2load -n "$CALLS" -c "$CONNS" -m "$STREAMS" -t 1 \
    -H 'content-type: application/grpc' -H 'te: trailers' \
    -d "$WORK/body-$body" --log-file="$log" \
    "http://127.0.0.1:$port/gantry.test.Echo/Unary" 2>&1)
  after=$([ "$pid" = - ] && echo 0 || cpu_ticks "$pid")
  local done rps
  done=$(echo "$out" | awk '/^requests:/ {print $8}')
  rps=$(echo "$out" | awk '/^finished in/ {print $4}')
  if [ -z "$done" ] || [ "$done" = 0 ]; then
    echo "$name: no call succeeded:" >&2; echo "$out" >&2; exit 1
  fi
  # The log: start time, HTTP status, microseconds per request.
  local pct
  pct=$(sort -n -k3 "$log" | awk '{t[NR]=$3} END {printf "%.3f %.3f", t[int(NR*0.5)]/1000, t[int(NR*0.99)]/1000}')
  local cpu
  cpu=$(awk -v d=$((after - before)) -v n="$done" -v t=$TICK_US 'BEGIN {printf "%.2f", d * t / n}')
  [ "$pid" = - ] && cpu=-
  echo "$rps $pct $cpu"
}

declare -A PORT=([direct]=$B1 [gantry]=$PG [haproxy]=$PH [nginx]=$PN)
declare -A PID=([direct]=- [gantry]=$GANTRY_PID [haproxy]=$HAPROXY_PID [nginx]=$NGINX_PID)
ORDER=(direct gantry haproxy nginx)

for body in 10 4k; do
  # Warm-up: connections, caches, JIT-free but page-cache-full.
  for c in "${ORDER[@]}"; do CALLS=20000 run "$c" "${PORT[$c]}" "${PID[$c]}" "$body" >/dev/null; done
  for r in $(seq 1 "$ROUNDS"); do
    for c in "${ORDER[@]}"; do
      echo "$(run "$c" "${PORT[$c]}" "${PID[$c]}" "$body")" >>"$WORK/results-$body-$c"
      echo "  round $r/$ROUNDS, $body-byte messages, $c done" >&2
    done
  done
done

# loadgen cases: fixed-rate unary, one bidi stream, 64 bidi streams.
# One run: prints "messages/s p50_ms p99_ms cpu_us_per_message".
stream_run() { # name port pid loadgen-args...
  local name=$1 port=$2 pid=$3; shift 3
  local before after out
  before=$([ "$pid" = - ] && echo 0 || cpu_ticks "$pid")
  out=$(taskset -c "$LOAD_CPU" "$LOADGEN" --url "http://127.0.0.1:$port" --seconds "$SECONDS_EACH" "$@") || {
    echo "$name: loadgen $*: failed: $out" >&2; exit 1; }
  after=$([ "$pid" = - ] && echo 0 || cpu_ticks "$pid")
  echo "$out" | awk -v d=$((after - before)) -v t=$TICK_US -v direct="$([ "$pid" = - ] && echo 1 || echo 0)" '{
    for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    cpu = direct ? "-" : sprintf("%.2f", d * t / v["messages"])
    printf "%s %.3f %.3f %s\n", v["per_second"], v["p50_us"] / 1000, v["p99_us"] / 1000, cpu
  }'
}
declare -A CASE_ARGS=(
  [rate]="--mode rate --rate $RATE --conns 4"
  [bidi1]="--mode bidi --streams 1 --window 32 --conns 1"
  [bidi64]="--mode bidi --streams 64 --window 1 --conns 4"
)
for case in rate bidi1 bidi64; do
  for r in $(seq 1 "$ROUNDS"); do
    for c in "${ORDER[@]}"; do
      # shellcheck disable=SC2086 # the arguments are words
      echo "$(stream_run "$c" "${PORT[$c]}" "${PID[$c]}" ${CASE_ARGS[$case]})" >>"$WORK/results-$case-$c"
      echo "  round $r/$ROUNDS, $case, $c done" >&2
    done
  done
done

# Idle connections, last: memory a proxy takes may not be given back.
for c in gantry haproxy nginx; do
  "$LOADGEN" --url "http://127.0.0.1:${PORT[$c]}" --mode idle --conns "${IDLE[$c]}" --rss-pid "${PID[$c]}" \
    >"$WORK/results-idle-$c" || { echo "$c: idle connections failed" >&2; exit 1; }
  echo "  idle connections, $c done" >&2
done

echo
echo "unary gRPC, $CONNS connections x $STREAMS streams, $CALLS calls per run, median of $ROUNDS interleaved runs"
echo "(proxies: 1 worker on core $PROXY_CPU; h2load and 2 single-threaded backends on core $LOAD_CPU)"
for body in 10 4k; do
  echo
  printf '%-8s message %-4s %12s %9s %9s %14s %10s\n' "" "$body" "calls/s" "p50 ms" "p99 ms" "CPU us/call" "vs direct"
  declare -A RPS CPU
  for c in "${ORDER[@]}"; do
    f="$WORK/results-$body-$c"
    RPS[$c]=$(awk '{print $1}' "$f" | median)
    p50=$(awk '{print $2}' "$f" | median)
    p99=$(awk '{print $3}' "$f" | median)
    if [ "$c" = direct ]; then CPU[$c]=-; else CPU[$c]=$(awk '{print $4}' "$f" | median); fi
    ratio=$(awk -v a="${RPS[$c]}" -v d="${RPS[direct]}" 'BEGIN {printf "%.2f", a / d}')
    printf '%-22s %12.0f %9.3f %9.3f %14s %10s\n' "$c" "${RPS[$c]}" "$p50" "$p99" "${CPU[$c]}" "$ratio"
  done
  for peer in haproxy nginx; do
    awk -v g="${CPU[gantry]}" -v p="${CPU[$peer]}" -v gr="${RPS[gantry]}" -v pr="${RPS[$peer]}" -v peer="$peer" \
      'BEGIN {printf "gantry vs %-8s CPU per call x%.2f, calls/s x%.2f\n", peer, g / p, gr / pr}'
  done
done

echo
echo "fixed rate: $RATE unary calls/s of 10 bytes for $SECONDS_EACH s (loadgen, 4 connections), latency added over direct"
printf '%-22s %9s %9s %12s %12s %14s\n' "" "p50 ms" "p99 ms" "+p50 ms" "+p99 ms" "CPU us/call"
d50=$(awk '{print $2}' "$WORK/results-rate-direct" | median)
d99=$(awk '{print $3}' "$WORK/results-rate-direct" | median)
for c in "${ORDER[@]}"; do
  f="$WORK/results-rate-$c"
  p50=$(awk '{print $2}' "$f" | median); p99=$(awk '{print $3}' "$f" | median)
  cpu=-; [ "$c" != direct ] && cpu=$(awk '{print $4}' "$f" | median)
  awk -v a="$p50" -v b="$p99" -v c="$d50" -v d="$d99" -v n="$c" -v u="$cpu" \
    'BEGIN {printf "%-22s %9.3f %9.3f %12.3f %12.3f %14s\n", n, a, b, a - c, b - d, u}'
done

for case in bidi1 bidi64; do
  echo
  case $case in
    bidi1) echo "one bidi stream, 32 messages of 10 bytes in flight, $SECONDS_EACH s" ;;
    bidi64) echo "64 bidi streams over 4 connections, 1 message of 10 bytes in flight each, $SECONDS_EACH s" ;;
  esac
  printf '%-22s %12s %9s %9s %14s %10s\n' "" "messages/s" "p50 ms" "p99 ms" "CPU us/msg" "vs direct"
  d=$(awk '{print $1}' "$WORK/results-$case-direct" | median)
  for c in "${ORDER[@]}"; do
    f="$WORK/results-$case-$c"
    m=$(awk '{print $1}' "$f" | median); p50=$(awk '{print $2}' "$f" | median); p99=$(awk '{print $3}' "$f" | median)
    cpu=-; [ "$c" != direct ] && cpu=$(awk '{print $4}' "$f" | median)
    awk -v m="$m" -v a="$p50" -v b="$p99" -v u="$cpu" -v d="$d" -v n="$c" \
      'BEGIN {printf "%-22s %12.0f %9.3f %9.3f %14s %10.2f\n", n, m, a, b, u, m / d}'
  done
done

echo
echo "idle HTTP/2 client connections (preface, SETTINGS and one PING each)"
printf '%-22s %12s %14s %14s %16s\n' "" "connections" "RSS before MiB" "RSS after MiB" "KiB/connection"
for c in gantry haproxy nginx; do
  awk -v n="$c" '{
    for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    printf "%-22s %12s %14.1f %14.1f %16s\n", n, v["connections"], v["rss_before_kib"] / 1024, v["rss_after_kib"] / 1024, v["kib_per_connection"]
  }' "$WORK/results-idle-$c"
done
