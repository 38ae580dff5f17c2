"""Search text a simulated shopper types: a word for the need, sometimes a brand, noise words and
the odd typo.

Shared by the batch simulator and the live feed (:mod:`ml.data.feed`), which is why it lives on its
own: the feed needs the query text, not the whole simulator.
"""

from __future__ import annotations

import numpy as np

from ml.data.catalog import CATEGORIES, NOISE_WORDS


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


def make_queries(intent: np.ndarray, brand: np.ndarray, rng: np.random.Generator) -> list[str]:
    """Query text naming the need: a category word, sometimes a brand (the brand of the first item
    browsed when given, else None → one of the category's brands), noise words, typos."""
    n = len(intent)
    r = rng.random((n, 8))
    out = []
    for i in range(n):
        spec = CATEGORIES[intent[i]]
        words = [spec.words[int(r[i, 0] * len(spec.words))]]
        if r[i, 1] < 0.3:
            own = brand[i] is not None and r[i, 7] < 0.8
            words.insert(0, str(brand[i]) if own else spec.brands[int(r[i, 6] * len(spec.brands))])
        if r[i, 2] < 0.35:
            noise = NOISE_WORDS[int(r[i, 3] * len(NOISE_WORDS))]
            words = [noise, *words] if r[i, 3] < 0.5 else [*words, noise]
        if r[i, 4] < 0.08:
            j = int(r[i, 5] * len(words))
            words[j] = _typo(words[j], r[i, 5:7])
        out.append(" ".join(words))
    return out
