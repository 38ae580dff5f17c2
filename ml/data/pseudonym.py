"""Pseudonymous user ids on import (``recsys data import ... --pseudonymize``).

A source user id becomes ``HMAC-SHA256(RECSYS_PSEUDONYM_KEY, id)`` cut to 53 bits: an integer id
that is the same for the same source id and key in every import (stable, stateless: no mapping table
holds the source id), differs between keys, and cannot be turned back without the key. The source
id is replaced before validation, so nothing written to ``recsys_raw`` carries it:

- events, users and the ``session_id`` (``"{user_id}-{ts}"``) hold the pseudonymous id;
- a quarantined line that was split into fields keeps its text with the user field replaced;
- a line that could not be split (bad encoding, wrong field count, broken quoting) keeps no raw text
  (``raw_row`` NULL; ``detail`` says why), since where its user field is cannot be known;
- a user field that is not an integer id is replaced by ``withheld`` and quarantined as
  ``non_numeric_id``, as it would be without the flag.

The id is normalised first (``" 017"``, ``"17"`` and ``"17.0"`` are user 17, as validation reads them).
Keep the key secret and unchanged: another key maps every user to other ids (a new population), and
``recsys user forget`` takes the pseudonymous id.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re

import pandas as pd

KEY_ENV = "RECSYS_PSEUDONYM_KEY"
NOT_AN_ID = "withheld"
WITHHELD_DETAIL = "raw text withheld: pseudonymised import"
_INTEGRAL = re.compile(r"^\+?(\d+)(?:\.0*)?$")


class PseudonymKeyMissing(ValueError):
    """``--pseudonymize`` without a key in the environment."""


def key_from_env() -> bytes:
    """The pseudonymisation key from ``RECSYS_PSEUDONYM_KEY`` (refuses an empty one)."""
    key = os.environ.get(KEY_ENV, "")
    if not key.strip():
        raise PseudonymKeyMissing(f"--pseudonymize needs a secret key in {KEY_ENV}; it is not set")
    return key.encode()


def pseudonym(key: bytes, source_id: int) -> int:
    """The pseudonymous id of an integer source id: 53 bits (0 < id < 2^53), so the id survives every
    float64 round trip (validation parses an id column with a blank as float64, and so do pandas
    merges with gaps); two of a million users share an id with probability about 5e-5."""
    digest = hmac.new(key, str(int(source_id)).encode(), hashlib.sha256).digest()
    return (int.from_bytes(digest[:8], "big") >> 11) or 1


def pseudonymize_value(value: object, key: bytes) -> str:
    """One user field: blank stays blank (``null_id``), an integer id becomes its pseudonym, anything
    else becomes ``withheld`` (``non_numeric_id``)."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    text = str(value).strip()
    if text in ("", "None", "nan", "NaN", "<NA>", "NULL", "\\N"):
        return ""
    m = _INTEGRAL.match(text)
    return str(pseudonym(key, int(m.group(1)))) if m else NOT_AN_ID


def pseudonymize_series(values: pd.Series, key: bytes) -> pd.Series:
    """:func:`pseudonymize_value` over a column (once per distinct value)."""
    return pd.Series(_mapped(values.tolist(), key), index=values.index, dtype=object)


def pseudonymize_fields(fields: list[list[str]], index: int, key: bytes) -> None:
    """Replace field ``index`` of every split line in place."""
    for row, value in zip(fields, _mapped([row[index] for row in fields], key)):
        row[index] = value


def _mapped(values: list, key: bytes) -> list[str]:
    cache: dict = {}
    out = []
    for v in values:
        got = cache.get(v)
        if got is None:
            got = cache[v] = pseudonymize_value(v, key)
        out.append(got)
    return out


def withhold_raw(quarantine: pd.DataFrame) -> pd.DataFrame:
    """Quarantine rows without their raw text (lines whose user field could not be replaced)."""
    if quarantine.empty:
        return quarantine
    note = f" [{WITHHELD_DETAIL}]"
    return quarantine.assign(
        raw_row=None, detail=quarantine["detail"].astype(str).str.slice(0, 255 - len(note)) + note
    )
