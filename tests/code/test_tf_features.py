"""Parsing layer of the TF models: vocabularies (padding/OOV), list parsing, scaling, JSON round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.models.tf.features import (
    OOV,
    PAD,
    Encoders,
    NumericScaler,
    PriceBuckets,
    Vocab,
    pad_lookup,
)
from ml.models.tf.parsing import split_list
from ml.models.tf.sequences import sequences_from_events

ITEMS = pd.DataFrame(
    {
        "item_id": [10, 11, 12, 20],
        "category_id": [1, 1, 1, 2],
        "brand": ["acme", "acme", None, "zed"],
        "price": [5.0, 10.0, 20.0, None],
        "title": ["red shoe", "blue shoe", "green sock", "tv screen"],
        "category": ["shoes", "shoes", "shoes", "tv"],
    }
)


def test_vocab_reserves_padding_and_oov():
    v = Vocab.build([10, 10, 11, 12], "int")
    assert v.size == 5
    assert v.keys[0] == 10  # most frequent first
    idx = v.lookup([10, 11, 12, 999, None])
    assert idx.tolist() == [2, 3, 4, OOV, OOV]
    assert PAD not in idx


def test_vocab_rejects_non_integer_ids():
    v = Vocab.build([1, 2], "int")
    with pytest.raises(ValueError, match="non-integer"):
        v.lookup(["1", "abc"])


def test_string_vocab_min_count_sends_rare_values_to_oov():
    v = Vocab.build(["a", "a", "b"], "str", min_count=2)
    assert v.lookup(["a", "b", "new"]).tolist() == [2, OOV, OOV]


def test_split_list_handles_text_lists_and_missing():
    s = pd.Series(["3,2, 1", "", None, np.nan, [7, 8]])
    assert split_list(s, ",") == [["3", "2", "1"], [], [], [], ["7", "8"]]


def test_pad_lookup_keeps_most_recent_first_and_pads_right():
    v = Vocab.build([1, 2, 3], "int")  # keys sorted 1,2,3 (equal counts) → indices 2,3,4
    out = pad_lookup([["3", "2", "1"], ["9"], []], v, max_len=2)
    assert out.tolist() == [[4, 3], [OOV, PAD], [PAD, PAD]]


def test_numeric_scaler_matches_hand_computed_values():
    df = pd.DataFrame({"x": [0.0, np.e - 1, np.nan]})
    sc = NumericScaler.fit(df, ["x"])
    # slog(x) = [0, 1]; mean 0.5, std 0.5 → z = [-1, 1], missing → 0
    assert sc.mean == [pytest.approx(0.5)] and sc.std == [pytest.approx(0.5)]
    np.testing.assert_allclose(sc.transform(df)[:, 0], [-1.0, 1.0, 0.0], atol=1e-6)
    with pytest.raises(ValueError, match="missing column"):
        sc.transform(pd.DataFrame({"y": [1]}))


def test_price_buckets_missing_price_gets_its_own_bucket():
    pb = PriceBuckets.fit(pd.Series([1, 2, 3, 4]), n_buckets=2)
    assert pb.edges == [2.5]
    assert pb.lookup([1.0, 3.0, None]).tolist() == [1, 2, 0]


def test_context_uses_aligned_categories_else_catalogue_map():
    enc = Encoders.fit(
        ITEMS, pd.DataFrame({"query_terms": ["red shoe"]}), max_len=3, max_query_tokens=3, token_min_users=1
    )
    ctx = pd.DataFrame(
        {
            "last_items": ["11,10", "20,999,10", None],
            # row 0 aligned (its own categories win), row 1 misaligned → catalogue map, 999 unknown
            "last_categories": ["2,2", "2", None],
            "query_terms": ["red shoe unknownword", None, ""],
        }
    )
    x = enc.encode_context(ctx)
    cat = enc.category.lookup
    assert x["hist_items"].tolist()[0] == [*enc.item.lookup([11, 10]).tolist(), PAD]
    assert x["hist_items"][1, 1] == OOV
    assert x["hist_cats"].tolist()[0] == [*cat([2, 2]).tolist(), PAD]
    assert x["hist_cats"].tolist()[1] == [cat([2])[0], OOV, cat([1])[0]]
    assert x["hist_cats"].tolist()[2] == [PAD, PAD, PAD]
    tok = enc.token.lookup
    assert x["query_tokens"].tolist()[0] == [*tok(["red", "shoe"]).tolist(), OOV]
    assert x["query_tokens"][1:].sum() == 0


def test_unknown_item_brand_and_category_map_to_oov_not_an_error():
    enc = Encoders.fit(ITEMS, pd.DataFrame({"x": [1]}))
    new = pd.DataFrame({"item_id": [12345], "category_id": [99], "brand": ["newbrand"], "price": [7.5]})
    x = enc.encode_items(new)
    assert [x["item_id"][0], x["item_cat"][0], x["item_brand"][0]] == [OOV, OOV, OOV]
    assert x["item_price"][0] > 0


def test_encoders_json_round_trip_encodes_identically():
    ctx = pd.DataFrame({"last_items": ["10,20"], "query_terms": ["tv"], "n": [3.0]})
    enc = Encoders.fit(ITEMS, ctx, user_features=["n"], item_features=["price"], token_min_users=1)
    again = Encoders.from_json(enc.to_json())
    for a, b in (
        (enc.encode_context(ctx), again.encode_context(ctx)),
        (enc.encode_items(ITEMS), again.encode_items(ITEMS)),
    ):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


def test_catalogue_must_be_unique_and_categorised():
    with pytest.raises(ValueError, match="duplicate"):
        Encoders.fit(pd.concat([ITEMS, ITEMS.head(1)]), pd.DataFrame({"x": [1]}))
    with pytest.raises(ValueError, match="missing column"):
        Encoders.fit(ITEMS.drop(columns=["brand"]), pd.DataFrame({"x": [1]}))


def test_sequences_from_events_mirrors_session_intent_context():
    """Distinct items, most recently touched first; queries of the current session only."""
    ts = pd.date_range("2026-01-01", periods=7, freq="min")
    events = pd.DataFrame(
        {
            "user_id": [1, 1, 1, 1, 1, 2, 2],
            "session_id": ["a", "a", "a", "a", "b", "c", "c"],
            "item_id": [10, None, 11, 10, 12, 20, 10],
            "behavior_type": ["browse", "search", "cart", "browse", "purchase", "browse", "browse"],
            "query_text": [None, "Blue Shoe!", None, None, None, None, None],
            "ts": ts,
        }
    )
    seq = sequences_from_events(events, max_len=2)
    assert seq[["user_id", "last_items", "query_terms", "item_id"]].values.tolist() == [
        [1, "10", "Blue Shoe!", 11],
        [1, "11,10", "Blue Shoe!", 10],
        [1, "10,11", "", 12],
        [2, "20", "", 10],
    ]
    assert len(sequences_from_events(events, max_per_user=1)) == 2


def test_query_terms_are_tokenized_like_raw_search_text():
    enc = Encoders.fit(
        ITEMS, pd.DataFrame({"query_terms": ["red shoe"]}), max_query_tokens=3, token_min_users=1
    )
    x = enc.encode_context(pd.DataFrame({"last_items": ["10"], "query_terms": ["Red  SHOE!"]}))
    assert x["query_tokens"].tolist() == [[*enc.token.lookup(["red", "shoe"]).tolist(), PAD]]


def test_attach_context_adds_session_and_item_text_keeping_rows():
    from ml.models.tf.ranker_inputs import attach_context

    rows = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [10, 20, 11], "category_id": [1, 2, 1]})
    intent = pd.DataFrame(
        {
            "user_id": [1],
            "last_items": ["11,10"],
            "last_categories": ["1"],
            "query_terms": ["shoe"],
            "intent_category_id": [1],
        }
    )
    out = attach_context(rows, intent, ITEMS)
    assert out[["user_id", "item_id"]].values.tolist() == rows.values[:, :2].tolist()
    assert out["last_items"].tolist() == ["11,10", "11,10", ""]
    assert out["title"].tolist() == ["red shoe", "tv screen", "blue shoe"]
    assert out["category_id"].tolist() == [1, 2, 1]  # the rows' own column is kept
    assert out["intent_category_id"].isna().tolist() == [False, False, True]


def test_contexts_from_events_gives_the_state_at_the_end():
    from ml.models.tf.sequences import contexts_from_events

    ts = pd.date_range("2026-01-01", periods=5, freq="min")
    events = pd.DataFrame(
        {
            "user_id": [1, 1, 1, 2, 3],
            "session_id": ["a", "b", "b", "c", "d"],
            "item_id": pd.array([10, None, 11, 20, None], dtype="Int64"),
            "behavior_type": ["browse", "search", "cart", "browse", "search"],
            "query_text": [None, "tv", None, None, "sock"],
            "ts": ts,
        }
    )
    ctx = contexts_from_events(events)
    assert ctx.values.tolist() == [[1, "11,10", "tv"], [2, "20", ""], [3, "", "sock"]]


def test_negative_sampling_keeps_every_positive():
    from ml.models.tf.ranker import _sample_negatives
    from ml.models.tf.ranker_config import RankerConfig

    df = pd.DataFrame({"clicked": [1, 0] * 500, "carted": 0, "purchased": [0, 0] * 499 + [0, 1]})
    kept = _sample_negatives(df, RankerConfig(negative_rate=0.2))
    assert (kept["clicked"] + kept["purchased"] > 0).sum() == 501
    assert 60 < (kept["clicked"] + kept["purchased"] == 0).sum() < 140
    with pytest.raises(ValueError, match="negative_rate"):
        RankerConfig(negative_rate=0)
