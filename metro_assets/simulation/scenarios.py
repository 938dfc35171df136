"""Behaviour scenarios: the shocks ``METRO_SCENARIO`` applies to some days of the simulation.

``black_friday`` is a doorbuster weekend after the history (by default the
three days after the run date, 2026-02-12..2026-02-14 at the default scale):
customers come far more often, fill much bigger baskets, buy most lines on
promotion and redeem offers more readily. Days outside the range are
simulated exactly as without the scenario (every draw is seeded per day).

Why so strong: the monitored customer features are 90-day aggregates, so
three days at the strength of the simulator's own Black Friday week (about
1.5x visits) move them by a few percent only, which no drift monitor should
call a shift. The magnitudes below (6x visits, 3x lines per order, half of
the lines on promotion, +1.5 on the redemption logit: a doorbuster weekend)
are the smallest round ones with which, at the default scale, the report of
the day after the shock alerts with a clear margin: measured on 2026-02-15
against a model trained on 2026-02-09, recency PSI 0.77 and promo affinity
0.42 (major), basket size 0.22 (moderate), and the served scores 0.38 (over
0.25: the alert). With 4x visits, 2x lines, +0.45 promo and +1.0 the score
PSI was 0.13 and nothing alerted. docs/DRIFT.md has the walk-through.

Examples
--------
>>> from datetime import date
>>> from metro_assets.settings import SCALES, Settings, ScenarioSettings
>>> from pathlib import Path
>>> settings = Settings(Path("w.duckdb"), Path("s.parquet"), SCALES["default"], 42, date(2025, 8, 15),
...                     scenario=ScenarioSettings("black_friday"))
>>> shock = scenario_shock(settings)
>>> shock.start, shock.end
(datetime.date(2026, 2, 12), datetime.date(2026, 2, 15))
"""

from __future__ import annotations

from metro_assets.settings import Settings
from metro_assets.simulation.world import Shock

#: Multipliers and additive shifts of each scenario (see :class:`~metro_assets.simulation.world.Shock`).
SCENARIO_EFFECTS = {
    "black_friday": dict(visits=6.0, basket=3.0, promo=0.5, redemption=1.5),
}


def scenario_shock(settings: Settings) -> Shock | None:
    """The :class:`~metro_assets.simulation.world.Shock` of ``METRO_SCENARIO`` (None for ``none``)."""
    days = settings.scenario_days
    if days is None:
        return None
    return Shock(days[0], days[1], **SCENARIO_EFFECTS[settings.scenario.name])
