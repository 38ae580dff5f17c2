"""The DIN-style Keras network of the ranker: embeddings of the candidate and of the behaviour
sequence, target attention of the sequence on the candidate (DIN activation unit), mean pools of the
sequence and the query tokens, a learned query·category affinity, the match and numeric features,
an MLP and one sigmoid head per task.

One function on purpose: a Keras functional model reads best top to bottom in one place; fitting
and scoring (:mod:`ml.models.tf.ranker`) only call :func:`build_model`.
"""

from __future__ import annotations

from ml.models.tf.features import Encoders
from ml.models.tf.ranker_config import MULTITASK_HEADS, RankerConfig
from ml.models.tf.ranker_inputs import MATCH_FEATURES


def build_model(cfg: RankerConfig, enc: Encoders):
    """DIN-style network; heads are float32 (mixed-precision safe)."""
    import keras

    from ml.models.tf.layers import DinAttention, MaskedMean

    L, Q = cfg.max_len, cfg.max_query_tokens
    inp = {
        "hist_items": keras.Input((L,), dtype="int32", name="hist_items"),
        "hist_cats": keras.Input((L,), dtype="int32", name="hist_cats"),
        "query_tokens": keras.Input((Q,), dtype="int32", name="query_tokens"),
        "cand_id": keras.Input((), dtype="int32", name="cand_id"),
        "cand_cat": keras.Input((), dtype="int32", name="cand_cat"),
        "cand_brand": keras.Input((), dtype="int32", name="cand_brand"),
        "cand_price": keras.Input((), dtype="int32", name="cand_price"),
        "match": keras.Input((len(MATCH_FEATURES),), dtype="float32", name="match"),
    }
    if cfg.user_features:
        inp["user_num"] = keras.Input((len(cfg.user_features),), dtype="float32", name="user_num")
    if cfg.item_features:
        inp["cand_num"] = keras.Input((len(cfg.item_features),), dtype="float32", name="cand_num")
    if cfg.intent_column:
        inp["intent_cat"] = keras.Input((), dtype="int32", name="intent_cat")

    item_emb = keras.layers.Embedding(enc.item.size, cfg.item_dim, name="item_emb")
    cat_emb = keras.layers.Embedding(enc.category.size, cfg.category_dim, name="cat_emb")
    tok_emb = keras.layers.Embedding(enc.token.size, cfg.token_dim, name="tok_emb")
    brand_emb = keras.layers.Embedding(enc.brand.size, cfg.brand_dim, name="brand_emb")
    price_emb = keras.layers.Embedding(enc.price.size, cfg.price_dim, name="price_emb")

    hist = keras.layers.Concatenate(name="hist_concat")(
        [item_emb(inp["hist_items"]), cat_emb(inp["hist_cats"])]
    )
    cand_cat_vec = cat_emb(inp["cand_cat"])
    cand_key = keras.layers.Concatenate(name="cand_key")([item_emb(inp["cand_id"]), cand_cat_vec])
    interest = DinAttention(cfg.attention_hidden, name="din_attention")(cand_key, hist, inp["hist_items"])
    hist_mean = MaskedMean(name="hist_mean")(hist, inp["hist_items"])
    query = MaskedMean(name="query_mean")(tok_emb(inp["query_tokens"]), inp["query_tokens"])
    query_cat = keras.layers.Dot(axes=1, name="query_cat_affinity")(
        [keras.layers.Dense(cfg.category_dim, name="query_proj")(query), cand_cat_vec]
    )
    interest_match = keras.layers.Multiply(name="interest_x_cand")([interest, cand_key])
    parts = [
        interest,
        hist_mean,
        query,
        cand_key,
        interest_match,
        query_cat,
        brand_emb(inp["cand_brand"]),
        price_emb(inp["cand_price"]),
        inp["match"],
    ]
    parts += [inp[k] for k in ("user_num", "cand_num") if k in inp]
    if "intent_cat" in inp:
        parts.append(cat_emb(inp["intent_cat"]))
    x = keras.layers.Concatenate(name="features")(parts)
    for i, units in enumerate(cfg.hidden):
        x = keras.layers.Dense(units, activation="relu", name=f"mlp_{i}")(x)
        if cfg.dropout:
            x = keras.layers.Dropout(cfg.dropout, name=f"dropout_{i}")(x)
    heads = MULTITASK_HEADS if cfg.task == "multitask" else ("label",)
    outputs = {h: keras.layers.Dense(1, activation="sigmoid", dtype="float32", name=h)(x) for h in heads}
    return keras.Model(inp, outputs, name="din_ranker")
