#!/usr/bin/env python3
"""A myspool processing step: uppercase one column, keep NULLs exact.

CSV in on stdin, CSV out on stdout, header first (what `myspool process
--exec` will feed it). In myspool's CSV, SQL NULL is an empty field without
quotes and every other value is quoted. With csv.QUOTE_NOTNULL, Python's csv
module writes None that way, and (from Python 3.13 on; the 3.12 reader ignores
the flag) reads such a field back as None. For older Pythons the two small
functions below do the same.

    zcat DIR/shop/orders/000001.csv.gz | python3 examples/uppercase.py name
"""
import csv
import sys


def read_rows(stream):
    """The myspool dialect for Python < 3.13: rows as lists, None for NULL."""
    buf = stream.read()
    row, i, n = [], 0, len(buf)
    while i < n:
        if buf[i] == '"':
            j, parts = i + 1, []
            while True:
                q = buf.index('"', j)
                parts.append(buf[j:q])
                if q + 1 < n and buf[q + 1] == '"':
                    parts.append('"')
                    j = q + 2
                else:
                    i = q + 1
                    break
            row.append("".join(parts))
        else:
            j = i
            while j < n and buf[j] not in ",\n":
                j += 1
            row.append(buf[i:j] or None)
            i = j
        if i >= n or buf[i] == "\n":
            yield row
            row = []
        i += 1


def write_row(stream, row):
    stream.write(",".join("" if v is None else '"' + v.replace('"', '""') + '"' for v in row) + "\n")


def main():
    column = sys.argv[1] if len(sys.argv) > 1 else "name"
    # newline="" keeps CR and CRLF inside values as they are.
    sys.stdin.reconfigure(encoding="utf-8", newline="")
    sys.stdout.reconfigure(encoding="utf-8", newline="")
    if sys.version_info >= (3, 13):
        rows = csv.reader(sys.stdin, quoting=csv.QUOTE_NOTNULL)
        writer = csv.writer(sys.stdout, quoting=csv.QUOTE_NOTNULL, lineterminator="\n")
        write = writer.writerow
    else:
        rows = read_rows(sys.stdin)
        write = lambda row: write_row(sys.stdout, row)  # noqa: E731
    header = next(rows)
    write(header)
    # A dump holds several tables: those without the column pass unchanged.
    i = header.index(column) if column in header else None
    for row in rows:
        if i is not None and row[i] is not None:
            row[i] = row[i].upper()
        write(row)


if __name__ == "__main__":
    main()
