"""Query understanding and query→item relevance: tokeniser, BM25 against the library and the formula
by hand, the packaged embeddings with the network blocked, and synonyms learned from a hand-made log."""

from __future__ import annotations

import logging
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import bm25s
import numpy as np
import pandas as pd
import pytest

from ml.search import semantic, synonyms
from ml.search.lexical import LexicalIndex, item_text
from ml.search.synonyms import expand_pairs, expand_scores, learn_synonyms, pairs_by_query
from ml.search.text import MAX_QUERY_CHARS, normalize_query, tokenize

# --- tokeniser and normalisation ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("手机壳", ["手机", "壳"]),
        ("iphone 手机", ["iphone", "手机"]),
        ("iphone手机壳", ["iphone", "手机", "壳"]),
        ("蓝牙耳机 wireless", ["蓝牙", "耳机", "wireless"]),
        ("手机壳，蓝色！", ["手机", "壳", "蓝色"]),
        ("Trainers!!", ["trainers"]),
        ("ＩＰＨＯＮＥ\u3000１５\u3000Ｐｒｏ", ["iphone", "15", "pro"]),
        ("phone_cases", ["phone", "cases"]),
        ("!!! ... ？", []),
        ("   ", []),
        (None, []),
    ],
)
def test_tokenize(text: str | None, tokens: list[str]) -> None:
    assert tokenize(text) == tokens


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("  Hello,   World!! ", "hello world"),
        ("iPhone-15_Pro", "iphone 15 pro"),
        ("ＳＭＡＲＴＰＨＯＮＥ", "smartphone"),
        ("手机壳，蓝色！", "手机壳 蓝色"),
        ("?!", ""),
        (None, ""),
    ],
)
def test_normalize_query(text: str | None, normalised: str) -> None:
    assert normalize_query(text) == normalised


def test_long_text_is_cut_for_queries_but_not_for_item_text() -> None:
    text = "word " * 40 + "brandx"
    assert len(normalize_query(text)) <= MAX_QUERY_CHARS
    assert "brandx" not in tokenize(text)
    assert tokenize(text, max_chars=None)[-1] == "brandx"


# --- BM25 ----------------------------------------------------------------------------------------

ITEMS = pd.DataFrame(
    {
        # frame order is not id order: scores follow the frame, ties go to the smaller id
        "item_id": [20, 10, 30, 40, 50, 60],
        "title": [
            "Red phone case",
            "Blue phone case",
            "Wireless earbuds",
            "手机壳 蓝色",
            "Running shoes",
            None,
        ],
        "category": ["phone_cases", "phone_cases", "earbuds", "phone_cases", None, None],
        "brand": ["Acme", "Bolt", "Acme", None, None, None],
    }
)
# the same catalogue tokenised by hand
TOKENS = [
    ["red", "phone", "case", "phone", "cases", "acme"],
    ["blue", "phone", "case", "phone", "cases", "bolt"],
    ["wireless", "earbuds", "earbuds", "acme"],
    ["手机", "壳", "蓝色", "phone", "cases"],
    ["running", "shoes"],
    [],
]


def bm25_by_hand(query: list[str], k1: float = 1.5, b: float = 0.75) -> np.ndarray:
    """bm25s's default "lucene" BM25: Σ_t idf(t) · tf / (tf + k1 · (1 − b + b · |d| / avgdl)),
    idf(t) = ln(1 + (N − df + 0.5) / (df + 0.5)); a term absent from the catalogue adds 0."""
    n = len(TOKENS)
    avgdl = sum(len(d) for d in TOKENS) / n
    out = np.zeros(n)
    for term in query:
        df = sum(term in d for d in TOKENS)
        if df == 0:
            continue
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        for i, doc in enumerate(TOKENS):
            tf = doc.count(term)
            out[i] += idf * tf / (tf + k1 * (1 - b + b * len(doc) / avgdl))
    return out


def test_item_text_joins_fields_and_splits_category_names() -> None:
    text = item_text(ITEMS)
    assert text.tolist() == [
        "Red phone case phone cases Acme",
        "Blue phone case phone cases Bolt",
        "Wireless earbuds earbuds Acme",
        "手机壳 蓝色 phone cases",
        "Running shoes",
        "",
    ]
    assert [tokenize(t, max_chars=None) for t in text] == TOKENS


@pytest.mark.parametrize(
    "query",
    ["acme phone case zzzunknown", "phone cases", "手机壳", "wireless earbuds", "Phone Case!!"],
)
def test_bm25_equals_library_and_formula(query: str) -> None:
    index = LexicalIndex.build(ITEMS)
    got = index.scores(query)
    assert got.dtype == np.float32 and got.shape == (len(ITEMS),)
    direct = bm25s.BM25()
    direct.index(TOKENS, show_progress=False)
    np.testing.assert_allclose(got, direct.get_scores(tokenize(query)), rtol=1e-6)
    np.testing.assert_allclose(got, bm25_by_hand(tokenize(query)), rtol=1e-5)
    assert got[ITEMS["title"].isna().to_numpy()].tolist() == [0.0]  # the item without text


def test_absent_token_adds_nothing() -> None:
    index = LexicalIndex.build(ITEMS)
    np.testing.assert_array_equal(index.scores("acme zzzunknown"), index.scores("acme"))


@pytest.mark.parametrize("query", ["", "   ", "?!", "zzzunknown qqq", None])
def test_queries_without_known_tokens_score_zero(query: str | None) -> None:
    index = LexicalIndex.build(ITEMS)
    assert not index.scores(query).any()
    assert index.top(query, 5) == []


def test_top_orders_by_score_then_smaller_id() -> None:
    index = LexicalIndex.build(ITEMS)
    assert len(index) == 6 and index.item_ids.dtype == np.int64
    assert index.item_ids.tolist() == [20, 10, 30, 40, 50, 60]
    top = index.top("phone case", 10)
    # items 10 and 20 tie (same length, same counts): the smaller id first; 40 has "phone" only
    assert [item for item, _ in top] == [10, 20, 40]
    assert top[0][1] == top[1][1] > top[2][1] > 0
    assert index.top("phone case", 1) == top[:1]
    assert index.top("phone case", 0) == []
    with pytest.raises(ValueError, match="k must be"):
        index.top("phone case", -1)


def test_bm25_parameters_reach_the_library() -> None:
    index = LexicalIndex.build(ITEMS, k1=0.9, b=0.4)
    np.testing.assert_allclose(
        index.scores("acme phone"), bm25_by_hand(["acme", "phone"], k1=0.9, b=0.4), rtol=1e-5
    )


def test_catalogue_without_any_text_scores_zero() -> None:
    index = LexicalIndex.build(
        pd.DataFrame({"item_id": [1, 2], "title": [None, "!!"], "category": None, "brand": None})
    )
    assert index.scores("phone").tolist() == [0.0, 0.0]


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (ITEMS.drop(columns="brand"), "lacks column"),
        (ITEMS.assign(item_id=[1, 1, 2, 3, 4, 5]), "repeats item_id"),
        (ITEMS.assign(item_id=[1, None, 2, 3, 4, 5]), "without an integer item_id"),
        (ITEMS.assign(item_id=[1, 2.5, 2, 3, 4, 5]), "without an integer item_id"),
    ],
)
def test_bad_catalogue_is_an_error(frame: pd.DataFrame, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LexicalIndex.build(frame)


# --- packaged embeddings -------------------------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    semantic.load_embedder.cache_clear()


def test_embedder_loads_offline_and_relates_words(no_network: None) -> None:
    vectors = semantic.embed(
        ["earbuds", "wireless earphones", "phone case", "", "?!", "Trainers!!", "trainers"]
    )
    assert vectors.dtype == np.float32 and vectors.shape[0] == 7
    np.testing.assert_allclose(np.linalg.norm(vectors[[0, 1, 2, 5]], axis=1), 1.0, rtol=1e-5)
    assert not vectors[3].any() and not vectors[4].any()  # no words: the zero row
    np.testing.assert_array_equal(vectors[5], vectors[6])  # folded like queries
    earphones, case = vectors[1] @ vectors[0], vectors[2] @ vectors[0]
    assert earphones > case


def test_semantic_index_ranks_by_cosine(no_network: None) -> None:
    index = semantic.SemanticIndex.build(ITEMS)
    assert len(index) == 6 and index.item_ids.tolist() == ITEMS["item_id"].tolist()
    scores = index.scores("earphones")
    assert scores.dtype == np.float32
    np.testing.assert_allclose(scores, index.vectors @ semantic.embed(["earphones"])[0])
    assert scores[-1] == 0.0  # the item without text
    assert index.top("earphones", 1)[0][0] == 30
    assert not index.scores("").any()


def test_prepared_queries_score_bit_for_bit_as_one_at_a_time(no_network: None) -> None:
    index = semantic.SemanticIndex.build(ITEMS)
    queries = ["earphones", "wireless earbuds", "phone case", "", "Trainers!!", "手机壳 iphone"]
    alone = [index.scores(q) for q in queries]
    index.prepare(queries + ["earphones"])
    for q, expected in zip(queries, alone):
        np.testing.assert_array_equal(index.scores(q), expected)
    index.prepare(["phone case"])  # only the last set is kept: an earlier query is embedded again
    np.testing.assert_array_equal(index.scores("earphones"), alone[0])
    assert list(index._queries) == ["phone case"]


def test_loading_leaves_the_root_logger_alone() -> None:
    """wordllama calls logging.basicConfig(INFO) on import; a fresh process shows whether it leaks."""
    code = (
        "import logging; from ml.search import semantic; semantic.load_embedder(); "
        "root = logging.getLogger(); print(len(root.handlers), root.level)"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["0", str(logging.WARNING)]


def test_missing_model_files_are_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(semantic, "WEIGHTS_FILE", semantic.WEIGHTS_FILE.with_name("absent.safetensors"))
    semantic.load_embedder.cache_clear()
    with pytest.raises(semantic.SemanticModelMissing, match="wordllama==.*absent.safetensors"):
        semantic.load_embedder()
    semantic.load_embedder.cache_clear()


# --- synonyms from the logs ----------------------------------------------------------------------

PAIRS = pd.DataFrame(
    [
        # "mobile" → items 1:3 (two rows summed), 2:4; "smartphone" → 1:4, 2:3: cosine 24/25 = 0.96
        ("mobile", 1, 1.0),
        ("mobile", 1, 2.0),
        ("mobile", 2, 4.0),
        ("smartphone", 1, 4.0),
        ("smartphone", 2, 3.0),
        # unrelated
        ("trainers", 7, 6.0),
        # near "mobile" (7 / (5·√2) ≈ 0.98995) but only 2 of weight
        ("cellphone", 1, 1.0),
        ("cellphone", 2, 1.0),
    ],
    columns=["query_norm", "item_id", "weight"],
)


def test_queries_followed_by_the_same_items_are_synonyms() -> None:
    syn = learn_synonyms(PAIRS)  # min_weight 3 leaves "cellphone" out
    assert set(syn) == {"mobile", "smartphone"}
    assert [s for s, _ in syn["mobile"]] == ["smartphone"]
    assert syn["mobile"][0][1] == pytest.approx(0.96)
    assert syn["smartphone"][0] == ("mobile", pytest.approx(0.96))
    assert "trainers" not in syn


def test_min_weight_min_cosine_and_cap() -> None:
    low = learn_synonyms(PAIRS, min_weight=2.0)
    assert [s for s, _ in low["mobile"]] == ["cellphone", "smartphone"]  # highest first
    assert low["mobile"][0][1] == pytest.approx(7 / (5 * math.sqrt(2)))
    strict = learn_synonyms(PAIRS, min_weight=2.0, min_cosine=0.97)
    assert [s for s, _ in strict["mobile"]] == ["cellphone"]
    assert [s for s, _ in strict["smartphone"]] == ["cellphone"]  # "mobile" (0.96) is cut
    # "cellphone" is as near to both: equal cosines are ordered by the query text
    assert [s for s, _ in strict["cellphone"]] == ["mobile", "smartphone"]
    capped = learn_synonyms(PAIRS, min_weight=2.0, max_per_query=1)
    assert all(len(v) == 1 for v in capped.values())
    assert learn_synonyms(PAIRS, min_weight=100.0) == {}
    assert learn_synonyms(PAIRS, min_weight=2.0, min_cosine=0.995) == {}


def test_empty_log_learns_nothing() -> None:
    empty = PAIRS.iloc[:0]
    assert learn_synonyms(empty) == {}
    assert pairs_by_query(empty) == {}
    assert expand_pairs(empty, {}).empty


def test_blocked_product_equals_one_block(monkeypatch: pytest.MonkeyPatch) -> None:
    whole = learn_synonyms(PAIRS, min_weight=2.0)
    monkeypatch.setattr(synonyms, "_BLOCK_ROWS", 1)
    assert learn_synonyms(PAIRS, min_weight=2.0) == whole


def test_expanded_scores_borrow_from_synonyms() -> None:
    syn = learn_synonyms(PAIRS)
    by_query = pairs_by_query(PAIRS)
    mobile = expand_scores("mobile", by_query, syn)
    assert mobile == {1: pytest.approx(3 + 0.96 * 4), 2: pytest.approx(4 + 0.96 * 3)}
    assert expand_scores("trainers", by_query, syn) == {7: 6.0}
    assert expand_scores("never seen", by_query, syn) == {}
    bulk = expand_pairs(PAIRS, syn)
    for query, group in bulk.groupby("query_norm"):
        expected = expand_scores(query, by_query, syn)
        assert dict(zip(group["item_id"], group["score"], strict=True)) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (PAIRS.drop(columns="weight"), "lacks column"),
        (PAIRS.assign(weight=[1.0, np.nan, 1, 1, 1, 1, 1, 1]), "finite number"),
        (PAIRS.assign(weight=[1.0, -2.0, 1, 1, 1, 1, 1, 1]), "finite number"),
        (PAIRS.assign(query_norm=["mobile", "", "a", "a", "a", "a", "a", "a"]), "empty query_norm"),
        (PAIRS.assign(item_id=[1, None, 1, 1, 1, 1, 1, 1]), "NULL or non-integer item_id"),
        (PAIRS.assign(item_id=[1, 2.5, 1, 1, 1, 1, 1, 1]), "NULL or non-integer item_id"),
    ],
)
def test_bad_pairs_are_an_error(frame: pd.DataFrame, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        learn_synonyms(frame)
