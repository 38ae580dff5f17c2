"""Live feed: appends simulated events with current timestamps to ``recsys_raw``, in small
committed batches, for the near-real-time refresh (and its benchmark).

It works on whatever is loaded (a simulation or an import): items and their recent popularity,
users weighted by recent activity and each user's own history come from the database. A pool of
open sessions advances event by event: a user whose last event is under 30 minutes old continues
that session; otherwise a new session starts, with an intent that is the user's usual category or
(about a third of the time) a switch, an opening search naming it (for simulator categories),
browsing inside the intent that revisits the user's earlier items, carts, favs, and a checkout.
New users appear now and then. Each batch goes through validation and commits atomically together
with the ground truth of the sessions it starts (``sim_session_intent``) and of their queries
(``sim_query_intent``).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ml.config import Settings, get_settings
from ml.data.catalog import CATEGORIES
from ml.data.ingest import LoadReport, write_batch
from ml.data.load import INTENT_COLUMNS, QUERY_INTENT_COLUMNS
from ml.data.sim_queries import plan_queries
from ml.data.validate import validate_events

SESSION_GAP = pd.Timedelta(minutes=30)
SOURCE = "feed"


@dataclass
class _Session:
    session_id: str
    user_id: int
    intent: int
    browses_left: int
    history: list[tuple[int, int]]  # (item_id, category_id) the user saw before, newest first
    query: str | None = None
    pending: list[tuple[str, int]] = field(default_factory=list)
    seen: list[int] = field(default_factory=list)
    carted: list[int] = field(default_factory=list)
    checked_out: bool = False


@dataclass
class FeedReport:
    """What a feed run appended."""

    events: int = 0
    batches: int = 0
    sessions_new: int = 0
    sessions_continued: int = 0
    users_new: int = 0
    quarantined: Counter = field(default_factory=Counter)
    seconds: float = 0.0


class LiveFeed:
    """Generates and writes batches of live events against the current contents of ``recsys_raw``."""

    def __init__(self, settings: Settings | None = None, seed: int | None = None, max_pool: int = 300):
        from ml.db import connect

        self.s = settings or get_settings()
        self.rng = np.random.default_rng(seed)
        self.max_pool = max_pool
        self.conn = connect(self.s.raw_db, settings=self.s)
        self.pool: dict[str, _Session] = {}
        self.opened: set[str] = set()
        self.report = FeedReport()
        try:
            self._load_catalogue()
        except BaseException:
            self.conn.close()
            raise

    def close(self) -> None:
        self.conn.close()

    def _fetch(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())

    def _load_catalogue(self) -> None:
        """Items by category weighted by last-week popularity; users weighted by activity."""
        items = pd.DataFrame(
            self._fetch("SELECT item_id, category_id, category FROM items WHERE in_stock = 1"),
            columns=["item_id", "category_id", "category"],
        )
        if items.empty:
            raise RuntimeError(
                f"{self.s.raw_db}.items is empty: load a simulation or import a file before feeding"
            )
        (last,) = self._fetch("SELECT MAX(ts) FROM user_behavior")[0]
        since = (last or pd.Timestamp.now()) - pd.Timedelta(days=7)
        pop = dict(
            self._fetch(
                "SELECT item_id, COUNT(*) FROM user_behavior WHERE ts >= %s AND item_id IS NOT NULL GROUP BY item_id",
                (since,),
            )
        )
        items["w"] = 1.0 + items["item_id"].map(pop).fillna(0).astype(float)
        self.by_cat = {
            int(c): (g["item_id"].to_numpy(), np.cumsum(g["w"].to_numpy()))
            for c, g in items.groupby("category_id")
        }
        cats = items.groupby("category_id")["w"].sum()
        self.cat_ids, self.cat_cum = cats.index.to_numpy(), np.cumsum(cats.to_numpy())
        self.cat_names = items.drop_duplicates("category_id").set_index("category_id")["category"].to_dict()
        users = self._fetch(
            "SELECT user_id, COUNT(*) FROM user_behavior WHERE ts >= %s GROUP BY user_id", (since,)
        )
        if not users:
            users = [(u, 0) for (u,) in self._fetch("SELECT user_id FROM users")]
        self.user_ids = np.array([u for u, _ in users], dtype=np.int64)
        self.user_cum = np.cumsum([1.0 + n for _, n in users]) if users else np.array([])
        (max_user,) = self._fetch("SELECT COALESCE(MAX(user_id), 0) FROM users")[0]
        self.next_user = int(max_user) + 1

    def _pick(self, cum: np.ndarray) -> int:
        return int(min(np.searchsorted(cum, self.rng.random() * cum[-1], side="right"), len(cum) - 1))

    def _item(self, category: int) -> int:
        ids, cum = self.by_cat.get(category) or self.by_cat[int(self.cat_ids[self._pick(self.cat_cum)])]
        return int(ids[self._pick(cum)])

    def _query(self, category: int) -> tuple[str, dict | None]:
        """The query text and, for a simulated category, its planted truth (no brand is known
        here: the feed picks items as the session goes, so a named brand is drawn from the category)."""
        name = self.cat_names.get(category)
        if 1 <= category <= len(CATEGORIES) and CATEGORIES[category - 1].name == name:
            truth = plan_queries(np.array([category - 1]), np.array([None], dtype=object), self.rng)
            row = truth.iloc[0].to_dict()
            return str(row["query_text"]), row
        return str(name or f"category {category}"), None

    def _open_session(
        self, now: pd.Timestamp, new_users: list[dict], intents: list[dict], queries: list[dict]
    ) -> None:
        """Continue a user's recent session or start a new one (sometimes for a new user)."""
        active = {s.user_id for s in self.pool.values()}
        candidates = (
            [int(self.user_ids[self._pick(self.user_cum)]) for _ in range(10)] if len(self.user_ids) else []
        )
        idle = [u for u in candidates if u not in active]
        if not idle or self.rng.random() < 0.03:
            user, history = self.next_user, []
            self.next_user += 1
            new_users.append({"user_id": user, "signup_ts": now})
            self.report.users_new += 1
        else:
            user = idle[0]
            history = self._fetch(
                "SELECT e.item_id, i.category_id, e.session_id, e.ts FROM user_behavior e "
                "LEFT JOIN items i ON i.item_id = e.item_id WHERE e.user_id = %s ORDER BY e.ts DESC LIMIT 30",
                (user,),
            )
        seen = [(int(i), int(c)) for i, c, _, _ in history if i is not None and c is not None]
        cats = Counter(c for _, c in seen)
        usual = cats.most_common(1)[0][0] if cats else None
        browses = 1 + int(self.rng.poisson(5))
        if history and now - pd.Timestamp(history[0][3]) <= SESSION_GAP and seen:
            self.pool[history[0][2]] = _Session(history[0][2], user, seen[0][1], browses, seen)
            self.report.sessions_continued += 1
            return
        switch = usual is None or self.rng.random() < 0.33
        intent = int(self.cat_ids[self._pick(self.cat_cum)]) if switch else usual
        sid = f"{user}-{int(now.timestamp())}"
        if sid in self.opened:  # this user already started a session this second
            return
        self.opened.add(sid)
        query, truth = self._query(intent) if self.rng.random() < 0.6 else (None, None)
        self.pool[sid] = _Session(sid, user, intent, browses, seen, query)
        if truth is not None:
            queries.append({**truth, "session_id": sid, "user_id": user, "has_typo": int(truth["has_typo"])})
        intents.append(
            {
                "session_id": sid,
                "user_id": user,
                "intent_category_id": intent,
                "long_term_category_id": usual if usual is not None else intent,
                "is_switch": int(usual is not None and intent != usual),
                "query_text": query,
                "start_ts": now,
            }
        )
        self.report.sessions_new += 1

    def _next_event(self, sess: _Session) -> tuple[str, int | None, str | None] | None:
        """The session's next event (type, item, query), or None when it is over."""
        rng = self.rng
        if sess.query is not None:  # a new session opens with its search
            q, sess.query = sess.query, None
            return "search", None, q
        if sess.pending:
            kind, item = sess.pending.pop(0)
            return kind, item, None
        if sess.browses_left > 0:
            sess.browses_left -= 1
            own = [i for i, c in sess.history if c == sess.intent] + sess.seen
            item = int(rng.choice(own)) if own and rng.random() < 0.3 else self._item(sess.intent)
            sess.seen.append(item)
            if rng.random() < 0.08:
                sess.pending.append(("cart", item))
                sess.carted.append(item)
            elif rng.random() < 0.02:
                sess.pending.append(("fav", item))
            return "browse", item, None
        if not sess.checked_out:
            sess.checked_out = True
            sess.pending = [("purchase", i) for i in sess.carted if rng.random() < 0.35]
            return self._next_event(sess) if sess.pending else None
        return None

    def batch(
        self, n_events: int, now: pd.Timestamp, span: pd.Timedelta
    ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """``n_events`` events timed evenly in ``(now - span, now]``, plus new users and the
        ground truth of sessions started and of their queries. Pure generation: nothing is written."""
        rows: list[dict] = []
        new_users: list[dict] = []
        intents: list[dict] = []
        queries: list[dict] = []
        # open sessions ≈ 4 s of events: each session advances every few seconds, so short runs
        # still see whole sessions (search → browses → cart → checkout), not only openings
        target = int(
            np.clip(
                n_events * 4 / max(span.total_seconds(), 1e-3),
                2,
                min(self.max_pool, len(self.user_ids) // 2 + 2),
            )
        )
        tries = 0
        while len(rows) < n_events and tries < 20 * n_events + 100:
            tries += 1
            if len(self.pool) < target:
                self._open_session(now, new_users, intents, queries)
                continue
            sid = list(self.pool)[int(self.rng.integers(len(self.pool)))]
            sess = self.pool[sid]
            ev = self._next_event(sess)
            if ev is None:
                del self.pool[sid]
                continue
            rows.append(
                {
                    "user_id": sess.user_id,
                    "item_id": ev[1],
                    "session_id": sid,
                    "behavior_type": ev[0],
                    "query_text": ev[2],
                }
            )
        events = pd.DataFrame(
            rows, columns=["user_id", "item_id", "session_id", "behavior_type", "query_text"]
        )
        offsets = (np.arange(1, len(events) + 1) / max(len(events), 1)) * span.total_seconds() * 1000
        events["ts"] = (
            (now - span + pd.to_timedelta(np.floor(offsets), unit="ms")).floor("ms")
            if len(events)
            else pd.Series(dtype="datetime64[ms]")
        )
        events["item_id"] = events["item_id"].astype("Int64")
        users = pd.DataFrame(new_users, columns=["user_id", "signup_ts"])
        return (
            events,
            users,
            pd.DataFrame(intents, columns=list(INTENT_COLUMNS)),
            pd.DataFrame(queries, columns=list(QUERY_INTENT_COLUMNS)),
        )

    def write(self, n_events: int, now: pd.Timestamp, span: pd.Timedelta) -> LoadReport:
        """Generate one batch and commit it (events, new users, ground truth) atomically."""
        events, users, intents, queries = self.batch(n_events, now, span)
        checked = validate_events(events, SOURCE, now=now)
        report = write_batch(
            checked,
            SOURCE,
            self.s,
            users=users,
            also=[
                ("sim_session_intent", intents, INTENT_COLUMNS, "replace"),
                ("sim_query_intent", queries, QUERY_INTENT_COLUMNS, "replace"),
            ],
        )
        self.report.events += report.loaded
        self.report.batches += 1
        self.report.quarantined.update(report.quarantined)
        return report


def _utc_now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC").tz_localize(None)


def run_feed(
    rate: float,
    duration: float,
    settings: Settings | None = None,
    *,
    seed: int | None = None,
    batch_seconds: float = 1.0,
    clock: Callable[[], pd.Timestamp] = _utc_now,
    sleep: Callable[[float], None] = time.sleep,
    on_batch: Callable[[FeedReport], None] | None = None,
) -> FeedReport:
    """Append about ``rate`` events per second for ``duration`` seconds, one committed batch every
    ``batch_seconds`` (catching up without sleeping if writing falls behind). ``clock``/``sleep``
    can be replaced (tests, replays)."""
    feed = LiveFeed(settings, seed)
    started = time.perf_counter()
    try:
        n_batches = max(1, math.ceil(duration / batch_seconds))
        t0 = clock()
        for k in range(n_batches):
            due = t0 + pd.Timedelta(seconds=(k + 1) * batch_seconds)
            wait = (due - clock()).total_seconds()
            if wait > 0:
                sleep(wait)
            n = int(feed.rng.poisson(rate * batch_seconds))
            if n:
                feed.write(n, clock(), pd.Timedelta(seconds=batch_seconds))
            if on_batch:
                on_batch(feed.report)
    finally:
        feed.close()
    feed.report.seconds = time.perf_counter() - started
    return feed.report
