"""The search champion as a list provider for the publisher (full publish and refresh).

:func:`load_search_champion` reads the ``champion`` version of ``<recommender model>_search`` (the
logged LightGBM booster is checked by :func:`ml.registry.store.booster_from_model_dir` before it is
read: nothing is unpickled) and returns a :class:`SearchRankerLists`:

- ``query_lists(conn_or_settings, queries, k)`` → ``query_norm, rank, item_id, score, source``: each
  query's candidates scored with neutral user features (no session, no history): ``query_topn``;
- ``user_lists(settings, user_ids, k)`` → ``user_id, query_norm, rank, item_id, score, source``: each
  user's recent queries (``ml_user_recent_queries``) scored with that user's current session prefix
  and history: the refresh's personalised lists.

Both read the current state — catalogue, the last ``history_days`` of events, ``ml_query_item`` from
the marts when it is there — into a context built once per provider and reused until
:meth:`SearchRankerLists.refresh` (the refresh DAG builds a new provider per run).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.config import Settings
from ml.contracts import number_var
from ml.search.context import USER_FEATURES, SearchContext, build_context
from ml.search.dataset import search_rows
from ml.search.ranker import RANKER, SearchRanker
from ml.search.text import normalize_query

QUERY_LIST_COLUMNS: tuple[str, ...] = ("query_norm", "rank", "item_id", "score", "source")
USER_LIST_COLUMNS: tuple[str, ...] = ("user_id", *QUERY_LIST_COLUMNS)
#: dbt var: how many of a user's most recent distinct queries get a personalised list
RECENT_QUERIES_VAR = "recent_queries_k"


def search_model_name(settings: Settings) -> str:
    """The registered model of the search ranker: ``<recommender model name>_search``."""
    from ml.registry.store import model_name

    return f"{model_name(settings)}_search"


def load_registered_ranker(client: Any, name: str, version: str) -> SearchRanker:
    """One registered search-ranker version as a :class:`SearchRanker` (booster checked, not unpickled)."""
    import tempfile

    import mlflow.artifacts

    from ml.registry import store

    spec = store.load_spec(client, name, version)
    if spec.get("kind") != "search_lightgbm":
        raise store.UntrustedModelError(
            f"{name} version {version} is a {spec.get('kind')!r}, not a search ranker"
        )
    with tempfile.TemporaryDirectory(prefix="recsys_search_model_") as tmp:
        local = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=tmp)
        booster = store.booster_from_model_dir(Path(local), f"{name} version {version}")
    return SearchRanker(booster, list(spec["features"]))


def _read(source: Any, sql: str, params: tuple | None = None) -> pd.DataFrame:
    """A SELECT through the settings (a new connection) or through an open DB-API connection."""
    from ml.features.datasets import numeric, read_sql

    if isinstance(source, Settings):
        return read_sql(sql, source, params)
    with source.cursor() as cur:
        cur.execute(sql, params)
        cols = [d[0] for d in cur.description]
        rows = cur.fetchall()
    return numeric(pd.DataFrame(list(rows), columns=cols))


def _table_exists(source: Any, database: str, table: str) -> bool:
    found = _read(
        source,
        "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema=%s AND table_name=%s",
        (database, table),
    )
    return int(found.loc[0, "n"]) > 0


class SearchRankerLists:
    """Search lists of one registered ranker over the current data (see the module docstring)."""

    def __init__(
        self,
        ranker: SearchRanker,
        settings: Settings,
        model_version: str,
        k: int = 100,
        history_days: int = 30,
        context: SearchContext | None = None,
        events: pd.DataFrame | None = None,
    ):
        """``context``/``events`` (the state and the raw events it was built from) skip the first
        :meth:`refresh`: a caller that already holds them (a test, a bench) reads no database."""
        self.ranker = ranker
        self.settings = settings
        self.model_version = model_version
        self.k = k
        self.history_days = history_days
        self._ctx = context
        self._events = events
        self._shared: pd.DataFrame | None = None

    def share_history(self, history: pd.DataFrame, days: float) -> SearchRankerLists:
        """Build the next context from ``history`` — raw events (``load_events``' columns and types)
        of the ``days`` before and up to its newest event, read by the caller (the refresh's champion
        reads the same 30 days) — instead of reading them again. Ignored when it covers fewer days
        than this ranker's ``history_days`` or holds no event."""
        if days >= self.history_days and not history.empty:
            self._shared = history
        return self

    def _recent_events(self, src: Any) -> tuple[pd.Timestamp, pd.DataFrame]:
        """(now, the events of the ``history_days`` before it): now = the newest event + 1 ms."""
        from ml.features.datasets import EVENT_COLUMNS
        from ml.features.protocol import cut_str
        from ml.features.raw_reads import load_events

        s, shared = self.settings, self._shared
        if shared is not None:
            now = pd.Timestamp(shared["ts"].max()) + pd.Timedelta(milliseconds=1)
            start = now - pd.Timedelta(days=self.history_days)
            return now, shared[shared["ts"] >= start].reset_index(drop=True)
        newest = _read(src, f"SELECT MAX(ts) AS m FROM `{s.raw_db}`.user_behavior").loc[0, "m"]
        if newest is None or pd.isna(newest):
            raise RuntimeError(f"{s.raw_db}.user_behavior is empty: nothing to rank searches with")
        now = pd.Timestamp(newest) + pd.Timedelta(milliseconds=1)
        start = now - pd.Timedelta(days=self.history_days)
        if isinstance(src, Settings):  # through mysqlclient: at 1M events PyMySQL's parsing took ~16 s
            return now, load_events(src, start, None, binary=True)
        events = _read(
            src,
            f"SELECT {EVENT_COLUMNS} FROM `{s.raw_db}`.user_behavior WHERE ts >= %s ORDER BY ts, event_id",
            (cut_str(start),),
        )
        events["item_id"] = events["item_id"].astype("Int64")
        events["ts"] = pd.to_datetime(events["ts"])
        return now, events

    def refresh(self, source: Any | None = None) -> SearchContext:
        """(Re)build the context from the current catalogue, recent events (or the shared history:
        :meth:`share_history`) and ``ml_query_item``."""
        s = self.settings
        src = source if source is not None else s
        items = _read(
            src, f"SELECT item_id, title, category_id, category, brand, in_stock FROM `{s.raw_db}`.items"
        )
        now, events = self._recent_events(src)
        qi = None
        if _table_exists(src, s.marts_db, "ml_query_item"):
            qi = _read(
                src, f"SELECT query_norm, item_id, n_users, weighted FROM `{s.marts_db}`.ml_query_item"
            )
        self._events = events
        self._ctx = build_context(items, events, now, query_items=qi, k=self.k)
        return self._ctx

    def use_context(self, context: SearchContext, events: pd.DataFrame | None = None) -> SearchRankerLists:
        """Serve from a context the caller built (a bench, a test) instead of reading the database."""
        self._ctx, self._events = context, events
        return self

    def _context(self, source: Any | None = None) -> SearchContext:
        return self._ctx if self._ctx is not None else self.refresh(source)

    def _top(self, rows: pd.DataFrame, key: str, k: int, columns: Sequence[str]) -> pd.DataFrame:
        """``columns`` of the k best in-stock rows per ``key`` (a list never offers what cannot be
        bought), ordered by key, score (best first) and item id, with ``rank`` 1..k, ``score`` and
        ``source``. Positions into ``rows`` rather than copies of it: a refresh batch's ~2M wide rows
        were filtered, scored, sorted and grouped as frames (one copy per step)."""
        keep = np.flatnonzero(rows["in_stock"].to_numpy() > 0)
        score = self.ranker.predict(rows, keep)
        group = pd.factorize(rows[key].to_numpy()[keep], sort=True)[0]  # codes in the key's sort order
        order = np.lexsort((rows["item_id"].to_numpy()[keep], -score, group))
        group = group[order]
        first = np.r_[True, group[1:] != group[:-1]] if len(group) else np.zeros(0, dtype=bool)
        at = np.arange(len(group))
        rank = at - np.maximum.accumulate(np.where(first, at, 0)) + 1
        top = rank <= k
        pos, out = keep[order][top], {}
        for col in columns:
            if col == "rank":
                out[col] = rank[top]
            elif col == "score":
                out[col] = score[order][top]
            elif col == "source":
                out[col] = np.full(int(top.sum()), RANKER, dtype=object)
            else:
                out[col] = rows[col].to_numpy()[pos]
        return pd.DataFrame(out, columns=list(columns))

    def query_lists(self, conn_or_settings: Any, queries: Sequence[str], k: int) -> pd.DataFrame:
        """Top ``k`` per normalised query with neutral user features (``query_topn``)."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        norm = list(dict.fromkeys(normalize_query(q) for q in queries))
        if "" in norm:
            bad = [q for q in queries if normalize_query(q) == ""]
            raise ValueError(f"queries that normalise to nothing cannot be ranked: {bad[:5]!r}")
        if not norm:
            return pd.DataFrame(columns=list(QUERY_LIST_COLUMNS))
        ctx = self._context(conn_or_settings)
        searches = pd.DataFrame(
            {
                "search_id": np.arange(len(norm)),
                "user_id": -1,
                "session_id": "",
                "query_norm": norm,
                "ts": ctx.now,
            }
        )
        rows = search_rows(ctx, searches, _no_events())
        rows[list(USER_FEATURES)] = 0.0
        return self._top(rows, "query_norm", k, QUERY_LIST_COLUMNS)

    def user_lists(self, settings: Settings, user_ids: Sequence[int], k: int) -> pd.DataFrame:
        """Top ``k`` for each of the users' recent queries, with their current session prefix."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        ctx = self._context(settings)
        users = sorted({int(u) for u in user_ids})
        recent = self._recent_queries(settings, users)
        if recent.empty:
            return pd.DataFrame(columns=list(USER_LIST_COLUMNS))
        events = self._events if self._events is not None else _no_events()
        mine = events[events["user_id"].isin(users)]
        last = mine.sort_values("ts", kind="stable").drop_duplicates("user_id", keep="last")
        session = dict(zip(last["user_id"].astype("int64"), last["session_id"].astype(str)))
        searches = recent.assign(
            search_id=np.arange(len(recent)),
            session_id=[session.get(int(u), "") for u in recent["user_id"]],
            ts=ctx.now,
        )
        rows = search_rows(ctx, searches, mine)
        return self._top(rows, "search_id", k, USER_LIST_COLUMNS)

    def _recent_queries(self, settings: Settings, users: list[int]) -> pd.DataFrame:
        """(user_id, query_norm): each user's most recent distinct queries, newest first."""
        if not users:
            return pd.DataFrame(columns=["user_id", "query_norm"])
        if _table_exists(settings, settings.marts_db, "ml_user_recent_queries"):
            marks = ", ".join(["%s"] * len(users))
            found = _read(
                settings,
                f"SELECT user_id, query_norm, rn FROM `{settings.marts_db}`.ml_user_recent_queries "
                f"WHERE user_id IN ({marks}) AND rn <= %s ORDER BY user_id, rn",
                (*users, int(number_var(RECENT_QUERIES_VAR))),
            )
        else:
            ev = self._events if self._events is not None else _no_events()
            ev = ev[(ev["behavior_type"] == "search") & ev["user_id"].isin(users)]
            found = ev.assign(query_norm=[normalize_query(q) for q in ev["query_text"]])
            found = found[found["query_norm"] != ""].sort_values("ts", ascending=False, kind="stable")
            found = (
                found.drop_duplicates(["user_id", "query_norm"])
                .groupby("user_id")
                .head(int(number_var(RECENT_QUERIES_VAR)))
            )
        found = found[found["query_norm"].astype(str) != ""]
        return (
            found[["user_id", "query_norm"]]
            .astype({"user_id": "int64", "query_norm": str})
            .reset_index(drop=True)
        )


def _no_events() -> pd.DataFrame:
    return pd.DataFrame(columns=["user_id", "item_id", "session_id", "behavior_type", "query_text", "ts"])


def load_search_champion(settings: Settings) -> SearchRankerLists | None:
    """The ``champion`` search ranker as a list provider, or None when there is none (no search in the
    log, or no version passed the gate yet): the reader then falls back to BM25 and intent."""
    from ml.registry import store

    client = store.configure(settings)
    name = search_model_name(settings)
    mv = store.alias_version(client, name, store.CHAMPION)
    if mv is None:
        return None
    spec = store.load_spec(client, name, str(mv.version))
    ranker = load_registered_ranker(client, name, str(mv.version))
    return SearchRankerLists(
        ranker,
        settings,
        model_version=f"{name}/{mv.version}",
        k=int(spec.get("k", 100)),
        history_days=int(spec.get("history_days", 30)),
    )
