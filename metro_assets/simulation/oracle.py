"""The simulator's ground truth: what showing an offer does to a customer.

These pure NumPy functions are the only definition of the response model.
The simulator draws its events from them and evaluation calls them (through
:func:`metro_assets.simulation.truth.true_probabilities`) to score any ranking
against the best possible one. The ranker never sees them.

World v2, for one (customer, offer) pair on day D:

* **would buy anyway** (``p_base``): the chance the customer buys the offer's
  product within 7 days without the offer. Each day the customer visits with
  probability ``pv``; a visit is a top-up trip (share ``topup``) or a big shop.
  A *regular* product (one with a consumption cycle) is bought at a visit with
  a chance that rises as the household stock runs out (``stock_pressure`` of
  the days of stock left); any product can also be picked by the trip's
  exploratory lines (Poisson with a Gamma-distributed mean, so a visit misses
  the product with probability ``(1 + lines * line_prob / shape) ** -shape``;
  for a regular product these picks are thinned by the same stock pressure).
* **persuasion** (``p_persuade``): the chance the offer itself makes the
  customer buy, a logit of discount depth (below the customer's own depth
  threshold it barely counts), promo sensitivity (stronger near month end),
  taste for the product, loyalty x brand match, the customer's response type,
  fatigue (earlier impressions of the offer and of its category in 4 weeks)
  and an unobserved daily shock per customer.
* a customer who notices the offer redeems it if they buy the product inside
  the offer's window anyway (a sure thing) or are persuaded;
  ``p_redeem = 1 - (1 - p_base_window) * (1 - p_persuade)``.
* sleeping dogs who notice an offer visit less for a week (``DETERRENCE``),
  so showing them anything lowers what they buy: negative uplift and spend.
  The lost trips are a **customer-level** effect: the world deters a sleeping
  dog once when it notices at least one offer of the day's list, however many
  it notices. So ``lost_spend`` (the week's gross spend of the skipped trips,
  given the customer is deterred) is not a per-offer figure: a list is
  charged ``lost_spend x notice_any(positions)`` once per customer-day
  (:func:`notice_any`), and ``spend_effect`` holds only the product's own
  extra sales.

Noticing: a slot at position r is noticed with ``position_attention(r)`` times
the channel's attention; the figures returned for "position 1" average over
the channel mix, so the value of a slot at position r is
``position_attention(r)`` times the value at position 1.

Examples
--------
>>> import numpy as np
>>> depth = discount_depth(np.array(["percentage", "fixed_amount", "bogo"]),
...                        np.array([20.0, 1.0, 1.0]), np.array([4.0, 4.0, 4.0]))
>>> depth.round(3).tolist()
[0.2, 0.25, 0.5]
>>> position_attention(np.array([1, 2, 10])).round(2).tolist()
[1.0, 0.71, 0.32]
"""

from __future__ import annotations

import numpy as np

N_CATEGORIES = 20
WEEK = 7
# Attention of a channel (email, app, in-store), relative to the best.
CHANNEL_ATTENTION = np.array([0.75, 0.95, 1.0])
CHANNEL_SHARES = np.array([0.45, 0.35, 0.20])
MEAN_CHANNEL_ATTENTION = float(CHANNEL_ATTENTION @ CHANNEL_SHARES)
H_TOPUP, H_BIG = 0.25, 0.92  # chance a due regular product is bought at a top-up / big trip
TOPUP_LINES = 1.0            # exploratory lines of a top-up trip (mean)
BASKET_SHAPE = 0.9           # Gamma shape of a trip's exploratory lines (heavy tail)
NOVELTY = 0.75               # share of exploratory lines picked by popularity, outside the customer's own set
COMPLEMENT = 0.35            # chance a line brings its complement (pasta -> sauce) into the basket
DETERRENCE = 0.35            # sleeping dogs visit this much less for a week after noticing an offer
STOCK_SCALE = 1.5            # days: how sharply the buying chance rises as stock runs out
RESPONSE_SHIFT = {"persuadable": 0.6, "lost_cause": -2.6, "sleeping_dog": -2.2}
RESPONSE_TYPES = tuple(RESPONSE_SHIFT)
SHOCK_SCALE = 0.35           # logistic scale of the unobserved daily shock on persuasion


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


def position_attention(position: np.ndarray) -> np.ndarray:
    """Relative attention of slot ``position`` (1 = top) of a shown list: ``position ** -0.5``."""
    return np.asarray(position, dtype=float) ** -0.5


def notice_any(positions: np.ndarray, owner: np.ndarray, n: int | None = None) -> np.ndarray:
    """Chance a customer notices at least one offer of the list shown to it, per customer (the world's rule).

    The world notices the slot at position r with ``position_attention(r)``
    times the attention of the list's channel (one channel per list, drawn with
    :data:`CHANNEL_SHARES`), independently per slot. So a list with positions
    r_1..r_n is noticed at all with chance
    ``sum_c share_c * (1 - prod_i (1 - attention(r_i) * channel_c))``: 1 offer
    gives ``MEAN_CHANNEL_ATTENTION`` x attention, more offers approach 1, never more.

    Parameters
    ----------
    positions : (m,) array
        The position of each shown offer.
    owner : (m,) int array
        The customer (0..n-1) each offer is shown to.
    n : int, optional
        Customers (default: ``owner.max() + 1``); a customer without offers gets 0.

    Examples
    --------
    >>> float(notice_any(np.array([1]), np.array([0]))[0]) == MEAN_CHANNEL_ATTENTION
    True
    >>> notice_any(np.array([1, 2, 3, 1]), np.array([0, 0, 0, 1]), 3).round(3).tolist()
    [0.969, 0.89, 0.0]
    """
    owner = np.asarray(owner, dtype=np.int64)
    n = int(owner.max()) + 1 if n is None and len(owner) else (n or 0)
    attention = position_attention(positions)
    miss = np.zeros(n)
    for share, channel in zip(CHANNEL_SHARES, CHANNEL_ATTENTION):  # three channels, not rows
        log_miss = np.bincount(owner, weights=np.log1p(-np.minimum(attention * channel, 1.0 - 1e-12)), minlength=n)
        miss += share * np.exp(log_miss)
    seen = 1.0 - miss
    return np.where(np.bincount(owner, minlength=n) > 0, seen, 0.0)


def stock_pressure(days_of_stock: np.ndarray) -> np.ndarray:
    """Chance scale of buying a regular product at a visit, by the days of stock left (NaN: not regular)."""
    s = np.asarray(days_of_stock, dtype=float)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.where(np.isnan(s), 0.0, 1.0 / (1.0 + np.exp(s / STOCK_SCALE)))


def visit_miss(line_prob: np.ndarray, lines: np.ndarray) -> np.ndarray:
    """Chance a trip's exploratory lines (Gamma-Poisson with mean ``lines``) miss the product."""
    return (1.0 + lines * line_prob / BASKET_SHAPE) ** -BASKET_SHAPE


def buy_at_visit(due_in: np.ndarray, line_prob: np.ndarray, topup: np.ndarray, lines: np.ndarray) -> np.ndarray:
    """Chance a visit buys the product; arrays broadcast to (pairs, days)."""
    q = stock_pressure(due_in)
    # a household with stock of a regular product rarely picks it on impulse either
    line_prob = line_prob * np.where(np.isnan(due_in), 1.0, q)
    miss_top = (1.0 - H_TOPUP * q) * visit_miss(line_prob, TOPUP_LINES)
    miss_big = (1.0 - H_BIG * q) * visit_miss(line_prob, lines)
    return 1.0 - (topup * miss_top + (1.0 - topup) * miss_big)


def purchase_probability(pv: np.ndarray, due_rel: np.ndarray, line_prob: np.ndarray, topup: np.ndarray,
                         lines: np.ndarray, days: np.ndarray | int = WEEK) -> np.ndarray:
    """Chance of at least one purchase of the product in the first ``days`` of the window.

    Parameters
    ----------
    pv : (n, 7) array
        Chance the customer visits on each day of the window (0 when inactive).
    due_rel : (n,) array
        Day (relative to the window's first day) the stock of a regular
        product runs out; NaN for products the customer does not buy regularly.
    line_prob : (n, 7) array
        Chance one exploratory line of a trip is the product (with complements).
    topup, lines : (n,) arrays
        Share of top-up trips; exploratory lines of a big trip (mean), (n, 7) allowed.
    days : int or (n,) array
        How many days of the window count.
    """
    k = np.arange(pv.shape[1])
    due_in = np.asarray(due_rel, dtype=float)[:, None] - k[None, :]
    lines = np.asarray(lines, dtype=float)
    lines = lines if lines.ndim == 2 else lines[:, None]
    p = pv * buy_at_visit(due_in, line_prob, np.asarray(topup, dtype=float)[:, None], lines)
    counted = k[None, :] < np.asarray(days)[..., None] if np.ndim(days) else k[None, :] < days
    return 1.0 - np.prod(np.where(counted, 1.0 - p, 1.0), axis=1)


def persuasion_probability(depth, depth_threshold, affinity, promo_sensitivity, response_shift, brand_match,
                           brand_loyalty, month_end, fatigue_offer, fatigue_category, shock):
    """Chance the offer itself makes a customer who noticed it buy the product within its window."""
    depth = np.nan_to_num(np.asarray(depth, dtype=float), nan=0.15)
    sens = np.asarray(promo_sensitivity, dtype=float)
    felt = np.where(depth >= depth_threshold, depth, 0.25 * depth)  # a per-customer depth threshold
    logit = (
        -3.1
        + 5.0 * felt * (0.4 + sens)
        + 0.75 * np.log(np.maximum(affinity, 0.02))
        + 1.0 * sens * (1.0 + 0.8 * np.asarray(month_end, dtype=float))
        + response_shift
        + 1.0 * np.asarray(brand_match, dtype=float) * brand_loyalty
        - 0.45 * np.minimum(fatigue_offer, 4)
        - 0.12 * np.minimum(fatigue_category, 8)
        + shock
    )
    return 1.0 / (1.0 + np.exp(-logit))


def popular_share(brand_match: np.ndarray, brand_loyalty: np.ndarray, share_in_category: np.ndarray,
                  share_in_brand: np.ndarray) -> np.ndarray:
    """Chance a popularity pick in the category is this product: loyal picks stay with the favourite brand."""
    return ((1.0 - brand_loyalty) * share_in_category
            + brand_loyalty * np.where(brand_match, share_in_brand, 0.0))


def affinity(line_prob_today: np.ndarray) -> np.ndarray:
    """Taste for the product: its exploratory line probability relative to an ordinary product (1/60)."""
    return np.asarray(line_prob_today, dtype=float) * 60.0


def daily_shock(shock_key: np.ndarray, day_number: np.ndarray) -> np.ndarray:
    """Unobserved per-(customer, day) shock on persuasion: a logistic draw hashed from (key, day)."""
    z = np.asarray(shock_key, dtype=np.uint64) + np.asarray(day_number, dtype=np.uint64) * np.uint64(
        0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    u = ((z >> np.uint64(11)).astype(np.float64) + 0.5) / float(2**53)
    return SHOCK_SCALE * np.log(u / (1.0 - u))


def evaluate(x: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every truth figure of a set of pairs from their inputs (see :mod:`metro_assets.simulation.truth`).

    Returns ``p_redeem``, ``p_base``, ``uplift``, ``spend_effect`` (all at
    position 1, averaged over the channel mix), ``lost_spend`` (a sleeping
    dog's gross spend of the week's skipped trips once it is deterred: a
    customer-level figure, charged once per list with :func:`notice_any`, 0
    for other customers), ``p_persuade`` (given noticed) and
    ``p_redeem_noticed`` (given noticed).
    """
    dog = np.asarray(x["response_type"]) == "sleeping_dog"
    pv = x["pv"]
    args = (x["due_rel"], x["line_prob"], x["topup"], x["lines"])
    p_base = purchase_probability(pv, *args)
    pv_shown = np.where(dog[:, None], pv * (1.0 - DETERRENCE), pv)
    p_shown = purchase_probability(pv_shown, *args)
    p_shown_window = purchase_probability(pv_shown, *args, days=x["window"])
    persuade = persuasion_probability(
        x["depth"], x["depth_threshold"], affinity(x["line_prob"][:, 0]), x["promo_sensitivity"],
        x["response_shift"], x["brand_match"], x["brand_loyalty"], x["month_end"], x["fatigue_offer"],
        x["fatigue_category"], x["shock"])
    persuade = np.where(x["window"] > 0, persuade, 0.0)
    redeem_noticed = 1.0 - (1.0 - p_shown_window) * (1.0 - persuade)
    buy_noticed = 1.0 - (1.0 - p_shown) * (1.0 - persuade)
    a = MEAN_CHANNEL_ATTENTION
    uplift = a * (buy_noticed - p_base)
    # a sleeping dog's lost week of trips (every trip's spend), beyond the product itself: it happens once
    # per customer-day, when any offer of the list is noticed, so it is not part of the offer's own effect
    lost_spend = np.where(dog, DETERRENCE * pv.sum(axis=1) * x["trip_spend"], 0.0)
    spend_effect = uplift * x["base_price"] * x["units"]
    return {
        "p_redeem": a * redeem_noticed,
        "p_base": p_base,
        "uplift": uplift,
        "spend_effect": spend_effect,
        "lost_spend": lost_spend,
        "p_persuade": persuade,
        "p_redeem_noticed": redeem_noticed,
    }
