"""The publisher's fatigue hook: wrap the recommender so items a user was shown N times without
engaging are demoted (:mod:`ml.models.fatigue`), in the full publish and in the refresh alike.

Where N and the decay live: a full publish fits them on the impression log (``recsys_raw.impressions``
joined to the users' item events, the last ``lookback_days``) and appends one row to
``recsys_serving.fatigue_params`` (migration 0016) before it scores; a refresh demotes with the
row of the newest full publish that went live (``publish_log``), so both writers use the same demotion until the next full publish. A log too small to
fit, or one without a significant drop, stores a row with ``min_shows`` NULL (no demotion) and its
reason, which the publisher logs. ``RECSYS_FATIGUE=0`` turns the hook off (nothing fitted or read).

Exposures are read per scoring batch with one query: the batch users' impressions since the log's
anchor minus ``lookback_days``, left out where the user has an event on the item at or after the
show, counted per (user, item) and kept from ``min_shows`` on.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

import pandas as pd
import pymysql

from ml.config import Settings
from ml.models.fatigue import (
    FatigueFitConfig,
    FatigueParams,
    FatigueRecommender,
    exposure_table,
    fit_fatigue,
    no_demotion,
)
from ml.publish.ab import ChallengerLists
from ml.publish.common import Recommender, scalar
from ml.publish.common import read_rows as _frame

log = logging.getLogger(__name__)


def user_sample_modulus(
    conn: pymysql.connections.Connection, s: Settings, since: datetime, max_rows: int
) -> int:
    """m such that the users with ``CRC32(user_id) % m = 0`` hold about ``max_rows`` of the shows since
    ``since`` (1: read all). The row count is estimated from impression ids (the newest id minus the
    first id served at or after ``since``: two index look-ups, no scan)."""
    raw = f"`{s.raw_db}`"
    first = scalar(
        conn,
        f"SELECT impression_id FROM {raw}.impressions WHERE served_at >= %s ORDER BY served_at LIMIT 1",
        (since,),
    )
    if first is None:
        return 1
    rows = int(scalar(conn, f"SELECT MAX(impression_id) FROM {raw}.impressions")) - int(first) + 1  # type: ignore[arg-type]
    return max(1, math.ceil(rows / max_rows))


def read_log(
    conn: pymysql.connections.Connection, s: Settings, since: datetime, modulus: int = 1
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(impressions, item events) of the fit: shows to known users since ``since`` and the events of
    those users on those items since then; with ``modulus`` > 1 only the users whose
    ``CRC32(user_id) % modulus = 0`` (every show of each, so their exposure counts stay exact)."""
    raw = f"`{s.raw_db}`"
    sample = "" if modulus <= 1 else f" AND MOD(CRC32(user_id), {int(modulus)}) = 0"
    imps = _frame(
        conn,
        f"SELECT user_id, item_id, `rank`, served_at FROM {raw}.impressions "
        f"WHERE user_id IS NOT NULL AND served_at >= %s{sample}",
        ["user_id", "item_id", "rank", "served_at"],
        (since,),
    )
    events = _frame(
        conn,
        f"SELECT e.user_id, e.item_id, e.ts FROM {raw}.user_behavior e JOIN (SELECT DISTINCT user_id, item_id "
        f"FROM {raw}.impressions WHERE user_id IS NOT NULL AND served_at >= %s{sample}) p "
        "ON p.user_id = e.user_id AND p.item_id = e.item_id WHERE e.ts >= %s",
        ["user_id", "item_id", "ts"],
        (since, since),
    )
    return imps, events


def _anchor(conn: pymysql.connections.Connection, s: Settings) -> datetime | None:
    """Newest show in the log: the lookback is counted back from it."""
    return scalar(conn, f"SELECT MAX(served_at) FROM `{s.raw_db}`.impressions WHERE user_id IS NOT NULL")  # type: ignore[return-value]


def fit_and_store(
    conn: pymysql.connections.Connection, s: Settings, run_id: str, cfg: FatigueFitConfig | None = None
) -> FatigueParams:
    """Fit N and decay on the impression log and append them to ``fatigue_params``."""
    cfg = cfg or FatigueFitConfig()
    anchor = _anchor(conn, s)
    if anchor is None:
        params = no_demotion("no impressions logged yet: no demotion")
    else:
        since = anchor - timedelta(days=cfg.lookback_days)
        modulus = user_sample_modulus(conn, s, since, cfg.max_fit_impressions)
        if modulus > 1:
            log.info(
                "fatigue fit: users with CRC32(user_id) %% %d = 0 (about %d shows)",
                modulus,
                cfg.max_fit_impressions,
            )
        imps, events = read_log(conn, s, since, modulus)
        params = fit_fatigue(exposure_table(imps, events, cfg.window_s), cfg)
    with conn.cursor() as cur:
        cur.execute(
            f"INSERT INTO `{s.serving_db}`.fatigue_params (run_id, fitted_at, min_shows, decay, impressions, clicks, "
            "reason, ctr_table) VALUES (%s, NOW(3), %s, %s, %s, %s, %s, %s)",
            (
                run_id,
                params.min_shows,
                params.decay,
                params.impressions,
                params.clicks,
                params.reason[:255],
                params.table_json(),
            ),
        )
    return params


def stored_params(conn: pymysql.connections.Connection, s: Settings) -> FatigueParams:
    """The demotion of the newest full publish that went live (none yet: no demotion).

    A full publish stores its fit before it scores; one that then fails validation never writes its
    ``publish_log`` row, so its fit is never used: the join keeps the live lists and the refresh on
    the same N and decay."""
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT f.min_shows, f.decay, f.reason, f.impressions, f.clicks FROM `{s.serving_db}`.fatigue_params f "
            f"JOIN `{s.serving_db}`.publish_log p ON p.run_id = f.run_id AND p.kind = 'full' "
            "ORDER BY f.id DESC LIMIT 1"
        )
        row = cur.fetchone()
    if row is None:
        return no_demotion("no fatigue fit stored yet (the next full publish fits one): no demotion")
    n, decay, reason, imps, clicks = row
    return FatigueParams(None if n is None else int(n), float(decay), str(reason), int(imps), int(clicks))


def read_exposures(
    conn: pymysql.connections.Connection,
    s: Settings,
    user_ids: Sequence[int],
    min_shows: int,
    since: datetime,
) -> pd.DataFrame:
    """(user_id, item_id, shows): unengaged shows since ``since`` (and since the user's last event on
    the item) of these users, pairs with at least ``min_shows``; one query."""
    if not user_ids:
        return pd.DataFrame(columns=["user_id", "item_id", "shows"])
    ids = ",".join(str(int(u)) for u in user_ids)
    raw = f"`{s.raw_db}`"
    return _frame(
        conn,
        f"SELECT i.user_id, i.item_id, COUNT(*) AS shows FROM {raw}.impressions i "
        f"LEFT JOIN (SELECT user_id, item_id, MAX(ts) AS last_ts FROM {raw}.user_behavior "
        f"WHERE user_id IN ({ids}) AND item_id IS NOT NULL GROUP BY user_id, item_id) e "
        "ON e.user_id = i.user_id AND e.item_id = i.item_id "
        f"WHERE i.user_id IN ({ids}) AND i.served_at >= %s AND (e.last_ts IS NULL OR i.served_at > e.last_ts) "
        "GROUP BY i.user_id, i.item_id HAVING COUNT(*) >= %s",
        ["user_id", "item_id", "shows"],
        (since, int(min_shows)),
    )


def with_fatigue(
    conn: pymysql.connections.Connection,
    s: Settings,
    recommender: Recommender,
    *,
    fit_run_id: str | None = None,
    cfg: FatigueFitConfig | None = None,
) -> Recommender:
    """The publisher's hook: ``recommender`` with tired items demoted, or unchanged when fatigue is
    off (``RECSYS_FATIGUE=0``) or no demotion applies. ``fit_run_id`` (a full publish): fit on the
    log and store first; None (a refresh): use the newest stored fit."""
    if not s.fatigue:
        log.info("fatigue demotion off (RECSYS_FATIGUE=0)")
        return recommender
    cfg = cfg or FatigueFitConfig()
    params = fit_and_store(conn, s, fit_run_id, cfg) if fit_run_id else stored_params(conn, s)
    anchor = _anchor(conn, s)
    if not params.active or anchor is None:
        log.info("fatigue: %s", params.reason)
        return recommender
    since = anchor - timedelta(days=cfg.lookback_days)
    log.info(
        "fatigue: demoting from %s unengaged show(s), decay %.3f (%s)",
        params.min_shows,
        params.decay,
        params.reason,
    )
    return FatigueRecommender(
        recommender, params, lambda users, min_shows: read_exposures(conn, s, users, min_shows, since)
    )


def challenger_alike(recommender: Recommender, challenger: ChallengerLists | None) -> ChallengerLists | None:
    """The A/B challenger demoted exactly as ``recommender`` (the champion after :func:`with_fatigue`)
    is: both arms get the same serving treatment, so the experiment compares the models alone."""
    if challenger is None or not isinstance(recommender, FatigueRecommender):
        return challenger
    return replace(challenger, recommender=recommender.like(challenger.recommender))
