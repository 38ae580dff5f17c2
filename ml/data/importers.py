"""Importers for public e-commerce logs, mapped onto the raw contract.

- Taobao UserBehavior (``user_id,item_id,category_id,behavior_type,timestamp``, no header,
  unix seconds; ``pv``→browse, ``cart``, ``fav``, ``buy``→purchase).
- RetailRocket ``events.csv`` (header ``timestamp,visitorid,event,itemid,transactionid``,
  unix milliseconds; ``view``→browse, ``addtocart``→cart, ``transaction``→purchase).

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
from ml.data.validate import Checked, FormatError, quarantine_rows, validate_events

SESSION_GAP = pd.Timedelta(minutes=30)
_SNIFF_LINES = 20


@dataclass(frozen=True)
class SourceFormat:
    """A file layout: its columns in order, header or not, and how it maps onto the contract."""

    name: str
    columns: tuple[str, ...]
    header: bool
    behavior_map: dict[str, str]
    ts_unit: str
    rename: dict[str, str]  # file column → contract column (unlisted columns are dropped)
    category_column: str | None = None


TAOBAO = SourceFormat(
    name="taobao",
    columns=("user_id", "item_id", "category_id", "behavior_type", "timestamp"),
    header=False,
    behavior_map={"pv": "browse", "cart": "cart", "fav": "fav", "buy": "purchase"},
    ts_unit="s",
    rename={"user_id": "user_id", "item_id": "item_id", "category_id": "category_id",
            "behavior_type": "behavior_type", "timestamp": "ts"},
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
    row = dict(zip(fmt.columns, fields))
    ids = [row[c] for c, to in fmt.rename.items() if to in ("user_id", "item_id", "ts", "category_id")]
    return row[next(c for c, to in fmt.rename.items() if to == "behavior_type")] in fmt.behavior_map and all(
        v.strip().isdigit() for v in ids
    )


def check_format(path: Path, fmt: SourceFormat) -> None:
    """Stop early, naming file/line/columns, when the file is not in ``fmt`` at all."""
    with path.open("rb") as f:
        head = f.read(65536)
    if b"\x00" in head:
        line = head[: head.index(b"\x00")].count(b"\n") + 1
        raise _format_error(path, line, fmt, "binary data (NUL bytes), not a text CSV")
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
    data = [(i + 1, ln.decode("utf-8", "replace").strip()) for i, ln in enumerate(lines) if i >= data_start and ln.strip()]
    if not data:
        return
    no, text = data[0]
    if len(text.split(",")) != len(fmt.columns):
        raise _format_error(path, no, fmt, f"{len(text.split(','))} columns in {text[:120]!r}")
    if not any(_looks_right(t.split(","), fmt) for _, t in data):
        raise _format_error(path, no, fmt, f"no valid {fmt.name} row among the first lines (first: {text[:120]!r})")


@dataclass
class _Batch:
    fields: list[list[str]] = field(default_factory=list)
    line_no: list[int] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)
    bad: list[tuple[str, str, str, int]] = field(default_factory=list)  # raw, reason, detail, line

    def __len__(self) -> int:
        return len(self.line_no) + len(self.bad)


def read_batches(path: Path, fmt: SourceFormat, batch_rows: int) -> Iterator[_Batch]:
    """Lines in batches: split fields, or a pre-validation failure (encoding, field count)."""
    n_cols = len(fmt.columns)
    batch = _Batch()
    with path.open("rb") as f:
        for line_no, raw in enumerate(f, start=1):
            if line_no == 1 and (fmt.header or raw.decode("utf-8", "replace").strip().lower().split(",") == list(fmt.columns)):
                continue
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                batch.bad.append((raw.decode("utf-8", "backslashreplace").rstrip("\r\n"), "bad_encoding", str(exc)[:255], line_no))
            else:
                fields = text.split(",")
                if len(fields) == n_cols:
                    batch.fields.append(fields)
                    batch.line_no.append(line_no)
                    batch.raw.append(text)
                else:
                    batch.bad.append((text, "unparseable", f"{len(fields)} fields, expected {n_cols}", line_no))
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
        self.last.update(zip(u[last].tolist(), zip(t[last].tolist(), ev["session_id"].to_numpy()[last].tolist())))
        return ev


def _frame(batch: _Batch, fmt: SourceFormat) -> pd.DataFrame:
    df = pd.DataFrame(batch.fields, columns=list(fmt.columns))
    df = df[list(fmt.rename)].rename(columns=fmt.rename)
    df["line_no"] = batch.line_no
    df["raw_row"] = batch.raw
    return df


def _seen_users_items(events: pd.DataFrame, fmt: SourceFormat) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Users and items as first seen in this batch (inserted only where absent)."""
    users = events.groupby("user_id", as_index=False)["ts"].min().rename(columns={"ts": "signup_ts"})
    agg = {"ts": "min"}
    if fmt.category_column:
        agg["category_id"] = "first"
    items = events.dropna(subset=["item_id"]).groupby("item_id", as_index=False).agg(agg)
    items = items.rename(columns={"ts": "created_ts"})
    if not fmt.category_column:
        items["category_id"] = 0
    items["item_id"] = items["item_id"].astype(np.int64)
    return users[["user_id", "signup_ts"]], items[["item_id", "category_id", "created_ts"]]


def import_file(
    path: str | Path,
    fmt: str | SourceFormat,
    settings: Settings,
    *,
    batch_rows: int = 200_000,
    now: pd.Timestamp | None = None,
    on_batch: Callable[[LoadReport], None] | None = None,
) -> LoadReport:
    """Import a Taobao or RetailRocket file into ``recsys_raw``, one atomic transaction per batch.
    Raises :class:`FormatError` (nothing written) if the file is not in the format at all."""
    path = Path(path)
    spec = FORMATS[fmt] if isinstance(fmt, str) else fmt
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    check_format(path, spec)
    source = f"{spec.name}:{path.name}"
    sessions = Sessionizer()
    total = LoadReport()
    for batch in read_batches(path, spec, batch_rows):
        checked = validate_events(
            _frame(batch, spec), source, behavior_map=spec.behavior_map, ts_unit=spec.ts_unit, now=now,
            id_columns=(spec.category_column,) if spec.category_column else (),
        )
        pre = quarantine_rows([b[0] for b in batch.bad], pd.Series([b[1] for b in batch.bad], dtype=object),
                              [b[2] for b in batch.bad], source, [b[3] for b in batch.bad])
        clean = sessions.assign(checked.clean)
        users, items = _seen_users_items(clean, spec)
        quarantine = pd.concat([pre, checked.quarantine], ignore_index=True) if len(pre) else checked.quarantine
        report = write_batch(Checked(clean, quarantine), source, settings, users=users, items=items)
        total.add(report)
        if on_batch:
            on_batch(report)
    return total
