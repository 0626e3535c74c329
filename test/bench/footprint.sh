#!/usr/bin/env bash
# The idle gateway's footprint (issue 15, "A smaller footprint"): the
# static release binary (CGO_ENABLED=0, -trimpath, -s -w, as build.sh makes
# it) started with the README's example config (every section: monitors on
# a serial port and MQTT, patients with the ADT feed, hl7, dicom with a
# forward destination), on a fresh data folder, with nothing reachable (no
# record, no broker, no serial port, no PACS), as a box is before it is
# commissioned. Reported, each over RUNS starts (default 5):
#   - start to ready: from exec to the first 200 of /readyz, on the fresh
#     folder (its journals and reserves are made then) and again on the
#     folder the first start left (a restart);
#   - idle RSS (VmRSS, with RssAnon and RssFile) after IDLE seconds
#     (default 10), and the Go heap in use (/metrics);
#   - the data folder's size on disk (du) and the binary's size.
# Usage: test/bench/footprint.sh [RUNS] [IDLE]
set -euo pipefail
RUNS=${1:-5}
IDLE=${2:-10}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
W=$(mktemp -d)
PID=
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT
command -v curl >/dev/null || { echo "test/bench/footprint.sh: curl is missing" >&2; exit 1; }
cd "$ROOT"
CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$W/wardgate" ./cmd/wardgate
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ms() { date +%s%N | cut -c1-13; }
# start_ready starts the gateway and returns once /readyz answers 200.
start_ready() {
  "$W/wardgate" run -config "$W/wardgate.yaml" 2>"$W/log" &
  PID=$!
  until curl -sf -o /dev/null "http://127.0.0.1:$http/readyz"; do
    kill -0 "$PID" 2>/dev/null || { cat "$W/log" >&2; exit 1; }
    sleep 0.005
  done
}

for run in $(seq "$RUNS"); do
  rm -rf "$W/data"
  http=$(free_port) hl7=$(free_port) adt=$(free_port) dcm=$(free_port)
  awk '/<!-- example-config/ {m=1; next} m==1 && /^```yaml/ {m=2; next} m==2 && /^```/ {exit} m==2 {print}' README.md |
    sed -e "s|^data_dir: .*|data_dir: $W/data|" -e 's|^profiles_dir:|# profiles_dir:|' \
        -e "s|listen: 127.0.0.1:8080 |listen: 127.0.0.1:$http |" \
        -e "s|listen: \":2576\"|listen: \"127.0.0.1:$adt\"|" -e "s|listen: \":2575\"|listen: \"127.0.0.1:$hl7\"|" \
        -e "s|listen: \":11112\"|listen: \"127.0.0.1:$dcm\"|" > "$W/wardgate.yaml"
  grep -q "127.0.0.1:$http" "$W/wardgate.yaml" || { echo "footprint.sh: the README's example config changed: fix the port substitutions" >&2; exit 1; }
  t0=$(ms)
  start_ready
  t1=$(ms)
  sleep "$IDLE"
  rss=$(awk '/^VmRSS/ {print $2}' /proc/$PID/status)
  anon=$(awk '/^RssAnon/ {print $2}' /proc/$PID/status)
  file=$(awk '/^RssFile/ {print $2}' /proc/$PID/status)
  heap=$(curl -sf "http://127.0.0.1:$http/metrics" | awk '/^go_memstats_heap_inuse_bytes/ {printf "%.1f", $2/1048576}')
  disk=$(du -sk "$W/data" | cut -f1)
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
  t2=$(ms)
  start_ready
  t3=$(ms)
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
  printf 'run %d: ready in %d ms (restart: %d ms); idle RSS %.1f MiB (anon %.1f, file %.1f), heap in use %s MiB; data folder %.1f MiB\n' \
    "$run" $((t1 - t0)) $((t3 - t2)) "$(echo "$rss/1024" | bc -l)" "$(echo "$anon/1024" | bc -l)" "$(echo "$file/1024" | bc -l)" "$heap" "$(echo "$disk/1024" | bc -l)"
done
printf 'binary: %d bytes (static, linux/%s)\n' "$(stat -c %s "$W/wardgate")" "$(go env GOARCH)"
