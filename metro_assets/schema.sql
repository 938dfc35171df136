-- The warehouse schema: the one source of truth for every table's columns.
-- Every table carries its partition column (`day`, or `run_date` for outputs).
-- Keys are not declared as constraints: DuckDB checks them eagerly inside the
-- delete+insert transaction that replaces a partition; asset checks test them.

-- Raw tables (simulation or import). Dimension rows belong to the day they
-- were created; rows that predate the history belong to its first day.
CREATE TABLE IF NOT EXISTS customers (
    customer_id BIGINT NOT NULL,
    segment VARCHAR NOT NULL,          -- budget | premium | family | horeca | unknown
    home_store_id INTEGER NOT NULL,
    join_date DATE NOT NULL,
    loyalty_tier VARCHAR,              -- bronze | silver | gold
    email_consent BOOLEAN NOT NULL DEFAULT false,
    day DATE NOT NULL
);

CREATE TABLE IF NOT EXISTS products (
    product_id BIGINT NOT NULL,
    name VARCHAR NOT NULL,
    category VARCHAR NOT NULL,
    subcategory VARCHAR,
    brand VARCHAR,
    base_price DOUBLE NOT NULL,
    margin DOUBLE,                     -- gross margin as a fraction of price
    shelf_life_days INTEGER,
    day DATE NOT NULL
);

CREATE TABLE IF NOT EXISTS offers (
    offer_id BIGINT NOT NULL,
    product_id BIGINT NOT NULL,
    discount_type VARCHAR,             -- percentage | fixed_amount | bogo
    discount_value DOUBLE,             -- percent off | money off | free items per item bought
    start_date DATE NOT NULL,
    end_date DATE NOT NULL,            -- last day the offer can be redeemed
    store_scope VARCHAR,               -- NULL = all stores, else '3,17,22'
    segment_scope VARCHAR,             -- NULL = all segments, else 'premium,family'
    max_redemptions INTEGER,           -- NULL = no cap
    day DATE NOT NULL                  -- published: a week before start_date
);

CREATE TABLE IF NOT EXISTS orders (
    order_id BIGINT NOT NULL,
    customer_id BIGINT NOT NULL,
    store_id INTEGER NOT NULL,
    order_timestamp TIMESTAMP NOT NULL,
    total_amount DOUBLE NOT NULL,
    num_items INTEGER NOT NULL,        -- order lines
    day DATE NOT NULL
);

CREATE TABLE IF NOT EXISTS order_items (
    order_item_id BIGINT NOT NULL,
    order_id BIGINT NOT NULL,
    product_id BIGINT NOT NULL,
    quantity INTEGER NOT NULL,
    unit_price DOUBLE NOT NULL,
    is_promo BOOLEAN NOT NULL DEFAULT false,
    discount_amount DOUBLE NOT NULL DEFAULT 0,
    day DATE NOT NULL
);

CREATE TABLE IF NOT EXISTS impressions (
    impression_id BIGINT NOT NULL,
    customer_id BIGINT NOT NULL,
    offer_id BIGINT NOT NULL,
    shown_timestamp TIMESTAMP NOT NULL,
    channel VARCHAR,                   -- email | app | in-store
    position INTEGER,                  -- slot in the list shown that day, 1 = top (NULL: not logged)
    propensity DOUBLE,                 -- the logging policy's probability of showing this offer in this slot
    is_exploration BOOLEAN,            -- the slot was filled at random from the eligible offers
    day DATE NOT NULL
);

CREATE TABLE IF NOT EXISTS redemptions (
    redemption_id BIGINT NOT NULL,
    customer_id BIGINT NOT NULL,
    offer_id BIGINT NOT NULL,
    order_id BIGINT NOT NULL,
    redeemed_timestamp TIMESTAMP NOT NULL,
    day DATE NOT NULL
);

-- Randomised holdout: customers in 'holdout' see no offers from from_date to
-- to_date (inclusive); re-drawn every 4 weeks. Optional for imports.
CREATE TABLE IF NOT EXISTS experiment_assignments (
    customer_id BIGINT NOT NULL,
    arm VARCHAR NOT NULL,              -- holdout | treatment
    from_date DATE NOT NULL,
    to_date DATE NOT NULL,
    day DATE NOT NULL                  -- = from_date
);

-- The simulator's hidden ground truth (the oracle). Only evaluation reads it;
-- features and the ranker never do. Empty for imported data.
CREATE SCHEMA IF NOT EXISTS sim;

CREATE TABLE IF NOT EXISTS sim.customer_traits (
    customer_id BIGINT NOT NULL,
    visit_rate DOUBLE NOT NULL,        -- expected visits per day (before the calendar)
    basket_mean DOUBLE NOT NULL,       -- exploratory lines of a big trip (mean)
    topup_share DOUBLE NOT NULL,       -- share of trips that are top-ups (about one line)
    promo_sensitivity DOUBLE NOT NULL, -- 0..1
    brand_loyalty DOUBLE NOT NULL,     -- 0..1
    promo_only BOOLEAN NOT NULL,
    discount_blind BOOLEAN NOT NULL,
    response_type VARCHAR NOT NULL,    -- persuadable | lost_cause | sleeping_dog
    response_shift DOUBLE NOT NULL,    -- the customer's own shift of the persuasion logit
    depth_threshold DOUBLE NOT NULL,   -- discounts shallower than this barely count
    extra_units DOUBLE NOT NULL,       -- mean units per line - 1
    trip_spend DOUBLE NOT NULL,        -- expected gross spend of a trip
    shock_key BIGINT NOT NULL,         -- seeds the customer's unobserved daily shocks
    churn_date DATE NOT NULL,          -- no visits from this day
    life_event_date DATE,              -- from this day one category's need changes
    life_event_category VARCHAR,
    life_event_factor DOUBLE,
    day DATE NOT NULL
);

CREATE TABLE IF NOT EXISTS sim.customer_category_traits (
    customer_id BIGINT NOT NULL,
    category VARCHAR NOT NULL,
    preference DOUBLE NOT NULL,        -- base weight of the category (sums to 1)
    drift DOUBLE NOT NULL,             -- amplitude of the slow swing of the taste (log scale)
    phase DOUBLE NOT NULL,             -- its phase (radians)
    favourite_brand VARCHAR NOT NULL,
    day DATE NOT NULL
);

CREATE TABLE IF NOT EXISTS sim.product_traits (
    product_id BIGINT NOT NULL,
    share_in_category DOUBLE NOT NULL, -- chance a popularity-driven purchase in the category is this product
    share_in_brand DOUBLE NOT NULL,    -- the same among the category's products of its brand
    partner_id BIGINT,                 -- its complement (pasta -> sauce), NULL if none
    day DATE NOT NULL
);

-- Each customer's own products: latent-taste weight within the category, and
-- for regularly bought ones the consumption cycle and first stock-out day.
CREATE TABLE IF NOT EXISTS sim.customer_products (
    customer_id BIGINT NOT NULL,
    product_id BIGINT NOT NULL,
    weight DOUBLE NOT NULL,            -- share of the customer's own-set picks in the category
    cycle_days DOUBLE,                 -- days one typical purchase lasts (NULL: not bought regularly)
    first_due DATE,                    -- when the stock held at the start runs out
    day DATE NOT NULL
);

-- Features (metro_assets/features): partition D = the state at the START of D,
-- computed from events dated before D only. See docs/FEATURES.md.
CREATE TABLE IF NOT EXISTS customer_features (
    customer_id BIGINT NOT NULL,
    day DATE NOT NULL,
    segment VARCHAR,
    home_store_id INTEGER,
    recency_days DOUBLE,               -- days since the last order (NULL: no order before D)
    frequency INTEGER,                 -- orders in the 90 days before D
    monetary DOUBLE,                   -- spend in those 90 days
    promo_affinity DOUBLE,             -- share of the 90 days' order lines bought on promo
    avg_basket_size DOUBLE,            -- mean lines per order, 90 days
    category_entropy DOUBLE,           -- Shannon entropy (nats) of line shares by category, 90 days
    top_3_categories VARCHAR,          -- comma-separated, most lines first
    avg_discount_depth_used DOUBLE,    -- mean discount share of the promo lines, 90 days
    days_since_join INTEGER,
    promo_affinity_all DOUBLE,         -- share of all regular lines before D bought on promo (no 90-day cut)
    promo_log_odds DOUBLE,             -- ln((promo lines + 0.5) / (other lines + 0.5)), all regular lines
    redemption_rate DOUBLE             -- (redemptions + 0.5) / (impressions + 10) before D
);

CREATE TABLE IF NOT EXISTS offer_features (
    offer_id BIGINT NOT NULL,
    day DATE NOT NULL,
    product_id BIGINT,
    category VARCHAR,
    brand VARCHAR,
    discount_type VARCHAR,
    discount_depth DOUBLE,             -- share of the shelf price taken off, 0..1
    margin_impact DOUBLE,              -- base_price * margin * discount_depth
    days_until_expiry INTEGER,         -- end_date - D
    historical_redemption_rate DOUBLE, -- smoothed toward the global rate
    impressions_before INTEGER,
    redemptions_before INTEGER,
    product_share_in_category DOUBLE,  -- the product's share of its category's order lines in [D - 90, D),
                                       -- (lines + 1) / (category lines + products known before D + 1)
    product_share_in_brand DOUBLE      -- the same among its category's lines of its brand
);

CREATE TABLE IF NOT EXISTS interaction_features (
    customer_id BIGINT NOT NULL,
    offer_id BIGINT NOT NULL,
    day DATE NOT NULL,
    bought_product_before BOOLEAN,
    days_since_last_purchase_in_category DOUBLE,
    category_affinity_score DOUBLE,
    discount_depth_vs_usual DOUBLE,
    price_sensitivity_match DOUBLE,
    brand_affinity DOUBLE,
    category_line_share DOUBLE,        -- (regular lines in the category + 0.5) / (all regular lines + 10), all history
    log_category_line_share DOUBLE,
    brand_line_share DOUBLE,           -- the offer's brand among the category's regular lines, all history
    days_since_regular_purchase_in_category DOUBLE, -- as above, orders no redemption created
    depth_promo_match DOUBLE,          -- discount depth x the customer's all-history promo share
    embedding_affinity DOUBLE,         -- cosine of the customer's item2vec vector (purchases before D) and the
                                       -- offer's product vector (product_embeddings trained before D); NULL: none
    product_purchase_days DOUBLE,      -- days before D the customer bought the offer's product, all history
    days_since_product_purchase DOUBLE, -- D - the last of them; NULL: never bought
    product_due_ratio DOUBLE,          -- days since the last purchase / the customer's mean gap between them
                                       -- (NULL below 2 purchase days): 1 = due now
    offer_shown_28d DOUBLE,            -- impressions of this offer to the customer in [D - 28, D)
    category_shown_28d DOUBLE          -- impressions of any offer of its category to the customer in [D - 28, D)
);

-- Candidates (metro_assets/candidates): the offers worth ranking for each
-- customer on D, with the first retrieval strategy that proposed each one.
CREATE TABLE IF NOT EXISTS candidate_pool (
    customer_id BIGINT NOT NULL,
    offer_id BIGINT NOT NULL,
    day DATE NOT NULL,
    strategy VARCHAR NOT NULL
);

-- Retrieval (metro_assets/embeddings): item2vec product vectors, one version
-- per training day (materialized with the ranker), trained on purchases before it.
CREATE TABLE IF NOT EXISTS product_embeddings (
    day DATE NOT NULL,                 -- training day: purchases before it only
    product_id BIGINT NOT NULL,
    vector FLOAT[] NOT NULL,           -- skip-gram vector (not normalised)
    purchases INTEGER NOT NULL         -- order lines of the product in the training sequences
);

-- How much each retrieval strategy earns: the pool's recall of the week after
-- D with every strategy and with each one left out, at the same pool size.
CREATE TABLE IF NOT EXISTS retrieval_summary (
    day DATE NOT NULL,
    strategy_set VARCHAR NOT NULL,     -- 'all', 'without <strategy>', or 'eligible' (every eligible offer)
    strategies VARCHAR[] NOT NULL,     -- the strategies the pool was built from
    max_candidates INTEGER,            -- the pool's cap per customer (NULL for 'eligible')
    pairs BIGINT NOT NULL,             -- (customer, offer) pairs of that pool, over the customers with a label
    redemptions BIGINT NOT NULL,       -- distinct (customer, offer) redemptions in [D, D + 7) by D's customers
    redemptions_found BIGINT NOT NULL,
    redemption_recall DOUBLE,          -- redemptions_found / redemptions (NULL without redemptions)
    purchases BIGINT NOT NULL,         -- (customer, eligible offer) pairs whose product the customer bought in [D, D + 7)
    purchases_found BIGINT NOT NULL,
    purchase_recall DOUBLE,
    label_days INTEGER NOT NULL        -- days of the label window the warehouse holds (7 when complete)
);

-- Ranking. `model_versions` holds every model kind trained for a retrain day (the
-- `ranker_model` asset); the selected one serves. Models are text (LightGBM's
-- model format, the logistic regression as JSON, Wide & Deep as JSON with base64
-- safetensors weights), so they travel with the data.
CREATE TABLE IF NOT EXISTS model_versions (
    model_version VARCHAR NOT NULL,    -- '<day>-<kind>'
    day DATE NOT NULL,                 -- training day: trained on labels that closed before it
    kind VARCHAR NOT NULL,             -- lightgbm | logistic_regression | blend | wide_deep
    selected BOOLEAN NOT NULL,         -- the version that serves
    model VARCHAR NOT NULL,
    features VARCHAR[] NOT NULL,       -- feature columns, in model order
    train_start DATE NOT NULL,         -- impression days [train_start, validation_start) train,
    validation_start DATE NOT NULL,    -- [validation_start, train_end) validate
    train_end DATE NOT NULL,
    negative_sampling_rate DOUBLE NOT NULL,  -- share of negatives kept; scores are corrected for it
    train_rows INTEGER NOT NULL,
    train_positives INTEGER NOT NULL,
    validation_rows INTEGER NOT NULL,
    validation_positives INTEGER NOT NULL,
    validation_auc DOUBLE,             -- NULL when the validation week has one class only
    validation_log_loss DOUBLE,
    importances VARCHAR,               -- JSON: gain share (lightgbm), standardised coefficient or mean share (blend)
    selection_reason VARCHAR,
    trained_at TIMESTAMP DEFAULT current_timestamp,
    train_seconds DOUBLE,              -- wall-clock training time of this kind (a blend: its parts'; the comparison table)
    validation_qini DOUBLE,            -- uplift learners: Qini on the validation weeks' randomised units
    validation_grouped_auc DOUBLE,     -- rankers: mean per-customer AUC of the validation weeks' shown offers (the selection rule)
    validation_ndcg_at_10 DOUBLE,      -- rankers: mean per-customer NDCG@10 of the same (reported, not read by the rule)
    validation_ranking_customers INTEGER,  -- rankers: customers with a redeemed and a non-redeemed shown offer
    best_uplift BOOLEAN                -- uplift learners: the best of the day by validation Qini
);

-- Each customer's top offers for a run date, scored by the newest model trained on or before it.
CREATE TABLE IF NOT EXISTS recommendations (
    run_date DATE NOT NULL,
    customer_id BIGINT NOT NULL,
    offer_id BIGINT NOT NULL,
    score DOUBLE NOT NULL,             -- the objective's value that ranked it (METRO_OBJECTIVE): p_redeem, or
                                       -- the expected incremental margin of the offer at position 1
    rank INTEGER NOT NULL,             -- 1 = best
    strategy VARCHAR NOT NULL,         -- the candidate strategy that retrieved the offer
    model_version VARCHAR NOT NULL,
    reasons VARCHAR[],                 -- why this offer: 1-3 plain phrases, strongest first (ranking/reasons.py); NULL: written before reasons
    created_at TIMESTAMP DEFAULT current_timestamp,
    p_redeem DOUBLE,                   -- calibrated P(redemption within 7 days), the ranker's
    uplift DOUBLE                      -- predicted incremental purchase probability (NULL: no uplift model ran)
);

-- Monitoring (metro_assets/monitoring). See docs/EVALUATION.md and docs/DRIFT.md.
-- Offline evaluation of a run date once its label window [run_date, run_date + 7)
-- is in the warehouse: one row per (policy, metric), long form. Policies: model
-- (what served), lightgbm, logistic_regression, wide_deep, blend, random, popularity,
-- segment_popularity, legacy, affinity_rule, buy_again, oracle,
-- model_minus_<baseline> (the paired difference of the served model against a
-- baseline) and <kind>_minus_lightgbm (each other model kind against LightGBM:
-- expected redemptions and oracle share). A metric whose inputs are missing (no simulator truth or no
-- logged propensities, as for imported data) has no row.
CREATE TABLE IF NOT EXISTS offline_evaluation (
    run_date DATE NOT NULL,
    policy VARCHAR NOT NULL,
    metric VARCHAR NOT NULL,           -- expected_redemptions_at_10, ..., snips_redemptions_at_10, ndcg_at_10, ... (docs/EVALUATION.md)
    value DOUBLE NOT NULL,             -- per evaluated customer
    ci_low DOUBLE,                     -- 95% bootstrap interval over customers (NULL for counts)
    ci_high DOUBLE,
    created_at TIMESTAMP DEFAULT current_timestamp
);

-- What the pooled evaluation needs of a recorded run date (written by offline_evaluation, with its rows):
-- per policy, sums over the pool's customers of per-customer values; replicate 0 unweighted, replicates
-- 1..400 under Poisson(1) bootstrap weights keyed on (METRO_SEED, replicate, customer_id), the same on
-- every run date. Every pooled metric is a ratio of these sums (docs/EVALUATION.md, "Pooled evaluation").
-- A family whose inputs are missing (no simulator truth, no propensities) is NULL.
CREATE TABLE IF NOT EXISTS evaluation_sums (
    run_date DATE NOT NULL,
    policy VARCHAR NOT NULL,
    replicate INTEGER NOT NULL,        -- 0 = the plain sums; 1.. = bootstrap replicates
    customers DOUBLE,                  -- pool customers
    expected DOUBLE,                   -- causal: expected, incremental redemptions, incremental margin, discount
    incremental DOUBLE,
    margin DOUBLE,
    discount DOUBLE,
    oracle_expected DOUBLE,            -- the oracle's expected redemptions (denominator of oracle_share)
    within DOUBLE,                     -- expected redemptions within the offers' caps, and the oracle's within caps
    oracle_within DOUBLE,
    evaluated DOUBLE,                  -- customers with a redemption in [D, D + 7) (logged outcomes average over them)
    ndcg DOUBLE,
    mrr DOUBLE,
    precision DOUBLE,
    recall DOUBLE,
    redeemed DOUBLE,
    purchased DOUBLE,                  -- share of the top 10 whose product the customer bought in [D, D + 7)
    logged DOUBLE,                     -- off-policy: customers in the log, lists, slots, live slots and weight sums
    lists DOUBLE,
    slots DOUBLE,
    live DOUBLE,
    wr DOUBLE,
    w0 DOUBLE,
    w DOUBLE,
    w2 DOUBLE
);

-- The pooled evaluation of run date D: every recorded run date in the METRO_EVALUATION_POOL_WEEKS weeks up
-- to D, in offline_evaluation's long form; intervals from a bootstrap over customers and run dates.
-- customers_* count pooled customer-dates; run_dates counts the run dates pooled.
CREATE TABLE IF NOT EXISTS evaluation_summary (
    run_date DATE NOT NULL,
    policy VARCHAR NOT NULL,
    metric VARCHAR NOT NULL,
    value DOUBLE NOT NULL,             -- per pooled customer-date (as offline_evaluation's per customer)
    ci_low DOUBLE,                     -- 95% interval, customers and run dates resampled (NULL for counts)
    ci_high DOUBLE,
    created_at TIMESTAMP DEFAULT current_timestamp
);

-- PSI of the monitored features and of the served scores on a run date against
-- the training baseline of the model version that served it.
CREATE TABLE IF NOT EXISTS drift_report (
    run_date DATE NOT NULL,
    feature VARCHAR NOT NULL,          -- recency_days, ..., discount_depth, or score (the served top-k scores)
    psi DOUBLE NOT NULL,
    verdict VARCHAR NOT NULL,          -- stable (< METRO_PSI_MODERATE) | moderate | major (>= METRO_PSI_MAJOR)
    baseline_rows INTEGER NOT NULL,
    current_rows INTEGER NOT NULL,
    model_version VARCHAR NOT NULL,    -- the version that served the run date
    baseline_day DATE NOT NULL,        -- its training day: the baseline is the state as of that day
    alert BOOLEAN NOT NULL,            -- the run date's alert (the same on each of its rows)
    created_at TIMESTAMP DEFAULT current_timestamp
);

-- Sequence model (metro_assets/sequence, extra [deep]): SASRec trained on a
-- retrain day from purchases before `trained_before`; weights without pickle.
-- Figures: leave-last-basket-out Hit@10 / NDCG@10 (docs/RETRIEVAL.md).
CREATE TABLE IF NOT EXISTS sequence_models (
    model_version VARCHAR NOT NULL,    -- '<day>-sasrec'
    day DATE NOT NULL,                 -- retrain day
    trained_before DATE NOT NULL,      -- learnt only from purchases dated before this day
    weights BLOB NOT NULL,             -- safetensors state_dict
    vocab BLOB NOT NULL,               -- .npy int64: product ids of items 1..V
    config VARCHAR NOT NULL,           -- JSON: shape and training knobs
    items INTEGER NOT NULL,
    customers INTEGER NOT NULL,
    events BIGINT NOT NULL,            -- (customer, day, product) purchases learnt from
    best_epoch INTEGER NOT NULL,       -- the epoch kept (best validation NDCG@10)
    seconds_per_epoch DOUBLE NOT NULL,
    epochs VARCHAR,                    -- JSON: loss, seconds and validation figures per epoch
    sasrec_hit_at_10 DOUBLE,           -- next purchase, leave-last-basket-out, all evaluated customers
    sasrec_ndcg_at_10 DOUBLE,
    popularity_hit_at_10 DOUBLE,
    popularity_ndcg_at_10 DOUBLE,
    buy_again_hit_at_10 DOUBLE,
    buy_again_ndcg_at_10 DOUBLE,
    evaluated_customers INTEGER,
    trained_at TIMESTAMP DEFAULT current_timestamp
);

-- Issue 18: every policy driven through the same simulated days of one scenario
-- (bandit_simulation, partitioned by scenario: steady, cold_start, black_friday),
-- one row per (scenario, policy, day). Expected figures come from the simulator's
-- truth for the lists shown (p_redeem x the slot's attention); regret is the
-- oracle's expected redemptions in the same state minus the policy's (docs/BANDIT.md).
CREATE TABLE IF NOT EXISTS bandit_simulation (
    scenario VARCHAR NOT NULL,         -- steady | cold_start (50 offers launched mid-period) | black_friday (a shock mid-period)
    policy VARCHAR NOT NULL,           -- thompson | epsilon_greedy | batch | random | oracle
    day DATE NOT NULL,
    customers_reached INTEGER NOT NULL,  -- customers who came that day (the same for every policy)
    impressions INTEGER NOT NULL,
    redemptions INTEGER NOT NULL,      -- realized that day (of offers shown that day or the 6 before)
    expected_redemptions DOUBLE NOT NULL,
    oracle_expected_redemptions DOUBLE NOT NULL,  -- the best lists under the same rule, in this policy's state
    regret DOUBLE NOT NULL,            -- oracle_expected_redemptions - expected_redemptions
    expected_incremental_redemptions DOUBLE NOT NULL,
    expected_incremental_margin DOUBLE NOT NULL,  -- spend effect x margin rate - discount of every expected redemption
    new_offer_impressions INTEGER NOT NULL,       -- of the cold_start scenario's launched offers
    new_offer_redemptions INTEGER NOT NULL,
    new_offer_expected_redemptions DOUBLE NOT NULL,
    cumulative_regret DOUBLE NOT NULL,
    cumulative_redemptions INTEGER NOT NULL,
    cumulative_expected_redemptions DOUBLE NOT NULL,
    cumulative_incremental_margin DOUBLE NOT NULL,
    seed BIGINT NOT NULL,              -- the world's seed (METRO_SEED)
    created_at TIMESTAMP DEFAULT current_timestamp
);

-- METRO_POLICY=thompson (issue 18): day D's Laplace posterior of a logistic
-- regression over the ranker's features, updated from the log before D
-- (bandit_posterior); recommendations of D are sampled from it.
CREATE TABLE IF NOT EXISTS bandit_posteriors (
    day DATE NOT NULL,
    model_version VARCHAR NOT NULL,    -- the logistic-regression ranker that is its prior and standardisation
    features VARCHAR[] NOT NULL,       -- the ranker's features, in model order
    posterior VARCHAR NOT NULL,        -- JSON: medians, mean, scale (the ranker's design), coef_mean, coef_cov
    impressions INTEGER NOT NULL,      -- impressions of the window (first showing per customer and offer)
    positives INTEGER NOT NULL,        -- of them, redeemed before D
    rows_fitted INTEGER NOT NULL,      -- after negative sampling
    created_at TIMESTAMP DEFAULT current_timestamp
);
