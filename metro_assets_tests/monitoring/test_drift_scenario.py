"""Demo Part 5 at tiny scale, through real Dagster runs: calm days stay calm, the Black Friday
scenario raises the drift alert, the sensor requests a retrain, and after it the scores recover."""

from datetime import timedelta

import duckdb
import pytest
from dagster import DagsterInstance, build_sensor_context

from metro_assets.definitions import build_defs
from metro_assets.monitoring.sensors import TAG_REASON, drift_retrain
from metro_assets.settings import load_settings
from metro_assets_tests.conftest import HISTORY_END, START

TRAIN_DAY = HISTORY_END - timedelta(days=3)                       # 2025-09-23
CALM_DAYS = [TRAIN_DAY + timedelta(days=i) for i in (1, 2, 3)]    # 09-24..09-26: features see no shocked day
SHOCK_DAY = HISTORY_END + timedelta(days=4)                       # 09-30: the day after the shock (09-27..09-29)
AFTER_DAY = SHOCK_DAY + timedelta(days=1)                         # 10-01
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    """Every run of the walk-through, in one instance and one warehouse; returns what the test inspects."""
    mp = pytest.MonkeyPatch()
    folder = tmp_path_factory.mktemp("scenario")
    for key, val in {"METRO_SCALE": "tiny", "METRO_SEED": "42", "METRO_START_DATE": START.isoformat(),
                     "METRO_WAREHOUSE": str(folder / "warehouse.duckdb"),
                     "METRO_SERVING": str(folder / "serving.parquet"), "METRO_SCENARIO": "black_friday"}.items():
        mp.setenv(key, val)
    settings = load_settings()
    defs = build_defs(settings)
    out = {"settings": settings, "warehouse": settings.warehouse, "reports": {}}
    try:
        with DagsterInstance.ephemeral() as instance:
            def run(job, day=None, tags=None):
                result = defs.resolve_job_def(job).execute_in_process(
                    instance=instance, partition_key=day.isoformat() if day else None, tags=tags or {},
                    run_config=QUIET)
                assert result.success, job
                if day is not None and job in ("daily_pipeline", "retrain"):
                    [mat] = result.asset_materializations_for_node("drift_report")
                    out["reports"][day] = mat.metadata
                return result

            def tick(cursor):
                return drift_retrain(build_sensor_context(instance=instance, cursor=cursor))

            run("simulate", tags={"dagster/asset_partition_range_start": START.isoformat(),
                                  "dagster/asset_partition_range_end": SHOCK_DAY.isoformat()})
            run("retrain", TRAIN_DAY)
            for day in CALM_DAYS:
                run("daily_pipeline", day)
            out["calm_tick"] = tick(None)
            run("daily_pipeline", SHOCK_DAY)
            out["alert_report"] = out["reports"][SHOCK_DAY]
            out["shock_tick"] = tick(out["calm_tick"].cursor)
            [request] = out["shock_tick"].run_requests
            run("retrain", SHOCK_DAY, tags=request.tags)  # what the daemon launches for the request
            run("daily_pipeline", AFTER_DAY)
            out["after_tick"] = tick(out["shock_tick"].cursor)
    finally:
        mp.undo()
    return out


def psis(metadata):
    return {k[4:]: v.value for k, v in metadata.items() if k.startswith("psi_")}


def test_the_scenario_shocks_only_its_days(scenario):
    assert scenario["settings"].scenario_days == (HISTORY_END + timedelta(days=1), SHOCK_DAY)
    with duckdb.connect(str(scenario["warehouse"]), read_only=True) as con:
        per_day = dict(con.sql("select day, count(*) from orders where day >= $d group by day",
                               params={"d": HISTORY_END - timedelta(days=3)}).fetchall())
    normal = [per_day[HISTORY_END - timedelta(days=i)] for i in (1, 2, 3)]
    shocked = [per_day[HISTORY_END + timedelta(days=i)] for i in (1, 2, 3)]
    assert min(shocked) > 2.5 * max(normal)  # visits x4 on the scenario's days
    assert per_day[SHOCK_DAY] < 1.5 * max(normal)


def test_normal_consecutive_days_stay_calm_and_the_sensor_silent(scenario):
    for day in CALM_DAYS:
        values = psis(scenario["reports"][day])
        assert set(values) == {"recency_days", "frequency", "monetary", "promo_affinity", "avg_basket_size",
                               "discount_depth", "score"}
        # calm: nothing reaches the major threshold (weekly shoppers move recency a little day to day)
        assert max(values.values()) < 0.25, (day, values)
        assert scenario["reports"][day]["alert"].value is False
    assert not scenario["calm_tick"].run_requests


def test_after_the_shock_the_report_alerts_and_the_sensor_requests_a_retrain(scenario):
    report = scenario["alert_report"]
    values = psis(report)
    assert report["alert"].value is True, values
    assert values["score"] > 0.25 or sum(v >= 0.25 for k, v in values.items() if k != "score") >= 3
    [request] = scenario["shock_tick"].run_requests
    assert request.partition_key == SHOCK_DAY.isoformat() and request.run_key == f"drift-retrain-{SHOCK_DAY}"
    assert request.tags[TAG_REASON] == report["reason"].value


def test_after_retraining_on_the_shifted_data_the_scores_recover(scenario):
    # the retrain moved the baseline to the shocked world: the next day is measured against it
    after = scenario["reports"][AFTER_DAY]
    assert after["model_version"].value.startswith(SHOCK_DAY.isoformat())
    assert psis(after)["score"] < 0.1
    # measured against the shocked world's baseline, the features that alerted have settled
    shocked = {k: v for k, v in psis(scenario["alert_report"]).items() if k != "score" and v >= 0.25}
    assert shocked and all(psis(after)[k] < v for k, v in shocked.items())
    assert after["alert"].value is False
    assert not scenario["after_tick"].run_requests
    # the retrain job re-ran the shock day's report against the new model: the table holds the day as it
    # is served now, the alerting report stays in the asset's materialization history
    with duckdb.connect(str(scenario["warehouse"]), read_only=True) as con:
        now = con.sql("select distinct model_version, alert from drift_report where run_date = $d",
                      params={"d": SHOCK_DAY}).fetchall()
    assert now == [(f"{SHOCK_DAY}-{now[0][0].split('-', 3)[-1]}", False)]
