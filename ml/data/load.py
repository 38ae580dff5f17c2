"""Bulk writes into ``recsys_raw`` with ``LOAD DATA LOCAL INFILE`` (about 3x a multi-row INSERT).

A frame is written to a temporary tab-separated file (backslash-escaped tab/newline/backslash, an
empty field for NULL, so an empty string also loads as NULL; when some text holds a ``"``, text
fields are enclosed in quotes with the quote doubled, which Arrow's writer needs) and loaded with
an explicit column list. The caller owns the transaction, so a batch of events and its quarantine
rows commit or roll back together. Only the loader's connections enable ``local_infile`` (with it a
server may ask the client for any file), so :func:`load_frame` refuses a connection without it.
"""

from __future__ import annotations

import os
import tempfile
from typing import Literal

import pandas as pd
import pymysql
from pymysql.constants import CLIENT

EVENT_COLUMNS: tuple[str, ...] = ("user_id", "item_id", "session_id", "behavior_type", "query_text", "ts")
#: Optional line detail of an event (migration 0006): written only by loaders whose frames carry them.
EVENT_DETAIL_COLUMNS: tuple[str, ...] = ("quantity", "unit_price")
USER_COLUMNS: tuple[str, ...] = ("user_id", "gender", "age", "location", "signup_ts")
ITEM_COLUMNS: tuple[str, ...] = (
    "item_id",
    "title",
    "category_id",
    "category",
    "brand",
    "price",
    "in_stock",
    "created_ts",
)
INTENT_COLUMNS: tuple[str, ...] = (
    "session_id",
    "user_id",
    "intent_category_id",
    "long_term_category_id",
    "is_switch",
    "query_text",
    "start_ts",
)
QUERY_INTENT_COLUMNS: tuple[str, ...] = (
    "session_id",
    "user_id",
    "query_text",
    "category_id",
    "brand",
    "model",
    "lang",
    "has_typo",
)
QUARANTINE_COLUMNS: tuple[str, ...] = ("raw_row", "reason", "detail", "source", "line_no")

_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0"}


def _escape_text(col: pd.Series) -> pd.Series:
    """Escape MySQL's special characters in a text column (only when any are present)."""
    s = col.astype("string")
    if not s.str.contains(r"[\\\t\n\r\x00]", regex=True, na=False).any():
        return col
    for ch, rep in _ESCAPES.items():
        s = s.str.replace(ch, rep, regex=False)
    return s.astype(object).where(col.notna(), None)


def write_tsv(df: pd.DataFrame, columns: tuple[str, ...], path: str) -> None:
    """Write ``columns`` of ``df`` as a LOAD DATA-ready file: no header, tab-separated, an empty
    field for NULL (mapped back by :func:`load_frame`), text escaped. Uses Arrow's CSV writer
    (about 10x pandas' ``to_csv`` with datetime formatting)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    out = df.loc[:, list(columns)]
    fixed: dict[str, pd.Series] = {}
    quoted = False
    for c in out.columns:
        col = out[c]
        if pd.api.types.is_bool_dtype(col):
            fixed[c] = col.astype("Int8")
        elif pd.api.types.is_datetime64_any_dtype(col):
            fixed[c] = col.astype("datetime64[ms]")
        elif col.dtype == object or pd.api.types.is_string_dtype(col):
            fixed[c] = _escape_text(col).astype(object).where(col.notna(), None)
            quoted = quoted or bool(col.astype("string").str.contains('"', regex=False, na=False).any())
    if fixed:
        out = out.assign(**fixed)
    table = pa.Table.from_pandas(out, preserve_index=False)
    pacsv.write_csv(
        table,
        path,
        pacsv.WriteOptions(
            include_header=False, delimiter="\t", quoting_style="needed" if quoted else "none"
        ),
    )


def load_frame(
    conn: pymysql.connections.Connection,
    table: str,
    df: pd.DataFrame,
    columns: tuple[str, ...],
    mode: Literal["append", "replace", "ignore"] = "append",
) -> int:
    """LOAD DATA ``df`` into ``table`` (a fully qualified, backquoted name) on ``conn`` without
    committing. ``replace``/``ignore`` decide what happens on a duplicate primary key. Returns the
    number of rows the server reports as affected. Raises :class:`LoadWarning` when the server
    reports a warning (it would otherwise have stored a cut or altered value)."""
    if df.empty:
        return 0
    if not conn.client_flag & CLIENT.LOCAL_FILES:
        raise ValueError(
            "load_frame needs a loader connection: open it with local_infile=True "
            "(ml.db.connect / ml.db.transaction); other connections keep LOAD DATA LOCAL off"
        )
    fd, path = tempfile.mkstemp(prefix="recsys_load_", suffix=".tsv")
    os.close(fd)
    try:
        write_tsv(df, columns, path)
        keyword = {"append": "", "replace": "REPLACE", "ignore": "IGNORE"}[mode]
        names = ", ".join(f"@v{i}" for i in range(len(columns)))
        assign = ", ".join(f"`{c}` = NULLIF(@v{i}, '')" for i, c in enumerate(columns))
        with conn.cursor() as cur:
            affected = cur.execute(
                f"LOAD DATA LOCAL INFILE %s {keyword} INTO TABLE {table} CHARACTER SET utf8mb4 "
                f"FIELDS TERMINATED BY '\\t' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({names}) SET {assign}",
                (path,),
            )
            cur.execute("SHOW WARNINGS")
            _raise_on_warnings(table, cur.fetchall(), mode)
            return affected
    finally:
        os.unlink(path)


class LoadWarning(RuntimeError):
    """LOAD DATA LOCAL turned a bad value into a warning (a cut text, a number out of range, a
    missing field): raised instead, so the caller's transaction rolls back rather than commit
    altered data."""


def _raise_on_warnings(table: str, warnings: tuple, mode: str) -> None:
    """Warnings and errors of the last statement are failures; notes (a decimal rounded to the
    column's scale) are not, nor duplicate keys where ``mode`` asked to skip or replace them."""
    bad = [w for w in warnings if w[0] != "Note" and not (mode != "append" and int(w[1]) == 1062)]
    if bad:
        level, code, message = bad[0]
        raise LoadWarning(
            f"LOAD DATA into {table}: {len(bad)} warning(s), first: {level} {code}: {message}; "
            "the batch is rolled back"
        )
