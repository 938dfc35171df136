"""A sparse-data fixture: a tiny simulated export made to look like a real retailer's coupon log.

A real grocery export (issue 20: one year, 2,469 households, 5.8 M coupon
impressions, 1,853 redemptions) differs from the simulation in two rates:

* impressions: coupons are mailed by campaign, every live offer to every
  household it is meant for, about 45 a household a week; the simulated
  legacy policy shows each customer about 0.35 offers a week;
* redemptions: 0.03% of impressions (about 0.014 a household a week); the
  simulated log redeems 5% of its impressions (0.018 a customer a week).

:func:`sparsify` adds a weekly campaign mailing of every live, in-scope
offer to every customer (no slot, no propensity: a mailing is not
randomised), drops the logged slots and propensities (a real export has
none), and keeps a random ``rate`` share of the impressions' count as
redemptions. On the tiny world that gives both real-world rates at once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

REAL_REDEMPTION_RATE = 1_853 / 5_800_000   # redemptions per impression in the real export (0.032%)


def campaign_impressions(folder: Path) -> pl.DataFrame:
    """Every customer gets, each Monday of the history, every offer live that day whose scopes admit them."""
    customers = pl.read_parquet(folder / "customers.parquet").select("customer_id", "segment", "home_store_id")
    offers = pl.read_parquet(folder / "offers.parquet").select("offer_id", "start_date", "end_date", "store_scope",
                                                               "segment_scope")
    shown = pl.read_parquet(folder / "impressions.parquet")
    first, last = shown["shown_timestamp"].min().date(), shown["shown_timestamp"].max().date()
    mondays = pl.DataFrame({"day": pl.date_range(first + timedelta(days=-first.weekday() % 7), last, "7d",
                                                 eager=True)})
    live = mondays.join(offers, how="cross").filter(pl.col("day").is_between(pl.col("start_date"), pl.col("end_date")))
    pairs = live.join(customers, how="cross").filter(
        (pl.col("store_scope").is_null()
         | pl.col("store_scope").str.split(",").list.contains(pl.col("home_store_id").cast(pl.Utf8)))
        & (pl.col("segment_scope").is_null()
           | pl.col("segment_scope").str.split(",").list.contains(pl.col("segment"))))
    return pairs.sort("day", "customer_id", "offer_id").select(
        "customer_id", "offer_id",
        shown_timestamp=pl.col("day").cast(pl.Datetime("us")) + pl.duration(hours=7),
        channel=pl.lit("email"))


def sparsify(folder: Path, rate: float = REAL_REDEMPTION_RATE, seed: int = 20) -> dict[str, int]:
    """Rewrite the export in ``folder`` as a sparse real-world log (see the module); returns its counts."""
    logged = pl.read_parquet(folder / "impressions.parquet").select("customer_id", "offer_id", "shown_timestamp",
                                                                     "channel")
    impressions = pl.concat([logged, campaign_impressions(folder)]).with_row_index("impression_id", offset=1)
    impressions.with_columns(pl.col("impression_id").cast(pl.Int64)).write_parquet(folder / "impressions.parquet")
    redemptions = pl.read_parquet(folder / "redemptions.parquet")
    keep = max(1, round(rate * impressions.height))
    picked = np.sort(np.random.default_rng(seed).choice(redemptions.height, size=keep, replace=False))
    redemptions[picked].write_parquet(folder / "redemptions.parquet")
    return {"impressions": impressions.height, "campaign_impressions": impressions.height - logged.height,
            "redemptions": keep, "redemptions_before": redemptions.height}


TRAIN_DAY = "2025-09-15"                   # a Monday of the tiny history: the ranker trained for it serves
RUN_DATES = ("2025-09-15", "2025-09-19")   # run dates graded: their label weeks end inside the history


def run_pipeline(settings, instance=None) -> dict:
    """The retailer's week on an imported warehouse, as real Dagster runs: the import (one run), ``retrain``
    for TRAIN_DAY, ``daily_pipeline`` for the other run dates, ``evaluate`` over RUN_DATES (offline_evaluation,
    then evaluation_summary). Returns each run's result by job name."""
    from dagster import DagsterInstance

    from metro_assets.definitions import build_defs
    from metro_assets_tests.importing.conftest import QUIET, materialize_raw

    instance = instance or DagsterInstance.ephemeral()
    defs = build_defs(settings)
    results = {"import": materialize_raw(settings)}
    first, last = RUN_DATES

    def run(job: str, start: str, end: str):
        tags = {"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end}
        return defs.get_job_def(job).execute_in_process(instance=instance, tags=tags, raise_on_error=False,
                                                        run_config=QUIET)

    results["retrain"] = run("retrain", TRAIN_DAY, TRAIN_DAY)
    later = (datetime.fromisoformat(TRAIN_DAY) + timedelta(days=1)).date().isoformat()
    results["daily_pipeline"] = run("daily_pipeline", later, last)
    results["evaluate"] = run("evaluate", first, last)
    return results


def main(folder: str) -> None:
    """Build the fixture in ``folder`` and print the figures docs/IMPORT.md quotes:
    ``python -m metro_assets_tests.importing.sparse /tmp/sparse``."""
    import os
    import shutil

    import duckdb

    from metro_assets.export import export_raw_tables
    from metro_assets.monitoring import pooling
    from metro_assets.settings import load_settings
    from metro_assets_tests.conftest import START, write_world

    work = Path(folder)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    export_raw_tables(write_world(work / "simulated.duckdb"), work / "import")
    counts = sparsify(work / "import")
    os.environ.pop("METRO_START_DATE", None)
    os.environ.update(METRO_SCALE="tiny", METRO_WAREHOUSE=str(work / "imported.duckdb"),
                      METRO_SERVING=str(work / "serving.parquet"), METRO_SOURCE=f"parquet:{work / 'import'}")
    results = run_pipeline(load_settings())
    print(f"history from {START}: {counts}; runs: " + ", ".join(f"{k} {'ok' if r.success else 'FAILED'}"
                                                              for k, r in results.items()))
    con = duckdb.connect(str(work / "imported.duckdb"), read_only=True)
    print(con.sql("select kind, selected, train_start, validation_start, train_end, train_rows, train_positives, "
                  "validation_rows, validation_positives, round(validation_auc, 3) auc, selection_reason "
                  "from model_versions order by kind").pl().to_dicts())
    print(con.sql("select run_date, value from offline_evaluation where policy = 'model' "
                  "and metric = 'customers_evaluated' order by 1").fetchall())
    for day in RUN_DATES:
        summary = pooling.summarize(con, datetime.fromisoformat(day).date())
        print(day, summary.verdict)
    print(pooling.markdown(pooling.summarize(con, datetime.fromisoformat(RUN_DATES[1]).date())))
    con.close()


if __name__ == "__main__":
    import sys

    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/metro-sparse")
