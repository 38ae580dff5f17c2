"""Search text a simulated shopper types: a word for the need (one of the category's synonyms, or a
Chinese word for the categories that have them), sometimes a brand and a model line, noise words
and the odd typo; and the planted truth of each query (category, brand, model, language, typo).

Shared by the batch simulator and the live feed (:mod:`ml.data.feed`), which is why it lives on its
own: the feed needs the query text, not the whole simulator.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.data.catalog import CATEGORIES, NOISE_WORDS, ZH_NOISE_WORDS

#: share of the searches for a category with Chinese words that are typed in Chinese
ZH_QUERY_SHARE = 0.35
#: share of the queries naming the shopper's own brand (the first item's) that also name its model
MODEL_SHARE = 0.4
#: the planted truth of a query, one row per query (see :func:`plan_queries`)
QUERY_TRUTH_COLUMNS: tuple[str, ...] = ("query_text", "category_id", "brand", "model", "lang", "has_typo")


def _typo(word: str, r: np.ndarray) -> str:
    """Delete, double or swap one letter (what thumbs do)."""
    if len(word) < 4:
        return word
    i = 1 + int(r[0] * (len(word) - 2))
    op = int(r[1] * 3)
    if op == 0:
        return word[:i] + word[i + 1 :]
    if op == 1:
        return word[:i] + word[i] + word[i:]
    return word[: i - 1] + word[i] + word[i - 1] + word[i + 1 :]


def plan_queries(
    intent: np.ndarray, brand: np.ndarray, rng: np.random.Generator, model: np.ndarray | None = None
) -> pd.DataFrame:
    """Queries for the given intents (0-based category indices) with their planted truth
    (:data:`QUERY_TRUTH_COLUMNS`; ``category_id`` 1-based, ``brand``/``model`` what the text names,
    None when it names none, ``lang`` "en" or "zh").

    ``brand``/``model``: the brand and model line of the first item the session browses when it is
    in the intent category, else None (a brand is then drawn from the category's). A query names a
    brand 30% of the time, mostly the shopper's own, and its model line in :data:`MODEL_SHARE` of
    those. Chinese queries (:data:`ZH_QUERY_SHARE` of a category with Chinese words) join the
    Chinese noun and noise word without a space ("新款手机壳") and get no typo."""
    n = len(intent)
    model = np.full(n, None, dtype=object) if model is None else model
    r = rng.random((n, 8))
    x = rng.random((n, 2))
    rows = []
    for i in range(n):
        spec = CATEGORIES[intent[i]]
        zh = bool(spec.zh_words) and x[i, 0] < ZH_QUERY_SHARE
        vocab = spec.zh_words if zh else spec.words
        noun = vocab[int(r[i, 0] * len(vocab))]
        named_brand = named_model = None
        if r[i, 1] < 0.3:
            own = brand[i] is not None and r[i, 7] < 0.8
            named_brand = str(brand[i]) if own else spec.brands[int(r[i, 6] * len(spec.brands))]
            if own and model[i] is not None and x[i, 1] < MODEL_SHARE:
                named_model = str(model[i])
        noise = None
        if r[i, 2] < 0.35:
            noise = (ZH_NOISE_WORDS if zh else NOISE_WORDS)[
                int(r[i, 3] * len(ZH_NOISE_WORDS if zh else NOISE_WORDS))
            ]
        before = r[i, 3] < 0.5
        if zh:
            core = f"{noise}{noun}" if noise and before else f"{noun}{noise}" if noise else noun
            words = [w for w in (named_brand, named_model, core) if w]
        else:
            words = [w for w in (named_brand, named_model, noun) if w]
            if noise:
                words = [noise, *words] if before else [*words, noise]
        has_typo = False
        if not zh and r[i, 4] < 0.08:
            j = int(r[i, 5] * len(words))
            typed = _typo(words[j], r[i, 5:7])
            has_typo = typed != words[j]
            words[j] = typed
        rows.append(
            (" ".join(words), int(intent[i]) + 1, named_brand, named_model, "zh" if zh else "en", has_typo)
        )
    return pd.DataFrame(rows, columns=list(QUERY_TRUTH_COLUMNS))


def make_queries(
    intent: np.ndarray, brand: np.ndarray, rng: np.random.Generator, model: np.ndarray | None = None
) -> list[str]:
    """Only the text of :func:`plan_queries`."""
    return plan_queries(intent, brand, rng, model)["query_text"].tolist()
