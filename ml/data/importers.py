"""Importers for public e-commerce logs, mapped onto the raw contract.

- Taobao UserBehavior (``user_id,item_id,category_id,behavior_type,timestamp``, no header,
  unix seconds; ``pv``→browse, ``cart``, ``fav``, ``buy``→purchase).
- RetailRocket ``events.csv`` (header ``timestamp,visitorid,event,itemid,transactionid``,
  unix milliseconds; ``view``→browse, ``addtocart``→cart, ``transaction``→purchase).
- UCI Online Retail: :mod:`ml.data.online_retail` (string item codes, invoice sessions, Parquet),
  built on this module's line reader and format check (a :class:`SourceFormat` with its own
  ``split``).

Sessions are derived per user by a 30-minute inactivity gap (``session_id`` =
``"{user_id}-{unix seconds of the session's first event}"``, as the simulator writes), carried
across batches of one import. Users and items are created from what is seen (first-seen time as
``signup_ts``/``created_ts``; the item category from the file where it has one, else 0 = unknown).
Lines are read as bytes: undecodable ones and ones with the wrong field count go to quarantine
with the other validation failures; blank lines are not rows and are skipped. A file that is not
in the format at all (binary, wrong header, wrong column count on the first line) stops with
:class:`~ml.data.validate.FormatError` before anything is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ml.config import Settings
from ml.data.ingest import LoadReport, write_batch
from ml.data.pseudonym import pseudonymize_fields, withhold_raw
from ml.data.validate import Checked, FormatError, quarantine_rows, validate_events

SESSION_GAP = pd.Timedelta(minutes=30)
_SNIFF_LINES = 20


class LineError(ValueError):
    """A line that cannot be split into fields; becomes a quarantine row with ``reason``."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def split_commas(text: str) -> list[str]:
    """Plain comma-separated fields (the Taobao and RetailRocket files quote nothing)."""
    return text.split(",")


@dataclass(frozen=True)
class SourceFormat:
    """A file layout: its columns in order, header or not, and how it maps onto the contract.
    ``split`` turns one line into fields (raising :class:`LineError`); ``row_check`` says whether
    split fields look like a good row of the format (used only to recognise the format)."""

    name: str
    columns: tuple[str, ...]
    header: bool
    behavior_map: dict[str, str]
    ts_unit: str | None
    rename: dict[str, str]  # file column → contract column (unlisted columns are dropped)
    category_column: str | None = None
    split: Callable[[str], list[str]] = split_commas
    row_check: Callable[[list[str]], bool] | None = None


TAOBAO = SourceFormat(
    name="taobao",
    columns=("user_id", "item_id", "category_id", "behavior_type", "timestamp"),
    header=False,
    behavior_map={"pv": "browse", "cart": "cart", "fav": "fav", "buy": "purchase"},
    ts_unit="s",
    rename={
        "user_id": "user_id",
        "item_id": "item_id",
        "category_id": "category_id",
        "behavior_type": "behavior_type",
        "timestamp": "ts",
    },
    category_column="category_id",
)
RETAILROCKET = SourceFormat(
    name="retailrocket",
    columns=("timestamp", "visitorid", "event", "itemid", "transactionid"),
    header=True,
    behavior_map={"view": "browse", "addtocart": "cart", "transaction": "purchase"},
    ts_unit="ms",
    rename={"timestamp": "ts", "visitorid": "user_id", "event": "behavior_type", "itemid": "item_id"},
)
FORMATS: dict[str, SourceFormat] = {f.name: f for f in (TAOBAO, RETAILROCKET)}


def _format_error(path: Path, line_no: int, fmt: SourceFormat, problem: str) -> FormatError:
    header = "a header line" if fmt.header else "no header"
    return FormatError(
        f"{path}: line {line_no}: {problem}; a {fmt.name} file has {header} and columns "
        f"{','.join(fmt.columns)}"
    )


def _looks_right(fields: list[str], fmt: SourceFormat) -> bool:
    """A line that would pass validation as-is (used only to recognise the format)."""
    if len(fields) != len(fmt.columns):
        return False
    if fmt.row_check is not None:
        return fmt.row_check(fields)
    row = dict(zip(fmt.columns, fields))
    ids = [row[c] for c, to in fmt.rename.items() if to in ("user_id", "item_id", "ts", "category_id")]
    return row[next(c for c, to in fmt.rename.items() if to == "behavior_type")] in fmt.behavior_map and all(
        v.strip().isdigit() for v in ids
    )


def check_format(path: Path, fmt: SourceFormat) -> None:
    """Stop early, naming file/line/columns, when the file is not in ``fmt`` at all."""
    with path.open("rb") as f:
        head = f.read(65536)
    if b"\x00" in head:  # binary, unless good rows come before the NUL (then only its line is bad)
        before = head[: head.index(b"\x00")].split(b"\n")
        text_rows = (_split_or_none(ln.decode("utf-8", "replace").strip(), fmt) for ln in before[:-1])
        if not any(fields and _looks_right(fields, fmt) for fields in text_rows):
            raise _format_error(path, len(before), fmt, "binary data (NUL bytes), not a text CSV")
    lines = [ln for ln in head.split(b"\n")[: _SNIFF_LINES + 1]]
    if not any(ln.strip() for ln in lines):
        raise _format_error(path, 1, fmt, "the file is empty")
    first = lines[0].decode("utf-8", "replace").strip().lstrip("\ufeff")
    data_start = 0
    if fmt.header:
        if first.lower().replace(" ", "") != ",".join(fmt.columns):
            raise _format_error(path, 1, fmt, f"header is {first[:120]!r}")
        data_start = 1
    elif first.lower().split(",") == list(fmt.columns):
        data_start = 1  # tolerate a header on a header-less format
    data = [
        (i + 1, ln.decode("utf-8", "replace").strip())
        for i, ln in enumerate(lines)
        if i >= data_start and ln.strip()
    ]
    if not data:
        return
    no, text = data[0]
    fields = _split_or_none(text, fmt)  # a line the splitter rejects is a bad row, judged below
    if fields is not None and len(fields) != len(fmt.columns):
        raise _format_error(path, no, fmt, f"{len(fields)} columns in {text[:120]!r}")
    if not any(_looks_right(_split_or_none(t, fmt) or [], fmt) for _, t in data):
        raise _format_error(
            path, no, fmt, f"no valid {fmt.name} row among the first lines (first: {text[:120]!r})"
        )


def _split_or_none(text: str, fmt: SourceFormat) -> list[str] | None:
    try:
        return fmt.split(text)
    except LineError:
        return None


@dataclass
class _Batch:
    fields: list[list[str]] = field(default_factory=list)
    line_no: list[int] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)
    bad: list[tuple[str, str, str, int]] = field(default_factory=list)  # raw, reason, detail, line

    def __len__(self) -> int:
        return len(self.line_no) + len(self.bad)

    def quarantine(self, source: str) -> pd.DataFrame:
        """The lines that failed before validation, as quarantine rows."""
        raw, reason, detail, line_no = zip(*self.bad) if self.bad else ((), (), (), ())
        return quarantine_rows(
            list(raw), pd.Series(reason, dtype=object), list(detail), source, list(line_no)
        )


def _parse_line(raw: bytes, fmt: SourceFormat) -> tuple[str, list[str] | None, str, str]:
    """``(text, fields, reason, detail)``: fields of a good line, or None and why it is bad."""
    try:
        text = raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        return raw.decode("utf-8", "backslashreplace").rstrip("\r\n"), None, "bad_encoding", str(exc)
    try:
        fields = fmt.split(text)
    except LineError as exc:
        return text, None, exc.reason, exc.detail
    if len(fields) != len(fmt.columns):
        return text, None, "unparseable", f"{len(fields)} fields, expected {len(fmt.columns)}"
    return text, fields, "", ""


def read_batches(path: Path, fmt: SourceFormat, batch_rows: int) -> Iterator[_Batch]:
    """Lines in batches: split fields, or a pre-validation failure (encoding, field count, or what
    ``fmt.split`` rejects)."""
    batch = _Batch()
    with path.open("rb") as f:
        for line_no, raw in enumerate(f, start=1):
            if line_no == 1 and (
                fmt.header or raw.decode("utf-8", "replace").strip().lower().split(",") == list(fmt.columns)
            ):
                continue
            if not raw.strip():
                continue
            text, fields, reason, detail = _parse_line(raw, fmt)
            if fields is None:
                batch.bad.append((text, reason, detail[:255], line_no))
            else:
                batch.fields.append(fields)
                batch.line_no.append(line_no)
                batch.raw.append(text)
            if len(batch) >= batch_rows:
                yield batch
                batch = _Batch()
    if len(batch):
        yield batch


class Sessionizer:
    """Assigns session ids by a 30-minute inactivity gap per user, remembering each user's last
    event across batches (one instance per import)."""

    def __init__(self, gap: pd.Timedelta = SESSION_GAP):
        self.gap_ms = int(gap / pd.Timedelta(milliseconds=1))
        self.last: dict[int, tuple[int, str]] = {}

    def assign(self, events: pd.DataFrame) -> pd.DataFrame:
        """Events sorted by (user, ts) with a ``session_id`` column."""
        ev = events.sort_values(["user_id", "ts"], kind="stable").reset_index(drop=True)
        if ev.empty:
            return ev.assign(session_id=pd.Series(dtype=object))
        u = ev["user_id"].to_numpy()
        t = ev["ts"].to_numpy().astype("datetime64[ms]").astype(np.int64)
        first_of_user = np.r_[True, u[1:] != u[:-1]]
        new = first_of_user | np.r_[True, np.diff(t) > self.gap_ms]
        sid = np.full(len(ev), None, dtype=object)
        for i in np.flatnonzero(first_of_user):
            prev = self.last.get(int(u[i]))
            if prev is not None and 0 <= t[i] - prev[0] <= self.gap_ms:
                new[i] = False
                sid[i] = prev[1]
        starts = np.flatnonzero(new)
        sid[starts] = [f"{uu}-{tt // 1000}" for uu, tt in zip(u[starts], t[starts])]
        ev["session_id"] = pd.Series(sid).ffill()
        last = np.r_[u[1:] != u[:-1], True]
        self.last.update(
            zip(u[last].tolist(), zip(t[last].tolist(), ev["session_id"].to_numpy()[last].tolist()))
        )
        return ev


def _frame(batch: _Batch, fmt: SourceFormat) -> pd.DataFrame:
    df = pd.DataFrame(batch.fields, columns=list(fmt.columns))
    df = df[list(fmt.rename)].rename(columns=fmt.rename)
    df["line_no"] = batch.line_no
    df["raw_row"] = batch.raw
    return df


def first_seen_users(events: pd.DataFrame, columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """One row per user of ``events``: ``signup_ts`` = its first event time, plus ``columns`` as on
    that first event (rows for ``write_batch(users=...)``, inserted only where absent)."""
    first = events.sort_values("ts", kind="stable").drop_duplicates("user_id")
    return first[["user_id", "ts", *columns]].rename(columns={"ts": "signup_ts"}).reset_index(drop=True)


def _seen_users_items(events: pd.DataFrame, fmt: SourceFormat) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Users and items as first seen in this batch (inserted only where absent)."""
    users = first_seen_users(events)
    agg = {"ts": "min"}
    if fmt.category_column:
        agg["category_id"] = "first"
    items = events.dropna(subset=["item_id"]).groupby("item_id", as_index=False).agg(agg)
    items = items.rename(columns={"ts": "created_ts"})
    if not fmt.category_column:
        items["category_id"] = 0
    items["item_id"] = items["item_id"].astype(np.int64)
    return users, items[["item_id", "category_id", "created_ts"]]


def import_file(
    path: str | Path,
    fmt: str | SourceFormat,
    settings: Settings,
    *,
    batch_rows: int = 200_000,
    now: pd.Timestamp | None = None,
    on_batch: Callable[[LoadReport], None] | None = None,
    pseudonym_key: bytes | None = None,
) -> LoadReport:
    """Import a Taobao or RetailRocket file into ``recsys_raw``, one atomic transaction per batch.
    With ``pseudonym_key`` user ids are replaced by keyed pseudonyms first (:mod:`ml.data.pseudonym`).
    Raises :class:`FormatError` (nothing written) if the file is not in the format at all."""
    path = Path(path)
    spec = FORMATS[fmt] if isinstance(fmt, str) else fmt
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if pseudonym_key is not None and spec.split is not split_commas:
        raise ValueError(f"{spec.name}: pseudonymised import needs plain comma-separated lines")
    check_format(path, spec)
    source = f"{spec.name}:{path.name}"
    user_field = spec.columns.index(next(c for c, to in spec.rename.items() if to == "user_id"))
    sessions = Sessionizer()
    total = LoadReport()
    for batch in read_batches(path, spec, batch_rows):
        if pseudonym_key is not None:  # before validation: nothing below sees the source id
            pseudonymize_fields(batch.fields, user_field, pseudonym_key)
            batch.raw = [",".join(f) for f in batch.fields]
        checked = validate_events(
            _frame(batch, spec),
            source,
            behavior_map=spec.behavior_map,
            ts_unit=spec.ts_unit,
            now=now,
            id_columns=(spec.category_column,) if spec.category_column else (),
        )
        pre = batch.quarantine(source)
        if pseudonym_key is not None:  # lines that did not split: where the user field is is unknown
            pre = withhold_raw(pre)
        clean = sessions.assign(checked.clean)
        users, items = _seen_users_items(clean, spec)
        quarantine = (
            pd.concat([pre, checked.quarantine], ignore_index=True) if len(pre) else checked.quarantine
        )
        report = write_batch(Checked(clean, quarantine), source, settings, users=users, items=items)
        total.add(report)
        if on_batch:
            on_batch(report)
    return total
