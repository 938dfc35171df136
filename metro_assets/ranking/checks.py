"""Data-quality checks on the ranking tables."""

from metro_assets.checking import Check

IN_RUN = "run_date >= $start and run_date < $end"

RECOMMENDATION_CHECKS = [
    Check(
        "recommendations_cover_each_pool_customer",
        "recommendations",
        "every customer with a candidate pool gets min(top_k, what the pool allows) recommendations: at most "
        "one offer per product and max_per_category per category (scoring.top_k); never more, and fewer only "
        "when the allocation left offers out (a binding cap, or a value <= 0 under METRO_OBJECTIVE="
        "incremental_margin: then $exact is false)",
        f"""with pool as (select c.day, c.customer_id, p.category, count(distinct o.product_id) as n
                          from candidate_pool c join offers o using (offer_id) join products p using (product_id)
                          where c.day >= $start and c.day < $end group by all),
                 feasible as (select day, customer_id, sum(least(n, $max_per_category)) as n from pool group by all),
                 recs as (select run_date as day, customer_id, count(*) as n from recommendations
                          where {IN_RUN} group by all)
            select feasible.customer_id from feasible left join recs using (day, customer_id)
            where coalesce(recs.n, 0) > least(feasible.n, $top_k)
               or ($exact and coalesce(recs.n, 0) <> least(feasible.n, $top_k))""",
    ),
    Check(
        "recommendations_have_one_offer_per_product_and_few_per_category",
        "recommendations",
        "no product twice in a customer's list and at most max_per_category offers of one category",
        f"""select customer_id from (
                select r.run_date, r.customer_id, p.category, count(*) as n, count(distinct o.product_id) as products
                from recommendations r join offers o using (offer_id) join products p using (product_id)
                where r.{IN_RUN} group by all)
            where n > $max_per_category or products <> n""",
    ),
    Check(
        "recommendations_rank_without_gaps",
        "recommendations",
        "ranks run 1..n per customer, once each",
        f"""select customer_id from recommendations where {IN_RUN}
            group by run_date, customer_id having min(rank) <> 1 or max(rank) <> count(*)
               or count(distinct rank) <> count(*)""",
    ),
    Check(
        "recommendations_have_unique_offers",
        "recommendations",
        "one row per (run_date, customer_id, offer_id)",
        f"select customer_id from recommendations where {IN_RUN} "
        "group by run_date, customer_id, offer_id having count(*) > 1",
    ),
    Check(
        "recommendation_scores_are_probabilities",
        "recommendations",
        "p_redeem (the score itself in rows written before it existed) is in [0, 1] and the score is not NaN "
        "(the score is the objective's value: a probability, or money under the margin objective)",
        f"""select customer_id from recommendations where {IN_RUN}
            and (isnan(score) or isnan(coalesce(p_redeem, score)) or coalesce(p_redeem, score) < 0
                 or coalesce(p_redeem, score) > 1)""",
    ),
    Check(
        "recommendations_come_from_the_pool",
        "recommendations",
        "every recommended pair is in that day's candidate pool (so eligibility holds)",
        f"""select r.customer_id from recommendations r anti join candidate_pool c
            on c.day = r.run_date and c.customer_id = r.customer_id and c.offer_id = r.offer_id
            where r.{IN_RUN}""",
    ),
    Check(
        "recommendations_have_reasons",
        "recommendations",
        "every recommendation says why: 1 to 3 reasons (ranking/reasons.py), none of them empty",
        f"""select customer_id from recommendations where {IN_RUN}
            and (reasons is null or len(reasons) not between 1 and 3
                 or len(list_filter(reasons, lambda x: x is null or x = '')) > 0)""",
    ),
    Check(
        "recommendations_use_a_known_model",
        "recommendations",
        "the model version used exists in model_versions, trained on or before the run date",
        f"""select r.model_version from recommendations r anti join model_versions m
            on m.model_version = r.model_version and m.day <= r.run_date where r.{IN_RUN}""",
    ),
]

MODEL_CHECKS = [
    Check(
        "ranker_model_was_validated",
        "ranker_model",
        "the serving model was validated on enough positives (a warning, not a stop: sparse data may not allow "
        "it; the selection reason says what was short)",
        "select model_version from model_versions where day >= $start and day < $end and selected "
        "and (validation_auc is null or selection_reason like '%WARNING%')",
        blocking=False,
    ),
    Check(
        "ranker_model_has_one_selected_version",
        "ranker_model",
        "each training day has exactly one selected model",
        "select day from model_versions where day >= $start and day < $end group by day "
        "having count(*) filter (where selected) <> 1",
    ),
    Check(
        "ranker_model_trained_before_its_day",
        "ranker_model",
        "training impressions ended a week before the training day (labels closed before it)",
        "select model_version from model_versions where day >= $start and day < $end "
        "and train_end > day - interval 7 day",
    ),
]
