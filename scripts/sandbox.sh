#!/usr/bin/env bash
# A throwaway MariaDB server for trying myspool by hand.
#
#   scripts/sandbox.sh start [--port N] [-- extra mariadbd options...]
#       Installs a fresh datadir under $MYSPOOL_SANDBOX_DIR/PORT
#       (default ~/.cache/myspool-sandbox/PORT), starts mariadbd in the
#       background on 127.0.0.1:PORT (default 3407, or a free port if 3407 is
#       taken and --port was not given), waits until it accepts connections
#       and prints its URL, mysql://root@127.0.0.1:PORT, as the last line of
#       stdout. root has no password. LOAD DATA LOCAL INFILE is allowed.
#       Progress goes to stderr, so:  URL=$(scripts/sandbox.sh start | tail -n1)
#   scripts/sandbox.sh stop [--port N]
#       Shuts the sandbox down and deletes its directory (without --port: every
#       sandbox under the sandbox directory).
#   scripts/sandbox.sh status
#       Lists the sandboxes, running or not, with their URLs.
#
# Installs mariadb-server and mariadb-client with apt-get if mariadbd is
# missing (needs root or sudo). The server options match the test harness in
# tests/it/common/server.rs.
set -euo pipefail

BASE=${MYSPOOL_SANDBOX_DIR:-$HOME/.cache/myspool-sandbox}
DEFAULT_PORT=3407
MARKER=.myspool-sandbox

log() { printf 'sandbox: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

usage() {
	awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0" >&2
	exit "${1:-2}"
}

# find_prog NAME... : path of the first one found on PATH or in the sbin dirs.
find_prog() {
	local name dir
	for name in "$@"; do
		if command -v "$name" >/dev/null 2>&1; then
			command -v "$name"
			return 0
		fi
		for dir in /usr/sbin /usr/local/sbin /usr/bin /usr/local/bin; do
			if [[ -x $dir/$name ]]; then
				echo "$dir/$name"
				return 0
			fi
		done
	done
	return 1
}

ensure_mariadb() {
	if find_prog mariadbd mysqld >/dev/null && find_prog mariadb-install-db mysql_install_db >/dev/null; then
		return 0
	fi
	log "mariadbd not found; installing mariadb-server and mariadb-client with apt-get"
	local sudo=()
	if [[ $EUID -ne 0 ]]; then
		command -v sudo >/dev/null 2>&1 || die "not root and no sudo: install mariadb-server and mariadb-client yourself"
		sudo=(sudo)
	fi
	command -v apt-get >/dev/null 2>&1 || die "no apt-get: install MariaDB (server and client) yourself"
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update >&2
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y mariadb-server mariadb-client >&2
	find_prog mariadbd mysqld >/dev/null || die "mariadbd still not found after installing"
}

# Something accepts TCP connections on 127.0.0.1:$1?
port_in_use() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Running, i.e. exists and is not a zombie (an orphaned mariadbd killed with -9
# can stay a zombie for a while if init is slow to reap it).
pid_alive() {
	[[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null || return 1
	if [[ -r /proc/$1/stat ]]; then
		local stat
		stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
		stat=${stat##*) }
		[[ ${stat:0:1} != Z && ${stat:0:1} != X ]]
	fi
}

sandbox_pid() {
	local dir=$1
	if [[ -s $dir/mysqld.pid ]]; then
		cat "$dir/mysqld.pid"
	elif [[ -s $dir/launcher.pid ]]; then
		cat "$dir/launcher.pid"
	fi
}

url_of() { echo "mysql://root@127.0.0.1:$1"; }

cmd_start() {
	local port="" extra=()
	while [[ $# -gt 0 ]]; do
		case $1 in
		--port)
			[[ $# -ge 2 ]] || die "--port needs a value"
			port=$2
			shift 2
			;;
		--port=*)
			port=${1#--port=}
			shift
			;;
		--)
			shift
			extra=("$@")
			break
			;;
		-h | --help) usage 0 ;;
		*) die "start: unknown argument '$1' (mariadbd options go after --)" ;;
		esac
	done

	ensure_mariadb
	local mariadbd install_db admin
	mariadbd=$(find_prog mariadbd mysqld)
	install_db=$(find_prog mariadb-install-db mysql_install_db)

	if [[ -n $port ]]; then
		if ! [[ $port =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
			die "bad port '$port'"
		fi
		local dir=$BASE/$port
		if [[ -f $dir/$MARKER ]] && pid_alive "$(sandbox_pid "$dir")"; then
			log "a sandbox is already running on port $port ($dir)"
			url_of "$port"
			return 0
		fi
		port_in_use "$port" && die "port $port is already in use by something else"
	else
		port=$DEFAULT_PORT
		while port_in_use "$port" || [[ -e $BASE/$port ]]; do
			port=$((port + 1))
			((port < DEFAULT_PORT + 200)) || die "no free port in $DEFAULT_PORT..$((DEFAULT_PORT + 199))"
		done
		[[ $port == "$DEFAULT_PORT" ]] || log "port $DEFAULT_PORT is taken; using $port"
	fi

	local dir=$BASE/$port
	if [[ -e $dir ]]; then
		[[ -f $dir/$MARKER ]] || die "$dir exists and is not a sandbox; remove it or choose another port"
		log "removing the stale sandbox in $dir"
		rm -rf -- "$dir"
	fi
	mkdir -p "$dir/tmp"
	touch "$dir/$MARKER"

	local socket=$dir/mysqld.sock
	if ((${#socket} > 100)); then
		# unix socket paths are limited to ~107 bytes
		socket=${TMPDIR:-/tmp}/myspool-sandbox-$port.sock
	fi
	echo "$socket" >"$dir/socket.path"

	log "installing a datadir in $dir/data"
	if ! "$install_db" --no-defaults --datadir="$dir/data" --tmpdir="$dir/tmp" \
		--auth-root-authentication-method=normal --skip-test-db \
		--innodb-log-file-size=16M >"$dir/install.log" 2>&1; then
		cat "$dir/install.log" >&2
		rm -rf -- "$dir"
		die "mariadb-install-db failed"
	fi

	local opts=(
		--no-defaults
		--datadir="$dir/data"
		--port="$port"
		--bind-address=127.0.0.1
		--socket="$socket"
		--pid-file="$dir/mysqld.pid"
		--log-error="$dir/error.log"
		--tmpdir="$dir/tmp"
		--innodb-buffer-pool-size=64M
		--innodb-log-file-size=16M
		--skip-name-resolve
		--local-infile=1
	)
	[[ $EUID -ne 0 ]] || opts+=(--user=root)
	opts+=("${extra[@]}")
	printf '%q ' "$mariadbd" "${opts[@]}" >"$dir/command"
	echo >>"$dir/command"

	log "starting mariadbd on 127.0.0.1:$port"
	# Detached from this shell (own session), so it outlives the terminal.
	setsid "$mariadbd" "${opts[@]}" </dev/null >>"$dir/mariadbd.out" 2>&1 &
	local pid=$!
	echo "$pid" >"$dir/launcher.pid"

	local client
	client=$(find_prog mariadb-admin mysqladmin) || die "mariadb-admin not found (install mariadb-client)"
	local deadline=$((SECONDS + 30))
	until "$client" --no-defaults --protocol=tcp -h127.0.0.1 -P"$port" -uroot \
		--connect-timeout=2 ping >/dev/null 2>&1; do
		if ! pid_alive "$pid" || ((SECONDS >= deadline)); then
			pid_alive "$pid" && kill -9 "$pid" 2>/dev/null
			log "mariadbd did not come up; last lines of $dir/error.log:"
			tail -n 30 "$dir/error.log" >&2 2>/dev/null || true
			rm -rf -- "$dir"
			die "start failed"
		fi
		sleep 0.1
	done
	log "ready: datadir $dir/data, socket $socket, log $dir/error.log"
	log "stop with: $0 stop --port $port"
	url_of "$port"
}

stop_one() {
	local dir=$1 port pid socket admin
	port=$(basename "$dir")
	[[ -f $dir/$MARKER ]] || die "$dir is not a sandbox directory; not touching it"
	pid=$(sandbox_pid "$dir")
	socket=$(cat "$dir/socket.path" 2>/dev/null || echo "$dir/mysqld.sock")
	if pid_alive "$pid"; then
		log "stopping the sandbox on port $port (pid $pid)"
		if admin=$(find_prog mariadb-admin mysqladmin); then
			"$admin" --no-defaults -S "$socket" -uroot --connect-timeout=2 shutdown >/dev/null 2>&1 ||
				kill -TERM "$pid" 2>/dev/null || true
		else
			kill -TERM "$pid" 2>/dev/null || true
		fi
		local deadline=$((SECONDS + 30))
		while pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
		if pid_alive "$pid"; then
			log "still running after 30 s; killing it"
			kill -9 "$pid" 2>/dev/null || true
			sleep 0.2
		fi
	else
		log "the sandbox on port $port is not running"
	fi
	rm -f -- "$socket"
	rm -rf -- "$dir"
	log "removed $dir"
}

cmd_stop() {
	local port=""
	while [[ $# -gt 0 ]]; do
		case $1 in
		--port)
			[[ $# -ge 2 ]] || die "--port needs a value"
			port=$2
			shift 2
			;;
		--port=*)
			port=${1#--port=}
			shift
			;;
		-h | --help) usage 0 ;;
		*) die "stop: unknown argument '$1'" ;;
		esac
	done
	if [[ -n $port ]]; then
		[[ -d $BASE/$port ]] || die "no sandbox on port $port (looked in $BASE/$port)"
		stop_one "$BASE/$port"
		return 0
	fi
	local found=0 dir
	for dir in "$BASE"/*/; do
		[[ -f $dir/$MARKER ]] || continue
		found=1
		stop_one "${dir%/}"
	done
	((found)) || log "no sandboxes in $BASE"
}

cmd_status() {
	local found=0 dir port pid state
	for dir in "$BASE"/*/; do
		[[ -f $dir/$MARKER ]] || continue
		found=1
		dir=${dir%/}
		port=$(basename "$dir")
		pid=$(sandbox_pid "$dir")
		if pid_alive "$pid"; then state="running (pid $pid)"; else state="not running"; fi
		printf '%s\t%s\t%s\n' "$(url_of "$port")" "$state" "$dir"
	done
	((found)) || log "no sandboxes in $BASE"
}

[[ $# -ge 1 ]] || usage
command=$1
shift
case $command in
start) cmd_start "$@" ;;
stop) cmd_stop "$@" ;;
status) cmd_status "$@" ;;
-h | --help | help) usage 0 ;;
*)
	log "unknown command '$command'"
	usage
	;;
esac
