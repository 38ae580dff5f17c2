"""A/B experiments (issue 17): the deterministic user split and the experiment state, declared once.

The publisher (which lists to build and refresh), the reader (which list to serve and which arm to
log) and the report (was every user logged in the arm the split gives?) all call :func:`bucket`,
so they cannot disagree on who is in which arm. The split needs no stored assignment: a user's
bucket is the first 8 bytes of ``sha256("<salt>:<user_id>")`` read as a fraction of 2**64, stable
across processes, machines and Python versions (``hash()`` is salted per process; this is not).
A different salt (the experiment's name) gives a split independent of the last one.

The running experiment lives in ``{serving_db}.ab_experiment`` (migration 0017), one row per run
(a run ends when the share or either version changes, or the experiment is switched off). The full
publish swaps that table in the same ``RENAME`` as ``user_topn`` and ``user_topn_challenger``, so
every reader process sees the state and the lists change together.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

CHAMPION_ARM = "champion"
CHALLENGER_ARM = "challenger"
ARMS: tuple[str, ...] = (CHAMPION_ARM, CHALLENGER_ARM)

#: the serving table each arm's per-user lists live in
ARM_TABLES: dict[str, str] = {CHAMPION_ARM: "user_topn", CHALLENGER_ARM: "user_topn_challenger"}

EXPERIMENT_COLUMNS = "id, name, share, champion_version, challenger_version, started_at, ended_at"
#: the running experiment (at most one row has no ``ended_at``)
ACTIVE_EXPERIMENT_SQL = (
    f"SELECT {EXPERIMENT_COLUMNS} FROM ab_experiment WHERE ended_at IS NULL ORDER BY id DESC LIMIT 1"
)


def bucket(user_id: int, salt: str) -> float:
    """The user's place in [0, 1) under ``salt``: first 8 bytes of sha256("salt:user_id") / 2**64."""
    digest = hashlib.sha256(f"{salt}:{int(user_id)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def arm_of(user_id: int, salt: str, share: float) -> str:
    """``challenger`` when the user's bucket is below ``share``, else ``champion``."""
    return CHALLENGER_ARM if bucket(user_id, salt) < share else CHAMPION_ARM


@dataclass(frozen=True)
class Experiment:
    """One run of an experiment: its name (also the salt of the split), the challenger share and the two
    versions; ``id``/``started_at``/``ended_at`` once stored."""

    name: str
    share: float
    champion_version: str
    challenger_version: str
    id: int | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None

    def arm(self, user_id: int) -> str:
        return arm_of(user_id, self.name, self.share)

    def split(self, user_ids: Sequence[int]) -> tuple[list[int], list[int]]:
        """(champion users, challenger users), each in the given order."""
        champion, challenger = [], []
        for u in user_ids:
            (challenger if self.arm(u) == CHALLENGER_ARM else champion).append(u)
        return champion, challenger

    def same_run(self, other: Experiment | None) -> bool:
        """True when ``other`` is this run: same name, share and versions (stored fields aside)."""
        return other is not None and (
            self.name,
            self.share,
            self.champion_version,
            self.challenger_version,
        ) == (other.name, other.share, other.champion_version, other.challenger_version)


def experiment_from_row(row: Sequence) -> Experiment:
    """An :class:`Experiment` from a row of :data:`EXPERIMENT_COLUMNS`."""
    id_, name, share, champion, challenger, started, ended = row
    return Experiment(str(name), float(share), str(champion), str(challenger), int(id_), started, ended)


def active_experiment(query: Callable[[str], list[tuple]]) -> Experiment | None:
    """The running experiment, read with ``query`` (any driver: a function of SQL returning rows) on a
    connection whose default database is the serving database; None when none runs."""
    rows = query(ACTIVE_EXPERIMENT_SQL)
    return experiment_from_row(rows[0]) if rows else None
