"""A PostgreSQL server for the module's tests (a fresh database per test), and the deploy files."""

import itertools
from pathlib import Path

import pytest
import yaml

from metro_assets_tests.deploy.postgres import PostgresUnavailable, running_postgres

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
_databases = itertools.count()


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server; fails (never skips) in one line when it cannot be started."""
    failure = None
    try:
        with running_postgres() as server:
            yield server
    except PostgresUnavailable as exc:
        failure = str(exc)
    if failure:  # outside the except block: one line, no chained traceback
        pytest.fail(f"PostgreSQL: {failure}", pytrace=False)


@pytest.fixture
def dagster_database(postgres_server) -> dict[str, str]:
    """A new empty database on the server; returns the DAGSTER_PG_* variables that point at it."""
    name = f"dagster_{next(_databases)}"
    postgres_server.create_database(name)
    return postgres_server.dagster_env(name)


def deploy_instance_config() -> dict:
    """``deploy/dagster.yaml`` as a mapping."""
    return yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
