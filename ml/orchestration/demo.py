"""Helpers for the README's main command: show what the serving layer sees before and after a refresh.

``python -m ml.orchestration.demo snapshot FILE`` saves every user's top-10 (read with the read-only account);
``python -m ml.orchestration.demo compare FILE`` picks a user who acted since and prints both lists side by side.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pymysql
from rich.console import Console
from rich.table import Table

from ml.config import Settings, get_settings

console = Console()


def _reader(s: Settings) -> pymysql.connections.Connection:
    return pymysql.connect(
        host=s.mysql_host,
        port=s.mysql_port,
        user=s.reader_user,
        password=s.reader_password,
        database=s.serving_db,
        autocommit=True,
    )


def read_topn(s: Settings, k: int = 10) -> dict[int, list[tuple[int, float, str]]]:
    """Every user's first ``k`` rows of ``user_topn`` as the serving layer reads them."""
    conn = _reader(s)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT user_id, item_id, score, source FROM user_topn WHERE `rank` <= %s ORDER BY user_id, `rank`",
                (k,),
            )
            out: dict[int, list[tuple[int, float, str]]] = {}
            for u, i, sc, src in cur.fetchall():
                out.setdefault(int(u), []).append((int(i), float(sc), str(src)))
    finally:
        conn.close()
    return out


def snapshot(path: Path, s: Settings | None = None) -> int:
    s = s or get_settings()
    conn = pymysql.connect(
        host=s.mysql_host, port=s.mysql_port, user=s.mysql_user, password=s.mysql_password, autocommit=True
    )
    with conn.cursor() as cur:
        cur.execute(f"SELECT COALESCE(MAX(event_id), 0) FROM `{s.raw_db}`.user_behavior")
        max_id = int(cur.fetchone()[0])
    conn.close()
    topn = read_topn(s)
    path.write_text(json.dumps({"max_event_id": max_id, "topn": {str(u): v for u, v in topn.items()}}))
    return len(topn)


def compare(path: Path, s: Settings | None = None) -> int | None:
    """Print one user who acted after the snapshot: their new events and top-10 before/after."""
    s = s or get_settings()
    saved = json.loads(path.read_text())
    after = read_topn(s)
    conn = pymysql.connect(
        host=s.mysql_host,
        port=s.mysql_port,
        user=s.mysql_user,
        password=s.mysql_password,
        database=s.raw_db,
        autocommit=True,
    )
    with conn.cursor() as cur:
        cur.execute(
            "SELECT user_id, COUNT(*) n FROM user_behavior WHERE event_id > %s AND item_id IS NOT NULL "
            "GROUP BY user_id ORDER BY n DESC, user_id",
            (saved["max_event_id"],),
        )
        actors = [int(r[0]) for r in cur.fetchall()]
        changed = [u for u in actors if saved["topn"].get(str(u)) != [list(x) for x in after.get(u, [])]]
        if not changed:
            console.print("no user who acted since the snapshot has a changed top-10")
            return None
        user = changed[0]
        cur.execute(
            "SELECT e.ts, e.behavior_type, e.item_id, i.category, e.query_text FROM user_behavior e "
            "LEFT JOIN items i USING (item_id) WHERE e.user_id=%s AND e.event_id > %s ORDER BY e.event_id LIMIT 12",
            (user, saved["max_event_id"]),
        )
        events = cur.fetchall()
        cur.execute("SELECT item_id, category FROM items")
        cats = {int(i): c for i, c in cur.fetchall()}
    conn.close()
    console.print(
        f"[bold]{len(actors)}[/] users acted after the snapshot; [bold]{len(changed)}[/] have a new top-10. User {user} did:"
    )
    for ts, bt, item, cat, q in events:
        console.print(f"  {ts}  {bt:<8} {('item ' + str(item) + ' (' + str(cat) + ')') if item else repr(q)}")
    table = Table(title=f"user {user}: top-10 before → after the refresh")
    for col in ("rank", "before", "after"):
        table.add_column(col)
    before = saved["topn"].get(str(user), [])
    now = after.get(user, [])

    def fmt(rows: list, r: int) -> str:
        return f"{rows[r][0]} {cats.get(int(rows[r][0]), '?')} ({rows[r][2]})" if r < len(rows) else ""

    for r in range(10):
        table.add_row(str(r + 1), fmt(before, r), fmt(now, r))
    console.print(table)
    return user


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in {"snapshot", "compare"}:
        console.print("usage: python -m ml.orchestration.demo snapshot|compare FILE")
        return 2
    path = Path(argv[1])
    if argv[0] == "snapshot":
        console.print(f"saved top-10 of {snapshot(path)} users to {path}")
    else:
        compare(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
