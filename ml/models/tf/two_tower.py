"""Two-tower retrieval: a user/session tower × an item tower, trained with in-batch softmax.

The query tower reads the recent item sequence (mean + most recent), its categories, the recent
search query tokens and a few numeric user features; the item tower reads item id, category,
brand and price bucket. Both end L2-normalised; training is a softmax over the batch's targets
(the other rows' targets are the negatives), with optional logQ correction for their popularity
and masking of accidental hits. Retrieval is a brute-force dot product over the whole catalogue,
in chunks (fine up to ~100k items).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from ml.models.tf.features import TOKEN_MIN_USERS, Encoders
from ml.models.tf.parsing import require_columns

QUERY_INPUTS = ("hist_items", "hist_cats", "query_tokens", "user_num", "intent_cat")
ITEM_INPUTS = ("item_id", "item_cat", "item_brand", "item_price")


@dataclass
class TwoTowerConfig:
    """Hyper-parameters (all logged as MLflow params by the caller via ``asdict``)."""

    max_len: int = 20
    max_query_tokens: int = 8
    user_features: tuple[str, ...] = ()
    intent_column: str | None = None  # e.g. "intent_category_id" when the examples carry it
    item_dim: int = 32
    category_dim: int = 16
    brand_dim: int = 8
    price_dim: int = 4
    token_dim: int = 16
    hidden: int = 64
    out_dim: int = 32
    temperature: float = 0.05
    logq_correction: bool = True
    epochs: int = 3
    batch_size: int = 256
    learning_rate: float = 3e-3
    price_buckets: int = 10
    seed: int = 42
    token_min_users: int = TOKEN_MIN_USERS  # query tokens of fewer users stay out of the vocabulary

    @classmethod
    def from_dict(cls, d: dict) -> TwoTowerConfig:
        d = dict(d)
        d["user_features"] = tuple(d.get("user_features", ()))
        return cls(**d)


@dataclass
class TwoTower:
    """A trained two-tower model plus its encoders and the catalogue it retrieves from."""

    model: object  # the keras training model (both towers + in-batch logits)
    encoders: Encoders
    cfg: TwoTowerConfig
    catalogue: pd.DataFrame
    history: dict = field(default_factory=dict)
    fit_seconds: float = 0.0
    example_inputs: dict | None = field(default=None, repr=False)  # a few training rows (MLflow example)
    _item_vecs: np.ndarray | None = field(default=None, repr=False)
    _towers: tuple | None = field(default=None, repr=False)

    # -- towers -----------------------------------------------------------------------------
    def towers(self) -> tuple:
        """(query_model, item_model, compiled query forward): sub-models sharing the trained layers."""
        if self._towers is None:
            import keras

            inp = self.model.input
            q_in = {k: inp[k] for k in QUERY_INPUTS if k in inp}
            i_in = {k: inp[k] for k in ITEM_INPUTS}
            from ml.models.tf.layers import compiled_forward

            query_model = keras.Model(q_in, self.model.get_layer("query_vec").output)
            item_model = keras.Model(i_in, self.model.get_layer("item_vec").output)
            self._towers = (query_model, item_model, compiled_forward(query_model))
        return self._towers

    def query_vectors(self, user_context: pd.DataFrame, batch_size: int = 2048) -> np.ndarray:
        """(n, out_dim) float32 user/session vectors for the rows of ``user_context``."""
        from ml.models.tf.layers import predict_batched

        x = self.encoders.encode_context(user_context)
        return predict_batched(self.towers()[0], x, batch_size, self.towers()[2])

    def item_vectors(self, batch_size: int = 4096) -> np.ndarray:
        """(n_items, out_dim) float32 vectors of the catalogue (cached)."""
        if self._item_vecs is None:
            from ml.models.tf.layers import predict_batched

            x = self.encoders.encode_items(self.catalogue, prefix="item")
            self._item_vecs = predict_batched(self.towers()[1], {k: x[k] for k in ITEM_INPUTS}, batch_size)
        return self._item_vecs

    def set_catalogue(self, items: pd.DataFrame) -> None:
        """Retrieve from a new catalogue (new items use the OOV id plus their real features)."""
        require_columns(items, ["item_id", "category_id", "brand", "price"], "item catalogue")
        self.catalogue = items[["item_id", "category_id", "brand", "price"]].reset_index(drop=True)
        self._item_vecs = None

    # -- retrieval --------------------------------------------------------------------------
    def retrieve(
        self,
        user_context: pd.DataFrame,
        k: int,
        exclude: pd.DataFrame | None = None,
        chunk_size: int = 1024,
    ) -> pd.DataFrame:
        """Top-``k`` catalogue items per row of ``user_context`` by dot product.

        ``user_context``: one row per user (``user_id``, ``last_items`` and optionally
        ``last_categories``, ``query_terms``, the configured user features). ``exclude``:
        (user_id, item_id) pairs never to return (e.g. purchased items). Returns
        DataFrame(user_id, item_id, score) ordered by user (input order) then score desc.
        """
        require_columns(user_context, ["user_id"], "retrieve")
        if user_context["user_id"].duplicated().any():
            raise ValueError("user_context must have one row per user_id")
        if len(user_context) == 0:
            return pd.DataFrame({"user_id": [], "item_id": [], "score": []})
        qv = self.query_vectors(user_context)
        iv = self.item_vectors()
        k = min(k, len(iv))
        item_ids = self.catalogue["item_id"].to_numpy()
        user_ids = user_context["user_id"].to_numpy()
        ex_rows, ex_cols = _exclusion_index(user_ids, item_ids, exclude)
        out_items, out_scores = [], []
        for start in range(0, len(qv), chunk_size):
            s = qv[start : start + chunk_size] @ iv.T
            sel = (ex_rows >= start) & (ex_rows < start + chunk_size)
            s[ex_rows[sel] - start, ex_cols[sel]] = -np.inf
            top = np.argpartition(-s, k - 1, axis=1)[:, :k]
            top_s = np.take_along_axis(s, top, axis=1)
            order = np.argsort(-top_s, axis=1, kind="stable")
            out_items.append(np.take_along_axis(top, order, axis=1))
            out_scores.append(np.take_along_axis(top_s, order, axis=1))
        idx = np.vstack(out_items)
        scores = np.vstack(out_scores)
        res = pd.DataFrame(
            {
                "user_id": np.repeat(user_ids, k),
                "item_id": item_ids[idx.ravel()],
                "score": scores.ravel().astype(np.float64),
            }
        )
        return res[np.isfinite(res["score"])].reset_index(drop=True)


def _exclusion_index(
    user_ids: np.ndarray, item_ids: np.ndarray, exclude: pd.DataFrame | None
) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) positions in the score matrix of the excluded (user, item) pairs."""
    if exclude is None or len(exclude) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    require_columns(exclude, ["user_id", "item_id"], "exclude")
    rows = pd.Index(user_ids).get_indexer(exclude["user_id"])
    cols = pd.Index(item_ids).get_indexer(exclude["item_id"])
    keep = (rows >= 0) & (cols >= 0)
    return rows[keep].astype(np.int64), cols[keep].astype(np.int64)


def _build_model(cfg: TwoTowerConfig, enc: Encoders):
    """The training graph: both towers and the in-batch logits layer."""
    import keras

    from ml.models.tf.layers import First, InBatchLogits, MaskedMean

    L, Q = cfg.max_len, cfg.max_query_tokens
    inputs = {
        "hist_items": keras.Input((L,), dtype="int32", name="hist_items"),
        "hist_cats": keras.Input((L,), dtype="int32", name="hist_cats"),
        "query_tokens": keras.Input((Q,), dtype="int32", name="query_tokens"),
    }
    if cfg.user_features:
        inputs["user_num"] = keras.Input((len(cfg.user_features),), dtype="float32", name="user_num")
    if cfg.intent_column:
        inputs["intent_cat"] = keras.Input((), dtype="int32", name="intent_cat")
    for k in ITEM_INPUTS:
        inputs[k] = keras.Input((), dtype="int32", name=k)
    inputs["logq"] = keras.Input((), dtype="float32", name="logq")

    item_emb = keras.layers.Embedding(enc.item.size, cfg.item_dim, name="item_emb")
    cat_emb = keras.layers.Embedding(enc.category.size, cfg.category_dim, name="cat_emb")
    tok_emb = keras.layers.Embedding(enc.token.size, cfg.token_dim, name="tok_emb")
    brand_emb = keras.layers.Embedding(enc.brand.size, cfg.brand_dim, name="brand_emb")
    price_emb = keras.layers.Embedding(enc.price.size, cfg.price_dim, name="price_emb")

    h = item_emb(inputs["hist_items"])
    hc = cat_emb(inputs["hist_cats"])
    qt = tok_emb(inputs["query_tokens"])
    parts = [
        MaskedMean(name="hist_mean")(h, inputs["hist_items"]),
        First(name="hist_last")(h),
        MaskedMean(name="hist_cat_mean")(hc, inputs["hist_cats"]),
        First(name="hist_cat_last")(hc),
        MaskedMean(name="query_mean")(qt, inputs["query_tokens"]),
    ]
    if cfg.user_features:
        parts.append(inputs["user_num"])
    if cfg.intent_column:
        parts.append(cat_emb(inputs["intent_cat"]))
    x = keras.layers.Concatenate(name="query_concat")(parts)
    x = keras.layers.Dense(cfg.hidden, activation="relu", name="query_hidden")(x)
    x = keras.layers.Dense(cfg.out_dim, name="query_out")(x)
    query_vec = keras.layers.UnitNormalization(name="query_vec", dtype="float32")(x)

    y = keras.layers.Concatenate(name="item_concat")(
        [
            item_emb(inputs["item_id"]),
            cat_emb(inputs["item_cat"]),
            brand_emb(inputs["item_brand"]),
            price_emb(inputs["item_price"]),
        ]
    )
    y = keras.layers.Dense(cfg.hidden, activation="relu", name="item_hidden")(y)
    y = keras.layers.Dense(cfg.out_dim, name="item_out")(y)
    item_vec = keras.layers.UnitNormalization(name="item_vec", dtype="float32")(y)

    logits = InBatchLogits(cfg.temperature, name="logits", dtype="float32")(
        query_vec, item_vec, inputs["item_id"], inputs["logq"]
    )
    return keras.Model(inputs, logits, name="two_tower")


def training_arrays(
    train_sequences: pd.DataFrame, items: pd.DataFrame, enc: Encoders, logq_correction: bool
) -> dict[str, np.ndarray]:
    """Model inputs for the training rows: context + the target item's features + logQ."""
    require_columns(train_sequences, ["last_items", "item_id"], "two-tower training sequences")
    x = enc.encode_context(train_sequences)
    target = pd.DataFrame({"item_id": train_sequences["item_id"].to_numpy()}).merge(
        items[["item_id", "category_id", "brand", "price"]], on="item_id", how="left"
    )
    if target["category_id"].isna().any():
        missing = target.loc[target["category_id"].isna(), "item_id"].head(5).tolist()
        raise ValueError(f"training targets not in the item catalogue, e.g. {missing}")
    x.update(enc.encode_items(target, prefix="item"))
    x.pop("item_num", None)
    if logq_correction:
        counts = target["item_id"].map(target["item_id"].value_counts())
        x["logq"] = np.log(counts.to_numpy(np.float64) / len(target)).astype(np.float32)
    else:
        x["logq"] = np.zeros(len(target), np.float32)
    return x


def fit_two_tower(
    train_sequences: pd.DataFrame, items: pd.DataFrame, cfg: TwoTowerConfig | None = None, device=None
) -> TwoTower:
    """Train the two-tower model on next-item examples.

    ``train_sequences``: one row per example — ``last_items`` (comma list, most recent first),
    optional ``last_categories``, ``query_terms`` and ``cfg.user_features`` columns, and the
    target ``item_id`` (see ``sequences.sequences_from_events``). ``items``: the catalogue
    (item_id, category_id, brand, price). ``device``: a ``DeviceInfo`` (default: configure now).
    """
    import keras
    import tensorflow as tf

    from ml.models.tf.device import configure_device
    from ml.models.tf.layers import in_batch_softmax_loss

    cfg = cfg or TwoTowerConfig()
    device = device or configure_device(cfg.seed)
    keras.utils.set_random_seed(cfg.seed)
    if len(train_sequences) < 2:
        raise ValueError("two-tower training needs at least 2 examples (in-batch negatives)")
    t0 = time.perf_counter()
    enc = Encoders.fit(
        items,
        train_sequences,
        user_features=cfg.user_features,
        max_len=cfg.max_len,
        max_query_tokens=cfg.max_query_tokens,
        price_buckets=cfg.price_buckets,
        intent_column=cfg.intent_column,
        token_min_users=cfg.token_min_users,
    )
    x = training_arrays(train_sequences, items, enc, cfg.logq_correction)
    n = len(x["item_id"])
    batch = min(cfg.batch_size * device.strategy.num_replicas_in_sync, n)
    ds = (
        tf.data.Dataset.from_tensor_slices((x, np.zeros(n, np.float32)))
        .shuffle(n, seed=cfg.seed, reshuffle_each_iteration=True)
        .batch(batch, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )
    with device.strategy.scope():
        model = _build_model(cfg, enc)
        model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate), loss=in_batch_softmax_loss)
    hist = model.fit(ds, epochs=cfg.epochs, verbose=0, shuffle=False)
    tt = TwoTower(
        model=model,
        encoders=enc,
        cfg=cfg,
        catalogue=items[["item_id", "category_id", "brand", "price"]].reset_index(drop=True),
        history={k: [float(v) for v in vs] for k, vs in hist.history.items()},
        example_inputs={k: v[:5] for k, v in x.items()},
    )
    tt.fit_seconds = time.perf_counter() - t0
    return tt


def config_dict(cfg: TwoTowerConfig) -> dict:
    """JSON-able config (tuples → lists)."""
    d = asdict(cfg)
    d["user_features"] = list(cfg.user_features)
    return d
