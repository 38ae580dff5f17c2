"""Parsing of the dbt marts' cells into Python lists: comma id lists, free-text queries (tokens),
each history item's category, and the one check every model input goes through (missing columns).

Text columns follow docs/contracts.md: ``last_items`` / ``last_categories`` are comma lists, most
recent first (``last_categories[i]`` is the category of ``last_items[i]``); ``query_terms`` is
lowercase and space-separated. Lists (Python or numpy) are accepted too.

The lowest layer of the TF feature code: no vocabularies here, so :mod:`ml.models.tf.features`,
:mod:`ml.models.tf.sequences` and the models can all share it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

_TOKEN_RE = re.compile(r"[a-z0-9]+")


def tokenize(text: object) -> list[str]:
    """Lowercase alphanumeric tokens of a free-text value (None/NaN → [])."""
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return []
    return _TOKEN_RE.findall(str(text).lower())


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
