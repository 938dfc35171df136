"""The simulator's ground truth: how likely a customer is to redeem an offer.

These pure NumPy functions are the only definition of the redemption model.
The simulator draws redemptions from them; evaluation calls them (through
:func:`metro_assets.simulation.truth.true_probabilities`) to score any
ranking against the best possible one. The ranker never sees them.

A redemption happens either because the customer would have bought the
product anyway in the week (``p_base``) or because the offer persuaded them
(``uplift``)::

    p_redeem = p_base + (1 - p_base) * uplift

Examples
--------
>>> import numpy as np
>>> depth = discount_depth(np.array(["percentage", "fixed_amount", "bogo"]),
...                        np.array([20.0, 1.0, 1.0]), np.array([4.0, 4.0, 4.0]))
>>> depth.round(3).tolist()
[0.2, 0.25, 0.5]
"""

from __future__ import annotations

import numpy as np

N_CATEGORIES = 20
WEEK = 7.0


def discount_depth(discount_type: np.ndarray, discount_value: np.ndarray, base_price: np.ndarray) -> np.ndarray:
    """Share of the shelf price an offer takes off, for all three discount types.

    percentage: value / 100; fixed_amount: value / base price (at most 1);
    bogo (``value`` free items per item bought): value / (1 + value).
    Unknown types or values give NaN.
    """
    kind = np.asarray(discount_type).astype(str)
    value = np.asarray(discount_value, dtype=float)
    price = np.asarray(base_price, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = np.select(
            [kind == "percentage", kind == "fixed_amount", kind == "bogo"],
            [value / 100.0, np.minimum(value / price, 1.0), value / (1.0 + value)],
            default=np.nan,
        )
    return np.clip(depth, 0.0, 1.0)


def recency_effect(days_since_category: np.ndarray) -> np.ndarray:
    """Logit bonus for a recent purchase in the offer's category (NaN = never)."""
    d = np.asarray(days_since_category, dtype=float)
    return np.select([d <= 14, d <= 35, d <= 70], [0.55, 0.15, -0.25], default=-0.6)


def uplift_probability(
    depth: np.ndarray,
    preference: np.ndarray,
    promo_sensitivity: np.ndarray,
    days_since_category: np.ndarray,
    brand_match: np.ndarray,
    brand_loyalty: np.ndarray,
    promo_only: np.ndarray,
    discount_blind: np.ndarray,
    shock: np.ndarray | float = 0.0,
) -> np.ndarray:
    """Chance the offer itself makes the customer buy within a week.

    Driven by discount depth (more so for promo-sensitive customers), the
    customer's taste for the offer's category, their hidden promo
    sensitivity, recency in the category and loyalty to the offer's brand.
    Discount-blind customers are barely moved; promo-only customers are
    moved most.
    """
    depth = np.nan_to_num(np.asarray(depth, dtype=float), nan=0.15)
    sens = np.asarray(promo_sensitivity, dtype=float)
    logit = (
        -4.7
        + 3.4 * depth * (0.35 + sens)
        + 0.95 * np.log(np.maximum(preference, 1e-4) * N_CATEGORIES)
        + 1.7 * sens
        + recency_effect(days_since_category)
        + 1.1 * np.asarray(brand_match, dtype=float) * brand_loyalty
        + shock
    )
    p = 1.0 / (1.0 + np.exp(-logit))
    p = np.where(promo_only, np.minimum(1.6 * p, 0.95), p)
    return np.where(discount_blind, 0.1 * p, p)


def baseline_purchase_probability(
    visit_rate: np.ndarray, basket_mean: np.ndarray, preference: np.ndarray, product_share: np.ndarray
) -> np.ndarray:
    """Chance the customer buys the product within a week without any offer."""
    weekly_buys = WEEK * visit_rate * basket_mean * preference * product_share
    return 1.0 - np.exp(-weekly_buys)


def product_share(brand_match: np.ndarray, brand_loyalty: np.ndarray, share_in_category: np.ndarray,
                  share_in_brand: np.ndarray) -> np.ndarray:
    """Chance one purchase in the category is this product, given brand loyalty."""
    return (1.0 - brand_loyalty) * share_in_category + brand_loyalty * np.where(brand_match, share_in_brand, 0.0)


def redemption_probability(p_base: np.ndarray, uplift: np.ndarray) -> np.ndarray:
    """Chance of a redemption within a week of being shown the offer."""
    return p_base + (1.0 - p_base) * uplift
