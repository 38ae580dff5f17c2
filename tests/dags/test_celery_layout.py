"""The CeleryExecutor layout serves what the DAGs ask for: the executor imports with the pinned
Celery, every queue a task names has a worker (compose and scripts/airflow_celery.sh), and every pool
a task names is created by the Celery script too. scripts/airflow_celery.sh runs the whole thing."""

from __future__ import annotations

import importlib
import re

import pytest
import yaml

from ml.config import PROJECT_ROOT

CELERY_SCRIPT = PROJECT_ROOT / "scripts" / "airflow_celery.sh"


@pytest.fixture(scope="module")
def dags():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(PROJECT_ROOT / "dags"))
    assert not bag.import_errors
    return bag.dags


def _queues(command: str) -> set[str]:
    found = re.findall(r"--queues[ =]([A-Za-z0-9_,-]+)", command)
    return {q for spec in found for q in spec.split(",")}


def test_the_celery_executor_imports_with_the_pinned_celery():
    """The scheduler and every worker import this module first. celery 5.7.0 (the lock's resolution
    before) removed ``celery.backends.database.retry``, which provider 3.26.0 imports: every worker
    and the scheduler died at start-up."""
    importlib.import_module("airflow.providers.celery.executors.celery_executor_utils")


def test_every_queue_a_task_names_is_served(dags):
    queues = {t.queue for dag in dags.values() for t in dag.tasks}
    assert "gpu" in queues  # the train task; the rest use the default queue
    services = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())["services"]
    # without the gpu profile only airflow-worker runs: it alone must serve every queue
    assert queues <= _queues(services["airflow-worker"]["command"])
    assert _queues(services["airflow-worker-gpu"]["command"]) == {"gpu"}
    script_workers = [ln for ln in CELERY_SCRIPT.read_text().splitlines() if "--queues" in ln]
    assert len(script_workers) == 2
    assert queues <= set().union(*(_queues(ln) for ln in script_workers))
    assert any(_queues(ln) == {"default"} for ln in script_workers)


def test_every_pool_a_task_names_is_created_by_the_celery_script(dags):
    pools = {t.pool for dag in dags.values() for t in dag.tasks} - {"default_pool"}
    script = CELERY_SCRIPT.read_text()
    assert pools and all(f"airflow pools set {pool} 1 " in script for pool in pools), pools
