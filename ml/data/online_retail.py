"""UCI Online Retail importer: invoice lines → ``purchase`` events in ``recsys_raw``.

Input: Parquet (recognised by its magic bytes) or CSV with a header line, columns ``InvoiceNo,
StockCode, Description, Quantity, InvoiceDate, UnitPrice, CustomerID, Country`` (names matched
ignoring case; further Parquet columns are ignored). Read in batches of ``batch_rows`` (Parquet
record batches, CSV lines), so memory stays bounded whatever the file size.

Mapping (docs/contracts.md, "Online Retail"):
- Every sale line is one ``purchase`` event: ``user_id`` = CustomerID as an integer, ``ts`` =
  InvoiceDate, ``session_id`` = ``inv-<InvoiceNo>`` (one session per invoice, whatever the gap),
  and the line's ``quantity`` and ``unit_price`` on the event (migration 0006).
- ``StockCode`` → item: trimmed and upper-cased (the file spells 112 codes both ways, ``85123A`` and
  ``85123a``, and 108 of those pairs carry the same title), then mapped to a stable integer id kept
  in ``source_keys`` (:mod:`ml.data.source_keys` says why there). ``items.title`` is the latest
  non-empty Description, ``items.price`` the latest unit price; ``category_id`` = 0 (unknown: the
  file has none and nothing is derived from titles).
- ``users``: ``signup_ts`` = the customer's first line, ``location`` = its Country.

Quarantine, first failing check wins, in this order (``detail`` shows the offending value):
``bad_encoding`` (CSV line not UTF-8, or holding a control character such as NUL),
``unparseable`` (CSV line that is not 8 fields, or a quoted field never closed / followed by text;
a ``"`` inside an unquoted field or a doubled ``""`` inside a quoted one is ordinary text; also a
StockCode over 64 or an InvoiceNo over 60 characters), ``null_id`` (InvoiceNo empty),
``cancelled`` (InvoiceNo starting with ``C``, or a negative Quantity), ``bad_quantity`` (Quantity
missing, zero, fractional or above 2^31-1), ``bad_price`` (UnitPrice missing, not a number, zero or
negative, or above 1,000,000), then the shared event checks of :func:`validate_events`: ``null_id``
(CustomerID or StockCode empty), ``non_numeric_id`` (CustomerID not a non-negative integer),
``bad_timestamp`` (InvoiceDate unparseable), ``ts_future``, ``ts_before_2000``,
``duplicate_in_batch`` and, in :func:`write_batch`, ``duplicate_of_loaded`` (the same customer,
item and minute as an earlier line: the contract's natural key, so a repeated line of an invoice is
kept once).

Events, users, items, keys, quarantine rows and the ledger row of a batch commit together through
:func:`ml.data.ingest.write_batch`. Importing the same file again writes nothing
(:mod:`ml.data.ledger`); the same lines from another file (the CSV export of an imported Parquet)
load no event twice (natural key) and map every code to the same item id.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from ml.config import Settings
from ml.data.importers import LineError, SourceFormat, check_format, first_seen_users, read_batches
from ml.data.ingest import LoadReport, write_batch
from ml.data.ledger import Ledger
from ml.data.pseudonym import pseudonymize_series, withhold_raw
from ml.data.source_keys import MAX_KEY_LENGTH, item_catalogue
from ml.data.validate import (
    MAX_PRICE,
    Checked,
    FormatError,
    empty_quarantine,
    quarantine_rows,
    validate_events,
)

SOURCE = "online_retail"
FILE_COLUMNS: tuple[str, ...] = (
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
)
COLUMNS: tuple[str, ...] = tuple(c.lower() for c in FILE_COLUMNS)
MAX_INVOICE_LENGTH = 60  # session_id is VARCHAR(64): "inv-" + InvoiceNo
_INT_MAX = 2**31 - 1
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def split_csv_line(text: str) -> list[str]:
    """Fields of one CSV line (RFC 4180 quoting, strict about a quote that opens a field)."""
    bad = _CONTROL.search(text)
    if bad:
        raise LineError(
            "bad_encoding", f"control character {ord(bad.group()):#04x} at column {bad.start() + 1}"
        )
    if '"' not in text:
        return text.split(",")
    try:
        (fields,) = csv.reader([text], strict=True)
    except csv.Error as exc:
        raise LineError("unparseable", f"broken quoting: {exc}") from None
    return fields


def _looks_like_a_line(fields: list[str]) -> bool:
    try:
        float(fields[3]), float(fields[5])
    except ValueError:
        return False
    return True


ONLINE_RETAIL = SourceFormat(
    name=SOURCE,
    columns=COLUMNS,
    header=True,
    behavior_map={"purchase": "purchase"},
    ts_unit=None,
    rename={"customerid": "user_id", "stockcode": "item_id", "invoicedate": "ts"},
    split=split_csv_line,
    row_check=_looks_like_a_line,
)


def _csv_batches(path: Path, batch_rows: int, source: str) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    check_format(path, ONLINE_RETAIL)
    for batch in read_batches(path, ONLINE_RETAIL, batch_rows):
        lines = pd.DataFrame(batch.fields, columns=list(COLUMNS), dtype=object)
        yield lines.assign(line_no=batch.line_no, raw_row=batch.raw), batch.quarantine(source)


def _parquet_batches(path: Path, batch_rows: int) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """Record batches with ``line_no`` = row number (1-based) and no raw text (rendered on demand)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise FormatError(f"{path}: not a readable Parquet file ({exc})") from None
    names = {n.lower(): n for n in pf.schema_arrow.names}
    missing = [f for f, c in zip(FILE_COLUMNS, COLUMNS) if c not in names]
    if missing:
        raise FormatError(
            f"{path}: Parquet columns lack {', '.join(missing)}; an {SOURCE} file has columns "
            f"{','.join(FILE_COLUMNS)}"
        )
    first = 1
    for record_batch in pf.iter_batches(batch_size=batch_rows, columns=[names[c] for c in COLUMNS]):
        lines = record_batch.to_pandas()
        lines.columns = list(COLUMNS)
        lines["line_no"] = np.arange(first, first + len(lines))
        lines["raw_row"] = None
        first += len(lines)
        yield lines, empty_quarantine()


def _as_csv(rows: pd.DataFrame) -> list[str]:
    """Rows rendered as the CSV lines an export of them would hold (quarantine's ``raw_row``)."""
    line = None
    for c in COLUMNS:
        s = rows[c].astype(str).where(rows[c].notna(), "").astype("string[pyarrow]")
        s = s.where(~s.str.contains(r'[",\r\n]'), '"' + s.str.replace('"', '""', regex=False) + '"')
        line = s if line is None else line + "," + s
    return [] if line is None else line.astype(object).tolist()


def _text(s: pd.Series) -> pd.Series:
    return s.astype("string[pyarrow]").str.strip().fillna("")


def _or_null(s: pd.Series) -> pd.Series:
    """Text with empty values as None (NULL in MySQL)."""
    return s.astype(object).where(s != "", None)


def _line_checks(lines: pd.DataFrame, source: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The checks only a sale line needs; returns ``(events to validate, quarantine rows)``."""
    invoice = _text(lines["invoiceno"])
    code = _text(lines["stockcode"]).str.upper()
    qty = pd.to_numeric(lines["quantity"], errors="coerce")
    price = pd.to_numeric(lines["unitprice"], errors="coerce")
    shown_qty, shown_price = (
        lines[c].astype(str).astype("string[pyarrow]") for c in ("quantity", "unitprice")
    )
    checks = [
        (invoice.str.len() > MAX_INVOICE_LENGTH, "unparseable", "InvoiceNo longer than 60 characters"),
        (code.str.len() > MAX_KEY_LENGTH, "unparseable", "StockCode longer than 64 characters"),
        (invoice == "", "null_id", "InvoiceNo is empty"),
        (
            invoice.str.upper().str.startswith("C") | (qty < 0),
            "cancelled",
            "InvoiceNo=" + invoice + " Quantity=" + shown_qty,
        ),
        (
            qty.isna() | (qty == 0) | (qty % 1 != 0) | (qty > _INT_MAX),
            "bad_quantity",
            "Quantity=" + shown_qty,
        ),
        (price.isna() | (price <= 0) | (price > MAX_PRICE), "bad_price", "UnitPrice=" + shown_price),
    ]
    masks = [np.asarray(m.fillna(False), dtype=bool) for m, _, _ in checks]
    reason = np.select(masks, [r for _, r, _ in checks], default="")
    detail = np.select(
        masks, [np.asarray(d if isinstance(d, str) else d.astype(str)) for _, _, d in checks], ""
    )
    bad = reason != ""
    quarantine = quarantine_rows(
        lines["raw_row"][bad], reason[bad], detail[bad], source, lines["line_no"][bad].to_numpy(dtype=object)
    )
    ok = ~bad
    # a per-batch integer per code, only so validation can check ids and duplicates; the stable id
    # is given afterwards to the codes of the lines that passed
    factor = pd.Series(pd.factorize(code[ok])[0], index=code.index[ok], dtype="float64")
    events = pd.DataFrame(
        {
            "user_id": lines["customerid"][ok],
            "item_id": factor.where(code[ok] != ""),
            "behavior_type": "purchase",
            "ts": lines["invoicedate"][ok],
            "session_id": "inv-" + invoice[ok],
            "quantity": qty[ok],
            "unit_price": price[ok],
            "source_key": code[ok],
            "title": _or_null(_text(lines["description"][ok]).str.slice(0, 255)),
            "location": _or_null(_text(lines["country"][ok]).str.slice(0, 64)),
            "line_no": lines["line_no"][ok],
            "raw_row": lines["raw_row"][ok],
        }
    )
    return events, quarantine


def _import_batch(
    lines: pd.DataFrame, pre: pd.DataFrame, settings: Settings, ledger: Ledger, now: pd.Timestamp | None
) -> LoadReport:
    source = ledger.source
    events, line_quarantine = _line_checks(lines, source)
    checked = validate_events(events, source, behavior_map=ONLINE_RETAIL.behavior_map, now=now)
    quarantine = pd.concat([q for q in (pre, line_quarantine, checked.quarantine) if len(q)] or [pre])
    quarantine = quarantine.reset_index(drop=True)
    if lines["raw_row"].isna().any() and len(quarantine):  # Parquet, pseudonymised: rejected rows as CSV
        by_line = lines.set_index("line_no")[list(COLUMNS)]
        known = quarantine["line_no"].isin(by_line.index).to_numpy()  # not pre: lines that did not split
        quarantine.loc[known, "raw_row"] = _as_csv(by_line.loc[quarantine["line_no"][known].astype(np.int64)])
    clean = checked.clean
    also, users, new_items = [], None, 0
    if len(clean):
        observed = clean.rename(columns={"unit_price": "price"})[
            ["source_key", "title", "price", "ts", "line_no"]
        ]
        catalogue = item_catalogue(settings, SOURCE, observed)
        clean["item_id"] = clean["source_key"].map(catalogue.ids).astype("Int64")
        clean["quantity"] = clean["quantity"].astype(np.int64)
        also, users, new_items = catalogue.writes, first_seen_users(clean, ("location",)), catalogue.new
    line_no = np.concatenate([lines["line_no"].to_numpy(np.int64), pre["line_no"].to_numpy(np.int64)])
    also.append(ledger.entry(line_no))
    report = write_batch(Checked(clean, quarantine), source, settings, users=users, also=also)
    report.items = new_items
    return report


def _uncovered(ledger: Ledger, frame: pd.DataFrame) -> pd.DataFrame:
    return frame[~ledger.covered(frame["line_no"])] if len(frame) else frame


def import_online_retail(
    path: str | Path,
    settings: Settings,
    *,
    batch_rows: int = 200_000,
    now: pd.Timestamp | None = None,
    on_batch: Callable[[LoadReport], None] | None = None,
    pseudonym_key: bytes | None = None,
) -> LoadReport:
    """Import an Online Retail Parquet or CSV file, one atomic transaction per batch. Lines an
    earlier import of the same file committed are skipped (``LoadReport.skipped``). With
    ``pseudonym_key`` CustomerID is replaced by its keyed pseudonym first (:mod:`ml.data.pseudonym`).
    Raises :class:`FormatError` (nothing written) if the file is not in the format at all."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with path.open("rb") as f:
        parquet = f.read(4) == b"PAR1"
    source = f"{SOURCE}:{path.name}"
    ledger = Ledger(settings, path, source)
    batches = _parquet_batches(path, batch_rows) if parquet else _csv_batches(path, batch_rows, source)
    total = LoadReport()
    for lines, pre in batches:
        todo, todo_pre = _uncovered(ledger, lines), _uncovered(ledger, pre)
        if pseudonym_key is not None:  # before validation; rejected lines are re-rendered from fields
            todo = todo.assign(
                customerid=pseudonymize_series(todo["customerid"], pseudonym_key), raw_row=None
            )
            todo_pre = withhold_raw(todo_pre)
        skipped = len(lines) + len(pre) - len(todo) - len(todo_pre)
        if len(todo) or len(todo_pre):
            report = _import_batch(todo, todo_pre, settings, ledger, now)
        else:
            report = LoadReport()
        report.skipped = skipped
        total.add(report)
        if on_batch:
            on_batch(report)
    return total
