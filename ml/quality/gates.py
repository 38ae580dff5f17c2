"""Data-quality gates: run one stage's Great Expectations checkpoint and say pass/fail compactly.

``run_stage(stage, settings, **params) -> QualityResult``; ``require_stage`` raises
:class:`QualityGateFailed` instead, so an Airflow task fails and nothing downstream runs.

Stages (checkpoints under ``expectations/gx/checkpoints``; suites registered in
``ml/quality/suites.py``, their expectations in ``ml/quality/expectations.py``):

- ``raw``: a batch of ``user_behavior`` events. ``frame=`` validates a batch as it arrives (the
  loader's frame in contract columns, before the raw table's constraints could reject rows);
  without it, the events landed after the last validated ``event_id`` (the raw watermark kept in
  the state file; ``since_event_id=`` overrides; the first run takes the newest ``max_rows``) are
  read, at most ``max_rows`` per run (the next run continues where this one stopped), together with
  the events that committed late in the gaps of ids below the watermark (:mod:`ml.data.gaps`).
- ``marts`` / ``realtime``: the dbt marts (all, or the two incremental ``realtime`` ones), with
  row counts compared with the previous successful run (``max_drop``, ``max_growth``).
- ``training``: ``ml_training_set`` in ``{prefix}recsys_pit`` (``database="marts"`` for marts).
- ``topn``: a top-N before publishing: ``table=`` in the serving database (default
  ``user_topn_new``) or ``frame=`` straight from a recommender; ``n`` rows per active user
  (users with an event in the last ``active_days`` before the newest event, or ``user_ids=``).

Results and Data Docs go under ``$RECSYS_HOME/gx/`` (:mod:`ml.quality.context`); the previous row
counts and the raw watermark in ``$RECSYS_HOME/gx/state.json`` (:mod:`ml.quality.state`), keyed by
database name, so prefixed databases never mix. The SQL reads are in :mod:`ml.quality.reads`, the
summary of GX results in :mod:`ml.quality.results`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml import contracts
from ml.config import Settings, get_settings
from ml.quality.context import get_context, prune_history
from ml.quality.reads import active_users, existing_tables, landed_batch, read_frame
from ml.quality.results import collect, row_counts, summarise
from ml.quality.state import gaps_json, load_state, raw_gaps, save_state
from ml.quality.suites import COUNTED_TABLES, STAGES, VALIDATIONS

if TYPE_CHECKING:
    import pandas as pd

#: Clock skew tolerated before an event time counts as "in the future" (as the loader).
FUTURE_SKEW = timedelta(minutes=5)
TOPN_COLUMNS = [c for c in contracts.TOPN_COLUMNS if c != "source"]  # what the GX top-N frame checks


@dataclass(frozen=True)
class QualityResult:
    """Outcome of one stage: ``success`` is the gate, ``summary`` a few lines for logs and CLI,
    ``details`` the per-validation failures, parameters, timing and the Data Docs path."""

    stage: str
    success: bool
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


class QualityGateFailed(RuntimeError):
    """A stage's data broke its contract; the message is the compact summary."""

    def __init__(self, result: QualityResult):
        super().__init__(result.summary)
        self.result = result


class QualityUsageError(ValueError):
    """A stage was asked for something it cannot check (unknown stage, missing table, ...)."""


def docs_index(settings: Settings) -> Path:
    """Where the Data Docs site is built (open it in a browser)."""
    return settings.home / "gx" / "data_docs" / "index.html"


def topn_frame(
    topn: pd.DataFrame,
    settings: Settings,
    *,
    users: Iterable[int],
    repeat_buy_category_ids: Iterable[int] = (),
    exclude_purchased: bool = True,
) -> pd.DataFrame:
    """The top-N rows enriched for the ``serving_topn`` suite: ``in_stock`` (NULL = unknown item),
    ``already_purchased`` (bought before, its category is not a repeat-buy one, and the model's
    rules exclude bought items: rules learned on a re-buying log may allow them),
    ``score_ordered`` (score not above the previous rank's), ``user_rows`` (rows of that user);
    plus one row with ``user_rows = 0`` per expected user who has no rows at all."""
    import numpy as np
    import pandas as pd

    missing_cols = set(TOPN_COLUMNS) - set(topn.columns)
    if missing_cols:
        raise QualityUsageError(f"top-N frame lacks columns {sorted(missing_cols)} (needs {TOPN_COLUMNS})")
    df = topn[TOPN_COLUMNS].copy()
    df["score"] = pd.to_numeric(df["score"], errors="coerce").astype(float)
    items = read_frame(f"SELECT item_id, in_stock, category_id FROM `{settings.raw_db}`.items", settings)
    df = df.merge(items, on="item_id", how="left")
    user_list = sorted({int(u) for u in df["user_id"].dropna()})
    bought = pd.DataFrame(columns=["user_id", "item_id"])
    if user_list:
        bought = read_frame(
            f"SELECT DISTINCT user_id, item_id FROM `{settings.raw_db}`.user_behavior "
            f"WHERE behavior_type = 'purchase' AND user_id IN ({','.join(map(str, user_list))})",
            settings,
        )
    bought = bought.assign(_bought=1)
    df = df.merge(bought, on=["user_id", "item_id"], how="left")
    repeat_ok = df["category_id"].isin(list(repeat_buy_category_ids))
    df["already_purchased"] = ((df["_bought"] == 1) & ~repeat_ok & exclude_purchased).astype(int)
    df = df.sort_values(["user_id", "rank"], kind="stable")
    prev = df.groupby("user_id")["score"].shift(1)
    df["score_ordered"] = np.where(prev.isna() | (df["score"] <= prev + 1e-12), 1, 0)
    df["user_rows"] = df.groupby("user_id")["user_id"].transform("size").astype(int)
    missing = sorted(set(int(u) for u in users) - set(user_list))
    if missing:
        df = pd.concat([df, pd.DataFrame({"user_id": missing, "user_rows": 0})], ignore_index=True)
    return df.drop(columns=["_bought", "category_id"]).reset_index(drop=True)


# ------------------------------------------------------------------------------ stage preparation


@dataclass
class _Plan:
    """What one checkpoint run needs, and what to remember after a success."""

    batch_parameters: dict[str, Any] | None = None
    expectation_parameters: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    training_db: str | None = None
    skip_reason: str | None = None
    raw_gaps: list[Any] | None = None  # raw: the gaps below the new watermark (ml.data.gaps)


def _prepare_raw(
    s: Settings,
    frame: pd.DataFrame | None = None,
    since_event_id: int | None = None,
    max_rows: int = 1_000_000,
    now: datetime | None = None,
) -> _Plan:
    import pandas as pd

    plan = _Plan()
    if frame is None:
        entry = load_state(s).get(s.raw_db, {})
        since = since_event_id if since_event_id is not None else entry.get("raw_watermark")
        if since is None:  # first gate on this database: the newest max_rows events are the batch
            newest = read_frame(f"SELECT COALESCE(MAX(event_id), 0) AS m FROM `{s.raw_db}`.user_behavior", s)[
                "m"
            ][0]
            since = max(0, int(newest) - max_rows)
        since = int(since)
        gaps = raw_gaps(entry)
        frame, plan.raw_gaps = landed_batch(s, since, max_rows, gaps)
        plan.info.update(source=f"{s.raw_db}.user_behavior event_id > {since}", since_event_id=since)
        if gaps:
            plan.info["source"] += f" or in {len(gaps)} gap(s) below it"
        if not frame.empty and frame["event_id"].max() > since:
            plan.info["max_event_id"] = int(frame["event_id"].max())
    else:
        plan.info["source"] = "frame"
    plan.info["rows"] = len(frame)
    if frame.empty:
        plan.skip_reason = "no new events to validate"
        return plan
    frame = frame.copy()
    if "ts" in frame.columns:
        frame["ts"] = pd.to_datetime(frame["ts"], errors="coerce")
    current = now or datetime.now(UTC).replace(tzinfo=None)
    plan.batch_parameters = {"dataframe": frame}
    plan.expectation_parameters["max_event_ts"] = current + FUTURE_SKEW
    return plan


def _count_bounds(prev: int | None, max_drop: float, max_growth: float) -> tuple[int, int]:
    if not prev:
        return 1, 10**12
    return max(1, math.floor(prev * (1 - max_drop))), math.ceil(prev * (1 + max_growth))


def _prepare_marts(s: Settings, stage: str, max_drop: float = 0.5, max_growth: float = 2.0) -> _Plan:
    tables = [VALIDATIONS[v].asset for v in STAGES[stage]]
    missing = sorted(set(tables) - existing_tables(s, s.marts_db))
    if missing:
        raise QualityUsageError(f"{s.marts_db} lacks {', '.join(missing)}: run `dbt build` first")
    prev = load_state(s).get(s.marts_db, {}).get("row_counts", {})
    plan = _Plan(info={"previous_row_counts": prev})
    for t in COUNTED_TABLES:
        lo, hi = _count_bounds(prev.get(t), max_drop, max_growth)
        plan.expectation_parameters[f"{t}_min_rows"] = lo
        plan.expectation_parameters[f"{t}_max_rows"] = hi
    return plan


def _prepare_training(s: Settings, database: str = "pit") -> _Plan:
    from ml.features.datasets import pit_db

    db = {"pit": pit_db(s), "marts": s.marts_db}.get(database, database)
    if "ml_training_set" not in existing_tables(s, db):
        raise QualityUsageError(f"{db}.ml_training_set does not exist: build it with dbt (cut_ts set) first")
    return _Plan(info={"database": db}, training_db=db)


def _prepare_topn(
    s: Settings,
    table: str = "user_topn_new",
    frame: pd.DataFrame | None = None,
    n: int | None = None,
    user_ids: Iterable[int] | None = None,
    active_days: int = 30,
    repeat_buy_category_ids: Iterable[int] = (),
    exclude_purchased: bool = True,
) -> _Plan:
    n = n or s.topn
    if frame is None:
        if table not in existing_tables(s, s.serving_db):
            raise QualityUsageError(f"{s.serving_db}.{table} does not exist")
        frame = read_frame(f"SELECT user_id, `rank`, item_id, score FROM `{s.serving_db}`.`{table}`", s)
        source = f"{s.serving_db}.{table}"
    else:
        source = "frame"
    users = list(user_ids) if user_ids is not None else active_users(s, active_days)
    enriched = topn_frame(
        frame,
        s,
        users=users,
        repeat_buy_category_ids=repeat_buy_category_ids,
        exclude_purchased=exclude_purchased,
    )
    info = {"source": source, "n": n, "rows": len(frame), "expected_users": len(users)}
    return _Plan(batch_parameters={"dataframe": enriched}, expectation_parameters={"topn_n": n}, info=info)


# ------------------------------------------------------------------------------------ entry points


def run_stage(
    stage: str, settings: Settings | None = None, *, build_docs: bool = True, **params: Any
) -> QualityResult:
    """Run the checkpoint of ``stage`` (raw, marts, realtime, training, topn) with the stage's
    ``params`` (see the module docstring) and return the outcome; never raises on bad data."""
    if stage not in STAGES:
        raise QualityUsageError(f"unknown quality stage {stage!r}; choose one of {', '.join(STAGES)}")
    s = settings or get_settings()
    t0 = time.perf_counter()
    if stage == "raw":
        plan = _prepare_raw(s, **params)
    elif stage in ("marts", "realtime"):
        plan = _prepare_marts(s, stage, **params)
    elif stage == "training":
        plan = _prepare_training(s, **params)
    else:
        plan = _prepare_topn(s, **params)
    if plan.skip_reason:
        _remember(s, stage, True, [], plan)  # raw: gaps that closed are dropped
        summary = f"quality {stage}: PASSED — {plan.skip_reason} [{plan.info.get('source', '')}]"
        return QualityResult(
            stage, True, summary, {"validations": [], **plan.info, "skipped": plan.skip_reason}
        )

    ctx = get_context(s, training_db=plan.training_db)
    run_kwargs = {
        "batch_parameters": plan.batch_parameters,
        "expectation_parameters": plan.expectation_parameters,
    }
    if build_docs:  # the committed checkpoint: validations + its update_data_docs action
        suite_results = list(ctx.checkpoints.get(stage).run(**run_kwargs).run_results.values())
    else:  # the same validation definitions, without rendering Data Docs
        suite_results = [ctx.validation_definitions.get(name).run(**run_kwargs) for name in STAGES[stage]]
    validations = collect(suite_results)
    success = all(v["success"] for v in validations)
    seconds = time.perf_counter() - t0
    docs = docs_index(s) if build_docs else None
    _remember(s, stage, success, validations, plan)
    if build_docs:
        prune_history(s)
    details = {
        "validations": validations,
        "parameters": {k: str(v) for k, v in plan.expectation_parameters.items()},
        "seconds": round(seconds, 3),
        "data_docs": str(docs) if docs else None,
        **plan.info,
    }
    return QualityResult(stage, success, summarise(stage, validations, plan.info, seconds, docs), details)


def _remember(s: Settings, stage: str, success: bool, validations: list[dict[str, Any]], plan: _Plan) -> None:
    """After a success: the new mart row counts, or the raw watermark (landed events only)."""
    if not success:
        return
    if stage in ("marts", "realtime"):
        state = load_state(s)
        entry = state.setdefault(s.marts_db, {})
        entry.setdefault("row_counts", {}).update(row_counts(validations))
        entry["updated_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        save_state(s, state)
    elif stage == "raw" and plan.raw_gaps is not None:
        state = load_state(s)
        entry = state.setdefault(s.raw_db, {})
        if "max_event_id" in plan.info:
            entry["raw_watermark"] = plan.info["max_event_id"]
        entry["raw_gaps"] = gaps_json(plan.raw_gaps)
        save_state(s, state)


def require_stage(stage: str, settings: Settings | None = None, **params: Any) -> QualityResult:
    """Like :func:`run_stage` but raises :class:`QualityGateFailed` on failure (for Airflow tasks:
    the task fails, so nothing downstream of the gate runs)."""
    result = run_stage(stage, settings, **params)
    if not result.success:
        raise QualityGateFailed(result)
    return result
