"""End to end with ``dag.test()`` on MariaDB: recsys_train, then recsys_refresh after new events.

One module-scoped flow (dbt via Cosmos, GX gates, training, publish) on the small simulated shop;
the assertions are split into tests that read its results.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import pytest

from ml.db import connect

pytestmark = pytest.mark.slow

TRAIN_CONF = {
    "max_staleness_hours": 0,  # the simulated shop lies in the past
    "use_tf": False,  # the TF ranker has its own tests; keeps this flow to minutes on 2 cores
    "xgboost": False,
    "label_hours": 24,
    "topn": 20,
}


def _airflow_db() -> None:
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    out = subprocess.run([sys.executable, "-m", "airflow", "pools", "set", "gpu", "1", "GPU training slots"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]


def _dags():
    from airflow.dag_processing.dagbag import DagBag

    from ml.config import PROJECT_ROOT

    bag = DagBag(str(PROJECT_ROOT / "dags"))
    assert not bag.import_errors
    return bag.dags


def _run(dag, conf=None):
    run = dag.test(run_conf=conf or {})
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    return run, states


def _topn(settings) -> dict[int, list[tuple]]:
    conn = connect(settings.serving_db, settings=settings)
    with conn.cursor() as cur:
        cur.execute("SELECT user_id, `rank`, item_id, score, source, model_version FROM user_topn ORDER BY user_id, `rank`")
        rows = cur.fetchall()
    conn.close()
    out: dict[int, list[tuple]] = {}
    for r in rows:
        out.setdefault(int(r[0]), []).append(tuple(r[1:]))
    return out


def _table_digest(settings, db: str, table: str) -> str:
    conn = connect(db, settings=settings)
    with conn.cursor() as cur:
        cur.execute(f"CHECKSUM TABLE `{table}`")
        digest = cur.fetchone()[1]
    conn.close()
    return str(digest)


def _fresh_shop(settings, data) -> None:
    """Empty raw and serving tables (earlier tests may have published or fed), then load ``data``."""
    from ml.data.simulate import load_simulation

    conn = connect(settings=settings)
    with conn.cursor() as cur:
        for db in (settings.raw_db, settings.serving_db):
            cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema=%s AND table_type='BASE TABLE'", (db,))
            for (t,) in cur.fetchall():
                if t != "schema_migrations":
                    cur.execute(f"TRUNCATE TABLE `{db}`.`{t}`")
    conn.close()
    load_simulation(data, settings)


@pytest.fixture(scope="module")
def flow(sim_small, settings):
    """Train → refresh (one user acted) → refresh again (nothing new)."""
    _fresh_shop(settings, sim_small)
    # own MLflow experiment/registered model: other tests' champions must not take part
    old_experiment = os.environ.get("RECSYS_MLFLOW_EXPERIMENT")
    os.environ["RECSYS_MLFLOW_EXPERIMENT"] = "recsys_dag_test"
    try:
        yield _flow(settings)
    finally:
        if old_experiment is None:
            os.environ.pop("RECSYS_MLFLOW_EXPERIMENT", None)
        else:
            os.environ["RECSYS_MLFLOW_EXPERIMENT"] = old_experiment


def _flow(settings) -> dict:
    _airflow_db()
    dags = _dags()
    result: dict = {}
    run, states = _run(dags["recsys_train"], TRAIN_CONF)
    result["train1"] = (run.state, states)
    result["topn1"] = _topn(settings)
    result["marts1"] = {t: _table_digest(settings, settings.marts_db, t) for t in ("dim_users", "dim_items", "ml_covisitation")}

    # one user acts now: browses and carts two items of one category
    conn = connect(settings.raw_db, settings=settings)
    with conn.cursor() as cur:
        cur.execute("SELECT MAX(ts) FROM user_behavior")
        t0 = cur.fetchone()[0] + timedelta(minutes=5)
        cur.execute("SELECT user_id FROM user_behavior GROUP BY user_id ORDER BY COUNT(*) DESC LIMIT 1")
        user = int(cur.fetchone()[0])
        cur.execute("SELECT category_id FROM items GROUP BY category_id ORDER BY COUNT(*) DESC LIMIT 1")
        cat = int(cur.fetchone()[0])
        cur.execute("SELECT item_id FROM items WHERE category_id=%s AND in_stock=1 ORDER BY item_id LIMIT 2", (cat,))
        items = [int(r[0]) for r in cur.fetchall()]
        rows = [(user, None, f"{user}-live", "search", "something new", t0)]
        rows += [(user, it, f"{user}-live", bt, None, t0 + timedelta(seconds=10 * (k + 1)))
                 for k, (it, bt) in enumerate([(items[0], "browse"), (items[1], "browse"), (items[1], "cart")])]
        cur.executemany(
            "INSERT INTO user_behavior (user_id, item_id, session_id, behavior_type, query_text, ts) VALUES (%s,%s,%s,%s,%s,%s)", rows
        )
    conn.close()
    result["acting_user"] = user
    run, states = _run(dags["recsys_refresh"])
    result["refresh1"] = (run.state, states)
    result["topn2"] = _topn(settings)
    run, states = _run(dags["recsys_refresh"])
    result["refresh2"] = (run.state, states)
    result["topn3"] = _topn(settings)
    return result


def test_train_dag_succeeds_and_publishes(flow, settings):
    state, states = flow["train1"]
    assert state == "success", {k: v for k, v in states.items() if v != "success"}
    topn = flow["topn1"]
    assert len(topn) > 50
    assert all(len(rows) == TRAIN_CONF["topn"] for rows in topn.values())
    conn = connect(settings.serving_db, settings=settings)
    with conn.cursor() as cur:
        cur.execute("SELECT kind, users, `rows` FROM publish_log WHERE kind='full'")
        kind, users, nrows = cur.fetchone()
    conn.close()
    assert users == len(topn) and nrows == sum(len(r) for r in topn.values())


def test_refresh_updates_only_the_user_who_acted(flow):
    state, states = flow["refresh1"]
    assert state == "success", states
    assert states["refresh"] == "success"
    before, after, user = flow["topn1"], flow["topn2"], flow["acting_user"]
    changed = {u for u in set(before) | set(after) if before.get(u) != after.get(u)}
    assert changed == {user}


def test_second_refresh_without_new_events_skips(flow):
    state, states = flow["refresh2"]
    assert state == "success"
    assert states["guard"] == "skipped" and states["refresh"] == "skipped"
    assert flow["topn3"] == flow["topn2"]
