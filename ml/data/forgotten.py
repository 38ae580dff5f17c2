"""Forgotten users as the importers see them: the keyed hash kept for each (migration 0010), and the
removal of their rows from a batch before it is written.

``recsys user forget`` (:mod:`ml.publish.forget`) deletes a user everywhere and records
``HMAC-SHA256(salt, str(user_id))`` in ``recsys_raw.forgotten_users`` (the salt is random, one per
raw database, in ``forget_salt``), never the id. :func:`ml.data.ingest.write_batch` calls
:func:`drop_forgotten` inside each batch's transaction: events of a forgotten user become quarantine
rows with reason ``forgotten_user`` and no raw text (the line would hold the id again), the user row is
not created, and quarantine rows whose line names a forgotten user lose their raw text the same way.

Which user a quarantine line names (:func:`quarantine_user_id`) follows the line's layout: Taobao's
first field, RetailRocket's second (``visitorid``), Online Retail's seventh (``CustomerID``), and the
first for the simulator and the feed and for ``duplicate_of_loaded`` rows (written in
``ml.data.load.EVENT_COLUMNS`` order).
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import secrets
from collections.abc import Iterable

import pandas as pd

FORGOTTEN_REASON = "forgotten_user"
WITHHELD = "row of a forgotten user: raw text not kept"
#: position of the user id in a raw line, by the source's name (the part of ``source`` before ``:``)
_USER_FIELD = {"taobao": 0, "retailrocket": 1, "online_retail": 6}


def user_hash(salt: str, user_id: int) -> str:
    """Hex HMAC-SHA256 of the decimal user id under the database's salt."""
    return hmac.new(salt.encode(), str(int(user_id)).encode(), hashlib.sha256).hexdigest()


def forget_salt(cur, raw_db: str) -> str:
    """The raw database's salt (migration 0010 makes it)."""
    cur.execute(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = %s AND table_name = 'forget_salt'",
        (raw_db,),
    )
    if not cur.fetchone()[0]:
        raise RuntimeError(f"{raw_db} has no forget_salt table: run `recsys db init` (migration 0010)")
    cur.execute(f"SELECT salt FROM `{raw_db}`.forget_salt WHERE id = 1")
    row = cur.fetchone()
    if row is None:  # emptied (a TRUNCATE of every raw table): a new salt is safe only with no hashes
        cur.execute(f"SELECT COUNT(*) FROM `{raw_db}`.forgotten_users")
        if cur.fetchone()[0]:
            raise RuntimeError(
                f"{raw_db}.forget_salt lost its salt while forgotten_users holds hashes made with it: "
                "restore the salt from a backup; those users cannot be recognised without it"
            )
        cur.execute(
            f"INSERT IGNORE INTO `{raw_db}`.forget_salt (id, salt) VALUES (1, %s)", (secrets.token_hex(32),)
        )
        cur.execute(f"SELECT salt FROM `{raw_db}`.forget_salt WHERE id = 1")
        row = cur.fetchone()
    return str(row[0])


def forgotten_among(cur, raw_db: str, user_ids: Iterable[int]) -> set[int]:
    """The ids among ``user_ids`` whose hash is in ``forgotten_users``."""
    ids = {int(u) for u in user_ids}
    cur.execute(  # a database from before migration 0010 has forgotten nobody
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = %s AND table_name = 'forgotten_users'",
        (raw_db,),
    )
    if not ids or not cur.fetchone()[0]:
        return set()
    cur.execute(f"SELECT COUNT(*) FROM `{raw_db}`.forgotten_users")
    if int(cur.fetchone()[0]) == 0:
        return set()
    salt = forget_salt(cur, raw_db)
    by_hash = {user_hash(salt, u): u for u in ids}
    hashes = list(by_hash)
    found: set[int] = set()
    for lo in range(0, len(hashes), 5000):
        chunk = hashes[lo : lo + 5000]
        cur.execute(
            f"SELECT user_hash FROM `{raw_db}`.forgotten_users WHERE user_hash IN ({', '.join(['%s'] * len(chunk))})",
            chunk,
        )
        found |= {by_hash[h] for (h,) in cur.fetchall()}
    return found


def quarantine_user_id(raw_row: str | None, reason: str, source: str) -> int | None:
    """The user id a quarantine line names, or None when the line has none that parses."""
    if not raw_row:
        return None
    fmt = source.split(":", 1)[0]
    pos = 0 if reason == "duplicate_of_loaded" else _USER_FIELD.get(fmt, 0)
    if fmt == "online_retail" and reason != "duplicate_of_loaded":
        try:
            fields = next(csv.reader([raw_row]))
        except (csv.Error, StopIteration):
            return None
    else:
        fields = raw_row.split(",")
    if len(fields) <= pos:
        return None
    text = fields[pos].strip()
    try:
        value = float(text) if "." in text else int(text)
    except ValueError:
        return None
    if value < 0 or value != int(value):
        return None
    return int(value)


def drop_forgotten(
    cur, raw_db: str, events: pd.DataFrame, quarantine: pd.DataFrame, source: str
) -> tuple[pd.DataFrame, pd.DataFrame, set[int]]:
    """``(events, quarantine, forgotten ids)`` with the forgotten users' events moved to quarantine
    (reason ``forgotten_user``, no raw text) and their quarantine lines' raw text withheld."""
    q_users = (
        [quarantine_user_id(r, why, source) for r, why in zip(quarantine["raw_row"], quarantine["reason"])]
        if len(quarantine)
        else []
    )
    candidates = set(events["user_id"].astype("int64").tolist()) | {u for u in q_users if u is not None}
    gone = forgotten_among(cur, raw_db, candidates)
    if not gone:
        return events, quarantine, gone
    quarantine = quarantine.copy()
    if len(quarantine):
        hit = pd.Series([u in gone for u in q_users], index=quarantine.index)
        quarantine.loc[hit, "raw_row"] = None
        quarantine.loc[hit, "reason"] = FORGOTTEN_REASON
        quarantine.loc[hit, "detail"] = WITHHELD
    mine = events["user_id"].isin(list(gone))
    line_no = events.loc[mine, "line_no"] if "line_no" in events.columns else None
    moved = pd.DataFrame(
        {
            "raw_row": None,
            "reason": FORGOTTEN_REASON,
            "detail": WITHHELD,
            "source": source[:255],
            "line_no": line_no.to_numpy(dtype=object) if line_no is not None else None,
        },
        index=range(int(mine.sum())),
    )
    quarantine = pd.concat([quarantine, moved], ignore_index=True) if len(moved) else quarantine
    return events[~mine], quarantine, gone
