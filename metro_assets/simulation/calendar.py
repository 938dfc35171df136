"""Temporal patterns: weekly cycle, payday, seasons and holidays.

Every function takes an array of dates and returns multipliers, so a whole
history is computed in one vectorised call.

Examples
--------
>>> import numpy as np
>>> days = np.array(["2025-11-28", "2025-12-02"], dtype="datetime64[D]")
>>> in_black_friday_week(days).tolist()
[True, False]
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np

from metro_assets.simulation.catalog import CATEGORY_INDEX, CATEGORY_NAMES

# Monday..Sunday: the weekend peak (Saturday highest).
WEEKDAY_VISITS = np.array([0.80, 0.82, 0.85, 0.90, 1.15, 1.60, 0.88])


def easter(year: int) -> date:
    """Gregorian Easter Sunday (the anonymous algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l_) // 451
    month, day = divmod(h + l_ - 7 * m + 114, 31)
    return date(year, month, day + 1)


def black_friday(year: int) -> date:
    """The Friday after the fourth Thursday of November."""
    first = date(year, 11, 1)
    thursday = first + timedelta(days=(3 - first.weekday()) % 7 + 21)
    return thursday + timedelta(days=1)


def _years(days: np.ndarray) -> range:
    years = days.astype("datetime64[Y]").astype(int) + 1970
    return range(int(years.min()), int(years.max()) + 1)


def _within(days: np.ndarray, starts: list[date], length: int) -> np.ndarray:
    out = np.zeros(days.shape, dtype=bool)
    for start in starts:  # one iteration per year, not per row
        s = np.datetime64(start, "D")
        out |= (days >= s) & (days < s + length)
    return out


def in_black_friday_week(days: np.ndarray) -> np.ndarray:
    """Black Friday and the six days after it (through Cyber Monday and beyond)."""
    return _within(days, [black_friday(y) for y in _years(days)], 7)


def in_christmas_run(days: np.ndarray) -> np.ndarray:
    """December 14-24, the Christmas shopping run."""
    return _within(days, [date(y, 12, 14) for y in _years(days)], 11)


def in_easter_week(days: np.ndarray) -> np.ndarray:
    """The eight days up to Easter Sunday."""
    return _within(days, [easter(y) - timedelta(days=7) for y in _years(days)], 8)


def in_bbq_season(days: np.ndarray) -> np.ndarray:
    """Summer barbecue season: June through August."""
    month = days.astype("datetime64[M]").astype(int) % 12 + 1
    return (month >= 6) & (month <= 8)


def is_payday(days: np.ndarray) -> np.ndarray:
    """The last three days of a month and the first day of the next."""
    month_start = days.astype("datetime64[M]").astype("datetime64[D]")
    next_month = (days.astype("datetime64[M]") + 1).astype("datetime64[D]")
    return (days >= next_month - 3) | (days == month_start)


def visit_multiplier(days: np.ndarray) -> np.ndarray:
    """How many more shoppers than an ordinary day visit (weekly, payday, holidays)."""
    weekday = (days.astype("datetime64[D]").astype(int) + 3) % 7  # 1970-01-01 was a Thursday
    m = WEEKDAY_VISITS[weekday].copy()
    m *= np.where(is_payday(days), 1.25, 1.0)
    m *= np.where(in_christmas_run(days), 1.55, 1.0)
    m *= np.where(in_easter_week(days), 1.25, 1.0)
    m *= np.where(in_black_friday_week(days), 1.30, 1.0)
    m *= np.where(in_bbq_season(days) & (weekday >= 4), 1.10, 1.0)
    return m


def promo_boost(days: np.ndarray) -> np.ndarray:
    """Extra chance that a line is bought on promotion (store-wide sales)."""
    return np.where(in_black_friday_week(days), 0.15, 0.0)


_SEASON_CATEGORIES = {
    "christmas": {"alcohol": 2.2, "confectionery": 2.5, "meat": 1.5, "baking": 2.0, "deli": 1.6, "seafood": 1.5},
    "easter": {"confectionery": 2.2, "baking": 1.8, "dairy": 1.4, "meat": 1.3},
    "bbq": {"meat": 1.6, "bbq_grill": 3.5, "beverages": 1.5, "alcohol": 1.4},
    "black_friday": {"household": 1.8, "personal_care": 1.7, "alcohol": 1.4, "coffee_tea": 1.4},
}


def category_multiplier(days: np.ndarray) -> np.ndarray:
    """Per day and category, how much more the category sells: shape (days, categories)."""
    out = np.ones((len(days), len(CATEGORY_NAMES)))
    for season, flag in (
        ("christmas", in_christmas_run(days)),
        ("easter", in_easter_week(days)),
        ("bbq", in_bbq_season(days)),
        ("black_friday", in_black_friday_week(days)),
    ):
        for cat, w in _SEASON_CATEGORIES[season].items():
            out[flag, CATEGORY_INDEX[cat]] *= w
    return out
