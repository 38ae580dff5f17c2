"""recsys_refresh: every few minutes (or back to back), re-score only the users who just acted, with the champion."""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable, dag, task

from ml.orchestration import tasks
from ml.orchestration.cosmos import dbt_build_task

MINUTES = int(os.environ.get("RECSYS_REFRESH_MINUTES", "5"))
#: back to back (MINUTES = 0): how long the guard waits for an event before it skips the run
IDLE_SECONDS = float(os.environ.get("RECSYS_REFRESH_IDLE_SECONDS", "60"))
USER_TOPN, PUBLISHED = Asset("recsys_user_topn"), Asset("recsys_published_champion")

if MINUTES > 0:
    # every MINUTES minutes, and right after a champion's full publish passed (not when it is only
    # registered: its lists have not passed the GX top-N check yet)
    SCHEDULE: object = AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(f"*/{MINUTES} * * * *", timezone="UTC"), assets=PUBLISHED
    )
    GUARD_WAIT_S = 0.0
else:
    # back to back: the next run starts when one ends (Airflow 3 `@continuous`, one run at a time), so
    # an event waits for at most the chain in progress, not a cron interval (docs/scaling.md,
    # Freshness). No asset trigger: a run is always in progress or starting, and the guard skips until
    # a new champion's full publish passed. The guard waits for events, so an idle shop makes one
    # skipped run per IDLE_SECONDS instead of one per scheduler loop.
    SCHEDULE = "@continuous"
    GUARD_WAIT_S = IDLE_SECONDS


@dag(
    dag_id="recsys_refresh",
    schedule=SCHEDULE,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=max(MINUTES * 3, 10)),
    tags=["recsys", "refresh"],
    default_args={
        "owner": "ml-platform",
        "on_failure_callback": tasks.on_failure,
        "retries": 1,
        "retry_delay": timedelta(seconds=20),
    },
    doc_md=__doc__
    + "\n\nSkips (and says why) when no champion exists yet, when the champion's full publish has not"
    " passed yet, or when no event arrived after the watermark.",
)
def recsys_refresh():
    @task(
        doc_md="Skip unless a champion exists and events arrived after the watermark (back to back: waits first)."
    )
    def guard():
        return tasks.refresh_guard(wait_s=GUARD_WAIT_S)

    # one `dbt build` of the realtime models (and their tests) in one process: a task per model
    # would cost a dbt start-up each, most of the event -> refreshed-list latency
    dbt_realtime = dbt_build_task(
        "dbt_realtime",
        select="tag:realtime",
        retries=1,
        retry_delay=timedelta(seconds=20),
        retry_exponential_backoff=False,
        doc_md="`dbt build --select tag:realtime` (Cosmos): the realtime marts of the users who acted and their tests.",
    )

    @task(doc_md="Light GX check of the two incremental realtime marts.")
    def gx_realtime():
        return tasks.quality_gate("realtime")

    @task(
        outlets=[USER_TOPN],
        doc_md="Replace the new actors' rows, one transaction per batch; advance the watermark after commit.",
    )
    def refresh(seen: dict):
        return tasks.refresh(upper_event_id=seen["newest_event_id"])

    seen = guard()
    seen >> dbt_realtime >> gx_realtime() >> refresh(seen)


recsys_refresh()
