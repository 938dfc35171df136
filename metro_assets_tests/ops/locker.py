"""Another process holding the warehouse: what an operator's notebook or a second CLI run does.

Run as ``python -m metro_assets_tests.ops.locker WAREHOUSE [--after-rows TABLE] [--release-on-retry HOME]``.
It takes DuckDB's write lock on WAREHOUSE (retrying while someone else has
it), prints ``locked`` and holds it until its stdin closes, or, with
``--release-on-retry``, until the Dagster instance at HOME records a step
waiting for its retry. With ``--after-rows TABLE`` it only keeps the lock
once TABLE has rows (so a run's first steps finish before it blocks the rest).
"""

import argparse
import sys
import threading
import time

import duckdb


def take_lock(path: str, after_rows: str | None) -> duckdb.DuckDBPyConnection:
    while True:
        try:
            con = duckdb.connect(path)
        except duckdb.IOException:
            time.sleep(0.005)  # someone writes: try again at once, to catch the gap between two steps
            continue
        if after_rows is None or con.sql(f"select count(*) from {after_rows}").fetchall()[0][0] > 0:
            return con
        con.close()
        time.sleep(0.05)


def retry_recorded(home: str) -> bool:
    from dagster import DagsterEventType, DagsterInstance, EventRecordsFilter
    from dagster._core.instance.ref import InstanceRef

    with DagsterInstance.from_ref(InstanceRef.from_dir(home)) as instance:
        records = instance.get_event_records(EventRecordsFilter(DagsterEventType.STEP_UP_FOR_RETRY), limit=1)
    return bool(records)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("warehouse")
    parser.add_argument("--after-rows")
    parser.add_argument("--release-on-retry")
    args = parser.parse_args()
    con = take_lock(args.warehouse, args.after_rows)
    print("locked", flush=True)
    stdin_closed = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stdin_closed.set()), daemon=True).start()
    while not stdin_closed.wait(0.1):
        if args.release_on_retry and retry_recorded(args.release_on_retry):
            break
    con.close()
    print("released", flush=True)


if __name__ == "__main__":
    main()
