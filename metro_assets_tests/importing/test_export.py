"""``python -m metro_assets.export <dir>``: the raw tables in the import contract, or one clear line."""

import subprocess
import sys

import duckdb
import polars as pl

from metro_assets.export import main
from metro_assets.importing.contract import CONTRACT, TABLES


def _export(folder, warehouse, *args):
    env = {"METRO_WAREHOUSE": str(warehouse), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "metro_assets.export", str(folder), *args],
                          capture_output=True, text=True, env=env)


def test_the_export_writes_the_contract_columns_sorted_by_id(tiny_world_file, tmp_path):
    run = _export(tmp_path / "out", tiny_world_file)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("exported ") and ", orders " in run.stdout
    for table in TABLES:
        frame = pl.read_parquet(tmp_path / "out" / f"{table}.parquet")
        assert frame.columns == [c.name for c in CONTRACT[table].columns]  # no day: the import derives it
        key = CONTRACT[table].key
        assert frame[key].is_sorted() and frame.height > 0


def test_a_missing_warehouse_is_one_clear_line(tmp_path):
    run = _export(tmp_path / "out", tmp_path / "nowhere.duckdb")
    assert run.returncode == 2
    assert run.stderr.strip() == f"metro-offers: METRO_WAREHOUSE={tmp_path / 'nowhere.duckdb'} does not exist: " \
                                 "materialize the simulation first"
    assert not (tmp_path / "out").exists()


def test_a_warehouse_without_raw_tables_is_one_clear_line(tmp_path, monkeypatch, capsys):
    duckdb.connect(str(tmp_path / "empty.duckdb")).close()
    monkeypatch.setenv("METRO_WAREHOUSE", str(tmp_path / "empty.duckdb"))
    assert main([str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "has no raw tables" in err and len(err.strip().splitlines()) == 1


def test_a_file_in_place_of_the_folder_is_one_clear_line(tiny_world_file, tmp_path, monkeypatch, capsys):
    (tmp_path / "taken").write_text("")
    monkeypatch.setenv("METRO_WAREHOUSE", str(tiny_world_file))
    assert main([str(tmp_path / "taken")]) == 2
    assert capsys.readouterr().err.strip() == f"metro-offers: export folder {tmp_path / 'taken'} is a file"
