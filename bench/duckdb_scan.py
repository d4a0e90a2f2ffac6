"""Reads every column of every row of a Parquet archive with DuckDB, as Spark or Trino would
scan it: an aggregate over each column, so that all of them are read and decoded.

    duckdb_scan.py ARCHIVE_DIR ROUNDS

Prints one line: the median seconds, the rows counted, the first and last day of the events,
the DuckDB version, then the seconds of each round. For bench/archive.sh and
bench/scale_lifetime.sh, with the project's DuckDB (.venv-tools/bin/python).
"""

import statistics
import sys
import time

import duckdb


def main():
    root, rounds = sys.argv[1], int(sys.argv[2])
    src = f"read_parquet('{root}/**/*.parquet', hive_partitioning=true)"
    sql = f"""SELECT count(*), min(occurred_at), max(occurred_at),
                     sum(length(actor) + length(db_user) + length(source) + length(entity)
                         + length(action) + coalesce(length(subject_id), 0)
                         + coalesce(length(table_name), 0) + coalesce(len(changed_fields), 0)
                         + coalesce(length(old_data), 0) + coalesce(length(new_data), 0)
                         + coalesce(length(client_addr), 0)
                         + coalesce(length(application_name), 0)
                         + coalesce(length(context), 0) + coalesce(length(details), 0)),
                     max(id), max(txid)
                FROM {src}"""
    con = duckdb.connect()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        row = con.sql(sql).fetchall()[0]
        times.append(time.perf_counter() - start)
    first, last = (t.strftime("%Y-%m-%d") if t else "-" for t in row[1:3])
    print(f"{statistics.median(times):.2f} {row[0]} {first} {last} {duckdb.__version__} "
          + " ".join(f"{t:.2f}" for t in times))


if __name__ == "__main__":
    main()
