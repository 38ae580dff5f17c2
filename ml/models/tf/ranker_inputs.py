"""Ranker rows → model inputs: the encoded context and candidate, plus the explicit match features
(query-token overlap with the candidate's text, the share of the history in the candidate's
category, whether the most recent item shares it, whether/how recently the candidate itself was
seen, whether it is in the session's intent category); and :func:`attach_context`, which adds the
text columns ``ml_training_set``/``ml_candidates`` rows lack.

Apart from the network and the fitting because the same parsing serves training, scoring and the
MLflow input example, and it needs no TensorFlow.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.models.tf.features import Encoders, pad_lookup
from ml.models.tf.parsing import distinct_rows, require_columns, tokenize
from ml.models.tf.ranker_config import RankerConfig

MATCH_FEATURES = (
    "query_text_match",
    "hist_cat_share",
    "last_cat_match",
    "in_history",
    "history_recency",
    "intent_cat_match",
)


def _match_features(
    x: dict[str, np.ndarray], df: pd.DataFrame, enc: Encoders, cfg: RankerConfig
) -> np.ndarray:
    """(n, 6) float32: the explicit query/sequence ↔ candidate match features (MATCH_FEATURES)."""
    n = len(df)
    hist_items, hist_cats = x["hist_items"], x["hist_cats"]
    cand_id, cand_cat = x["cand_id"], x["cand_cat"]
    valid = hist_items > 0
    n_hist = np.maximum(valid.sum(1), 1)
    known_cat = (hist_cats == cand_cat[:, None]) & (hist_cats > 1) & (cand_cat[:, None] > 1)
    hist_cat_share = known_cat.sum(1) / n_hist
    last_cat = known_cat[:, 0].astype(np.float32)
    seen = (hist_items == cand_id[:, None]) & (cand_id[:, None] > 1)
    in_hist = seen.any(1)
    first_pos = np.where(in_hist, seen.argmax(1), 0)
    recency = np.where(in_hist, 1.0 / (1.0 + first_pos), 0.0)
    intent = x.get("intent_cat")
    intent_match = (intent == cand_cat) & (cand_cat > 1) if intent is not None else np.zeros(n, bool)

    codes, uniq = (
        distinct_rows(df, list(cfg.item_text_columns))
        if cfg.item_text_columns
        else (np.zeros(n, np.int64), None)
    )
    text = [[] for _ in range(len(uniq) if uniq is not None else 1)]
    for col in cfg.item_text_columns:
        for i, v in enumerate(uniq[col].tolist()):
            text[i].extend(tokenize(v))
    item_tok = pad_lookup(text, enc.token, cfg.max_item_tokens)[codes]
    q = x["query_tokens"]
    q_match = np.zeros(n, np.float32)
    for s in range(0, n, 65_536):  # (rows, Q, T) comparisons in chunks to bound memory
        qs, ts = q[s : s + 65_536], item_tok[s : s + 65_536]
        hit = ((qs[:, :, None] == ts[:, None, :]) & (qs[:, :, None] > 1)).any(2)
        q_match[s : s + 65_536] = hit.sum(1) / np.maximum((qs > 0).sum(1), 1)
    feats = np.stack(
        [
            q_match,
            hist_cat_share,
            last_cat,
            in_hist.astype(np.float32),
            recency,
            intent_match.astype(np.float32),
        ],
        axis=1,
    )
    return feats.astype(np.float32)


def ranker_arrays(df: pd.DataFrame, enc: Encoders, cfg: RankerConfig) -> dict[str, np.ndarray]:
    """Parse ranker rows into model inputs.

    Required columns: item_id, category_id, brand, price, last_items, the configured
    ``user_features``/``item_features``/``item_text_columns``/``intent_column``; optional
    last_categories, query_terms (see :func:`attach_context` to add the text columns).
    """
    require_columns(
        df,
        ["item_id", "category_id", "brand", "price", "last_items", *cfg.item_text_columns],
        "ranker rows",
    )
    x = enc.encode_context(df)
    x.update(enc.encode_items(df, prefix="cand"))
    x["match"] = _match_features(x, df, enc, cfg)
    return x


def attach_context(
    rows: pd.DataFrame, session_intent: pd.DataFrame, items: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Add what ``ml_training_set``/``ml_candidates`` rows lack for the ranker.

    From ``session_intent`` (``fct_session_intent``), by user_id: last_items, last_categories,
    query_terms (and intent_category_id if the rows lack it); users without a row get empty
    context. From ``items`` (raw ``items`` or any frame with item_id + title/category), by item_id:
    the text columns and, if missing, category_id/brand/price. Row order and count are kept.
    """
    require_columns(session_intent, ["user_id", "last_items"], "session intent")
    ctx_cols = [
        c
        for c in ("last_items", "last_categories", "query_terms", "intent_category_id")
        if c in session_intent.columns and c not in rows.columns
    ]
    out = rows.merge(
        session_intent[["user_id", *ctx_cols]].drop_duplicates("user_id"),
        on="user_id",
        how="left",
        validate="m:1",
    )
    for c in ("last_items", "last_categories", "query_terms"):
        if c in out.columns:
            out[c] = out[c].fillna("")
    if items is not None:
        require_columns(items, ["item_id"], "items")
        add = [
            c
            for c in ("title", "category", "category_id", "brand", "price")
            if c in items.columns and c not in out.columns
        ]
        out = out.merge(
            items[["item_id", *add]].drop_duplicates("item_id"), on="item_id", how="left", validate="m:1"
        )
    if len(out) != len(rows):
        raise AssertionError("attach_context changed the row count")
    return out
