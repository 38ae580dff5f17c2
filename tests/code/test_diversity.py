"""Beyond-accuracy metrics, MMR re-ranking and the choice of λ, against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ml.models import beyond
from ml.models import evaluate as ev
from ml.models.diversity import MMRRecommender, choose_lambda, mmr_rerank, parse_grid
from ml.models.rerank import ColumnScorer, TwoStageRecommender
from ml.models.rules import Backfill, RuleConfig

# catalogue of 6: item → (category, brand, in stock); item 4 has no brand, 5 is out of stock
ITEMS = pd.DataFrame(
    {
        "item_id": [1, 2, 3, 4, 5, 6],
        "category_id": [100, 100, 200, 300, 200, 400],
        "brand": ["x", "y", "x", None, "y", "z"],
        "in_stock": [1, 1, 1, 1, 0, 1],
    }
)
LISTS = {1: [1, 2, 4], 2: [1, 3, 5], 3: [4, 5]}


def _recs(lists: dict[int, list[int]]) -> pd.DataFrame:
    rows = [(u, r + 1, i, -float(r), "t") for u, items in lists.items() for r, i in enumerate(items)]
    return pd.DataFrame(rows, columns=["user_id", "rank", "item_id", "score", "source"])


def _events(pairs: list[tuple[int, int | None]]) -> pd.DataFrame:
    ts = pd.Timestamp("2026-01-01")
    return pd.DataFrame(
        [(u, i, f"s{u}", "browse" if i is not None else "search", ts) for u, i in pairs],
        columns=["user_id", "item_id", "session_id", "behavior_type", "ts"],
    )


def test_beyond_accuracy_metrics_on_a_hand_made_example() -> None:
    window = _events([(1, 1), (2, 1), (3, 1)])
    # training window: item 1 five times, 2 and 3 once, a search (no item) ignored
    history = _events([(9, 1)] * 5 + [(9, 2), (9, 3), (9, None)])
    m = ev.evaluate_recommendations(_recs(LISTS), window, ITEMS, history=history)
    # category pairs: u1 (100,100,300) 2 of 3 differ; u2 (100,200,200) 2/3; u3 (300,200) 1/1
    assert m["ild_category@10"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    # brand pairs (item 4 has none, left out): u1 (x,y) 1/1; u2 (x,x,y) 2/3; u3 one brand → no pair
    assert m["ild_brand@10"] == pytest.approx((1 + 2 / 3) / 2)
    # shown {1,2,3,4,5} of 6 items; in stock {1,2,3,4,6}, of them shown {1,2,3,4}
    assert m["coverage@10"] == pytest.approx(5 / 6)
    assert m["coverage_in_stock@10"] == pytest.approx(4 / 5)
    # add-one smoothing: counts 5,1,1,0,0,0 + 1 each over 7 + 6 = 13 events
    info = {1: -math.log2(6 / 13), 2: -math.log2(2 / 13), 3: -math.log2(2 / 13)}
    info |= {4: -math.log2(1 / 13), 5: -math.log2(1 / 13)}
    want = np.mean(
        [
            np.mean([info[1], info[2], info[4]]),
            np.mean([info[1], info[3], info[5]]),
            np.mean([info[4], info[5]]),
        ]
    )
    assert m["novelty@10"] == pytest.approx(want)


def test_identical_items_have_no_diversity_and_single_items_are_left_out() -> None:
    cat = {1: "a", 2: "a", 3: "b"}
    assert beyond.intra_list_diversity([1, 2], cat) == 0.0
    assert math.isnan(beyond.intra_list_diversity([3], cat))
    assert beyond.intra_list_diversity([1, 2, 3], cat, k=2) == 0.0  # only the top k counts


# candidates of user 7: item → (category, score); 10 and 12 share a brand
CATS = {10: "A", 11: "A", 12: "B", 13: "C"}
BRANDS = {10: "x", 12: "x", 11: "y", 13: "z"}
SCORES = pd.DataFrame({"user_id": 7, "item_id": [10, 11, 12, 13], "score": [0.9, 0.8, 0.5, 0.1]})


def _order(out: pd.DataFrame, user: int = 7) -> list[int]:
    return out[out["user_id"] == user].sort_values("mmr_rank")["item_id"].tolist()


def test_mmr_lambda_one_keeps_the_score_order() -> None:
    assert _order(mmr_rerank(SCORES, CATS, 1.0, 4)) == [10, 11, 12, 13]


def test_mmr_small_lambda_spreads_categories() -> None:
    # rel = (s - 0.1) / 0.8 → 1, .875, .5, 0. λ=.5, step 2: 11 → .4375 - .5 < 12 → .25 > 13 → 0
    # step 3: 11 → -.0625 < 13 → 0 (C is new); then 11
    assert _order(mmr_rerank(SCORES, CATS, 0.5, 4)) == [10, 12, 13, 11]
    # same brand counts as similar too: 12 (brand x like 10) → .25 - .5, so 13 first, then 11, 12
    assert _order(mmr_rerank(SCORES, CATS, 0.5, 4, item_brand=BRANDS)) == [10, 13, 11, 12]
    assert _order(mmr_rerank(SCORES, CATS, 0.5, 2)) == [10, 12]  # only k picks


def test_mmr_ties_are_deterministic_and_users_independent() -> None:
    tied = pd.DataFrame({"user_id": 1, "item_id": [5, 3, 4], "score": [1.0, 1.0, 1.0]})
    both = pd.concat([SCORES, tied], ignore_index=True)
    cats = CATS | {3: "A", 4: "A", 5: "B"}
    out = mmr_rerank(both.sample(frac=1.0, random_state=3), cats, 0.0, 3)
    # equal scores → item id order; λ=0: 3 first, 4 covered by A → 5 (B) beats it, then 4
    assert _order(out, 1) == [3, 5, 4]
    assert _order(out, 7) == [10, 12, 13]
    again = mmr_rerank(both.sample(frac=1.0, random_state=11), cats, 0.0, 3)
    pd.testing.assert_frame_equal(
        out.sort_values(["user_id", "mmr_rank"]).reset_index(drop=True),
        again.sort_values(["user_id", "mmr_rank"]).reset_index(drop=True),
    )


def test_mmr_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="lam"):
        mmr_rerank(SCORES, CATS, 1.5, 3)
    with pytest.raises(ValueError, match="missing"):
        mmr_rerank(SCORES.drop(columns="score"), CATS, 0.5, 3)
    with pytest.raises(ValueError, match="missing values"):
        mmr_rerank(SCORES.assign(score=[0.1, np.nan, 0.2, 0.3]), CATS, 0.5, 3)


def test_mmr_recommender_ignores_items_the_rules_drop() -> None:
    items = pd.DataFrame(
        {"item_id": [10, 11, 12, 13, 14], "category_id": [1, 1, 2, 2, 3], "in_stock": [1, 1, 0, 1, 1]}
    )
    frame = pd.DataFrame({"user_id": 7, "item_id": [10, 11, 12, 13, 14], "s": [0.9, 0.8, 0.7, 0.1, 0.05]})
    purchased = pd.DataFrame({"user_id": pd.Series(dtype="int64"), "item_id": pd.Series(dtype="int64")})
    rec = TwoStageRecommender(ColumnScorer("s"), frame, items, purchased, Backfill({}, [], {}), RuleConfig())
    # 12 is out of stock: it must not cover category 2, so 13 is picked second (rel .0588·λ > 0 for 14)
    out = MMRRecommender(rec, 0.5).recommend([7], 3)
    assert out.sort_values("rank")["item_id"].tolist() == [10, 13, 14]
    plain = MMRRecommender(rec, 1.0).recommend([7], 3)
    assert plain["item_id"].tolist() == rec.recommend([7], 3)["item_id"].tolist()


def test_choose_lambda_rule() -> None:
    table = pd.DataFrame(
        {"ndcg@10": [0.100, 0.098, 0.096, 0.094, 0.080], "ild_category@10": [0.5, 0.6, 0.7, 0.8, 0.9]},
        index=[1.0, 0.9, 0.8, 0.7, 0.5],
    )
    assert choose_lambda(table, 0.95) == 0.8  # 0.7 falls below 0.095
    assert choose_lambda(table, 0.9) == 0.7
    assert choose_lambda(table, 0.5) == 0.5
    tied = table.assign(**{"ild_category@10": [0.5, 0.7, 0.7, 0.8, 0.9]})
    assert choose_lambda(tied, 0.95) == 0.9  # equal diversity → the larger λ
    with pytest.raises(ValueError, match="λ = 1"):
        choose_lambda(table.drop(index=1.0))


def test_parse_grid() -> None:
    assert parse_grid("0.5, 1.0,0.9") == [1.0, 0.9, 0.5]
    with pytest.raises(ValueError, match="1.0"):
        parse_grid("0.9,0.5")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        parse_grid("1.0,1.5")
    with pytest.raises(ValueError, match="comma-separated"):
        parse_grid("1.0;0.5")


def test_ild_counts_pairs_as_the_pandas_definition_does_nan_attributes_included() -> None:
    """Equal attributes pair up (1 and 1.0 alike); a NaN attribute keeps its item in the list but
    pairs with nothing, as pandas' value_counts (the earlier implementation) drops NaN."""
    rng = np.random.default_rng(0)
    kinds = [1, 2, 2.0, float("nan"), np.float64(3), 3, "a"]
    attr = {i: kinds[int(rng.integers(len(kinds)))] for i in range(60)}

    def reference(ranked: list[int], k: int = 10) -> float:
        values = [attr[i] for i in ranked[:k] if attr.get(i) is not None]
        pairs = len(values) * (len(values) - 1) // 2
        same = sum(c * (c - 1) // 2 for c in pd.Series(values).value_counts().tolist())
        return 1.0 - same / pairs if pairs else float("nan")

    for _ in range(300):
        ranked = [int(i) for i in rng.integers(0, 70, int(rng.integers(0, 14)))]
        got, want = beyond.intra_list_diversity(ranked, attr), reference(ranked)
        assert (math.isnan(got) and math.isnan(want)) or got == want, ranked
    assert beyond.intra_list_diversity([0, 1], {0: float("nan"), 1: float("nan")}) == 1.0  # NaN != NaN
