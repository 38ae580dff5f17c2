"""The checks and the summary of scripts/airflow_celery.sh: which Celery worker ran which task (from
the workers' own logs), when a run, the GPU task or the serving tables count as failed, and the
per-run timings. Plain functions over the REST API's JSON (no Airflow, no database): unit-tested in
tests/code/test_celery_run.py; :mod:`ml.orchestration.celery_run` calls them.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

#: the line the Celery provider logs in the worker for every workload it runs
WORKLOAD_LINE = "Executing workload in Celery"

# --- what each worker executed ------------------------------------------------------------------

_FIELD_RE = {k: re.compile(rf"\b{k}='([^']*)'") for k in ("dag_id", "run_id", "task_id")}


def parse_worker_log(text: str) -> set[tuple[str, str, str]]:
    """``(dag_id, run_id, task_id)`` of every workload a Celery worker's log says it executed.

    The provider logs one ``Executing workload in Celery: ExecuteTask(... ti=TaskInstance(...
    task_id='x', dag_id='y', run_id='z' ...))`` line per task it runs; a line missing one of the
    three fields is not counted (it cannot be attributed to a task)."""
    out: set[tuple[str, str, str]] = set()
    for line in text.splitlines():
        if WORKLOAD_LINE not in line:
            continue
        found = {k: rx.search(line) for k, rx in _FIELD_RE.items()}
        if all(found.values()):
            out.add((found["dag_id"].group(1), found["run_id"].group(1), found["task_id"].group(1)))
    return out


def attribute(
    dag_id: str, run_id: str, tis: list[dict[str, Any]], executed: dict[str, set[tuple[str, str, str]]]
) -> dict[str, list[str]]:
    """``{task_id: [workers whose log shows it]}`` for the run's task instances."""
    return {
        ti["task_id"]: sorted(w for w, done in executed.items() if (dag_id, run_id, ti["task_id"]) in done)
        for ti in tis
    }


def check_run(
    name: str, run: dict[str, Any], tis: list[dict[str, Any]], workers_of: dict[str, list[str]]
) -> list[str]:
    """Problems with one run: not ``success``; a task not ``success`` (here every task must run:
    a skipped guard or refresh would prove nothing); a task that ran but no Celery worker's log
    shows it, or more than one does (retries are not expected on this data)."""
    problems = []
    if run["state"] != "success":
        problems.append(f"{name}: run state {run['state']}")
    if not tis:
        problems.append(f"{name}: no task instances")
    for ti in tis:
        if ti["state"] != "success":
            problems.append(f"{name}: task {ti['task_id']} is {ti['state']}")
        if ti["state"] in ("success", "failed"):
            workers = workers_of.get(ti["task_id"], [])
            if len(workers) != 1:
                problems.append(f"{name}: task {ti['task_id']} ({ti['state']}) shown by workers {workers}")
    return problems


def check_gpu_task(
    tis: list[dict[str, Any]], workers_of: dict[str, list[str]], task_id: str, gpu_workers: set[str]
) -> list[str]:
    """The GPU task went through the ``gpu`` queue and ran on a worker that serves it."""
    ti = next((t for t in tis if t["task_id"] == task_id), None)
    if ti is None:
        return [f"no task instance {task_id}"]
    problems = []
    if ti["queue"] != "gpu":
        problems.append(f"{task_id}: queue {ti['queue']!r}, expected 'gpu'")
    ran_on = set(workers_of.get(task_id, []))
    if not ran_on or not ran_on <= gpu_workers:
        problems.append(f"{task_id}: ran on {sorted(ran_on)}, expected one of {sorted(gpu_workers)}")
    return problems


def changed_users(before: dict[int, list[tuple]], after: dict[int, list[tuple]]) -> set[int]:
    return {u for u in set(before) | set(after) if before.get(u) != after.get(u)}


# --- the summary -------------------------------------------------------------------------------


def ts(row: dict[str, Any], key: str) -> datetime | None:
    """A timestamp field of the REST API's JSON, or None when unset."""
    return datetime.fromisoformat(row[key].replace("Z", "+00:00")) if row.get(key) else None


def run_seconds(run: dict[str, Any]) -> dict[str, float | None]:
    """Queued → start → end of a run, in seconds."""
    queued, start, end = ts(run, "queued_at"), ts(run, "start_date"), ts(run, "end_date")
    return {
        "queued_s": round((start - queued).total_seconds(), 1) if queued and start else None,
        "run_s": round((end - start).total_seconds(), 1) if start and end else None,
    }


def plain(v: Any) -> Any:
    """A JSON-able scalar (MySQL DECIMAL and the like become strings)."""
    return v if isinstance(v, (int, float, str)) or v is None else str(v)


def summary_of(r: dict[str, Any]) -> dict[str, Any]:
    """One run's summary: state and timings, task states, tasks per worker, Celery pick-up delay,
    dbt share of the task time, and the non-dbt tasks one by one (worker, queue, pool, seconds).
    ``r`` holds the run and task-instance JSON of the REST API plus ``workers_of`` and ``wall_s``."""
    per_worker: dict[str, list[str]] = {}
    for task_id, workers in r["workers_of"].items():
        for w in workers or ["(no worker)"]:
            per_worker.setdefault(w, []).append(task_id)
    tis = {t["task_id"]: t for t in r["tis"]}
    states: dict[str, int] = {}
    for t in r["tis"]:
        states[t["state"]] = states.get(t["state"], 0) + 1
    # Celery pick-up: handed to the broker (queued) → started on a worker
    pickups = [
        (ts(t, "start_date") - ts(t, "queued_when")).total_seconds()
        for t in r["tis"]
        if ts(t, "start_date") and ts(t, "queued_when")
    ]
    dbt = [t["duration"] or 0 for t in r["tis"] if t["task_id"].startswith("dbt_")]
    return {
        "dag_id": r["dag_id"],
        "run_id": r["run_id"],
        "state": r["run"]["state"],
        "wall_s": r["wall_s"],
        "queued_s": r["queued_s"],
        "run_s": r["run_s"],
        "task_s_sum": round(sum(t["duration"] or 0 for t in r["tis"]), 1),
        "dbt_tasks": len(dbt),
        "dbt_task_s_sum": round(sum(dbt), 1),
        "pickup_s_mean": round(sum(pickups) / len(pickups), 1) if pickups else None,
        "pickup_s_max": round(max(pickups), 1) if pickups else None,
        "task_states": states,
        "tasks_per_worker": {w: len(tasks) for w, tasks in sorted(per_worker.items())},
        "non_dbt_tasks": {
            t: {
                "worker": r["workers_of"].get(t),
                "queue": tis[t]["queue"],
                "pool": tis[t]["pool"],
                "state": tis[t]["state"],
                "duration_s": round(tis[t]["duration"] or 0, 1),
                "hostname": tis[t]["hostname"],
            }
            for t in tis
            if not t.startswith("dbt_")
        },
    }


def print_summary(summary: dict[str, Any]) -> None:
    print("\n== summary")
    for r in summary["runs"]:
        print(
            f"{r['dag_id']} {r['run_id']}: {r['state']} · trigger→end {r['wall_s']} s "
            f"(queued {r['queued_s']} s, running {r['run_s']} s) · task states {r['task_states']}"
        )
        print(
            f"  task seconds {r['task_s_sum']} (of which {r['dbt_tasks']} dbt tasks {r['dbt_task_s_sum']}) · "
            f"Celery pick-up (queued → started) mean {r['pickup_s_mean']} s, max {r['pickup_s_max']} s"
        )
        print(f"  tasks per Celery worker: {r['tasks_per_worker']}")
        for t, info in r["non_dbt_tasks"].items():
            print(
                f"  {t:<16} {info['state']:<8} worker={info['worker']} queue={info['queue']} "
                f"pool={info['pool']} {info['duration_s']} s"
            )
    print(f"assets emitted by the train run: {summary['published_assets']}")
    print(f"user_topn: {summary['served_users']} users after the train run")
    if "acting_user" in summary:
        user = summary["acting_user"]
        print(f"users whose top-N the refresh changed: {summary['changed_users']} (acting user {user})")
        print(f"user {user} top-5 before: {summary['acting_user_top5_before']}")
        print(f"user {user} top-5 after:  {summary['acting_user_top5_after']}")
    if summary["problems"]:
        print("FAILED checks:\n  " + "\n  ".join(summary["problems"]))
    else:
        print("all checks passed")
