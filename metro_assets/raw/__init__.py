"""The raw stage: the retailer's tables, from the simulator or an import (``METRO_SOURCE``).

It sits above both :mod:`metro_assets.simulation` and :mod:`metro_assets.importing`:
:mod:`~metro_assets.raw.source` picks one, :mod:`~metro_assets.raw.assets` writes the tables.
"""
