#!/usr/bin/env bash
# IntelliVue soak (issue 14, "Speed"): 32 simulated IntelliVue monitors on
# loopback UDP with numerics every second (devices/sim/intellivuesim, in
# test/bench/ivsoak), each talked to by a running wardgate (the
# philips/intellivue-mx profile, one Data Export session per monitor), into
# the outbox for 10 minutes. The FHIR server is not reachable (as in the
# other benchmarks): what is measured is the gateway talking to the
# monitors and committing their readings. Reported: readings stored per
# second, dropped and lost (none may be lost), the gateway's CPU and RSS.
# The decoders' own speed: go test -run '^$' -bench . ./devices/intellivue/ ./devices/datex/
# Usage: test/bench/intellivue.sh [MONITORS] [DURATION]
set -euo pipefail
N=${1:-32}
DUR=${2:-10m}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
W=$(mktemp -d)
PID=
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT
cd "$ROOT"
go build -o "$W/wardgate" ./cmd/wardgate
go build -o "$W/ivsoak" ./test/bench/ivsoak
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HTTP=$(free_port)
BASE=$((20000 + RANDOM % 10000))
"$W/ivsoak" -n "$N" -base "$BASE" -config "$W/monitors.yaml"
cat >"$W/wardgate.yaml" <<YAML
site: soak
data_dir: $W/data
http: {listen: "127.0.0.1:$HTTP"}
fhir: {base_url: http://127.0.0.1:9/R4, patient_identifier_system: urn:oid:1.2.3.4}
log: {level: warn}
YAML
cat "$W/monitors.yaml" >>"$W/wardgate.yaml"
"$W/wardgate" check -config "$W/wardgate.yaml" >/dev/null
"$W/wardgate" run -config "$W/wardgate.yaml" 2>"$W/wardgate.log" &
PID=$!
until curl -sf -o /dev/null "http://127.0.0.1:$HTTP/readyz"; do sleep 0.05; done
"$W/ivsoak" -n "$N" -base "$BASE" -pid "$PID" -status "127.0.0.1:$HTTP" -for "$DUR"
if grep -q "level=ERROR" "$W/wardgate.log"; then
  echo "wardgate logged errors:" >&2; grep "level=ERROR" "$W/wardgate.log" | head -5 >&2
fi
