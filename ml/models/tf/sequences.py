"""Behaviour sequences from raw events, the in-memory twin of ``fct_session_intent``'s text columns:
next-item training examples for the two-tower model and one context row per user.

Apart from the encoders because it works on raw ``user_behavior`` rows (point in time: only events
before the cut) and produces the text columns the encoders then parse, exactly as dbt does.
"""

from __future__ import annotations

import pandas as pd

from ml.models.tf.parsing import require_columns


def sequences_from_events(
    events: pd.DataFrame,
    *,
    max_len: int = 20,
    max_queries: int = 5,
    max_per_user: int | None = 50,
    include_empty: bool = False,
) -> pd.DataFrame:
    """Next-item training examples for the two-tower model from raw ``user_behavior`` rows.

    Mirrors ``fct_session_intent`` so training and serving see the same context: for every item
    event (browse/cart/fav/purchase) ``last_items`` holds the user's earlier *distinct* items, most
    recently touched first (≤ ``max_len``), and ``query_terms`` the distinct search texts of the
    current session (``session_id``, when given), most recent first (≤ ``max_queries``); the target
    is the event's ``item_id``. Examples without any earlier item are skipped unless
    ``include_empty`` (then only the session's queries describe the user);
    ``max_per_user`` keeps each user's most recent examples. Point-in-time: pass only events
    before the cut.
    """
    require_columns(events, ["user_id", "item_id", "behavior_type", "ts"], "sequences_from_events")
    ev = events.sort_values(["user_id", "ts"], kind="stable")
    n = len(ev)
    qtexts = ev["query_text"].tolist() if "query_text" in ev.columns else [None] * n
    sessions = ev["session_id"].tolist() if "session_id" in ev.columns else [None] * n
    rows: list[tuple] = []
    user_rows: list[tuple] = []
    hist: dict[str, None] = {}
    queries: dict[str, None] = {}
    prev_user, prev_session = object(), object()
    for uid, item, btype, qt, sess, ts in zip(
        ev["user_id"].tolist(),
        ev["item_id"].tolist(),
        ev["behavior_type"].tolist(),
        qtexts,
        sessions,
        ev["ts"].tolist(),
    ):
        if uid != prev_user:
            rows.extend(user_rows[-max_per_user:] if max_per_user is not None else user_rows)
            user_rows, hist, queries, prev_session = [], {}, {}, object()
            prev_user = uid
        if sess != prev_session:
            queries, prev_session = {}, sess
        if btype == "search" or pd.isna(item):
            if isinstance(qt, str) and qt.strip():
                queries.pop(qt.strip(), None)
                queries[qt.strip()] = None
            continue
        key = str(int(item))
        if hist or include_empty:
            recent = list(hist)[::-1][:max_len]
            qs = list(queries)[::-1][:max_queries]
            user_rows.append((uid, ",".join(recent), " ".join(qs), int(item), btype, ts))
        hist.pop(key, None)
        hist[key] = None
        if len(hist) > 4 * max_len:  # bound memory; only the most recent max_len are ever read
            for old in list(hist)[: len(hist) - max_len]:
                del hist[old]
    rows.extend(user_rows[-max_per_user:] if max_per_user is not None else user_rows)
    return pd.DataFrame(
        rows, columns=["user_id", "last_items", "query_terms", "item_id", "behavior_type", "ts"]
    )


def contexts_from_events(events: pd.DataFrame, *, max_len: int = 20, max_queries: int = 5) -> pd.DataFrame:
    """One row per user: ``last_items`` and ``query_terms`` (last session's searches) as of the end of
    ``events``, built exactly like the two-tower training examples (in-memory twin of
    ``fct_session_intent``'s text columns; for tests, benchmarks and point-in-time checks)."""
    require_columns(events, ["user_id", "item_id", "behavior_type", "ts"], "contexts_from_events")
    last = events.sort_values(["user_id", "ts"], kind="stable").groupby("user_id", sort=False).tail(1)
    probe = last.assign(
        item_id=-1, behavior_type="browse", query_text=None, ts=last["ts"] + pd.Timedelta(milliseconds=1)
    )
    seq = sequences_from_events(
        pd.concat([events, probe], ignore_index=True),
        max_len=max_len,
        max_queries=max_queries,
        max_per_user=1,
        include_empty=True,
    )
    return seq[seq["item_id"] == -1][["user_id", "last_items", "query_terms"]].reset_index(drop=True)
