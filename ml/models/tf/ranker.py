"""DIN-style ranker over (user, candidate item) rows.

Inputs per row: numeric user/pair features, numeric item features, item id/category/brand/price
embeddings of the candidate, the recent behaviour sequence (item ids + categories) pooled by
target attention on the candidate (DIN activation unit) and by a plain mean, the recent search
query tokens (mean-pooled, plus a learned query·category affinity), and explicit match features:
query-token overlap with the candidate's text, the share of the history in the candidate's
category, whether the most recent item shares it, and whether/how recently the candidate itself
was seen. Pointwise: one binary head (``label > 0``) or three heads (clicked, carted, purchased)
combined with ``head_weights`` (default OTTO's 0.1/0.3/0.6). Early stopping on the valid rows.

Modules: :mod:`ml.models.tf.ranker_config` (``RankerConfig``), :mod:`ml.models.tf.ranker_inputs`
(rows → arrays, match features, ``attach_context``), :mod:`ml.models.tf.ranker_network` (the Keras
model); this one fits it (``fit_ranker``) and scores with it (``Ranker.score``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ml.models.tf.features import Encoders
from ml.models.tf.parsing import require_columns
from ml.models.tf.ranker_config import MULTITASK_HEADS, RankerConfig
from ml.models.tf.ranker_inputs import ranker_arrays
from ml.models.tf.ranker_network import build_model


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
        from ml.models.tf.layers import compiled_forward, predict_batched

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

    from ml.models.tf.device import configure_device

    cfg = cfg or RankerConfig()
    device = device or configure_device(cfg.seed)
    keras.utils.set_random_seed(cfg.seed)
    if len(train_df) == 0 or len(valid_df) == 0:
        raise ValueError("fit_ranker needs non-empty train and valid rows")
    t0 = time.perf_counter()
    catalogue = items if items is not None else train_df.drop_duplicates("item_id")
    enc = Encoders.fit(
        catalogue,
        train_df,
        user_features=cfg.user_features,
        item_features=cfg.item_features,
        item_feature_rows=train_df,
        max_len=cfg.max_len,
        max_query_tokens=cfg.max_query_tokens,
        price_buckets=cfg.price_buckets,
        intent_column=cfg.intent_column,
        token_min_users=cfg.token_min_users,
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
        model = build_model(cfg, enc)
        heads = list(y_tr)
        model.compile(
            optimizer=keras.optimizers.Adam(cfg.learning_rate),
            loss={h: "binary_crossentropy" for h in heads},
            loss_weights={h: 1.0 for h in heads},
            metrics={h: [keras.metrics.AUC(name="auc")] for h in heads},
        )
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.patience, restore_best_weights=True)
    hist = model.fit(
        ds_tr, validation_data=ds_va, epochs=cfg.epochs, callbacks=[stop], verbose=0, shuffle=False
    )
    history = {k: [float(v) for v in vs] for k, vs in hist.history.items()}
    ranker = Ranker(
        model=model,
        encoders=enc,
        cfg=cfg,
        history=history,
        example_inputs={k: v[:5] for k, v in x_tr.items()},
    )
    ranker.best_epoch = int(np.argmin(history["val_loss"])) + 1
    ranker.fit_seconds = time.perf_counter() - t0
    return ranker
