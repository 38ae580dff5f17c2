"""A holdout computes what does not depend on the rules once (ground truth, scores, baseline lists)
and reuses it across rule sets: the metrics must be exactly those of evaluating from scratch."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from ml.features.candidates import build_features
from ml.models.evaluate import evaluate_recommendations
from ml.models.rerank import ColumnScorer, TwoStageRecommender, fit_lightgbm
from ml.models.rules import RuleConfig
from ml.training.config import TrainConfig
from ml.training.holdout import evaluate_all, make_holdout
from ml.training.rules_choice import ablation_variants
from tests.code.test_rerank import synthetic_cut

CUT = pd.Timestamp("2026-01-01")


def _cut(seed: int):
    """The synthetic cut of test_rerank with a history, co-visitation, purchases and a label window."""
    rng = np.random.default_rng(seed)
    cut = synthetic_cut(seed)
    n_users, n_items = len(cut.users), len(cut.items)
    kinds = np.array(["browse", "browse", "browse", "cart", "fav", "purchase"])
    history = pd.DataFrame(
        {
            "user_id": rng.integers(1, n_users + 1, 3000),
            "item_id": rng.integers(1, n_items + 1, 3000).astype(float),
            "behavior_type": kinds[rng.integers(0, len(kinds), 3000)],
            "ts": CUT - pd.to_timedelta(rng.integers(60, 7 * 86400, 3000), unit="s"),
        }
    )
    history["session_id"] = history["user_id"].astype(str) + "-h"
    labels = cut.labels
    window = pd.DataFrame(
        {
            "user_id": labels["user_id"],
            "item_id": labels["item_id"].astype(float),
            "behavior_type": np.where(
                labels["purchased"] == 1, "purchase", np.where(labels["carted"] == 1, "cart", "browse")
            ),
            "ts": CUT + pd.to_timedelta(rng.integers(1, 86400, len(labels)), unit="s"),
        }
    )
    window["session_id"] = window["user_id"].astype(str) + "-w"
    covis = pd.DataFrame(
        {
            "item_id": rng.integers(1, n_items + 1, 400),
            "similar_item_id": rng.integers(1, n_items + 1, 400),
            "score": rng.random(400),
        }
    )
    covis = covis[covis["item_id"] != covis["similar_item_id"]].drop_duplicates(
        ["item_id", "similar_item_id"]
    )
    bought = history.loc[history["behavior_type"] == "purchase", ["user_id", "item_id"]].astype("int64")
    items = cut.items.assign(in_stock=(np.arange(n_items) % 7 != 0).astype(int))
    return replace(
        cut, items=items, history=history, window=window, covis=covis, purchased=bought.drop_duplicates()
    )


def _same(a: dict, b: dict) -> bool:
    """Equal metric tables (NaN, e.g. intent capture without intents, equal to NaN)."""
    return pd.DataFrame(a).sort_index().equals(pd.DataFrame(b).sort_index())


def _intents() -> pd.DataFrame:
    return pd.DataFrame(columns=["session_id", "intent_category_id", "start_ts"])


def test_a_holdout_reused_across_rule_sets_scores_like_a_fresh_one() -> None:
    train, valid = (build_features(_cut(s)) for s in (1, 2))
    fits = {"lightgbm": fit_lightgbm(train, valid, [c for c in train if c.endswith("_score")], rounds=20)}
    cut = _cut(3)
    frame = build_features(cut)
    shared = make_holdout(cut, frame, _intents())
    base = TrainConfig(rules=RuleConfig(max_category_share=0.5))
    variants = list(ablation_variants(base.rules).values())
    # every variant on the one holdout (its caches filled by the first), each against a new holdout
    seen = []
    for rules in variants:
        cfg = replace(base, rules=rules)
        reused = evaluate_all(shared, fits, cfg)
        fresh = evaluate_all(make_holdout(cut, frame, _intents()), fits, cfg)
        assert _same(reused, fresh)
        seen.append(reused["lightgbm"]["ndcg@10"])
    assert len(set(seen)) > 1  # the rules matter here: a cache that ignored them would be caught
    assert len(shared._scored) == 1  # scored once for all the variants
    # and against the plain path: a recommender scoring on its own, evaluated from the raw frames
    rules = variants[-1]
    rec = TwoStageRecommender(
        fits["lightgbm"].scorer, frame, cut.items, cut.purchased, shared.backfill, rules
    )
    plain = evaluate_recommendations(
        rec.recommend(shared.eval_users, base.n),
        cut.window,
        cut.items,
        eval_users=shared.eval_users,
        intents=_intents(),
        cut=cut.cut_ts,
        history=cut.history,
    )
    plain |= rec.last_stats.as_metrics()
    assert _same({"m": evaluate_all(shared, fits, replace(base, rules=rules))["lightgbm"]}, {"m": plain})


def test_scores_given_for_some_users_never_answer_for_others() -> None:
    cut = _cut(4)
    frame = build_features(cut)
    holdout = make_holdout(cut, frame, _intents())
    scorer = ColumnScorer("covisit_score")
    some = holdout.eval_users[:3]
    given = holdout.scores(scorer)
    rec = TwoStageRecommender(
        scorer, frame, cut.items, cut.purchased, holdout.backfill, scored=given[given["user_id"].isin(some)]
    )
    other = [u for u in frame["user_id"].unique() if u not in set(some)][:2]
    plain = TwoStageRecommender(scorer, frame, cut.items, cut.purchased, holdout.backfill)
    pd.testing.assert_frame_equal(rec.score(other), plain.score(other))
    pd.testing.assert_frame_equal(rec.score(some), plain.score(some))
    pd.testing.assert_frame_equal(rec.score(some[:2]), plain.score(some[:2]))  # a part of them
    assert rec.recommend(some + other, 10).equals(plain.recommend(some + other, 10))
