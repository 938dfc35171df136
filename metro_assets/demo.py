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

from metro_assets.resources import SettingError, load_settings
from metro_assets.simulation.report import behaviour_table, table_summary
from metro_assets.simulation.world import RAW_TABLES
from metro_assets.warehouse import connect

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
    with connect(settings.warehouse, read_only=True) as con:
        print(table_summary(con, RAW_TABLES))
        rate = con.execute("select (select count(*) from redemptions) / count(*) from impressions").fetchall()[0][0]
        print(f"Redemption rate (redemptions / impressions): {100 * rate:.2f}%")
        print("\nSimulated behaviours:")
        print(behaviour_table(con))


if __name__ == "__main__":
    sys.exit(main())
