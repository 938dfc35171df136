"""The code location: every asset, check, job, schedule and sensor, and the resources."""

from __future__ import annotations

from dagster import AssetSelection, Definitions, define_asset_job

from metro_assets.resources import SettingError, load_settings, warehouse_resource
from metro_assets.simulation.assets import build_raw_assets

try:
    settings = load_settings()
except SettingError as exc:  # one clear line instead of a traceback
    raise SystemExit(f"metro-offers: {exc}") from None

raw_tables = build_raw_assets(settings)

simulate_job = define_asset_job(
    "simulate",
    selection=AssetSelection.assets(raw_tables),
    description="Simulate the retailer's raw tables for a day or a range of days (one run).",
)

defs = Definitions(
    assets=[raw_tables],
    jobs=[simulate_job],
    resources={"warehouse": warehouse_resource(settings)},
)
