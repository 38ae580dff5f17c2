"""Custom Keras 3 layers (backend-agnostic ``keras.ops``; mixed-precision safe).

They are deliberately *not* registered globally: MLflow would then pickle Keras' global registry
into the model. :data:`CUSTOM_OBJECTS` is passed explicitly when saving/loading (see ``persist``).
"""

from __future__ import annotations

import keras
from keras import ops


class MaskedMean(keras.layers.Layer):
    """Mean of ``emb`` (B, L, d) over positions whose ``ids`` (B, L) are not padding (0)."""

    def call(self, emb, ids):
        mask = ops.cast(ops.not_equal(ids, 0), emb.dtype)[..., None]
        total = ops.sum(emb * mask, axis=1)
        count = ops.maximum(ops.sum(mask, axis=1), ops.cast(1.0, emb.dtype))
        return total / count


class First(keras.layers.Layer):
    """Position 0 of a sequence (the most recent item): (B, L, d) → (B, d)."""

    def call(self, seq):
        return seq[:, 0, :]


class DinAttention(keras.layers.Layer):
    """DIN activation unit: target attention of a candidate over the behaviour sequence.

    weight_j = MLP([h_j, q, h_j − q, h_j ⊙ q]); padding masked; softmax-normalised over the
    sequence; returns Σ_j weight_j h_j. (DIN's paper leaves weights unnormalised; normalising keeps
    fp16 sums bounded and made no difference on our data.)
    """

    def __init__(self, hidden: int = 32, **kwargs):
        super().__init__(**kwargs)
        self.hidden = hidden
        self.d1 = keras.layers.Dense(hidden, activation="sigmoid", name="att_hidden")
        self.d2 = keras.layers.Dense(1, name="att_logit")

    def build(self, query_shape, keys_shape, ids_shape):
        d = keys_shape[-1]
        self.d1.build((None, None, 4 * d))
        self.d2.build((None, None, self.hidden))

    def call(self, query, keys, ids):
        q = ops.broadcast_to(query[:, None, :], ops.shape(keys))
        x = ops.concatenate([keys, q, keys - q, keys * q], axis=-1)
        logits = ops.squeeze(self.d2(self.d1(x)), axis=-1)  # (B, L)
        valid = ops.not_equal(ids, 0)
        logits = ops.where(valid, ops.cast(logits, "float32"), -1e9)
        w = ops.softmax(logits, axis=-1) * ops.cast(valid, "float32")
        w = ops.cast(w, keys.dtype)[..., None]
        return ops.sum(w * keys, axis=1)

    def get_config(self):
        return {**super().get_config(), "hidden": self.hidden}


class InBatchLogits(keras.layers.Layer):
    """Sampled softmax over the batch: logits[i, j] = <q_i, c_j> / T − logQ_j, accidental hits masked.

    ``cand_ids`` are the target items' vocabulary indices: when row j's item equals row i's target
    (j ≠ i), that "negative" is a positive in disguise and gets −inf. Output is float32.
    """

    def __init__(self, temperature: float = 0.05, **kwargs):
        super().__init__(**kwargs)
        self.temperature = temperature

    def call(self, q, c, cand_ids, logq):
        q = ops.cast(q, "float32")
        c = ops.cast(c, "float32")
        logits = ops.matmul(q, ops.transpose(c)) / self.temperature
        logits = logits - ops.cast(logq, "float32")[None, :]
        same = ops.equal(cand_ids[:, None], cand_ids[None, :])
        eye = ops.cast(ops.eye(ops.shape(cand_ids)[0]), "bool")
        return ops.where(ops.logical_and(same, ops.logical_not(eye)), -1e9, logits)

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}


def in_batch_softmax_loss(y_true, y_pred):
    """Cross-entropy of each row against its own column (the diagonal is the positive)."""
    n = ops.shape(y_pred)[0]
    labels = ops.arange(n)
    return keras.losses.sparse_categorical_crossentropy(labels, y_pred, from_logits=True)


CUSTOM_OBJECTS = {
    "MaskedMean": MaskedMean,
    "First": First,
    "DinAttention": DinAttention,
    "InBatchLogits": InBatchLogits,
    "in_batch_softmax_loss": in_batch_softmax_loss,
}


def compiled_forward(model):
    """``model(batch, training=False)`` as one traced graph (≈2x faster than eager on CPU)."""
    import tensorflow as tf

    return tf.function(lambda batch: model(batch, training=False), reduce_retracing=True)


def predict_batched(model, x: dict, batch_size: int, forward=None):
    """Forward pass in batches without Keras' predict loop (cheap for many small calls).

    ``forward``: a :func:`compiled_forward` of ``model`` to reuse across calls (else eager).
    Returns float32 numpy: an array for a single-output model, a dict for a dict-output model.
    """
    import numpy as np

    call = forward or (lambda batch: model(batch, training=False))
    n = len(next(iter(x.values())))
    chunks: list = []
    for start in range(0, n, batch_size):
        out = call({k: v[start : start + batch_size] for k, v in x.items()})
        chunks.append(
            {k: np.asarray(v, np.float32) for k, v in out.items()}
            if isinstance(out, dict)
            else np.asarray(out, np.float32)
        )
    if not chunks:
        return {} if isinstance(model.output, dict) else np.zeros((0,), np.float32)
    if isinstance(chunks[0], dict):
        return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
    return np.concatenate(chunks)
