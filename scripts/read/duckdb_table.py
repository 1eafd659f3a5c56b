"""One table of a myspool dump as a DuckDB relation, typed from table.json.

    python3 scripts/read/duckdb_table.py DIR/shop/orders
"""
import glob
import json
import sys

import duckdb


def column(col):
    """The SQL that turns one text column into its type."""
    c, t = '"' + col["name"].replace('"', '""') + '"', col["data_type"]
    if col["encoding"] == "hex":  # BINARY, VARBINARY, BLOB, BIT, GEOMETRY
        return f"unhex({c}) AS {c}"
    if t in ("tinyint", "smallint", "mediumint", "int", "bigint"):
        return f"CAST({c} AS {'UBIGINT' if 'unsigned' in col['column_type'] else 'BIGINT'}) AS {c}"
    if t in ("float", "double"):
        return f"CAST({c} AS DOUBLE) AS {c}"
    if t == "decimal":
        p, s = col["column_type"].split("(")[1].rstrip(") unsigned").split(",")
        return f"CAST({c} AS DECIMAL({p},{s})) AS {c}" if int(p) <= 38 else c
    if t == "date":  # a zero date (0000-00-00) fails here: keep such a column as text
        return f"CAST({c} AS DATE) AS {c}"
    if t in ("datetime", "timestamp"):  # TIMESTAMP values are UTC
        return f"CAST({c} AS TIMESTAMP) AS {c}"
    return c  # text, ENUM, SET, JSON, TIME, YEAR: strings


def read_table(table_dir, con=duckdb):
    with open(f"{table_dir}/table.json", encoding="utf-8") as f:
        columns = json.load(f)["columns"]
    # .csv.gz, or .csv.zst after `export --compress zstd`: DuckDB reads both.
    files = sorted(glob.glob(f"{table_dir}/*.csv.gz") + glob.glob(f"{table_dir}/*.csv.zst"))
    files = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    # all_varchar: no type guessing; allow_quoted_nulls=false: "" is '', only
    # an unquoted empty field is NULL; the dialect spelled out, not sniffed.
    return con.sql(
        f"SELECT {', '.join(column(c) for c in columns)} FROM read_csv([{files}], "
        "header=true, delim=',', quote='\"', escape='\"', "
        "all_varchar=true, allow_quoted_nulls=false)"
    )


# --- the README quotes the lines above; below, what the tests compare ---
if __name__ == "__main__":
    from cells import print_rows

    print_rows(read_table(sys.argv[1]).fetchall())
