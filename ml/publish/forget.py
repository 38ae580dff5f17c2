"""``recsys user forget``: remove users from every layer and remember that they are gone.

In one transaction, holding the raw write lock of :mod:`ml.data.ingest` (no import batch interleaves)
and the serving ``publish`` lock (no refresh or full-publish swap interleaves):

1. the keyed hash of each id goes into ``recsys_raw.forgotten_users`` (migration 0010; never the id),
   so a later import skips the user's rows (:mod:`ml.data.forgotten`, reason ``forgotten_user``);
2. every base table with a ``user_id`` column in the raw, marts, point-in-time and serving databases
   loses the user's rows (``users``, ``user_behavior``, the dbt marts, incremental ones included,
   ``user_topn``, staged ``*_new`` tables...): found through ``information_schema``, so a new mart
   is covered without a change here;
3. quarantine rows whose raw line names the user (the line's user field, per source layout) and the
   user's ``source_keys`` mapping (``kind = 'user'``) are deleted.

Not covered: MLflow artifacts (models are not per-user tables; the query-token vocabulary keeps only
tokens of at least ``token_min_users`` users) and the GX result files under ``RECSYS_HOME``.
"""

from __future__ import annotations

from collections.abc import Sequence

from ml.config import Settings
from ml.data.forgotten import forget_salt, quarantine_user_id, user_hash
from ml.data.ingest import _lock_raw_writes
from ml.db import transaction
from ml.features.dbt import pit_database
from ml.publish.locking import lock_name, named_lock

LOCK_TIMEOUT_S = 60
_CHUNK = 1000


def _user_tables(cur, databases: Sequence[str]) -> list[tuple[str, str]]:
    cur.execute(
        "SELECT c.table_schema, c.table_name FROM information_schema.columns c "
        "JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name "
        "WHERE c.column_name = 'user_id' AND t.table_type = 'BASE TABLE' AND c.table_schema IN ("
        + ", ".join(["%s"] * len(databases))
        + ") ORDER BY c.table_schema, c.table_name",
        tuple(databases),
    )
    return [(str(db), str(t)) for db, t in cur.fetchall()]


def _quarantine_ids(cur, raw_db: str, user_ids: set[int]) -> list[int]:
    """Quarantine rows whose line names one of ``user_ids`` (the digits pre-filter in SQL)."""
    hits: list[int] = []
    for uid in sorted(user_ids):
        cur.execute(
            f"SELECT quarantine_id, raw_row, reason, source FROM `{raw_db}`.user_behavior_quarantine "
            "WHERE raw_row LIKE %s",
            (f"%{uid}%",),
        )
        hits += [int(q) for q, raw, why, src in cur.fetchall() if quarantine_user_id(raw, why, src) == uid]
    return hits


def forget_users(user_ids: Sequence[int], settings: Settings) -> dict[str, int]:
    """Forget ``user_ids`` everywhere; returns rows deleted per ``database.table`` (only non-zero)."""
    ids = sorted({int(u) for u in user_ids})
    if not ids or min(ids) < 0:
        raise ValueError("user ids must be non-negative integers")
    s = settings
    raw = s.raw_db
    deleted: dict[str, int] = {}
    with transaction(settings=s) as conn:
        _lock_raw_writes(conn, raw)
        with named_lock(conn, lock_name(s, "publish"), LOCK_TIMEOUT_S, "user forget"), conn.cursor() as cur:
            salt = forget_salt(cur, raw)
            cur.executemany(
                f"INSERT IGNORE INTO `{raw}`.forgotten_users (user_hash) VALUES (%s)",
                [(user_hash(salt, u),) for u in ids],
            )
            databases = [raw, s.marts_db, pit_database(s), s.serving_db]
            for db, table in _user_tables(cur, databases):
                n = 0
                for lo in range(0, len(ids), _CHUNK):
                    chunk = ids[lo : lo + _CHUNK]
                    n += cur.execute(
                        f"DELETE FROM `{db}`.`{table}` WHERE user_id IN ({', '.join(['%s'] * len(chunk))})",
                        chunk,
                    )
                if n:
                    deleted[f"{db}.{table}"] = n
            q = _quarantine_ids(cur, raw, set(ids))
            for lo in range(0, len(q), _CHUNK):
                chunk = q[lo : lo + _CHUNK]
                cur.execute(
                    f"DELETE FROM `{raw}`.user_behavior_quarantine WHERE quarantine_id IN "
                    f"({', '.join(['%s'] * len(chunk))})",
                    chunk,
                )
            if q:
                deleted[f"{raw}.user_behavior_quarantine"] = len(q)
            n = cur.execute(
                f"DELETE FROM `{raw}`.source_keys WHERE kind = 'user' AND id IN ({', '.join(['%s'] * len(ids))})",
                ids,
            )
            if n:
                deleted[f"{raw}.source_keys"] = n
            conn.commit()  # before the locks are released
    return deleted
