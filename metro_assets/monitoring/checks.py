"""Data-quality checks on the monitoring tables."""

from metro_assets.checking import Check
from metro_assets.monitoring.metrics import RANKING_METRICS

IN_RUN = "run_date >= $start and run_date < $end"
_RANKING = ", ".join(f"'{m}'" for m in RANKING_METRICS)

EVALUATION_CHECKS = [
    Check(
        "evaluation_metrics_are_shares",
        "offline_evaluation",
        "ranking metrics (NDCG, MRR, precision, recall, redemption rate at 10) and the oracle share are in [0, 1]",
        f"""select policy || ' ' || metric from offline_evaluation where {IN_RUN}
            and metric in ({_RANKING}, 'oracle_share') and policy not like '%\\_minus\\_%' escape '\\'
            and (isnan(value) or value < 0 or value > 1 + 1e-9)""",
    ),
    Check(
        "evaluation_intervals_are_ordered",
        "offline_evaluation",
        "every 95% interval is finite and ci_low <= ci_high",
        f"""select policy || ' ' || metric from offline_evaluation where {IN_RUN} and ci_low is not null
            and (not isfinite(ci_low) or not isfinite(ci_high) or ci_low > ci_high)""",
    ),
    Check(
        "evaluation_has_customers_when_redemptions_exist",
        "offline_evaluation",
        "a recorded run date whose pool customers redeemed in [D, D + 7) evaluated at least one customer",
        f"""select e.run_date from offline_evaluation e
            where e.{IN_RUN} and e.policy = 'model' and e.metric = 'customers_evaluated' and e.value = 0
              and exists (select 1 from redemptions r join candidate_pool c
                          on c.customer_id = r.customer_id and c.day = e.run_date
                          where r.day >= e.run_date and r.day < e.run_date + 7)""",
    ),
    Check(
        "evaluation_within_caps_never_exceeds_uncapped",
        "offline_evaluation",
        "caps only take away: a policy's expected redemptions within the offers' caps are at most its uncapped ones",
        f"""select policy from offline_evaluation c where {IN_RUN} and metric = 'expected_redemptions_within_caps_at_10'
              and value > (select u.value + 1e-9 from offline_evaluation u where u.run_date = c.run_date
                           and u.policy = c.policy and u.metric = 'expected_redemptions_at_10')""",
    ),
    Check(
        "evaluation_rows_are_unique",
        "offline_evaluation",
        "one value per (run_date, policy, metric)",
        f"select policy || ' ' || metric from offline_evaluation where {IN_RUN} group by run_date, policy, metric "
        "having count(*) > 1",
    ),
    Check(
        "evaluation_values_are_finite",
        "offline_evaluation",
        "every recorded value is a finite number",
        f"select policy || ' ' || metric from offline_evaluation where {IN_RUN} and not isfinite(value)",
    ),
]

DRIFT_CHECKS = [
    Check(
        "drift_psi_is_finite_and_non_negative",
        "drift_report",
        "every PSI is a finite number >= 0",
        f"select feature from drift_report where {IN_RUN} and (not isfinite(psi) or psi < 0)",
    ),
    Check(
        "drift_features_are_unique",
        "drift_report",
        "one row per (run_date, feature)",
        f"select feature from drift_report where {IN_RUN} group by run_date, feature having count(*) > 1",
    ),
]

SUMMARY_CHECKS = [
    Check(
        "evaluation_summary_intervals_are_ordered",
        "evaluation_summary",
        "every pooled 95% interval is finite and ci_low <= ci_high",
        f"""select policy || ' ' || metric from evaluation_summary where {IN_RUN} and ci_low is not null
            and (not isfinite(ci_low) or not isfinite(ci_high) or ci_low > ci_high)""",
    ),
    Check(
        "evaluation_summary_rows_are_unique",
        "evaluation_summary",
        "one finite value per (run_date, policy, metric)",
        f"""select policy || ' ' || metric from evaluation_summary where {IN_RUN}
            group by run_date, policy, metric having count(*) > 1 or bool_or(not isfinite(value))""",
    ),
]
