"""DIN-style ranker over (user, candidate item) rows.

Inputs per row: numeric user/pair features, numeric item features, item id/category/brand/price
embeddings of the candidate, the recent behaviour sequence (item ids + categories) pooled by
target attention on the candidate (DIN activation unit) and by a plain mean, the recent search
query tokens (mean-pooled, plus a learned query·category affinity), and explicit match features:
query-token overlap with the candidate's text, the share of the history in the candidate's
category, whether the most recent item shares it, and whether/how recently the candidate itself
was seen. Pointwise: one binary head (``label > 0``) or three heads (clicked, carted, purchased)
combined with ``head_weights`` (default OTTO's 0.1/0.3/0.6). Early stopping on the valid rows.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from ml.tf.features import Encoders, distinct_rows, pad_lookup, require_columns, tokenize

MULTITASK_HEADS = ("clicked", "carted", "purchased")
MATCH_FEATURES = (
    "query_text_match", "hist_cat_share", "last_cat_match", "in_history", "history_recency", "intent_cat_match",
)
#: Numeric per-row columns of ``ml_training_set`` describing the user or the (user, item) pair.
TRAINING_SET_USER_FEATURES = (
    "repeat_score", "covisit_score", "intent_pop_score", "global_pop_score", "n_sources",
    "n_browse_1d", "n_browse_7d", "n_browse_30d", "n_cart_7d", "n_cart_30d", "n_fav_30d", "n_purchase_30d",
    "n_search_7d", "n_sessions_30d", "purchase_rate", "avg_price_viewed", "hours_since_last_event",
    "top_category_share", "intent_strength", "in_intent_category", "in_top_category", "price_vs_user_avg",
    "ui_n_browse", "ui_n_cart", "ui_n_fav", "ui_n_purchase", "ui_carted_not_bought", "ui_hours_since_last",
)
#: Numeric candidate-item columns of ``ml_training_set`` (from ``dim_items``).
TRAINING_SET_ITEM_FEATURES = (
    "pop_browse_1d", "pop_browse_7d", "pop_cart_7d", "pop_purchase_7d", "popularity_score", "trend_1d_7d",
    "view_to_cart_rate", "cart_to_purchase_rate", "price_pct_in_category", "age_days",
)


@dataclass
class RankerConfig:
    """Hyper-parameters and the columns the ranker reads (log with ``asdict``)."""

    user_features: tuple[str, ...] = ()  # numeric per-row user or (user, item) pair columns
    item_features: tuple[str, ...] = ()  # numeric candidate-item columns
    item_text_columns: tuple[str, ...] = ("title", "category")  # tokens matched against queries
    intent_column: str | None = "intent_category_id"  # the session's intent category (None: unused)
    task: str = "multitask"  # "multitask" (clicked/carted/purchased heads) | "binary" (label > 0)
    label_column: str = "label"
    head_weights: tuple[float, float, float] = (0.1, 0.3, 0.6)
    max_len: int = 20
    max_query_tokens: int = 8
    max_item_tokens: int = 16
    item_dim: int = 32
    category_dim: int = 16
    brand_dim: int = 8
    price_dim: int = 4
    token_dim: int = 16
    attention_hidden: int = 32
    hidden: tuple[int, ...] = (128, 64)
    dropout: float = 0.1
    negative_rate: float = 1.0  # share of all-zero-label training rows kept (seeded); valid rows all kept
    epochs: int = 10
    patience: int = 2
    batch_size: int = 512
    learning_rate: float = 2e-3
    price_buckets: int = 10
    seed: int = 42

    def __post_init__(self) -> None:
        if self.task not in ("multitask", "binary"):
            raise ValueError(f"task must be 'multitask' or 'binary', got {self.task!r}")
        if not 0 < self.negative_rate <= 1:
            raise ValueError(f"negative_rate must be in (0, 1], got {self.negative_rate}")

    @classmethod
    def from_dict(cls, d: dict) -> RankerConfig:
        d = dict(d)
        for k in ("user_features", "item_features", "item_text_columns", "head_weights", "hidden"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)


def config_dict(cfg: RankerConfig) -> dict:
    """JSON-able config (tuples → lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()}


@dataclass
class Ranker:
    """A trained ranker: Keras model + encoders + config. ``score`` is all the caller needs."""

    model: object
    encoders: Encoders
    cfg: RankerConfig
    history: dict = field(default_factory=dict)
    best_epoch: int = 0
    fit_seconds: float = 0.0
    example_inputs: dict | None = field(default=None, repr=False)  # a few training rows (MLflow example)
    _forward: object = field(default=None, repr=False, compare=False)

    def inputs(self, df: pd.DataFrame) -> dict[str, np.ndarray]:
        """The model's input arrays for rows ``df`` (see :func:`ranker_arrays`)."""
        return ranker_arrays(df, self.encoders, self.cfg)

    def predict_heads(self, df: pd.DataFrame, batch_size: int = 8192) -> dict[str, np.ndarray]:
        """Per-head probabilities (float64 arrays aligned with ``df``'s rows)."""
        from ml.tf.layers import compiled_forward, predict_batched

        if self._forward is None:
            self._forward = compiled_forward(self.model)
        out = predict_batched(self.model, self.inputs(df), batch_size, self._forward)
        return {k: v.reshape(-1).astype(np.float64) for k, v in out.items()}

    def score(self, df: pd.DataFrame, batch_size: int = 8192) -> np.ndarray:
        """One score per row (higher = better): P(label > 0), or the weighted heads."""
        heads = self.predict_heads(df, batch_size)
        if self.cfg.task == "binary":
            return heads["label"]
        return sum(w * heads[h] for w, h in zip(self.cfg.head_weights, MULTITASK_HEADS))


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

    codes, uniq = distinct_rows(df, list(cfg.item_text_columns)) if cfg.item_text_columns else (np.zeros(n, np.int64), None)
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
        [q_match, hist_cat_share, last_cat, in_hist.astype(np.float32), recency, intent_match.astype(np.float32)], axis=1
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
        c for c in ("last_items", "last_categories", "query_terms", "intent_category_id")
        if c in session_intent.columns and c not in rows.columns
    ]
    out = rows.merge(
        session_intent[["user_id", *ctx_cols]].drop_duplicates("user_id"), on="user_id", how="left", validate="m:1"
    )
    for c in ("last_items", "last_categories", "query_terms"):
        if c in out.columns:
            out[c] = out[c].fillna("")
    if items is not None:
        require_columns(items, ["item_id"], "items")
        add = [c for c in ("title", "category", "category_id", "brand", "price") if c in items.columns and c not in out.columns]
        out = out.merge(items[["item_id", *add]].drop_duplicates("item_id"), on="item_id", how="left", validate="m:1")
    if len(out) != len(rows):
        raise AssertionError("attach_context changed the row count")
    return out


def _sample_negatives(df: pd.DataFrame, cfg: RankerConfig) -> pd.DataFrame:
    """Keep every row with a positive label and a seeded ``negative_rate`` share of the rest
    (ranking order is unaffected; probabilities are then inflated, which ``score`` users ignore)."""
    if cfg.negative_rate >= 1:
        return df
    pos = np.zeros(len(df), bool)
    for y in _labels(df, cfg).values():
        pos |= y > 0
    keep = pos | (np.random.default_rng(cfg.seed).random(len(df)) < cfg.negative_rate)
    return df[keep]


def _labels(df: pd.DataFrame, cfg: RankerConfig) -> dict[str, np.ndarray]:
    cols = list(MULTITASK_HEADS) if cfg.task == "multitask" else [cfg.label_column]
    require_columns(df, cols, "ranker labels")
    if cfg.task == "multitask":
        return {h: (df[h].to_numpy(np.float32) > 0).astype(np.float32) for h in MULTITASK_HEADS}
    return {"label": (df[cfg.label_column].to_numpy(np.float32) > 0).astype(np.float32)}


def _build_model(cfg: RankerConfig, enc: Encoders):
    """DIN-style network; heads are float32 (mixed-precision safe)."""
    import keras

    from ml.tf.layers import DinAttention, MaskedMean

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

    hist = keras.layers.Concatenate(name="hist_concat")([item_emb(inp["hist_items"]), cat_emb(inp["hist_cats"])])
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
        interest, hist_mean, query, cand_key, interest_match, query_cat,
        brand_emb(inp["cand_brand"]), price_emb(inp["cand_price"]), inp["match"],
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


def fit_ranker(
    train_df: pd.DataFrame,
    valid_df: pd.DataFrame,
    cfg: RankerConfig | None = None,
    items: pd.DataFrame | None = None,
    device=None,
) -> Ranker:
    """Train on ``train_df`` rows, early-stop on ``valid_df`` (restoring the best weights).

    Rows: one per (user, candidate) with the columns of :func:`ranker_arrays` plus labels
    (clicked/carted/purchased for ``multitask``, ``cfg.label_column`` for ``binary``). ``items``:
    the catalogue (item_id, category_id, brand, price[, title, category]) for the vocabularies;
    default: the distinct items of the training rows (then unseen items are OOV at scoring).
    """
    import keras
    import tensorflow as tf

    from ml.tf.device import configure_device

    cfg = cfg or RankerConfig()
    device = device or configure_device(cfg.seed)
    keras.utils.set_random_seed(cfg.seed)
    if len(train_df) == 0 or len(valid_df) == 0:
        raise ValueError("fit_ranker needs non-empty train and valid rows")
    t0 = time.perf_counter()
    catalogue = items if items is not None else train_df.drop_duplicates("item_id")
    enc = Encoders.fit(
        catalogue, train_df,
        user_features=cfg.user_features, item_features=cfg.item_features, item_feature_rows=train_df,
        max_len=cfg.max_len, max_query_tokens=cfg.max_query_tokens, price_buckets=cfg.price_buckets,
        intent_column=cfg.intent_column,
    )
    train_df = _sample_negatives(train_df, cfg)
    x_tr, y_tr = ranker_arrays(train_df, enc, cfg), _labels(train_df, cfg)
    x_va, y_va = ranker_arrays(valid_df, enc, cfg), _labels(valid_df, cfg)
    batch = cfg.batch_size * device.strategy.num_replicas_in_sync
    ds_tr = (
        tf.data.Dataset.from_tensor_slices((x_tr, y_tr))
        .shuffle(len(train_df), seed=cfg.seed, reshuffle_each_iteration=True)
        .batch(batch)
        .prefetch(tf.data.AUTOTUNE)
    )
    ds_va = tf.data.Dataset.from_tensor_slices((x_va, y_va)).batch(batch).prefetch(tf.data.AUTOTUNE)
    with device.strategy.scope():
        model = _build_model(cfg, enc)
        heads = list(y_tr)
        model.compile(
            optimizer=keras.optimizers.Adam(cfg.learning_rate),
            loss={h: "binary_crossentropy" for h in heads},
            loss_weights={h: 1.0 for h in heads},
            metrics={h: [keras.metrics.AUC(name="auc")] for h in heads},
        )
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.patience, restore_best_weights=True)
    hist = model.fit(ds_tr, validation_data=ds_va, epochs=cfg.epochs, callbacks=[stop], verbose=0, shuffle=False)
    history = {k: [float(v) for v in vs] for k, vs in hist.history.items()}
    ranker = Ranker(
        model=model, encoders=enc, cfg=cfg, history=history, example_inputs={k: v[:5] for k, v in x_tr.items()}
    )
    ranker.best_epoch = int(np.argmin(history["val_loss"])) + 1
    ranker.fit_seconds = time.perf_counter() - t0
    return ranker
