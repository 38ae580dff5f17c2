"""Turn the dbt marts' DataFrames into model arrays, and back into JSON for persistence.

Index convention for every vocabulary: 0 = padding, 1 = out-of-vocabulary (new item, brand,
token...), 2.. = known values. New items therefore never crash scoring: they share the OOV
embedding and are still described by their category, brand and price.

Parsing of the marts' text columns (comma lists, query tokens) is in :mod:`ml.models.tf.parsing`;
next-item sequences from raw events in :mod:`ml.models.tf.sequences`. This module holds the fitted
lookups (vocabularies, price buckets, numeric scaling) and :class:`Encoders`, the bundle of them a
model is trained, saved and scored with.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.models.tf.parsing import (
    distinct_rows,
    require_columns,
    sequence_categories,
    split_list,
    token_lists,
    tokenize,
)

PAD, OOV = 0, 1


@dataclass
class Vocab:
    """Value → index lookup with padding (0) and OOV (1). Keys are ints or strings (``kind``)."""

    keys: list
    kind: str  # "int" | "str"

    @classmethod
    def build(cls, values: Iterable, kind: str, *, min_count: int = 1, max_size: int | None = None) -> Vocab:
        """Vocabulary of the values seen at least ``min_count`` times, most frequent first."""
        vals = pd.Series(list(values) if not isinstance(values, pd.Series) else values).dropna()
        vals = vals.astype("int64") if kind == "int" else vals.astype(str)
        counts = vals.value_counts(sort=False)
        counts = counts[counts >= min_count]
        # deterministic order: frequency desc, then key asc
        order = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        if max_size is not None:
            order = order[:max_size]
        return cls(keys=[k.item() if hasattr(k, "item") else k for k, _ in order], kind=kind)

    def __post_init__(self) -> None:
        self._index = pd.Index(self.keys, dtype="int64" if self.kind == "int" else object)

    @property
    def size(self) -> int:
        """Embedding rows needed (keys + padding + OOV)."""
        return len(self.keys) + 2

    def lookup(self, values: Sequence | np.ndarray | pd.Series) -> np.ndarray:
        """Indices (int32) of ``values``; unknown or missing values map to OOV."""
        arr = pd.Series(values)
        if self.kind == "int":
            num = pd.to_numeric(arr, errors="coerce")
            bad = num.isna() & arr.notna()
            if bad.any():
                raise ValueError(
                    f"non-integer id(s) where integer ids were expected: {arr[bad].head(3).tolist()}"
                )
            idx = self._index.get_indexer(num.fillna(-(2**62)).astype("int64"))
        else:
            idx = self._index.get_indexer(arr.astype(str).where(arr.notna(), "\x00missing"))
        out = np.where(idx < 0, OOV, idx + 2)
        return out.astype(np.int32)

    def to_json(self) -> dict:
        return {"kind": self.kind, "keys": list(self.keys)}

    @classmethod
    def from_json(cls, d: dict) -> Vocab:
        return cls(keys=list(d["keys"]), kind=d["kind"])


@dataclass
class NumericScaler:
    """Signed-log then standardise, clip to ±5, missing → 0 (the training mean)."""

    columns: list[str]
    mean: list[float]
    std: list[float]

    @staticmethod
    def _slog(x: np.ndarray) -> np.ndarray:
        return np.sign(x) * np.log1p(np.abs(x))

    @classmethod
    def fit(cls, df: pd.DataFrame, columns: Sequence[str]) -> NumericScaler:
        """Statistics from the training rows; a missing column is a clear error."""
        require_columns(df, columns, "numeric features")
        x = cls._slog(df[list(columns)].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64))
        mean = np.nan_to_num(np.nanmean(x, axis=0)) if len(x) else np.zeros(len(columns))
        std = np.nan_to_num(np.nanstd(x, axis=0)) if len(x) else np.ones(len(columns))
        std = np.where(std < 1e-6, 1.0, std)
        return cls(list(columns), [float(v) for v in mean], [float(v) for v in std])

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        """(n, len(columns)) float32; an empty column list gives shape (n, 0)."""
        if not self.columns:
            return np.zeros((len(df), 0), np.float32)
        require_columns(df, self.columns, "numeric features")
        x = self._slog(df[self.columns].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64))
        z = (x - np.asarray(self.mean)) / np.asarray(self.std)
        return np.clip(np.nan_to_num(z, nan=0.0), -5, 5).astype(np.float32)

    def to_json(self) -> dict:
        return {"columns": self.columns, "mean": self.mean, "std": self.std}

    @classmethod
    def from_json(cls, d: dict) -> NumericScaler:
        return cls(list(d["columns"]), list(d["mean"]), list(d["std"]))


@dataclass
class PriceBuckets:
    """Quantile buckets of price (index 0 = missing price, 1..n = buckets)."""

    edges: list[float]

    @classmethod
    def fit(cls, prices: pd.Series, n_buckets: int = 10) -> PriceBuckets:
        p = pd.to_numeric(prices, errors="coerce").dropna().to_numpy(np.float64)
        if len(p) == 0:
            return cls([])
        qs = np.quantile(p, np.linspace(0, 1, n_buckets + 1)[1:-1])
        return cls(sorted({float(q) for q in qs}))

    @property
    def size(self) -> int:
        return len(self.edges) + 2

    def lookup(self, prices: pd.Series | np.ndarray) -> np.ndarray:
        p = pd.to_numeric(pd.Series(prices), errors="coerce").to_numpy(np.float64)
        out = np.digitize(np.nan_to_num(p, nan=0.0), self.edges) + 1
        return np.where(np.isnan(p), 0, out).astype(np.int32)

    def to_json(self) -> dict:
        return {"edges": self.edges}

    @classmethod
    def from_json(cls, d: dict) -> PriceBuckets:
        return cls(list(d["edges"]))


def pad_lookup(lists: list[list], vocab: Vocab, max_len: int) -> np.ndarray:
    """(n, max_len) int32 indices of each list's first ``max_len`` values, 0-padded on the right."""
    n = len(lists)
    cut = [lst[:max_len] for lst in lists]
    lens = np.fromiter((len(c) for c in cut), dtype=np.int64, count=n)
    out = np.zeros((n, max_len), np.int32)
    if lens.sum() == 0:
        return out
    flat = vocab.lookup(list(itertools.chain.from_iterable(cut)))
    rows = np.repeat(np.arange(n), lens)
    cols = np.concatenate([np.arange(k) for k in lens])
    out[rows, cols] = flat
    return out


def token_counter(texts: Iterable[list[str]]) -> Counter:
    """Token frequencies over many token lists (for building the token vocabulary)."""
    c: Counter = Counter()
    for toks in texts:
        c.update(toks)
    return c


#: A search-query token enters a vocabulary (and so the model logged to MLflow) only when at least
#: this many distinct users searched it: a rare query can name a person, an address, an order.
#: Catalogue text (titles, category names) is not user data and is kept whatever its count.
TOKEN_MIN_USERS = 5


def common_query_tokens(query_lists: list[list[str]], users: Sequence, min_users: int) -> set[str]:
    """The tokens of ``query_lists`` (aligned with ``users``) used by at least ``min_users`` users."""
    pairs = {(t, u) for toks, u in zip(query_lists, users) for t in toks}
    return {t for t, n in Counter(t for t, _ in pairs).items() if n >= min_users}


def token_vocab(texts: Iterable[list[str]], *, min_count: int = 1, max_size: int = 50_000) -> Vocab:
    """Token vocabulary from lists of tokens (query terms, item titles, category names)."""
    c = token_counter(texts)
    order = sorted(((k, v) for k, v in c.items() if v >= min_count), key=lambda kv: (-kv[1], kv[0]))
    return Vocab(keys=[k for k, _ in order[:max_size]], kind="str")


@dataclass
class Encoders:
    """Every lookup a model needs, fitted on training data and saved with the model.

    ``encode_context()`` encodes a user's recent behaviour (``last_items``, ``last_categories``,
    ``query_terms``) and numeric user features; ``encode_items()`` encodes item rows (``item_id``,
    ``category_id``, ``brand``, ``price``) and numeric item features.
    """

    item: Vocab
    category: Vocab
    brand: Vocab
    token: Vocab
    price: PriceBuckets
    item_to_cat: dict[int, int]
    user_scaler: NumericScaler
    item_scaler: NumericScaler
    max_len: int
    max_query_tokens: int
    intent_column: str | None = None

    @classmethod
    def fit(
        cls,
        items: pd.DataFrame,
        contexts: pd.DataFrame,
        *,
        user_features: Sequence[str] = (),
        item_features: Sequence[str] = (),
        item_feature_rows: pd.DataFrame | None = None,
        max_len: int = 20,
        max_query_tokens: int = 8,
        price_buckets: int = 10,
        token_min_count: int = 1,
        token_max_size: int = 50_000,
        intent_column: str | None = None,
        token_min_users: int = TOKEN_MIN_USERS,
    ) -> Encoders:
        """Vocabularies from the catalogue ``items`` and the training ``contexts`` rows; a query token
        is kept only if ``token_min_users`` distinct ``contexts.user_id`` used it (or a title has it)."""
        require_columns(items, ["item_id", "category_id", "brand", "price"], "item catalogue")
        if items["item_id"].duplicated().any():
            raise ValueError("item catalogue has duplicate item_id values")
        if items["category_id"].isna().any():
            raise ValueError("item catalogue has items without category_id")
        query_lists = token_lists(contexts["query_terms"]) if "query_terms" in contexts.columns else []
        if token_min_users > 1 and any(query_lists):
            if "user_id" not in contexts.columns:
                raise ValueError("query_terms without user_id: cannot count the users of each query token")
            common = common_query_tokens(query_lists, contexts["user_id"].tolist(), token_min_users)
            query_lists = [[t for t in toks if t in common] for toks in query_lists]
        texts = list(query_lists)
        for col in ("title", "category"):
            if col in items.columns:
                texts.extend(tokenize(t) for t in items[col].tolist())
        cat_vals = items["category_id"]
        return cls(
            item=Vocab.build(items["item_id"], "int"),
            category=Vocab.build(cat_vals, "int"),
            brand=Vocab.build(items["brand"], "str"),
            token=token_vocab(texts, min_count=token_min_count, max_size=token_max_size),
            price=PriceBuckets.fit(items["price"], price_buckets),
            item_to_cat=dict(
                zip(items["item_id"].astype("int64").tolist(), cat_vals.astype("int64").tolist())
            ),
            user_scaler=NumericScaler.fit(contexts, user_features),
            item_scaler=NumericScaler.fit(
                item_feature_rows if item_feature_rows is not None else items, item_features
            ),
            max_len=max_len,
            max_query_tokens=max_query_tokens,
            intent_column=intent_column,
        )

    def encode_context(self, df: pd.DataFrame) -> dict[str, np.ndarray]:
        """hist_items, hist_cats (n, max_len), query_tokens (n, max_query_tokens), user_num, intent_cat."""
        require_columns(df, ["last_items"], "user context")
        seq_cols = [c for c in ("last_items", "last_categories") if c in df.columns]
        codes, uniq = distinct_rows(df, seq_cols)  # ranker rows repeat one context per candidate
        items = split_list(uniq["last_items"], ",")
        cats = split_list(uniq["last_categories"], ",") if "last_categories" in uniq.columns else None
        out = {
            "hist_items": pad_lookup(items, self.item, self.max_len)[codes],
            "hist_cats": pad_lookup(
                sequence_categories(items, cats, self.item_to_cat), self.category, self.max_len
            )[codes],
        }
        if "query_terms" in df.columns:
            qcodes, quniq = distinct_rows(df, ["query_terms"])
            out["query_tokens"] = pad_lookup(
                token_lists(quniq["query_terms"]), self.token, self.max_query_tokens
            )[qcodes]
        else:
            out["query_tokens"] = np.zeros((len(df), self.max_query_tokens), np.int32)
        if self.user_scaler.columns:
            out["user_num"] = self.user_scaler.transform(df)
        if self.intent_column:
            require_columns(df, [self.intent_column], "session intent")
            out["intent_cat"] = self.category.lookup(df[self.intent_column])
        return out

    def encode_items(self, df: pd.DataFrame, prefix: str = "item") -> dict[str, np.ndarray]:
        """{prefix}_id, _cat, _brand, _price indices and {prefix}_num (if item features are used)."""
        require_columns(df, ["item_id", "category_id", "brand", "price"], "item rows")
        out = {
            f"{prefix}_id": self.item.lookup(df["item_id"]),
            f"{prefix}_cat": self.category.lookup(df["category_id"]),
            f"{prefix}_brand": self.brand.lookup(df["brand"]),
            f"{prefix}_price": self.price.lookup(df["price"]),
        }
        if self.item_scaler.columns:
            out[f"{prefix}_num"] = self.item_scaler.transform(df)
        return out

    def to_json(self) -> dict:
        return {
            "item": self.item.to_json(),
            "category": self.category.to_json(),
            "brand": self.brand.to_json(),
            "token": self.token.to_json(),
            "price": self.price.to_json(),
            "item_to_cat": [[k, v] for k, v in self.item_to_cat.items()],
            "user_scaler": self.user_scaler.to_json(),
            "item_scaler": self.item_scaler.to_json(),
            "max_len": self.max_len,
            "max_query_tokens": self.max_query_tokens,
            "intent_column": self.intent_column,
        }

    @classmethod
    def from_json(cls, d: dict) -> Encoders:
        return cls(
            item=Vocab.from_json(d["item"]),
            category=Vocab.from_json(d["category"]),
            brand=Vocab.from_json(d["brand"]),
            token=Vocab.from_json(d["token"]),
            price=PriceBuckets.from_json(d["price"]),
            item_to_cat={int(k): int(v) for k, v in d["item_to_cat"]},
            user_scaler=NumericScaler.from_json(d["user_scaler"]),
            item_scaler=NumericScaler.from_json(d["item_scaler"]),
            max_len=int(d["max_len"]),
            max_query_tokens=int(d["max_query_tokens"]),
            intent_column=d.get("intent_column"),
        )
