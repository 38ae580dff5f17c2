"""Shared fixtures. Tests run against the real MariaDB/MySQL from RECSYS_MYSQL_* (never a mock),
in databases prefixed with RECSYS_DB_PREFIX (default ``test_``) so they never touch the demo's data.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("RECSYS_DB_PREFIX", "test_")
# pytest-xdist (scripts/test.sh runs two workers): each worker gets its own databases
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["RECSYS_DB_PREFIX"] += f"{os.environ['PYTEST_XDIST_WORKER']}_"
# every dbt invocation of a pytest worker through its one warm dbt worker (ml.features.dbt.run_dbt):
# the fixtures and tests that build marts (dozens of dbt commands per worker) skip dbt's start-up and
# re-parse (~2-3 s each; tests/data/test_dbt_marts.py alone 93 -> 60 s); the subprocess
# path keeps its own tests (warm=False) and the DAGs' Cosmos tasks run dbt processes regardless
os.environ.setdefault("RECSYS_DBT_WARM", "1")
# no dbt.log file (dbt's debug-level log of every statement, in a throwaway RECSYS_HOME here): its
# formatting was ~15 % of a point-in-time build of the small shops; failures still quote dbt's output
os.environ.setdefault("DBT_LOG_LEVEL_FILE", "none")
# Airflow reads its config when first imported (at collection time): point it at a throwaway home
# with a SQLite metadata DB, never the project's .local/airflow.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="recsys-airflow-test-")
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")
os.environ.setdefault("AIRFLOW__COSMOS__ENABLE_TELEMETRY", "False")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(__file__).resolve().parent.parent / "dags")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules marked ``schedule_first`` go to the front, in collection order otherwise. With
    ``--dist loadfile --no-loadscope-reorder`` (scripts/test.sh) xdist hands files out in this order,
    so the long module-scoped flows start at once instead of forming the tail of the run."""
    items.sort(key=lambda item: item.get_closest_marker("schedule_first") is None)


@pytest.fixture(scope="session", autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Per-session RECSYS_HOME and MLflow store, so tests never write into the project's .local/."""
    home = tmp_path_factory.mktemp("recsys_home")
    old = {k: os.environ.get(k) for k in ("RECSYS_HOME", "MLFLOW_TRACKING_URI")}
    os.environ["RECSYS_HOME"] = str(home)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{home / 'mlflow.db'}"
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def settings(_isolated_home: None):
    """Fresh, migrated test databases for the session."""
    from ml.config import get_settings
    from ml.db import ResetRefused, drop_databases, init_db

    s = get_settings()
    assert s.raw_db.startswith(os.environ["RECSYS_DB_PREFIX"]) and os.environ["RECSYS_DB_PREFIX"], (
        "tests must run in prefixed databases"
    )
    try:
        drop_databases(s)  # test databases are marked 'test' by init_db below
    except ResetRefused:  # prefixed test databases from before init_db marked what it created
        drop_databases(s, force=True)
    init_db(s, purpose="test")
    return s


@pytest.fixture()
def clean_db(settings):
    """Empty raw and serving tables before a test (schema kept)."""
    from ml.db import connect

    conn = connect(settings=settings)
    try:
        with conn.cursor() as cur:
            for db in (settings.raw_db, settings.serving_db):
                cur.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema=%s AND table_type='BASE TABLE'",
                    (db,),
                )
                for (t,) in cur.fetchall():
                    if t not in ("schema_migrations", "recsys_marker"):
                        cur.execute(f"TRUNCATE TABLE `{db}`.`{t}`")
    finally:
        conn.close()
    return settings


def _load_sim(settings, data) -> None:
    """Empty the raw tables and load ``data`` (the simulated shop) into them."""
    from ml.data.sim_load import SIM_RAW_TABLES, load_simulation
    from ml.db import connect

    conn = connect(settings.raw_db, settings=settings)
    try:
        with conn.cursor() as cur:
            for t in SIM_RAW_TABLES:
                cur.execute(f"TRUNCATE TABLE `{t}`")
    finally:
        conn.close()
    load_simulation(data, settings)


@pytest.fixture(scope="session")
def sim_small(settings):
    """A small simulated shop (300 users, 200 items, 7 days, seed 7; ~16k events) loaded into the
    test raw database once per session; returns the :class:`ml.data.sim_config.SimData`.
    The raw tables are emptied before loading. A later ``clean_db`` empties them again: tests
    that run after such tests and need the rows in MySQL should use ``sim_small_db``."""
    from datetime import datetime

    from ml.data.sim_config import SimConfig
    from ml.data.simulate import simulate

    data = simulate(SimConfig(users=300, items=200, days=7, seed=7, start=datetime(2026, 10, 1)))
    _load_sim(settings, data)
    return data


def _ensure_sim_loaded(settings, data) -> None:
    """Re-load ``data`` unless the raw tables hold exactly its events, sessions and items."""
    from ml.db import connect

    conn = connect(settings.raw_db, settings=settings)
    try:
        with conn.cursor() as cur:
            counts = []
            for table in ("user_behavior", "sim_session_intent", "sim_query_intent", "items"):
                cur.execute(f"SELECT COUNT(*) FROM `{table}`")
                counts.append(int(cur.fetchone()[0]))
    finally:
        conn.close()
    if tuple(counts) != (len(data.events), len(data.intents), len(data.queries), len(data.items)):
        _load_sim(settings, data)


@pytest.fixture()
def sim_small_db(sim_small, settings):
    """``sim_small``, re-loaded first if the raw tables no longer hold exactly it."""
    _ensure_sim_loaded(settings, sim_small)
    return sim_small


@pytest.fixture(scope="module")
def sim_small_module(sim_small, settings):
    """``sim_small_db`` for module-scoped fixtures (checked once per module)."""
    _ensure_sim_loaded(settings, sim_small)
    return sim_small
