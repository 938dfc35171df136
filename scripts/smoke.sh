#!/bin/sh
# CLI smoke run, the way CI operators use the platform: `dagster job execute`
# for one tiny partition, in a throwaway DAGSTER_HOME and warehouse.
set -eu
BIN=${BIN:-.venv/bin}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/home"
cp dagster.yaml "$tmp/home/dagster.yaml"
export DAGSTER_HOME="$tmp/home" METRO_WAREHOUSE="$tmp/warehouse.duckdb" METRO_SCALE=tiny
export METRO_SERVING="$tmp/serving.parquet"
first=$("$BIN/python" -c 'from metro_assets.resources import load_settings; print(load_settings().start_date)')
echo "smoke: dagster job execute -j simulate --partition $first"
"$BIN/dagster" job execute -m metro_assets.definitions -j simulate --tags "{\"dagster/partition\": \"$first\"}" > "$tmp/simulate.log" 2>&1 || { tail -40 "$tmp/simulate.log"; exit 1; }
"$BIN/python" - <<'PY'
import os, duckdb
con = duckdb.connect(os.environ["METRO_WAREHOUSE"], read_only=True)
n = con.execute("select count(*) from orders").fetchall()[0][0]
assert n > 0, "smoke: the simulate run wrote no orders"
print(f"smoke: simulate wrote {n} orders")
PY
echo "smoke: 1 passed, 0 failed"
