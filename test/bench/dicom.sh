#!/usr/bin/env bash
# DICOM receive benchmark (issue 4): 500 CT instances of 0.5 MB, sent by
# storescu over one association to wardgate (durable: fsync per instance)
# and to `storescp -od DIR` (no fsync), both with TCP_NODELAY=1; then the
# same with 4 parallel associations. Prints both times and their ratio.
# Usage: test/bench/dicom.sh [N]   (default 500)
set -euo pipefail
N=${1:-500}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
W=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$W"' EXIT
export TCP_NODELAY=1
cd "$ROOT"
go build -o "$W/wardgate" ./cmd/wardgate
mkdir -p "$W/in" "$W/scp"
go run ./test/bench/gendicom "$N" "$W/in"
for p in 0 1 2 3; do mkdir -p "$W/in/p$p"; done
i=0; for f in "$W"/in/*.dcm; do ln "$f" "$W/in/p$((i % 4))/"; i=$((i+1)); done
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
SCP=$(free_port); WG=$(free_port)
storescp -od "$W/scp" "$SCP" & 
cat >"$W/wardgate.yaml" <<YAML
site: bench
data_dir: $W/data
http: {listen: 127.0.0.1:0}
fhir: {base_url: http://127.0.0.1:9/R4, patient_identifier_system: urn:oid:1.2.3.4}
log: {level: warn}
dicom: {listen: "127.0.0.1:$WG", ae_title: WARDGATE, study_stable_after: 1h}
YAML
"$W/wardgate" run -config "$W/wardgate.yaml" 2>"$W/wardgate.log" &
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$WG) 2>/dev/null && (echo >/dev/tcp/127.0.0.1/$SCP) 2>/dev/null && break; sleep 0.1; done
t() { local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); echo "$e - $s" | bc; }
one() { storescu -xi -aec "$1" 127.0.0.1 "$2" "$W"/in/*.dcm; }
four() { for p in 0 1 2 3; do storescu -xi -aec "$1" 127.0.0.1 "$2" "$W"/in/p$p/*.dcm & done; wait; }
sync
S1=$(t one STORESCP "$SCP"); rm -rf "$W/scp"/*; sync
W1=$(t one WARDGATE "$WG")
kill %2; wait %2 2>/dev/null || true; rm -rf "$W/data"
"$W/wardgate" run -config "$W/wardgate.yaml" 2>>"$W/wardgate.log" &
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$WG) 2>/dev/null && break; sleep 0.1; done
sync
S4=$(t four STORESCP "$SCP"); sync
W4=$(t four WARDGATE "$WG")
printf '%d instances of 0.5 MB, one association:   storescp %.2fs  wardgate %.2fs  ratio %.2f\n' "$N" "$S1" "$W1" "$(echo "$W1 / $S1" | bc -l)"
printf '%d instances of 0.5 MB, 4 associations:    storescp %.2fs  wardgate %.2fs  ratio %.2f\n' "$N" "$S4" "$W4" "$(echo "$W4 / $S4" | bc -l)"
