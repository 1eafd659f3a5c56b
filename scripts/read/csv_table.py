"""One table of a myspool dump with Python's csv module, typed from table.json.

    python3 scripts/read/csv_table.py DIR/shop/orders
"""
import csv
import datetime
import decimal
import glob
import gzip
import json
import sys


def converter(col):
    """The function that turns one text value into its Python type."""
    t = col["data_type"]
    if col["encoding"] == "hex":  # BINARY, VARBINARY, BLOB, BIT, GEOMETRY
        return bytes.fromhex
    if t in ("tinyint", "smallint", "mediumint", "int", "bigint"):
        return int
    if t in ("float", "double"):
        return float
    if t == "decimal":
        return decimal.Decimal
    if t == "date":  # a zero date (0000-00-00) fails here: keep such a column as text
        return datetime.date.fromisoformat
    if t in ("datetime", "timestamp"):  # TIMESTAMP values are UTC
        return datetime.datetime.fromisoformat
    return str  # text, ENUM, SET, JSON, TIME, YEAR: strings


def rows(f):
    # QUOTE_NOTNULL: an unquoted empty field (SQL NULL) is None, "" is ''.
    return csv.reader(f, quoting=csv.QUOTE_NOTNULL)  # Python >= 3.13


def read_table(table_dir):
    with open(f"{table_dir}/table.json", encoding="utf-8") as f:
        convert = {c["name"]: converter(c) for c in json.load(f)["columns"]}
    for path in sorted(glob.glob(f"{table_dir}/*.csv.gz")):  # in key order
        # newline="": CR and LF inside values stay as they are.
        with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
            reader = rows(f)
            fns = [convert[name] for name in next(reader)]
            for row in reader:
                yield [None if v is None else fn(v) for fn, v in zip(fns, row)]


# --- the README quotes the lines above; below, what the tests compare ---
def rows_before_3_13(f):
    """The same reader for Python < 3.13, whose csv module ignores
    QUOTE_NOTNULL when reading: myspool's dialect read by hand."""
    buf, row, i = f.read(), [], 0
    while i < len(buf):
        if buf[i] == '"':
            end, parts = i + 1, []
            while True:
                q = buf.index('"', end)
                parts.append(buf[end:q])
                if buf[q + 1 : q + 2] == '"':
                    parts.append('"')
                    end = q + 2
                else:
                    i = q + 1
                    break
            row.append("".join(parts))
        else:
            end = i
            while end < len(buf) and buf[end] not in ",\n":
                end += 1
            row.append(buf[i:end] or None)
            i = end
        if i >= len(buf) or buf[i] == "\n":
            yield row
            row = []
        i += 1


if sys.version_info < (3, 13):
    rows = rows_before_3_13  # noqa: F811

if __name__ == "__main__":
    from cells import print_rows

    print_rows(read_table(sys.argv[1]))
