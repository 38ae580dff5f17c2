"""What the DIN ranker is configured with: :class:`RankerConfig` (hyper-parameters and the columns
it reads), its heads, and the numeric ``ml_training_set`` columns a caller usually feeds it.

The lowest ranker module: input parsing (:mod:`ml.models.tf.ranker_inputs`), the network
(:mod:`ml.models.tf.ranker_network`), fitting (:mod:`ml.models.tf.ranker`) and persistence all read
the config, so it must not import any of them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ml.contracts import CANDIDATE_SCORES, ITEM_FEATURES, USER_ACTIVITY_COUNTS
from ml.models.tf.features import TOKEN_MIN_USERS

MULTITASK_HEADS = ("clicked", "carted", "purchased")
#: Numeric per-row columns of ``ml_training_set`` describing the user or the (user, item) pair.
TRAINING_SET_USER_FEATURES = (
    *CANDIDATE_SCORES,
    "n_sources",
    *USER_ACTIVITY_COUNTS,
    "purchase_rate",
    "avg_price_viewed",
    "hours_since_last_event",
    "top_category_share",
    "intent_strength",
    "in_intent_category",
    "in_top_category",
    "price_vs_user_avg",
    "ui_n_browse",
    "ui_n_cart",
    "ui_n_fav",
    "ui_n_purchase",
    "ui_carted_not_bought",
    "ui_hours_since_last",
)
#: Numeric candidate-item columns of ``ml_training_set`` (from ``dim_items``).
TRAINING_SET_ITEM_FEATURES = ITEM_FEATURES


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
    token_min_users: int = TOKEN_MIN_USERS  # query tokens of fewer users stay out of the vocabulary

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
