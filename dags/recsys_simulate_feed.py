"""recsys_simulate_feed (demo): append live simulated events for a bounded time, for the refresh DAG to pick up."""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

from ml.orchestration import tasks


@dag(
    dag_id="recsys_simulate_feed",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["recsys", "demo"],
    default_args={"owner": "ml-platform", "retries": 0, "on_failure_callback": tasks.on_failure},
    doc_md=__doc__,
    params={
        "rate": Param(20.0, type="number", minimum=0.1, maximum=5000, description="Events per second."),
        "duration_s": Param(
            60, type="integer", minimum=1, maximum=3600, description="How long to feed (seconds)."
        ),
    },
)
def recsys_simulate_feed():
    @task
    def feed(params=None):
        return tasks.feed(float(params["rate"]), float(params["duration_s"]))

    feed()


recsys_simulate_feed()
