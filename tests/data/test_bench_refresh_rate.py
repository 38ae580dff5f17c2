"""bench/refresh_rate.py moves the publish watermark back to re-score recent users and must leave the
shop's publish state exactly as it found it."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import refresh_rate  # noqa: E402

from ml.db import connect  # noqa: E402
from ml.publish.common import WATERMARK_NAME  # noqa: E402


def test_rewind_then_restore_gives_back_the_watermark_and_its_gaps(clean_db):
    s = clean_db
    conn = connect(s.serving_db, settings=s)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "INSERT INTO publish_watermark (name, event_id, max_event_ts, updated_at) VALUES (%s, 90, %s, %s)",
                (WATERMARK_NAME, datetime(2026, 12, 1, 8), datetime(2026, 12, 1, 9)),
            )
            cur.execute(
                "INSERT INTO publish_watermark_gaps (name, first_event_id, last_event_id, seen_at) "
                "VALUES (%s, 70, 72, %s)",
                (WATERMARK_NAME, datetime(2026, 12, 1, 8, 30)),
            )
        marks, gaps = before = refresh_rate._state(conn, s)
        assert len(marks) == 1 and len(gaps) == 1
        refresh_rate._rewind(conn, s, 40, marks[0][2])
        rewound, no_gaps = refresh_rate._state(conn, s)
        assert rewound[0][1:3] == (40, datetime(2026, 12, 1, 8)) and no_gaps == ()
        refresh_rate._restore(conn, s, marks, gaps)
        assert refresh_rate._state(conn, s) == before
    finally:
        conn.close()
