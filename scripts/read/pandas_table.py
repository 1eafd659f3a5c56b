"""One table of a myspool dump as a pandas DataFrame, through Polars.

    python3 scripts/read/pandas_table.py DIR/shop/orders
"""
import sys

from polars_table import read_table  # scripts/read/polars_table.py


def read_pandas(table_dir):
    # Arrow-backed columns keep NULL (pd.NA) apart from '' and BIGINT
    # UNSIGNED exact (NumPy columns would turn an integer column with a NULL
    # into float64).
    return read_table(table_dir).to_pandas(use_pyarrow_extension_array=True)


# --- the README quotes the lines above; below, what the tests compare ---
if __name__ == "__main__":
    from cells import print_rows

    print_rows(read_pandas(sys.argv[1]).itertuples(index=False))
