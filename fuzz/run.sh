#!/usr/bin/env bash
# Runs every fuzz target for a bounded time on the stable toolchain (cargo-fuzz with
# RUSTC_BOOTSTRAP=1 and no sanitizer: libFuzzer's coverage guidance and Rust's own panics and
# overflow checks, without ASan, which needs nightly's std). The committed corpus seeds each
# target; new inputs are written to a scratch copy so a run never dirties the checkout.
#
#   fuzz/run.sh [seconds-per-target]      # default 30
#
# A crash fails the run and leaves the input under fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-30}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-../target/fuzz}
cargo fuzz build --sanitizer none -O --debug-assertions
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
seeds_for() {
  case "$1" in
    parse_roundtrip) echo ../tests/data/sip/valid ../tests/data/sip/invalid ;;
    *) echo "corpus/$1" ;;
  esac
}
for target in parse_roundtrip transaction_machine sdp; do
  mkdir -p "$scratch/$target"
  printf '\n--- fuzz %s for %ss\n' "$target" "$secs"
  # shellcheck disable=SC2046
  cargo fuzz run --sanitizer none -O --debug-assertions "$target" "$scratch/$target" \
    $(seeds_for "$target") -- -max_total_time="$secs" -max_len=8192 -print_final_stats=1 \
    2>&1 | grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss|==|thread|SUMMARY|Test unit|artifact_prefix|INFO: Seed)' || true
  # cargo fuzz exits non-zero on a crash; grep above hides the status, so check the artifacts.
  if compgen -G "artifacts/$target/*" >/dev/null; then
    echo "fuzz target $target found a failing input: fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
