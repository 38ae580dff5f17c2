"""Task bodies of the Airflow DAGs: plain functions with JSON-able returns (XCom), callable anywhere.

The DAG files only declare; every ``@task`` calls one function here. Each function takes the
run's params as plain values and settings from the environment at call time.
"""

from __future__ import annotations

import logging
import math
import time
from datetime import date, datetime, timedelta
from typing import Any

from ml.config import get_settings

log = logging.getLogger(__name__)


class StaleData(RuntimeError):
    """Raw events are missing or older than the allowed staleness."""


def _skip(message: str) -> None:
    from airflow.sdk.exceptions import AirflowSkipException

    log.info("skipping: %s", message)
    raise AirflowSkipException(message)


def check_freshness(max_staleness_hours: float = 48.0, now: datetime | None = None) -> dict[str, Any]:
    """Fail when ``user_behavior`` is empty or its newest event is older than the allowed staleness.

    ``max_staleness_hours <= 0`` only reports (for replaying historical logs).
    """
    from ml.db import connect

    s = get_settings()
    conn = connect(s.raw_db, settings=s)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*), MAX(ts), MAX(event_id) FROM user_behavior")
            n, newest, max_id = cur.fetchone()
    finally:
        conn.close()
    if not n:
        raise StaleData(
            f"{s.raw_db}.user_behavior is empty: load events first (`recsys data simulate` or `recsys data import`)"
        )
    age_h = ((now or datetime.utcnow()) - newest).total_seconds() / 3600
    if max_staleness_hours > 0 and age_h > max_staleness_hours:
        raise StaleData(
            f"newest event is {age_h:.1f} h old ({newest}), more than max_staleness_hours={max_staleness_hours}"
        )
    return {
        "events": int(n),
        "newest_event_ts": newest.isoformat(),
        "max_event_id": int(max_id),
        "age_hours": round(age_h, 2),
    }


def quality_gate(stage: str, **params: Any) -> dict[str, Any]:
    """Run one GX stage. A violation fails the task at once, without its retries (the same data fails
    the same way: retrying only delays the alert), and stops downstream; a database error is raised
    as it is, so the task's retries still cover a server that was briefly away."""
    from airflow.sdk.exceptions import AirflowFailException

    from ml.quality.gates import QualityGateFailed, require_stage

    try:
        result = require_stage(stage, get_settings(), **params)
    except QualityGateFailed as exc:
        raise AirflowFailException(f"GX {stage} gate failed: {exc}") from exc
    log.info("%s", result.summary)
    return {"stage": stage, "success": result.success, "summary": result.summary}


def train(params: dict[str, Any]) -> dict[str, Any]:
    """Build point-in-time data, train, evaluate against baselines, register, and run the promotion gate."""
    from ml.training.config import from_params
    from ml.training.pipeline import train_pipeline

    cfg = from_params(params)
    out = train_pipeline(get_settings(), cfg, step=lambda msg: log.info("train: %s", msg))
    log.info(
        "train: run %s version %s promoted=%s (%s)",
        out["run_id"],
        out.get("version"),
        out["promoted"],
        out["reason"],
    )
    return _jsonable(out)


def publish_full(n: int | None = None) -> dict[str, Any]:
    """Score every active user with the champion; GX top-N check on the new tables; atomic swap."""
    from ml.publish.common import NoChampion
    from ml.publish.run import publish_champion_full

    try:
        return publish_champion_full(get_settings(), n=n or None)
    except NoChampion as exc:
        raise RuntimeError(f"nothing to publish: {exc}") from None


def log_online_metrics(days: int) -> dict[str, Any]:
    """Online metrics of the last ``days`` served days (outcome marts) → each serving version's MLflow
    run; versions not in the registry are skipped and named in the log."""
    from ml.registry.online import log_online_metrics as log_online

    out = log_online(get_settings(), days)
    log.info(
        "online metrics (%s..%s): logged %s; skipped %s",
        out.first_day,
        out.last_day,
        sorted(out.logged) or "none",
        out.skipped or "none",
    )
    return _jsonable(out)


def refresh_guard(wait_s: float = 0.0, poll_s: float = 1.0) -> dict[str, Any]:
    """Skip the refresh run (and say why) when no champion exists yet, when its full publish has not
    passed yet, or when nothing new arrived.

    ``wait_s`` (the back-to-back schedule, ``RECSYS_REFRESH_MINUTES=0``): check again every
    ``poll_s`` seconds for up to ``wait_s`` before skipping, so the run starts as soon as an event
    arrives while an idle shop makes one skipped run per ``wait_s``, not one per scheduler loop."""
    deadline = time.monotonic() + wait_s
    while True:
        seen, why = _refresh_due()
        if seen is not None:
            return seen
        if time.monotonic() >= deadline:
            _skip(why)
        time.sleep(poll_s)


def _refresh_due() -> tuple[dict[str, Any] | None, str]:
    """(what the refresh needs: version, watermark, newest event id; "") or (None, why not now)."""
    from ml.data.gaps import in_gaps_sql
    from ml.db import connect
    from ml.publish.common import ChampionNotPublished, NoChampion
    from ml.publish.locking import read_gaps, read_watermark
    from ml.publish.run import champion_version, require_published

    s = get_settings()
    try:
        version = champion_version(s)  # the registry only: loading the model here cost seconds per run
        require_published(s, version)
    except NoChampion as exc:
        return None, f"no champion yet ({exc}); run recsys_train first"
    except ChampionNotPublished as exc:
        return None, str(exc)
    conn = connect(settings=s)
    try:
        watermark, gaps = read_watermark(conn, s), read_gaps(conn, s)
        with conn.cursor() as cur:
            cur.execute(f"SELECT COALESCE(MAX(event_id), 0) FROM `{s.raw_db}`.user_behavior")
            newest = int(cur.fetchone()[0])
            # a gap below the watermark matters once an event has committed late inside it
            cur.execute(f"SELECT EXISTS(SELECT 1 FROM `{s.raw_db}`.user_behavior WHERE {in_gaps_sql(gaps)})")
            late = bool(cur.fetchone()[0])
    finally:
        conn.close()
    if newest <= watermark and not late:
        return None, f"no new events since event_id {watermark}" + (
            f" ({len(gaps)} gaps still empty)" if gaps else ""
        )
    return {"model_version": version, "watermark": watermark, "newest_event_id": newest}, ""


def refresh(upper_event_id: int | None = None, batch_size: int = 1000) -> dict[str, Any]:
    """Rescore only users with events after the watermark, one transaction per batch.

    ``upper_event_id`` is the newest event the guard saw before the realtime dbt models ran: events
    landing later wait for the next run instead of being marked done with features that missed them.
    """
    from ml.publish.ab import ChallengerNotPublished
    from ml.publish.run import publish_champion_refresh

    try:
        out = publish_champion_refresh(get_settings(), batch_size=batch_size, upper_event_id=upper_event_id)
    except ChallengerNotPublished as exc:  # an A/B alias moved: the train DAG's full publish is coming
        _skip(str(exc))
    log.info(
        "refresh: %s users, %s rows, events %s..%s %s",
        out.get("users"),
        out.get("rows"),
        out.get("from_event_id"),
        out.get("to_event_id"),
        out.get("message", ""),
    )
    return out


def feed(rate: float, duration_s: float, seed: int | None = None) -> dict[str, Any]:
    """Demo: append live simulated events for a bounded time."""
    from ml.data.feed import run_feed

    return _jsonable(run_feed(rate, duration_s, get_settings(), seed=seed))


def on_failure(context: dict[str, Any]) -> None:
    """Airflow ``on_failure_callback``: one log line naming the task and the reason."""
    ti = context.get("task_instance") or context.get("ti")
    exc = context.get("exception")
    reason = f"{type(exc).__name__}: {exc}".splitlines()[0] if exc else "unknown"
    task_id = getattr(ti, "task_id", "?")
    dag_id = getattr(ti, "dag_id", "?")
    log.error("recsys task failed: %s.%s: %s", dag_id, task_id, reason[:500])


def _jsonable(obj: Any) -> Any:
    from dataclasses import asdict, is_dataclass

    if is_dataclass(obj):
        obj = asdict(obj)
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, date):  # datetime too
        return obj.isoformat()
    if isinstance(obj, timedelta):
        return obj.total_seconds()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None  # XCom is strict JSON: a metric that is undefined (NaN) travels as null
    return obj
