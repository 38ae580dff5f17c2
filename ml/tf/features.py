"""Turn the dbt marts' DataFrames into model arrays, and back into JSON for persistence.

Index convention for every vocabulary: 0 = padding, 1 = out-of-vocabulary (new item, brand,
token...), 2.. = known values. New items therefore never crash scoring: they share the OOV
embedding and are still described by their category, brand and price.

Text columns follow docs/contracts.md: ``last_items`` / ``last_categories`` are comma lists, most
recent first (``last_categories[i]`` is the category of ``last_items[i]``); ``query_terms`` is
lowercase and space-separated. Lists (Python or numpy) are accepted too.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

PAD, OOV = 0, 1
_TOKEN_RE = re.compile(r"[a-z0-9]+")


def tokenize(text: object) -> list[str]:
    """Lowercase alphanumeric tokens of a free-text value (None/NaN → [])."""
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return []
    return _TOKEN_RE.findall(str(text).lower())


@dataclass
class Vocab:
    """Value → index lookup with padding (0) and OOV (1). Keys are ints or strings (``kind``)."""

    keys: list
    kind: str  # "int" | "str"

    @classmethod
    def build(
        cls, values: Iterable, kind: str, *, min_count: int = 1, max_size: int | None = None
    ) -> Vocab:
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
                raise ValueError(f"non-integer id(s) where integer ids were expected: {arr[bad].head(3).tolist()}")
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


def require_columns(df: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    """Raise a ValueError naming every missing column (bad input must fail loudly)."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"missing column(s) for {what}: {missing}; got {list(df.columns)}")


def split_list(values: pd.Series, sep: str) -> list[list[str]]:
    """Each cell as a list of non-empty strings: text split on ``sep``, list-likes kept, NaN → []."""
    out: list[list[str]] = []
    for v in values.tolist():
        if v is None or (isinstance(v, float) and np.isnan(v)):
            out.append([])
        elif isinstance(v, str):
            out.append([t for t in (s.strip() for s in v.split(sep)) if t])
        elif isinstance(v, (list, tuple, np.ndarray)):
            out.append([str(t) for t in v])
        else:
            out.append([str(v)])
    return out


def distinct_rows(df: pd.DataFrame, columns: Sequence[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """(codes, uniques): ``uniques.iloc[codes]`` equals ``df[columns]``; parse each distinct value once.

    Cells holding lists (unhashable) are not deduplicated.
    """
    sub = df[list(columns)].reset_index(drop=True)
    if len(sub) == 0:
        return np.zeros(0, np.int64), sub
    try:
        keys = sub.astype(object).where(sub.notna(), None)
        codes = keys.groupby(list(columns), dropna=False, sort=False).ngroup().to_numpy()
    except TypeError:
        return np.arange(len(sub)), sub
    first = np.unique(codes, return_index=True)[1]
    return codes, sub.iloc[first].reset_index(drop=True)


def token_lists(values: pd.Series) -> list[list[str]]:
    """Query tokens of each cell: free text is lowercased and split on non-alphanumerics (so raw
    ``query_text`` and the marts' ``query_terms`` parse alike); list cells are tokenized per element."""
    out: list[list[str]] = []
    for v in values.tolist():
        if isinstance(v, (list, tuple, np.ndarray)):
            out.append([t for e in v for t in tokenize(e)])
        else:
            out.append(tokenize(v))
    return out


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


def sequence_categories(
    item_lists: list[list[str]], cat_lists: list[list[str]] | None, item_to_cat: dict[int, int]
) -> list[list]:
    """Category of each history item: the row's own ``last_categories`` when aligned, else the
    catalogue's item → category map (unknown item → missing, i.e. the OOV category)."""
    out = []
    for i, items in enumerate(item_lists):
        cats = cat_lists[i] if cat_lists is not None else None
        if cats is not None and len(cats) == len(items):
            out.append(cats)
        else:
            out.append([item_to_cat.get(int(it)) if it.lstrip("-").isdigit() else None for it in items])
    return out


def token_counter(texts: Iterable[list[str]]) -> Counter:
    """Token frequencies over many token lists (for building the token vocabulary)."""
    c: Counter = Counter()
    for toks in texts:
        c.update(toks)
    return c


def token_vocab(texts: Iterable[list[str]], *, min_count: int = 1, max_size: int = 50_000) -> Vocab:
    """Token vocabulary from lists of tokens (query terms, item titles, category names)."""
    c = token_counter(texts)
    order = sorted(((k, v) for k, v in c.items() if v >= min_count), key=lambda kv: (-kv[1], kv[0]))
    return Vocab(keys=[k for k, _ in order[:max_size]], kind="str")


def sequences_from_events(
    events: pd.DataFrame,
    *,
    max_len: int = 20,
    max_queries: int = 5,
    max_per_user: int | None = 50,
    include_empty: bool = False,
) -> pd.DataFrame:
    """Next-item training examples for the two-tower model from raw ``user_behavior`` rows.

    Mirrors ``fct_session_intent`` so training and serving see the same context: for every item
    event (browse/cart/fav/purchase) ``last_items`` holds the user's earlier *distinct* items, most
    recently touched first (≤ ``max_len``), and ``query_terms`` the distinct search texts of the
    current session (``session_id``, when given), most recent first (≤ ``max_queries``); the target
    is the event's ``item_id``. Examples without any earlier item are skipped unless
    ``include_empty`` (then only the session's queries describe the user);
    ``max_per_user`` keeps each user's most recent examples. Point-in-time: pass only events
    before the cut.
    """
    require_columns(events, ["user_id", "item_id", "behavior_type", "ts"], "sequences_from_events")
    ev = events.sort_values(["user_id", "ts"], kind="stable")
    n = len(ev)
    qtexts = ev["query_text"].tolist() if "query_text" in ev.columns else [None] * n
    sessions = ev["session_id"].tolist() if "session_id" in ev.columns else [None] * n
    rows: list[tuple] = []
    user_rows: list[tuple] = []
    hist: dict[str, None] = {}
    queries: dict[str, None] = {}
    prev_user, prev_session = object(), object()
    for uid, item, btype, qt, sess, ts in zip(
        ev["user_id"].tolist(), ev["item_id"].tolist(), ev["behavior_type"].tolist(), qtexts, sessions, ev["ts"].tolist()
    ):
        if uid != prev_user:
            rows.extend(user_rows[-max_per_user:] if max_per_user is not None else user_rows)
            user_rows, hist, queries, prev_session = [], {}, {}, object()
            prev_user = uid
        if sess != prev_session:
            queries, prev_session = {}, sess
        if btype == "search" or pd.isna(item):
            if isinstance(qt, str) and qt.strip():
                queries.pop(qt.strip(), None)
                queries[qt.strip()] = None
            continue
        key = str(int(item))
        if hist or include_empty:
            recent = list(hist)[::-1][:max_len]
            qs = list(queries)[::-1][:max_queries]
            user_rows.append((uid, ",".join(recent), " ".join(qs), int(item), btype, ts))
        hist.pop(key, None)
        hist[key] = None
        if len(hist) > 4 * max_len:  # bound memory; only the most recent max_len are ever read
            for old in list(hist)[: len(hist) - max_len]:
                del hist[old]
    rows.extend(user_rows[-max_per_user:] if max_per_user is not None else user_rows)
    return pd.DataFrame(rows, columns=["user_id", "last_items", "query_terms", "item_id", "behavior_type", "ts"])


def contexts_from_events(events: pd.DataFrame, *, max_len: int = 20, max_queries: int = 5) -> pd.DataFrame:
    """One row per user: ``last_items`` and ``query_terms`` (last session's searches) as of the end of
    ``events``, built exactly like the two-tower training examples (in-memory twin of
    ``fct_session_intent``'s text columns; for tests, benchmarks and point-in-time checks)."""
    require_columns(events, ["user_id", "item_id", "behavior_type", "ts"], "contexts_from_events")
    last = events.sort_values(["user_id", "ts"], kind="stable").groupby("user_id", sort=False).tail(1)
    probe = last.assign(item_id=-1, behavior_type="browse", query_text=None, ts=last["ts"] + pd.Timedelta(milliseconds=1))
    seq = sequences_from_events(
        pd.concat([events, probe], ignore_index=True), max_len=max_len, max_queries=max_queries, max_per_user=1, include_empty=True
    )
    return seq[seq["item_id"] == -1][["user_id", "last_items", "query_terms"]].reset_index(drop=True)


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
    ) -> Encoders:
        """Vocabularies from the catalogue ``items`` and the training ``contexts`` rows."""
        require_columns(items, ["item_id", "category_id", "brand", "price"], "item catalogue")
        if items["item_id"].duplicated().any():
            raise ValueError("item catalogue has duplicate item_id values")
        if items["category_id"].isna().any():
            raise ValueError("item catalogue has items without category_id")
        query_lists = token_lists(contexts["query_terms"]) if "query_terms" in contexts.columns else []
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
            item_to_cat=dict(zip(items["item_id"].astype("int64").tolist(), cat_vals.astype("int64").tolist())),
            user_scaler=NumericScaler.fit(contexts, user_features),
            item_scaler=NumericScaler.fit(item_feature_rows if item_feature_rows is not None else items, item_features),
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
            "hist_cats": pad_lookup(sequence_categories(items, cats, self.item_to_cat), self.category, self.max_len)[codes],
        }
        if "query_terms" in df.columns:
            qcodes, quniq = distinct_rows(df, ["query_terms"])
            out["query_tokens"] = pad_lookup(token_lists(quniq["query_terms"]), self.token, self.max_query_tokens)[qcodes]
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
