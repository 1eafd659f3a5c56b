#!/usr/bin/env bash
# The kill -9 soak: `myspool copy` (export, process and load overlapped)
# killed with SIGKILL at random moments, N times, rerun after each kill, and
# the target checked against the source after every finished copy.
#
#   scripts/soak.sh [--kills N] [--seed S] [--log FILE]
#
# Defaults: 200 kills, seed 15, the log in soak-<seed>-<kills>.log in the
# current directory. The moments are drawn from the seed; the machine's
# timing decides where each lands, so two runs with one seed kill at the
# same offsets, not in the same states.
#
# It runs exactly the suite's test, tests/it/soak.rs (which runs 5 kills by
# default), built with --release, with MYSPOOL_SOAK_KILLS and
# MYSPOOL_SOAK_SEED set: every kill's moment and what the dump and the
# journals showed go to the log; the last line is the summary. Needs what
# scripts/test.sh needs (MariaDB's mariadbd, cargo); starts its own
# throwaway servers.
set -euo pipefail
cd "$(dirname "$0")/.."

kills=200
seed=15
log=
while [ $# -gt 0 ]; do
  case $1 in
    --kills) kills=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --log) log=$2; shift 2 ;;
    -h | --help)
      awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"
      exit 0 ;;
    *) echo "scripts/soak.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done
case $kills$seed in
  *[!0-9]*) echo "scripts/soak.sh: --kills and --seed take whole numbers" >&2; exit 2 ;;
esac
log=${log:-soak-$seed-$kills.log}

if ! command -v cargo >/dev/null 2>&1; then
  [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
fi

echo "scripts/soak.sh: $kills kills, seed $seed; log in $log" >&2
start=$(date +%s)
status=0
MYSPOOL_SOAK_KILLS=$kills MYSPOOL_SOAK_SEED=$seed \
  cargo test --locked --release --test it soak::soak_ -- --nocapture >"$log" 2>&1 || status=$?
elapsed=$(($(date +%s) - start))

grep -E '^(kill |round |soak: )' "$log" | tail -n 5 >&2 || true
if [ "$status" -eq 0 ] && grep -q '^soak: survived' "$log"; then
  echo "scripts/soak.sh: survived ($elapsed s with the build): $(grep '^soak: survived' "$log")"
else
  echo "scripts/soak.sh: FAILED after $elapsed s (exit $status); the end of $log:" >&2
  tail -n 40 "$log" >&2
  exit 1
fi
