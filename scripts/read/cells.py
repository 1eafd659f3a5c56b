"""What the tests compare: each row a JSON array, one string or null per cell.

Text as itself, bytes as uppercase hex (as in the dump), numbers, dates and
times as the server prints them. Not part of the README's snippets.
"""
import json
import math


def cell(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if type(v).__name__ in ("NAType", "NaTType"):  # pandas' missing values
        return None
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).hex().upper()
    if hasattr(v, "isoformat"):  # date, datetime, pandas.Timestamp
        return v.isoformat(sep=" ") if hasattr(v, "hour") else v.isoformat()
    if isinstance(v, bool):
        return str(int(v))
    return str(v)


def print_rows(rows):
    for row in rows:
        print(json.dumps([cell(v) for v in row], ensure_ascii=False))
