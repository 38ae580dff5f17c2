"""Online metrics of what was served → the MLflow run of the registered version that served it.

The outcome marts (dbt ``models/marts/outcomes``) measure each served list after the fact:
``rpt_model_online_daily`` per day x model version, ``rpt_model_online_metrics`` per day x version x
list source x A/B arm x endpoint. After each full publish the train DAG logs the last
``days`` served days (up to the newest day in the report, so a replayed log works like a live one)
to the run behind each registered version: metrics ``online.<name>`` (``online.ctr_at_10``, ...)
with step = the served day as days since 1970-01-01, so a day keeps its step across DAG runs, and
the version's slice rows as the artifact ``online/rpt_model_online_metrics.csv``.

A day's numbers move while its impressions mature, so a day is logged again when a value changed
(MLflow keeps the history; the latest write wins) and skipped when it did not: a rerun adds nothing.
Versions that are not in the registry (a NULL model version, another model, a deleted version) are
skipped and said so in the log.
"""

from __future__ import annotations

import logging
import re
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from ml.config import Settings

log = logging.getLogger(__name__)

#: what the train DAG's doc (the Airflow UI) says about the outcome marts and this logging
OUTCOME_MARTS_DOC = """**Outcome marts** (dbt tag `outcomes`, built in `dbt_marts`, never by the refresh): `fct_served_outcomes`
has one row per impression (what the reader served) with what the user did with the item within
`outcome_window_hours` (24) after it: clicked (a view), carted (cart or fav), purchased. Last touch:
an event counts for the latest earlier showing of that item to that user only. Immature impressions
(window still open at the log's newest event) and anonymous ones are kept but not rated.
`rpt_model_online_metrics` (day × model version × list source × A/B arm × endpoint) and
`rpt_model_online_daily` (day × version): CTR@10, list CTR@10, cart and purchase rates, coverage,
repeat share. After the publish, `log_online_metrics` writes the last `online_metrics_days` days to
each registered version's MLflow run (`online.*`, step = day; artifact
`online/rpt_model_online_metrics.csv`); versions not in the registry are skipped and logged."""
#: days of the report logged per run (the train DAG's param online_metrics_days, the CLI's --days)
ONLINE_METRICS_DAYS = 7
DAILY_TABLE = "rpt_model_online_daily"
SLICE_TABLE = "rpt_model_online_metrics"
ARTIFACT_DIR = "online"
PREFIX = "online."
#: the rates of the outcome marts (NULL when nothing matured: then not logged)
RATES = ("ctr_at_10", "list_ctr_at_10", "cart_rate", "purchase_rate", "coverage", "repeat_share")
#: what is logged per day: counts, then the rates
METRICS = (
    "impressions",
    "lists",
    "users",
    "matured_impressions",
    "clicks_at_10",
    "carts",
    "purchases",
    *RATES,
)
#: the model_version the publisher writes: ``<registered name>/<version>`` (``:baseline-<b>`` for a baseline)
_MODEL_VERSION = re.compile(r"^(?P<name>[^/:]+)/(?P<version>\d+)(?::.*)?$")


@dataclass
class OnlineLogResult:
    """What one logging pass did: per model version the run and the (day, metric) values written,
    and per skipped version why."""

    days: int
    first_day: date | None = None
    last_day: date | None = None
    logged: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def parse_model_version(model_version: str | None) -> tuple[str, str] | None:
    """``("<name>", "<version>")`` of a served model_version, or None when it names no registered version."""
    m = _MODEL_VERSION.match(model_version or "")
    return (m["name"], m["version"]) if m else None


def day_step(day: date) -> int:
    """The MLflow step of a served day: days since 1970-01-01."""
    return (day - date(1970, 1, 1)).days


def read_report(settings: Settings, table: str, days: int) -> pd.DataFrame:
    """The report's rows of its last ``days`` served days (empty when nothing was served)."""
    from ml.features.datasets import read_sql

    if table not in (DAILY_TABLE, SLICE_TABLE):
        raise ValueError(f"not an online report: {table!r}")
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    sql = (
        f"SELECT * FROM `{table}` WHERE served_date > (SELECT MAX(served_date) FROM `{table}`) - INTERVAL %s DAY"
        " ORDER BY served_date, model_version"
    )
    return read_sql(sql, settings, (days,), database=settings.marts_db)  # rates are DOUBLE, counts BIGINT


def _last_values(client: Any, run_id: str, key: str) -> dict[int, float]:
    """The latest logged value per step of one metric of a run."""
    last: dict[int, tuple[int, float]] = {}
    for m in client.get_metric_history(run_id, key):
        if m.step not in last or m.timestamp >= last[m.step][0]:
            last[m.step] = (m.timestamp, m.value)
    return {step: value for step, (_, value) in last.items()}


def _new_metrics(client: Any, run_id: str, rows: pd.DataFrame) -> list[Any]:
    """The (metric, day) values of ``rows`` that differ from what the run holds at that step."""
    from mlflow.entities import Metric

    now_ms = int(time.time() * 1000)
    out = []
    for name in METRICS:
        key = PREFIX + name
        have = _last_values(client, run_id, key)
        for day, value in zip(rows["served_date"], rows[name]):
            if value is None or pd.isna(value):
                continue
            step = day_step(day)
            if step in have and have[step] == float(value):
                continue
            out.append(Metric(key=key, value=float(value), timestamp=now_ms, step=step))
    return out


def _log_artifact(client: Any, run_id: str, rows: pd.DataFrame) -> None:
    with tempfile.TemporaryDirectory(prefix="recsys_online_") as tmp:
        path = Path(tmp) / f"{SLICE_TABLE}.csv"
        rows.to_csv(path, index=False)
        client.log_artifact(run_id, str(path), ARTIFACT_DIR)


def _run_of(client: Any, model_version: str | None) -> tuple[str | None, str]:
    """(run id, "") of the registered version behind a served model_version, or (None, why not)."""
    from mlflow.exceptions import MlflowException

    parsed = parse_model_version(model_version)
    if parsed is None:
        return None, "not a registered model version (expected '<model>/<version>')"
    try:
        mv = client.get_model_version(*parsed)
    except MlflowException as exc:
        return None, f"not in the registry ({str(exc).splitlines()[0][:200]})"
    if not mv.run_id:
        return None, "registered without an MLflow run"
    return mv.run_id, ""


def log_online_metrics(settings: Settings, days: int = ONLINE_METRICS_DAYS) -> OnlineLogResult:
    """Log the last ``days`` served days of every served model version to its registered version's run."""
    from ml.registry import store

    daily = read_report(settings, DAILY_TABLE, days)
    result = OnlineLogResult(days=days)
    if daily.empty:
        log.info("online metrics: no served impressions in %s: nothing to log", DAILY_TABLE)
        return result
    result.first_day, result.last_day = min(daily["served_date"]), max(daily["served_date"])
    slices = read_report(settings, SLICE_TABLE, days)
    client = store.configure(settings)
    for model_version, rows in daily.groupby("model_version", dropna=False, sort=True):
        label = "(none)" if pd.isna(model_version) else str(model_version)
        run_id, why = _run_of(client, None if pd.isna(model_version) else str(model_version))
        if run_id is None:
            result.skipped[label] = why
            log.info("online metrics: skipped model version %s: %s", label, why)
            continue
        metrics = _new_metrics(client, run_id, rows)
        for start in range(0, len(metrics), 1000):  # MLflow takes at most 1000 metrics per batch
            client.log_batch(run_id, metrics=metrics[start : start + 1000])
        _log_artifact(client, run_id, slices[slices["model_version"] == model_version])
        result.logged[label] = {"run_id": run_id, "days": len(rows), "metrics_written": len(metrics)}
        log.info(
            "online metrics: %s -> run %s: %d days, %d values written", label, run_id, len(rows), len(metrics)
        )
    return result
