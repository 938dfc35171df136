"""A real retailer's sparse log, end to end: export, thin to real-world rates, re-import, train, serve, judge.

The tiny simulation is exported, rewritten by :func:`.sparse.sparsify` to the
real export's rates (a weekly campaign mailing, 0.03% of impressions
redeemed, no slots or propensities) and imported with
``METRO_SOURCE=parquet:<folder>``; then the real jobs run: ``retrain``,
``daily_pipeline``, ``evaluate`` (offline_evaluation, evaluation_summary).
docs/IMPORT.md's worked example quotes this run's figures.
"""

import shutil
from datetime import date

import duckdb
import pytest

from metro_assets_tests.importing.conftest import import_settings
from metro_assets_tests.importing.sparse import REAL_REDEMPTION_RATE, RUN_DATES, TRAIN_DAY, run_pipeline, sparsify


@pytest.fixture(scope="module")
def sparse_run(tiny_export, tmp_path_factory):
    """(settings, counts, results) of the whole run on the sparse import."""
    folder = tmp_path_factory.mktemp("sparse")
    source = shutil.copytree(tiny_export, folder / "import")
    counts = sparsify(source)
    with pytest.MonkeyPatch.context() as env:
        settings = import_settings(env, source, folder)
        yield settings, counts, run_pipeline(settings)


def _sql(settings, query, params=None):
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        return con.sql(query, params=params).fetchall()
    finally:
        con.close()


def test_the_fixture_has_the_real_exports_rates(sparse_run):
    settings, counts, results = sparse_run
    assert all(r.success for r in results.values()), {k: r.success for k, r in results.items()}
    impressions, redemptions = _sql(settings, "select (select count(*) from impressions), "
                                              "(select count(*) from redemptions)")[0]
    assert (impressions, redemptions) == (counts["impressions"], counts["redemptions"])
    assert redemptions / impressions == pytest.approx(REAL_REDEMPTION_RATE, rel=0.02)  # 0.03%
    assert 20 < redemptions < counts["redemptions_before"] / 1.5
    assert _sql(settings, "select count(*) from impressions where propensity is not null")[0][0] == 0


def test_training_on_sparse_positives_says_what_it_lacks(sparse_run):
    settings, _, results = sparse_run
    [(positives, reason, auc, validated_positives)] = _sql(
        settings, "select train_positives, selection_reason, validation_auc, validation_positives "
                  "from model_versions where selected and day = ?", [date.fromisoformat(TRAIN_DAY)])
    assert positives < settings.ranker.min_train_positives
    assert f"fewer than METRO_MIN_TRAIN_POSITIVES={settings.ranker.min_train_positives}" in reason
    # a validated model, or the warning that it is not
    assert (auc is not None and validated_positives > 0) or "not validated" in reason
    meta = {e.asset_key.path[-1]: e.event_specific_data.materialization.metadata
            for e in results["retrain"].get_asset_materialization_events()}
    assert "METRO_MIN_TRAIN_POSITIVES" in meta["ranker_model"]["warning"].value


def test_the_pooled_evaluation_reports_intervals_and_a_plain_verdict(sparse_run):
    settings, _, results = sparse_run
    first, last = (date.fromisoformat(d) for d in RUN_DATES)
    rows = {(p, m): (v, lo, hi) for p, m, v, lo, hi in _sql(
        settings, "select policy, metric, value, ci_low, ci_high from evaluation_summary where run_date = ?", [last])}
    days = (last - first).days + 1
    assert rows[("model", "run_dates")][0] == days
    graded = _sql(settings, "select sum(value) from offline_evaluation where policy = 'model' "
                            "and metric = 'customers_evaluated'")[0][0]
    assert rows[("model", "customers_evaluated")][0] == graded  # pooled customer-dates
    for key in [("model", "ndcg_at_10"), ("popularity", "ndcg_at_10"), ("model", "product_purchase_rate_at_10"),
                ("model_minus_popularity", "ndcg_at_10"), ("model_minus_popularity", "product_purchase_rate_at_10")]:
        value, low, high = rows[key]
        assert low is not None and low <= value <= high, key
    # no oracle and no propensities in an import: no causal or off-policy figure, never zeros
    assert not {m for _, m in rows} & {"expected_redemptions_at_10", "oracle_share", "snips_redemptions_at_10"}
    summaries = [e.event_specific_data.materialization for e in results["evaluate"].get_asset_materialization_events()
                 if e.asset_key.path[-1] == "evaluation_summary"]
    meta = summaries[-1].metadata
    verdict = meta["verdict"].value
    assert "model - popularity ndcg_at_10" in verdict and f"{days} run date(s)" in verdict
    assert ("TOO SMALL TO SEPARATE" in verdict) == (meta["separated"].value is False)
    assert all(c.passed for c in results["evaluate"].get_asset_check_evaluations())
