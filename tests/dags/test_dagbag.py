"""DagBag integrity: every DAG imports fast, with no DB/network at parse time, and is well-formed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ml.config import PROJECT_ROOT

DAGS = PROJECT_ROOT / "dags"
EXPECTED = {"recsys_train", "recsys_refresh", "recsys_simulate_feed"}
#: the search marts and their inputs (tag realtime): a task each in the train DAG's dbt group, and
#: built by the refresh DAG's one `dbt build --select tag:realtime`
SEARCH_MODELS = (
    "int_search_session_events",
    "int_search_attributions",
    "ml_query_item",
    "ml_query_stats",
    "ml_user_recent_queries",
)


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(DAGS))


def test_no_import_errors_and_all_dags_present(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) >= EXPECTED


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_dag_hygiene(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert dag.tags and "recsys" in dag.tags
    assert dag.doc_md and dag.max_active_runs == 1 and dag.catchup is False
    for t in dag.tasks:
        assert t.owner == "ml-platform", t.task_id
        assert t.retries is not None, t.task_id
    # a DAG with a cycle raises at import; here also check there is a single root and a single leaf
    roots = [t.task_id for t in dag.roots]
    assert len(roots) == 1, roots


def test_train_dag_shape(dagbag):
    dag = dagbag.dags["recsys_train"]
    ids = set(dag.task_ids)
    assert {"check_freshness", "gx_raw", "gx_marts", "train", "publish"} <= ids
    assert any(i.startswith("dbt_marts.") for i in ids), "dbt rendered by Cosmos"
    assert {f"dbt_marts.{m}_model_build" for m in SEARCH_MODELS} <= ids
    assert not any("ml_labels" in i or "ml_training_set" in i for i in ids), (
        "point-in-time models are built by train, not the batch group"
    )
    train = dag.get_task("train")
    assert train.queue == "gpu" and train.pool == "gpu"
    assert dag.get_task("publish").upstream_task_ids == {"train"}
    # the gate sits between dbt and training: every dbt task is upstream of gx_marts
    upstream = dag.get_task("gx_marts").get_flat_relative_ids(upstream=True)
    assert {i for i in ids if i.startswith("dbt_marts.")} <= upstream
    # the relationships tests: none inside the group (no task per test), all in one task after it
    assert not any("relationships_" in i for i in ids)
    rel = dag.get_task("dbt_marts_relationships")
    assert {i for i in ids if i.startswith("dbt_marts.")} <= rel.get_flat_relative_ids(upstream=True)
    assert rel.downstream_task_ids == {"gx_marts"} and rel.pool == "recsys_dbt"
    assert rel.select == "path:models,test_name:relationships" and rel.exclude == "tag:pit"
    assert {
        "max_staleness_hours",
        "label_hours",
        "use_tf",
        "xgboost",
        "margin",
        "session_task",
        "session_train",
    } <= set(dag.params.keys())
    db_tasks = [t for t in dag.tasks if t.task_id in {"check_freshness", "gx_raw", "gx_marts", "publish"}]
    assert all(t.retries >= 2 and t.retry_exponential_backoff for t in db_tasks)


def _guard_wait(dag) -> float:
    """The ``wait_s`` the refresh DAG's guard task passes to ``tasks.refresh_guard``."""
    from ml.orchestration import tasks

    asked = {}
    real = tasks.refresh_guard
    tasks.refresh_guard = lambda **kw: asked.update(kw) or {}
    try:
        dag.get_task("guard").python_callable()
    finally:
        tasks.refresh_guard = real
    return asked["wait_s"]


def test_refresh_dag_back_to_back(monkeypatch):
    """``RECSYS_REFRESH_MINUTES=0``: one run right after the other (Airflow's ``@continuous``, one run at
    a time, no asset trigger needed); the guard waits up to ``RECSYS_REFRESH_IDLE_SECONDS`` for an event
    before it skips, so an idle shop does not start a run every scheduler loop."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("RECSYS_REFRESH_MINUTES", "0")
    monkeypatch.setenv("RECSYS_REFRESH_IDLE_SECONDS", "45")
    bag = DagBag(str(DAGS / "recsys_refresh.py"))
    assert bag.import_errors == {}
    dag = bag.dags["recsys_refresh"]
    from airflow.serialization.serialized_objects import DagSerialization

    served = DagSerialization.from_dict(DagSerialization.to_dict(dag))  # what the scheduler reads
    assert served.timetable.summary == "@continuous" and served.max_active_runs == 1
    assert _guard_wait(dag) == 45.0
    assert dag.get_task("refresh").upstream_task_ids == {"gx_realtime", "guard"}


def test_refresh_dag_shape(dagbag):
    import json

    from ml.orchestration.cosmos import manifest_path

    dag = dagbag.dags["recsys_refresh"]
    ids = set(dag.task_ids)
    # one Cosmos `dbt build` of the realtime models (dbt orders them), not a task per model
    dbt = dag.get_task("dbt_realtime")
    assert type(dbt).__name__ == "DbtBuildLocalOperator" and dbt.select == "tag:realtime"
    assert dbt.pool == "recsys_dbt" and dbt.upstream_task_ids == {"guard"}
    assert not any(i.startswith("dbt_realtime.") for i in ids)
    nodes = json.loads(Path(manifest_path()).read_text(encoding="utf-8"))["nodes"]
    realtime = {
        n["name"] for n in nodes.values() if n["resource_type"] == "model" and "realtime" in n["tags"]
    }
    assert {"fct_session_intent", "ml_candidates", *SEARCH_MODELS} <= realtime
    assert not realtime & {"dim_users", "ml_covisitation"}, "only realtime models"
    # the search events are read after int_realtime_user_events, whose newest event id the marts record
    search_events = nodes["model.recsys.int_search_session_events"]["depends_on"]["nodes"]
    assert "model.recsys.int_realtime_user_events" in search_events
    assert dag.get_task("refresh").upstream_task_ids == {"gx_realtime", "guard"}
    assert dag.timetable.timetable.expression == "*/5 * * * *"  # RECSYS_REFRESH_MINUTES default
    assert _guard_wait(dag) == 0.0  # on a cron, the guard skips at once when nothing arrived
    # a new champion triggers a refresh only once its full publish passed the GX top-N check
    assert "recsys_published_champion" in repr(dag.timetable.asset_condition)
    assert "recsys_champion_model" not in repr(dag.timetable.asset_condition)
    train = dagbag.dags["recsys_train"]
    emits = {t.task_id for t in train.tasks if any(a.name == "recsys_published_champion" for a in t.outlets)}
    assert emits == {"publish"}


def test_dbt_tasks_of_both_dags_share_one_pool_that_every_setup_creates(dagbag):
    """The train and refresh DAGs both build the realtime tables: their dbt tasks take turns in one
    1-slot pool, and every pool a task names is created by the demo and by compose's airflow-init."""
    from ml.orchestration.cosmos import DBT_POOL

    pools = set()
    for name in ("recsys_train", "recsys_refresh"):
        dbt = [t for t in dagbag.dags[name].tasks if t.task_id.startswith("dbt_")]
        assert dbt and {t.pool for t in dbt} == {DBT_POOL}, name
        pools |= {t.pool for t in dagbag.dags[name].tasks if t.pool != "default_pool"}
    assert pools == {DBT_POOL, "gpu"}
    demo = (DAGS.parent / "scripts" / "demo.sh").read_text()
    compose = (DAGS.parent / "docker-compose.yml").read_text()
    for pool in pools:
        assert f"pools set {pool} 1 " in demo, pool
        assert f"airflow pools set {pool} 1 " in compose, pool


def test_parse_touches_no_database_and_imports_no_ml_library(tmp_path):
    """Import every DAG file in a fresh interpreter with MySQL and sockets patched to explode; no
    TensorFlow, MLflow, LightGBM, XGBoost or GX may load while parsing (the scheduler parses often)."""
    script = tmp_path / "parse.py"
    script.write_text(
        "import socket, sys, time, pymysql\n"
        "def boom(*a, **k): raise AssertionError('network/DB access at parse time')\n"
        "pymysql.connect = boom\n"
        "socket.create_connection = boom\n"
        "socket.socket.connect = lambda *a, **k: boom()\n"
        "import airflow.sdk, cosmos  # library import cost is not the DAG's\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"t0 = time.perf_counter(); bag = DagBag({str(DAGS)!r}); dt = time.perf_counter() - t0\n"
        "assert not bag.import_errors, bag.import_errors\n"
        "heavy = sorted(m for m in ('tensorflow', 'mlflow', 'lightgbm', 'xgboost', 'great_expectations') if m in sys.modules)\n"
        "assert not heavy, f'DAG files imported {heavy} at parse time'\n"
        "print(f'{dt:.3f} {len(bag.dag_ids)}')\n"
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    seconds, n = out.stdout.strip().splitlines()[-1].split()
    assert int(n) >= 3  # parse time is measured (printed), not asserted: it depends on the machine's load


def test_cross_model_tests_are_all_relationships_or_refused(tmp_path, monkeypatch):
    """The one relationships task selects by test name: a cross-model test of another kind would not
    run there, so listing the project's cross-model tests refuses it."""
    import json

    from ml.orchestration import cosmos

    names = cosmos.cross_model_tests()
    assert names and all(n.startswith("relationships_") for n in names)

    def test_node(name: str, kind: str, parents: list[str]) -> dict:
        return {
            "resource_type": "test",
            "name": name,
            "test_metadata": {"name": kind},
            "depends_on": {"nodes": parents},
        }

    nodes = {
        "test.recsys.a": test_node("rel_a", "relationships", ["model.recsys.x", "model.recsys.y"]),
        "test.recsys.b": test_node("uniq_b", "unique", ["model.recsys.x"]),
    }
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"nodes": nodes}))
    monkeypatch.setattr(cosmos, "manifest_path", lambda: str(path))
    assert cosmos.cross_model_tests() == ["rel_a"]
    nodes["test.recsys.c"] = test_node("eq_c", "equal_rowcount", ["model.recsys.x", "source.recsys.raw.y"])
    path.write_text(json.dumps({"nodes": nodes}))
    with pytest.raises(ValueError, match="eq_c spans 2 nodes but is not a relationships test"):
        cosmos.cross_model_tests()


#: the outcome marts (tag outcomes): built by the train DAG's batch group, never by the refresh
OUTCOME_MODELS = (
    "int_outcome_events",
    "fct_served_outcomes",
    "rpt_model_online_metrics",
    "rpt_model_online_daily",
)


def test_outcome_marts_build_in_the_train_dag_and_their_metrics_log_after_publish(dagbag):
    train, refresh = dagbag.dags["recsys_train"], dagbag.dags["recsys_refresh"]
    assert {f"dbt_marts.{m}_model_build" for m in OUTCOME_MODELS} <= set(train.task_ids)
    assert not any(m in i for m in OUTCOME_MODELS for i in refresh.task_ids)
    assert train.get_task("log_online_metrics").upstream_task_ids == {"publish"}
    assert train.params["online_metrics_days"] == 7
    assert "fct_served_outcomes" in train.doc_md and "Last touch" in train.doc_md
