"""Synonyms learned from the logs: two queries are alike when shoppers engage with the same items
after them ("mobile" and "smartphone", "trainers" and "sneakers", 手机 and "phone").

Each query is a vector over items, its entries the engagement weight after the query (the dbt mart
``ml_query_item``); the similarity of two queries is the cosine of their vectors. The query
popularity of a sparse query then borrows from its synonyms: an item's score is the query's own
weight plus each synonym's weight times the similarity. This covers Chinese and misspelt queries
that neither BM25 nor the English-centric embeddings relate to the catalogue.

Everything is sparse linear algebra (scipy) and pandas joins: ~5k queries × ~10k items in well
under a second. Learn from the training window only, so the feature never sees the future.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import scipy.sparse as sp

PAIR_COLUMNS = ("query_norm", "item_id", "weight")
#: Query rows per block of the query×query product, so memory stays bounded on popular items.
_BLOCK_ROWS = 2048

Synonyms = dict[str, list[tuple[str, float]]]


def _clean_pairs(pairs: pd.DataFrame) -> pd.DataFrame:
    """One row per (query_norm, item_id) with the weights summed; bad rows are errors, not dropped."""
    missing = sorted(set(PAIR_COLUMNS) - set(pairs.columns))
    if missing:
        raise ValueError(f"pairs lacks column(s) {missing}; needs {', '.join(PAIR_COLUMNS)}")
    frame = pairs.loc[:, list(PAIR_COLUMNS)]
    weight = pd.to_numeric(frame["weight"], errors="coerce").astype(float)
    item_id = pd.to_numeric(frame["item_id"], errors="coerce")
    bad = (
        frame["query_norm"].isna()
        | (frame["query_norm"].astype("string").str.strip() == "")
        | item_id.isna()
        | (item_id != item_id.round())
        | ~np.isfinite(weight)
        | (weight < 0)
    )
    if bad.any():
        raise ValueError(
            f"pairs has {int(bad.sum())} row(s) with an empty query_norm, a NULL or non-integer item_id "
            f"or a weight that is not a finite number >= 0, e.g. {frame[bad].head(3).to_dict('records')}"
        )
    frame = frame.assign(weight=weight, item_id=item_id.astype(np.int64))
    return frame.groupby(["query_norm", "item_id"], as_index=False, sort=True)["weight"].sum()


def _unit_query_rows(pairs: pd.DataFrame) -> tuple[np.ndarray, sp.csr_matrix]:
    """Sorted query texts and their item-weight vectors scaled to length 1 (query × item, CSR)."""
    queries = np.sort(pairs["query_norm"].unique())
    q_codes = pd.Index(queries).get_indexer(pairs["query_norm"])
    i_codes, item_ids = pd.factorize(pairs["item_id"])
    matrix = sp.csr_matrix(
        (pairs["weight"].to_numpy(), (q_codes, i_codes)), shape=(len(queries), len(item_ids))
    )
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    return queries, sp.csr_matrix(sp.diags(1.0 / norms) @ matrix)


def learn_synonyms(
    pairs: pd.DataFrame,
    min_cosine: float = 0.5,
    min_weight: float = 3.0,
    max_per_query: int = 5,
) -> Synonyms:
    """Query → up to ``max_per_query`` (other query, cosine) with cosine >= ``min_cosine``.

    Only queries whose total weight is >= ``min_weight`` take part (as query and as synonym), so a
    single click does not make two queries alike. Highest cosine first, ties by the query text.
    """
    if max_per_query < 0:
        raise ValueError(f"max_per_query must be >= 0, got {max_per_query}")
    clean = _clean_pairs(pairs)
    totals = clean.groupby("query_norm")["weight"].sum()
    # a query whose weights are all 0 has no direction: it is like nothing (and would divide by 0)
    eligible = totals.index[(totals >= min_weight) & (totals > 0)]
    kept = clean[clean["query_norm"].isin(eligible) & (clean["weight"] > 0)]
    if kept.empty or max_per_query == 0:
        return {}
    queries, unit = _unit_query_rows(kept)
    blocks = [_block_edges(unit, start, min_cosine) for start in range(0, unit.shape[0], _BLOCK_ROWS)]
    row, col, cosine = _best_per_row(
        *(np.concatenate(parts) for parts in zip(*blocks, strict=True)), max_per_query
    )
    bounds = np.flatnonzero(row[1:] != row[:-1]) + 1
    return {
        queries[r[0]]: list(zip(queries[c].tolist(), cos.tolist(), strict=True))
        for r, c, cos in zip(
            np.split(row, bounds), np.split(col, bounds), np.split(cosine, bounds), strict=True
        )
        if len(r)
    }


def _best_per_row(
    row: np.ndarray, col: np.ndarray, cosine: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``k`` highest-cosine edges of each row, sorted by row, then cosine down, then column.

    Query codes follow the sorted query text, so "then column" is "ties by the query text".
    """
    order = np.lexsort((col, -cosine, row))
    row, col, cosine = row[order], col[order], cosine[order]
    starts = np.flatnonzero(np.r_[True, row[1:] != row[:-1]]) if len(row) else np.zeros(0, np.int64)
    rank = np.arange(len(row)) - np.repeat(starts, np.diff(np.r_[starts, len(row)]))
    keep = rank < k
    return row[keep], col[keep], cosine[keep]


def _block_edges(unit: sp.csr_matrix, start: int, min_cosine: float) -> tuple[np.ndarray, ...]:
    """(row, col, cosine) arrays of one block of query rows against all queries, self excluded."""
    block = (unit[start : start + _BLOCK_ROWS] @ unit.T).tocoo()
    keep = (block.data >= min_cosine - 1e-9) & (block.data > 0) & (block.row + start != block.col)
    rows, cols = block.row[keep].astype(np.int64) + start, block.col[keep].astype(np.int64)
    # rounded so that equal cosines tie exactly (then ordered by text), clipped at 1 (float error)
    cosine = np.minimum(np.round(block.data[keep], 9), 1.0)
    ok = cosine >= min_cosine
    return rows[ok], cols[ok], cosine[ok]


def synonym_edges(synonyms: Mapping[str, list[tuple[str, float]]]) -> pd.DataFrame:
    """The synonyms as a frame (query_norm, synonym, similarity)."""
    rows = [(q, s, float(sim)) for q, syns in synonyms.items() for s, sim in syns]
    return pd.DataFrame(rows, columns=["query_norm", "synonym", "similarity"]).astype(
        {"query_norm": object, "synonym": object, "similarity": float}
    )


def expand_pairs(pairs: pd.DataFrame, synonyms: Mapping[str, list[tuple[str, float]]]) -> pd.DataFrame:
    """(query_norm, item_id, score) for every query of ``pairs``: own weight + Σ similarity × synonym weight.

    The bulk form of ``expand_scores`` (training and publishing); one join, no Python loop.
    """
    clean = _clean_pairs(pairs)
    own = pd.DataFrame({"query_norm": clean["query_norm"].unique()})
    edges = pd.concat(
        [own.assign(synonym=own["query_norm"], similarity=1.0), synonym_edges(synonyms)],
        ignore_index=True,
    )
    joined = edges.merge(clean.rename(columns={"query_norm": "synonym"}), on="synonym")
    joined["score"] = joined["similarity"] * joined["weight"]
    return joined.groupby(["query_norm", "item_id"], as_index=False, sort=True)["score"].sum()


def pairs_by_query(pairs: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """query_norm → (item_ids int64, weights float64) of its engagement, for per-query lookups."""
    clean = _clean_pairs(pairs)  # sorted by query, then item
    if clean.empty:
        return {}
    query = clean["query_norm"].to_numpy()
    bounds = np.flatnonzero(query[1:] != query[:-1]) + 1
    starts = np.r_[0, bounds]
    items = np.split(clean["item_id"].to_numpy(np.int64), bounds)
    weights = np.split(clean["weight"].to_numpy(np.float64), bounds)
    return {query[s]: (i, w) for s, i, w in zip(starts, items, weights, strict=True)}


def expand_scores(
    query_norm: str,
    by_query: Mapping[str, tuple[np.ndarray, np.ndarray]],
    synonyms: Mapping[str, list[tuple[str, float]]],
) -> dict[int, float]:
    """item_id → score for one query: its own weights plus each synonym's weights × similarity.

    ``by_query`` comes from ``pairs_by_query``. A query with neither engagement nor synonyms
    gets ``{}``.
    """
    parts = [(query_norm, 1.0)] if query_norm in by_query else []
    parts += [(s, sim) for s, sim in synonyms.get(query_norm, []) if s in by_query]
    if not parts:
        return {}
    items = np.concatenate([by_query[q][0] for q, _ in parts])
    scores = np.concatenate([by_query[q][1] * sim for q, sim in parts])
    uniq, inverse = np.unique(items, return_inverse=True)
    summed = np.bincount(inverse, weights=scores, minlength=len(uniq))
    return dict(zip(uniq.tolist(), summed.tolist(), strict=True))
