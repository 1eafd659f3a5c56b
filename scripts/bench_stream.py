#!/usr/bin/env python3
"""The classic Python table copy, as a baseline for scripts/bench.sh.

One connection streams `SELECT * FROM SRC [WHERE ...]` with PyMySQL's
unbuffered SSCursor; a second connection inserts the rows into DST with
`executemany` (PyMySQL turns it into one multi-row INSERT per batch),
committing after every batch. DST must exist and have SRC's columns.

    bench_stream.py --host 127.0.0.1 --port 3306 --user root \
        --src bench.t --dst bench_py.t [--where 'id <= 200000'] [--batch 1000]

Prints one JSON line: {"rows": N, "batches": B, "seconds": S}.
"""
import argparse
import json
import os
import sys
import time

import pymysql
import pymysql.cursors


def quote_name(name):
    """`db`.`table` from db.table (no dots inside the names)."""
    return ".".join("`" + part.replace("`", "``") + "`" for part in name.split("."))


def connect(args, **extra):
    return pymysql.connect(
        host=args.host,
        port=args.port,
        user=args.user,
        password=os.environ.get("MYSQL_PWD", ""),
        charset="utf8mb4",
        autocommit=False,
        **extra,
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=3306)
    ap.add_argument("--user", default="root")
    ap.add_argument("--src", required=True, help="db.table to read")
    ap.add_argument("--dst", required=True, help="db.table to insert into")
    ap.add_argument("--where", default="", help="SQL condition on the source rows")
    ap.add_argument("--batch", type=int, default=1000, help="rows per INSERT and per commit")
    args = ap.parse_args()

    start = time.monotonic()
    src = connect(args, cursorclass=pymysql.cursors.SSCursor)
    dst = connect(args)
    with dst.cursor() as cur:
        cur.execute("SET time_zone = '+00:00'")

    read = src.cursor()
    sql = "SELECT * FROM " + quote_name(args.src)
    if args.where:
        sql += " WHERE " + args.where
    read.execute(sql)
    columns = [d[0] for d in read.description]
    insert = "INSERT INTO {} ({}) VALUES ({})".format(
        quote_name(args.dst),
        ", ".join("`" + c.replace("`", "``") + "`" for c in columns),
        ", ".join(["%s"] * len(columns)),
    )

    rows = batches = 0
    write = dst.cursor()
    while True:
        chunk = read.fetchmany(args.batch)
        if not chunk:
            break
        write.executemany(insert, chunk)
        dst.commit()
        rows += len(chunk)
        batches += 1
    read.close()
    src.close()
    dst.close()
    json.dump(
        {"rows": rows, "batches": batches, "seconds": round(time.monotonic() - start, 3)},
        sys.stdout,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
