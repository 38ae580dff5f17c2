"""The checks of scripts/airflow_celery.sh (ml/orchestration/celery_checks.py) that need no running
Airflow: which worker ran what (from the Celery workers' own log lines), and when a run, the GPU
task or the serving tables count as failed. The end-to-end run itself is the script (not CI: it
starts a whole Airflow deployment for ~20 minutes)."""

from __future__ import annotations

import json

import pytest

from ml.orchestration.celery_checks import (
    attribute,
    changed_users,
    check_gpu_task,
    check_run,
    parse_worker_log,
    summary_of,
)
from ml.orchestration.celery_run import read_password

RUN = "manual__2026-12-02T07:08:36.127384+00:00"


def _line(task_id: str, dag_id: str = "recsys_train", run_id: str = RUN, queue: str = "default") -> str:
    """One ``Executing workload`` record as the Celery provider 3.26 logs it (copied from a worker log)."""
    return (
        "2026-12-02T07:08:37.938869Z [info     ] [9cd9d063-2238-4c0f-81d4-0722a30cbee3] Executing workload in "
        "Celery: dag_rel_path=PurePosixPath('recsys_train.py') bundle_info=BundleInfo(name='dags-folder', "
        f"version=None) log_path='dag_id={dag_id}/run_id={run_id}/task_id={task_id}/attempt=1.log' "
        f"ti=TaskInstanceDTO(id=UUID('01a23595-7231-79ac-b95b-d41eedf1c56d'), task_id='{task_id}', "
        f"dag_id='{dag_id}', run_id='{run_id}', try_number=1, map_index=-1, hostname='', "
        f"queue='{queue}', pool_slots=1) type='ExecuteTask' [airflow.providers.celery.executors."
        "celery_executor_utils] loc=celery_executor_utils.py:254"
    )


def _ti(task_id: str, state: str = "success", queue: str = "default") -> dict:
    return {"task_id": task_id, "state": state, "queue": queue}


def test_parse_worker_log_reads_each_executed_task_and_ignores_other_lines():
    text = "\n".join(
        [
            "2026-12-02T07:08:19Z [info] gpu@vm ready.",
            _line("check_freshness"),
            "2026-12-02T07:08:44Z [info] Task execute_workload[7d5a] received",
            _line("dbt_marts.stg_recsys__users_model_build"),
            _line("guard", dag_id="recsys_refresh", run_id="manual__x"),
            # a workload line cut short (no ti=...): cannot be attributed, so not counted
            "2026-12-02T07:09:00Z [info] [abc] Executing workload in Celery: dag_rel_path=PurePosixPath('x.py')",
        ]
    )
    assert parse_worker_log(text) == {
        ("recsys_train", RUN, "check_freshness"),
        ("recsys_train", RUN, "dbt_marts.stg_recsys__users_model_build"),
        ("recsys_refresh", "manual__x", "guard"),
    }


def test_attribute_maps_each_task_to_the_workers_that_logged_it_for_this_run_only():
    executed = {
        "worker-default": parse_worker_log(_line("check_freshness") + "\n" + _line("train", run_id="other")),
        "worker-gpu": parse_worker_log(_line("train", queue="gpu")),
    }
    tis = [_ti("check_freshness"), _ti("train", queue="gpu"), _ti("publish")]
    assert attribute("recsys_train", RUN, tis, executed) == {
        "check_freshness": ["worker-default"],
        "train": ["worker-gpu"],
        "publish": [],
    }


def test_check_run_passes_a_successful_run_whose_every_task_one_worker_ran():
    tis = [_ti("a"), _ti("b")]
    assert check_run("dag", {"state": "success"}, tis, {"a": ["w1"], "b": ["w2"]}) == []


@pytest.mark.parametrize(
    ("run_state", "tis", "workers_of", "expected"),
    [
        ("failed", [_ti("a", "failed")], {"a": ["w1"]}, ["run state failed", "task a is failed"]),
        # a skipped guard proves nothing about the refresh path: counted as a failure
        ("success", [_ti("a", "skipped")], {"a": []}, ["task a is skipped"]),
        ("success", [_ti("a")], {"a": []}, ["task a (success) shown by workers []"]),
        ("success", [_ti("a")], {"a": ["w1", "w2"]}, ["task a (success) shown by workers ['w1', 'w2']"]),
        ("success", [], {}, ["no task instances"]),
    ],
)
def test_check_run_names_each_problem(run_state, tis, workers_of, expected):
    problems = check_run("dag", {"state": run_state}, tis, workers_of)
    assert problems == [f"dag: {p}" for p in expected]


def test_check_gpu_task_requires_the_gpu_queue_and_a_gpu_worker():
    gpu = {"worker-gpu"}
    assert check_gpu_task([_ti("train", queue="gpu")], {"train": ["worker-gpu"]}, "train", gpu) == []
    assert check_gpu_task([_ti("train", queue="default")], {"train": ["worker-gpu"]}, "train", gpu) == [
        "train: queue 'default', expected 'gpu'"
    ]
    assert check_gpu_task([_ti("train", queue="gpu")], {"train": ["worker-default"]}, "train", gpu) == [
        "train: ran on ['worker-default'], expected one of ['worker-gpu']"
    ]
    assert check_gpu_task([_ti("train", queue="gpu")], {"train": []}, "train", gpu) == [
        "train: ran on [], expected one of ['worker-gpu']"
    ]
    assert check_gpu_task([], {}, "train", gpu) == ["no task instance train"]


def test_changed_users_counts_new_gone_and_edited_lists():
    before = {1: [(1, 10)], 2: [(1, 20)], 3: [(1, 30)]}
    after = {1: [(1, 10)], 2: [(1, 21)], 4: [(1, 40)]}
    assert changed_users(before, after) == {2, 3, 4}
    assert changed_users(before, dict(before)) == set()


def test_read_password_names_the_missing_user(tmp_path):
    path = tmp_path / "passwords.json"
    path.write_text(json.dumps({"airflow": "s3cret"}))
    assert read_password(path, "airflow") == "s3cret"
    with pytest.raises(KeyError, match="no password for 'admin'"):
        read_password(path, "admin")


def test_summary_of_counts_workers_pickup_and_the_dbt_share():
    def ti(task_id, queued, start, duration, queue="default", pool="default_pool"):
        return {
            "task_id": task_id,
            "state": "success",
            "queue": queue,
            "pool": pool,
            "hostname": "vm",
            "queued_when": f"2026-12-02T07:00:{queued:02d}Z",
            "start_date": f"2026-12-02T07:00:{start:02d}Z",
            "duration": duration,
        }

    tis = [
        ti("dbt_marts.a_model_build", 0, 1, 8.0, pool="recsys_dbt"),
        ti("dbt_marts.b_model_build", 10, 13, 9.0, pool="recsys_dbt"),
        ti("train", 30, 32, 100.0, queue="gpu", pool="gpu"),
    ]
    run = {"state": "success", "queued_at": "2026-12-02T06:59:59Z", "start_date": "2026-12-02T07:00:00Z"}
    out = summary_of(
        {
            "dag_id": "recsys_train",
            "run_id": RUN,
            "run": run,
            "tis": tis,
            "wall_s": 130.0,
            "queued_s": 1.0,
            "run_s": 128.0,
            "workers_of": {
                "dbt_marts.a_model_build": ["w1"],
                "dbt_marts.b_model_build": ["w2"],
                "train": ["w2"],
            },
        }
    )
    assert out["tasks_per_worker"] == {"w1": 1, "w2": 2}
    assert (out["dbt_tasks"], out["dbt_task_s_sum"], out["task_s_sum"]) == (2, 17.0, 117.0)
    assert (out["pickup_s_mean"], out["pickup_s_max"]) == (2.0, 3.0)
    assert out["task_states"] == {"success": 3}
    assert list(out["non_dbt_tasks"]) == ["train"]
    assert out["non_dbt_tasks"]["train"]["queue"] == "gpu" and out["non_dbt_tasks"]["train"]["worker"] == [
        "w2"
    ]
