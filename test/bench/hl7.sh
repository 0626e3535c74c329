#!/usr/bin/env bash
# HL7 results benchmark (issue 12, "Speed"): IHE PCD-01 ORU^R01 messages of
# 20 OBX each (12 values at most, the rest MDS/VMD/channel rows, as a GE
# sender writes them) from a simulated central station (test/bench/hl7load,
# devices/sim/hl7sim) to a running wardgate's hl7 listener:
#   1. throughput: M messages (default 20000) on 8 connections, each
#      waiting for its ACK before sending the next;
#   2. latency: RATE messages/s (default 200) for RATE_SECONDS (default 15)
#      on the same 8 connections, ACK latency p50/p99.
# The gateway acknowledges only after the readings are committed to its
# outbox (fsync). Each run starts on a fresh data folder. The FHIR server is
# not reachable (as in dicom.sh): delivery retries in the background and the
# outbox keeps everything, so what is measured is intake up to the commit.
# Patients come from PID-3 record numbers (assigning authority HOSP, mapped
# to fhir.patient_identifier_system).
# Usage: test/bench/hl7.sh [M] [RATE] [RATE_SECONDS]
set -euo pipefail
M=${1:-20000}
RATE=${2:-200}
RATE_SECONDS=${3:-15}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
W=$(mktemp -d)
PIDS=()
stop_all() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; PIDS=(); }
trap 'stop_all; rm -rf "$W"' EXIT
command -v python3 >/dev/null || { echo "test/bench/hl7.sh: python3 is missing (./test/run installs the test peers)" >&2; exit 1; }
cd "$ROOT"
go build -o "$W/wardgate" ./cmd/wardgate
go build -o "$W/hl7load" ./test/bench/hl7load

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return; sleep 0.05; done; echo "nothing listens on $1 (see $W/wardgate.log)" >&2; cat "$W/wardgate.log" >&2; exit 1; }

start_wardgate() {
  rm -rf "$W/data"; PORT=$(free_port)
  cat >"$W/wardgate.yaml" <<YAML
site: bench
data_dir: $W/data
http: {listen: 127.0.0.1:0}
fhir: {base_url: http://127.0.0.1:9/R4, patient_identifier_system: urn:oid:1.2.3.4}
log: {level: warn}
hl7:
  listen: "127.0.0.1:$PORT"
  allow_any: true
  time_zone: UTC
  bed: "{point_of_care}-{bed}"
  assigning_authority: HOSP
YAML
  if ! "$W/wardgate" check -config "$W/wardgate.yaml" >/dev/null 2>"$W/check.log"; then
    echo "test/bench/hl7.sh: this wardgate does not take the hl7 config:" >&2; cat "$W/check.log" >&2; exit 1
  fi
  "$W/wardgate" run -config "$W/wardgate.yaml" 2>>"$W/wardgate.log" & PIDS+=($!); wait_port "$PORT"
}

echo "throughput: $M messages, 8 connections, each waiting for its ACK" >&2
start_wardgate; sync
T=$("$W/hl7load" -addr "127.0.0.1:$PORT" -messages "$M" -connections 8 -obx 20)
stop_all
echo "latency: $RATE messages/s for $RATE_SECONDS s" >&2
start_wardgate; sync
L=$("$W/hl7load" -addr "127.0.0.1:$PORT" -messages $((RATE * RATE_SECONDS)) -connections 8 -obx 20 -rate "$RATE")
stop_all
echo "$T"
echo "$L"
if grep -q "level=ERROR" "$W/wardgate.log"; then
  echo "wardgate logged errors:" >&2; grep "level=ERROR" "$W/wardgate.log" | head -5 >&2
fi
