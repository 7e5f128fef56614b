#!/usr/bin/env bash
# The performance benchmarks, in one command: start a private Redis and Kafka, build the
# release binaries, run every scenario of traptor-perf, stop the services.
#
#   scripts/bench.sh                      everything, full length (about 12 minutes)
#   scripts/bench.sh --quick              shorter windows (about 5 minutes)
#   scripts/bench.sh throughput --duration 20     one scenario, any traptor-perf arguments
#
# Results are printed as Markdown tables and appended to $TRAPTOR_BENCH_OUT
# (default: target/bench-results.md). Configs and supervisor logs go to /tmp/traptor-perf.
#
# Knobs (environment):
#   TRAPTOR_SERVICES_DIR  state dir of the private services (default: /tmp/perf-services);
#                         a separate one from the tests', so running benchmarks never
#                         disturbs someone else's Redis or broker
#   TRAPTOR_BENCH_OUT     where the Markdown results are appended
#   TRAPTOR_BENCH_KEEP_SERVICES=1   leave the services running afterwards
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export TRAPTOR_SERVICES_DIR=${TRAPTOR_SERVICES_DIR:-/tmp/perf-services}
OUT=${TRAPTOR_BENCH_OUT:-$ROOT/target/bench-results.md}

log() { printf '[bench] %s\n' "$*" >&2; }

args=("$@")
if [[ ${1:-} == --quick ]]; then
  args=(all --duration 20 --pause 15 --idle 10)
elif [[ $# -eq 0 ]]; then
  args=(all --duration 60 --pause 30 --idle 30)
fi

# 1,000 streams need about 2,000 sockets between the supervisor and the emulator.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

log "building the release binaries (traptor-supervisor, traptor-perf)"
cargo build --release -p traptor --bin traptor-supervisor
cargo build --release -p traptor-perf

started_services=0
if ! bash scripts/services.sh status 2>/dev/null; then
  bash scripts/services.sh start >/dev/null
  started_services=1
fi
stop_services() {
  if [[ $started_services == 1 && ${TRAPTOR_BENCH_KEEP_SERVICES:-0} != 1 ]]; then
    bash scripts/services.sh stop
  fi
}
trap stop_services EXIT
eval "$(bash scripts/services.sh env)"

mkdir -p "$(dirname "$OUT")"
{
  echo
  echo "## Run of $(date -u +%Y-%m-%dT%H:%MZ): traptor-perf ${args[*]}"
  echo
  echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -h | awk '/^Mem:/ {print $2}') memory, $(uname -sr)"
  echo
} >>"$OUT"
log "running traptor-perf ${args[*]} (results also in $OUT)"
status=0
target/release/traptor-perf --out "$OUT" "${args[@]}" || status=$?
case $status in
  0) log "every target met" ;;
  1) log "some targets missed (marked **NO** in the tables)" ;;
  *) log "a scenario failed (exit $status)" ;;
esac
exit "$status"
