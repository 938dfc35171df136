"""The drift report on a tiny world: its baseline, the score baseline's fallbacks, the alert rule, rewrites."""

from datetime import timedelta

import pytest

from metro_assets.errors import DataError
from metro_assets.monitoring.drift import DriftThresholds, MONITORED, decide, drift_report, write_drift_report
from metro_assets_tests.monitoring.conftest import DAY, TRAIN_DAY, run_day


def test_a_day_is_measured_against_its_models_training_day(con):
    report = drift_report(con, DAY)
    assert report.model_version.startswith(str(TRAIN_DAY)) and report.baseline_day == TRAIN_DAY
    # the training day's features were never materialized: computed with the same SQL
    stored = con.sql("select count(*) from customer_features where day = $d", params={"d": TRAIN_DAY}).fetchall()
    assert stored == [(0,)]
    assert set(report.rows["feature"]) == set(MONITORED) - {"score"}
    assert "score PSI not computed" in report.notes[0]  # the training day has no pool nor recommendations
    assert (report.rows["psi"] >= 0).all() and not report.alert


def test_the_score_baseline_is_what_the_model_served_or_would_have(con):
    run_day(con, TRAIN_DAY)  # the model served its own training day (what the retrain job does)
    served = drift_report(con, DAY)
    assert not served.notes and "score" in set(served.rows["feature"])
    con.execute("delete from recommendations where run_date = $d", {"d": TRAIN_DAY})
    rescored = drift_report(con, DAY)  # the same version rescores the training day's pool
    assert rescored.rows.sort("feature").equals(served.rows.sort("feature"))


def test_rewriting_a_day_replaces_its_rows(con):
    report = drift_report(con, DAY)
    assert write_drift_report(con, report) == write_drift_report(con, report) == report.rows.height
    assert con.sql("select count(*) from drift_report").fetchall()[0][0] == report.rows.height


def test_no_model_is_a_clear_error(con):
    with pytest.raises(DataError, match="no ranker_model trained on or before"):
        drift_report(con, TRAIN_DAY - timedelta(days=1))


def test_the_alert_rule_and_its_settings():
    t = DriftThresholds()
    three = {"recency_days": 0.3, "frequency": 0.25, "monetary": 0.26, "score": 0.1}
    assert decide(three, t)[0] and not decide({**three, "monetary": 0.2}, t)[0]
    assert decide({"recency_days": 0.0, "score": 0.26}, t) == (True, "score PSI 0.260 over 0.25")
    assert not decide({"recency_days": 0.0, "score": 0.25}, t)[0]  # the score must be *over* the threshold
    assert decide(three, DriftThresholds(alert_features=4))[0] is False
    assert decide({"recency_days": 0.12, "frequency": 0.11}, DriftThresholds(major=0.1, alert_features=2))[0]


@pytest.mark.parametrize("env, message", [
    ({"METRO_PSI_MAJOR": "0.05"}, "METRO_PSI_MAJOR=0.05 must be greater than METRO_PSI_MODERATE=0.1"),
    ({"METRO_PSI_MODERATE": "high"}, "METRO_PSI_MODERATE='high' is not a number"),
    ({"METRO_DRIFT_ALERT_FEATURES": "0"}, "METRO_DRIFT_ALERT_FEATURES=0 must be between"),
    ({"METRO_SCENARIO": "cyber_monday"}, "METRO_SCENARIO='cyber_monday' is not one of none, black_friday"),
    ({"METRO_SCENARIO_START": "12 Feb"}, "METRO_SCENARIO_START='12 Feb' is not a date"),
])
def test_bad_drift_and_scenario_settings_name_the_variable(monkeypatch, tiny_env, env, message):
    from metro_assets.errors import SettingError
    from metro_assets.settings import load_settings

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings()


def test_drift_and_scenario_settings(monkeypatch, tiny_env):
    from datetime import date

    from metro_assets.settings import load_settings
    from metro_assets.simulation.scenarios import scenario_shock

    assert scenario_shock(tiny_env) is None  # METRO_SCENARIO defaults to none
    assert (tiny_env.drift.moderate, tiny_env.drift.major, tiny_env.drift.alert_features) == (0.1, 0.25, 3)
    monkeypatch.setenv("METRO_SCENARIO", "black_friday")
    monkeypatch.setenv("METRO_SCENARIO_START", "2025-09-20")
    monkeypatch.setenv("METRO_SCENARIO_DAYS", "2")
    monkeypatch.setenv("METRO_SCORE_PSI_ALERT", "0.5")
    settings = load_settings()
    shock = scenario_shock(settings)
    assert (shock.start, shock.end) == (date(2025, 9, 20), date(2025, 9, 22)) and shock.visits > 1
    assert settings.drift.score_alert == 0.5
