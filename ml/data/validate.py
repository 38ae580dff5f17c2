"""Validation on the way into ``recsys_raw``, shared by the simulator loader, the importers and
the live feed. Nothing is dropped silently: every rejected row becomes a quarantine row
``(raw_row, reason, detail, source, line_no)`` with one of :data:`REASONS`.

Natural key of an event (what "duplicate" means): ``(user_id, item_id, behavior_type, ts)`` with
``ts`` at millisecond precision and a NULL item (searches) compared as equal to NULL. The session
is deliberately not part of the key: importers derive sessions, so the same source row always
yields the same key however it was sessionised. The first occurrence is kept; later ones in the
same batch are ``duplicate_in_batch``, ones already in ``user_behavior`` ``duplicate_of_loaded``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.tseries.api import guess_datetime_format

from ml import contracts

REASONS: tuple[str, ...] = (
    "bad_encoding",  # the line is not valid UTF-8
    "unparseable",  # wrong number of fields on a line
    "null_id",  # user_id missing, or item_id missing on a non-search event
    "non_numeric_id",  # an id that is not a non-negative integer
    "unknown_behavior",  # behaviour type outside the known mapping
    "bad_timestamp",  # a timestamp that does not parse
    "ts_future",  # later than now (+5 minutes of clock skew)
    "ts_before_2000",  # earlier than 2000-01-01
    "bad_price",  # negative, non-numeric or absurd (> 1,000,000) item price; a sale line's must be > 0
    "bad_quantity",  # a sale line's quantity missing, zero, fractional or too large
    "cancelled",  # a cancellation line (Online Retail: invoice "C…" or negative quantity)
    "duplicate_in_batch",  # natural key seen earlier in the same batch
    "duplicate_of_loaded",  # natural key already in user_behavior
    "forgotten_user",  # a user removed by `recsys user forget` (raw text not kept)
)
CONTRACT_BEHAVIORS: dict[str, str] = {b: b for b in contracts.BEHAVIOR_TYPES}
EVENT_KEY: tuple[str, ...] = ("user_id", "item_id", "behavior_type", "ts")
MIN_TS = pd.Timestamp("2000-01-01")
MAX_PRICE = 1_000_000.0
_SKEW = pd.Timedelta(minutes=5)
_MAX_ID = 2**63 - 1
#: The most of a rejected line quarantine keeps (``raw_row`` is MEDIUMTEXT, migration 0007): longer
#: lines keep their first bytes, cut on a character boundary, and say so in ``detail``.
MAX_RAW_BYTES = 4 * 1024 * 1024


class FormatError(ValueError):
    """The input is not in the expected format at all (names the file, line and columns)."""


@dataclass
class Checked:
    """A batch split into rows that passed (typed) and quarantine rows."""

    clean: pd.DataFrame
    quarantine: pd.DataFrame


def empty_quarantine() -> pd.DataFrame:
    return pd.DataFrame(
        {c: pd.Series(dtype=object) for c in ("raw_row", "reason", "detail", "source", "line_no")}
    )


def cut_utf8(text: pd.Series, max_bytes: int) -> tuple[pd.Series, pd.Series]:
    """``text`` with each value cut to at most ``max_bytes`` bytes of UTF-8, never inside a
    character, and a mask of the values that were cut. Only values that could be too long (more
    than ``max_bytes / 4`` characters) are encoded."""
    text = text.reset_index(drop=True)
    cut = pd.Series(False, index=text.index)
    for i in np.flatnonzero(text.str.len().to_numpy() > max_bytes // 4):
        data = text.iat[i].encode("utf-8", "surrogatepass")
        if len(data) > max_bytes:
            text.iat[i] = data[:max_bytes].decode("utf-8", "ignore")
            cut.iat[i] = True
    return text, cut


def quarantine_rows(raw_row, reason: str | pd.Series, detail, source: str, line_no) -> pd.DataFrame:
    """Quarantine frame from aligned values (scalars broadcast)."""
    raw = pd.Series(raw_row, dtype=object).reset_index(drop=True)
    n = len(raw)

    def col(v):
        return (
            pd.Series(v, dtype=object).reset_index(drop=True)
            if isinstance(v, (pd.Series, np.ndarray, list))
            else pd.Series([v] * n, dtype=object)
        )

    det = col(detail).astype(str)
    text, cut = cut_utf8(raw.astype(str), MAX_RAW_BYTES)
    if cut.any():  # say so in the row's detail: the stored text is the start of the line only
        note = f" [raw_row cut to its first {MAX_RAW_BYTES:,} bytes]"
        det = det.where(~cut, det.str.slice(0, 255 - len(note)) + note)
    return pd.DataFrame(
        {
            "raw_row": text,
            "reason": col(reason),
            "detail": det.str.slice(0, 255),
            "source": source[:255],
            "line_no": col(line_no),
        }
    )


class _Reasons:
    """First failing check wins; keeps one reason and detail per row."""

    def __init__(self, index: pd.Index):
        self.reason = pd.Series(None, index=index, dtype=object)
        self.detail = pd.Series(None, index=index, dtype=object)

    def flag(self, mask: pd.Series, reason: str, detail: str, values: pd.Series | None = None) -> None:
        """Flag rows in ``mask`` not yet flagged; the detail is ``detail`` (+ the offending value)."""
        m = mask & self.reason.isna()
        if m.any():
            self.reason[m] = reason
            self.detail[m] = detail if values is None else detail + values[m].astype(str).str.slice(0, 40)

    @property
    def ok(self) -> pd.Series:
        return self.reason.isna()


def _blank(s: pd.Series) -> pd.Series:
    """Missing values: NULL, or (for text input) empty and the usual spellings of null."""
    if pd.api.types.is_numeric_dtype(s):
        return s.isna()
    return s.isna() | s.astype(str).str.strip().isin(["", "None", "nan", "NaN", "<NA>", "NULL", "\\N"])


def _ids(s: pd.Series, name: str, rs: _Reasons, required: pd.Series) -> pd.Series:
    """Parse an id column; flag blanks where required and anything not a non-negative integer."""
    blank = _blank(s)
    rs.flag(blank & required, "null_id", f"{name} is empty")
    if pd.api.types.is_integer_dtype(s):
        num = s.astype("float64") if s.hasnans else s
        bad = ~blank & (num < 0)
    else:
        num = pd.to_numeric(s.where(~blank), errors="coerce")
        bad = ~blank & (num.isna() | (num < 0) | (num > _MAX_ID) | (num % 1 != 0))
    rs.flag(bad, "non_numeric_id", name + "=", s)
    return num.where(~bad & ~blank)


def _timestamps(s: pd.Series, unit: str | None, rs: _Reasons, now: pd.Timestamp) -> pd.Series:
    """Parse times (epoch numbers in ``unit`` or datetime-like), flag unparseable/future/pre-2000."""
    shown = "ts="
    if unit:
        num = pd.to_numeric(s, errors="coerce")
        scale = {"s": 1.0, "ms": 1e-3}[unit]
        secs = num * scale
        rs.flag(num.isna(), "bad_timestamp", shown, s)
        rs.flag(secs > (now + _SKEW).timestamp(), "ts_future", shown, s)
        rs.flag(secs < MIN_TS.timestamp(), "ts_before_2000", shown, s)
        ok = rs.ok & num.notna()
        ts = pd.Series(pd.NaT, index=s.index, dtype="datetime64[ms]")
        ts[ok] = pd.to_datetime((secs[ok] * 1000).round().astype(np.int64), unit="ms")
        return ts
    ts = s if pd.api.types.is_datetime64_any_dtype(s) else parse_text_times(s)
    if getattr(ts.dt, "tz", None) is not None:
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    rs.flag(ts.isna(), "bad_timestamp", shown, s)
    rs.flag(ts > now + _SKEW, "ts_future", shown, s)
    rs.flag(ts < MIN_TS, "ts_before_2000", shown, s)
    return ts.dt.floor("ms").astype("datetime64[ms]")


def parse_text_times(s: pd.Series) -> pd.Series:
    """Datetimes from text, each value on its own terms (pandas would otherwise guess one format from
    the first value and fail the rest). Per-value parsing (``format="mixed"``) is slow (~80 µs a
    value), so it only gets what two vectorised passes leave: ISO 8601, then the format guessed from
    the first value ISO did not parse (e.g. ``12/1/2010 8:26``: month first, as ``mixed`` reads it)."""
    ts = pd.to_datetime(s, errors="coerce", format="ISO8601")
    if not pd.api.types.is_datetime64_any_dtype(ts) or ts.dt.tz is not None:
        return pd.to_datetime(s, errors="coerce", format="mixed")  # offsets: per value, as before
    left = ts.isna() & s.notna()
    guessed = guess_datetime_format(str(s[left].iloc[0])) if left.any() else None
    if guessed:
        ts.loc[left] = pd.to_datetime(s[left].astype(str), errors="coerce", format=guessed)
        left &= ts.isna()
    if left.any():
        rest = pd.to_datetime(s[left].astype(str), errors="coerce", format="mixed")
        if pd.api.types.is_datetime64_any_dtype(rest) and rest.dt.tz is not None:
            rest = rest.dt.tz_convert("UTC").dt.tz_localize(None)
        ts.loc[left] = rest
    return ts


def _raw_rows(df: pd.DataFrame, mask: pd.Series) -> pd.Series:
    if "raw_row" in df.columns:
        return df.loc[mask, "raw_row"]
    if not mask.any():
        return pd.Series([], dtype=object)
    cols = [c for c in df.columns if c != "line_no"]
    return df.loc[mask, cols].astype(str).agg(",".join, axis=1)


def validate_events(
    df: pd.DataFrame,
    source: str,
    *,
    behavior_map: Mapping[str, str] = CONTRACT_BEHAVIORS,
    ts_unit: str | None = None,
    now: pd.Timestamp | None = None,
    id_columns: tuple[str, ...] = (),
) -> Checked:
    """Check a batch of events. ``df`` has ``user_id, item_id, behavior_type, ts`` (raw values or
    typed), optionally ``session_id, query_text, raw_row, line_no`` and extra columns (kept).
    Behaviour values are mapped through ``behavior_map``; ``ts_unit`` is ``s``/``ms`` for epoch
    numbers, None for datetimes; ``id_columns`` are further required integer ids (e.g. a source's
    category_id). Returns typed clean rows (contract names) and quarantine rows."""
    now = now if now is not None else pd.Timestamp.now(tz="UTC").tz_localize(None)
    df = df.reset_index(drop=True)
    rs = _Reasons(df.index)
    user = _ids(df["user_id"], "user_id", rs, pd.Series(True, index=df.index))
    behavior = df["behavior_type"].astype(str).str.strip().map(dict(behavior_map))
    is_search = behavior == "search"
    item = _ids(df["item_id"], "item_id", rs, ~is_search & behavior.notna())
    rs.flag(behavior.isna(), "unknown_behavior", "behavior_type=", df["behavior_type"])
    extra_ids = {c: _ids(df[c], c, rs, pd.Series(True, index=df.index)) for c in id_columns}
    ts = _timestamps(df["ts"], ts_unit, rs, now)
    clean = df.copy()
    for c, parsed in extra_ids.items():
        clean[c] = parsed
    clean["user_id"] = user
    clean["item_id"] = item.where(~is_search)
    clean["behavior_type"] = behavior
    clean["ts"] = ts
    dup = rs.ok & clean.assign(item_id=clean["item_id"].fillna(-1)).duplicated(list(EVENT_KEY), keep=False)
    if dup.any():  # only rows that passed everything else can be duplicates
        first = (
            clean[dup].assign(item_id=clean["item_id"].fillna(-1)).duplicated(list(EVENT_KEY), keep="first")
        )
        rs.flag(
            first.reindex(df.index, fill_value=False),
            "duplicate_in_batch",
            "same user, item, type and ts earlier in the batch",
        )
    bad = ~rs.ok
    line_no = df["line_no"] if "line_no" in df.columns else pd.Series(None, index=df.index, dtype=object)
    quarantine = quarantine_rows(
        _raw_rows(df, bad), rs.reason[bad], rs.detail[bad], source, line_no[bad].astype(object)
    )
    clean = clean[~bad].drop(columns=[c for c in ("raw_row",) if c in clean.columns])
    clean["user_id"] = clean["user_id"].astype(np.int64)
    clean["item_id"] = clean["item_id"].astype("Int64")
    for c in id_columns:
        clean[c] = clean[c].astype(np.int64)
    for col in ("session_id", "query_text"):
        if col not in clean.columns:
            clean[col] = None
    clean["query_text"] = clean["query_text"].where(clean["behavior_type"] == "search", None)
    return Checked(clean.reset_index(drop=True), quarantine)


def validate_items(df: pd.DataFrame, source: str) -> Checked:
    """Check an items frame: integer ``item_id`` and ``category_id``, price NULL or in
    ``[0, 1,000,000]``. Rejected items go to quarantine (``non_numeric_id``/``null_id``/``bad_price``)."""
    df = df.reset_index(drop=True)
    rs = _Reasons(df.index)
    item = _ids(df["item_id"], "item_id", rs, pd.Series(True, index=df.index))
    cat = _ids(df["category_id"], "category_id", rs, pd.Series(True, index=df.index))
    if "price" in df.columns:
        blank = _blank(df["price"])
        price = pd.to_numeric(df["price"].where(~blank), errors="coerce")
        bad_price = ~blank & (price.isna() | (price < 0) | (price > MAX_PRICE))
        rs.flag(bad_price, "bad_price", "price=", df["price"])
    bad = ~rs.ok
    line_no = df["line_no"] if "line_no" in df.columns else pd.Series(None, index=df.index, dtype=object)
    quarantine = quarantine_rows(
        _raw_rows(df, bad), rs.reason[bad], rs.detail[bad], source, line_no[bad].astype(object)
    )
    clean = df[~bad].copy()
    clean["item_id"] = item[~bad].astype(np.int64)
    clean["category_id"] = cat[~bad].astype(np.int64)
    return Checked(clean.reset_index(drop=True), quarantine)
