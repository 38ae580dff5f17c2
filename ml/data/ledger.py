"""Which lines of a file are already imported, so importing it again writes nothing.

Events alone are protected by their natural key (a repeat becomes ``duplicate_of_loaded``), but a
second import would still add a quarantine row for every line, good or bad. The ledger
(``recsys_raw.import_ledger``) records, per committed batch, the file's content hash and the range
of lines the batch covered; the row commits in the batch's own transaction. A later import of a
file with the same content skips every covered line before validation: nothing is written, and
an import that failed half-way resumes after its last committed batch. A file with other content
(an edited or longer copy) is a new file: its lines go through the natural-key checks as usual.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from ml.config import Settings
from ml.db import connect

LEDGER_COLUMNS: tuple[str, ...] = ("file_sha256", "first_line", "last_line", "source", "line_count")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Ledger:
    """The committed line ranges of one file (read once per import)."""

    def __init__(self, settings: Settings, path: Path, source: str):
        self.sha, self.source = file_sha256(path), source
        conn = connect(settings.raw_db, settings=settings)
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT first_line, last_line FROM import_ledger WHERE file_sha256 = %s ORDER BY first_line",
                    (self.sha,),
                )
                ranges = cur.fetchall()
        finally:
            conn.close()
        self.first = np.array([r[0] for r in ranges], dtype=np.int64)
        self.last = np.array([r[1] for r in ranges], dtype=np.int64)

    def covered(self, line_no: pd.Series | np.ndarray) -> np.ndarray:
        """True for lines inside a committed range."""
        lines = np.asarray(line_no, dtype=np.int64)
        if not len(self.first):
            return np.zeros(len(lines), dtype=bool)
        i = np.searchsorted(self.first, lines, side="right") - 1
        return (i >= 0) & (lines <= self.last[np.maximum(i, 0)])

    def entry(self, line_no: pd.Series | np.ndarray) -> tuple[str, pd.DataFrame, tuple[str, ...], str]:
        """The ledger row for a batch of ``line_no`` (all uncovered lines between its first and last
        line), as a ``write_batch(also=...)`` load."""
        lines = np.asarray(line_no, dtype=np.int64)
        row = pd.DataFrame(
            [(self.sha, int(lines.min()), int(lines.max()), self.source[:255], len(lines))],
            columns=list(LEDGER_COLUMNS),
        )
        return ("import_ledger", row, LEDGER_COLUMNS, "append")
