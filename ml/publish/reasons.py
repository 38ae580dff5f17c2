"""The evidence behind the reasons of a batch of published rows (:mod:`ml.models.reasons`), read for
exactly the batch's users and items: their own item events and last-session queries from
``recsys_raw.user_behavior`` (events up to the event id the publish read), their intent category
from the dbt mart ``serve_user_intent_category`` (what ``user_intent_category`` publishes), the
items' text from ``recsys_raw.items`` and the co-visitation pairs of their recent items from
``ml_covisitation`` (no ``viewed_with`` reasons while that mart does not exist).

Full publish and refresh both call :class:`Explainer`, so a row has the same reason whichever wrote it.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import pymysql

from ml.config import Settings
from ml.contracts import number_var
from ml.features.raw_reads import read_sql
from ml.models.reasons import ReasonEvidence, assign_reasons
from ml.publish.common import PublishError, table_exists
from ml.publish.common import read_rows as _frame
from ml.quality.topn import check_reasons

#: The user's own items kept as evidence, most recent first (fct_session_intent.last_items keeps 20).
RECENT_ITEMS = 20


def _in(ids: Sequence[int]) -> str:
    return ",".join(str(int(i)) for i in ids) or "NULL"


class Explainer:
    """Adds ``reason``/``reason_arg`` to a checked top-N frame, reading the evidence of its users
    on ``conn`` (events with ``event_id <= upper_event_id`` when given)."""

    def __init__(self, conn: pymysql.connections.Connection, s: Settings, upper_event_id: int | None = None):
        self.conn = conn
        self.s = s
        self.upper = upper_event_id
        if not table_exists(conn, s.marts_db, "serve_user_intent_category"):
            raise PublishError(
                f"dbt serving mart {s.marts_db}.serve_user_intent_category is missing: run the dbt build "
                "(`scripts/dbt.sh build`) first"
            )
        self.has_covis = table_exists(conn, s.marts_db, "ml_covisitation")
        self.covisit_sources = int(number_var("candidates_covisit_sources"))
        self.covisit_decay = number_var("candidates_covisit_source_decay")

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        if frame.empty:
            return check_reasons(assign_reasons(frame, self.evidence([], [])))
        users = sorted(set(frame["user_id"].astype("int64").tolist()))
        items = sorted(set(frame["item_id"].astype("int64").tolist()))
        return check_reasons(assign_reasons(frame, self.evidence(users, items)))

    def evidence(self, users: Sequence[int], items: Sequence[int]) -> ReasonEvidence:
        """The evidence of ``users`` for rows of ``items``."""
        raw, upper = self.s.raw_db, "" if self.upper is None else f" AND event_id <= {int(self.upper)}"
        own = self._big(
            f"SELECT user_id, item_id, MAX(ts) AS last_ts, MAX(CASE WHEN behavior_type = 'cart' THEN ts END) AS cart_ts, "
            f"MAX(CASE WHEN behavior_type = 'purchase' THEN ts END) AS purchase_ts FROM `{raw}`.user_behavior "
            f"WHERE user_id IN ({_in(users)}) AND item_id IS NOT NULL{upper} GROUP BY user_id, item_id",
            ["user_id", "item_id", "last_ts", "cart_ts", "purchase_ts"],
        )
        for col in ("last_ts", "cart_ts", "purchase_ts"):
            own[col] = pd.to_datetime(own[col])
        own = own.sort_values(
            ["user_id", "last_ts", "item_id"], ascending=[True, False, False], kind="stable"
        )
        own["pos"] = own.groupby("user_id").cumcount() + 1
        recent = own[own["pos"] <= RECENT_ITEMS][["user_id", "item_id", "pos"]]
        # carted and not bought since (fct_session_intent.carted_not_bought's rule)
        carted = own[
            own["cart_ts"].notna() & (own["purchase_ts"].isna() | (own["purchase_ts"] < own["cart_ts"]))
        ]
        bought = own[own["purchase_ts"].notna()]
        catalogue = sorted(set(items) | set(recent["item_id"].astype("int64").tolist()))
        return ReasonEvidence(
            items=_frame(
                self.conn,
                f"SELECT item_id, category_id, category, title, brand FROM `{raw}`.items WHERE item_id IN ({_in(catalogue)})",
                ["item_id", "category_id", "category", "title", "brand"],
            ),
            intent=_frame(
                self.conn,
                f"SELECT user_id, category_id FROM `{self.s.marts_db}`.serve_user_intent_category "
                f"WHERE user_id IN ({_in(users)}) AND category_id IS NOT NULL",
                ["user_id", "category_id"],
            ),
            recent=recent,
            carted=carted[["user_id", "item_id"]],
            bought=bought[["user_id", "item_id"]],
            queries=self._queries(users, upper),
            covis=self._covis(recent, items),
            covisit_sources=self.covisit_sources,
            covisit_decay=self.covisit_decay,
        )

    def _big(self, sql: str, columns: list[str]) -> pd.DataFrame:
        """The two large reads (every own (user, item) pair, every search of the users) through
        mysqlclient: PyMySQL's row-by-row parsing of their DATETIMEs was most of their time (1.7 →
        0.7 s for 1,000 users at 1M events). The same values; committed rows, as ``conn`` reads."""
        return read_sql(sql, self.s, binary=True)[columns]

    def _queries(self, users: Sequence[int], upper: str) -> pd.DataFrame:
        """The distinct queries of each user's last session (the session of their newest event,
        ties on time broken by event id), most recent first. Two index-friendly reads on
        ``(user_id, ts)`` instead of a window over every event of the batch (half the time on a
        simulated shop)."""
        raw, ids = self.s.raw_db, _in(users)
        last = _frame(
            self.conn,
            f"SELECT b.user_id, b.session_id, b.event_id FROM `{raw}`.user_behavior b JOIN ("
            f"SELECT user_id, MAX(ts) AS newest FROM `{raw}`.user_behavior WHERE user_id IN ({ids}){upper} "
            f"GROUP BY user_id) n ON n.user_id = b.user_id AND b.ts = n.newest WHERE b.user_id IN ({ids})"
            + upper.replace("event_id", "b.event_id"),
            ["user_id", "session_id", "event_id"],
        )
        last = last.sort_values(["user_id", "event_id"], kind="stable").drop_duplicates(
            "user_id", keep="last"
        )
        searched = self._big(
            f"SELECT user_id, session_id, query_text, MAX(ts) AS last_ts FROM `{raw}`.user_behavior "
            f"WHERE user_id IN ({ids}) AND behavior_type = 'search' AND query_text IS NOT NULL{upper} "
            "GROUP BY user_id, session_id, query_text",
            ["user_id", "session_id", "query_text", "last_ts"],
        )
        found = searched.merge(last[["user_id", "session_id"]], on=["user_id", "session_id"])
        found["last_ts"] = pd.to_datetime(found["last_ts"])
        found = found.sort_values(["user_id", "last_ts"], ascending=[True, False], kind="stable")
        found["pos"] = found.groupby("user_id").cumcount() + 1
        return found[["user_id", "query_text", "pos"]]

    def _covis(self, recent: pd.DataFrame, items: Sequence[int]) -> pd.DataFrame:
        """ml_covisitation pairs from the users' co-visitation sources to the rows' items."""
        columns = ["item_id", "similar_item_id", "score"]
        sources = recent[recent["pos"] <= self.covisit_sources]["item_id"].astype("int64").unique().tolist()
        if not self.has_covis or not sources or not items:
            return pd.DataFrame(columns=columns)
        return _frame(
            self.conn,
            f"SELECT item_id, similar_item_id, score FROM `{self.s.marts_db}`.ml_covisitation "
            f"WHERE item_id IN ({_in(sources)}) AND similar_item_id IN ({_in(items)}) AND score > 0",
            columns,
        )
