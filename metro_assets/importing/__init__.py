"""Bring your own data: read a retailer's export into the raw tables (no Dagster inside).

``METRO_SOURCE=parquet:<folder>`` makes the raw assets read
``<folder>/<table>.parquet`` (or ``.csv``) instead of simulating. The contract
is in :mod:`~metro_assets.importing.contract` and ``docs/IMPORT.md``;
:func:`~metro_assets.importing.loading.load_import` validates and normalises
the whole import before anything is written; :mod:`metro_assets.export`
writes a warehouse's raw tables in the same contract.
"""
