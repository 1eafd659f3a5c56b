#!/usr/bin/env bash
# Row mode (process --map) against GNU parallel --pipe, on a latency-bound
# per-row job, and the cost of checkpoints on a fast one.
#
#   scripts/bench_map.sh [--rows N] [--sleep SECONDS] [--block ROWS]   (KEEP=1: keep the work directory)
#
# 1. starts a sandbox server (scripts/sandbox.sh), makes bench.m with N rows
#    (default 6000) and exports it in 2 chunks, then stops the server;
# 2. the per-row job: a Python script that waits SECONDS per row (default
#    0.01, like a remote call) and writes the row back;
# 3. times myspool process --map with 1 and 16 workers, and GNU parallel
#    --pipe -N ROWS (default 100) -j 16 --keep-order feeding the same script
#    the same JSON lines (one process per block of ROWS rows: parallel's way);
# 4. times --map with a fast script (no wait) on 1,000,000 rows and reports the time spent in
#    checkpoints (the summary's checkpoint_seconds) against the run's time.
# Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

ROWS=6000
FAST_ROWS=1000000
SLEEP=0.01
BLOCK=100
while [[ $# -gt 0 ]]; do
	case $1 in
	--rows) ROWS=$2; shift 2 ;;
	--sleep) SLEEP=$2; shift 2 ;;
	--block) BLOCK=$2; shift 2 ;;
	*) echo "usage: $0 [--rows N] [--sleep SECONDS] [--block ROWS]" >&2; exit 2 ;;
	esac
done
log() { printf 'bench_map: %s\n' "$*" >&2; }
command -v parallel >/dev/null || { log "GNU parallel is missing: apt-get install parallel"; exit 1; }
command -v jq >/dev/null || { log "jq is missing: apt-get install jq"; exit 1; }

cargo build --release --locked --quiet >&2
MYSPOOL=$ROOT/target/release/myspool
WORK=$(mktemp -d "${TMPDIR:-/tmp}/myspool-bench-map.XXXXXX")
export MYSPOOL_SANDBOX_DIR=$WORK/sandbox
PORT=$((20000 + RANDOM % 30000))
cleanup() {
	scripts/sandbox.sh stop --port "$PORT" >/dev/null 2>&1 || true
	if [[ -n ${KEEP:-} ]]; then log "kept $WORK"; else rm -rf -- "$WORK"; fi
}
trap cleanup EXIT

log "sandbox server on port $PORT, table of $ROWS rows"
URL=$(scripts/sandbox.sh start --port "$PORT" 2>"$WORK/sandbox.log" | tail -n1)
mariadb --no-defaults --protocol=tcp -h127.0.0.1 -P"$PORT" -uroot <<SQL
CREATE DATABASE bench;
USE bench;
CREATE TABLE bench.m (id INT PRIMARY KEY, name VARCHAR(64), note TEXT NULL);
INSERT INTO bench.m SELECT seq, CONCAT('name ', seq), IF(seq % 3 = 0, NULL, REPEAT('n', seq % 200)) FROM bench.seq_1_to_$ROWS;
CREATE TABLE bench.f LIKE bench.m;
INSERT INTO bench.f SELECT seq, CONCAT('name ', seq), IF(seq % 3 = 0, NULL, REPEAT('n', seq % 200)) FROM bench.seq_1_to_$FAST_ROWS;
SQL
"$MYSPOOL" export --from "$URL" --table bench.m --dir "$WORK/dump" --chunk-rows $(((ROWS + 1) / 2)) --progress none >/dev/null
"$MYSPOOL" export --from "$URL" --table bench.f --dir "$WORK/dump_fast" --chunk-rows $(((FAST_ROWS + 1) / 2)) --progress none >/dev/null
scripts/sandbox.sh stop --port "$PORT" >/dev/null 2>&1

# The interpreter itself: a pyenv shim costs ~100 ms of CPU per start,
# which GNU parallel pays per block and --map per worker.
PY=$(python3 -c 'import sys; print(sys.executable)')
cat >"$WORK/slow.py" <<PY
import sys, time
for line in sys.stdin:
    time.sleep($SLEEP)
    sys.stdout.write(line)
    sys.stdout.flush()
PY
cat >"$WORK/fast.py" <<'PY'
import json, sys
for line in sys.stdin:
    row = json.loads(line)
    row["name"] = row["name"].upper()
    sys.stdout.write(json.dumps(row) + "\n")
    sys.stdout.flush()
PY

# map JOBS SCRIPT OUT [DUMP]: seconds of a --map run; its summary in OUT.json.
map() {
	local t0 t1
	t0=$(date +%s.%N)
	"$MYSPOOL" process --dir "$WORK/${4:-dump}" --out "$WORK/$3" --map "$PY $WORK/$2" --jobs "$1" --json --progress none >"$WORK/$3.json"
	t1=$(date +%s.%N)
	echo "$t1 - $t0" | bc -l
}

# The same rows as JSON lines, for parallel: what a --map worker reads.
"$MYSPOOL" process --dir "$WORK/dump" --out "$WORK/lines" --map "tee -a $WORK/rows.jsonl" --jobs 1 --progress none >/dev/null
[[ $(wc -l <"$WORK/rows.jsonl") -eq $ROWS ]] || { log "rows.jsonl has the wrong length"; exit 1; }

log "--map, 1 worker"
S1=$(map 1 slow.py m1)
log "--map, 16 workers"
S16=$(map 16 slow.py m16)
log "GNU parallel --pipe -N $BLOCK -j 16"
t0=$(date +%s.%N)
parallel --pipe -N "$BLOCK" -j 16 --keep-order "$PY" "$WORK/slow.py" <"$WORK/rows.jsonl" >"$WORK/parallel.jsonl"
t1=$(date +%s.%N)
SP=$(echo "$t1 - $t0" | bc -l)
cmp -s "$WORK/parallel.jsonl" "$WORK/rows.jsonl" || { log "parallel's output differs from its input"; exit 1; }
log "--map, fast script, 2 workers"
SF=$(map 2 fast.py fast dump_fast)

rate() { echo "$ROWS / $1" | bc -l | xargs printf '%.0f'; }
CP=$(jq '.map.checkpoint_seconds' "$WORK/fast.json")
NCP=$(jq '.map.checkpoints' "$WORK/fast.json")
printf '\n%s rows in 2 chunks; per-row job: sleep %s s and echo (Python), %s cores\n\n' "$ROWS" "$SLEEP" "$(nproc)"
printf '| run | seconds | rows/s |\n|---|---|---|\n'
printf '| myspool --map, 1 worker | %.2f | %s |\n' "$S1" "$(rate "$S1")"
printf '| myspool --map, 16 workers | %.2f | %s |\n' "$S16" "$(rate "$S16")"
printf '| GNU parallel --pipe -N %s -j 16 --keep-order | %.2f | %s |\n' "$BLOCK" "$SP" "$(rate "$SP")"
printf '| myspool --map, fast script (json.loads, upper, dumps), 2 workers, %s rows | %.2f | %s |\n' "$FAST_ROWS" "$SF" "$(echo "$FAST_ROWS / $SF" | bc -l | xargs printf '%.0f')"
printf '\nspeed-up 16 vs 1 worker: %.1fx; myspool / GNU parallel throughput: %.2f\n' \
	"$(echo "$S1 / $S16" | bc -l)" "$(echo "$SP / $S16" | bc -l)"
printf 'checkpoints in the fast run: %s, holding their chunk %.3f s in all (%.2f%% of %.2f s)\n' \
	"$NCP" "$CP" "$(echo "100 * $CP / $SF" | bc -l)" "$SF"
