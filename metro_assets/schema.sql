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

-- The simulator's hidden ground truth (the oracle). Only evaluation reads it;
-- features and the ranker never do. Empty for imported data.
CREATE SCHEMA IF NOT EXISTS sim;

CREATE TABLE IF NOT EXISTS sim.customer_traits (
    customer_id BIGINT NOT NULL,
    visit_rate DOUBLE NOT NULL,        -- expected visits per day
    basket_mean DOUBLE NOT NULL,       -- expected lines per order
    promo_sensitivity DOUBLE NOT NULL, -- 0..1
    brand_loyalty DOUBLE NOT NULL,     -- 0..1, share of purchases from the favourite brand
    promo_only BOOLEAN NOT NULL,
    discount_blind BOOLEAN NOT NULL,
    day DATE NOT NULL
);

CREATE TABLE IF NOT EXISTS sim.customer_category_traits (
    customer_id BIGINT NOT NULL,
    category VARCHAR NOT NULL,
    preference DOUBLE NOT NULL,        -- share of purchases in the category (sums to 1)
    favourite_brand VARCHAR NOT NULL,
    day DATE NOT NULL
);

CREATE TABLE IF NOT EXISTS sim.product_traits (
    product_id BIGINT NOT NULL,
    share_in_category DOUBLE NOT NULL, -- chance a purchase in the category is this product
    share_in_brand DOUBLE NOT NULL,    -- the same among the category's products of its brand
    day DATE NOT NULL
);
