"""Reasons for recommended rows (issue 17): why each item is in a user's list, as a short code and
its argument, e.g. ``("searched", "running shoes")``, ``("viewed_with", "123")``,
``("popular_in", "trainers")``.

A pure, vectorised function over a publish frame and the user's evidence (what they carted,
searched, viewed and bought, their session's intent category, the co-visitation pairs of their
recent items). The evidence mirrors the candidate generators of ``ml_candidates`` (repeat → own
items, covisit → neighbours of the recent items, intent_pop → the intent category, global_pop →
popularity), so a reason names the strongest signal that holds for the row, whichever model ranked
it: the champion reranker, a baseline or a backfill row get reasons the same way. The first code of
:data:`ml.contracts.REASON_CODES` that holds wins:

1. ``carted``: the user carted the item and has not bought it since;
2. ``searched``: a query of the user's last session matches the item's text (title, category,
   brand) — at least half of the query's tokens (and one) are tokens of the item text; the most
   recent such query is the argument, in ``normalize_query`` form;
3. ``viewed_with``: the item is a co-visitation neighbour of one of the user's ``covisit_sources``
   most recent items; the argument is the id of the neighbour with the largest pair score ×
   ``covisit_decay^(position - 1)`` — the same weighting as ``int_user_covisit_neighbours``;
4. ``bought_before``: the user bought it (kept by the repeat-buy rule);
5. ``viewed_before``: one of the user's own recent items;
6. ``session_intent``: in the category of the user's current session intent (argument: its name);
7. ``popular_in``: in a category of the user's recent items (argument: its name);
8. ``popular``: none of the above — global popularity.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.contracts import MAX_REASON_ARG_CHARS, REASON_CODES
from ml.search.text import normalize_query, tokenize

_UNSAFE = re.compile(r'[\t\r\n\\"]+')


@dataclass(frozen=True)
class ReasonEvidence:
    """What explains the rows of some users; every frame keyed by int64 ids, any may be empty.

    ``items``: item_id, category_id, category (name), title, brand — the rows' items and the
    user's recent items. ``intent``: user_id, category_id. ``recent``: user_id, item_id, pos (1 =
    most recent). ``carted`` / ``bought``: user_id, item_id. ``queries``: user_id, query_text, pos
    (1 = most recent) of the last session. ``covis``: item_id, similar_item_id, score.
    """

    items: pd.DataFrame
    intent: pd.DataFrame
    recent: pd.DataFrame
    carted: pd.DataFrame
    bought: pd.DataFrame
    queries: pd.DataFrame
    covis: pd.DataFrame
    covisit_sources: int = 10
    covisit_decay: float = 0.8


def clean_arg(value: object) -> str:
    """A reason argument safe for the TSV load and the VARCHAR(100) column: no tabs, line breaks,
    backslashes or double quotes, spaces collapsed, at most :data:`MAX_REASON_ARG_CHARS`."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    text = " ".join(_UNSAFE.sub(" ", str(value)).split())
    return text[:MAX_REASON_ARG_CHARS].strip()


def _ids(df: pd.DataFrame, cols: tuple[str, ...]) -> pd.DataFrame:
    return df.astype({c: "int64" for c in cols})


def _member(keys: pd.DataFrame, other: pd.DataFrame, on: list[str]) -> np.ndarray:
    """Per row of ``keys``: whether its ``on`` values are a row of ``other``."""
    if other.empty or keys.empty:
        return np.zeros(len(keys), dtype=bool)
    found = _ids(other[on].drop_duplicates(), tuple(on)).assign(_hit=True)
    merged = keys[on].merge(found, on=on, how="left")
    return merged["_hit"].eq(True).to_numpy()


def _best_arg(keys: pd.DataFrame, best: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(hit, arg) per row of ``keys`` from ``best`` (user_id, item_id, arg; one row per pair)."""
    if best.empty:
        return np.zeros(len(keys), dtype=bool), np.full(len(keys), "", dtype=object)
    merged = keys[["user_id", "item_id"]].merge(best, on=["user_id", "item_id"], how="left")
    hit = merged["arg"].notna().to_numpy()
    return hit, merged["arg"].fillna("").astype(str).to_numpy(dtype=object)


def _searched(keys: pd.DataFrame, ev: ReasonEvidence) -> pd.DataFrame:
    """(user_id, item_id, arg): the most recent last-session query matching the item's text."""
    if ev.queries.empty or ev.items.empty:
        return pd.DataFrame(columns=["user_id", "item_id", "arg"])
    q = _ids(ev.queries[["user_id", "query_text", "pos"]], ("user_id",)).copy()
    q["query"] = q["query_text"].map(normalize_query)
    q["token"] = q["query"].map(lambda s: sorted(set(tokenize(s))))
    q = q[q["token"].str.len() > 0]
    q["need"] = q["token"].str.len().map(lambda k: max(1, math.ceil(k / 2)))
    q_tok = q.explode("token")[["user_id", "query", "pos", "need", "token"]]
    items = ev.items[ev.items["item_id"].isin(keys["item_id"].unique())]
    text = items["title"].fillna("").astype(str) + " " + items["category"].fillna("").astype(str)
    text = text + " " + items["brand"].fillna("").astype(str)
    i_tok = pd.DataFrame(
        {
            "item_id": items["item_id"].astype("int64").to_numpy(),
            "token": text.map(lambda s: sorted(set(tokenize(s, None)))),
        }
    ).explode("token")
    pairs = keys[["user_id", "item_id"]].drop_duplicates().merge(q_tok, on="user_id")
    pairs = pairs.merge(i_tok.dropna(), on=["item_id", "token"])
    if pairs.empty:
        return pd.DataFrame(columns=["user_id", "item_id", "arg"])
    hits = pairs.groupby(["user_id", "item_id", "query", "pos", "need"], as_index=False).size()
    hits = hits[hits["size"] >= hits["need"]].sort_values(["user_id", "item_id", "pos"], kind="stable")
    best = hits.drop_duplicates(["user_id", "item_id"])
    return best.assign(arg=best["query"].map(clean_arg))[["user_id", "item_id", "arg"]]


def _viewed_with(keys: pd.DataFrame, ev: ReasonEvidence) -> pd.DataFrame:
    """(user_id, item_id, arg): the recent item whose co-visitation with the row's item weighs most."""
    if ev.covis.empty or ev.recent.empty:
        return pd.DataFrame(columns=["user_id", "item_id", "arg"])
    src = _ids(ev.recent[["user_id", "item_id", "pos"]], ("user_id", "item_id", "pos"))
    src = src[src["pos"] <= ev.covisit_sources].rename(columns={"item_id": "source_item"})
    pairs = _ids(ev.covis[["item_id", "similar_item_id", "score"]], ("item_id", "similar_item_id"))
    pairs = pairs.rename(columns={"item_id": "source_item", "similar_item_id": "item_id"})
    pairs = pairs[pairs["item_id"].isin(keys["item_id"].unique()) & (pairs["score"] > 0)]
    joined = src.merge(pairs, on="source_item").merge(keys[["user_id", "item_id"]].drop_duplicates())
    joined = joined[joined["source_item"] != joined["item_id"]]
    if joined.empty:
        return pd.DataFrame(columns=["user_id", "item_id", "arg"])
    joined["weight"] = joined["score"] * np.power(ev.covisit_decay, joined["pos"] - 1)
    joined = joined.sort_values(
        ["user_id", "item_id", "weight", "pos"], ascending=[True, True, False, True], kind="stable"
    )
    best = joined.drop_duplicates(["user_id", "item_id"])
    return best.assign(arg=best["source_item"].astype(str))[["user_id", "item_id", "arg"]]


def _category_names(ev: ReasonEvidence) -> dict[int, str]:
    """category_id → name (the id itself where the catalogue has no name)."""
    cats = ev.items.dropna(subset=["category_id"])
    names = cats.assign(category=cats["category"].fillna("").astype(str))
    out = {}
    for cid, name in zip(names["category_id"].astype("int64"), names["category"]):
        if name or int(cid) not in out:
            out[int(cid)] = clean_arg(name) or str(int(cid))
    return out


def assign_reasons(rows: pd.DataFrame, ev: ReasonEvidence) -> pd.DataFrame:
    """``rows`` (with user_id, item_id) plus ``reason`` and ``reason_arg``, by the precedence of
    the module docstring; every row gets a code (``popular`` when nothing else holds)."""
    out = rows.copy()
    if out.empty:
        return out.assign(reason=pd.Series(dtype=object), reason_arg=pd.Series(dtype=object))
    keys = pd.DataFrame(
        {
            "user_id": out["user_id"].astype("int64").to_numpy(),
            "item_id": out["item_id"].astype("int64").to_numpy(),
        }
    )
    item_cat = ev.items.dropna(subset=["category_id"]).drop_duplicates("item_id")
    cat_of = dict(zip(item_cat["item_id"].astype("int64"), item_cat["category_id"].astype("int64")))
    keys["category_id"] = keys["item_id"].map(cat_of).fillna(-1).astype("int64")
    names = _category_names(ev)
    category_arg = keys["category_id"].map(lambda c: names.get(int(c), str(int(c)))).to_numpy(dtype=object)
    empty = np.full(len(keys), "", dtype=object)

    searched, searched_arg = _best_arg(keys, _searched(keys, ev))
    viewed_with, viewed_with_arg = _best_arg(keys, _viewed_with(keys, ev))
    recent = (
        _ids(ev.recent[["user_id", "item_id"]], ("user_id", "item_id")) if not ev.recent.empty else ev.recent
    )
    recent_cats = (
        recent.assign(category_id=recent["item_id"].map(cat_of)).dropna(subset=["category_id"])
        if not recent.empty
        else pd.DataFrame(columns=["user_id", "category_id"])
    )
    known_cat = keys["category_id"].to_numpy() >= 0
    conditions = {
        "carted": (_member(keys, ev.carted, ["user_id", "item_id"]), empty),
        "searched": (searched, searched_arg),
        "viewed_with": (viewed_with, viewed_with_arg),
        "bought_before": (_member(keys, ev.bought, ["user_id", "item_id"]), empty),
        "viewed_before": (_member(keys, recent, ["user_id", "item_id"]), empty),
        "session_intent": (known_cat & _member(keys, ev.intent, ["user_id", "category_id"]), category_arg),
        "popular_in": (known_cat & _member(keys, recent_cats, ["user_id", "category_id"]), category_arg),
        "popular": (np.ones(len(keys), dtype=bool), empty),
    }
    assert tuple(conditions) == REASON_CODES, "the precedence is the order of ml.contracts.REASON_CODES"
    reason = np.full(len(keys), "", dtype=object)
    arg = np.full(len(keys), "", dtype=object)
    for code, (holds, code_arg) in reversed(conditions.items()):  # earlier codes overwrite later ones
        reason[holds] = code
        arg[holds] = code_arg[holds]
    out["reason"] = reason
    out["reason_arg"] = arg
    return out
