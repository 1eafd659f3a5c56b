"""One table of a myspool dump as a Polars DataFrame, typed from table.json.

    python3 scripts/read/polars_table.py DIR/shop/orders
"""
import glob
import json
import sys

import polars as pl


def column(col):
    """The expression that turns one text column into its type."""
    c, t = pl.col(col["name"]), col["data_type"]
    if col["encoding"] == "hex":  # BINARY, VARBINARY, BLOB, BIT, GEOMETRY
        return c.str.decode("hex")
    if t in ("tinyint", "smallint", "mediumint", "int", "bigint"):
        return c.cast(pl.UInt64 if "unsigned" in col["column_type"] else pl.Int64)
    if t in ("float", "double"):
        return c.cast(pl.Float64)
    if t == "decimal":
        p, s = col["column_type"].split("(")[1].rstrip(") unsigned").split(",")
        return c.cast(pl.Decimal(int(p), int(s))) if int(p) <= 38 else c
    if t == "date":  # a zero date (0000-00-00) fails here: keep such a column as text
        return c.str.to_date("%Y-%m-%d")
    if t in ("datetime", "timestamp"):  # TIMESTAMP values are UTC
        return c.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="us")
    return c  # text, ENUM, SET, JSON, TIME, YEAR: strings


def read_table(table_dir):
    with open(f"{table_dir}/table.json", encoding="utf-8") as f:
        columns = json.load(f)["columns"]
    # Chunks are .csv.gz, or .csv.zst after `export --compress zstd`: Polars
    # reads both. infer_schema_length=0 reads every column as text: an unquoted
    # empty field (SQL NULL) is null, "" is '', "NULL" and "\N" are those strings.
    files = sorted(glob.glob(f"{table_dir}/*.csv.gz") + glob.glob(f"{table_dir}/*.csv.zst"))
    df = pl.concat(pl.read_csv(f, infer_schema_length=0) for f in files)
    return df.with_columns(column(c) for c in columns)


# --- the README quotes the lines above; below, what the tests compare ---
if __name__ == "__main__":
    from cells import print_rows

    print_rows(read_table(sys.argv[1]).rows())
