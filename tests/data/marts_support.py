"""Reading dbt outputs back in the data tests: one query's rows as dicts."""

from __future__ import annotations

from ml.db import connect


def rows(settings, sql: str, database: str | None = None) -> list[dict]:
    """The rows of ``sql`` as dicts, run in ``database`` (default the marts database)."""
    conn = connect(database or settings.marts_db, settings=settings, dict_cursor=True)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())
    finally:
        conn.close()
