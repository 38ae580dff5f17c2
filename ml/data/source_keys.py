"""Stable integer ids for a source's string ids, and the catalogue fields its lines set.

The contract's ids are integers; some sources name things with strings (Online Retail's
``StockCode`` ``85123A``, ``POST``). ``recsys_raw.source_keys(source, kind, source_key) → id`` keeps
each string with the integer it was given:

- An id is assigned once, by the batch that first sees the key, in that batch's transaction (the
  rows ride along with :func:`ml.data.ingest.write_batch`), and every later batch or import of the
  same source reuses it: ids never depend on file order, batch size or which file came first.
- New ids continue after the largest ``items.item_id``/``users.user_id`` and mapped id of that
  kind, so they never collide with ids already loaded from an integer-keyed source; the unique key
  ``(kind, id)`` makes a concurrent importer's collision fail its batch (rolled back) rather than
  merge two things. One importer per raw database at a time is the supported setup.
- Chosen over hashing the string into 63 bits (no state, but ids near 2^63 that break dense
  lookups and can collide) and over an ``items`` column (users could not use it, and a lookup by
  code would need its own unique index there).

Items also keep what their lines said last: ``items.title`` is the latest non-empty title and
``items.price`` the latest unit price, "latest" by event time and then by line order, across batches
and imports. The event time each was observed at is stored with the key (``title_ts``,
``price_ts``), so an older file imported later does not overwrite newer values.
"""

from __future__ import annotations

from typing import NamedTuple

import pandas as pd

from ml.config import Settings
from ml.data.load import ITEM_COLUMNS
from ml.db import connect

SOURCE_KEY_COLUMNS: tuple[str, ...] = ("source", "kind", "source_key", "id", "title_ts", "price_ts")
MAX_KEY_LENGTH = 64
_LOOKUP_CHUNK = 5000


def _stored_items(settings: Settings, source: str, codes: list[str]) -> tuple[pd.DataFrame, int]:
    """Mapped keys among ``codes`` with their observation times and current ``items`` row, and the
    first free item id (after every item id and mapped id)."""
    cols = ["source_key", "id", "title_ts", "price_ts", *ITEM_COLUMNS[1:]]
    found = []
    conn = connect(settings.raw_db, settings=settings)
    try:
        with conn.cursor() as cur:
            for lo in range(0, len(codes), _LOOKUP_CHUNK):
                chunk = codes[lo : lo + _LOOKUP_CHUNK]
                cur.execute(
                    "SELECT k.source_key, k.id, k.title_ts, k.price_ts, "
                    + ", ".join(f"i.{c}" for c in ITEM_COLUMNS[1:])
                    + " FROM source_keys k LEFT JOIN items i ON i.item_id = k.id "
                    "WHERE k.source = %s AND k.kind = 'item' AND k.source_key IN ("
                    + ", ".join(["%s"] * len(chunk))
                    + ")",
                    (source, *chunk),
                )
                found.extend(cur.fetchall())
            cur.execute(
                "SELECT GREATEST(COALESCE((SELECT MAX(item_id) FROM items), 0), "
                "COALESCE((SELECT MAX(id) FROM source_keys WHERE kind = 'item'), 0)) + 1"
            )
            next_id = int(cur.fetchone()[0])
    finally:
        conn.close()
    stored = pd.DataFrame(found, columns=cols)
    for c in ("id", "price", "category_id", "in_stock"):
        stored[c] = pd.to_numeric(stored[c])
    for c in ("title_ts", "price_ts", "created_ts"):
        stored[c] = pd.to_datetime(stored[c])
    return stored, next_id


def _latest(obs: pd.DataFrame, value: str) -> pd.DataFrame:
    """Per code, the last non-null ``value`` of ``obs`` (already in time, then line order)."""
    last = obs[obs[value].notna()].drop_duplicates("source_key", keep="last")
    return last.set_index("source_key")[[value, "ts"]]


class Catalogue(NamedTuple):
    """Item ids for a batch's codes and the writes that must commit with the batch."""

    ids: pd.Series  # source_key → item_id
    writes: list[tuple[str, pd.DataFrame, tuple[str, ...], str]]  # for write_batch(also=...)
    new: int  # codes seen for the first time


def item_catalogue(settings: Settings, source: str, lines: pd.DataFrame) -> Catalogue:
    """Ids for the item codes of ``lines`` (``source_key, title, price, ts, line_no``: the batch's
    clean lines) and the writes that must commit with the batch: new keys (``append``: a collision
    fails the batch), observation times of known keys and the merged ``items`` rows (``replace``)."""
    obs = lines.sort_values(["ts", "line_no"], kind="stable")
    codes = obs.drop_duplicates("source_key")["source_key"].tolist()  # first-seen order
    stored, next_id = _stored_items(settings, source, codes)
    stored = stored.set_index("source_key").reindex(codes)
    stored = stored.rename_axis("source_key").astype({"title": object})
    new_codes = [c for c in codes if pd.isna(stored.at[c, "id"])]
    stored.loc[new_codes, "id"] = range(next_id, next_id + len(new_codes))
    title, price = _latest(obs, "title"), _latest(obs, "price")
    first_ts = obs.groupby("source_key")["ts"].min()
    merged = stored
    for value, at, seen in (("title", "title_ts", title), ("price", "price_ts", price)):
        newer = seen.reindex(codes)
        take = newer[value].notna() & (merged[at].isna() | (newer["ts"] >= merged[at]))
        merged.loc[take, value] = newer.loc[take, value]
        merged.loc[take, at] = newer.loc[take, "ts"]
    merged["created_ts"] = pd.concat([merged["created_ts"], first_ts.reindex(codes)], axis=1).min(axis=1)
    merged["category_id"] = merged["category_id"].fillna(0).astype("int64")  # 0 = unknown: none in the source
    merged["in_stock"] = merged["in_stock"].fillna(1).astype("int64")
    merged["item_id"] = merged["id"] = merged["id"].astype("int64")
    keys = merged.reset_index().assign(source=source, kind="item")
    is_new = keys["source_key"].isin(new_codes)
    writes = [
        ("source_keys", keys[is_new], SOURCE_KEY_COLUMNS, "append"),
        ("source_keys", keys[~is_new], SOURCE_KEY_COLUMNS, "replace"),
        ("items", merged, ITEM_COLUMNS, "replace"),
    ]
    return Catalogue(merged["item_id"], [w for w in writes if not w[1].empty], len(new_codes))
