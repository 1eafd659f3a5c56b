#!/usr/bin/env bash
# Benchmark myspool against the usual tools, on one machine, one throwaway
# server and one table, and print the ratios as a Markdown table.
#
#   scripts/bench.sh [--rows N] [--runs K] [--out FILE] [--py-rows N]
#                    [--buffer-pool SIZE] [--redo-log SIZE] [--mydumper DIR]
#
#   --rows N         rows in bench.t (default 5000000)
#   --runs K         runs of every measurement; the table shows medians (default 3)
#   --out FILE       where the Markdown goes too (default: bench-results.md in the
#                    repository root); the table is always printed on stdout
#   --py-rows N      rows the Python baseline copies, its time scaled linearly
#                    to the table (default: the whole table; scaling from 200000
#                    rows underestimated the whole table's 118 s by 13%)
#   --buffer-pool S  innodb_buffer_pool_size of the server (default 2G)
#   --redo-log S     innodb_log_file_size of the server (default 1G)
#   --mydumper DIR   also measure the mydumper and myloader in DIR (a build of
#                    a current release, e.g. 1.0.x from source): its export
#                    with gzip and with zstd, and its load (LOAD DATA LOCAL) of
#                    a --format LOAD_DATA dump, binlog on (-e) and its default,
#                    beside the Debian package's rows
#
# What it does:
#   1. installs what is missing (mydumper/myloader, /usr/bin/time, the MariaDB
#      client, PyMySQL) and builds myspool (cargo build --release --locked);
#   2. starts a sandbox server (scripts/sandbox.sh) on a free port, set up like a
#      production server for a bulk reload: binlog on in ROW format,
#      innodb_autoinc_lock_mode=2, innodb_flush_log_at_trx_commit=1, utf8mb4;
#   3. fills bench.t (BIGINT AUTO_INCREMENT key, a secondary index on a
#      scattered INT, a VARCHAR with NULL / '' / 'NULL' / '\N' / quotes /
#      newlines / tabs / backslashes / UTF-8, DECIMAL(12,2), DATETIME(6),
#      BINARY(8)) server-side from the sequence engine;
#   4. measures, with 2 threads everywhere and /usr/bin/time -v (wall clock and
#      peak RSS of the client side; the server's own memory is not counted):
#        export:  myspool export (gzip and zstd), mydumper -c, mydumper,
#                 mariadb --batch | gzip -1,
#                 SELECT ... INTO OUTFILE (the TSV the LOAD DATA row reads)
#        load:    myspool load (also --skip-binlog), myloader
#                 (with -e, binlog on, and its default, binlog off), one
#                 LOAD DATA LOCAL INFILE of the TSV; every load into an empty
#                 bench_copy and checked with CHECKSUM TABLE against bench.t
#        load, 8 tables: the same rows split by id into 8 tables (bench8.t1…t8,
#                 dumped by myspool export and mydumper -c, untimed), loaded by
#                 myspool load (also --skip-binlog) and
#                 myloader (-e and default), each table checked by CHECKSUM TABLE
#        process: myspool process --exec cat against xargs -P 2 zcat|cat|gzip -1
#        round trip: myspool copy --exec cat, against the classic PyMySQL
#                 stream (scripts/bench_stream.py), on the whole table unless
#                 --py-rows names a slice (then scaled, and said so);
#   5. prints the table and writes it to --out.
# Everything lives in one temporary directory ($TMPDIR or /tmp), removed at
# exit together with the sandbox. On an idle 2-core machine 5,000,000 rows take
# about 7 minutes with --runs 1 (2 of them settling after the data generation),
# so about 17 with the default --runs 3; the report ends with the time taken.
# Needs about 6 GB of free disk in $TMPDIR for 5,000,000 rows.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

ROWS=5000000
RUNS=3
OUT=$ROOT/bench-results.md
PY_ROWS=
BUFFER_POOL=2G
REDO_LOG=1G
JOBS=2
MD1= # --mydumper DIR
BATCH=1000000 # rows per INSERT ... SELECT while generating

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() {
	printf '\n[bench] ERROR: %s\n\n' "$*" >&2
	exit 1
}
usage() {
	awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0" >&2
	exit "${1:-2}"
}
is_count() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }

while [[ $# -gt 0 ]]; do
	case $1 in
	--rows | --runs | --out | --py-rows | --buffer-pool | --redo-log | --mydumper)
		[[ $# -ge 2 ]] || die "$1 needs a value"
		case $1 in
		--rows) ROWS=$2 ;;
		--runs) RUNS=$2 ;;
		--out) OUT=$2 ;;
		--py-rows) PY_ROWS=$2 ;;
		--buffer-pool) BUFFER_POOL=$2 ;;
		--redo-log) REDO_LOG=$2 ;;
		--mydumper) MD1=$(cd "$2" && pwd) || die "--mydumper $2: no such directory" ;;
		esac
		shift 2
		;;
	-h | --help) usage 0 ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
done
is_count "$ROWS" || die "--rows must be a positive integer"
is_count "$RUNS" || die "--runs must be a positive integer"
[[ -n $PY_ROWS ]] || PY_ROWS=$ROWS
is_count "$PY_ROWS" || die "--py-rows must be a positive integer"
[[ $OUT == /* ]] || OUT=$ROOT/$OUT
if [[ -n $MD1 ]]; then
	for p in mydumper myloader; do
		[[ -x $MD1/$p ]] || die "--mydumper $MD1 holds no executable $p"
	done
fi
((PY_ROWS <= ROWS)) || PY_ROWS=$ROWS

# ---------------------------------------------------------------- 1. tools

SUDO=()
[[ $EUID -eq 0 ]] || SUDO=(sudo)

# apt_install PKG... : apt-get install, running apt-get update first only when
# a package is unknown to the local lists (or the install fails without it).
apt_install() {
	command -v apt-get >/dev/null 2>&1 || die "missing $*, and no apt-get to install them with"
	export DEBIAN_FRONTEND=noninteractive
	local updated=0 p
	for p in "$@"; do
		if ! apt-cache show "$p" >/dev/null 2>&1; then
			log "apt-get update (no candidate for $p)"
			"${SUDO[@]}" apt-get update -q >&2
			updated=1
			break
		fi
	done
	log "apt-get install $*"
	if ! "${SUDO[@]}" apt-get install -y -q --no-install-recommends "$@" >&2; then
		((updated == 0)) || die "apt-get install $* failed"
		"${SUDO[@]}" apt-get update -q >&2
		"${SUDO[@]}" apt-get install -y -q --no-install-recommends "$@" >&2
	fi
}

# A Python that can import pymysql: the one on PATH first (may be a pyenv or
# venv one, where apt's python3-pymysql is invisible), then the system one.
find_python() {
	local p
	for p in python3 /usr/bin/python3; do
		if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import pymysql' >/dev/null 2>&1; then
			command -v "$p"
			return 0
		fi
	done
	return 1
}

ensure_tools() {
	local pkgs=()
	{ command -v mydumper && command -v myloader; } >/dev/null 2>&1 || pkgs+=(mydumper)
	[[ -x /usr/bin/time ]] || pkgs+=(time)
	command -v mariadb >/dev/null 2>&1 || pkgs+=(mariadb-client)
	command -v gzip >/dev/null 2>&1 || pkgs+=(gzip)
	command -v jq >/dev/null 2>&1 || pkgs+=(jq)
	command -v python3 >/dev/null 2>&1 || [[ -x /usr/bin/python3 ]] || pkgs+=(python3)
	find_python >/dev/null || pkgs+=(python3-pymysql)
	((${#pkgs[@]} == 0)) || apt_install "${pkgs[@]}"
	if ! PYTHON=$(find_python); then
		log "PyMySQL still not importable by python3; pip install pymysql"
		python3 -m pip install -q pymysql >&2 ||
			python3 -m pip install -q --break-system-packages pymysql >&2 ||
			die "could not install PyMySQL"
		PYTHON=$(find_python) || die "PyMySQL installed but not importable"
	fi
	local p
	for p in mydumper myloader mariadb gzip zcat xargs jq; do
		command -v "$p" >/dev/null 2>&1 || die "$p not found after installing"
	done
	if ! command -v cargo >/dev/null 2>&1 && [[ -f $HOME/.cargo/env ]]; then
		# shellcheck disable=SC1091
		. "$HOME/.cargo/env"
	fi
	command -v cargo >/dev/null 2>&1 || die "cargo not found; install Rust first"
}

# Anything else busy on the machine skews every figure: the report says how busy it was.
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
PYTHON=""
ensure_tools
log "building myspool (cargo build --release --locked)"
cargo build --release --locked --quiet >&2
MYSPOOL=$ROOT/target/release/myspool
[[ -x $MYSPOOL ]] || die "$MYSPOOL missing after the build"

# ---------------------------------------------------------------- 2. server

WORK=$(mktemp -d "${TMPDIR:-/tmp}/myspool-bench.XXXXXX")
export MYSPOOL_SANDBOX_DIR=$WORK/sandbox
PORT=""
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [[ -n $PORT ]]; then
		scripts/sandbox.sh stop --port "$PORT" >/dev/null 2>&1 || true
	fi
	rm -rf -- "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir -p "$WORK/logs"

SERVER_OPTS=(
	--log-bin
	--binlog-format=ROW
	--innodb-autoinc-lock-mode=2
	--innodb-buffer-pool-size="$BUFFER_POOL"
	--innodb-log-file-size="$REDO_LOG"
	--innodb-flush-log-at-trx-commit=1
	--character-set-server=utf8mb4
	--collation-server=utf8mb4_general_ci
)

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

URL=""
for _ in 1 2 3 4 5 6 7 8 9 10; do
	candidate=$((20000 + RANDOM % 30000))
	port_in_use "$candidate" && continue
	PORT=$candidate
	log "starting a sandbox MariaDB on 127.0.0.1:$PORT (${SERVER_OPTS[*]})"
	if URL=$(scripts/sandbox.sh start --port "$PORT" -- "${SERVER_OPTS[@]}" 2>"$WORK/logs/sandbox.log" | tail -n1) &&
		[[ $URL == mysql://* ]]; then
		break
	fi
	log "could not start on port $PORT; trying another"
	cat "$WORK/logs/sandbox.log" >&2
	URL=""
	PORT=""
done
[[ -n $URL ]] || die "could not start a sandbox server"
HOST=127.0.0.1
SERVER_PID=$(cat "$MYSPOOL_SANDBOX_DIR/$PORT/mysqld.pid")
[[ -r /proc/$SERVER_PID/stat ]] || die "no server process $SERVER_PID (from $MYSPOOL_SANDBOX_DIR/$PORT/mysqld.pid)"
CLK_TCK=$(getconf CLK_TCK)
# CPU seconds (user + system) the server has used since it started.
server_cpu() { awk -v hz="$CLK_TCK" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$SERVER_PID/stat"; }

sql() {
	mariadb --no-defaults --protocol=tcp -h"$HOST" -P"$PORT" -uroot \
		--default-character-set=utf8mb4 "$@"
}
sqlv() { sql -N -B -e "$1"; } # one value (or rows) without headers

# ---------------------------------------------------------------- 3. data

log "creating bench.t with $ROWS rows"
sql <<'SQL'
CREATE DATABASE bench CHARACTER SET utf8mb4;
CREATE TABLE bench.t (
  id BIGINT AUTO_INCREMENT PRIMARY KEY,
  customer_id INT NOT NULL,
  name VARCHAR(100) NULL,
  amount DECIMAL(12,2) NOT NULL,
  created DATETIME(6) NOT NULL,
  token BINARY(8) NOT NULL,
  KEY by_customer (customer_id)
) ENGINE=InnoDB;
SQL
for ((lo = 1; lo <= ROWS; lo += BATCH)); do
	hi=$((lo + BATCH - 1 < ROWS ? lo + BATCH - 1 : ROWS))
	# Not in the binlog: the loads' binlog volume is measured from a reset.
	sql <<SQL
SET sql_log_bin = 0;
USE bench;
INSERT INTO t (id, customer_id, name, amount, created, token)
SELECT seq,
  (seq * 7919) % 1000003,
  CASE seq % 10
    WHEN 0 THEN NULL
    WHEN 1 THEN ''
    WHEN 2 THEN 'NULL'
    WHEN 3 THEN '\\\\N'
    WHEN 4 THEN CONCAT('say "hi", it''s ', seq)
    WHEN 5 THEN CONCAT('line one\\nline two\\ttab ', seq)
    WHEN 6 THEN CONCAT('Zoë 😀 ', seq)
    WHEN 7 THEN CONCAT('C:\\\\temp\\\\', seq, ',x')
    ELSE CONCAT('customer ', seq) END,
  CAST((seq * 37) % 100000000 AS SIGNED) * IF(seq % 3 = 0, -1, 1) / 100,
  TIMESTAMP('2020-01-01') + INTERVAL seq SECOND + INTERVAL (seq * 7) % 1000000 MICROSECOND,
  UNHEX(LEFT(MD5(seq), 16))
FROM seq_${lo}_to_${hi};
SQL
	log "  rows $lo..$hi"
done
[[ $(sqlv "SELECT COUNT(*) FROM bench.t") == "$ROWS" ]] || die "bench.t does not hold $ROWS rows"
[[ $(sqlv "SELECT COUNT(*) FROM bench.t WHERE name = '\\\\N'") -gt 0 || $ROWS -lt 10 ]] ||
	die "the generator did not write the value \\N (SQL escaping went wrong)"
SRC_SUM=$(sqlv "CHECKSUM TABLE bench.t" | cut -f2)
log "bench.t checksum $SRC_SUM"
ORIG_DIRTY_PCT=$(sqlv "SELECT @@innodb_max_dirty_pages_pct")

# settle: flush dirty pages before a measurement, so that one tool does not pay
# for the page flushing left behind by the previous one. Stops when the dirty
# page count is small or no longer falls (some pages stay dirty), or after 120 s.
settle() {
	sqlv "SET GLOBAL innodb_max_dirty_pages_pct = 0" >/dev/null
	local cur prev=-1 flat=0 deadline=$((SECONDS + 120))
	while ((SECONDS < deadline)); do
		cur=$(sqlv "SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'" | cut -f2)
		((cur > 256)) || break
		if ((prev >= 0 && cur >= prev - 16)); then
			flat=$((flat + 1))
			((flat < 4)) || break
		else
			flat=0
		fi
		prev=$cur
		sleep 0.5
	done
	sqlv "SET GLOBAL innodb_max_dirty_pages_pct = $ORIG_DIRTY_PCT" >/dev/null
}

binlog_bytes() { sqlv "SHOW BINARY LOGS" | awk '{ s += $2 } END { print s + 0 }'; }

# ---------------------------------------------------------------- measuring

declare -A SECS=() RSS=() SIZE=() NAME=() PHASE=() FIXED=() CPU_CLIENT=() CPU_SERVER=()
ORDER=()
M_SECS=0
M_RSS=0

# tool ID PHASE NAME : declare a row of the table (in this order).
tool() {
	ORDER+=("$1")
	PHASE[$1]=$2
	NAME[$1]=$3
}

# measure ID RUN CMD... : run CMD under /usr/bin/time -v; fail loudly if it fails.
measure() {
	local id=$1 run=$2
	shift 2
	local base=$WORK/logs/$id.$run server0 client server
	server0=$(server_cpu)
	if ! /usr/bin/time -v -o "$base.time" "$@" >"$base.log" 2>&1; then
		printf '\n--- %s (run %s) failed: last lines of its output ---\n' "$id" "$run" >&2
		tail -n 40 "$base.log" >&2
		tail -n 25 "$base.time" >&2 || true
		die "${NAME[$id]} failed (run $run): $*"
	fi
	M_SECS=$(awk -F': ' '/Elapsed \(wall clock\) time/ {
		n = split($2, p, ":"); s = 0
		for (i = 1; i <= n; i++) s = s * 60 + p[i]
		printf "%.3f", s }' "$base.time")
	M_RSS=$(awk -F': ' '/Maximum resident set size/ { print $2 + 0 }' "$base.time")
	# Work the server did meanwhile, for the command (and for its background
	# threads: flushing that starts during the command counts, what is left
	# after it does not; settle flushes it before the next measurement).
	server=$(awk -v a="$server0" -v b="$(server_cpu)" 'BEGIN { printf "%.2f", b - a }')
	client=$(awk -F': ' '/User time \(seconds\)|System time \(seconds\)/ { s += $2 } END { printf "%.2f", s }' "$base.time")
	[[ -n $M_SECS && -n $M_RSS ]] || die "could not parse $base.time"
	SECS[$id]+=" $M_SECS"
	CPU_CLIENT[$id]+=" $client"
	CPU_SERVER[$id]+=" $server"
	if ((M_RSS > ${RSS[$id]:-0})); then RSS[$id]=$M_RSS; fi
	log "  $id run $run: $M_SECS s, peak RSS $((M_RSS / 1024)) MiB, CPU s client $client + server $server"
}

median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END {
	if (NR % 2) printf "%.3f", a[(NR + 1) / 2]; else printf "%.3f", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
med_of() {
	if [[ -n ${FIXED[$1]:-} ]]; then
		echo "${FIXED[$1]}"
	else
		# shellcheck disable=SC2086 # a list of numbers
		median ${SECS[$1]}
	fi
}
# cpu_of ID : "CLIENT SERVER", the median CPU seconds of each side (for the
# Python row scaled like its time; for the sums, the sums of the medians).
cpu_of() {
	local id=$1 parts=() part scale=1 c sv
	case $id in
	ms_sum) parts=(ms_export ms_process ms_load) ;;
	md_sum) parts=(md_export_c ml_load_e) ;;
	esac
	if ((${#parts[@]} > 0)); then
		for part in "${parts[@]}"; do cpu_of "$part"; done | awk '{ c += $1; s += $2 } END { print c, s }'
		return
	fi
	[[ $id != py ]] || scale=$PY_SCALE
	# shellcheck disable=SC2086 # lists of numbers
	c=$(median ${CPU_CLIENT[$id]})
	# shellcheck disable=SC2086
	sv=$(median ${CPU_SERVER[$id]})
	awk -v c="$c" -v s="$sv" -v k="$scale" 'BEGIN { print c * k, s * k }'
}
du_b() { du -sb "$@" | awk '{ s += $1 } END { print s + 0 }'; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }

# check_copy DB TOOL RUN : the loaded table must equal bench.t.
check_copy() {
	local got
	got=$(sqlv "CHECKSUM TABLE $1.t" | cut -f2)
	if [[ $got != "$SRC_SUM" ]]; then
		die "CHECKSUM MISMATCH after $2 (run $3): CHECKSUM TABLE $1.t = $got, bench.t = $SRC_SUM. No load figure is reported."
	fi
}

# fresh_target DB : an empty database, an empty binlog, flushed pages.
fresh_target() {
	sql -e "DROP DATABASE IF EXISTS $1; CREATE DATABASE $1 CHARACTER SET utf8mb4; RESET MASTER"
	settle
	BINLOG0=$(binlog_bytes)
}
BINLOG0=0
binlog_written() { echo $(($(binlog_bytes) - BINLOG0)); }

# Helper scripts, so that /usr/bin/time measures whole pipelines.
cat >"$WORK/cli_export.sh" <<'SH'
#!/bin/sh
# cli_export.sh PORT FILE: the whole table through the mariadb client into gzip -1.
set -e
mariadb --no-defaults --protocol=tcp -h127.0.0.1 -P"$1" -uroot --default-character-set=utf8mb4 \
  --quick --batch -e 'SELECT * FROM bench.t' | gzip -1 > "$2"
SH
cat >"$WORK/xargs_cat.sh" <<'SH'
#!/bin/bash
# xargs_cat.sh DUMP OUT: every chunk through zcat | cat | gzip -1, 2 at a time.
set -eo pipefail
ls "$1"/bench/t/*.csv.gz | xargs -P 2 -I{} sh -c 'zcat "$1" | cat | gzip -1 > "$2/$(basename "$1")"' _ {} "$2"
SH
chmod +x "$WORK/cli_export.sh" "$WORK/xargs_cat.sh"

D=$WORK/dump-myspool      # myspool export
D2=$WORK/dump-mydumper-c  # mydumper -c
D2N=$WORK/dump-mydumper   # mydumper without -c
DZ=$WORK/dump-myspool-zst # myspool export --compress zstd
D1G=$WORK/dump-md1-gz     # --mydumper DIR: its mydumper, gzip
D1Z=$WORK/dump-md1-zst    # and zstd
D1L=$WORK/dump-md1-load   # and --format LOAD_DATA (gzip), for its myloader
MD1_V=
[[ -z $MD1 ]] || MD1_V=$("$MD1/mydumper" --version 2>&1 | awk '{ print $2; exit }')
CLI=$WORK/cli.tsv.gz      # mariadb --batch | gzip -1
TSV=$WORK/outfile/t.tsv   # SELECT ... INTO OUTFILE (the server writes it)
mkdir -p "$WORK/outfile" # the server runs as this same user (as root: --user=root)

tool ms_export export "\`myspool export --jobs 2\` (gzip, libdeflate level 1)"
tool ms_export_zst export "\`myspool export --jobs 2 --compress zstd\` (level 1)"
tool md_export_c export "\`mydumper -t 2 -r 500000 -c\`"
tool md_export export "\`mydumper -t 2 -r 500000\` (no compression)"
if [[ -n $MD1 ]]; then
	tool md1_export_gz export "mydumper $MD1_V \`-t 2 -r 500000 --compress=gzip\`"
	tool md1_export_zst export "mydumper $MD1_V \`-t 2 -r 500000 --compress=zstd\`"
fi
tool cli_export export "\`mariadb --quick --batch \\| gzip -1\` (one connection)"
tool outfile_export export "\`SELECT … INTO OUTFILE\` (TSV, server-side, one thread, uncompressed)"
tool ms_load load "\`myspool load --jobs 2\`"
tool ms_load_fast load "\`myspool load --jobs 2 --skip-binlog\`"
tool ml_load_e load "\`myloader -t 2 -e\` (binlog on, like myspool load)"
tool ml_load load "\`myloader -t 2\` (its default: binlog off)"
if [[ -n $MD1 ]]; then
	tool ml1_load_e load "myloader $MD1_V \`-t 2 -e --local-infile\` of a \`--format LOAD_DATA\` dump (binlog on)"
	tool ml1_load load "myloader $MD1_V \`-t 2 --local-infile\` of a \`--format LOAD_DATA\` dump (its default: binlog off)"
fi
tool ld_load load "\`LOAD DATA LOCAL INFILE\` of one TSV (one statement)"
tool ms_load8 load8 "\`myspool load --jobs 2\`"
tool ms_load8_fast load8 "\`myspool load --jobs 2 --skip-binlog\`"
tool ml_load8_e load8 "\`myloader -t 2 -e\` (binlog on, like myspool load)"
tool ml_load8 load8 "\`myloader -t 2\` (its default: binlog off)"
tool ms_process process "\`myspool process --exec cat --jobs 2\`"
tool xargs_process process "\`xargs -P 2\` over chunks: \`zcat \\| cat \\| gzip -1\`"
tool ms_copy roundtrip "\`myspool copy --exec cat --jobs 2\` (measured)"
tool ms_sum roundtrip "myspool export + process + load (sum of the medians above)"
tool md_sum roundtrip "mydumper -c + myloader -e (sum of the medians above; no transform step)"
tool py roundtrip "Python: PyMySQL \`SSCursor\` → \`executemany\` 1000 rows, commit per batch"

log "export (runs: $RUNS)"
for ((r = 1; r <= RUNS; r++)); do
	rm -rf "$D" "$D2" "$D2N" "$CLI" "$TSV"
	settle
	measure ms_export "$r" "$MYSPOOL" export --from "$URL" --table bench.t --dir "$D" --jobs "$JOBS" --progress none
	settle
	rm -rf "$DZ"
	measure ms_export_zst "$r" "$MYSPOOL" export --from "$URL" --table bench.t --dir "$DZ" --jobs "$JOBS" --progress none \
		--compress zstd
	settle
	if [[ -n $MD1 ]]; then
		rm -rf "$D1G" "$D1Z"
		measure md1_export_gz "$r" "$MD1/mydumper" -h "$HOST" -P "$PORT" -u root -B bench -T bench.t -t "$JOBS" -r 500000 \
			--compress=gzip -o "$D1G"
		settle
		measure md1_export_zst "$r" "$MD1/mydumper" -h "$HOST" -P "$PORT" -u root -B bench -T bench.t -t "$JOBS" -r 500000 \
			--compress=zstd -o "$D1Z"
		settle
	fi
	measure md_export_c "$r" mydumper -h "$HOST" -P "$PORT" -u root -B bench -T t -t "$JOBS" -r 500000 -c -o "$D2"
	settle
	measure md_export "$r" mydumper -h "$HOST" -P "$PORT" -u root -B bench -T t -t "$JOBS" -r 500000 -o "$D2N"
	settle
	measure cli_export "$r" "$WORK/cli_export.sh" "$PORT" "$CLI"
	settle
	measure outfile_export "$r" mariadb --no-defaults --protocol=tcp -h"$HOST" -P"$PORT" -uroot \
		-e "SELECT * FROM bench.t INTO OUTFILE '$TSV'"
done
SIZE[ms_export]=$(mb "$(du_b "$D")")
SIZE[ms_export_zst]=$(mb "$(du_b "$DZ")")
rm -rf "$DZ"
if [[ -n $MD1 ]]; then
	SIZE[md1_export_gz]=$(mb "$(du_b "$D1G")")
	SIZE[md1_export_zst]=$(mb "$(du_b "$D1Z")")
	rm -rf "$D1G" "$D1Z"
	# The dump its load reads (untimed): LOAD DATA files, gzip like myspool's.
	"$MD1/mydumper" -h "$HOST" -P "$PORT" -u root -B bench -T bench.t -t "$JOBS" -r 500000 --compress=gzip \
		--format LOAD_DATA -o "$D1L" >"$WORK/logs/mydumper1-load-data.log" 2>&1 ||
		die "mydumper $MD1_V --format LOAD_DATA failed: $(tail -n 5 "$WORK/logs/mydumper1-load-data.log")"
fi
SIZE[md_export_c]=$(mb "$(du_b "$D2")")
SIZE[md_export]=$(mb "$(du_b "$D2N")")
SIZE[cli_export]=$(mb "$(du_b "$CLI")")
SIZE[outfile_export]=$(mb "$(du_b "$TSV")")
CSV_BYTES=$(jq '[.chunks[].csv_bytes] | add' "$D/bench/t/table.json")
CHUNKS=$(jq '.chunks | length' "$D/bench/t/table.json")
[[ $(jq '[.chunks[].rows] | add' "$D/bench/t/table.json") == "$ROWS" ]] || die "the myspool dump does not hold $ROWS rows"
rm -rf "$D2N" "$CLI" # not needed any more

# load_by KIND ID RUN DUMP DB : one measured load of DUMP (myspool's or
# mydumper's) into the empty database DB, by myspool (KIND ms: default, ms_fast:
# --defer-indexes --skip-binlog) or myloader (ml_e: binlog on, ml: its default).
load_by() {
	local kind=$1 id=$2 r=$3 dump=$4 db=$5 extra=()
	case $kind in
	ms | ms_fast)
		# The load journals: a rerun would skip every chunk.
		find "$dump" -name 'load@*.jsonl' -delete
		[[ $kind == ms ]] || extra=(--defer-indexes --skip-binlog)
		measure "$id" "$r" "$MYSPOOL" load --dir "$dump" --to "$URL" --into "$db" --jobs "$JOBS" \
			--progress none "${extra[@]}"
		;;
	ml_e | ml)
		[[ $kind == ml ]] || extra=(-e)
		measure "$id" "$r" myloader -h "$HOST" -P "$PORT" -u root -t "$JOBS" -d "$dump" -B "$db" -o "${extra[@]}"
		;;
	ml1_e | ml1)
		# Its defaults otherwise: --optimize-keys AFTER_IMPORT_PER_TABLE.
		[[ $kind == ml1 ]] || extra=(-e)
		measure "$id" "$r" "$MD1/myloader" -h "$HOST" -P "$PORT" -u root -t "$JOBS" -d "$dump" -B "$db" \
			--local-infile -o "${extra[@]}"
		;;
	*) die "load_by: unknown kind $kind" ;;
	esac
}

log "load into an empty bench_copy (runs: $RUNS)"
for ((r = 1; r <= RUNS; r++)); do
	ids=(ms_load ms_load_fast ml_load_e ml_load)
	[[ -z $MD1 ]] || ids+=(ml1_load_e ml1_load)
	for id in "${ids[@]}" ld_load; do
		fresh_target bench_copy
		case $id in
		ml1_load_e) load_by ml1_e "$id" "$r" "$D1L" bench_copy ;;
		ml1_load) load_by ml1 "$id" "$r" "$D1L" bench_copy ;;
		ms_load) load_by ms "$id" "$r" "$D" bench_copy ;;
		ms_load_fast) load_by ms_fast "$id" "$r" "$D" bench_copy ;;
		ml_load_e) load_by ml_e "$id" "$r" "$D2" bench_copy ;;
		ml_load) load_by ml "$id" "$r" "$D2" bench_copy ;;
		ld_load)
			sql -e "CREATE TABLE bench_copy.t LIKE bench.t"
			measure "$id" "$r" mariadb --no-defaults --protocol=tcp -h"$HOST" -P"$PORT" -uroot \
				--local-infile=1 -e "LOAD DATA LOCAL INFILE '$TSV' INTO TABLE bench_copy.t CHARACTER SET binary"
			;;
		esac
		SIZE[$id]="binlog $(mb "$(binlog_written)")"
		check_copy bench_copy "$id" "$r"
		log "  $id run $r: CHECKSUM TABLE bench_copy.t = bench.t"
	done
done
sql -e "DROP DATABASE IF EXISTS bench_copy; RESET MASTER"
rm -rf "$D1L"

# The same rows as 8 tables: a dump of several tables, where myspool spreads
# its jobs over the tables (and myloader its threads).
log "splitting bench.t into bench8.t1..t8 and dumping them (untimed)"
sql -e "CREATE DATABASE bench8 CHARACTER SET utf8mb4"
TABLES8=()
for i in 1 2 3 4 5 6 7 8; do
	sql -e "SET sql_log_bin = 0; CREATE TABLE bench8.t$i LIKE bench.t;
		INSERT INTO bench8.t$i SELECT * FROM bench.t WHERE id > $(((i - 1) * ROWS / 8)) AND id <= $((i * ROWS / 8))"
	TABLES8+=("t$i")
done
# checksums8 DB : the CHECKSUM TABLE values of DB.t1..t8, one line.
checksums8() {
	local list
	list=$(printf '%s,' "${TABLES8[@]/#/$1.}")
	sqlv "CHECKSUM TABLE ${list%,}" | cut -f2 | paste -sd' '
}
SRC_SUM8=$(checksums8 bench8)
D8=$WORK/dump8-myspool
D8M=$WORK/dump8-mydumper-c
settle
"$MYSPOOL" export --from "$URL" --table 'bench8.*' --dir "$D8" --jobs "$JOBS" --progress none >"$WORK/logs/export8.log" 2>&1 ||
	die "myspool export of bench8 failed: $(tail -n 5 "$WORK/logs/export8.log")"
mydumper -h "$HOST" -P "$PORT" -u root -B bench8 -t "$JOBS" -r 500000 -c -o "$D8M" >"$WORK/logs/mydumper8.log" 2>&1 ||
	die "mydumper of bench8 failed: $(tail -n 5 "$WORK/logs/mydumper8.log")"
log "load, 8 tables, into an empty bench8_copy (runs: $RUNS)"
for ((r = 1; r <= RUNS; r++)); do
	for id in ms_load8 ms_load8_fast ml_load8_e ml_load8; do
		fresh_target bench8_copy
		case $id in
		ms_load8) load_by ms "$id" "$r" "$D8" bench8_copy ;;
		ms_load8_fast) load_by ms_fast "$id" "$r" "$D8" bench8_copy ;;
		ml_load8_e) load_by ml_e "$id" "$r" "$D8M" bench8_copy ;;
		ml_load8) load_by ml "$id" "$r" "$D8M" bench8_copy ;;
		esac
		SIZE[$id]="binlog $(mb "$(binlog_written)")"
		got=$(checksums8 bench8_copy)
		[[ $got == "$SRC_SUM8" ]] ||
			die "CHECKSUM MISMATCH after $id (run $r): bench8_copy.t1..t8 = $got, bench8 = $SRC_SUM8. No load figure is reported."
		log "  $id run $r: CHECKSUM TABLE bench8_copy.t1..t8 = bench8"
	done
done
sql -e "DROP DATABASE IF EXISTS bench8_copy; DROP DATABASE bench8; RESET MASTER"
rm -rf "$D8" "$D8M"

log "process (runs: $RUNS)"
P1=$WORK/processed-myspool
P2=$WORK/processed-xargs
for ((r = 1; r <= RUNS; r++)); do
	rm -rf "$P1" "$P2"
	settle
	measure ms_process "$r" "$MYSPOOL" process --dir "$D" --out "$P1" --exec cat --jobs "$JOBS" --progress none
	mkdir -p "$P2"
	measure xargs_process "$r" "$WORK/xargs_cat.sh" "$D" "$P2"
done
SIZE[ms_process]=$(mb "$(du_b "$P1")")
SIZE[xargs_process]=$(mb "$(du_b "$P2")")
[[ $(jq '[.chunks[].rows] | add' "$P1/bench/t/table.json") == "$ROWS" ]] || die "the processed dump does not hold $ROWS rows"
rm -rf "$P1" "$P2" "$D2N"

log "round trip (runs: $RUNS)"
C=$WORK/copy
if ((PY_ROWS < ROWS)); then PY_WHERE="id <= $PY_ROWS"; else PY_WHERE=""; fi
for ((r = 1; r <= RUNS; r++)); do
	rm -rf "$C"
	fresh_target bench_copy
	measure ms_copy "$r" "$MYSPOOL" copy --from "$URL" --to "$URL" --table bench.t --dir "$C" \
		--exec cat --into bench_copy --jobs "$JOBS" --progress none
	SIZE[ms_copy]="binlog $(mb "$(binlog_written)")"
	check_copy bench_copy ms_copy "$r"
	log "  ms_copy run $r: CHECKSUM TABLE bench_copy.t = bench.t"

	sql -e "DROP DATABASE IF EXISTS bench_copy"
	fresh_target bench_py
	sql -e "CREATE TABLE bench_py.t LIKE bench.t"
	measure py "$r" "$PYTHON" scripts/bench_stream.py --host "$HOST" --port "$PORT" --user root \
		--src bench.t --dst bench_py.t --where "$PY_WHERE" --batch 1000
	PY_BINLOG=$(binlog_written)
	py_rows=$(jq .rows "$WORK/logs/py.$r.log")
	[[ $py_rows == "$PY_ROWS" ]] || die "bench_stream.py copied $py_rows rows, expected $PY_ROWS"
	# The slice must equal the same rows of bench.t.
	if [[ -n $PY_WHERE ]]; then
		sql -e "CREATE TABLE bench_py.src LIKE bench.t; INSERT INTO bench_py.src SELECT * FROM bench.t WHERE $PY_WHERE"
		want=$(sqlv "CHECKSUM TABLE bench_py.src" | cut -f2)
	else
		want=$SRC_SUM
	fi
	got=$(sqlv "CHECKSUM TABLE bench_py.t" | cut -f2)
	[[ $got == "$want" ]] || die "CHECKSUM MISMATCH after bench_stream.py (run $r): bench_py.t = $got, source slice = $want"
	log "  py run $r: CHECKSUM TABLE bench_py.t = the source rows"
	sql -e "DROP DATABASE bench_py"
done
rm -rf "$C"
sql -e "RESET MASTER"

# Python: measured on PY_ROWS rows, scaled linearly to ROWS.
PY_SCALE=$(awk -v a="$ROWS" -v b="$PY_ROWS" 'BEGIN { printf "%.4f", a / b }')
# shellcheck disable=SC2086
PY_MEASURED=$(median ${SECS[py]})
FIXED[py]=$(awk -v s="$PY_MEASURED" -v k="$PY_SCALE" 'BEGIN { printf "%.3f", s * k }')
if ((PY_ROWS < ROWS)); then
	NAME[py]+=" — **scaled** ×$(awk -v k="$PY_SCALE" 'BEGIN { printf "%g", k }') from $PY_ROWS rows ($PY_MEASURED s measured)"
	SIZE[py]="binlog $(mb "$(awk -v b="$PY_BINLOG" -v k="$PY_SCALE" 'BEGIN { printf "%d", b * k }')") (scaled)"
else
	SIZE[py]="binlog $(mb "$PY_BINLOG")"
fi
FIXED[ms_sum]=$(awk -v a="$(med_of ms_export)" -v b="$(med_of ms_process)" -v c="$(med_of ms_load)" \
	'BEGIN { printf "%.3f", a + b + c }')
FIXED[md_sum]=$(awk -v a="$(med_of md_export_c)" -v b="$(med_of ml_load_e)" 'BEGIN { printf "%.3f", a + b }')
RSS[ms_sum]=$(printf '%s\n' "${RSS[ms_export]}" "${RSS[ms_process]}" "${RSS[ms_load]}" | sort -n | tail -n1)
RSS[md_sum]=$(printf '%s\n' "${RSS[md_export_c]}" "${RSS[ml_load_e]}" | sort -n | tail -n1)
SIZE[ms_sum]="—"
SIZE[md_sum]="—"

# ---------------------------------------------------------------- 5. report

declare -A BASE=([export]=ms_export [load]=ms_load [load8]=ms_load8 [process]=ms_process [roundtrip]=ms_copy)
declare -A PHASE_NAME=([export]=export [load]=load [load8]="load, 8 tables" [process]=process [roundtrip]="round trip")

MARIADBD=$(command -v mariadbd || echo /usr/sbin/mariadbd)
MEM=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
MYDUMPER_V=$(mydumper --version 2>&1 | head -n1)
MYDUMPER_PKG=$(dpkg-query -W -f='${Version}' mydumper 2>/dev/null || echo "?")
[[ -z $MD1 ]] || MYDUMPER_V+="; also $("$MD1/mydumper" --version 2>&1 | head -n1) from $MD1"
REV=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo "?")
ELAPSED=$SECONDS
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

report() {
	local id phase med secs_cell range ratio cpu_c cpu_s base_c base_s cpu_cell cpu_ratio
	printf '# myspool benchmark\n\n'
	printf 'Machine: %s CPUs (nproc), %s RAM; %s; %s (Debian package %s); %s; %s\n\n' \
		"$(nproc)" "$MEM" "$("$MARIADBD" --version 2>&1 | head -n1)" "$MYDUMPER_V" "$MYDUMPER_PKG" \
		"$(date -u '+%Y-%m-%d %H:%M UTC')" "myspool $REV"
	printf 'Data: %s, %s rows, %s as myspool CSV (%s chunks), BIGINT AUTO_INCREMENT key, secondary index on a scattered INT, VARCHAR with NULL/%s/quotes/newlines/UTF-8, DECIMAL(12,2), DATETIME(6), BINARY(8). ' \
		"\`bench.t\`" "$ROWS" "$(mb "$CSV_BYTES")" "$CHUNKS" "''"
	printf 'Server: a sandbox %s on the same machine (it competes for the same cores), %s. ' "\`mariadbd\`" "\`${SERVER_OPTS[*]}\`"
	printf '2 threads/jobs everywhere; %s run(s) per figure, median shown (min–max in brackets when runs > 1). ' "$RUNS"
	printf 'Load average (1/5/15 min) at the start: %s, at the end: %s (the benchmark itself keeps it near 2; more means something else was running).\n\n' \
		"$LOAD_BEFORE" "$LOAD_AFTER"
	printf '| tool | phase | seconds (median) | rows/s | MB/s of CSV | peak RSS | output size | ratio to myspool | CPU s: client + server | CPU ratio |\n'
	printf '|---|---|---:|---:|---:|---:|---|---:|---:|---:|\n'
	for id in "${ORDER[@]}"; do
		phase=${PHASE[$id]}
		med=$(med_of "$id")
		read -r cpu_c cpu_s <<<"$(cpu_of "$id")"
		read -r base_c base_s <<<"$(cpu_of "${BASE[$phase]}")"
		cpu_cell=$(awk -v c="$cpu_c" -v s="$cpu_s" 'BEGIN { printf "%.1f + %.1f", c, s }')
		cpu_ratio=$(awk -v t="$(awk -v c="$cpu_c" -v s="$cpu_s" 'BEGIN { print c + s }')" \
			-v b="$(awk -v c="$base_c" -v s="$base_s" 'BEGIN { print c + s }')" 'BEGIN { printf "%.2f×", t / b }')
		secs_cell=$(awk -v m="$med" 'BEGIN { printf "%.2f", m }')
		if [[ -z ${FIXED[$id]:-} ]] && ((RUNS > 1)); then
			# shellcheck disable=SC2086
			range=$(printf '%s\n' ${SECS[$id]} | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.2f–%.2f", lo, hi }')
			secs_cell+=" ($range)"
		fi
		ratio=$(awk -v m="$med" -v b="$(med_of "${BASE[$phase]}")" 'BEGIN { printf "%.2f×", m / b }')
		[[ $id != "${BASE[$phase]}" ]] || ratio="1.00 (baseline)" cpu_ratio="1.00"
		# Text through the environment: awk -v would eat the backslashes of "\|".
		NAME_CELL=${NAME[$id]} SIZE_CELL=${SIZE[$id]:-—} awk -v phase="${PHASE_NAME[$phase]}" -v secs="$secs_cell" \
			-v m="$med" -v rows="$ROWS" -v csv="$CSV_BYTES" -v rss="${RSS[$id]:-0}" -v ratio="$ratio" \
			-v cpu="$cpu_cell" -v cpu_ratio="$cpu_ratio" '
			function commas(n,   s) { s = sprintf("%d", n); while (s ~ /[0-9][0-9][0-9][0-9]/) sub(/[0-9][0-9][0-9]($|,)/, ",&", s); return s }
			BEGIN { printf "| %s | %s | %s | %s | %.1f | %.1f MiB | %s | %s | %s | %s |\n",
				ENVIRON["NAME_CELL"], phase, secs, commas(rows / m), csv / 1e6 / m, rss / 1024, ENVIRON["SIZE_CELL"], ratio, cpu, cpu_ratio }'
	done
	printf '\nNotes:\n\n'
	printf -- "- ratio = seconds / the seconds of the phase's myspool row; above 1 is slower than myspool. MB/s of CSV = the table's size as myspool CSV (%s) / seconds, the same numerator for every tool of a phase. MB = 10^6 bytes.\n" "$(mb "$CSV_BYTES")"
	cat <<'MD'
- CPU s: user + system CPU seconds (medians) of the client side (the whole pipeline, per `/usr/bin/time -v`) and of the server process over the same interval (from `/proc/PID/stat`; background flushing is counted while the command runs, not after it). Client and server share the machine's cores, so with every core busy the wall time is about (client + server) / cores: the CPU ratio is the work a tool makes both sides do, whatever the core count.
- peak RSS is the client side only (the largest process of a pipeline, per `/usr/bin/time -v`); the server's memory is not counted. For `SELECT … INTO OUTFILE` and `LOAD DATA` the work is the server's.
- load / round-trip "output size" is what the load wrote to the binary log (ROW format; MariaDB also logs each statement's text as an annotation, so INSERT-based loaders write their SQL text there too). Every load went into an empty database and was checked with `CHECKSUM TABLE` against `bench.t` after every run (all equal); the Python slice against the same rows of `bench.t`.
- "load, 8 tables" loads the same rows split by id into 8 tables of an eighth each (`bench8.t1`…`t8`, same definition as `bench.t`), dumped by `myspool export` and `mydumper -c`; every table checked with `CHECKSUM TABLE` after every run.
- myloader 0.10 turns the binary log off for its sessions unless `-e`; `myspool load` writes it unless `--skip-binlog`. myloader's `-B` names the target database, `-o` drops existing tables.
- With `--mydumper DIR`: that build's mydumper compresses through the `gzip` and `zstd` programs (their CPU is in the client column), and its myloader loads a `--format LOAD_DATA` dump (gzip) with `LOAD DATA LOCAL INFILE` and builds secondary indexes after the rows (`--optimize-keys`, its default), as `myspool load` does by default into an empty table (`--indexes auto`).
- The LOAD DATA row reads the file written by `SELECT * … INTO OUTFILE` (tab-separated, backslash escapes, NULL as `\N`), loaded with `CHARACTER SET binary`, as one statement (one transaction). A TSV from `mariadb --batch` does not load back: it writes SQL NULL as the text `NULL`, the same as the string 'NULL', and `--raw` leaves tabs and newlines unescaped.
- Before every measurement the server flushes its dirty pages (`innodb_max_dirty_pages_pct = 0` until the count stops falling), so no tool pays for the previous one's writes.
MD
	printf -- '- This run: %s rows, %s run(s), %d min %02d s in all (data generation, checks and settling included).\n' \
		"$ROWS" "$RUNS" $((ELAPSED / 60)) $((ELAPSED % 60))
}

report >"$WORK/report.md"
mkdir -p "$(dirname "$OUT")"
cp "$WORK/report.md" "$OUT"
cat "$WORK/report.md"
log "written to $OUT"
