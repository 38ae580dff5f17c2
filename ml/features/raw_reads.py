"""Reads of the raw tables (events, catalogue, purchases, the simulator's planted intents) and the one
SELECT-to-frame helper every feature read goes through; :mod:`ml.features.datasets` assembles them with
the dbt outputs of a cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pandas as pd

from ml.config import Settings
from ml.features.protocol import LogProfile, cut_str

EVENT_COLUMNS = "user_id, item_id, session_id, behavior_type, query_text, ts"
#: MySQL's type codes of DATETIME and TIMESTAMP (``MySQLdb.constants.FIELD_TYPE``, the protocol's values)
_DATETIME_TYPES = (12, 7)


def read_sql(
    sql: str,
    settings: Settings,
    params: tuple | None = None,
    database: str | None = None,
    *,
    binary: bool = False,
) -> pd.DataFrame:
    """Run one SELECT through PyMySQL and return a frame (no SQLAlchemy engine to manage);
    ``database`` is the default database for unqualified table names.

    ``binary`` reads through mysqlclient (``MySQLdb``, rows parsed in C: 2–3× faster on the
    refresh's per-user marts, the same values) instead of PyMySQL's row-by-row Python parsing, its
    DATETIME and TIMESTAMP columns parsed a column at a time (:func:`datetime_column`)."""
    from ml.db import connect

    conn = _mysqlclient(settings, database) if binary else connect(database, settings=settings)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            cols = [d[0] for d in cur.description]
            types = [d[1] for d in cur.description]
            rows = cur.fetchall()
    finally:
        conn.close()
    df = pd.DataFrame(list(rows), columns=cols)
    if binary:  # DATETIME/TIMESTAMP came as their text (_mysqlclient): parse them a column at a time
        for i, type_code in enumerate(types):
            if type_code in _DATETIME_TYPES:
                df.isetitem(i, datetime_column(df.iloc[:, i].to_numpy()))
    return df


def datetime_column(raw: np.ndarray) -> np.ndarray:
    """DATETIME/TIMESTAMP values as MySQL sends them (``b'2026-10-13 06:29:37.083'``, None for NULL)
    parsed in one vectorised pass: the values of the frame PyMySQL builds — ``datetime64[ns]`` with
    NaT for NULL, a column of None when every value is NULL. At 1M events a cut read held ~1.4M of
    them, parsed one Python call each by mysqlclient's converter (~3 s of its ~10 s)."""
    present = ~pd.isna(raw)
    if not present.any():
        return raw
    try:
        parsed = raw[present].astype(bytes).astype("datetime64[us]")
    except ValueError:  # a zero or otherwise invalid date
        return _datetime_column_slow(raw)
    if parsed.min() < _NS_RANGE[0] or parsed.max() > _NS_RANGE[1]:  # would wrap around in nanoseconds
        return _datetime_column_slow(raw)
    out = np.full(len(raw), np.datetime64("NaT"), dtype="datetime64[ns]")
    out[present] = parsed.astype("datetime64[ns]")
    return out


#: the dates a ``datetime64[ns]`` holds (pandas' Timestamp range)
_NS_RANGE = (np.datetime64(pd.Timestamp.min.ceil("us")), np.datetime64(pd.Timestamp.max.floor("us")))


def _datetime_column_slow(raw: np.ndarray) -> np.ndarray:
    """mysqlclient's own converter value by value (None for an invalid date), then the inference of
    the frame constructor: for the columns :func:`datetime_column` cannot parse in one pass."""
    from MySQLdb.times import DateTime_or_None

    values = [None if v is None else DateTime_or_None(v.decode()) for v in raw]
    return pd.Series(values).to_numpy()


def _mysqlclient(settings: Settings, database: str | None):
    """An autocommit mysqlclient connection with the settings' account (utf8mb4)."""
    import MySQLdb
    from MySQLdb.converters import conversions

    args = {"database": database} if database else {}
    # DATETIME/TIMESTAMP as raw text: read_sql parses each such column in one pass (datetime_column)
    conv = {**conversions, **{code: None for code in _DATETIME_TYPES}}
    return MySQLdb.connect(
        host=settings.mysql_host,
        port=settings.mysql_port,
        user=settings.mysql_user,
        password=settings.mysql_password,
        charset="utf8mb4",
        autocommit=True,
        connect_timeout=5,
        conv=conv,
        **args,
    )


def max_event_ts(settings: Settings) -> pd.Timestamp:
    """Newest raw event time; a clear error on an empty table."""
    df = read_sql(f"SELECT MAX(ts) AS m FROM `{settings.raw_db}`.user_behavior", settings)
    if df.empty or pd.isna(df.loc[0, "m"]):
        raise RuntimeError(f"{settings.raw_db}.user_behavior is empty: load or simulate events first")
    return pd.Timestamp(df.loc[0, "m"])


def log_profile(settings: Settings) -> LogProfile:
    """Span, event types and return times of the raw log: what :func:`~ml.features.protocol.choose_task` reads."""
    raw = settings.raw_db
    span = read_sql(
        f"SELECT MIN(ts) AS a, MAX(ts) AS b, COUNT(DISTINCT user_id) AS u FROM `{raw}`.user_behavior",
        settings,
    )
    if span.empty or pd.isna(span.loc[0, "b"]):
        raise RuntimeError(f"{raw}.user_behavior is empty: load or simulate events first")
    types = read_sql(
        f"SELECT behavior_type AS t, COUNT(*) AS n FROM `{raw}`.user_behavior GROUP BY behavior_type",
        settings,
    )
    starts = read_sql(
        f"SELECT user_id, MIN(ts) AS start FROM `{raw}`.user_behavior GROUP BY user_id, session_id", settings
    )
    starts["start"] = pd.to_datetime(starts["start"])
    gaps = starts.sort_values(["user_id", "start"]).groupby("user_id")["start"].diff().dropna()
    return LogProfile(
        first_ts=pd.Timestamp(span.loc[0, "a"]),
        last_ts=pd.Timestamp(span.loc[0, "b"]),
        events_by_type={str(t): int(n) for t, n in zip(types["t"], types["n"])},
        users=int(span.loc[0, "u"]),
        median_return_hours=float(gaps.dt.total_seconds().median() / 3600) if len(gaps) else None,
    )


def load_events(
    settings: Settings, start: pd.Timestamp | None, end: pd.Timestamp | None, *, binary: bool = False
) -> pd.DataFrame:
    """Raw events with ``start <= ts < end`` (either bound optional), ordered by time, then by
    event id (the order of the ``ts`` index, so a slice of a longer read equals a read of the
    slice: :class:`EventSpan`; ``binary``: as :func:`read_sql`)."""
    where, params = [], []
    if start is not None:
        where.append("ts >= %s")
        params.append(cut_str(start))
    if end is not None:
        where.append("ts < %s")
        params.append(cut_str(end))
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    df = read_sql(
        f"SELECT {EVENT_COLUMNS} FROM `{settings.raw_db}`.user_behavior {clause} ORDER BY ts, event_id",
        settings,
        tuple(params),
        binary=binary,
    )
    df["item_id"] = df["item_id"].astype("Int64")
    df["ts"] = pd.to_datetime(df["ts"])
    return df


@dataclass(frozen=True)
class EventSpan:
    """The raw events of ``[start, end)`` read once (:func:`load_events`), so that several cuts of
    a training run slice their history and label window from one read instead of reading the
    overlapping ranges again (at 1M events each cut's 30-day history was ~10 s of reading)."""

    start: pd.Timestamp
    end: pd.Timestamp
    events: pd.DataFrame

    @classmethod
    def read(cls, settings: Settings, start: pd.Timestamp, end: pd.Timestamp) -> EventSpan:
        return cls(start, end, load_events(settings, start, end, binary=True))

    def slice(self, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """The events with ``start <= ts < end``, as :func:`load_events` would read them."""
        if start < self.start or end > self.end:
            raise ValueError(f"[{start}, {end}) is not inside the events read, [{self.start}, {self.end})")
        ts = self.events["ts"]
        return self.events[(ts >= start) & (ts < end)].reset_index(drop=True)


def load_items(settings: Settings) -> pd.DataFrame:
    """The raw catalogue (categories, stock, price)."""
    df = read_sql(
        f"SELECT item_id, title, category_id, category, brand, in_stock, price FROM `{settings.raw_db}`.items",
        settings,
    )
    df["price"] = df["price"].astype(float)
    return df


def load_purchases(
    settings: Settings,
    end: pd.Timestamp | None,
    users: Sequence[int] | None = None,
    *,
    binary: bool = False,
) -> pd.DataFrame:
    """Every (user, item) bought before ``end`` (the rules' exclusion list); only ``users``' when given
    (``binary``: as :func:`read_sql`)."""
    clause = "AND ts < %s" if end is not None else ""
    params = (cut_str(end),) if end is not None else None
    return read_sql(
        f"SELECT DISTINCT user_id, item_id FROM `{settings.raw_db}`.user_behavior "
        f"WHERE behavior_type = 'purchase' {clause}{_users_clause(users, 'AND')}",
        settings,
        params,
        binary=binary,
    )


def _users_clause(users: Sequence[int] | None, keyword: str) -> str:
    """`` {keyword} user_id IN (...)`` for ``users`` (no user: a condition no row meets), or nothing."""
    if users is None:
        return ""
    ids = ",".join(str(int(u)) for u in users)
    return f" {keyword} user_id IN ({ids})" if ids else f" {keyword} FALSE"


def load_intents(settings: Settings) -> pd.DataFrame:
    """Simulator ground truth (evaluation only); empty when the table does not exist (real data)."""
    exists = read_sql(
        "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema=%s AND table_name='sim_session_intent'",
        settings,
        (settings.raw_db,),
    )
    if int(exists.loc[0, "n"]) == 0:
        return pd.DataFrame(columns=["session_id", "user_id", "intent_category_id", "start_ts"])
    return read_sql(
        f"SELECT session_id, user_id, intent_category_id, start_ts FROM `{settings.raw_db}`.sim_session_intent",
        settings,
    )


def primary_keys(settings: Settings, database: str) -> dict[str, list[str]]:
    """Each table's primary-key columns (in key order) in ``database``."""
    rows = read_sql(
        "SELECT table_name AS t, column_name AS c FROM information_schema.statistics "
        "WHERE table_schema=%s AND index_name='PRIMARY' ORDER BY table_name, seq_in_index",
        settings,
        (database,),
    )
    return {t: list(g["c"]) for t, g in rows.groupby("t", sort=False)}


def order_by(key: Sequence[str] | None) -> str:
    """`` ORDER BY`` the key: frames come out in key order whatever the engine. InnoDB returns a
    table in primary-key order anyway (free: its clustered index), but the point-in-time tables are
    Aria (dbt_project/macros/create_table_as.sql), which returns rows in the order a build wrote
    them, and that order depends on the query plan, e.g. a training cut's and a full build's."""
    return f" ORDER BY {', '.join(f'`{c}`' for c in key)}" if key else ""


def numeric(df: pd.DataFrame) -> pd.DataFrame:
    """MySQL DECIMAL arrives as ``Decimal`` objects: make such columns floats."""
    for col in df.columns:
        present = df[col].dropna()
        if df[col].dtype == object and len(present) and isinstance(present.iloc[0], Decimal):
            df[col] = df[col].astype(float)
    return df
