"""The search rows of a training run's point-in-time cuts: one search set per cut (its history's query
behaviour, its label window's engaged searches), over the catalogue's BM25 and semantic indexes built
once per run. ``train_search`` reads them; they may already have been computed beside the cut builds
(:mod:`ml.training.beside`)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ml.features.datasets import CutData
from ml.search.context import build_context
from ml.search.dataset import SearchSet, build_search_set
from ml.training.beside import Beside
from ml.training.config import Step, noop


def search_indexes(items: pd.DataFrame) -> tuple[pd.DataFrame, Any, Any]:
    """The catalogue in item order with its BM25 and semantic indexes (built once per run)."""
    from ml.search.lexical import LexicalIndex
    from ml.search.semantic import SemanticIndex

    items = items.sort_values("item_id", kind="stable").reset_index(drop=True)
    return items, LexicalIndex.build(items), SemanticIndex.build(items)


def search_set(cut: CutData, name: str, indexes: tuple[pd.DataFrame, Any, Any], k: int) -> SearchSet:
    """The search rows of one point-in-time cut (its history's query behaviour, its window's labels)."""
    if cut.cut_ts is None or cut.window is None:
        raise ValueError(f"cut {name} has no label window: search rows need a point-in-time cut")
    items, lexical, semantic = indexes
    ctx = build_context(
        items,
        cut.history,
        cut.cut_ts,
        query_items=point_in_time_query_items(cut),
        k=k,
        lexical=lexical,
        semantic=semantic,
    )
    return build_search_set(ctx, cut.history, cut.window)


def search_sets(
    cuts: dict[str, CutData], names: list[str], k: int, step: Step = noop, beside: Beside | None = None
) -> dict[str, SearchSet]:
    """One search set per named cut; the BM25 and semantic indexes are built once (same catalogue).
    A set already computed beside the cut builds (``beside``, key ``("search", name)``) is taken."""
    out, indexes = {}, None
    for name in names:
        cut = cuts[name]
        source = (
            "ml_query_item of its build"
            if point_in_time_query_items(cut) is not None
            else "its history (no ml_query_item)"
        )
        if beside is not None and beside.has(("search", name)):
            step(
                f"search rows: {name} cut {cut.cut_ts}, query behaviour from {source} (computed beside the cut builds)"
            )
            out[name] = beside.take(("search", name))
            continue
        if indexes is None:
            step("search: BM25 and semantic indexes of the catalogue")
            indexes = search_indexes(cuts[names[0]].items)
        step(f"search rows: {name} cut {cut.cut_ts}, query behaviour from {source}")
        out[name] = search_set(cut, name, indexes, k)
    return out


def point_in_time_query_items(cut: CutData) -> pd.DataFrame | None:
    """The cut's ``ml_query_item`` when its point-in-time build made one, else None (the rows then
    compute the same behaviour from the cut's history). A table that holds an engagement at or after
    the cut is refused: it was not built for this cut, and reading it would leak the label window."""
    found = cut.extra.get("ml_query_item")
    if found is None:
        return None
    if cut.cut_ts is not None and "last_ts" in found and len(found):
        newest = pd.to_datetime(found["last_ts"]).max()
        if newest >= cut.cut_ts:
            raise ValueError(
                f"ml_query_item of the cut {cut.cut_ts} holds engagements up to {newest}: it was not built "
                "point in time for this cut"
            )
    return found
