#!/usr/bin/env bash
# The main job, end to end, on a throwaway local server:
#   1. installs MariaDB from Debian's packages if mariadbd is missing,
#   2. builds myspool (release),
#   3. starts a sandbox server (scripts/sandbox.sh) and fills a demo database
#      with a few hundred thousand rows holding the values that usually break
#      exports (NULL vs '' vs 'NULL' vs '\N', quotes, commas, newlines, UTF-8,
#      binary bytes),
#   4. exports it, shows the dump, and checks a rerun keeps every chunk,
#   5. runs the README's processing example over a chunk,
#   6. loads the dump into another database (showing the AUTO_INCREMENT policy
#      refuse a parallel load, then --autoinc drop), verifies it, reruns it,
#   7. processes the dump with the README's Python example, loads the result,
#      and shows `myspool status`,
#   8. stops the sandbox (MYSPOOL_DEMO_KEEP=1 keeps it and the dump).
#
# Options: MYSPOOL_DEMO_ROWS (default 300000), MYSPOOL_DEMO_DIR (default: a
# new temporary directory).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ROWS=${MYSPOOL_DEMO_ROWS:-300000}
WORK=${MYSPOOL_DEMO_DIR:-$(mktemp -d /tmp/myspool-demo.XXXXXX)}
mkdir -p "$WORK"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then . "$HOME/.cargo/env"; fi
command -v cargo >/dev/null 2>&1 || { echo "demo: cargo not found; install Rust first" >&2; exit 1; }
if ! command -v mariadb >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q && apt-get install -y -q --no-install-recommends mariadb-client
fi

say "building myspool (release)"
cargo build --release --locked --quiet
MYSPOOL=$ROOT/target/release/myspool

say "starting a sandbox MariaDB server"
export MYSPOOL_SANDBOX_DIR=$WORK/sandbox
URL=$(scripts/sandbox.sh start | tail -n1)
PORT=${URL##*:}
cleanup() {
  if [ "${MYSPOOL_DEMO_KEEP:-0}" = 1 ]; then
    echo "demo: kept the sandbox ($URL) and $WORK; stop it with MYSPOOL_SANDBOX_DIR=$WORK/sandbox scripts/sandbox.sh stop"
  else
    scripts/sandbox.sh stop --port "$PORT" >/dev/null 2>&1 || true
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
echo "server: $URL"
sql() { mariadb --protocol=tcp -h127.0.0.1 -P"$PORT" -uroot --default-character-set=utf8mb4 "$@"; }

say "creating demo.orders ($ROWS rows) and demo.order_lines (composite key)"
sql <<SQL
CREATE DATABASE demo CHARACTER SET utf8mb4;
USE demo;
CREATE TABLE orders (
  id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  customer VARCHAR(100) NULL,
  note TEXT NULL,
  amount DECIMAL(12,2) NOT NULL,
  created DATETIME(6) NOT NULL,
  token BINARY(8) NOT NULL,
  KEY by_created (created)
);
INSERT INTO orders (id, customer, note, amount, created, token)
SELECT seq,
  CASE seq % 7 WHEN 0 THEN NULL WHEN 1 THEN '' WHEN 2 THEN 'NULL'
       ELSE CONCAT('Customer ', seq, IF(seq % 5 = 0, ' «Zoë» 😀', '')) END,
  CASE seq % 11 WHEN 0 THEN NULL WHEN 1 THEN 'said "hi", then left\nnext line'
       WHEN 2 THEN '\\\\N' WHEN 3 THEN 'C:\\\\temp\\\\x, y' ELSE CONCAT('note ', seq) END,
  seq * 1.25,
  '2024-01-01' + INTERVAL seq SECOND + INTERVAL seq % 1000 MICROSECOND,
  UNHEX(LPAD(HEX(seq * 2654435761), 16, '0'))
FROM seq_1_to_$ROWS;
CREATE TABLE order_lines (
  order_id BIGINT UNSIGNED NOT NULL, line SMALLINT NOT NULL, sku CHAR(8) NOT NULL, qty INT NOT NULL,
  PRIMARY KEY (order_id, line)
);
INSERT INTO order_lines SELECT seq DIV 3 + 1, seq % 3, LPAD(seq % 9973, 8, '0'), seq % 17 FROM seq_0_to_$((ROWS / 2));
SQL
sql -e "SELECT COUNT(*) AS orders, SUM(customer IS NULL) AS null_customers, SUM(customer = '') AS empty_customers FROM demo.orders"

say "myspool export --table 'demo.*' --jobs 2"
"$MYSPOOL" export --from "$URL" --table 'demo.*' --dir "$WORK/dump" --jobs 2 --progress plain

say "the dump directory"
(cd "$WORK/dump" && find . -maxdepth 3 -not -name '0*.csv.gz' | sort | sed 's/^/  /')
echo "  … plus $(find "$WORK/dump" -name '*.csv.gz' | wc -l) chunk files (*.csv.gz)"
echo
python3 - "$WORK/dump" <<'PY'
import json, sys
d = sys.argv[1]
m = json.load(open(f"{d}/manifest.json"))
print("manifest:", {k: m[k] for k in ("format_version", "tool_version", "consistency", "complete")})
t = json.load(open(f"{d}/demo/orders/table.json"))
print("demo.orders columns:", [(c["name"], c["column_type"], c["encoding"]) for c in t["columns"]])
c = t["chunks"][min(1, len(t["chunks"]) - 1)]
print(f"demo.orders chunk {c['number']} of {len(t['chunks'])}:", {k: c[k] for k in ("file", "lower", "upper", "rows", "bytes", "sha256")})
PY
echo
echo "first rows of demo/orders/000001.csv.gz (NULL is an unquoted empty field):"
(zcat "$WORK/dump/demo/orders/000001.csv.gz" || true) | head -n 8 | sed 's/^/  /'

say "checksums: sha256sum agrees with the manifest"
python3 - "$WORK/dump" <<'PY'
import hashlib, json, sys
d = sys.argv[1]
t = json.load(open(f"{d}/demo/orders/table.json"))
bad = [c["file"] for c in t["chunks"]
       if hashlib.sha256(open(f"{d}/demo/orders/{c['file']}", "rb").read()).hexdigest() != c["sha256"]]
print(f"  {len(t['chunks'])} chunks checked, {len(bad)} mismatches")
sys.exit(1 if bad else 0)
PY

say "rerunning the same export: finished chunks are kept, nothing is read again"
"$MYSPOOL" export --from "$URL" --table 'demo.*' --dir "$WORK/dump" --jobs 2 --json |
  python3 -c 'import json,sys; s=json.load(sys.stdin); print("  chunks written: %d, kept: %d, rows: %d" % (s["chunks_written"], s["chunks_kept"], s["rows"]))'

say "the README's processing example on one chunk, by hand (uppercase the customer column)"
zcat "$WORK/dump/demo/orders/000001.csv.gz" | python3 examples/uppercase.py customer > "$WORK/upper.csv"
head -n 5 "$WORK/upper.csv" | sed 's/^/  /'
before=$(zcat "$WORK/dump/demo/orders/000001.csv.gz" | grep -c '^"[0-9]*",,' || true)
after=$(grep -c '^"[0-9]*",,' "$WORK/upper.csv" || true)
echo "  rows with a NULL customer: $before before, $after after (NULLs survive the round trip)"

say "loading into demo_copy with --jobs 2: the AUTO_INCREMENT policy refuses first"
"$MYSPOOL" load --dir "$WORK/dump" --to "$URL" --into demo_copy --jobs 2 --progress none 2>&1 | sed 's/^/  /' || true

say "myspool load --autoinc drop --jobs 2 (AUTO_INCREMENT removed during the load, restored after)"
"$MYSPOOL" load --dir "$WORK/dump" --to "$URL" --into demo_copy --jobs 2 --autoinc drop --progress plain
sql -e "CHECKSUM TABLE demo.orders, demo_copy.orders, demo.order_lines, demo_copy.order_lines"
sql -N -e "SHOW CREATE TABLE demo_copy.orders" | grep -o '`id` [^,]*' | sed 's/^/  restored: /'

say "myspool verify: every chunk of the dump against demo_copy"
"$MYSPOOL" verify --dir "$WORK/dump" --to "$URL" --into demo_copy

say "loading again: the journal says every chunk is in, nothing is loaded twice"
"$MYSPOOL" load --dir "$WORK/dump" --to "$URL" --into demo_copy --jobs 2 --autoinc drop --json |
  python3 -c 'import json,sys; s=json.load(sys.stdin); print("  chunks loaded: %d, already there: %d" % (s["chunks_loaded"], s["chunks_skipped"]))'

say "myspool process: the README's example over every chunk, offline (no server needed)"
"$MYSPOOL" process --dir "$WORK/dump" --out "$WORK/upper" --exec "python3 $ROOT/examples/uppercase.py customer" --jobs 2 --progress none |
  sed 's/^/  /'
sql -e "CREATE DATABASE demo_upper; CREATE TABLE demo_upper.orders LIKE demo.orders; CREATE TABLE demo_upper.order_lines LIKE demo.order_lines"
"$MYSPOOL" load --dir "$WORK/upper" --to "$URL" --into demo_upper --jobs 2 --autoinc drop --progress none | sed 's/^/  /'
sql -e "SELECT COUNT(*) AS rows_total, SUM(dst.customer <=> UPPER(src.customer)) AS equal_to_upper_of_source
        FROM demo_upper.orders dst JOIN demo.orders src USING (id)" | sed 's/^/  /'

say "myspool status"
"$MYSPOOL" status --dir "$WORK/dump" | sed 's/^/  /'

say "done"
echo "  exported $(sql -N -e 'SELECT COUNT(*) FROM demo.orders') + $(sql -N -e 'SELECT COUNT(*) FROM demo.order_lines') rows to $WORK/dump and loaded them into demo_copy"
