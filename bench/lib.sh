# Shared by bench/compare.sh and bench/tls.sh (sourced, not run): tools, ports,
# the gantry tasks of the bench backends, CPU accounting, medians, request bodies.
# The caller sets PIDS=() and WORK before sourcing, and cleans up on exit.

need() { command -v "$1" >/dev/null 2>&1; }

# Installs the Debian packages of the commands missing from "command:package" pairs.
need_all() {
  local missing=() pair
  for pair in "$@"; do need "${pair%%:*}" || missing+=("${pair#*:}"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing ${missing[*]} from Debian..." >&2
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -q "${missing[@]}" >/dev/null
}

# N free loopback ports, chosen by the kernel.
free_ports() {
  python3 -c '
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
' "$1"
}

wait_port() {
  for _ in $(seq 1 500); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.02
  done
  echo "nothing listens on 127.0.0.1:$1" >&2; exit 1
}

# A tasks-file entry routing Echo to one h2c backend, with extra labels
# (after "traefik.http."): bench_task ID PORT [routers.echo.tls=true ...]
bench_task() {
  local id=$1 port=$2 kv; shift 2
  printf '[[task]]\nid = "%s"\nip = "127.0.0.1"\nports = [%s]\n[task.labels]\n' "$id" "$port"
  printf '"traefik.enable" = "true"\n'
  printf '"traefik.http.routers.echo.rule" = "GRPCService(`gantry.test.Echo`)"\n'
  printf '"traefik.http.services.echo.loadbalancer.server.scheme" = "h2c"\n'
  for kv in "$@"; do printf '"traefik.http.%s" = "%s"\n' "${kv%%=*}" "${kv#*=}"; done
}

# User + system CPU ticks of a process, and microseconds per tick.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK_US=$((1000000 / $(getconf CLK_TCK)))

median() { sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

# One gRPC frame holding EchoRequest{payload: SIZE bytes}: echo_body FILE SIZE
echo_body() {
  python3 -c '
import struct, sys
def varint(n):
    out = b""
    while True:
        b = n & 0x7f; n >>= 7
        out += bytes([b | (0x80 if n else 0)])
        if not n: return out
size = int(sys.argv[2])
msg = b"\x0a" + varint(size) + b"x" * size
open(sys.argv[1], "wb").write(b"\x00" + struct.pack(">I", len(msg)) + msg)
' "$1" "$2"
}
