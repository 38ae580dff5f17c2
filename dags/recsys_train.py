"""recsys_train: raw freshness → dbt marts (Cosmos) → GX gate → train/evaluate/gate → GX-checked atomic publish."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, Param, dag, task

from ml.orchestration import tasks
from ml.orchestration.cosmos import dbt_cross_model_tests, dbt_task_group
from ml.registry.online import ONLINE_METRICS_DAYS, OUTCOME_MARTS_DOC
from ml.training.config import OPTIONS, param_specs

MARTS, CHAMPION, USER_TOPN = Asset("recsys_marts"), Asset("recsys_champion_model"), Asset("recsys_user_topn")
# emitted only once the champion's full publish passed its GX check and swapped in
PUBLISHED = Asset("recsys_published_champion")
DB_RETRIES = {"retries": 2, "retry_delay": timedelta(seconds=30), "retry_exponential_backoff": True}


@dag(
    dag_id="recsys_train",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["recsys", "train"],
    default_args={"owner": "ml-platform", "on_failure_callback": tasks.on_failure, **DB_RETRIES},
    doc_md=__doc__
    + "\n\nTrigger from the UI with the params below. A failed quality gate stops the run and leaves serving untouched."
    + "\n\n"
    + OUTCOME_MARTS_DOC,
    params={
        "max_staleness_hours": Param(
            48.0, type="number", description="Fail when the newest event is older (<= 0: report only)."
        ),
        **{name: Param(**spec) for name, spec in param_specs().items()},
        "topn": Param(
            0,
            type="integer",
            minimum=0,
            maximum=500,
            description="Rows per user to publish (0 = RECSYS_TOPN).",
        ),
        "online_metrics_days": Param(
            ONLINE_METRICS_DAYS, type="integer", minimum=1, description="Served days logged to MLflow."
        ),
    },
)
def recsys_train():
    @task(doc_md="Fails when raw events are missing or stale.")
    def check_freshness(params=None):
        return tasks.check_freshness(float(params["max_staleness_hours"]))

    @task(doc_md="GX `raw` suite on events landed since the last validated batch.")
    def gx_raw():
        return tasks.quality_gate("raw")

    dbt_marts = dbt_task_group("dbt_marts", select=["path:models"], exclude=["tag:pit"])
    # the relationships tests between the marts, in one dbt process once every model is built
    dbt_marts_relationships = dbt_cross_model_tests(
        "dbt_marts_relationships", select="path:models", exclude="tag:pit"
    )

    @task(
        outlets=[MARTS],
        doc_md="GX `marts` suites: keys, rates, nulls, distributions, row counts vs last run.",
    )
    def gx_marts():
        return tasks.quality_gate("marts")

    @task(
        queue="gpu",
        pool="gpu",
        retries=0,
        outlets=[CHAMPION],
        execution_timeout=timedelta(hours=4),
        doc_md="Point-in-time dbt builds per cut, TF ranker, LightGBM/XGBoost rerankers, baselines, MLflow run, registry and promotion gate. Runs on a GPU worker when one serves the `gpu` queue.",
    )
    def train(params=None):
        return tasks.train({k: params[k] for k in OPTIONS})

    @task(
        outlets=[USER_TOPN, PUBLISHED],
        doc_md="Score all active users with the champion; GX top-N check on `*_new`; one atomic RENAME. Triggers a refresh once it passed.",
    )
    def publish(params=None):
        return tasks.publish_full(int(params["topn"]))

    @task(
        doc_md="Online metrics (outcome marts) of the last served days → each serving version's MLflow run."
    )
    def log_online_metrics(params=None):
        return tasks.log_online_metrics(int(params["online_metrics_days"]))

    (
        check_freshness()
        >> gx_raw()
        >> dbt_marts
        >> dbt_marts_relationships
        >> gx_marts()
        >> train()
        >> publish()
        >> log_online_metrics()
    )


recsys_train()
