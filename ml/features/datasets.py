"""Frames the models read: dbt outputs of one cut (or of the current marts) plus raw events.

A point-in-time build writes the ``ml_*``/``dim_*`` tables into ``{prefix}recsys_pit``; each build
replaces the previous one, so :func:`load_cut` reads them right after building and keeps them in
memory. Raw events are read only for baselines and evaluation (the label window's ground truth).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import partial

import pandas as pd

from ml.config import Settings
from ml.features.protocol import SESSION_CUT_COLUMNS, cut_str
from ml.features.raw_reads import (  # noqa: F401 (EVENT_COLUMNS, log_profile, load_intents: read here by callers)
    EVENT_COLUMNS,
    EventSpan,
    _users_clause,
    load_events,
    load_intents,
    load_items,
    load_purchases,
    log_profile,
    max_event_ts,
    numeric,
    order_by,
    primary_keys,
    read_sql,
)

#: dbt models read per cut, in `{prefix}recsys_pit` (or `recsys_marts` for serving).
PIT_TABLES = (
    "dim_users",
    "dim_items",
    "fct_session_intent",
    "ml_covisitation",
    "ml_candidates",
    "int_user_items_aggregated",
)
#: what :func:`load_cut` builds (with everything upstream) and reads from a point-in-time build
CUT_MODELS = (*PIT_TABLES, "ml_labels")
#: dbt models read when the database has them (kept in ``CutData.extra``): the search marts exist
#: only where the search models were built. A point-in-time cut reads one only when the point-in-time
#: build selects it (:func:`pit_builds`): a copy left in ``recsys_pit`` by another build belongs to
#: another cut. (ml_query_item is not selected today: in a point-in-time build of the default shop its
#: upstream int_search_session_events alone ran over 6 minutes, while ml.search.engagement computes
#: the same rows from the cut's history, with the same dbt vars, in about a second.)
OPTIONAL_TABLES = ("ml_query_item",)
#: models of the serving view keyed by user: a refresh reads only its users' rows of them
#: (``load_cut(users=...)``); every other table is item-level and read whole
USER_TABLES = ("dim_users", "fct_session_intent", "ml_candidates", "int_user_items_aggregated")


def pit_db(settings: Settings) -> str:
    """``{prefix}recsys_pit`` for the settings' prefix (docs/contracts.md)."""
    from ml.features.dbt import pit_database

    return pit_database(settings)


@dataclass
class CutData:
    """Everything one cut needs. ``cut_ts`` None means the serving view (all events so far)."""

    cut_ts: pd.Timestamp | None
    items: pd.DataFrame  # raw catalogue: item_id, category_id, in_stock, price
    users: pd.DataFrame  # dim_users
    item_features: pd.DataFrame  # dim_items
    intent: pd.DataFrame  # fct_session_intent
    covis: pd.DataFrame  # ml_covisitation
    candidates: pd.DataFrame  # ml_candidates
    history: pd.DataFrame  # raw events in [cut - history_days, cut)
    purchased: pd.DataFrame  # (user_id, item_id) bought before the cut
    user_items: pd.DataFrame | None = None  # int_user_items_aggregated (user × item counts, last times)
    labels: pd.DataFrame | None = None  # ml_labels
    window: pd.DataFrame | None = None  # raw events in the label window (rest of session in a session cut)
    revealed: pd.DataFrame | None = None  # session cut: each user's revealed session start (after cut_ts)
    label_hours: float | None = None
    extra: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def user_history(self) -> pd.DataFrame:
        """What a user-level model may read: the history plus a session cut's revealed events.
        (Item-level statistics such as popularity use ``history`` alone: the revealed events of
        other users lie after the cut.)"""
        if self.revealed is None or self.revealed.empty:
            return self.history
        return pd.concat([self.history, self.revealed], ignore_index=True)

    @property
    def now(self) -> pd.Timestamp:
        """The reference time for recency: the cut, or the newest event seen."""
        if self.cut_ts is not None:
            return self.cut_ts
        return pd.Timestamp(self.history["ts"].max()) if not self.history.empty else pd.Timestamp.now()

    def row_counts(self) -> dict[str, int]:
        frames = {
            "users": self.users,
            "item_features": self.item_features,
            "intent": self.intent,
            "covis": self.covis,
            "candidates": self.candidates,
            "history": self.history,
        }
        if self.labels is not None:
            frames["labels"] = self.labels
        if self.window is not None:
            frames["window"] = self.window
        return {k: len(v) for k, v in frames.items()}


def pit_builds(model: str) -> bool:
    """Whether the point-in-time build of :func:`load_cut` (:data:`CUT_MODELS` and their upstream)
    selects ``model`` by name."""
    return model in CUT_MODELS


def read_dbt_tables(
    settings: Settings,
    database: str,
    with_labels: bool,
    optional: tuple[str, ...] = (),
    users: Sequence[int] | None = None,
) -> dict[str, pd.DataFrame]:
    """The dbt models of :data:`PIT_TABLES` (and ``ml_labels``) from one database, plus those of
    ``optional`` that it holds; with ``users``, the :data:`USER_TABLES` hold only their rows. Read
    through mysqlclient (rows parsed in C): a cut's candidates are among the largest reads of a
    training run, and a refresh's."""
    names = PIT_TABLES + (("ml_labels",) if with_labels else ())
    keys = primary_keys(settings, database)
    out = {}
    for name in names:
        scope = users if name in USER_TABLES else None
        out[name] = _read_model(settings, database, name, scope, binary=True, key=keys.get(name))
    present = read_sql(
        "SELECT table_name AS t FROM information_schema.tables WHERE table_schema=%s",
        settings,
        (database,),
    )
    for name in optional:
        if name in set(present["t"]):
            out[name] = numeric(read_sql(_select_all(database, name, keys.get(name)), settings, binary=True))
    return out


def _read_model(
    settings: Settings,
    database: str,
    name: str,
    users: Sequence[int] | None,
    *,
    binary: bool = False,
    key: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One dbt model (only ``users``' rows when given) in ``key`` order (its primary key, from
    :func:`primary_keys`), DECIMAL as float, typed even when empty (``binary``: through mysqlclient,
    :func:`read_sql`)."""
    df = read_sql(_select_all(database, name, key, users), settings, binary=binary)
    return _typed_empty(settings, database, name, df) if df.empty else numeric(df)


def _select_all(
    database: str, name: str, key: Sequence[str] | None, users: Sequence[int] | None = None
) -> str:
    """``SELECT *`` of one table (only ``users``' rows when given) in ``key`` order."""
    return f"SELECT * FROM `{database}`.`{name}`{_users_clause(users, 'WHERE')}{order_by(key)}"


#: MySQL column types read as floats / datetimes when a table has no rows to infer them from
_NUMERIC_TYPES = {"tinyint", "smallint", "mediumint", "int", "bigint", "decimal", "float", "double"}
_TIME_TYPES = {"datetime", "timestamp", "date"}


def _typed_empty(settings: Settings, database: str, table: str, df: pd.DataFrame) -> pd.DataFrame:
    """An empty frame with the dtypes its columns would take with rows (NaN-able): numbers as float,
    times as datetime. A refresh batch of users all absent from a table must still merge into the
    same numeric feature columns as a full load (where such users get NaN floats)."""
    types = read_sql(
        "SELECT column_name AS c, data_type AS t FROM information_schema.columns "
        "WHERE table_schema=%s AND table_name=%s",
        settings,
        (database, table),
    )
    kinds = dict(zip(types["c"], types["t"].str.lower()))
    return df.astype(
        {
            c: "float64" if kinds.get(c) in _NUMERIC_TYPES else "datetime64[ns]"
            for c in df.columns
            if kinds.get(c) in _NUMERIC_TYPES | _TIME_TYPES
        }
    )


def load_cut(
    settings: Settings,
    cut_ts: pd.Timestamp | None,
    label_hours: float = 24,
    *,
    history_days: int = 30,
    build: bool = True,
    items: pd.DataFrame | None = None,
    users: Sequence[int] | None = None,
    events: EventSpan | None = None,
) -> CutData:
    """Build the point-in-time dbt tables for ``cut_ts`` (if ``build``) and read them with raw events.

    A cut's session intent and candidates (``intent``, ``candidates``) cover only the users with an
    event in its label window (``label_window_users`` of :func:`~ml.features.dbt.build_point_in_time`):
    the only ones its models learn from or are evaluated on; ``users`` (dim_users) keeps everyone.

    ``cut_ts`` None reads the current marts (``recsys_marts``): the serving view, with no labels.
    ``users`` (serving view only) reads the per-user tables (:data:`USER_TABLES`, purchases) for
    those users alone; item-level tables and the history stay whole, so those users' candidate
    rows and features are the same as in a full load (the refresh re-scores a few users).
    ``events`` (a training run's cuts) slices the history and the label window from one read.
    """
    if users is not None and cut_ts is not None:
        raise ValueError("load_cut(users=...) reads the serving view only: a cut's tables are read whole")
    if cut_ts is not None and build:
        from ml.features.dbt import build_point_in_time

        build_point_in_time(
            cut_str(cut_ts), label_hours, settings, models=CUT_MODELS, label_window_users=True
        )
    database = pit_db(settings) if cut_ts is not None else settings.marts_db
    optional = tuple(t for t in OPTIONAL_TABLES if cut_ts is None or pit_builds(t))
    tables = read_dbt_tables(
        settings, database, with_labels=cut_ts is not None, optional=optional, users=users
    )
    items = items if items is not None else load_items(settings)
    end = cut_ts
    history_end = end
    history_start = (end if end is not None else max_event_ts(settings)) - pd.Timedelta(days=history_days)
    read = events.slice if events is not None else partial(load_events, settings, binary=True)
    history = read(history_start, history_end)
    window = None
    if cut_ts is not None:
        window = read(cut_ts, cut_ts + pd.Timedelta(hours=label_hours))
    return CutData(
        cut_ts=cut_ts,
        items=items,
        users=tables["dim_users"],
        item_features=tables["dim_items"],
        intent=tables["fct_session_intent"],
        covis=tables["ml_covisitation"],
        candidates=tables["ml_candidates"],
        history=history,
        purchased=load_purchases(settings, end, users, binary=True),
        user_items=tables["int_user_items_aggregated"],
        labels=tables.get("ml_labels"),
        window=window,
        label_hours=label_hours if cut_ts is not None else None,
        extra={name: tables[name] for name in OPTIONAL_TABLES if name in tables},
    )


def with_users(settings: Settings, base: CutData, users: Sequence[int]) -> CutData:
    """The serving view ``base`` (read with ``load_cut(settings, None, users=...)``) with the
    per-user tables (:data:`USER_TABLES`, purchases) of ``users`` instead of its own: the
    item-level tables and the history are reused, not read again. Read through mysqlclient
    (``binary``): most of a refresh batch's read time was PyMySQL parsing ``ml_candidates`` rows."""
    if base.cut_ts is not None:
        raise ValueError("with_users() scopes the serving view only")
    keys = primary_keys(settings, settings.marts_db)
    tables = {
        name: _read_model(settings, settings.marts_db, name, users, binary=True, key=keys.get(name))
        for name in USER_TABLES
    }
    return replace(
        base,
        users=tables["dim_users"],
        intent=tables["fct_session_intent"],
        candidates=tables["ml_candidates"],
        user_items=tables["int_user_items_aggregated"],
        purchased=load_purchases(settings, None, users, binary=True),
    )


def load_session_cut(settings: Settings, day: CutData, cuts: pd.DataFrame) -> CutData:
    """The "rest of session" variant of a loaded cut (ARCHITECTURE.md §3, :func:`ml.features.protocol.session_cuts`).

    Writes ``cuts`` (user_id, session_id, cut_ts) to ``{prefix}recsys_pit.pit_session_cuts``, rebuilds
    the realtime models and labels with them, and returns ``day`` with the session intent and
    candidates as of each user's own cut, ``revealed`` = the revealed events, ``window`` = the rest
    of each session, and the revealed purchases added to ``purchased``. Batch features (users, items,
    co-visitation) stay as of the cut, as they are when the refresh DAG rescoring a user.
    """
    from ml.db import connect
    from ml.features.dbt import SESSION_TABLES, build_session_cut

    if day.cut_ts is None or day.window is None or day.labels is None:
        raise ValueError("a session cut needs a point-in-time cut with a label window")
    if cuts.empty:
        raise ValueError(f"no user of the cut {day.cut_ts} has a session to cut in the label window")
    cuts = cuts[SESSION_CUT_COLUMNS].copy()
    cuts["cut_ts"] = pd.to_datetime(cuts["cut_ts"])
    if (cuts["cut_ts"] <= day.cut_ts).any():
        raise ValueError("every session cut must lie after the cut")
    db = pit_db(settings)
    conn = connect(settings=settings)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{db}`")
            cur.execute(f"DROP TABLE IF EXISTS `{db}`.pit_session_cuts")
            cur.execute(
                f"CREATE TABLE `{db}`.pit_session_cuts (user_id BIGINT NOT NULL PRIMARY KEY, "
                "session_id VARCHAR(64) NOT NULL, cut_ts DATETIME(3) NOT NULL) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"
            )
            cur.executemany(
                f"INSERT INTO `{db}`.pit_session_cuts VALUES (%s, %s, %s)",
                [
                    (int(u), str(sid), ts.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3])
                    for u, sid, ts in cuts.itertuples(index=False)
                ],
            )
    finally:
        conn.close()
    if day.label_hours is None:
        raise ValueError("the cut does not record its label window: load it with load_cut")
    build_session_cut(cut_str(day.cut_ts), day.label_hours, settings)
    keys = primary_keys(settings, db)
    tables = {
        name: numeric(read_sql(_select_all(db, name, keys.get(name)), settings, binary=True))
        for name in SESSION_TABLES
    }
    w = day.window.merge(cuts, on=["user_id", "session_id"], how="inner")
    revealed = w[w["ts"] < w["cut_ts"]].drop(columns="cut_ts").reset_index(drop=True)
    rest = w[w["ts"] >= w["cut_ts"]].drop(columns="cut_ts").reset_index(drop=True)
    bought = revealed.loc[revealed["behavior_type"] == "purchase", ["user_id", "item_id"]].astype("int64")
    purchased = pd.concat([day.purchased.astype("int64"), bought], ignore_index=True).drop_duplicates()
    return replace(
        day,
        intent=tables["fct_session_intent"],
        candidates=tables["ml_candidates"],
        labels=tables["ml_labels"],
        window=rest,
        revealed=revealed,
        purchased=purchased,
        extra={**day.extra, "session_cuts": cuts},
    )
