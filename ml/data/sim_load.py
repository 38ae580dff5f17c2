"""Loading a simulation into MySQL: users, items and the ground truth (session intents, query
intents) replace rows with the same key; events go through the same validation and batch writer as every other loader.

Apart from the generator so that simulating stays free of database code (benchmarks and unit tests
simulate without a database).
"""

from __future__ import annotations

from ml.data.sim_config import SimData

#: the raw tables a simulation fills, quarantine included: what to empty before loading a shop from
#: scratch (the ground truth is replaced by key, so another shop's rows would otherwise stay)
SIM_RAW_TABLES = (
    "user_behavior",
    "user_behavior_quarantine",
    "users",
    "items",
    "sim_session_intent",
    "sim_query_intent",
)


def load_simulation(data: SimData, settings=None, *, batch_rows: int = 500_000):
    """Write a simulation (or one block of it) into ``recsys_raw``: users, items and the
    ground truth ``sim_session_intent`` and ``sim_query_intent`` replace rows with the same key (one
    transaction); events
    go through validation (:mod:`ml.data.validate`) and are appended with LOAD DATA LOCAL INFILE
    in batches of ``batch_rows``, each batch with its quarantine rows one transaction.
    Returns the :class:`ml.data.ingest.LoadReport`."""
    from ml.config import get_settings
    from ml.data.ingest import LoadReport, write_batch
    from ml.data.load import (
        INTENT_COLUMNS,
        ITEM_COLUMNS,
        QUARANTINE_COLUMNS,
        QUERY_INTENT_COLUMNS,
        USER_COLUMNS,
        load_frame,
    )
    from ml.data.validate import validate_events, validate_items
    from ml.db import transaction

    s = settings or get_settings()
    raw = f"`{s.raw_db}`"
    items = validate_items(data.items, "simulate:items") if not data.items.empty else None
    report = LoadReport()
    with transaction(settings=s, local_infile=True) as conn:
        report.users = load_frame(conn, f"{raw}.users", data.users, USER_COLUMNS, "replace")
        if items is not None:
            report.items = load_frame(conn, f"{raw}.items", items.clean, ITEM_COLUMNS, "replace")
            load_frame(conn, f"{raw}.user_behavior_quarantine", items.quarantine, QUARANTINE_COLUMNS)
            report.quarantined.update(items.quarantine["reason"].tolist())
        load_frame(conn, f"{raw}.sim_session_intent", data.intents, INTENT_COLUMNS, "replace")
        load_frame(conn, f"{raw}.sim_query_intent", data.queries, QUERY_INTENT_COLUMNS, "replace")
    for lo in range(0, len(data.events), batch_rows):
        checked = validate_events(data.events.iloc[lo : lo + batch_rows], "simulate")
        report.add(write_batch(checked, "simulate", s))
    return report


def next_free_ids(settings) -> tuple[int, int]:
    """The first user id and item id no loaded row uses (after ``users``/``items``, the events'
    ids and ids mapped from a source's string keys): where an appended simulation starts, so it adds
    users and items instead of replacing imported ones with the same ids."""
    from ml.db import connect

    conn = connect(settings.raw_db, settings=settings)
    try:
        with conn.cursor() as cur:
            found = []
            for kind, table in (("user", "users"), ("item", "items")):
                cur.execute(
                    f"SELECT GREATEST(COALESCE((SELECT MAX({kind}_id) FROM {table}), 0), "
                    f"COALESCE((SELECT MAX({kind}_id) FROM user_behavior), 0), "
                    "COALESCE((SELECT MAX(id) FROM source_keys WHERE kind = %s), 0)) + 1",
                    (kind,),
                )
                found.append(int(cur.fetchone()[0]))
    finally:
        conn.close()
    return found[0], found[1]
