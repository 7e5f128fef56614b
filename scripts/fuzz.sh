#!/usr/bin/env bash
# Coverage-guided fuzzing of traptor-core (cargo-fuzz / libFuzzer): each target in
# core/fuzz/fuzz_targets runs for SECONDS (default 60), starting from the original project's
# fixtures; the corpus grows in target/fuzz-corpus/<target> and is reused by the next run.
# A crash stops its target and leaves the input in core/fuzz/artifacts/<target>/.
#
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Needs a nightly toolchain (`rustup toolchain install nightly`); installs cargo-fuzz if missing.
# Not part of scripts/test.sh: the property tests there (core/tests/fuzz_*.rs) run on stable.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_PER_TARGET=${1:-60}
shift || true

rustup run nightly rustc --version >/dev/null 2>&1 \
  || { echo "fuzz.sh: a nightly toolchain is needed: rustup toolchain install nightly" >&2; exit 2; }
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

cd "$ROOT/core"
targets=("$@")
((${#targets[@]})) || mapfile -t targets < <(cargo +nightly fuzz list)

fixtures=$ROOT/tests/fixtures/traptor-v4
for target in "${targets[@]}"; do
  corpus=$ROOT/target/fuzz-corpus/$target
  mkdir -p "$corpus"
  # Seeds: every fixture message; for the decoder, all of them in one stream, framed both ways.
  for file in "$fixtures"/*.json; do
    cp -n "$file" "$corpus/seed-$(basename "$file")"
  done
  if [[ $target == frame_decoder ]]; then
    { printf 'x'; for file in "$fixtures"/*_tweet.json "$fixtures"/*_message.json; do
        body=$(tr -d '\n' <"$file"); printf '%s\r\n%s\r\n\r\n' "$((${#body} + 2))" "$body"; printf '%s\n' "$body"
      done; } >"$corpus/seed-stream"
  fi
  echo "== fuzzing $target for ${SECONDS_PER_TARGET}s (corpus: $corpus)"
  log=$ROOT/target/fuzz-corpus/$target.log
  status=0
  cargo +nightly fuzz run "$target" "$corpus" -- \
    -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 >"$log" 2>&1 || status=$?
  grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || true
  if ((status != 0)); then
    tail -n 40 "$log" >&2
    echo "fuzz.sh: $target failed (exit $status); full log $log, input in core/fuzz/artifacts/$target" >&2
    exit 1
  fi
done
