"""Reasons of published rows (ml.models.reasons): the precedence on hand-made evidence, the argument
cleaning, and the frame check the publisher applies (every row has a reason)."""

from __future__ import annotations

import pandas as pd
import pytest

from ml.contracts import REASON_CODES
from ml.models.reasons import ReasonEvidence, assign_reasons, clean_arg
from ml.quality.topn import check_reasons

ITEMS = pd.DataFrame(
    [
        (10, 1, "trainers", "Road runner", "acme"),
        (11, 1, "trainers", "Trail running shoes", "acme"),
        (12, 2, "dresses", "Red dress shoes", "bella"),
        (20, 4, "hats", "Wool hat", "acme"),
        (21, 4, "hats", "Sun hat", "acme"),
        (30, 5, "socks", "Ankle socks", "acme"),
        (31, 5, "socks", "Knee socks", "acme"),
        (32, 6, "coffee", "Espresso beans", "roast"),
        (33, 3, "phones", "Phone case", "acme"),
        (34, 4, "hats", "Cap", "acme"),
        (35, 5, "socks", "Sport socks", "acme"),
        (36, 5, "socks", "Wool socks", "acme"),
    ],
    columns=["item_id", "category_id", "category", "title", "brand"],
)


def _evidence(**changes) -> ReasonEvidence:
    base = dict(
        items=ITEMS,
        intent=pd.DataFrame([(1, 3)], columns=["user_id", "category_id"]),
        # most recent first: 20, 21, then 10 (beyond covisit_sources=2)
        recent=pd.DataFrame([(1, 20, 1), (1, 21, 2), (1, 10, 3)], columns=["user_id", "item_id", "pos"]),
        carted=pd.DataFrame([(1, 10)], columns=["user_id", "item_id"]),
        bought=pd.DataFrame([(1, 32)], columns=["user_id", "item_id"]),
        queries=pd.DataFrame(
            [(1, "Running  SHOES", 1), (1, "red dress", 2)], columns=["user_id", "query_text", "pos"]
        ),
        covis=pd.DataFrame(
            [(20, 30, 1.0), (21, 30, 2.0), (20, 31, 0.5), (10, 36, 9.0), (20, 11, 3.0)],
            columns=["item_id", "similar_item_id", "score"],
        ),
        covisit_sources=2,
        covisit_decay=0.8,
    )
    return ReasonEvidence(**(base | changes))


def _reasons(rows: list[tuple[int, int]], ev: ReasonEvidence) -> list[tuple[int, int, str, str]]:
    frame = pd.DataFrame(rows, columns=["user_id", "item_id"]).assign(score=1.0, source="x")
    out = assign_reasons(frame, ev)
    return list(zip(out["user_id"], out["item_id"], out["reason"], out["reason_arg"]))


def test_precedence_on_hand_made_rows():
    rows = [(1, i) for i in (10, 11, 12, 30, 31, 32, 21, 33, 34, 35, 36)] + [(2, 10)]
    assert _reasons(rows, _evidence()) == [
        (1, 10, "carted", ""),  # carted beats searched-for, own item
        (1, 11, "searched", "running shoes"),  # both tokens match; beats its co-visitation with 20
        (1, 12, "searched", "running shoes"),  # "shoes" is half of the tokens; the latest query wins
        (1, 30, "viewed_with", "21"),  # 2.0 × 0.8 (second most recent) beats 1.0 × 1
        (1, 31, "viewed_with", "20"),
        (1, 32, "bought_before", ""),
        (1, 21, "viewed_before", ""),
        (1, 33, "session_intent", "phones"),
        (1, 34, "popular_in", "hats"),  # the category of recent items 20 and 21
        (1, 35, "popular", ""),
        (1, 36, "popular", ""),  # co-visited only with item 10, beyond the 2 co-visitation sources
        (2, 10, "popular", ""),  # evidence is per user: user 1's cart says nothing about user 2
    ]


def test_without_evidence_every_row_is_popular_and_order_is_kept():
    empty = {
        k: _evidence().__dict__[k].iloc[0:0]
        for k in ("intent", "recent", "carted", "bought", "queries", "covis")
    }
    out = _reasons([(3, 33), (3, 10)], _evidence(**empty))
    assert out == [(3, 33, "popular", ""), (3, 10, "popular", "")]


def test_a_query_sharing_too_few_tokens_is_no_reason():
    ev = _evidence(
        queries=pd.DataFrame([(1, "wool winter scarf gloves", 1)], columns=["user_id", "query_text", "pos"])
    )
    # "wool" is 1 of 4 tokens of the query: not "searched"; item 36 stays popular
    assert _reasons([(1, 36)], ev) == [(1, 36, "popular", "")]


def test_category_without_a_name_is_named_by_its_id():
    items = ITEMS.assign(category=ITEMS["category"].where(ITEMS["category_id"] != 3, None))
    assert _reasons([(1, 33)], _evidence(items=items)) == [(1, 33, "session_intent", "3")]


def test_clean_arg_makes_arguments_safe_for_the_load():
    assert clean_arg('say "hi"\tthere\\now\n') == "say hi there now"
    assert clean_arg(None) == "" and clean_arg(float("nan")) == ""
    assert len(clean_arg("x" * 300)) == 100


def test_frame_check_requires_a_reason_on_every_row():
    ok = assign_reasons(pd.DataFrame({"user_id": [1], "item_id": [33]}), _evidence())
    assert check_reasons(ok) is ok and ok["reason"].iloc[0] in REASON_CODES
    with pytest.raises(ValueError, match="lacks columns"):
        check_reasons(pd.DataFrame({"user_id": [1], "item_id": [33]}))
    with pytest.raises(ValueError, match="has reason ''"):
        check_reasons(ok.assign(reason=""))
    with pytest.raises(ValueError, match="has reason 'because'"):
        check_reasons(ok.assign(reason="because"))
    with pytest.raises(ValueError, match="at most 100"):
        check_reasons(ok.assign(reason_arg="a\tb"))
    with pytest.raises(ValueError, match="NULL"):
        check_reasons(ok.assign(reason_arg=None))
