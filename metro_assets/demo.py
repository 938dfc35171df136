"""`make demo`: run the platform end to end on the simulated retailer and show the results.

Every step is a real Dagster run recorded in ``DAGSTER_HOME``, so the web UI
(`make ui`) shows the same materializations afterwards.
"""

import sys
import time
import warnings
from datetime import timedelta

import polars as pl
from dagster import DagsterInstance

from metro_assets.errors import SettingError
from metro_assets.monitoring.evaluation import wide_table
from metro_assets.settings import load_settings
from metro_assets.simulation.report import behaviour_table, table_summary
from metro_assets.simulation.world import RAW_TABLES
from metro_assets.storage import open_store

warnings.filterwarnings("ignore")  # Dagster preview/deprecation notices are not for demo users
pl.Config.set_tbl_rows(60)
pl.Config.set_tbl_hide_dataframe_shape(True)
pl.Config.set_fmt_str_lengths(90)
pl.Config.set_tbl_width_chars(200)


def run_job(name: str, tags: dict | None = None, partition_key: str | None = None) -> None:
    """Execute a job of the code location in this process, recorded in the instance."""
    from metro_assets.definitions import defs

    started = time.perf_counter()
    result = defs.get_job_def(name).execute_in_process(
        instance=DagsterInstance.get(), tags=tags or {}, partition_key=partition_key, raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
    )
    if not result.success:
        failures = [e.step_failure_data.error.message.strip() for e in result.all_events if e.is_step_failure]
        raise SystemExit(f"metro-offers: job {name} failed: {' | '.join(failures) or 'see the Dagster UI'}")
    print(f"  {name}: done in {time.perf_counter() - started:.1f} s")


def main() -> None:
    try:
        settings = load_settings()
    except SettingError as exc:
        raise SystemExit(f"metro-offers: {exc}") from None
    first, last = settings.start_date, settings.history_end - timedelta(days=1)
    print(f"Metro Offers demo: scale {settings.scale.name}, seed {settings.seed}, history {first}..{last}, "
          f"warehouse {settings.warehouse}")
    print("1. Simulating the retailer's history (job simulate, one run for the whole range)")
    run_job("simulate", tags={"dagster/asset_partition_range_start": first.isoformat(),
                              "dagster/asset_partition_range_end": last.isoformat()})
    with open_store(settings, read_only=True) as con:  # DuckDB file or Delta tables (METRO_STORAGE)
        print(table_summary(con, RAW_TABLES))
        rate = con.execute("select (select count(*) from redemptions) / count(*) from impressions").fetchall()[0][0]
        print(f"Redemption rate (redemptions / impressions): {100 * rate:.2f}%")
        print("\nSimulated behaviours:")
        print(behaviour_table(con))

    run_date = settings.history_end
    graded = run_date - timedelta(days=7)  # the newest day whose label week is in the warehouse
    graded_monday = graded - timedelta(days=graded.weekday())
    print(f"\n2. Grading {graded}: retrain for Monday {graded_monday}, daily_pipeline for {graded}, then evaluate "
          "(its week of redemptions is known)")
    run_job("retrain", partition_key=graded_monday.isoformat())
    run_job("daily_pipeline", partition_key=graded.isoformat())
    run_job("evaluate", partition_key=graded.isoformat())
    with open_store(settings, read_only=True) as con:  # DuckDB file or Delta tables (METRO_STORAGE)
        print(f"\nOffline evaluation of {graded} (docs/EVALUATION.md):")
        print(wide_table(con.sql("select * from offline_evaluation where run_date = ?", params=[graded]).pl()))
    monday = run_date - timedelta(days=run_date.weekday())
    print(f"\n3. Retraining the ranker for Monday {monday} (job retrain: model, then that day's pipeline)")
    run_job("retrain", partition_key=monday.isoformat())
    print(f"4. Daily pipeline for {run_date} (job daily_pipeline: features, candidates, recommendations)")
    run_job("daily_pipeline", partition_key=run_date.isoformat())
    with open_store(settings, read_only=True) as con:  # DuckDB file or Delta tables (METRO_STORAGE)
        print("\nRanker versions:")
        print(con.sql("select model_version, selected, train_rows, train_positives, round(validation_auc, 4) as auc, "
                      "round(validation_log_loss, 4) as log_loss from model_versions order by day, kind").pl())
        print_customer(con, run_date)
    print(f"\nServing snapshot: {settings.serving}. Serve it with `make serve`, then:")
    print(f"  curl 'http://127.0.0.1:8000/recommendations?customer_id=<id>&run_date={run_date}'")


def print_customer(con, run_date) -> None:
    """One customer's top offers for the run date, with what they bought before it."""
    customer = con.execute(  # a regular shopper, so the offers can be read against their history
        "select r.customer_id from recommendations r join customer_features f "
        "on f.customer_id = r.customer_id and f.day = r.run_date "
        "where r.run_date = ? and r.rank = 1 and f.frequency >= 3 order by r.customer_id limit 1",
        [run_date]).fetchall()[0][0]
    profile = con.sql("select segment, home_store_id, frequency, round(promo_affinity, 2) as promo_affinity, "
                      "top_3_categories from customer_features where customer_id = ? and day = ?",
                      params=[customer, run_date]).pl()
    print(f"\nCustomer {customer} on {run_date}:")
    print(profile)
    print(con.sql(
        "select r.rank, r.offer_id, p.name as product, p.category, o.discount_type, o.discount_value, "
        "round(r.score, 4) as score, o.end_date as expires, r.strategy, r.reasons from recommendations r "
        "join offers o using (offer_id) join products p using (product_id) "
        "where r.run_date = ? and r.customer_id = ? order by r.rank", params=[run_date, customer]).pl())


if __name__ == "__main__":
    sys.exit(main())
