#!/usr/bin/env bash
# DICOM receive benchmark: N CT instances of 0.5 MB (default 500) sent by
# DCMTK storescu (TCP_NODELAY=1) over one association, then over four in
# parallel, to
#   storescp  -od DIR            (writes files, no fsync: the floor)
#   Orthanc   SyncStorageArea on (durable, Debian's build, no plugins)
#   wardgate  (durable: Success only once the instance and its index
#             entry are on disk)
# each with a fresh store for every run; three runs, the median printed,
# with wardgate's ratio to storescp.
# Usage: test/bench/dicom.sh [N] [RUNS]
set -euo pipefail
N=${1:-500}
RUNS=${2:-3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
W=$(mktemp -d)
PIDS=()
stop_all() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; PIDS=(); }
trap 'stop_all; rm -rf "$W"' EXIT
export TCP_NODELAY=1
for c in storescu storescp Orthanc bc python3; do
  command -v "$c" >/dev/null || { echo "test/bench/dicom.sh: $c is missing (./test/run installs the test peers)" >&2; exit 1; }
done
cd "$ROOT"
go build -o "$W/wardgate" ./cmd/wardgate
mkdir -p "$W/in"
go run ./test/bench/gendicom "$N" "$W/in"
for p in 0 1 2 3; do mkdir -p "$W/in/p$p"; done
i=0; for f in "$W"/in/*.dcm; do ln "$f" "$W/in/p$((i % 4))/"; i=$((i+1)); done

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return; sleep 0.05; done; echo "nothing listens on $1" >&2; exit 1; }
elapsed() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc; }
one() { storescu -xi -aec "$1" 127.0.0.1 "$2" "$W"/in/*.dcm; }
four() { for p in 0 1 2 3; do storescu -xi -aec "$1" 127.0.0.1 "$2" "$W"/in/p$p/*.dcm & done; wait; }

# start_<peer> starts it on a fresh store and sets PORT and AEC.
start_storescp() {
  rm -rf "$W/scp"; mkdir -p "$W/scp"; PORT=$(free_port); AEC=STORESCP
  storescp -od "$W/scp" "$PORT" & PIDS+=($!); wait_port "$PORT"
}
start_orthanc() {
  rm -rf "$W/orthanc"; mkdir -p "$W/orthanc"; PORT=$(free_port); AEC=ORTHANC
  cat >"$W/orthanc.json" <<JSON
{"Name": "bench", "StorageDirectory": "$W/orthanc", "IndexDirectory": "$W/orthanc",
 "DicomAet": "ORTHANC", "DicomPort": $PORT, "HttpPort": $(free_port), "RemoteAccessAllowed": false,
 "SyncStorageArea": true, "StorageCompression": false, "Plugins": [], "DicomCheckCalledAet": false,
 "ConcurrentJobs": 2, "HttpServerEnabled": true}
JSON
  Orthanc "$W/orthanc.json" >"$W/orthanc.log" 2>&1 & PIDS+=($!); wait_port "$PORT"
}
start_wardgate() {
  rm -rf "$W/data"; PORT=$(free_port); AEC=WARDGATE
  cat >"$W/wardgate.yaml" <<YAML
site: bench
data_dir: $W/data
http: {listen: 127.0.0.1:0}
fhir: {base_url: http://127.0.0.1:9/R4, patient_identifier_system: urn:oid:1.2.3.4}
log: {level: warn}
dicom: {listen: "127.0.0.1:$PORT", ae_title: WARDGATE, allow_any: true, study_stable_after: 1h}
YAML
  "$W/wardgate" run -config "$W/wardgate.yaml" 2>>"$W/wardgate.log" & PIDS+=($!); wait_port "$PORT"
}

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
declare -A T
for shape in one four; do
  for peer in storescp orthanc wardgate; do
    times=()
    for _ in $(seq "$RUNS"); do
      "start_$peer"; sync
      times+=("$(elapsed "$shape" "$AEC" "$PORT")")
      stop_all
    done
    T[$shape.$peer]=$(median "${times[@]}")
    echo "  $shape association(s), $peer: ${times[*]}" >&2
  done
done
printf '%d CT instances of 0.5 MB, median of %d runs, fresh stores (seconds)\n' "$N" "$RUNS"
printf '%-16s %9s %9s %9s %20s\n' associations storescp Orthanc wardgate "wardgate/storescp"
for shape in one four; do
  label=$([ $shape = one ] && echo 1 || echo 4)
  printf '%-16s %9.2f %9.2f %9.2f %20.2f\n' "$label" "${T[$shape.storescp]}" "${T[$shape.orthanc]}" "${T[$shape.wardgate]}" \
    "$(echo "${T[$shape.wardgate]} / ${T[$shape.storescp]}" | bc -l)"
done
