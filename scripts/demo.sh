#!/usr/bin/env bash
# Runs traptor on its embedded default: no Redis, no Kafka, no internet.
# The built-in streaming-API emulator serves tweets for the rules in
# config/demo-rules.json; enriched tweets go to stdout (one JSON document per
# line, so `bash scripts/demo.sh | jq .` works), logs to stderr. Ctrl-C stops it.
#
#   bash scripts/demo.sh [extra traptor-supervisor arguments]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

ensure_build_prerequisites >&2
cargo build --release --bin traptor-supervisor >&2
exec target/release/traptor-supervisor --config config/demo.toml "$@"
