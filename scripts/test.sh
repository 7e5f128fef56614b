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
die() { printf 'test.sh: error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# Install the given Debian packages that are not installed yet. The package
# lists are refreshed only when the install fails without it.
apt_install() {
  local missing=() pkg
  for pkg in "$@"; do installed "$pkg" || missing+=("$pkg"); done
  ((${#missing[@]})) || { echo "all present: $*"; return; }
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! as_root apt-get install -y -q --no-install-recommends "${missing[@]}"; then
    as_root apt-get update -q
    as_root apt-get install -y -q --no-install-recommends "${missing[@]}" \
      || die "could not install ${missing[*]}; install them by hand and re-run"
  fi
}

section "System packages"
command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs) first"
if command -v dpkg-query >/dev/null; then
  # The rdkafka crate builds its bundled librdkafka (C, with zlib); redis-server
  # and the Kafka jars are handled by scripts/services.sh.
  packages=(build-essential pkg-config zlib1g-dev python3)
  command -v java >/dev/null || packages+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || packages+=(maven)
  apt_install "${packages[@]}"
else
  echo "not a Debian-like system: make sure a C toolchain, pkg-config, zlib headers, python3, Java 17+, Maven and redis-server are installed"
fi

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
