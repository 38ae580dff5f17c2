"""A/B in the publisher (issue 17): which experiment run a full publish swaps in, the challenger's
lists it builds next to the champion's, and which arm's list a refresh rewrites.

Full publish: with ``RECSYS_AB_SHARE`` > 0 and a registered challenger that is not the champion, the
challenger scores every active user into ``user_topn_challenger_new`` (checked like ``user_topn_new``)
and ``ab_experiment_new`` gets the run; both join the one ``RENAME`` of the serving tables. The same
name, share and versions continue the live run (its ``started_at`` kept); anything else ends it and
starts a new one. Switched off (or no challenger) while a run is live: the run is ended and an empty
challenger table swapped in, in the same RENAME. Off with nothing live: exactly the publish without A/B.

Refresh: an acting user's list is rewritten in their own arm's table only. The split is fixed for a
run (share and salt change only with a full publish, which rebuilds both tables for everyone), so the
other arm's list of that user is never served before the next full publish rebuilds it: scoring it
would double the refresh's cost for nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pymysql

from ml.config import Settings
from ml.experiment import (
    ARM_TABLES,
    CHALLENGER_ARM,
    CHAMPION_ARM,
    EXPERIMENT_COLUMNS,
    Experiment,
    experiment_from_row,
)
from ml.experiment import active_experiment as _active
from ml.publish.common import (
    AB_TABLES,
    ChampionNotPublished,
    PublishError,
    Recommender,
    Validator,
    table_exists,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChallengerLists:
    """The challenger of an experiment: its recommender, its ``model_version`` and an extra pre-swap
    check of its lists (the GX top-N suite under its own rules), after the built-in invariants."""

    recommender: Recommender
    model_version: str
    validate: Validator | None = None


@dataclass(frozen=True)
class ArmLists:
    """One arm's part of a refresh batch: whose lists, scored by what, into which table."""

    table: str
    recommender: Recommender
    model_version: str
    users: list[int]


class ChallengerNotPublished(ChampionNotPublished):
    """The refresh was handed another challenger (or champion) than the running experiment's (the
    aliases moved since its full publish): like :class:`ChampionNotPublished`, the refresh waits for
    the next full publish."""


def live_experiment(conn: pymysql.connections.Connection, s: Settings) -> Experiment | None:
    """The running experiment in ``{serving_db}.ab_experiment`` (``conn``'s default database)."""
    if not table_exists(conn, s.serving_db, "ab_experiment"):
        raise PublishError(f"{s.serving_db}.ab_experiment is missing: run `recsys db init` (migration 0017)")

    def query(sql: str) -> list[tuple]:
        with conn.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())

    return _active(query)


def planned_experiment(
    s: Settings, champion_version: str, challenger: ChallengerLists | None
) -> Experiment | None:
    """The run this full publish serves: None when no experiment is configured, no challenger is
    registered, or the challenger is the champion (logged: the champion alone is published)."""
    if not s.ab_on:
        return None
    if challenger is None:
        log.warning("A/B %s configured but no challenger registered: publishing the champion only", s.ab_salt)
        return None
    if challenger.model_version == champion_version:
        log.warning("A/B %s: the challenger is the champion (%s): no experiment", s.ab_salt, champion_version)
        return None
    return Experiment(s.ab_salt, s.ab_share, champion_version, challenger.model_version)


def ab_tables(new: Experiment | None, live: Experiment | None) -> list[str]:
    """The A/B tables this full publish rebuilds: both while a run starts, continues or ends; none else."""
    return list(AB_TABLES) if new is not None or live is not None else []


def stage_experiment(
    conn: pymysql.connections.Connection, s: Settings, new: Experiment | None, live: Experiment | None
) -> Experiment | None:
    """Fill ``ab_experiment_new``: every past run copied, the live run kept when ``new`` continues it,
    else ended now, and ``new`` started now (UTC). Returns the run that serves after the swap."""
    db = s.serving_db
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO `{db}`.ab_experiment_new SELECT * FROM `{db}`.ab_experiment")
        if new is not None and new.same_run(live):
            return live
        if live is not None:
            cur.execute(
                f"UPDATE `{db}`.ab_experiment_new SET ended_at = UTC_TIMESTAMP(3) WHERE id = %s", (live.id,)
            )
        if new is None:
            return None
        cur.execute(
            f"INSERT INTO `{db}`.ab_experiment_new (name, share, champion_version, challenger_version, started_at) "
            "VALUES (%s, %s, %s, %s, UTC_TIMESTAMP(3))",
            (new.name, new.share, new.champion_version, new.challenger_version),
        )
        cur.execute(f"SELECT {EXPERIMENT_COLUMNS} FROM `{db}`.ab_experiment_new WHERE id = LAST_INSERT_ID()")
        row = cur.fetchone()
    return experiment_from_row(row)


def refresh_arms(
    live: Experiment | None,
    champion: Recommender,
    champion_version: str,
    challenger: ChallengerLists | None,
    batch: list[int],
) -> list[ArmLists]:
    """The refresh's parts of ``batch``: all of it into ``user_topn`` without a running experiment,
    else each user into their own arm's table. Raises :class:`ChallengerNotPublished` when a run is
    live but ``challenger`` is not its challenger (or the champion is not its champion)."""
    if live is None:
        return [ArmLists(ARM_TABLES[CHAMPION_ARM], champion, champion_version, list(batch))]
    if challenger is None or challenger.model_version != live.challenger_version:
        got = challenger.model_version if challenger is not None else "none"
        raise ChallengerNotPublished(
            f"experiment {live.name} serves challenger {live.challenger_version}, the refresh was given {got}: "
            "load the experiment's challenger (ml.publish.run.publish_champion_refresh does)"
        )
    if champion_version != live.champion_version:
        raise ChallengerNotPublished(
            f"experiment {live.name} serves champion {live.champion_version}, the refresh was given "
            f"{champion_version}: wait for the next full publish"
        )
    mine, theirs = live.split(batch)
    parts = [
        ArmLists(ARM_TABLES[CHAMPION_ARM], champion, champion_version, mine),
        ArmLists(ARM_TABLES[CHALLENGER_ARM], challenger.recommender, challenger.model_version, theirs),
    ]
    return [p for p in parts if p.users]
