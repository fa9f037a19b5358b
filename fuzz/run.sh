#!/usr/bin/env bash
# Bench run of the fuzz targets (nightly + cargo-fuzz; not part of npm test).
#   bash fuzz/run.sh [seconds-for-session] [seconds-for-each-other-target]
# Inputs are capped at 4 KiB; memory per input is bounded by -malloc_limit_mb and the process by
# -rss_limit_mb, so unbounded growth fails the run like a panic does. New coverage is merged back
# into fuzz/corpus/<target>/ (set-cover minimised), which tests/fuzz_corpus.rs replays on stable.
set -euo pipefail
cd "$(dirname "$0")"
SESSION_S=${1:-600}
OTHER_S=${2:-120}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
run() {
  local t=$1 s=$2 work="corpus-run/$1"
  mkdir -p "$work"
  cp -n corpus/"$t"/* "$work"/ 2>/dev/null || true
  echo "== $t for ${s}s"
  cargo +nightly fuzz run -O -a "$t" "$work" -- -max_total_time="$s" -max_len=4096 \
    -rss_limit_mb=2048 -malloc_limit_mb=256 -timeout=10 -print_final_stats=1 2>&1 | tee "corpus-run/$t.log" | grep -E "^#[0-9]+.*(DONE|pulse)|stat::|panicked|ERROR|SUMMARY" || true
  grep -q "Done [0-9]* runs" "corpus-run/$t.log" || { echo "fuzz target $t failed"; return 1; }
  rm -rf "/tmp/sfstream-merge-$t" && mkdir -p "/tmp/sfstream-merge-$t"
  cargo +nightly fuzz run -O -a "$t" "/tmp/sfstream-merge-$t" "$work" -- -set_cover_merge=1 >/dev/null 2>&1
  rm -rf corpus/"$t" && mv "/tmp/sfstream-merge-$t" corpus/"$t"
}
cargo +nightly fuzz build -O -a
status=0
run session "$SESSION_S" || status=1
for t in server_error cookies auth; do run "$t" "$OTHER_S" || status=1; done
exit $status
