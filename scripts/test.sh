#!/usr/bin/env bash
# The project's test command (also what CI runs):
#
#   bash scripts/test.sh                 # everything
#   bash scripts/test.sh some_filter     # only tests whose name matches; extra args go to the test binaries
#
# Installs missing system packages, starts Redis and Kafka (scripts/services.sh)
# for the tests marked #[ignore = "needs Redis and Kafka ..."], runs all tests
# including those, then the doc tests, then scripts/validate-deploy.sh if present.
# Services that are already running (scripts/services.sh start) are reused and
# left running; otherwise they are stopped on exit, whether the tests pass, fail
# or are interrupted.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Headers are coloured when cargo's output is (CARGO_TERM_COLOR=always|never|auto).
case ${CARGO_TERM_COLOR:-auto} in
  always) color=1 ;;
  never) color=0 ;;
  *) if [[ -t 1 ]]; then color=1; else color=0; fi ;;
esac
section() {
  if ((color)); then printf '\n\033[1;36m==== %s ====\033[0m\n' "$*"; else printf '\n==== %s ====\n' "$*"; fi
}
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

section "System packages"
ensure_build_prerequisites

section "Services: Redis and Kafka"
started_services=0
# shellcheck disable=SC2317 # called from the EXIT trap
stop_services() {
  if ((started_services)); then
    section "Stopping services"
    bash scripts/services.sh stop || true
  fi
}
# Ctrl-C or a kill still goes through the EXIT trap, so nothing is left running.
trap stop_services EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if bash scripts/services.sh status; then
  echo "reusing the running services (stop them with: bash scripts/services.sh stop)"
else
  started_services=1
  bash scripts/services.sh start
fi
eval "$(bash scripts/services.sh env)"

# Every step (and every test binary: --no-fail-fast) runs even after a failure,
# so one run shows all that is broken.
status=0
run_step() {
  local name=$1 started=$SECONDS
  shift
  section "$name"
  if "$@"; then
    echo "[$name: ok in $((SECONDS - started))s]"
  else
    local rc=$?
    echo "[$name: FAILED (exit $rc) after $((SECONDS - started))s]"
    status=1
  fi
}

run_step "cargo test (all targets, including service tests)" \
  cargo test --workspace --all-targets --no-fail-fast -- --include-ignored "$@"
run_step "cargo test --doc" \
  cargo test --workspace --doc --no-fail-fast -- "$@"
if [[ -x scripts/validate-deploy.sh ]]; then
  run_step "scripts/validate-deploy.sh" scripts/validate-deploy.sh
fi

section "Result"
if ((status == 0)); then echo "all test steps passed"; else echo "some test steps FAILED (see above)"; fi
exit "$status"
