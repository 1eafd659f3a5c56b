#!/usr/bin/env bash
# Benchmark a load into a 3-node Galera cluster on this machine: through one
# node against spread over the three (--to given once per node), one run each,
# and print the ratios as a Markdown table.
#
#   scripts/bench_galera.sh [--rows N] [--jobs J] [--chunk-rows N]
#
#   --rows N        rows in bench.t (default 1000000)
#   --jobs J        loading jobs in both runs (default 3)
#   --chunk-rows N  rows per chunk of the dump (default 50000)
#
# What it does: builds myspool (release); starts three mariadbd with wsrep on
# (Debian's galera-4, rsync SST; installed with apt-get if missing) on free
# ports of 127.0.0.1, in one temporary directory removed at exit with the
# nodes; fills bench.t on node 1 from the sequence engine; exports it once;
# loads it through node 1 into bench_one, then through all three nodes into
# bench_three (both with --into, on the same cluster); checks that every node
# holds the same CHECKSUM TABLE for both copies (read with wsrep_sync_wait=1);
# prints the wall-clock times, the ratio, and the flow-control pause the load
# summary reports. All three nodes share this machine's cores, so spreading
# the jobs only saves the client round trips to one node, not server CPU:
# the ratio says what a loaded local cluster does, not what three machines do.
# myloader is not part of it (see scripts/bench.sh for it on one server).
set -euo pipefail
cd "$(dirname "$0")/.."

ROWS=1000000
JOBS=3
CHUNK_ROWS=50000
while [ $# -gt 0 ]; do
	case $1 in
	--rows) ROWS=$2; shift 2 ;;
	--jobs) JOBS=$2; shift 2 ;;
	--chunk-rows) CHUNK_ROWS=$2; shift 2 ;;
	*) echo "usage: $0 [--rows N] [--jobs J] [--chunk-rows N]" >&2; exit 2 ;;
	esac
done

log() { printf 'bench_galera: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

packages=()
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || packages+=(mariadb-server)
command -v mariadb >/dev/null 2>&1 || packages+=(mariadb-client)
[ -f /usr/lib/galera/libgalera_smm.so ] || packages+=(galera-4)
command -v rsync >/dev/null 2>&1 || packages+=(rsync)
if [ ${#packages[@]} -gt 0 ]; then
	[ "$(id -u)" -eq 0 ] || die "missing ${packages[*]}; run as root or install them"
	log "installing ${packages[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${packages[@]}"
fi
PATH=$PATH:/usr/sbin

log "building myspool (release)"
cargo build --release --locked -q
MYSPOOL=$PWD/target/release/myspool

WORK=$(mktemp -d "${TMPDIR:-/tmp}/myspool-bench-galera.XXXXXX")
PIDS=()
cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT

# Twelve ports that were free a moment ago: client, group, IST, SST per node.
read -r -a PORTS <<<"$(python3 -c '
import socket
socks = [socket.socket() for _ in range(12)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))')"
port() { echo "${PORTS[$(($1 * 4 + $2))]}"; } # node (0-2), kind (0 client, 1 group, 2 IST, 3 SST)
ADDRESS="gcomm://127.0.0.1:$(port 0 1),127.0.0.1:$(port 1 1),127.0.0.1:$(port 2 1)"

q() { mariadb --no-defaults -uroot -h127.0.0.1 -P"$(port "$1" 0)" -N -B -e "$2"; }

wait_synced() {
	local n=$1 i
	for i in $(seq 600); do
		[ "$(q "$n" "SHOW STATUS LIKE 'wsrep_local_state_comment'" 2>/dev/null | cut -f2)" = Synced ] && return 0
		kill -0 "${PIDS[$n]}" 2>/dev/null || die "node $((n + 1)) exited: $(tail -n 20 "$WORK/node$n/error.log")"
		sleep 0.2
	done
	die "node $((n + 1)) did not reach Synced"
}

for n in 0 1 2; do
	D=$WORK/node$n
	mkdir -p "$D/tmp"
	mariadb-install-db --no-defaults --datadir="$D/data" --auth-root-authentication-method=normal \
		--skip-test-db --tmpdir="$D/tmp" >"$D/install.log" 2>&1 || die "mariadb-install-db: $(tail -n 5 "$D/install.log")"
	# As root, the rsync SST daemon runs as nobody: it must own the joiner's files.
	if [ "$(id -u)" -eq 0 ]; then
		chmod 755 "$WORK" "$D"
		chown -R nobody "$D/data" "$D/tmp"
	fi
done
log "starting 3 Galera nodes"
started=$(date +%s.%N)
for n in 0 1 2; do
	D=$WORK/node$n
	extra=()
	[ "$n" -eq 0 ] && extra+=(--wsrep-new-cluster)
	[ "$(id -u)" -eq 0 ] && extra+=(--user=root)
	mariadbd --no-defaults --datadir="$D/data" --tmpdir="$D/tmp" --socket="$D/mysqld.sock" \
		--pid-file="$D/mysqld.pid" --log-error="$D/error.log" --bind-address=127.0.0.1 \
		--port="$(port $n 0)" --skip-name-resolve --local-infile=1 \
		--innodb-buffer-pool-size=512M --innodb-log-file-size=256M --innodb-flush-log-at-trx-commit=0 \
		--binlog-format=ROW --default-storage-engine=InnoDB --innodb-autoinc-lock-mode=2 \
		--wsrep-on=ON --wsrep-provider=/usr/lib/galera/libgalera_smm.so --wsrep-cluster-name=bench \
		--wsrep-cluster-address="$ADDRESS" --wsrep-node-name="node$((n + 1))" \
		--wsrep-node-address="127.0.0.1:$(port $n 1)" \
		--wsrep-provider-options="gmcast.listen_addr=tcp://127.0.0.1:$(port $n 1);ist.recv_addr=127.0.0.1:$(port $n 2);gcache.size=256M" \
		--wsrep-sst-method=rsync --wsrep-sst-receive-address="127.0.0.1:$(port $n 3)" \
		"${extra[@]}" </dev/null >"$D/stdout" 2>&1 &
	PIDS+=($!)
	wait_synced "$n"
done
log "3 nodes synced in $(echo "$(date +%s.%N) - $started" | bc) s"
URL=()
for n in 0 1 2; do URL+=("mysql://root@127.0.0.1:$(port $n 0)"); done

log "filling bench.t with $ROWS rows"
q 0 "CREATE DATABASE bench; USE bench; CREATE TABLE bench.t (id BIGINT AUTO_INCREMENT PRIMARY KEY,
  k INT NOT NULL, s VARCHAR(64), d DECIMAL(12,2), at DATETIME(6), KEY (k));
  INSERT INTO bench.t SELECT seq, (seq * 7919) % 1000003, CONCAT('row ', seq, ' é \"q\"'),
  seq / 100, '2024-01-01' + INTERVAL seq SECOND FROM seq_1_to_$ROWS"

"$MYSPOOL" export --from "${URL[0]}" --table bench.t --dir "$WORK/dump" --chunk-rows "$CHUNK_ROWS" \
	--progress none >/dev/null

# load NAME INTO TO...: seconds, and the flow-control pause from the summary.
load() {
	local name=$1 into=$2 t0 t1
	shift 2
	t0=$(date +%s.%N)
	"$MYSPOOL" load --dir "$WORK/dump" --into "$into" --jobs "$JOBS" --progress none --json "$@" \
		>"$WORK/$name.json" 2>"$WORK/$name.err" || die "$name: $(cat "$WORK/$name.err")"
	t1=$(date +%s.%N)
	echo "$t1 - $t0" | bc
}
log "loading through node 1"
ONE=$(load one bench_one --to "${URL[0]}")
log "loading through 3 nodes"
THREE=$(load three bench_three --to "${URL[0]}" --to "${URL[1]}" --to "${URL[2]}")

SOURCE_SUM=$(q 0 "CHECKSUM TABLE bench.t EXTENDED" | cut -f2)
for n in 0 1 2; do
	for db in bench_one bench_three; do
		sum=$(q "$n" "SET SESSION wsrep_sync_wait = 1; CHECKSUM TABLE $db.t EXTENDED" | cut -f2)
		[ "$sum" = "$SOURCE_SUM" ] || die "node $((n + 1)): $db.t checksum $sum, bench.t $SOURCE_SUM"
	done
done

paused() { python3 -c 'import json,sys; g=json.load(open(sys.argv[1]))["galera"]; print("%.1f s (%.0f%%)" % (g["flow_control_paused_seconds"], 100*g["flow_control_paused"]))' "$1"; }
row() { printf '| %s | %.1f | %.0f | %s | %s |\n' "$1" "$2" "$(echo "$ROWS / $2" | bc -l)" "$(printf '%.2f' "$(echo "$2 / $ONE" | bc -l)")" "$3"; }
{
	printf '\nLoad of %s rows (%s chunks of %s rows) into a 3-node Galera cluster on this machine, --jobs %s, one run; every node checked by CHECKSUM TABLE.\n\n' \
		"$ROWS" "$(((ROWS + CHUNK_ROWS - 1) / CHUNK_ROWS))" "$CHUNK_ROWS" "$JOBS"
	printf '| load | seconds | rows/s | time / through one node | flow control paused |\n|---|---|---|---|---|\n'
	row "through node 1" "$ONE" "$(paused "$WORK/one.json")"
	row "spread over 3 nodes" "$THREE" "$(paused "$WORK/three.json")"
}
