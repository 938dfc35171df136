"""Offline evaluation on a tiny world: causal metrics with intervals, paired differences, the top-k rules,
off-policy estimates, incomplete label windows, imported data, the asset."""

import shutil

import duckdb
import numpy as np
import polars as pl
import pytest
from dagster import DagsterInstance, materialize
from dagster_duckdb import DuckDBResource

from metro_assets.checking import evaluate_checks
from metro_assets.monitoring.assets import build_monitoring_assets
from metro_assets.monitoring.checks import EVALUATION_CHECKS
from metro_assets.monitoring import comparison
from metro_assets.monitoring.evaluation import (
    BASELINES,
    BUSINESS_METRICS,
    CAPPED_METRICS,
    QINI_METRICS,
    UPLIFT_PAIRS,
    CAUSAL_METRICS,
    KIND_PAIRED_METRICS,
    MODEL_KINDS,
    METRICS,
    OFF_POLICY_METRICS,
    PAIRED_METRICS,
    POLICIES,
    PURCHASE_METRICS,
    evaluate,
    kind_paired_policy,
    label_window,
    markdown_table,
    offer_economics,
    paired_policy,
    policy_rankings,
    pool_truth,
    customer_values,
    oracle_within_caps,
    wide_table,
    within_caps,
    write_evaluation,
)
from metro_assets.ranking.allocation import offer_caps
from metro_assets.monitoring.metrics import RANKING_METRICS
from metro_assets.monitoring.uplift_evaluation import QINI_POLICIES
from metro_assets.monitoring.offpolicy import estimates, per_customer
from metro_assets.ranking.checks import RECOMMENDATION_CHECKS
from metro_assets.simulation.oracle import position_attention
from metro_assets.ranking.scoring import offer_items, score_pool, selected_model, top_k
from metro_assets.warehouse import ensure_schema
from metro_assets_tests.monitoring.conftest import DAY, LATE

COUNTS = {"customers_scored", "customers_evaluated", "customers_without_redemptions"}


@pytest.fixture(scope="module")
def result(evaluated_file):
    with duckdb.connect(str(evaluated_file), read_only=True) as con:
        return evaluate(con, DAY, replicates=200)


def row(rows, policy, metric):
    return rows.filter((pl.col("policy") == policy) & (pl.col("metric") == metric)).row(0, named=True)


def value(rows, policy, metric):
    return row(rows, policy, metric)["value"]


def test_every_policy_gets_every_metric_on_the_same_customers(result):
    assert result.complete and not any("unavailable" in n for n in result.notes)
    paired = {paired_policy(b) for b in BASELINES}
    kinds = {kind_paired_policy(k) for k in MODEL_KINDS[1:]}
    uplift_pairs = {f"{a}_minus_{b}" for a, b in UPLIFT_PAIRS}
    assert set(result.rows["policy"]) == set(POLICIES) | paired | kinds | uplift_pairs
    expected = (set(CAUSAL_METRICS) | set(CAPPED_METRICS) | set(BUSINESS_METRICS) | set(OFF_POLICY_METRICS) | set(RANKING_METRICS)
                | set(PURCHASE_METRICS) | COUNTS | {"customers_logged"})
    for policy in POLICIES:
        scored = policy in QINI_POLICIES or policy == "p_redeem_matched"  # a ranking of the whole pool
        wanted = expected | (set(QINI_METRICS) if scored else set())
        if value(result.rows, policy, "offers_shown_at_10") == 0:  # the margin objective may show nothing
            wanted -= {"roi_at_10", *OFF_POLICY_METRICS}
        assert set(result.rows.filter(pl.col("policy") == policy)["metric"]) == wanted, policy
    for policy in paired:
        assert set(result.rows.filter(pl.col("policy") == policy)["metric"]) == set(PAIRED_METRICS)
    for policy in kinds:
        assert set(result.rows.filter(pl.col("policy") == policy)["metric"]) == set(KIND_PAIRED_METRICS)
    for policy in uplift_pairs:
        assert set(result.rows.filter(pl.col("policy") == policy)["metric"]) == set(PAIRED_METRICS[:3])
    evaluated = result.rows.filter(pl.col("metric") == "customers_evaluated")["value"]
    assert evaluated.n_unique() == 1 and evaluated[0] > 10  # the same customers for every policy
    kind = result.versions["model"].split("-", 3)[-1]
    for metric in expected:  # the served kind is the served recommendations themselves
        same = ("value", "ci_low", "ci_high")
        assert [row(result.rows, "model", metric)[c] for c in same] == [row(result.rows, kind, metric)[c] for c in same]


def test_causal_values_are_per_customer_bounded_by_the_oracle_with_intervals(result):
    rows = result.rows
    best = value(rows, "oracle", "expected_redemptions_at_10")
    assert 0.05 < best < 10  # per customer (at most 10 offers each), not a sum over customers
    for policy in POLICIES:
        assert value(rows, policy, "expected_redemptions_at_10") <= best + 1e-9
        assert (value(rows, policy, "expected_incremental_redemptions_at_10")
                <= value(rows, policy, "expected_redemptions_at_10"))
        for metric in CAUSAL_METRICS:
            r = row(rows, policy, metric)
            assert r["ci_low"] <= r["value"] + 1e-9 and r["value"] <= r["ci_high"] + 1e-9, (policy, metric)
    assert value(rows, "oracle", "oracle_share") == pytest.approx(1.0)
    assert value(rows, "oracle", "oracle_share_within_caps") == pytest.approx(1.0)
    for policy in POLICIES:  # caps only take away, and the share within caps has its own interval
        assert (value(rows, policy, "expected_redemptions_within_caps_at_10")
                <= value(rows, policy, "expected_redemptions_at_10") + 1e-9)
        r = row(rows, policy, "oracle_share_within_caps")
        assert r["ci_low"] <= r["value"] + 1e-9 and r["value"] <= r["ci_high"] + 1e-9, policy
    # the rules know no caps: some of their expected redemptions are ones the caps forbid
    assert any(value(rows, rule, "expected_redemptions_within_caps_at_10")
               < 0.95 * value(rows, rule, "expected_redemptions_at_10") for rule in ("popularity", "legacy", "buy_again"))
    # the oracle's list is far above a random one, and the intervals are narrow enough to say so
    assert row(rows, "random", "oracle_share")["ci_high"] < 0.8


def test_every_model_kind_is_graded_on_the_list_it_would_serve_within_the_caps(con):
    pool = con.sql(f"select distinct customer_id, offer_id from candidate_pool where day = '{DAY}'").pl()
    pool = pool.join(offer_items(con), on="offer_id", how="left")
    rankings, _, _ = policy_rankings(con, DAY, pool, offer_economics(con, pool["offer_id"]))
    caps = offer_caps(con, DAY)
    served = selected_model(con, DAY)[1].kind
    for kind in [k for k in MODEL_KINDS if k != served]:
        predicted = score_pool(con, DAY, selected_model(con, DAY, kind=kind)[1]).select(
            "customer_id", "offer_id", p="score")
        # its own predictions of the chosen pairs never ask more of a capped offer than is left (as serving)
        use = (rankings[kind].join(predicted, on=["customer_id", "offer_id"]).group_by("offer_id")
               .agg(pl.col("p").sum()).join(caps, on="offer_id"))
        assert use.height > 0 and (use["p"] <= use["remaining_redemptions"].clip(lower_bound=0) + 1e-9).all(), kind
        plain = top_k(predicted.join(pool, on=["customer_id", "offer_id"]).rename({"p": "score"}), 10)
        assert not plain.select("customer_id", "offer_id").sort(pl.all()).equals(
            rankings[kind].select("customer_id", "offer_id").sort(pl.all())), f"{kind}: the caps changed nothing"


def test_within_caps_an_offer_yields_at_most_what_is_left_of_its_cap(con):
    caps = offer_caps(con, DAY)
    assert caps.height > 0 and (caps["remaining_redemptions"] >= 0).all()  # the tiny world caps some offers
    pool = con.sql(f"select distinct customer_id, offer_id from candidate_pool where day = '{DAY}'").pl()
    truth = pool_truth(con, DAY)
    # everyone is shown the capped offers at the top: the caps must bind
    ranked = (pool.join(caps.select("offer_id"), on="offer_id", how="semi")
              .with_columns(rank=pl.col("offer_id").rank("ordinal").over("customer_id").cast(pl.Int64)))
    customers = pool.select("customer_id").unique().sort("customer_id")
    got = within_caps(ranked, truth, customers, caps)
    assert got.height == customers.height and got["customer_id"].to_list() == customers["customer_id"].to_list()
    e = (ranked.with_columns(attention=pl.Series(position_attention(ranked["rank"].to_numpy())))
         .join(truth, on=["customer_id", "offer_id"])
         .with_columns(e=pl.col("attention") * pl.col("p_redeem"))
         .group_by("offer_id").agg(pl.col("e").sum()).join(caps, on="offer_id"))
    bound = e.select(pl.min_horizontal("e", "remaining_redemptions")).sum().item()
    assert got["within"].sum() == pytest.approx(bound)
    assert got["within"].sum() < e["e"].sum()  # some cap binds: the unconstrained figure would overstate
    # the oracle allocated within the caps never overflows one: scaling leaves it whole
    pool = pool.join(offer_items(con), on="offer_id", how="left")
    allocated = oracle_within_caps(truth, pool, caps)
    whole = customer_values(allocated, truth.join(offer_economics(con, pool["offer_id"]), on="offer_id"), customers)
    assert within_caps(allocated, truth, customers, caps)["within"].sum() == pytest.approx(whole["expected"].sum())


def test_within_caps_counts_a_spent_cap_as_nothing_and_leaves_uncapped_offers_whole():
    ranked = pl.DataFrame({"customer_id": [1, 1, 2], "offer_id": [7, 8, 7], "rank": [1, 2, 1]})
    truth = pl.DataFrame({"customer_id": [1, 1, 2], "offer_id": [7, 8, 7], "p_redeem": [0.5, 0.4, 0.5]})
    customers = pl.DataFrame({"customer_id": [1, 2, 3]})
    spent = pl.DataFrame({"offer_id": [7], "remaining_redemptions": [-2.0]})  # redeemed past its cap already
    got = within_caps(ranked, truth, customers, spent)["within"].to_list()
    assert got == pytest.approx([0.4 * position_attention(np.array([2]))[0], 0.0, 0.0])
    roomy = pl.DataFrame({"offer_id": [7], "remaining_redemptions": [5.0]})
    assert within_caps(ranked, truth, customers, roomy)["within"].to_list() == pytest.approx(
        [0.5 + 0.4 * position_attention(np.array([2]))[0], 0.5, 0.0])


def test_the_within_caps_check_catches_a_figure_above_the_uncapped_one(result, con):
    write_evaluation(con, result)
    name = "evaluation_within_caps_never_exceeds_uncapped"
    check = [c for c in EVALUATION_CHECKS if c.name == name]
    assert all(o.passed for o in evaluate_checks(con, check, DAY, LATE, {}))
    con.execute("""update offline_evaluation set value = value + 1 where policy = 'legacy'
                   and metric = 'expected_redemptions_within_caps_at_10'""")
    failed = evaluate_checks(con, check, DAY, LATE, {})[0]
    assert not failed.passed and "legacy" in str(failed.examples)


def test_purchases_of_the_offered_products_are_a_denser_signal_with_a_lift_over_random(result, con):
    rows = result.rows
    assert value(rows, "random", "product_purchase_lift_at_10") == pytest.approx(1.0)
    for policy in ("model", "buy_again", "popularity", "random"):
        r = row(rows, policy, "product_purchase_rate_at_10")
        assert 0 <= r["ci_low"] <= r["value"] <= r["ci_high"] <= 1
        assert value(rows, policy, "product_purchase_lift_at_10") == pytest.approx(r["value"] / value(
            rows, "random", "product_purchase_rate_at_10"))
    # it tells policies apart on every scored customer, not only on the few who redeemed: buying again is
    # what it rewards (the served model, trained on redemptions, need not lead on it)
    assert value(rows, "buy_again", "product_purchase_lift_at_10") > 1.5


def test_paired_differences_are_the_differences_with_tighter_intervals(result):
    rows = result.rows
    for b in BASELINES:
        for metric in PAIRED_METRICS:
            diff = value(rows, "model", metric) - value(rows, b, metric)
            assert value(rows, paired_policy(b), metric) == pytest.approx(diff, abs=1e-9)
        d, m = row(rows, paired_policy(b), "expected_redemptions_at_10"), row(rows, "model", "expected_redemptions_at_10")
        assert d["ci_high"] - d["ci_low"] < m["ci_high"] - m["ci_low"]  # pairing removes the customer spread


def test_each_model_kind_is_paired_with_lightgbm(result):
    rows = result.rows
    for kind in MODEL_KINDS[1:]:
        for metric in KIND_PAIRED_METRICS:
            diff = value(rows, kind, metric) - value(rows, "lightgbm", metric)
            r = row(rows, kind_paired_policy(kind), metric)
            assert r["value"] == pytest.approx(diff, abs=1e-9) and r["ci_low"] <= r["value"] <= r["ci_high"]


def test_the_model_comparison_has_one_row_per_kind_on_the_same_pool(result, con):
    table = comparison.model_comparison(con, DAY, result.rows, speed_pairs=3000)
    assert table["kind"].to_list() == list(MODEL_KINDS) and table["serves"].sum() == 1
    for r in table.iter_rows(named=True):
        assert r["oracle_share"] == pytest.approx(value(result.rows, r["kind"], "oracle_share"))
        assert r["oracle_share_low"] <= r["oracle_share"] <= r["oracle_share_high"]
        assert 0.5 < r["validation_auc"] <= 1 and r["train_seconds"] > 0 and r["scoring_pairs_per_second"] > 0
        assert 0 <= r["validation_grouped_auc"] <= 1  # the figure the selection rule reads (ranking/selection.py)
    assert table.filter(kind="lightgbm")["oracle_share_minus_lightgbm"][0] == 0.0
    text = comparison.markdown(table)
    assert text.startswith("| kind | serves | validation AUC") and text.count("\n") == 1 + len(MODEL_KINDS)
    assert "| validation grouped AUC |" in text


def test_every_policy_and_the_served_list_follow_the_top_k_rules(con):
    pool = con.sql(f"select distinct customer_id, offer_id from candidate_pool where day = '{DAY}'").pl()
    pool = pool.join(offer_items(con), on="offer_id", how="left")
    rankings, _, _ = policy_rankings(con, DAY, pool, offer_economics(con, pool["offer_id"]), max_per_category=2)
    items = offer_items(con)
    served_kind = selected_model(con, DAY)[1].kind  # its row is the served list
    for policy, ranking in rankings.items():
        for r in ranking if isinstance(ranking, list) else [ranking]:
            per = (r.select("customer_id", "offer_id").join(items, on="offer_id")
                   .group_by("customer_id", "category").agg(n=pl.len(), products=pl.col("product_id").n_unique()))
            assert (per["n"] == per["products"]).all(), f"{policy}: a product twice in a top 10"
            if policy not in ("model", served_kind):  # served with the default limit, 3
                assert per["n"].max() <= 2, policy
    served = con.sql(f"select r.customer_id, o.product_id, count(*) as n from recommendations r join offers o "
                     f"using (offer_id) where r.run_date = '{DAY}' group by all").pl()
    assert served["n"].max() == 1
    outcomes = evaluate_checks(con, RECOMMENDATION_CHECKS, DAY, LATE, {"top_k": 10, "max_per_category": 3, "exact": True})
    assert all(o.passed for o in outcomes), [(o.check.name, o.examples) for o in outcomes if not o.passed]
    assert not all(o.passed for o in evaluate_checks(con, RECOMMENDATION_CHECKS, DAY, LATE,
                                                     {"top_k": 10, "max_per_category": 1, "exact": True}))


def test_off_policy_estimates_from_the_logged_propensities(result, con):
    # World v2 logs position, propensity and exploration: every policy gets IPS, SNIPS and ESS
    assert value(result.rows, "model", "customers_logged") > 0
    for policy in POLICIES:
        if value(result.rows, policy, "offers_shown_at_10") == 0:  # the margin objective may show nothing
            continue
        ips, snips, ess = (row(result.rows, policy, m) for m in OFF_POLICY_METRICS)
        assert ips["value"] >= 0 and snips["value"] >= 0 and ess["value"] > 0
        assert ips["ci_low"] <= ips["value"] <= ips["ci_high"]
    # an import without propensities: the off-policy metrics are unavailable, the rest remains
    con.execute("alter table impressions drop column propensity")
    bare = evaluate(con, DAY, replicates=50)
    assert any("no propensity column" in n and "unavailable" in n for n in bare.notes)
    assert not set(OFF_POLICY_METRICS) & set(bare.rows["metric"]) and "customers_logged" not in set(bare.rows["metric"])
    assert set(CAUSAL_METRICS) <= set(bare.rows["metric"])


def test_the_label_window_must_be_in_the_warehouse(con):
    assert label_window(con, DAY)[2] and not label_window(con, LATE)[2]
    late = evaluate(con, LATE)
    assert not late.complete and late.rows.height == 0 and "not fully in the warehouse" in late.notes[0]
    assert write_evaluation(con, late) == 0
    assert con.sql("select count(*) from offline_evaluation").fetchall()[0][0] == 0


def test_recording_twice_replaces_the_day_with_its_intervals(con, result):
    assert write_evaluation(con, result) == result.rows.height
    assert write_evaluation(con, result) == result.rows.height
    assert con.sql("select count(*) from offline_evaluation").fetchall()[0][0] == result.rows.height
    stored = con.sql("select ci_low, ci_high from offline_evaluation where policy = 'model' "
                     "and metric = 'oracle_share'").fetchall()
    assert stored[0][0] < stored[0][1]


def test_an_older_warehouse_gets_the_interval_columns():
    con = duckdb.connect()
    con.execute("create table offline_evaluation (run_date date not null, policy varchar not null, "
                "metric varchar not null, value double not null, created_at timestamp)")
    ensure_schema(con)
    columns = [r[0] for r in con.sql("describe offline_evaluation").fetchall()]
    assert {"ci_low", "ci_high"} <= set(columns)


def test_without_the_oracle_the_other_metrics_remain(con):
    for table in ("sim.customer_traits", "sim.customer_category_traits", "sim.product_traits"):
        con.execute(f"delete from {table}")  # as for imported data
    result = evaluate(con, DAY, replicates=50)
    assert result.complete and any("oracle unavailable" in n for n in result.notes)
    assert "oracle" not in set(result.rows["policy"])
    assert not any(p.startswith("model_minus_") for p in result.rows["policy"])
    assert not {"oracle_uplift", "oracle_margin"} & set(result.rows["policy"])
    # qini_logged needs only the randomised log: what a retailer can compute on its own data
    assert set(result.rows["metric"]) == (set(RANKING_METRICS) | set(OFF_POLICY_METRICS) | set(PURCHASE_METRICS)
                                          | COUNTS | {"customers_logged", "qini_logged"})


def test_the_wide_and_markdown_tables(result):
    wide = wide_table(result.rows)
    assert wide.columns == ["metric", *POLICIES, *[paired_policy(b) for b in BASELINES],
                            *[kind_paired_policy(k) for k in MODEL_KINDS[1:]],
                            *[f"{a}_minus_{b}" for a, b in UPLIFT_PAIRS]]
    assert wide["metric"].to_list() == [m for m in METRICS if m in set(result.rows["metric"])]
    text = markdown_table(result.rows)
    assert text.startswith("| metric | model | lightgbm") and "| oracle_share | " in text and " [" in text


def test_the_asset_records_a_day_and_skips_a_day_without_its_week(evaluated_file, tiny_env):
    shutil.copy(evaluated_file, tiny_env.warehouse)
    assets = build_monitoring_assets(tiny_env)
    resources = {"warehouse": DuckDBResource(database=str(tiny_env.warehouse))}
    evaluation = [a for a in assets if a.key.path == ["offline_evaluation"]]
    with DagsterInstance.ephemeral() as instance:
        done = materialize(evaluation, partition_key=DAY.isoformat(), resources=resources, instance=instance)
        skipped = materialize(evaluation, partition_key=LATE.isoformat(), resources=resources, instance=instance)
    assert done.success and skipped.success
    meta = done.asset_materializations_for_node("offline_evaluation")[0].metadata
    assert meta["recorded"].value is True and "| expected_redemptions_at_10 |" in meta["evaluation"].value
    assert 0 < meta["model_oracle_share"].value <= 1 and meta["model_oracle_share_within_caps"].value > 0
    assert "| within caps |" in meta["history"].value
    assert "| wide_deep |" in meta["model_comparison"].value and "| lightgbm |" in meta["model_comparison"].value
    assert all(c.passed for c in done.get_asset_check_evaluations())
    late = skipped.asset_materializations_for_node("offline_evaluation")[0].metadata
    assert late["recorded"].value is False and "not fully in the warehouse" in late["notes"].value
    with duckdb.connect(str(tiny_env.warehouse), read_only=True) as con:
        days = con.sql("select distinct run_date from offline_evaluation").fetchall()
    assert days == [(DAY,)]


def test_snips_agrees_with_the_oracle_under_an_exploring_log(con, result):
    """A log that only explores (each customer shown 12 offers of their pool in random slots, redeemed with the
    true p_redeem x the slot's attention) lets SNIPS recover each policy's expected redemptions@10."""
    rng = np.random.default_rng(5)
    pool = con.sql(f"select distinct customer_id, offer_id from candidate_pool where day = '{DAY}'").pl()
    # a fixed row order: the log's random draws must not depend on how the query returned the rows
    pool = pool.join(offer_items(con), on="offer_id", how="left").sort("customer_id", "offer_id")
    truth = pool_truth(con, DAY)
    shown = (pool.select("customer_id", "offer_id").with_columns(u=pl.Series(rng.random(pool.height)))
             .with_columns(n=pl.len().over("customer_id"), position=pl.col("u").rank("ordinal").over("customer_id"))
             .filter(pl.col("position") <= 12)
             .join(truth, on=["customer_id", "offer_id"]).sort("customer_id", "position"))
    seen = shown["p_redeem"].to_numpy() * position_attention(shown["position"].to_numpy())
    log = shown.select("customer_id", "offer_id", "position", list_id=pl.col("customer_id"),
                       propensity=1.0 / pl.col("n"), is_exploration=pl.lit(True),
                       reward=pl.Series((rng.random(shown.height) < seen).astype(int)))
    rankings, _, _ = policy_rankings(con, DAY, pool, offer_economics(con, pool["offer_id"]))
    for policy in ("model", "popularity", "affinity_rule"):
        snips = estimates(per_customer(log, rankings[policy]), replicates=50)["snips_redemptions_at_10"][0]
        assert snips == pytest.approx(value(result.rows, policy, "expected_redemptions_at_10"), rel=0.15), policy
